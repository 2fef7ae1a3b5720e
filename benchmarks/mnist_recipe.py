"""The rule that chooses the course's MNIST recipe (``cpu_mnist``): candidates at the CPU budget, 2 seeds each.

Every candidate is ``FlowConfig.preset("cpu_mnist_paper", **options, seed=seed)``: the paper's MNIST model, loss,
T, h, lambda, L and prior at batch 64 and 1,800 iterations (config.py says why), with the options of
:data:`CANDIDATES` on top. Each run trains into ``runs/mnist_recipe/<candidate>_seed<k>/`` (a snapshot every 100
iterations, so a killed run resumes), and is scored by ``benchmarks/mnist_eval.py``'s ``evaluate_run`` on 500
prior samples (seed 100) at h = 1 and h = 1/64 with the course classifier. Scores per run go to
``benchmarks/mnist_recipe.json`` as they come; a run already recorded is skipped, so the sweep continues where it
stopped. :data:`RULE` then picks the recipe.

    .venv/bin/python benchmarks/mnist_recipe.py [--candidates NAME ...] [--seeds 0 1] [--threads 1] [--workers 2]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from proxflow_edu import checkpoint
from proxflow_edu.config import FlowConfig
from proxflow_edu.mnist.classifier import load_classifier
from proxflow_edu.mnist.data import load_mnist
from proxflow_edu.train import train

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).with_name("mnist_recipe.json")
RUNS = ROOT / "runs" / "mnist_recipe"  # runs/<the JSON's stem>/<candidate>_seed<k>/
N_DATA, N_SCORE, SCORE_SEED, N_DIAG, H_FINE, SNAPSHOT_EVERY = 6000, 500, 100, 200, 1 / 64, 100
LAM = 0.05  # lambda of the paper's MNIST setting: the HJ residual is in units of U, grad U = lambda |v|
CANDIDATES: dict[str, dict[str, Any]] = {
    "paper": {},
    "vc1+hj1": dict(velocity_change_weight=1.0, hj_weight=1.0),  # the recipe chosen on toys before this rule
    "vc0.3": dict(velocity_change_weight=0.3),
    "vc0.3+rtg": dict(velocity_change_weight=0.3, random_time_grid=True),
    # the HJ penalty in velocity units: its residual is ~lambda^2 |v|^2, so weight 1 / lambda^2 = 400
    "vc1+hj_velocity_units": dict(velocity_change_weight=1.0, hj_weight=1.0 / LAM**2),
}
STEP_CHANGE_MAX, TOP_DIGIT_MAX = 0.15, 0.25
RULE = (f"among the candidates whose every seed has a step change (h = 1 vs 1/64, relative to the distance moved) "
        f"<= {STEP_CHANGE_MAX} and no digit above {TOP_DIGIT_MAX:.0%} of the samples at h = 1, the highest confident "
        f"fraction at h = 1 (mean over the seeds); when none qualifies, the smallest mean step change")


def _mnist_eval() -> Any:
    spec = importlib.util.spec_from_file_location("mnist_eval", Path(__file__).with_name("mnist_eval.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def summarise_run(scored: dict[str, Any]) -> dict[str, Any]:
    """The numbers the rule reads, from ``evaluate_run``'s answer."""
    h1, fine = scored["per_h"]["h=1"], scored["per_h"][f"h=1/{round(1 / H_FINE)}"]
    counts = h1["scores"]["class_counts"] if h1["scores"] else [0] * 10
    return {"confident_h1": h1["scores"]["confident"] if h1["scores"] else 0.0,
            "confident_h1_64": fine["scores"]["confident"] if fine["scores"] else 0.0,
            "frechet_h1": h1["scores"]["frechet"] if h1["scores"] else float("inf"),
            "top_digit": max(counts) / max(sum(counts), 1), "rarest_digit": min(counts) / max(sum(counts), 1),
            "step_change": scored["h_change"]["relative_to_distance_moved"],
            "ke_chord_h1": h1["energy_ratio"], "hj_residual_h1": h1["hj_residual"],
            "diverged_at": scored["diverged_at"], "train_s": scored["wall_time_s"]}


def run_one(job: tuple[str, int, int, int | None, Path]) -> dict[str, Any]:
    """Train (or resume) one candidate and seed into ``runs`` (a folder), then score it."""
    name, seed, threads, n_iters, runs = job
    torch.set_num_threads(threads)
    config = FlowConfig.preset("cpu_mnist_paper", **CANDIDATES[name], seed=seed)
    config = config if n_iters is None else config.replace(n_iters=n_iters)
    run_dir = runs / f"{name}_seed{seed}"
    resume = checkpoint.load(run_dir) if (run_dir / "model.pt").is_file() else None
    if resume is None or resume.iterations_done < config.n_iters:
        def snapshot(it: int, result: Any) -> None:
            if it > 0 and it % SNAPSHOT_EVERY == 0:
                checkpoint.save(result, run_dir, extra={"snapshot": True, "threads": threads, "device": "cpu"})

        result = train(config, load_mnist(train=True, n=N_DATA, seed=0), progress=False, callback=snapshot,
                       resume_from=resume)
        checkpoint.save(result, run_dir, extra={"threads": threads, "device": "cpu", "torch": str(torch.__version__)})
    evaluate = _mnist_eval()
    scored = evaluate.evaluate_run(run_dir, N_SCORE, N_DIAG, SCORE_SEED, H_FINE, load_classifier())
    return {"candidate": name, "seed": seed, "options": CANDIDATES[name], "threads": threads, **summarise_run(scored)}


def choose_recipe(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply :data:`RULE` to the records; the chosen name and the table behind it."""
    table = {}
    for name in sorted({r["candidate"] for r in records}):
        rows = [r for r in records if r["candidate"] == name]
        table[name] = {"seeds": sorted(r["seed"] for r in rows),
                       "qualifies": all(r["step_change"] <= STEP_CHANGE_MAX and r["top_digit"] <= TOP_DIGIT_MAX
                                        and r["diverged_at"] is None for r in rows),
                       **{k: round(statistics.fmean(r[k] for r in rows), 4)
                          for k in ("confident_h1", "confident_h1_64", "step_change", "top_digit", "frechet_h1")}}
    qualified = [n for n in table if table[n]["qualifies"]]
    chosen = (max(qualified, key=lambda n: table[n]["confident_h1"]) if qualified
              else min(table, key=lambda n: table[n]["step_change"]) if table else None)
    return {"rule": RULE, "chosen": chosen, "any_qualified": bool(qualified),
            "options": CANDIDATES.get(chosen) if chosen else None, "candidates": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel")
    parser.add_argument("--n-iters", type=int, default=None, help="override the budget (smoke runs)")
    parser.add_argument("--out", type=Path, default=OUT, help="the JSON; its runs go to runs/<its stem>/")
    args = parser.parse_args()
    out, runs = args.out, RUNS.parent / args.out.stem
    previous = json.loads(out.read_text()) if out.is_file() else {}
    records = {(r["candidate"], r["seed"]): r for r in previous.get("records", [])}
    jobs = [(n, s, args.threads, args.n_iters, runs) for s in args.seeds for n in args.candidates
            if (n, s) not in records]
    commands = [*previous.get("meta", {}).get("commands", []), " ".join(["python", *sys.argv])]
    start, wall_before = time.perf_counter(), previous.get("meta", {}).get("wall_time_s", 0)

    def save() -> None:
        rows = sorted(records.values(), key=lambda r: (r["candidate"], r["seed"]))
        meta = {"commands": commands, "preset": "cpu_mnist_paper", "n_iters": args.n_iters, "n_data": N_DATA,
                "n_scored": N_SCORE,
                "score_seed": SCORE_SEED, "h_fine": H_FINE, "cpu_count": os.cpu_count(), "torch": torch.__version__,
                "date": time.strftime("%Y-%m-%d"), "wall_time_s": round(time.perf_counter() - start + wall_before, 1)}
        out.write_text(json.dumps({"meta": meta, "candidates": CANDIDATES, "choice": choose_recipe(rows),
                                   "records": rows}, indent=1) + "\n")

    with ProcessPoolExecutor(args.workers) as pool:
        for rec in pool.map(run_one, jobs):
            records[(rec["candidate"], rec["seed"])] = rec
            print(f"{rec['candidate']:>22} seed {rec['seed']}: confident {rec['confident_h1']:.2f} (h=1) "
                  f"{rec['confident_h1_64']:.2f} (h=1/64), step change {rec['step_change']:.3f}, top digit "
                  f"{rec['top_digit']:.2f}, {rec['train_s']:.0f} s", flush=True)
            save()
    save()
    print(f"wrote {out}: chosen {json.loads(out.read_text())['choice']['chosen']}")


if __name__ == "__main__":
    main()
