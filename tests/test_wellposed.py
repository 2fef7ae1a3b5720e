"""The well-posedness options of FlowConfig: closed forms of the extra loss terms, validation, their effect on
training, the weight average (EMA) and benchmarks/wellposed.json."""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
import torch
from analytic import HopfLaxPotential, QuadraticDiscriminator, QuadraticPotential

from proxflow_edu import checkpoint, diagnostics
from proxflow_edu.config import OFF, PRESETS, FlowConfig
from proxflow_edu.data import sample_toy
from proxflow_edu.flow import euler_flow
from proxflow_edu.nets import MLPPotential, space_time_gradient
from proxflow_edu.objectives import kinetic_energy
from proxflow_edu.train import _ema_update, train
from proxflow_edu.wellposed import hj_penalty, jittered_times, path_point, terminal_gap, velocity_change

DATA12 = sample_toy("8gaussians", 2000, dim=12, seed=0)
BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "wellposed.json"
A, LAM, T = 0.7, 0.3, 1.0


def _x0(n: int = 64, d: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- velocity change --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("h", [1.0, 0.25, 1 / 64])
def test_velocity_change_vanishes_on_hopf_lax_paths(h: float) -> None:
    """The correct-sign Hopf-Lax potential solves (20): its characteristics are straight at constant speed."""
    path = euler_flow(HopfLaxPotential(A, LAM, T), _x0(), T, h, LAM, keep_path=True)
    assert float(velocity_change(path.velocities)) < 1e-20
    wrong = euler_flow(HopfLaxPotential(A, LAM, T, sign=-1.0), _x0(), T, 0.25, LAM, keep_path=True)
    assert float(velocity_change(wrong.velocities)) > 1e-3  # the wrong-sign equation bends the paths


def test_velocity_change_vanishes_on_a_jittered_grid() -> None:
    times = jittered_times(FlowConfig(h=0.125), torch.Generator().manual_seed(1))
    path = euler_flow(HopfLaxPotential(A, LAM, T), _x0(), T, 0.125, LAM, keep_path=True, times=times)
    assert float(velocity_change(path.velocities)) < 1e-20


@pytest.mark.parametrize("c, h", [(0.1, 0.2), (0.05, 0.1), (0.2, 0.5)])
def test_velocity_change_of_a_quadratic_potential(c: float, h: float) -> None:
    """U = c|x|^2/2: v_n = -(c/lam) q^n x_0 with q = 1 - hc/lam, so v_{n+1} - v_n = (hc/lam) (c/lam) q^n x_0."""
    lam, x0 = 0.3, _x0()
    N = round(T / h)
    path = euler_flow(QuadraticPotential(c), x0, T, h, lam, keep_path=True)
    q, k = 1 - h * c / lam, c / lam
    expected = 0.5 * (h * k * k) ** 2 * sum(q ** (2 * n) for n in range(N - 1)) * x0.pow(2).sum(1).mean()
    assert torch.allclose(velocity_change(path.velocities), expected, rtol=1e-10)


def test_velocity_change_of_one_step_is_zero() -> None:
    path = euler_flow(QuadraticPotential(1.0), _x0(), T, T, LAM, keep_path=True)
    assert float(velocity_change(path.velocities)) == 0.0


# --- HJ penalty ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("t", [0.0, 0.37, 0.9])
def test_hj_penalty_of_hopf_lax_potentials(t: float) -> None:
    x = _x0(200)
    assert float(hj_penalty(HopfLaxPotential(A, LAM, T), x, t, LAM, T, create_graph=False)) < 1e-24
    wrong = HopfLaxPotential(A, LAM, T, sign=-1.0)
    r = diagnostics.hj_residual_pointwise(wrong, x, t, LAM)  # autograd, the diagnostics' own path
    penalty = hj_penalty(wrong, x, t, LAM, T, create_graph=False)
    assert float(penalty) > 1e-3
    assert torch.allclose(penalty, T * (r - r.mean()).pow(2).mean(), rtol=1e-10)


def test_hj_penalty_ignores_a_time_only_gauge() -> None:
    """U + c(t) gives the same flow; the centred penalty does not see it."""
    base = HopfLaxPotential(A, LAM, T, sign=-1.0)
    shifted = lambda x, t: base(x, t) + 3.0 * torch.as_tensor(t, dtype=x.dtype) ** 2  # noqa: E731
    x = _x0(100)
    assert torch.allclose(hj_penalty(shifted, x, 0.4, LAM, T), hj_penalty(base, x, 0.4, LAM, T), rtol=1e-10)


def test_space_time_gradient_explicit_backward_equals_autograd() -> None:
    torch.manual_seed(0)
    u = MLPPotential(4)
    x, t = torch.randn(16, 4), torch.rand(16)
    explicit = space_time_gradient(u, x, t, create_graph=True)
    auto = space_time_gradient(lambda x, t: u(x, t), x, t, create_graph=True)
    for a, b in zip(explicit, auto):
        assert torch.allclose(a, b, atol=1e-6)
    # differentiable in the weights, with the same weight gradient
    grads = [torch.autograd.grad(g[0].pow(2).sum() + g[1].sum(), list(u.parameters()), allow_unused=True)
             for g in (explicit, auto)]
    for a, b in zip(*grads):
        assert (a is None and b is None) or torch.allclose(a, b, atol=1e-5)
    # the same penalty on both paths
    assert torch.allclose(hj_penalty(u, x, 0.3, 0.1, T), hj_penalty(lambda x, t: u(x, t), x, 0.3, 0.1, T), rtol=1e-4)


def test_path_point_is_the_piecewise_linear_euler_path() -> None:
    path = euler_flow(QuadraticPotential(0.2), _x0(), T, 0.25, LAM, keep_path=True)
    assert torch.equal(path_point(path, 0.5), path.states[2])
    mid = path_point(path, 0.625)
    assert torch.allclose(mid, 0.5 * (path.states[2] + path.states[3]), rtol=1e-12)
    assert torch.allclose(path_point(path, 0.999999), path.states[4], atol=1e-5)
    jittered = euler_flow(QuadraticPotential(0.2), _x0(), T, 0.25, LAM, keep_path=True, times=[0, 0.1, 0.6, 0.8, 1])
    assert torch.allclose(path_point(jittered, 0.35), 0.5 * (jittered.states[1] + jittered.states[2]), rtol=1e-12)


# --- terminal condition --------------------------------------------------------------------------------------------

def test_terminal_gap_is_zero_when_grad_U_T_is_grad_phi() -> None:
    """HopfLax U(., T) = a|x|^2/2 = phi; for phi = b|x|^2/2 the gap is (a - b)^2 mean |x|^2."""
    x = _x0(100)
    u = HopfLaxPotential(A, LAM, T)
    assert float(terminal_gap(u, QuadraticDiscriminator(A), x, T, create_graph=False)) < 1e-28
    gap = terminal_gap(u, QuadraticDiscriminator(0.2), x, T, create_graph=False)
    assert torch.allclose(gap, (A - 0.2) ** 2 * x.pow(2).sum(1).mean(), rtol=1e-10)
    assert math.isclose(math.sqrt(float(gap)), diagnostics.terminal_error(u, QuadraticDiscriminator(0.2), x, T),
                        rel_tol=1e-9)


# --- time grid ---------------------------------------------------------------------------------------------------

def test_jittered_times_keep_N_increasing_steps() -> None:
    config = FlowConfig(h=0.2)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        times = jittered_times(config, g)
        steps = [b - a for a, b in zip(times, times[1:])]
        assert len(times) == 6 and times[0] == 0.0 and times[-1] == 1.0
        assert all(0 < s < 2 * config.h for s in steps)
    assert jittered_times(config, torch.Generator().manual_seed(3)) == jittered_times(config,
                                                                                      torch.Generator().manual_seed(3))


def test_uniform_times_give_the_usual_euler_path_and_energy() -> None:
    x0, u = _x0(), QuadraticPotential(0.3)
    usual = euler_flow(u, x0, T, 0.25, LAM, keep_path=True)
    grid = euler_flow(u, x0, T, 0.25, LAM, keep_path=True, times=[0.0, 0.25, 0.5, 0.75, 1.0])
    assert torch.allclose(usual.states, grid.states, rtol=1e-12)
    assert usual.steps == [0.25] * 4 and usual.times == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert torch.equal(kinetic_energy(usual.velocities, usual.steps), kinetic_energy(usual.velocities, 0.25))
    assert torch.allclose(kinetic_energy(usual.velocities, grid.steps), kinetic_energy(usual.velocities, 0.25),
                          rtol=1e-12)
    with pytest.raises(ValueError, match="times"):
        euler_flow(u, x0, T, 0.25, LAM, times=[0.0, 0.5, 0.25, 0.75, 1.0])


# --- EMA ---------------------------------------------------------------------------------------------------------

def test_ema_of_constant_weights_equals_them_and_converges_geometrically() -> None:
    torch.manual_seed(0)
    model, start = MLPPotential(3), MLPPotential(3)
    ema = MLPPotential(3)
    ema.load_state_dict(model.state_dict())
    for _ in range(10):
        _ema_update(ema, model, 0.9)
    for a, b in zip(ema.parameters(), model.parameters()):
        assert torch.allclose(a, b, atol=1e-7)
    ema.load_state_dict(start.state_dict())
    for _ in range(7):
        _ema_update(ema, model, 0.8)
    for e, s, m in zip(ema.parameters(), start.parameters(), model.parameters()):
        assert torch.allclose(e, m + 0.8 ** 7 * (s - m), atol=1e-6)


def test_ema_samples_with_the_average_and_leaves_training_alone(tmp_path: Path) -> None:
    config = FlowConfig(**OFF, n_iters=12, log_every=4, batch_size=32)
    plain = train(config, DATA12, progress=False)
    avg = train(config.replace(ema_decay=0.9), DATA12, progress=False)
    assert plain.potential_ema is None and avg.potential_ema is not None
    for a, b in zip(plain.potential.parameters(), avg.potential.parameters()):
        assert torch.equal(a, b)  # the average is not used in training
    assert plain.history == {k: v for k, v in avg.history.items() if k != "time"} | {"time": plain.history["time"]}
    x0 = avg.prior(16, seed=1)
    assert torch.equal(avg.sample(16, seed=1), euler_flow(avg.potential_ema, x0, 1.0, 0.2, 0.1).final)
    assert not torch.equal(avg.sample(16, seed=1), plain.sample(16, seed=1))
    checkpoint.save(avg, tmp_path / "run")
    loaded = checkpoint.load(tmp_path / "run")
    assert torch.equal(loaded.sample(16, seed=1), avg.sample(16, seed=1))
    assert torch.equal(loaded.potential.net.layers[0].weight, avg.potential.net.layers[0].weight)
    assert checkpoint.load(_save(plain, tmp_path / "plain")).potential_ema is None


def _save(result, path: Path) -> Path:
    checkpoint.save(result, path)
    return path


def test_ema_run_resumes_bit_identically(tmp_path: Path) -> None:
    config = FlowConfig(**{**OFF, "ema_decay": 0.8}, n_iters=8, log_every=2, batch_size=32, lr_schedule="constant")
    full = train(config, DATA12, progress=False)
    half = train(config.replace(n_iters=4), DATA12, progress=False)
    checkpoint.save(half, tmp_path / "half")
    rest = train(config, DATA12, progress=False, resume_from=checkpoint.load(tmp_path / "half"))
    assert torch.equal(rest.sample(16, seed=2), full.sample(16, seed=2))


# --- config and training ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("velocity_change_weight", -0.1), ("velocity_change_weight", math.nan), ("velocity_change_weight", True),
    ("hj_weight", -1.0), ("hj_weight", math.inf), ("hj_weight", "1"), ("terminal_weight", -1e-3),
    ("random_time_grid", 1), ("random_time_grid", "yes"), ("ema_decay", 1.0), ("ema_decay", -0.1),
    ("ema_decay", 1.5), ("ema_decay", math.nan), ("ema_decay", True),
])
def test_invalid_option_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        FlowConfig(**{field: value})


def test_random_time_grid_needs_two_steps() -> None:
    with pytest.raises(ValueError, match="random_time_grid"):
        FlowConfig(random_time_grid=True, h=1.0)
    assert FlowConfig(random_time_grid=True, h=0.5).n_steps == 2


def test_paper_presets_have_every_option_off() -> None:
    for name in PRESETS:
        if name.startswith("paper_") or name.endswith("_paper"):
            config = FlowConfig.preset(name)
            assert {k: getattr(config, k) for k in OFF} == OFF, name


@pytest.mark.parametrize("variant", ["unregularized", "w1"])
def test_variants_without_w2_keep_their_objective(variant: str) -> None:
    """The loss terms belong to the W2 proximal's optimality system: (46) and (48) ignore them, like lambda KE_h."""
    config = FlowConfig(**OFF, variant=variant, n_iters=4, log_every=1, batch_size=32)
    off = train(config, DATA12, progress=False)
    on = train(config.replace(velocity_change_weight=1.0, hj_weight=1.0, terminal_weight=1.0), DATA12, progress=False)
    assert torch.equal(on.sample(16, seed=0), off.sample(16, seed=0))
    assert on.history["loss_potential"] == off.history["loss_potential"]


def test_the_defaults_and_the_recipe_are_what_the_rules_chose() -> None:
    """FlowConfig() is the reference with the options of RULE's choice; lecture_toy_straight is the reference with
    RECIPE_RULE's choice, at the iterations the benchmark gave it (its share of the same wall-clock budget)."""
    bench, defaults = _benchmark_module(), json.loads(BENCH.read_text())["defaults"]
    reference = FlowConfig.preset("lecture_toy_paper")
    chosen, recipe = defaults["choice"]["chosen"], defaults["recipe"]["chosen"]
    assert FlowConfig() == reference.replace(**bench.CANDIDATES[chosen]) == FlowConfig.from_dict({})
    straight = FlowConfig.preset("lecture_toy_straight")
    assert straight == reference.replace(**bench.CANDIDATES[recipe], n_iters=defaults["iterations"][recipe])


def test_a_checkpoint_without_the_options_loads_them_as_off(tmp_path: Path) -> None:
    """Checkpoints saved before the options existed were trained without them, whatever the defaults are now."""
    run = train(FlowConfig(n_iters=2, batch_size=16, velocity_change_weight=1.0, hj_weight=1.0), DATA12,
                progress=False)
    model = checkpoint.save(run, tmp_path / "run")
    payload = torch.load(model, weights_only=True)
    for key in OFF:
        del payload["config"][key]
    torch.save(payload, model)
    loaded = checkpoint.load(model).config
    assert {k: getattr(loaded, k) for k in OFF} == OFF != {k: getattr(run.config, k) for k in OFF}
    assert FlowConfig.from_dict(FlowConfig().to_dict()) == FlowConfig() == FlowConfig.from_dict({})


@pytest.mark.parametrize("option", [dict(velocity_change_weight=0.5), dict(hj_weight=1.0),
                                    dict(terminal_weight=1.0), dict(random_time_grid=True)])
def test_each_loss_option_changes_training(option: dict) -> None:
    config = FlowConfig(**OFF, n_iters=6, log_every=1, batch_size=32)
    off = train(config, DATA12, progress=False)
    on = train(config.replace(**option), DATA12, progress=False)
    assert on.history["loss_potential"][0] != off.history["loss_potential"][0]
    assert not torch.equal(on.sample(16, seed=0), off.sample(16, seed=0))
    assert all(math.isfinite(v) for values in on.history.values() for v in values)
    key = {"hj_weight": "hj_penalty", "terminal_weight": "terminal_gap"}.get(next(iter(option)))
    if key is not None:  # its own history entry, only when on
        assert key in on.history and key not in off.history and min(on.history[key]) > 0
    assert "velocity_change" in off.history  # measured always (it is free)


def test_potential_step_loss_is_the_sum_of_its_terms() -> None:
    from proxflow_edu.algorithm import potential_step
    from proxflow_edu.train import build_networks
    config = FlowConfig(**{**OFF, "velocity_change_weight": 0.3, "terminal_weight": 2.0}, batch_size=32)
    potential, discriminator = build_networks(config, (12,))
    opt = torch.optim.Adam(potential.parameters(), lr=1e-3)
    step = potential_step(potential, discriminator, opt, torch.randn(32, 12), config)
    expected = (step.terminal_cost + config.lam * step.kinetic_energy + 0.3 * step.velocity_change
                + 2.0 * step.terminal_gap)
    assert torch.allclose(step.loss_potential, expected, rtol=1e-6) and step.hj_penalty is None


# --- the benchmark -----------------------------------------------------------------------------------------------

def test_benchmark_json_summary_matches_its_records() -> None:
    if not BENCH.is_file():
        pytest.skip("benchmarks/wellposed.json not generated (python benchmarks/wellposed.py)")
    bench = json.loads(BENCH.read_text())
    assert {"meta", "configs", "summary", "records"} <= set(bench)
    for key in ("device", "torch_threads_per_run", "wall_time_s", "command", "cpu_count"):
        assert key in bench["meta"], key
    import importlib.util
    spec = importlib.util.spec_from_file_location("wellposed", BENCH.with_suffix(".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    assert set(bench["configs"]) == set(module.CONFIGS) and bench["configs"] == module.CONFIGS
    records = bench["records"]
    for name, per_data in bench["summary"].items():
        for dataset, scores in per_data.items():
            rows = [r for r in records if r["config"] == name and r["dataset"] == dataset]
            assert len({r["seed"] for r in rows}) >= 2, (name, dataset)
            assert all(r["diverged_at"] is None for r in rows), (name, dataset)
            for metric in module.METRICS:
                values = [r[metric] for r in rows]
                assert math.isclose(scores[metric]["mean"], statistics.fmean(values), rel_tol=1e-4, abs_tol=1e-5)
                assert scores[metric]["min"] == min(values) and scores[metric]["max"] == max(values)
    assert {r["dataset"] for r in records} == {"8gaussians", "pinwheel"}


def test_benchmark_json_mnist_part_is_the_shipped_checkpoints() -> None:
    """The MNIST part of wellposed.json was measured on the checkpoints shipped now (iterations, options, wall time),
    and its kinetic-energy ratio at h = 1 is reproduced from the checkpoint."""
    import importlib.util
    bench = json.loads(BENCH.read_text())
    spec = importlib.util.spec_from_file_location("wellposed", BENCH.with_suffix(".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    mnist = bench["mnist"]
    assert mnist["runs"] == module.MNIST_RUNS and set(mnist["results"]) == set(module.MNIST_RUNS)
    root = BENCH.parents[1] / "checkpoints"
    for label, row in mnist["results"].items():
        r = checkpoint.load(root / module.MNIST_RUNS[label])
        assert row["iterations"] == r.iterations_done == r.config.n_iters, label
        assert row["options"] == {k: getattr(r.config, k) for k in OFF if getattr(r.config, k) != OFF[k]}, label
        assert row["train_s"] == round(r.wall_time, 1) and row["diverged_at"] is None, label
    assert mnist["results"]["baseline"]["options"] == {}
    assert FlowConfig(**{**PRESETS["cpu_mnist"]}).replace(**OFF) == FlowConfig.preset("cpu_mnist_paper")
    r = checkpoint.load(root / module.MNIST_RUNS["combination"])
    torch.set_num_threads(1)
    x0 = r.prior(mnist["meta"]["n"], seed=mnist["meta"]["prior_seed"])
    with torch.no_grad():
        path = euler_flow(r.sampling_potential, x0, r.config.T, r.config.h, r.config.lam, keep_path=True)
    ratio = diagnostics.path_kinetic_energy(path.states, r.config.h) / diagnostics.chord_kinetic_energy(path.states,
                                                                                                       r.config.T)
    assert float(ratio) == pytest.approx(mnist["results"]["combination"]["ke_chord_h1"], abs=1e-4)


def _benchmark_module():  # noqa: ANN202
    import importlib.util
    spec = importlib.util.spec_from_file_location("wellposed_benchmark", BENCH.with_suffix(".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_the_default_rule_picks_the_straightest_candidate_that_fits_everywhere() -> None:
    """RULE on made-up records: a candidate worse than the reference on one cell is out, however straight; one not
    measured on the reference's seeds is not compared; among the rest the smallest worst-cell KE/chord wins."""
    bench = _benchmark_module()
    cells = [(d, k) for d in bench.CHOICE_MANIFOLDS for k in bench.CHOICE_DIMS]
    # name -> (W2/floor N=5 on every cell, KE/chord, seeds)
    made_up = {"paper": (2.0, 1.30, (0, 1)), "fits": (1.9, 1.05, (0, 1)), "straighter": (2.0, 1.02, (0, 1)),
               "straightest_but_worse": (1.5, 1.001, (0, 1)), "one_seed": (1.0, 1.0, (0,))}
    records = [{"config": name, "dataset": d, "dim": k, "seed": s, "w2_floor_N5": w2, "ke_chord_Ntrain": ke}
               for name, (w2, ke, seeds) in made_up.items() for d, k in cells for s in seeds]
    records.append({**records[0], "dataset": bench.VALIDATION_MANIFOLDS[0], "w2_floor_N5": 0.1})  # never read
    worse = next(r for r in records if r["config"] == "straightest_but_worse")
    worse["w2_floor_N5"] = 3.0  # one seed of one cell pulls its mean above the reference's
    choice = bench.choose_default(records)
    assert choice["chosen"] == "straighter" and choice["options"] is None  # a made-up name has no options
    table = choice["candidates"]
    assert set(table) == {"paper", "fits", "straighter", "straightest_but_worse"}  # "one_seed" is not compared
    assert table["paper"]["qualifies"] and not table["straightest_but_worse"]["qualifies"]
    assert table["straightest_but_worse"]["worse_than_reference_on"] == [f"{worse['dataset']} R^{worse['dim']}"]
    assert bench.choose_default([r for r in records if r["config"] != "paper"])["chosen"] is None
    # RECIPE_RULE reads the average over the cells: one bad cell does not disqualify, and the reference is no recipe
    recipe = bench.choose_recipe(records)
    assert recipe["chosen"] == "straightest_but_worse" and not recipe["candidates"]["paper"]["fits"]
    assert "one_seed" not in recipe["candidates"]
    worse_everywhere = [{**r, "w2_floor_N5": 9.0} if r["config"] != "paper" else r for r in records]
    assert bench.choose_recipe(worse_everywhere)["chosen"] is None


def test_the_defaults_part_is_the_rule_applied_to_its_records() -> None:
    bench, defaults = _benchmark_module(), json.loads(BENCH.read_text())["defaults"]
    records = defaults["records"]
    assert defaults["choice"] == json.loads(json.dumps(bench.choose_default(records)))
    assert defaults["recipe"] == json.loads(json.dumps(bench.choose_recipe(records)))
    assert defaults["candidates"] == {k: v for k, v in bench.CANDIDATES.items() if k in defaults["candidates"]}
    for r in records:
        assert r["n_iters"] == defaults["iterations"][r["config"]], (r["config"], r["dataset"], r["dim"])
        assert r["options"] == bench.CANDIDATES[r["config"]] and r["diverged_at"] is None
    for label, scores in defaults["summary"].items():
        config, cell = label.split(" | ")
        rows = [r for r in records if r["config"] == config and f"{r['dataset']} R^{r['dim']}" == cell]
        assert rows and all(math.isclose(scores[m], statistics.fmean(r[m] for r in rows), abs_tol=1e-5)
                            for m in bench.METRICS), label


def test_the_mnist_recipe_rule_reads_every_seed() -> None:
    """benchmarks/mnist_recipe.py's RULE on made-up records: one seed over the step-change or top-digit limit
    disqualifies a candidate; the highest mean confident fraction among the rest wins; with none left, the
    smallest step change."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("mnist_recipe", BENCH.with_name("mnist_recipe.py"))
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)  # type: ignore[union-attr]

    def rec(name: str, seed: int, confident: float, change: float, top: float) -> dict:
        return {"candidate": name, "seed": seed, "confident_h1": confident, "confident_h1_64": confident,
                "step_change": change, "top_digit": top, "frechet_h1": 100.0, "diverged_at": None}

    records = [rec("a", 0, 0.4, 0.10, 0.2), rec("a", 1, 0.5, 0.12, 0.2),
               rec("b", 0, 0.9, 0.10, 0.2), rec("b", 1, 0.9, 0.16, 0.2),   # one seed changes too much
               rec("c", 0, 0.8, 0.05, 0.2), rec("c", 1, 0.8, 0.05, 0.3),   # one seed collapses onto a digit
               rec("d", 0, 0.3, 0.01, 0.1), rec("d", 1, 0.3, 0.02, 0.1)]
    choice = recipe.choose_recipe(records)
    assert choice["chosen"] == "a" and choice["any_qualified"]
    assert [n for n, row in choice["candidates"].items() if row["qualifies"]] == ["a", "d"]
    worse = recipe.choose_recipe([r for r in records if r["candidate"] in ("b", "c")])
    assert worse["chosen"] == "c" and not worse["any_qualified"]
