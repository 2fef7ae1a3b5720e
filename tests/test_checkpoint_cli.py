"""Checkpoints (atomic, weights_only, corruption) and the command line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from proxflow_edu import checkpoint
from proxflow_edu.__main__ import main
from proxflow_edu.data import sample_toy
from proxflow_edu.train import FlowConfig, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained():
    return train(FlowConfig(n_iters=5, batch_size=32), sample_toy("moons", 500, dim=3, seed=0), progress=False)


def test_round_trip(trained, tmp_path: Path) -> None:
    checkpoint.save(trained, tmp_path / "run", extra={"dataset": "moons"})
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["history.json", "model.pt"]  # no temp files left
    loaded = checkpoint.load(tmp_path / "run")
    assert loaded.config == trained.config and loaded.history == trained.history
    assert torch.equal(loaded.sample(16, seed=3), trained.sample(16, seed=3))
    # plain tensors and primitives only: loadable with weights_only=True
    payload = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert payload["extra"] == {"dataset": "moons"}


def test_corrupted_and_missing_checkpoints_give_clear_errors(trained, tmp_path: Path) -> None:
    model = checkpoint.save(trained, tmp_path / "run")
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="corrupted or truncated"):
        checkpoint.load(tmp_path / "run")
    with pytest.raises(checkpoint.CheckpointError, match="not found"):
        checkpoint.load(tmp_path / "nothing")
    torch.save({"hello": torch.zeros(2)}, model)
    with pytest.raises(checkpoint.CheckpointError, match="not a proxflow_edu checkpoint"):
        checkpoint.load(model)


def test_failed_write_leaves_old_checkpoint(trained, tmp_path: Path) -> None:
    model = checkpoint.save(trained, tmp_path / "run")
    before = model.read_bytes()
    with pytest.raises(ZeroDivisionError):
        checkpoint.atomic_write(model, lambda f: (f.write(b"partial"), 1 / 0))
    assert model.read_bytes() == before
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")] == []


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "proxflow_edu", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_cli_train_then_sample(tmp_path: Path) -> None:
    run = tmp_path / "run"
    r = _cli("train", "--dataset", "8gaussians", "--dim", "4", "--n-iters", "5", "--batch-size", "32",
             "--n-data", "400", "--out", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    r = _cli("sample", "--run", str(run), "--n", "50", "--h", "0.2", "--seed", "0", "--out", str(tmp_path / "s5.pt"))
    assert r.returncode == 0, r.stderr
    for h, n_states in (("0.2", 5), ("0.015625", 64)):
        out = tmp_path / f"in_process{n_states}.pt"
        assert main(["sample", "--run", str(run), "--n", "50", "--h", h, "--seed", "0", "--out", str(out)]) == 0
        x = torch.load(out, weights_only=True)
        assert x.shape == (50, 4) and x.dtype == torch.float32 and torch.isfinite(x).all()
    # same seed, same h: the same samples, from a separate process too
    assert torch.equal(torch.load(tmp_path / "in_process5.pt", weights_only=True),
                       torch.load(tmp_path / "s5.pt", weights_only=True))
    assert not torch.equal(torch.load(tmp_path / "in_process5.pt", weights_only=True),
                           torch.load(tmp_path / "in_process64.pt", weights_only=True))


@pytest.mark.parametrize("args, message", [
    (["train", "--dataset", "moons", "--lam", "-1"], "lam must be > 0"),
    (["train", "--dataset", "moons", "--h", "0.3"], "multiple of h"),
    (["sample", "--run", "missing-run", "--n", "3"], "not found"),
])
def test_cli_reports_bad_input(args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
