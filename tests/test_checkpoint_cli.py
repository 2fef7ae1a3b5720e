"""Checkpoints (atomic, weights_only, corruption) and the command line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from proxflow_edu import checkpoint
from proxflow_edu.__main__ import main
from proxflow_edu.config import FlowConfig
from proxflow_edu.data import sample_toy
from proxflow_edu.train import train
from proxflow_edu.utils import atomic_write

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


def test_extra_facts_are_saved_as_plain_types(trained, tmp_path: Path) -> None:
    # torch.__version__ is a TorchVersion (a str subclass) that weights_only=True refuses to unpickle
    checkpoint.save(trained, tmp_path / "run", extra={"torch": torch.__version__, "sizes": (1, 2)})
    payload = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert payload["extra"] == {"torch": str(torch.__version__), "sizes": [1, 2]}
    assert type(payload["extra"]["torch"]) is str


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
        atomic_write(model, lambda f: (f.write(b"partial"), 1 / 0))
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


@pytest.mark.parametrize("args, message", [
    (["--n", "-3"], "--n must be an integer >= 1, got --n -3"),
    (["--n", "0"], "--n must be an integer >= 1"),
    (["--n", "2", "--h", "0"], "--h must be > 0"),
    (["--n", "2", "--h", "-0.1"], "--h must be > 0"),
    (["--n", "2", "--h", "0.3"], "--h 0.3 does not fit the run's horizon"),
    (["--n", "2", "--seed", "-1"], "--seed must be an integer >= 0"),
])
def test_cli_sample_validates_its_arguments(trained, args: list[str], message: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    checkpoint.save(trained, run)
    out = tmp_path / "s.pt"
    assert main(["sample", "--run", str(run), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {err.removeprefix('error: ')}" and message in err and "\n" not in err  # one line
    assert not out.exists()


def test_cli_out_must_be_creatable(trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    checkpoint.save(trained, run)
    (tmp_path / "a_file").write_text("x")
    assert main(["sample", "--run", str(run), "--n", "2", "--out", str(tmp_path / "a_file" / "s.pt")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["sample", "--run", str(run), "--n", "2", "--out", str(tmp_path)]) == 2
    assert "must be a file path" in capsys.readouterr().err
    assert main(["sample", "--run", str(run), "--n", "2", "--out", str(tmp_path / "new" / "dir" / "s.pt")]) == 0


def test_sampling_a_diverged_run_warns_and_works(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from proxflow_edu.train import DivergedRunWarning
    config = FlowConfig(variant="unregularized", n_iters=200, max_divergence=2.0, batch_size=64, lr_discriminator=5e-3)
    result = train(config, sample_toy("moons", 2000, dim=3, seed=0), progress=False)
    assert result.diverged_at is not None
    with pytest.warns(DivergedRunWarning, match=f"diverged at iteration {result.diverged_at}"):
        x = result.sample(8, seed=0)
    assert x.shape == (8, 3) and torch.isfinite(x).all()
    checkpoint.save(result, tmp_path / "run")
    assert main(["sample", "--run", str(tmp_path / "run"), "--n", "4", "--out", str(tmp_path / "s.pt")]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {tmp_path / 'run'} diverged at iteration {result.diverged_at} (")
    assert len(err.strip().splitlines()) == 1


class _Stop(Exception):
    pass


class _Killed(BaseException):
    """Stands for the process being killed mid-write (not an Exception, like KeyboardInterrupt)."""


def _killed_while_writing(obj: object, f) -> None:  # noqa: ANN001
    f.write(b"half a snapshot")
    raise _Killed


def test_resumed_run_equals_uninterrupted_run(tmp_path: Path) -> None:
    """Stop a run at iteration 15 (a snapshot saved by the callback), resume it: same weights and history, bit for
    bit."""
    data = sample_toy("8gaussians", 2000, dim=6, seed=0)
    config = FlowConfig(n_iters=30, log_every=5, batch_size=64)
    full = train(config, data, progress=False)

    def stop_at_15(it: int, result) -> None:  # noqa: ANN001
        if it == 15:
            checkpoint.save(result, tmp_path / "run")
            raise _Stop

    with pytest.raises(_Stop):
        train(config, data, progress=False, callback=stop_at_15)
    assert checkpoint.load(tmp_path / "run").iterations_done == 16
    resumed = train(config, data, progress=False, resume_from=checkpoint.load(tmp_path / "run"))
    for a, b in ((full.potential, resumed.potential), (full.discriminator, resumed.discriminator)):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert {k: v for k, v in full.history.items() if k != "time"} == \
        {k: v for k, v in resumed.history.items() if k != "time"}
    assert resumed.iterations_done == 30 and resumed.wall_time >= checkpoint.load(tmp_path / "run").wall_time
    with pytest.raises(ValueError, match="lam=0.1 \\(now 0.2\\)"):
        train(config.replace(lam=0.2), data, progress=False, resume_from=checkpoint.load(tmp_path / "run"))


def test_a_kill_during_the_snapshot_write_keeps_the_previous_snapshot(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    data = sample_toy("moons", 1000, dim=3, seed=0)
    config = FlowConfig(n_iters=12, log_every=5, batch_size=32)
    run = tmp_path / "run"

    def snapshot(it: int, result) -> None:  # noqa: ANN001
        if it == 5:
            checkpoint.save(result, run)
        if it == 10:  # the process dies while torch.save writes the next snapshot
            monkeypatch.setattr(torch, "save", _killed_while_writing)
            checkpoint.save(result, run)

    with pytest.raises(_Killed):
        train(config, data, progress=False, callback=snapshot)
    monkeypatch.undo()
    assert checkpoint.load(run).iterations_done == 6
    assert [p.name for p in run.iterdir() if p.name.endswith(".tmp")] == []
    resumed = train(config, data, progress=False, resume_from=checkpoint.load(run))
    assert resumed.iterations_done == 12
