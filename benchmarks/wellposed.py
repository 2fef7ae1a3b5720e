"""Ablation of the well-posedness options of FlowConfig on the toys (8 gaussians in R^12, pinwheel in R^7).

Each option alone on top of the options-off baseline, and the chosen combination, for several seeds; every run
is ``FlowConfig.preset("lecture_toy_paper", **options, seed=s)`` (the lecture budget: 1,500 iterations, cosine
decay) and is scored on 1,000 fresh samples against held-out data:

* W2 / noise floor at N = 1, 2, 5, 320 Euler steps (``metrics.w2_distance``, ``metrics.noise_floor``);
* KE_h / chord energy at the training N and at N = 320 (1 = straight constant-speed paths);
* centred HJ residual R_HJ on the training grid (43), terminal error R_T (44);
* step change |x_T(h) - x_T(T/320)| relative to the distance moved (``diagnostics.discretization_gap``);
* mean distance from the data plane at N = 5 and N = 320 (``metrics.off_manifold_distance``);
* seconds per training iteration.

MNIST (``--mnist``): the shipped checkpoints of the options, trained at the CPU budget by ``make train-mnist``
(one seed each; about 20 min of one core per run), scored on ``--mnist-n`` prior samples pushed with h = 1 and
h = 1/64 from the same x_0: step change, KE_h / chord at both h, R_HJ (43) and centred on the h = 1 grid, R_T (44),
classifier scores at both h (``proxflow_edu.mnist.classifier``), s/iter of training. This part only evaluates (it
trains nothing) and is merged into the same JSON under "mnist".

Fixed seeds throughout (data, networks, minibatches, evaluation samples): a rerun gives the same numbers up to the
arithmetic of the machine. One torch thread per run; ``--workers`` runs several at once (processes).

    .venv/bin/python benchmarks/wellposed.py                      # the ablation -> benchmarks/wellposed.json
    .venv/bin/python benchmarks/wellposed.py --mnist                              # the MNIST checkpoints -> "mnist"
    .venv/bin/python benchmarks/wellposed.py --configs baseline vc=velocity_change_weight:0.1 --seeds 0 \\
        --out /tmp/trial.json                                     # a trial: name=field:value,field:value
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import torch

from proxflow_edu import diagnostics, metrics
from proxflow_edu.config import OFF, FlowConfig
from proxflow_edu.data import sample_toy
from proxflow_edu.flow import euler_flow
from proxflow_edu.train import train

DATASETS = {"8gaussians": 12, "pinwheel": 7}
N_TRAIN, N_EVAL = 20_000, 1_000
STEPS = (1, 2, 5, 320)
FINE = 320
# each option alone, at the weight chosen from single-seed trials on 8 gaussians in R^12 (velocity change 0.1, 0.3,
# 1, 3; HJ 1; terminal 1, 10; EMA 0.995; random grid alone and with velocity change 1), and the best combination
CONFIGS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "velocity_change": dict(velocity_change_weight=1.0),
    "hj": dict(hj_weight=1.0),
    "terminal": dict(terminal_weight=1.0),
    "random_time_grid": dict(random_time_grid=True),
    "ema": dict(ema_decay=0.995),
    "combination": dict(velocity_change_weight=1.0, hj_weight=1.0),
}
METRICS = ("w2_floor_N1", "w2_floor_N2", "w2_floor_N5", "w2_floor_N320", "ke_chord_Ntrain", "ke_chord_N320",
           "R_HJ_centred", "R_T", "step_change", "off_plane_N5", "off_plane_N320", "s_per_iter", "train_s")


def evaluate(result: Any, held_out: torch.Tensor, floor: float, seed: int) -> dict[str, Any]:
    """The scores of one trained run (see the module docstring)."""
    c = result.config
    potential = result.sampling_potential
    x0 = result.prior(N_EVAL, seed=10_000 + seed)
    out: dict[str, Any] = {}
    paths = {}
    for n in sorted({*STEPS, c.n_steps}):
        paths[n] = euler_flow(potential, x0, c.T, c.T / n, c.lam, keep_path=True)
    for n in STEPS:
        out[f"w2_floor_N{n}"] = metrics.w2_distance(paths[n].final, held_out) / floor
    for key, n in (("Ntrain", c.n_steps), ("N320", FINE)):
        states = paths[n].states
        out[f"ke_chord_{key}"] = float(diagnostics.path_kinetic_energy(states, c.T / n)
                                       / diagnostics.chord_kinetic_energy(states, c.T))
    out["R_HJ_centred"] = diagnostics.hj_residual(potential, paths[c.n_steps].states, c.h, c.lam, centered=True)
    out["R_T"] = diagnostics.terminal_error(potential, result.discriminator, paths[c.n_steps].final, c.T)
    out["step_change"] = diagnostics.discretization_gap(potential, x0, c.T, c.h, c.lam, h_fine=c.T / FINE).relative
    for n in (5, FINE):
        out[f"off_plane_N{n}"] = float(metrics.off_manifold_distance(paths[n].final).mean())
    # distance from the plane along the fine path at t = 0, T/5, ..., T (a straight path: linear in t)
    out["off_plane_N320_at_t"] = [float(metrics.off_manifold_distance(paths[FINE].states[k]).mean())
                                  for k in range(0, FINE + 1, FINE // 5)]
    out["s_per_iter"] = result.wall_time / max(result.iterations_done, 1)
    out["train_s"] = result.wall_time
    return out


def run_one(job: tuple[str, dict[str, Any], str, int, int | None, int]) -> dict[str, Any]:
    """Train and score one (config, options, dataset, seed, n_iters, dim); one torch thread."""
    torch.set_num_threads(1)
    name, options, dataset, seed, n_iters, dim = job
    data = sample_toy(dataset, N_TRAIN, dim=dim, seed=seed)
    held = sample_toy(dataset, 2 * N_EVAL, dim=dim, seed=5_000 + seed)
    floor = metrics.noise_floor(held, N_EVAL, seed=seed)
    config = FlowConfig.preset("lecture_toy_paper", **options, seed=seed)
    config = config if n_iters is None else config.replace(n_iters=n_iters)
    result = train(config, data, progress=False)
    scores = evaluate(result, held[:N_EVAL], floor, seed)
    return {"config": name, "options": options, "dataset": dataset, "dim": dim, "seed": seed,
            "n_iters": config.n_iters, "diverged_at": result.diverged_at, "noise_floor": floor,
            **{k: [round(x, 5) for x in v] if isinstance(v, list) else round(v, 5) for k, v in scores.items()}}


# --------------------------------------------------------------------------------------------------------------
# The rule that chooses FlowConfig() (--choose): every candidate on several manifolds, in two dimensions, for two
# seeds, each run given the same wall-clock budget (its iterations = budget / its measured seconds per iteration).
# --------------------------------------------------------------------------------------------------------------
CHOICE_MANIFOLDS = ("8gaussians", "pinwheel", "moons", "swissroll")  # the rule reads these
VALIDATION_MANIFOLDS = ("circles", "checkerboard")  # measured the same way, never read by the rule
CHOICE_DIMS = (7, 12)
CHOICE_BUDGET_S = 60.0  # seconds of one core per run: the lecture budget (<= 60 s)
# the candidates, each on top of the paper's algorithm (every option off); "paper" is the reference of the rule
CANDIDATES: dict[str, dict[str, Any]] = {
    "paper": {},
    "vc1+hj1": dict(velocity_change_weight=1.0, hj_weight=1.0),
    "vc0.1": dict(velocity_change_weight=0.1),
    "vc0.3": dict(velocity_change_weight=0.3),
    "vc0.3+lr2x": dict(velocity_change_weight=0.3, lr_potential=2e-3, lr_discriminator=1e-3),
    "vc1+lr2x": dict(velocity_change_weight=1.0, lr_potential=2e-3, lr_discriminator=1e-3),
    "paper+lr2x": dict(lr_potential=2e-3, lr_discriminator=1e-3),
    "vc0.3+K2": dict(velocity_change_weight=0.3, disc_steps=2),
    "vc0.3+ema": dict(velocity_change_weight=0.3, ema_decay=0.99),
    # added after seed 0: the two closest candidates combined, and a stronger velocity change at the higher rates
    "vc0.3+lr2x+K2": dict(velocity_change_weight=0.3, lr_potential=2e-3, lr_discriminator=1e-3, disc_steps=2),
    "vc0.5+lr2x": dict(velocity_change_weight=0.5, lr_potential=2e-3, lr_discriminator=1e-3),
}
RULE = ("among the candidates whose W2/floor at N = 5 (mean over the seeds) is no worse than the paper's algorithm's "
        "on every (manifold, dimension) of CHOICE_MANIFOLDS x CHOICE_DIMS, the straightest: the smallest worst-cell "
        "KE/chord at the training N; ties (within 0.005) go to the lower worst-cell W2/floor at N = 5")


RECIPE_RULE = ("the course's straight recipe (preset lecture_toy_straight), for when RULE keeps the paper's algorithm: "
               "among the candidates other than the reference whose W2/floor at N = 5, averaged over the cells of "
               "CHOICE_MANIFOLDS x CHOICE_DIMS (each cell the mean over the seeds), is no worse than the reference's "
               "average, the straightest: the smallest worst-cell KE/chord at the training N; ties (within 0.005) go "
               "to the lower average W2/floor at N = 5")


def seconds_per_iteration(options: dict[str, Any], iters: int = 40) -> float:
    """Measured s/iteration of a candidate (8 gaussians in R^12, one thread, after 5 warm-up iterations)."""
    torch.set_num_threads(1)
    data = sample_toy("8gaussians", N_TRAIN, dim=12, seed=0)
    train(FlowConfig.preset("lecture_toy_paper", **options, n_iters=5), data, progress=False)
    return train(FlowConfig.preset("lecture_toy_paper", **options, n_iters=iters), data,
                 progress=False).wall_time / iters


def budget_iterations(s_per_iter: float, budget_s: float) -> int:
    """Iterations that fit the budget, rounded to a multiple of 100 (so that timing noise rarely moves it)."""
    return max(100, int(round(budget_s / s_per_iter / 100.0)) * 100)


def cell_means(records: list[dict[str, Any]], metric: str) -> dict[tuple[str, str, int], float]:
    """(config, manifold, dim) -> the mean of ``metric`` over the seeds."""
    cells: dict[tuple[str, str, int], list[float]] = {}
    for r in records:
        cells.setdefault((r["config"], r["dataset"], r["dim"]), []).append(r[metric])
    return {k: statistics.fmean(v) for k, v in cells.items()}


def comparable(records: list[dict[str, Any]], reference: str) -> tuple[dict, dict, list, list[str]] | None:
    """What both rules read from the records of CHOICE_MANIFOLDS x CHOICE_DIMS: the cell means of W2/floor at N = 5
    and of KE/chord, the cells, and the candidates measured on every seed and cell the reference was (None while
    the reference is not measured on every cell)."""
    rows = [r for r in records if r["dataset"] in CHOICE_MANIFOLDS]
    cells = sorted({(r["dataset"], r["dim"]) for r in rows})
    seeds = {name: {(r["dataset"], r["dim"], r["seed"]) for r in rows if r["config"] == name} for name in
             {r["config"] for r in rows}}
    if {(d, k) for d, k, _ in seeds.get(reference, ())} != set(cells):
        return None
    names = sorted(n for n in seeds if seeds[n] >= seeds[reference])
    return cell_means(rows, "w2_floor_N5"), cell_means(rows, "ke_chord_Ntrain"), cells, names


def choose_default(records: list[dict[str, Any]], reference: str = "paper") -> dict[str, Any]:
    """Apply :data:`RULE` to the records of CHOICE_MANIFOLDS x CHOICE_DIMS; the chosen name and why."""
    compared = comparable(records, reference)
    if compared is None:
        return {"rule": RULE, "reference": reference, "chosen": None, "options": None, "candidates": {},
                "note": f"{reference} is not measured on every cell yet"}
    w2, ke, cells, names = compared
    table = {}
    for name in names:
        worse = [f"{d} R^{k}" for d, k in cells if w2[(name, d, k)] > w2[(reference, d, k)]]
        table[name] = {"qualifies": not worse, "worse_than_reference_on": worse,
                       "worst_w2_floor_N5": round(max(w2[(name, d, k)] for d, k in cells), 4),
                       "worst_ke_chord": round(max(ke[(name, d, k)] for d, k in cells), 4)}
    qualified = [n for n in names if table[n]["qualifies"]]
    straightest = min(table[n]["worst_ke_chord"] for n in qualified)
    ties = [n for n in qualified if table[n]["worst_ke_chord"] <= straightest + 0.005]
    chosen = min(ties, key=lambda n: table[n]["worst_w2_floor_N5"])
    return {"rule": RULE, "reference": reference, "chosen": chosen, "options": CANDIDATES.get(chosen),
            "candidates": table}


def choose_recipe(records: list[dict[str, Any]], reference: str = "paper") -> dict[str, Any]:
    """Apply :data:`RECIPE_RULE`: the straightest candidate that fits as well as the reference on average."""
    compared = comparable(records, reference)
    if compared is None:
        return {"rule": RECIPE_RULE, "reference": reference, "chosen": None, "options": None, "candidates": {}}
    w2, ke, cells, names = compared
    table = {n: {"mean_w2_floor_N5": round(statistics.fmean(w2[(n, d, k)] for d, k in cells), 4),
                 "worst_ke_chord": round(max(ke[(n, d, k)] for d, k in cells), 4)} for n in names}
    fits = [n for n in names if n != reference
            and table[n]["mean_w2_floor_N5"] <= table[reference]["mean_w2_floor_N5"]]
    for n in names:
        table[n]["fits"] = n in fits
    if not fits:
        return {"rule": RECIPE_RULE, "reference": reference, "chosen": None, "options": None, "candidates": table}
    straightest = min(table[n]["worst_ke_chord"] for n in fits)
    ties = [n for n in fits if table[n]["worst_ke_chord"] <= straightest + 0.005]
    chosen = min(ties, key=lambda n: table[n]["mean_w2_floor_N5"])
    return {"rule": RECIPE_RULE, "reference": reference, "chosen": chosen, "options": CANDIDATES.get(chosen),
            "candidates": table}


# MNIST: label -> checkpoint directory under checkpoints/ (make train-mnist); the paper's algorithm first
# (the paper's algorithm, each option alone, the recommended combination, the combination with one more option, and
# the combination from a second seed: the run-to-run spread of a GAN-type training that the differences must exceed)
MNIST_RUNS = {"baseline": "mnist_w1w2_paper", "velocity_change": "mnist_w1w2_velocity_change",
              "random_time_grid": "mnist_w1w2_random_time_grid",
              "velocity_change 0.3 + random_time_grid": "mnist_w1w2_velocity_change0.3_random_time_grid",
              "combination": "mnist_w1w2",
              "combination, seed 1": "mnist_w1w2_seed1",
              "combination + random_time_grid": "mnist_w1w2_plus_random_time_grid",
              "combination + smooth_potential": "mnist_w1w2_plus_smooth_potential"}
MNIST_FINE = 64


def evaluate_mnist(run_dir: Path, n: int, seed: int) -> dict[str, Any]:
    """The MNIST scores of one shipped checkpoint (see the module docstring)."""
    from proxflow_edu import checkpoint
    from proxflow_edu.mnist.classifier import load_classifier, score_samples

    r = checkpoint.load(run_dir)
    c = r.config
    extra = json.loads((run_dir / "history.json").read_text()).get("extra", {})
    classifier = load_classifier()
    x0 = r.prior(n, seed=seed)
    out: dict[str, Any] = {"run": run_dir.name, "options": {k: getattr(c, k) for k in OFF
                                                            if getattr(c, k) != OFF[k]},
                           "iterations": r.iterations_done, "train_s": round(r.wall_time, 1),
                           "s_per_iter": round(r.wall_time / max(r.iterations_done, 1), 4),
                           "device": extra.get("device", "cpu"), "threads": extra.get("threads"),
                           "diverged_at": r.diverged_at}
    finals = {}
    with torch.no_grad():
        for key, h in (("h1", c.h), (f"h1_{MNIST_FINE}", c.h / MNIST_FINE)):
            path = euler_flow(r.sampling_potential, x0, c.T, h, c.lam, keep_path=True)
            finals[key] = path.final
            out[f"ke_chord_{key}"] = round(float(diagnostics.path_kinetic_energy(path.states, h)
                                                 / diagnostics.chord_kinetic_energy(path.states, c.T)), 5)
            scores = score_samples(path.final.clamp(0, 1), classifier)
            out[f"confident_{key}"] = round(scores.confident, 4)
            out[f"frechet_{key}"] = round(scores.frechet, 2)
            out[f"top_digit_share_{key}"] = round(max(scores.class_counts) / scores.n, 4)
            out[f"class_counts_{key}"] = scores.class_counts
            if key == "h1":
                out["R_HJ"] = round(diagnostics.hj_residual(r.sampling_potential, path.states, h, c.lam), 5)
                out["R_HJ_centred"] = round(diagnostics.hj_residual(r.sampling_potential, path.states, h, c.lam,
                                                                    centered=True), 5)
                r_t = diagnostics.terminal_error(r.sampling_potential, r.discriminator, path.final, c.T)
                out["R_T"] = round(r_t, 5)
    moved = (finals[f"h1_{MNIST_FINE}"] - x0).flatten(1).norm(dim=1).mean()
    out["step_change"] = round(float((finals["h1"] - finals[f"h1_{MNIST_FINE}"]).flatten(1).norm(dim=1).mean()
                                     / moved), 5)
    return out


def run_mnist(labels: list[str], n: int, seed: int, root: Path) -> dict[str, Any]:
    torch.set_num_threads(1)
    start = time.perf_counter()
    results = {}
    for label in labels:
        results[label] = evaluate_mnist(root / MNIST_RUNS[label], n, seed)
        print(f"mnist {label:>18}: " + " ".join(f"{k}={v}" for k, v in results[label].items()
                                                  if not k.startswith("class_counts")), flush=True)
    meta = {"command": " ".join(["python", *sys.argv]), "eval_device": "cpu", "eval_threads": 1, "n": n,
            "prior_seed": seed, "h": [1.0, 1.0 / MNIST_FINE], "eval_wall_time_s": round(time.perf_counter() - start, 1),
            "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
            "note": "one training seed per option (a run takes a quarter to half an hour of one core here), and the "
                    "combination from a second seed for the run-to-run spread; train_s and s_per_iter are those of "
                    "the checkpoint's training, on a shared 2-core CPU (often two runs at once)"}
    return {"meta": meta, "runs": {label: MNIST_RUNS[label] for label in labels}, "results": results}


def summarise(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """summary[config][dataset][metric] = {mean, min, max} over the seeds (max - min is the spread)."""
    summary: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for r in records:
        summary.setdefault(r["config"], {}).setdefault(r["dataset"], {})
    for name, per_data in summary.items():
        for dataset in per_data:
            rows = [r for r in records if r["config"] == name and r["dataset"] == dataset]
            per_data[dataset] = {m: {"mean": round(statistics.fmean(r[m] for r in rows), 5),
                                     "min": min(r[m] for r in rows), "max": max(r[m] for r in rows)}
                                 for m in METRICS}
    return summary


def parse_config(text: str) -> tuple[str, dict[str, Any]]:
    """``name`` (one of :data:`CONFIGS`) or ``name=field:value,field:value`` (values parsed as JSON)."""
    if "=" not in text:
        return text, CONFIGS[text]
    name, spec = text.split("=", 1)
    options = {}
    for item in filter(None, spec.split(",")):
        field, value = item.split(":", 1)
        options[field] = json.loads(value)
    FlowConfig(**options)  # validate before any run starts
    return name, options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--n-iters", type=int, default=None, help="override the lecture budget (smoke runs)")
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    parser.add_argument("--mnist", nargs="*", default=None, choices=list(MNIST_RUNS), metavar="RUN",
                        help=f"evaluate the shipped MNIST checkpoints instead (default: all of {list(MNIST_RUNS)})")
    parser.add_argument("--mnist-n", type=int, default=500, help="prior samples per MNIST checkpoint")
    parser.add_argument("--checkpoints", default=str(Path(__file__).resolve().parents[1] / "checkpoints"))
    parser.add_argument("--choose", nargs="*", default=None, choices=list(CANDIDATES), metavar="CANDIDATE",
                        help="run the sweep that chooses FlowConfig() (default: every candidate) and apply RULE")
    parser.add_argument("--manifolds", nargs="+", default=[*CHOICE_MANIFOLDS, *VALIDATION_MANIFOLDS])
    parser.add_argument("--budget-s", type=float, default=CHOICE_BUDGET_S, help="seconds of one core per run")
    args = parser.parse_args()
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    if args.choose is not None:
        def save(defaults: dict[str, Any]) -> None:
            previous["defaults"] = defaults
            out.write_text(json.dumps(previous, indent=1) + "\n")

        save(run_choice(args, previous.get("defaults", {}), save))
        print(f"wrote the 'defaults' part of {out}: chosen {previous['defaults']['choice']['chosen']}")
        return
    if args.mnist is not None:
        previous["mnist"] = run_mnist(args.mnist or list(MNIST_RUNS), args.mnist_n, 100, Path(args.checkpoints))
        out.write_text(json.dumps(previous, indent=1) + "\n")
        print(f"wrote the MNIST part of {out}")
        return
    configs = dict(parse_config(c) for c in args.configs)
    jobs = [(name, opts, d, s, args.n_iters, DATASETS[d])
            for d in args.datasets for s in args.seeds for name, opts in configs.items()]
    start = time.perf_counter()
    records = []
    with ProcessPoolExecutor(args.workers) if args.workers > 1 else _Serial() as pool:
        for rec in pool.map(run_one, jobs):
            records.append(rec)
            print(f"{rec['config']:>18} {rec['dataset']:>10} seed {rec['seed']}: "
                  + " ".join(f"{m}={rec[m]:.3g}" for m in METRICS), flush=True)
    wall = time.perf_counter() - start
    meta = {"command": " ".join(["python", *sys.argv]), "device": "cpu", "torch_threads_per_run": 1,
            "workers": args.workers, "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor() or "unknown", "wall_time_s": round(wall, 1),
            "date": time.strftime("%Y-%m-%d"), "n_iters": args.n_iters or FlowConfig().n_iters, "n_train": N_TRAIN,
            "n_eval": N_EVAL, "steps": list(STEPS),
            "base": {k: v for k, v in FlowConfig.preset("lecture_toy_paper").to_dict().items()
                     if k in ("T", "h", "lam", "L", "gp_weight", "n_iters", "batch_size", "lr_schedule")},
            "note": "every config is FlowConfig.preset('lecture_toy_paper', **options, seed=seed); spread = max - "
                    "min over seeds; load of the shared machine makes s_per_iter noisy"}
    mnist = {"mnist": previous["mnist"]} if "mnist" in previous else {}  # the MNIST part is kept
    out.write_text(json.dumps({"meta": meta, "configs": configs, "summary": summarise(records),
                               "records": records, **mnist}, indent=1) + "\n")
    print(f"wrote {args.out} ({wall:.0f} s)")


def run_choice(args: argparse.Namespace, previous: dict[str, Any],
               save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The sweep of :data:`CANDIDATES` (merged into the previous records of the same budget) and the rule's choice.

    Runs already recorded are skipped, and ``save`` gets the merged part after every run, so a killed sweep
    continues where it stopped when started again with the same arguments.
    """
    names = args.choose or list(CANDIDATES)
    same_budget = previous.get("meta", {}).get("budget_s") == args.budget_s
    calibration = previous.get("calibration", {}) if same_budget else {}
    for name in names:  # measured one at a time, before the pool starts, on an otherwise idle core
        if name not in calibration:
            calibration[name] = round(seconds_per_iteration(CANDIDATES[name]), 5)
            print(f"{name:>12}: {calibration[name]:.4f} s/iteration", flush=True)
    iterations = {name: budget_iterations(t, args.budget_s) for name, t in calibration.items()}
    key = lambda r: (r["config"], r["dataset"], r["dim"], r["seed"])  # noqa: E731
    records = {key(r): r for r in (previous.get("records", []) if same_budget else [])}
    jobs = [(name, CANDIDATES[name], d, s, args.n_iters or iterations[name], dim)
            for d in args.manifolds for dim in CHOICE_DIMS for s in args.seeds for name in names
            if (name, d, dim, s) not in records]
    earlier = previous.get("meta", {}) if same_budget else {}
    commands = [*earlier.get("commands", [earlier["command"]] if "command" in earlier else []),
                " ".join(["python", *sys.argv])]  # every invocation whose records were merged, in order
    meta = {"commands": commands, "budget_s": args.budget_s, "device": "cpu",
            "torch_threads_per_run": 1, "workers": args.workers, "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
            "choice_manifolds": list(CHOICE_MANIFOLDS), "validation_manifolds": list(VALIDATION_MANIFOLDS),
            "dims": list(CHOICE_DIMS), "n_train": N_TRAIN, "n_eval": N_EVAL,
            "note": "every run is FlowConfig.preset('lecture_toy_paper', **options, seed=seed, "
                    "n_iters=iterations[config]); iterations = "
                    "budget_s / calibration (s/iteration, measured once per candidate), rounded to 100"}
    start, wall_before = time.perf_counter(), earlier.get("wall_time_s", 0)

    def merged() -> dict[str, Any]:
        rows = sorted(records.values(), key=key)
        means = {m: cell_means(rows, m) for m in METRICS}
        summary = {f"{c} | {d} R^{k}": {m: round(means[m][(c, d, k)], 5) for m in METRICS}
                   for c, d, k in sorted(means[METRICS[0]])}
        wall = round(time.perf_counter() - start + wall_before, 1)
        return {"meta": {**meta, "wall_time_s": wall}, "calibration": calibration, "iterations": iterations,
                "candidates": CANDIDATES, "choice": choose_default(rows), "recipe": choose_recipe(rows),
                "summary": summary, "records": rows}

    with ProcessPoolExecutor(args.workers) if args.workers > 1 else _Serial() as pool:
        for rec in pool.map(run_one, jobs):
            records[key(rec)] = rec
            print(f"{rec['config']:>12} {rec['dataset']:>12} R^{rec['dim']:<2} seed {rec['seed']} "
                  f"({rec['n_iters']} it): " + " ".join(f"{m}={rec[m]:.3g}" for m in METRICS), flush=True)
            save(merged())
    return merged()


class _Serial:
    def __enter__(self) -> "_Serial":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn: Any, jobs: list[Any]) -> Any:
        return map(fn, jobs)


if __name__ == "__main__":
    main()
