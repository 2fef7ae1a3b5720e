"""FlowConfig validation, training of the four variants, divergence handling, seeds."""
from __future__ import annotations

import math

import pytest
import torch

from proxflow_edu.config import PRESETS, VARIANTS, FlowConfig
from proxflow_edu.data import sample_toy
from proxflow_edu.train import train

DATA12 = sample_toy("8gaussians", 4000, dim=12, seed=0)


@pytest.mark.parametrize("field, value", [
    ("lam", -1.0), ("lam", 0.0), ("h", 0.0), ("h", -0.2), ("T", 0.0), ("T", -1.0), ("L", 0.0), ("L", -1.0),
    ("gp_weight", -0.1), ("batch_size", 0), ("n_iters", -1), ("disc_steps", 0), ("lr_potential", 0.0),
    ("lr_discriminator", -1e-3), ("lam", math.nan), ("T", math.inf), ("L", math.nan), ("variant", "w3"),
    ("prior", "cauchy"), ("arch", "resnet"), ("lr_schedule", "step"), ("batch_size", 2.5), ("device", "tpu"),
    ("adam_betas", (0.5, 1.0)), ("max_divergence", -1.0), ("potential_width", 0), ("discriminator_depth", 1.5),
    ("precision", "fp16"), ("precision", "bfloat16"),
])
def test_invalid_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        FlowConfig(**{field: value})


def test_T_must_be_a_multiple_of_h() -> None:
    with pytest.raises(ValueError, match="T must be an integer multiple of h"):
        FlowConfig(T=1.0, h=0.3)
    assert FlowConfig(T=5.0, h=1 / 64).n_steps == 320


def test_presets_and_round_trip() -> None:
    for name in PRESETS:
        c = FlowConfig.preset(name)
        assert FlowConfig.from_dict(c.to_dict()) == c
    assert FlowConfig.preset("paper_mnist").lam == 0.05
    with pytest.raises(ValueError, match="preset"):
        FlowConfig.preset("nope")
    with pytest.raises(ValueError, match="unknown FlowConfig fields"):
        FlowConfig.from_dict({"lamda": 1.0})


@pytest.mark.parametrize("data, message", [
    (torch.zeros(10, 2, dtype=torch.int64), "dtype"), (torch.zeros(10), "shape"), (torch.zeros(10, 2, 2), "shape"),
    (torch.tensor([[0.0, math.nan]] * 4), "NaN"), (torch.zeros(0, 2), "at least one"), ([[0.0, 1.0]], "Tensor"),
])
def test_train_rejects_bad_data(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        train(FlowConfig(n_iters=1), data, progress=False)  # type: ignore[arg-type]


def test_train_rejects_image_shape_for_cnn() -> None:
    with pytest.raises(ValueError, match="28, 28"):
        train(FlowConfig(arch="mnist_cnn", n_iters=1), torch.zeros(4, 784), progress=False)


@pytest.mark.parametrize("variant", VARIANTS)
def test_fifty_iterations_of_each_variant(variant: str) -> None:
    config = FlowConfig(variant=variant, n_iters=50, log_every=10, batch_size=100)
    result = train(config, DATA12, progress=False)
    assert result.diverged_at is None and result.iterations_done == 50
    h = result.history
    assert h["iteration"] == [0, 10, 20, 30, 40, 49]
    assert all(math.isfinite(v) for key in h for v in h[key])
    gp = h["gradient_penalty"]
    assert max(gp) > 0 if config.uses_w1 else max(gp) == 0
    x = result.sample(64, seed=1)
    assert x.shape == (64, 12) and torch.isfinite(x).all() and not x.requires_grad
    assert torch.equal(x, result.sample(64, seed=1))
    fine = result.flow(64, seed=1, h=1 / 64, keep_path=True)
    assert fine.states.shape == (65, 64, 12) and torch.equal(fine.final, result.sample(64, seed=1, h=1 / 64))


def test_same_seed_same_numbers() -> None:
    config = FlowConfig(n_iters=15, log_every=5, batch_size=64)
    a, b = train(config, DATA12, progress=False), train(config, DATA12, progress=False)
    for key in ("loss_discriminator", "loss_potential", "divergence", "kinetic_energy"):
        assert a.history[key] == b.history[key]
    c = train(config.replace(seed=1), DATA12, progress=False)
    assert c.history["loss_potential"] != a.history["loss_potential"]


def test_bf16_trains_the_float32_weights_reproducibly_and_saves_its_precision(tmp_path) -> None:
    """precision="bf16" changes the arithmetic (not the fp32 numbers), keeps float32 weights and optimiser state,
    gives the same numbers for the same seed, and is stored with the run."""
    from proxflow_edu import checkpoint

    config = FlowConfig(n_iters=12, log_every=4, batch_size=64)
    fp32 = train(config, DATA12, progress=False)
    bf16 = train(config.replace(precision="bf16"), DATA12, progress=False)
    again = train(config.replace(precision="bf16"), DATA12, progress=False)
    assert bf16.history["divergence"] == again.history["divergence"]
    assert bf16.history["divergence"] != fp32.history["divergence"]
    assert all(math.isfinite(v) for key in bf16.history for v in bf16.history[key])
    assert all(p.dtype == torch.float32 for p in [*bf16.potential.parameters(), *bf16.discriminator.parameters()])
    assert type(bf16.potential).__name__ == "MLPPotential"  # the result holds the plain network, not the view
    loaded = checkpoint.load(checkpoint.save(bf16, tmp_path / "run"))
    assert loaded.config.precision == "bf16"
    assert torch.equal(loaded.sample(16, seed=2), bf16.sample(16, seed=2))


def test_divergence_is_reported_not_raised() -> None:
    """Unregularized with a huge learning rate blows up; training stops cleanly with finite weights."""
    config = FlowConfig(variant="unregularized", n_iters=300, lr_potential=1.0, lr_discriminator=1.0,
                        lr_schedule="constant", batch_size=64)
    result = train(config, DATA12, progress=False)
    assert result.diverged_at is not None and result.diverged_at < 300
    assert result.iterations_done == result.diverged_at
    assert result.divergence_reason and "iteration" not in result.divergence_reason  # diverged_at holds it
    assert ("non-finite" in result.divergence_reason) or ("blew up" in result.divergence_reason)
    for net in (result.potential, result.discriminator):
        assert all(torch.isfinite(p).all() for p in net.parameters())


def test_blow_up_without_nan_is_detected() -> None:
    config = FlowConfig(variant="unregularized", n_iters=200, max_divergence=2.0, batch_size=64,
                        lr_discriminator=5e-3)
    result = train(config, DATA12, progress=False)
    assert result.diverged_at is not None
    assert "max_divergence=2" in result.divergence_reason


def test_callback_sees_every_history_entry_and_may_add_keys() -> None:
    calls = []

    def callback(it: int, result) -> None:
        calls.append((it, result.iterations_done))
        result.history.setdefault("off_plane", []).append(float(it))

    result = train(FlowConfig(n_iters=12, log_every=5, batch_size=32), DATA12, progress=False, callback=callback)
    assert calls == [(0, 1), (5, 6), (10, 11), (11, 12)]
    assert result.history["off_plane"] == result.history["iteration"]


def test_network_sizes_matter_for_every_architecture() -> None:
    """The width/depth fields size the toy MLPs and the CNN heads alike; None takes the paper's sizes."""
    from proxflow_edu.nets import count_parameters
    from proxflow_edu.train import build_networks
    u, phi = build_networks(FlowConfig(), (12,))
    assert [m.out_features for m in u.net.layers] == [48] * 5 + [1] and len(phi.net.layers) == 4
    u, phi = build_networks(FlowConfig(potential_width=16, discriminator_depth=1), (12,))
    assert u.net.layers[0].out_features == 16 and len(phi.net.layers) == 2
    cnn = FlowConfig.preset("paper_mnist")
    u, phi = build_networks(cnn, (1, 28, 28))
    assert count_parameters(u) == 731_081 and count_parameters(phi) == 235_977  # method.md §7.1
    u, phi = build_networks(cnn.replace(potential_width=64, discriminator_depth=2), (1, 28, 28))
    assert u.head.layers[0].out_features == 64 and len(phi.head.layers) == 3


def test_the_module_is_not_shadowed() -> None:
    import importlib
    import pkgutil
    import types

    import proxflow_edu
    import proxflow_edu.train as T
    assert isinstance(T, types.ModuleType) and callable(T.train)
    for info in pkgutil.walk_packages(proxflow_edu.__path__, "proxflow_edu."):
        module = importlib.import_module(info.name)
        parent, _, name = info.name.rpartition(".")
        assert getattr(importlib.import_module(parent), name) is module, f"{info.name} is shadowed in {parent}"


def test_fit_discriminator_reads_the_config() -> None:
    """fit_discriminator is discriminator_step in a loop: Adam with the config's rate and betas, batch M."""
    from proxflow_edu.course.discriminator import fit_discriminator
    from proxflow_edu.nets import MLPDiscriminator
    p, q = DATA12[:500], DATA12[500:1000] + 1.0
    estimates = {}
    for betas in ((0.5, 0.9), (0.0, 0.99)):
        torch.manual_seed(0)
        config = FlowConfig(variant="w1", lr_discriminator=1e-2, adam_betas=betas, batch_size=50)
        estimates[betas] = fit_discriminator(MLPDiscriminator(12), p, q, 20, config, torch.Generator().manual_seed(0))
    assert len(estimates[(0.5, 0.9)]) == 20 and estimates[(0.5, 0.9)] != estimates[(0.0, 0.99)]
