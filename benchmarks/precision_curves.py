"""Does ``FlowConfig(precision="bf16")`` learn what fp32 learns? The first 300 MNIST iterations, 2 seeds each.

The recommended CPU run (``cpu_mnist``) is trained for ``--iters`` iterations in each precision and seed. Three
curves are compared: the DV estimate (40) and KE_h from the training history (every 10 iterations), and the HJ
residual R_HJ (43) of 100 fixed prior samples (every 50 iterations, a callback that does not touch the
training's random stream). Each curve is averaged over windows of 50 iterations; in each window the gap between
the precisions' seed means is compared with the seed-to-seed spread, the larger of |seed 0 - seed 1| in fp32 and
in bf16. The precisions agree on a curve when the gap is within the spread in every window.

    .venv/bin/python benchmarks/precision_curves.py [--iters 300] [--seeds 0 1] [--threads 2]

Writes ``benchmarks/precision_curves.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from proxflow_edu.config import FlowConfig
from proxflow_edu.data import sample_prior
from proxflow_edu.diagnostics import hj_residual
from proxflow_edu.flow import euler_flow
from proxflow_edu.mnist.data import load_mnist
from proxflow_edu.train import TrainResult, train

OUT = Path(__file__).with_name("precision_curves.json")
PRESET, N_DATA, N_DIAG, WINDOW, HJ_EVERY = "cpu_mnist", 6000, 100, 50, 50
CURVES = ("divergence", "kinetic_energy", "hj_residual")


def run(precision: str, seed: int, iters: int, data: torch.Tensor) -> dict[str, list[float]]:
    """The curves of one run: iteration -> value, for each of CURVES."""
    config = FlowConfig.preset(PRESET, precision=precision, seed=seed, n_iters=iters, log_every=10)
    x0 = sample_prior(config.prior, N_DIAG, (1, 28, 28), torch.Generator().manual_seed(12345))
    hj: dict[str, list[float]] = {"iteration": [], "value": []}

    def callback(it: int, result: TrainResult) -> None:
        if it % HJ_EVERY == 0 or it == iters - 1:
            path = euler_flow(result.potential, x0, config.T, config.h, config.lam, keep_path=True)
            hj["iteration"].append(float(it))
            hj["value"].append(hj_residual(result.potential, path.states, config.h, config.lam))

    result = train(config, data, progress=False, callback=callback)
    if result.diverged_at is not None:
        raise RuntimeError(f"{precision} seed {seed} diverged at {result.diverged_at}: {result.divergence_reason}")
    h = result.history
    return {"iteration": h["iteration"], "divergence": h["divergence"], "kinetic_energy": h["kinetic_energy"],
            "hj_iteration": hj["iteration"], "hj_residual": hj["value"], "wall_time_s": result.wall_time}


def window_means(iterations: list[float], values: list[float], iters: int) -> list[float]:
    """Mean of ``values`` over each window [k WINDOW, (k + 1) WINDOW) of iterations."""
    return [statistics.fmean(v for i, v in zip(iterations, values) if k <= i < k + WINDOW)
            for k in range(0, iters, WINDOW)]


def compare(runs: dict[str, dict[int, dict]], iters: int) -> dict[str, dict]:
    """Per curve and window: the gap between the precisions' seed means and the seed-to-seed spread."""
    out = {}
    for curve in CURVES:
        x_key = "hj_iteration" if curve == "hj_residual" else "iteration"
        w = {p: [window_means(r[x_key], r[curve], iters) for r in by_seed.values()] for p, by_seed in runs.items()}
        mean = {p: [statistics.fmean(col) for col in zip(*rows)] for p, rows in w.items()}
        spread = [max(max(r[j] for r in rows) - min(r[j] for r in rows) for rows in w.values())
                  for j in range(len(mean["fp32"]))]
        gap = [abs(a - b) for a, b in zip(mean["bf16"], mean["fp32"])]
        out[curve] = {"window_start": list(range(0, iters, WINDOW)), "fp32_mean": mean["fp32"],
                      "bf16_mean": mean["bf16"], "gap": gap, "seed_spread": spread,
                      "agree": all(g <= s for g, s in zip(gap, spread))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_mnist(n=N_DATA, seed=0)
    start = time.perf_counter()
    runs: dict[str, dict[int, dict]] = {"fp32": {}, "bf16": {}}
    for precision in runs:
        for seed in args.seeds:
            runs[precision][seed] = run(precision, seed, args.iters, data)
            print(f"{precision} seed {seed}: {runs[precision][seed]['wall_time_s']:.0f} s", flush=True)
    comparison = compare(runs, args.iters)
    for curve, c in comparison.items():
        print(f"{curve:>15}: agree={c['agree']}  gap/spread per window: "
              + " ".join(f"{g:.3g}/{s:.3g}" for g, s in zip(c["gap"], c["seed_spread"])))
    meta = {"command": "python benchmarks/precision_curves.py " + f"--iters {args.iters} --seeds "
            + " ".join(map(str, args.seeds)) + f" --threads {args.threads}", "preset": PRESET, "n_data": N_DATA,
            "window": WINDOW, "threads": args.threads, "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
            "wall_time_s": round(time.perf_counter() - start, 1)}
    args.out.write_text(json.dumps({"meta": meta, "comparison": comparison,
                               "runs": {p: {str(s): r for s, r in by.items()} for p, by in runs.items()}}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
