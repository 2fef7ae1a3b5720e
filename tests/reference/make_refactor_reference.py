"""Record the samples and histories of fixed-seed runs, and samples of every shipped checkpoint, for the refactor check.

Run on the commit *before* a change that should only move code, then commit the file it writes:

    .venv/bin/python tests/reference/make_refactor_reference.py tests/reference/refactor_reference.pt

``tests/test_refactor_reference.py`` then asserts that the changed package gives the same numbers bit for bit.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from proxflow_edu import checkpoint
from proxflow_edu.config import FlowConfig
from proxflow_edu.data import sample_toy
from proxflow_edu.mnist.data import load_mnist

ROOT = Path(__file__).resolve().parents[2]

# FlowConfig()'s fields that the runs rely on, as they were when the reference was recorded (a later change of the
# defaults does not change what these runs are)
RECORDED_DEFAULTS = dict(velocity_change_weight=1.0, hj_weight=1.0, lr_potential=1e-3, lr_discriminator=5e-4,
                         disc_steps=5)
# name -> (toy config fields); every option path of the potential step appears in one of them
TOY_RUNS: dict[str, dict] = {name: {**RECORDED_DEFAULTS, **fields} for name, fields in {
    "w1w2": dict(velocity_change_weight=0.0, hj_weight=0.0),
    "unregularized": dict(variant="unregularized", velocity_change_weight=0.0, hj_weight=0.0),
    "defaults": {},
    "all_options": dict(terminal_weight=0.5, random_time_grid=True, ema_decay=0.9),
}.items()}
MNIST_RUNS: dict[str, str] = {"mnist": "cpu_mnist_paper", "mnist_defaults": "cpu_mnist"}


def history_tensors(history: dict[str, list[float]]) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in history.items() if k != "time"}


def record() -> dict:
    from proxflow_edu.train import train  # after torch.set_num_threads
    out: dict = {"commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                          cwd=ROOT).stdout.strip()}
    data = sample_toy("8gaussians", 2000, dim=12, seed=0)
    for name, fields in TOY_RUNS.items():
        r = train(FlowConfig(n_iters=60, log_every=10, batch_size=100, **fields), data, progress=False)
        out[f"toy_{name}_samples"] = r.sample(64, seed=3)
        out[f"toy_{name}_samples_fine"] = r.sample(64, seed=3, h=0.2 / 8)
        out[f"toy_{name}_history"] = history_tensors(r.history)
    x = load_mnist(ROOT / "data", train=True, n=400, seed=0)
    for name, preset in MNIST_RUNS.items():
        r = train(FlowConfig.preset(preset, n_iters=20, batch_size=16, log_every=5), x, progress=False)
        out[f"{name}_samples"] = r.sample(8, seed=3)
        out[f"{name}_history"] = history_tensors(r.history)
    for run in sorted(p.parent for p in (ROOT / "checkpoints").glob("mnist_*/model.pt")):
        result = checkpoint.load(run)
        out[f"checkpoint_{run.name}"] = result.sample(8, seed=3)
        out[f"checkpoint_{run.name}_fine"] = result.sample(4, seed=3, h=result.config.h / 8)
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    reference = record()
    torch.save(reference, sys.argv[1])
    print({k: (tuple(v.shape) if torch.is_tensor(v) else v if isinstance(v, str) else len(v))
           for k, v in reference.items()})
