"""The package gives bit-identical numbers to the commit recorded in tests/reference/ (on the CPU).

``tests/reference/make_refactor_reference.py`` recorded, on the commit before a restructuring (its hash is in the
file), the samples and histories of fixed-seed runs (toy runs in R^12 with the well-posedness options off, at their
defaults and all on, 60 iterations; MNIST ``cpu_mnist_paper`` and ``cpu_mnist``, 20 iterations at batch 16) and
samples of every shipped checkpoint at its training step and at 1/8 of it. A change that alters the arithmetic
of training or sampling fails here; one that only moves code does not.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).with_name("reference")))
from make_refactor_reference import MNIST_RUNS, TOY_RUNS, history_tensors  # noqa: E402

from proxflow_edu import checkpoint  # noqa: E402
from proxflow_edu.config import FlowConfig  # noqa: E402
from proxflow_edu.data import sample_toy  # noqa: E402
from proxflow_edu.mnist.data import load_mnist, mnist_is_ready  # noqa: E402
from proxflow_edu.train import DivergedRunWarning, train  # noqa: E402

REFERENCE = torch.load(Path(__file__).with_name("reference") / "refactor_reference.pt", weights_only=True)
ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = sorted(p.parent for p in (ROOT / "checkpoints").glob("mnist_*/model.pt"))


def _same_history(history: dict[str, list[float]], reference: dict[str, torch.Tensor]) -> None:
    ours = history_tensors(history)
    assert ours.keys() == reference.keys()
    for key, values in reference.items():
        assert torch.equal(ours[key], values), key


@pytest.mark.parametrize("name", TOY_RUNS)
def test_toy_run_is_bit_identical(name: str, one_thread: None) -> None:
    data = sample_toy("8gaussians", 2000, dim=12, seed=0)
    r = train(FlowConfig(n_iters=60, log_every=10, batch_size=100, **TOY_RUNS[name]), data, progress=False)
    assert torch.equal(r.sample(64, seed=3), REFERENCE[f"toy_{name}_samples"])
    assert torch.equal(r.sample(64, seed=3, h=0.2 / 8), REFERENCE[f"toy_{name}_samples_fine"])
    _same_history(r.history, REFERENCE[f"toy_{name}_history"])


@pytest.mark.parametrize("name", MNIST_RUNS)
def test_mnist_run_is_bit_identical(name: str, one_thread: None) -> None:
    if not mnist_is_ready(ROOT / "data"):
        pytest.skip("MNIST not prepared (run `make data`)")
    x = load_mnist(ROOT / "data", train=True, n=400, seed=0)
    r = train(FlowConfig.preset(MNIST_RUNS[name], n_iters=20, batch_size=16, log_every=5), x, progress=False)
    assert torch.equal(r.sample(8, seed=3), REFERENCE[f"{name}_samples"])
    _same_history(r.history, REFERENCE[f"{name}_history"])


def test_every_checkpoint_is_in_the_reference() -> None:
    assert {f"checkpoint_{run.name}" for run in CHECKPOINTS} == {
        k for k in REFERENCE if k.startswith("checkpoint_") and not k.endswith("_fine")}


@pytest.mark.parametrize("run", CHECKPOINTS, ids=lambda p: p.name)
def test_shipped_checkpoint_samples_bit_identically(run: Path, one_thread: None) -> None:
    result = checkpoint.load(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergedRunWarning)  # the ablation's stopped runs are sampled on purpose
        assert torch.equal(result.sample(8, seed=3), REFERENCE[f"checkpoint_{run.name}"])
        assert torch.equal(result.sample(4, seed=3, h=result.config.h / 8), REFERENCE[f"checkpoint_{run.name}_fine"])
