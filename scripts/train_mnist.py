"""Train the MNIST flows of the ablation (46)-(49) and write ``checkpoints/mnist_<variant>/``.

    python scripts/train_mnist.py --variants w1w2 w1 w2 unregularized        # what `make train-mnist` runs
    python scripts/train_mnist.py --variants w1w2 --setting paper             # the paper's protocol (5000 it.)

Each run directory gets ``model.pt`` (proxflow_edu.checkpoint.save), ``history.json`` and ``samples.png``
(100 samples at the training step h = 1 from prior seed 0). The data are 6000 random MNIST training images
(seed 0), as in the paper (method.md §7.1).

Settings: ``paper`` = FlowConfig.preset("paper_mnist") (5000 iterations, batch 200); ``cpu`` (default) =
the paper's model, loss, T, h, lambda, L, gamma, prior and optimiser with a smaller batch, higher learning
rates and fewer iterations, sized for about 20 minutes of a 2-core CPU for W1+W2 (CPU_BUDGET below).
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
from proxflow_edu.data import mnist  # noqa: E402
from proxflow_edu.plotting import image_grid  # noqa: E402
from proxflow_edu.train import PRESETS, VARIANTS, FlowConfig, train  # noqa: E402

# Proposed preset "cpu_mnist" (to be added to proxflow_edu.train.PRESETS): the paper's MNIST setting
# except batch size, learning rates, iterations and logging.
CPU_BUDGET = dict(PRESETS["paper_mnist"], batch_size=64, lr_potential=5e-4, lr_discriminator=2.5e-4,
                  n_iters=600, log_every=10)
ABLATION_CAP = 400
N_DATA = 6000
N_DIAG = 100  # prior samples (fixed seed) for the HJ residual / terminal error logged next to the history


def _log_diagnostics_too(snapshot_every: int = 100) -> dict:
    """Add ``hj_residual`` (43), ``terminal_error`` (44) and classifier scores to every logged history entry,
    and save a snapshot checkpoint to ``state["run_dir"]`` every ``snapshot_every`` iterations (a killed run is not lost).

    train() has no callback yet, so this wraps its (private) builder and logger: the wrapped builder
    remembers the networks of the run, the wrapped logger evaluates the diagnostics on N_DIAG fixed prior
    samples (own generator: the training's random stream is untouched; no parameter gradients are made).
    Replace by a train(..., callback=...) hook when proxflow_edu.train has one.
    """
    import sys

    from proxflow_edu.data import sample_prior
    from proxflow_edu.diagnostics import hj_residual, terminal_error
    from proxflow_edu.evaluate import load_classifier, score_samples
    from proxflow_edu.flow import generate
    from proxflow_edu.train import TrainResult

    classifier = load_classifier()

    tr = sys.modules["proxflow_edu.train"]
    state: dict = {}
    build, log = tr.build_networks, tr._log

    def build_networks(config, event_shape):  # noqa: ANN001, ANN202
        nets = build(config, event_shape)
        state.update(potential=nets[0], discriminator=nets[1], config=config,
                     x0=sample_prior(config.prior, N_DIAG, event_shape, torch.Generator().manual_seed(12345)))
        return nets

    def _log(history, it, keys, values, start):  # noqa: ANN001, ANN202
        log(history, it, keys, values, start)
        c, u, d = state["config"], state["potential"], state["discriminator"]
        try:
            x_T, path = generate(u, state["x0"], c.T, c.h, c.lam, return_path=True)
            hj, te = hj_residual(u, path, c.h, c.lam), terminal_error(u, d, x_T, c.T)
            sc = score_samples(x_T.clamp(0, 1), classifier) if torch.isfinite(x_T).all() else None
        except RuntimeError:
            hj = te = float("nan")
            sc = None
        history.setdefault("hj_residual", []).append(hj)
        history.setdefault("terminal_error", []).append(te)
        history.setdefault("classifier_confident", []).append(sc.confident if sc else float("nan"))
        history.setdefault("classifier_classes", []).append(float(10 - len(sc.missing_classes)) if sc else float("nan"))
        print(f"it {it}: D {values[2]:.3g} KE {values[3]:.3g} HJ {hj:.3g} R_T {te:.3g} "
              f"confident {history['classifier_confident'][-1]:.2f} classes {history['classifier_classes'][-1]:.0f} "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        run_dir = state.get("run_dir")
        if run_dir is not None and it > 0 and it % snapshot_every == 0:
            snap = TrainResult(u, d, c, history, iterations_done=it + 1, wall_time=time.perf_counter() - start,
                               event_shape=tuple(state["x0"].shape[1:]))
            checkpoint.save(snap, run_dir, extra={"snapshot": True, "device": "cpu"})

    tr.build_networks, tr._log = build_networks, _log
    return state


def config_for(variant: str, setting: str, n_iters: int | None, seed: int) -> FlowConfig:
    base = dict(PRESETS["paper_mnist"]) if setting == "paper" else dict(CPU_BUDGET)
    if variant in ("unregularized", "w2"):
        base["n_iters"] = min(base["n_iters"], ABLATION_CAP)
    if n_iters is not None:
        base["n_iters"] = n_iters
    return FlowConfig(**{**base, "variant": variant, "seed": seed})


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
    p.add_argument("--setting", choices=["cpu", "paper"], default="cpu")
    p.add_argument("--n-iters", type=int, default=None, help="override the setting's iterations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (the shipped runs used 1)")
    p.add_argument("--data-root", default="data")
    p.add_argument("--out-root", default="checkpoints")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = mnist(args.data_root, train=True, n=N_DATA, seed=0)
    hook = _log_diagnostics_too()
    for variant in args.variants:
        config = config_for(variant, args.setting, args.n_iters, args.seed)
        run_dir = Path(args.out_root) / f"mnist_{variant}"
        hook["run_dir"] = run_dir
        start = time.perf_counter()
        result = train(config, data, progress=not args.quiet)
        extra = {"dataset": "mnist", "n_data": N_DATA, "setting": args.setting, "threads": args.threads,
                 "device": "cpu", "torch": str(torch.__version__), "wall_seconds": round(time.perf_counter() - start, 1)}
        checkpoint.save(result, run_dir, extra=extra)
        status = (f"stopped at iteration {result.diverged_at}: {result.divergence_reason}"
                  if result.diverged_at is not None else "finished")
        save_grid(result, run_dir / "samples.png",
                  f"{variant}: {result.iterations_done} iterations, h = {config.h:g}")
        print(json.dumps({"variant": variant, "iterations_done": result.iterations_done,
                          "wall_time": round(result.wall_time, 1), "status": status}), flush=True)


if __name__ == "__main__":
    main()
