"""Train the MNIST flows of the course and write ``checkpoints/mnist_<variant>[_<tag>]/``.

    python scripts/train_mnist.py --variants w1w2                                   # the recommended run (cpu_mnist)
    python scripts/train_mnist.py --preset cpu_mnist_paper --variants w1w2 --tag paper  # the paper's algorithm
    python scripts/train_mnist.py --preset cpu_mnist_paper --variants w1 w2 unregularized  # the ablation (46)-(48)
    python scripts/train_mnist.py --preset cpu_mnist_paper --variants w1w2 --set gp_weight=0.1 --tag gamma0.1
    python scripts/train_mnist.py --variants w1w2 --preset paper_mnist            # the paper's protocol (5000 it.)
    python scripts/train_mnist.py --variants w1w2 --resume                         # continue a killed run

``make train-mnist`` runs all of them (and the ablation of the well-posedness options, one option each).
A snapshot (weights, history, optimiser and generator states) is saved to the run directory every 100
iterations; ``--resume`` continues from it and gives the same weights as an uninterrupted run.

Each run directory gets ``model.pt`` (proxflow_edu.checkpoint.save), ``history.json`` and ``samples.png``
(100 samples at the training step h = 1 from prior seed 0). The data are 6000 random MNIST training images
(seed 0), as in the paper (method.md §7.1).

Settings: ``paper`` = FlowConfig.preset("paper_mnist") (5000 iterations, batch 200); ``cpu_paper`` =
FlowConfig.preset("cpu_mnist_paper"): the paper's model, loss, T, h, lambda, L, prior and optimiser with batch 64,
1800 iterations, a larger lr_phi with cosine decay and gradient-penalty weight gamma = 1 instead of 0.1, sized
for under 20 minutes of one core of a 2-core CPU for W1+W2 (the comment at PRESETS["cpu_mnist_paper"] says why
gamma); ``cpu`` (default) = FlowConfig.preset("cpu_mnist"): the same with the course's well-posedness options
(the comment at PRESETS["cpu_mnist"] says which and why).
The ablations that blow up (unregularized, w2) are capped at ABLATION_CAP iterations; train() stops them
cleanly at the first divergent iteration and keeps the last finite weights.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from proxflow_edu import checkpoint  # noqa: E402
from proxflow_edu.config import PRESETS, VARIANTS, FlowConfig  # noqa: E402
from proxflow_edu.course.plotting import image_grid  # noqa: E402
from proxflow_edu.mnist.data import load_mnist  # noqa: E402
from proxflow_edu.train import train  # noqa: E402

MNIST_PRESETS = [name for name, fields in PRESETS.items() if fields.get("arch") == "mnist_cnn"]
ABLATION_CAP = 400
N_DATA = 6000
N_DIAG = 100  # prior samples (fixed seed) for the HJ residual / terminal error logged next to the history


def diagnostics_callback(state: dict, snapshot_every: int = 100):  # noqa: ANN201
    """A train() callback adding ``hj_residual`` (43), ``terminal_error`` (44) and classifier scores to every
    history entry, and saving a snapshot checkpoint to ``state["run_dir"]`` every ``snapshot_every`` iterations
    (a killed run is not lost). The diagnostics use N_DIAG fixed prior samples from their own generator, so the
    training's random stream is untouched.
    """
    from proxflow_edu.data import sample_prior
    from proxflow_edu.diagnostics import discriminator_slope, hj_residual, terminal_error
    from proxflow_edu.flow import euler_flow
    from proxflow_edu.mnist.classifier import load_classifier, score_samples

    classifier = load_classifier()

    def callback(it: int, result) -> None:  # noqa: ANN001
        c, u, d, history = result.config, result.potential, result.discriminator, result.history
        if "x0" not in state:
            state["x0"] = sample_prior(c.prior, N_DIAG, result.event_shape, torch.Generator().manual_seed(12345))
        try:
            path = euler_flow(u, state["x0"], c.T, c.h, c.lam, keep_path=True)
            x_T = path.final
            hj, te = hj_residual(u, path.states, c.h, c.lam), terminal_error(u, d, x_T, c.T)
            slope = float(discriminator_slope(d, x_T).mean())
            sc = score_samples(x_T.clamp(0, 1), classifier) if torch.isfinite(x_T).all() else None
        except RuntimeError:
            hj = te = slope = float("nan")
            sc = None
        history.setdefault("hj_residual", []).append(hj)
        history.setdefault("terminal_error", []).append(te)
        history.setdefault("phi_slope", []).append(slope)
        history.setdefault("classifier_confident", []).append(sc.confident if sc else float("nan"))
        history.setdefault("classifier_classes", []).append(float(10 - len(sc.missing_classes)) if sc else float("nan"))
        print(f"it {it}: D {history['divergence'][-1]:.3g} KE {history['kinetic_energy'][-1]:.3g} HJ {hj:.3g} "
              f"R_T {te:.3g} slope {slope:.3g} confident {history['classifier_confident'][-1]:.2f} "
              f"classes {history['classifier_classes'][-1]:.0f} {result.wall_time:.0f} s", flush=True)
        run_dir = state.get("run_dir")
        if run_dir is not None and it > 0 and it % snapshot_every == 0:
            facts = {"snapshot": True, "device": "cpu", "threads": torch.get_num_threads(),
                     "precision": result.config.precision}
            checkpoint.save(result, run_dir, extra=facts)

    return callback


def config_for(variant: str, preset: str, n_iters: int | None, seed: int,
               overrides: dict | None = None) -> FlowConfig:
    base = {**PRESETS[preset], **(overrides or {})}
    if variant in ("unregularized", "w2"):
        base["n_iters"] = min(base["n_iters"], ABLATION_CAP)
    if n_iters is not None:
        base["n_iters"] = n_iters
    return FlowConfig(**{**base, "variant": variant, "seed": seed})


def parse_overrides(items: list[str]) -> dict:
    """``["gp_weight=0.1", "lr_schedule=constant"]`` -> typed FlowConfig overrides (JSON values, else strings)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects FIELD=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def save_grid(result, path: Path, title: str) -> None:  # noqa: ANN001
    with torch.no_grad():
        x = result.sample(100, seed=0).clamp(0, 1)
    fig, ax = plt.subplots(figsize=(5, 5.3))
    image_grid(x, nrow=10, ax=ax, title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=["w1w2", "w1", "w2", "unregularized"], choices=VARIANTS)
    p.add_argument("--preset", choices=MNIST_PRESETS, default="cpu_mnist", help="a FlowConfig preset (config.PRESETS)")
    p.add_argument("--n-iters", type=int, default=None, help="override the preset's iterations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="override FlowConfig fields, e.g. --set gp_weight=0.1 lr_schedule=constant")
    p.add_argument("--tag", default="", help="run directory mnist_<variant>_<tag> instead of mnist_<variant>")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (the shipped runs used 1)")
    p.add_argument("--data-root", default="data")
    p.add_argument("--out-root", default="checkpoints")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last snapshot, if any")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = load_mnist(args.data_root, train=True, n=N_DATA, seed=0)
    state: dict = {}
    callback = diagnostics_callback(state)
    for variant in args.variants:
        config = config_for(variant, args.preset, args.n_iters, args.seed, parse_overrides(args.set))
        run_dir = Path(args.out_root) / (f"mnist_{variant}_{args.tag}" if args.tag else f"mnist_{variant}")
        state["run_dir"] = run_dir
        start = time.perf_counter()
        resume = checkpoint.load(run_dir) if args.resume and (run_dir / "model.pt").is_file() else None
        if resume is not None:
            print(f"{variant}: resuming {run_dir} after {resume.iterations_done} iterations", flush=True)
        result = train(config, data, progress=not args.quiet, callback=callback, resume_from=resume)
        extra = {"dataset": "mnist", "n_data": N_DATA, "preset": args.preset, "threads": args.threads,
                 "overrides": args.set, "device": "cpu", "torch": str(torch.__version__),
                 "wall_seconds": round(time.perf_counter() - start, 1)}
        checkpoint.save(result, run_dir, extra=extra)
        status = (f"stopped at iteration {result.diverged_at}: {result.divergence_reason}"
                  if result.diverged_at is not None else "finished")
        save_grid(result, run_dir / "samples.png",
                  f"{variant}: {result.iterations_done} iterations, h = {config.h:g}")
        print(json.dumps({"variant": variant, "iterations_done": result.iterations_done,
                          "wall_time": round(result.wall_time, 1), "status": status}), flush=True)


if __name__ == "__main__":
    main()
