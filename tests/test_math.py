"""Every formula of the course against a closed form (method.md §9)."""
from __future__ import annotations

import math

import pytest
import torch
from analytic import HopfLaxPotential, LinearDiscriminator, QuadraticDiscriminator, QuadraticPotential

from proxflow_edu.diagnostics import (
    chord_kinetic_energy,
    discretization_gap,
    discriminator_slope,
    hj_residual,
    hj_residual_pointwise,
    path_kinetic_energy,
    straight_line_path,
    straightness,
    terminal_error,
)
from proxflow_edu.flow import euler_flow, num_steps
from proxflow_edu.metrics import mmd, noise_floor, off_manifold_distance, w2_distance
from proxflow_edu.nets import input_gradient
from proxflow_edu.objectives import (
    f_dual_nu,
    gradient_penalty,
    interpolates,
    kinetic_energy,
    lipschitz_kl_dual,
    log_mean_exp,
)


@pytest.fixture(autouse=True)
def _float64():
    """Closed forms are checked in double precision."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


# ---------------------------------------------------------------- W1 proximal: gradient penalty and DV dual

@pytest.mark.parametrize("slope, L, expected", [(2.0, 1.0, 3.0), (0.5, 1.0, 0.0), (3.0, 2.0, 5.0)])
def test_gradient_penalty_of_linear_phi(slope: float, L: float, expected: float) -> None:
    w = torch.tensor([0.6, 0.8, 0.0]) * slope  # |w| = slope
    phi = LinearDiscriminator(w, b=1.0)
    gen = torch.Generator().manual_seed(0)
    x_hat = interpolates(torch.randn(64, 3), torch.randn(64, 3) + 5, gen)
    gp = gradient_penalty(input_gradient(phi, x_hat, create_graph=True), L)
    assert gp.item() == pytest.approx(expected, abs=1e-10)


def test_gradient_penalty_is_differentiable_in_phi_parameters() -> None:
    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[2.0, 0.0]]))
    x_hat = interpolates(torch.randn(8, 2), torch.randn(8, 2))
    gp = gradient_penalty(input_gradient(lambda x: net(x).squeeze(1), x_hat, create_graph=True), L=1.0)
    gp.backward()
    # d/dw (|w|^2 - 1) = 2w
    assert torch.allclose(net.weight.grad, torch.tensor([[4.0, 0.0]]))


def test_discriminator_slope_closed_forms() -> None:
    # linear phi = w.x: slope |w| everywhere; quadratic phi = a|x|^2/2: slope a|x|
    x = torch.randn(16, 3)
    w = torch.tensor([0.6, 0.8, 0.0]) * 2.5
    assert torch.allclose(discriminator_slope(LinearDiscriminator(w), x), torch.full((16,), 2.5))
    quad = discriminator_slope(QuadraticDiscriminator(0.7), x)
    assert quad.shape == (16,) and not quad.requires_grad
    assert torch.allclose(quad, 0.7 * x.norm(dim=1))


def gaussian_kl(m1: float, s1: float, m2: float, s2: float) -> float:
    return math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


def test_dv_dual_at_optimal_phi_equals_kl() -> None:
    m1, s1, m2, s2 = 1.0, 0.8, 0.0, 1.2
    g = torch.Generator().manual_seed(0)
    x = m1 + s1 * torch.randn(400_000, generator=g)
    y = m2 + s2 * torch.randn(400_000, generator=g)
    def log_ratio(z: torch.Tensor) -> torch.Tensor:  # phi* = log p/q
        return (-(z - m1) ** 2 / (2 * s1**2) + (z - m2) ** 2 / (2 * s2**2) + math.log(s2 / s1))
    kl = gaussian_kl(m1, s1, m2, s2)
    dv = lipschitz_kl_dual(log_ratio(x), log_ratio(y)).item()
    assert dv == pytest.approx(kl, abs=2e-2)
    # any other phi gives less (weak duality), up to Monte Carlo error
    assert lipschitz_kl_dual(0.5 * log_ratio(x), 0.5 * log_ratio(y)).item() < kl
    assert lipschitz_kl_dual(x, y).item() < kl


def test_nu_form_equals_dv_at_optimal_nu_and_is_below_elsewhere() -> None:
    g = torch.Generator().manual_seed(1)
    phi_x, phi_y = torch.randn(1000, generator=g), 2 * torch.randn(1000, generator=g)
    nu_star = torch.log(torch.exp(phi_y).mean()) - 1
    dv = lipschitz_kl_dual(phi_x, phi_y)
    assert f_dual_nu(phi_x, phi_y, nu_star).item() == pytest.approx(dv.item(), abs=1e-12)
    for delta in (-0.5, 0.3, 1.0):
        assert f_dual_nu(phi_x, phi_y, nu_star + delta).item() < dv.item()


def test_log_mean_exp_is_stable() -> None:
    v = torch.tensor([1000.0, 1000.0, -1000.0, 1000.0], dtype=torch.float32)
    assert log_mean_exp(v).item() == pytest.approx(1000 + math.log(0.75), rel=1e-6)


@pytest.mark.parametrize("delta, sigma, L, expected", [(2.0, 1.0, 1.0, 1.5), (2.0, 1.0, 0.5, 0.875),
                                                       (2.0, 1.0, 5.0, 2.0)])
def test_lipschitz_kl_between_gaussians(delta: float, sigma: float, L: float, expected: float) -> None:
    """The optimal L-Lipschitz phi is linear with slope min(L, delta/sigma^2) along m1 - m2 (§9.2)."""
    closed = delta**2 / (2 * sigma**2) if L >= delta / sigma**2 else L * delta - L**2 * sigma**2 / 2
    assert closed == pytest.approx(expected)
    g = torch.Generator().manual_seed(2)
    direction = torch.tensor([0.6, 0.8])
    x = delta * direction + sigma * torch.randn(400_000, 2, generator=g)  # P
    y = sigma * torch.randn(400_000, 2, generator=g)                       # Q
    phi = LinearDiscriminator(min(L, delta / sigma**2) * direction)
    assert lipschitz_kl_dual(phi(x), phi(y)).item() == pytest.approx(expected, abs=2e-2)
    # bound (8): D^L <= min(KL, L W1) with W1 = delta
    assert expected <= min(delta**2 / (2 * sigma**2), L * delta) + 1e-12


# ---------------------------------------------------------------- W2 proximal: Euler step and kinetic energy

def test_one_euler_step_and_kinetic_energy_on_quadratic_potential() -> None:
    c, lam, h = 0.7, 0.5, 0.25
    x0 = torch.randn(32, 3, generator=torch.Generator().manual_seed(3))
    path = euler_flow(QuadraticPotential(c), x0, T=h, h=h, lam=lam, keep_path=True)
    x1 = (1 - h * c / lam) * x0
    assert torch.allclose(path.final, x1)
    assert torch.allclose(path.velocities[0], -c * x0 / lam)
    ke_closed = (h * c**2 * x0.pow(2).sum(1) / (2 * lam**2)).mean()
    assert kinetic_energy(path.velocities, h).item() == pytest.approx(ke_closed.item(), rel=1e-12)
    assert path_kinetic_energy(path.states, h).item() == pytest.approx(ke_closed.item(), rel=1e-12)


def test_n_euler_steps_on_quadratic_potential() -> None:
    c, lam, h, T = 0.3, 0.5, 0.1, 0.5
    x0 = torch.randn(16, 2, generator=torch.Generator().manual_seed(4))
    path = euler_flow(QuadraticPotential(c), x0, T, h, lam, keep_path=True)
    n = num_steps(T, h)
    factors = torch.tensor([(1 - h * c / lam) ** k for k in range(n + 1)])
    assert torch.allclose(path.states, factors[:, None, None] * x0)
    ke = sum(h * c**2 * (factors[k] ** 2 * x0.pow(2).sum(1)).mean() / (2 * lam**2) for k in range(n))
    assert kinetic_energy(path.velocities, h).item() == pytest.approx(float(ke), rel=1e-12)
    # Cauchy-Schwarz: the path energy is at least the chord energy
    assert kinetic_energy(path.velocities, h) >= chord_kinetic_energy(path.states, T)


def test_kinetic_energy_keeps_the_graph_through_the_path() -> None:
    """KE_h must be differentiable in theta through the trajectory (the authors detach it, §6 a)."""
    net = torch.nn.Linear(3, 1)
    potential = lambda x, t: net(torch.cat([x, torch.full((len(x), 1), float(t))], 1)).squeeze(1) ** 2
    path = euler_flow(potential, torch.randn(8, 2), T=1.0, h=0.25, lam=1.0, create_graph=True, keep_path=True)
    kinetic_energy(path.velocities, 0.25).backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("T, h, n", [(1.0, 1.0, 1), (1.0, 1 / 64, 64), (5.0, 1.0, 5), (5.0, 1 / 64, 320)])
def test_euler_flow_honours_h(T: float, h: float, n: int) -> None:
    x0 = torch.randn(4, 2)
    flow = euler_flow(QuadraticPotential(0.1), x0, T, h, 1.0, keep_path=True)
    path, x_T = flow.states, flow.final
    assert path.shape == (n + 1, 4, 2) and flow.velocities.shape == (n, 4, 2)
    assert torch.equal(path[-1], x_T) and torch.equal(path[0], x0)
    assert not x_T.requires_grad
    lean = euler_flow(QuadraticPotential(0.1), x0, T, h, 1.0)  # the states are kept only when asked
    assert lean.states is None and lean.velocities is None and torch.equal(lean.final, x_T)


def test_euler_step_size_changes_result_for_curved_flow() -> None:
    x0 = torch.randn(4, 2)
    assert not torch.allclose(euler_flow(QuadraticPotential(0.5), x0, 1.0, 1.0, 1.0).final,
                              euler_flow(QuadraticPotential(0.5), x0, 1.0, 1 / 64, 1.0).final)


@pytest.mark.parametrize("T, h", [(1.0, 0.3), (1.0, 0.0), (1.0, -0.1), (0.0, 0.1)])
def test_num_steps_rejects_bad_steps(T: float, h: float) -> None:
    with pytest.raises(ValueError, match="T|h"):
        num_steps(T, h)


# ---------------------------------------------------------------- MFG optimality: Hopf-Lax, HJ residual, terminal error

A, LAM, T = 0.8, 0.5, 1.0


@pytest.mark.parametrize("h", [1.0, 1 / 3, 1 / 64])
def test_hopf_lax_paths_are_straight_and_h_invariant(h: float) -> None:
    x0 = torch.randn(50, 3, generator=torch.Generator().manual_seed(5))
    flow = euler_flow(HopfLaxPotential(A, LAM, T), x0, T, h, LAM, keep_path=True)
    x_T = flow.final
    path = flow.states
    assert torch.allclose(x_T, LAM * x0 / (LAM + A * T), atol=1e-12)
    assert straightness(path) == pytest.approx(0.0, abs=1e-10)
    # constant speed: the path energy equals the chord energy
    assert path_kinetic_energy(path, h).item() == pytest.approx(chord_kinetic_energy(path, T).item(), rel=1e-10)


def test_hj_residual_vanishes_for_hopf_lax_and_not_for_wrong_potentials() -> None:
    x0 = torch.randn(200, 2, generator=torch.Generator().manual_seed(6))
    h = 0.1
    flow = euler_flow(HopfLaxPotential(A, LAM, T), x0, T, h, LAM, keep_path=True)
    path = flow.states
    assert hj_residual(HopfLaxPotential(A, LAM, T), path, h, LAM) == pytest.approx(0.0, abs=1e-12)
    # (a) time-independent U = a|x|^2/2: residual -a^2|x|^2/(2 lam) at every point
    pointwise = hj_residual_pointwise(QuadraticPotential(A), path[3], 3 * h, LAM)
    assert torch.allclose(pointwise, -A**2 * path[3].pow(2).sum(1) / (2 * LAM))
    assert hj_residual(QuadraticPotential(A), path, h, LAM) > 0.05
    # (b) the authors' sign: U_- solves d_t U + |grad U|^2/(2 lam) = 0 but not the correct equation
    lam_big = 2.0  # needs lam > a T
    wrong = HopfLaxPotential(A, lam_big, T, sign=-1.0)
    x = path[0]
    for t in (0.0, 0.5):
        expected = -A**2 * lam_big * x.pow(2).sum(1) / (lam_big - A * (T - t)) ** 2
        assert torch.allclose(hj_residual_pointwise(wrong, x, t, lam_big), expected)


def test_terminal_error_and_straight_line_formula() -> None:
    x0 = torch.randn(100, 2, generator=torch.Generator().manual_seed(7))
    h = 0.05
    flow = euler_flow(HopfLaxPotential(A, LAM, T), x0, T, h, LAM, keep_path=True)
    x_T = flow.final
    path = flow.states
    assert terminal_error(HopfLaxPotential(A, LAM, T), QuadraticDiscriminator(A), x_T, T) == pytest.approx(0, abs=1e-12)
    # grad U(., T) = a x vs grad phi = b x  ->  RMS |(a - b) x|
    b = 0.3
    expected = ((A - b) ** 2 * x_T.pow(2).sum(1).mean()).sqrt().item()
    assert terminal_error(HopfLaxPotential(A, LAM, T), QuadraticDiscriminator(b), x_T, T) == pytest.approx(expected)
    # (29): x(t) = x(T) + ((T - t)/lam) grad phi*(x(T)) reproduces the integrated path
    times = torch.arange(path.shape[0]) * h
    predicted = straight_line_path(QuadraticDiscriminator(A), x_T, times, T, LAM)
    assert torch.allclose(predicted, path, atol=1e-12)


def test_discretization_gap_is_zero_for_the_exact_potential() -> None:
    x0 = torch.randn(30, 2)
    gap = discretization_gap(HopfLaxPotential(A, LAM, T), x0, T, h=0.2, lam=LAM, h_fine=1 / 320)
    assert gap.mean_distance == pytest.approx(0, abs=1e-10) and gap.relative == pytest.approx(0, abs=1e-10)
    # U = c|x|^2/2 contracts by (1 - hc/lam) per step: the gap is |0.8^5 - (1 - 1/320)^320| relative to the motion
    curved = discretization_gap(QuadraticPotential(0.5), x0, T, h=0.2, lam=LAM, h_fine=1 / 320)
    coarse, fine = 0.8**5, (1 - 1 / 320) ** 320
    assert curved.relative == pytest.approx(abs(coarse - fine) / (1 - fine), rel=1e-9)


def test_straightness_of_a_detour() -> None:
    path = torch.tensor([[[0.0, 0.0]], [[1.0, 1.0]], [[2.0, 0.0]]])  # length 2 sqrt 2, chord 2
    assert straightness(path) == pytest.approx(math.sqrt(2) - 1)


# ---------------------------------------------------------------- metrics

def test_w2_of_shifted_clouds_is_the_shift() -> None:
    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(8))
    c = torch.tensor([0.3, -1.2, 0.5])
    assert w2_distance(x, x + c) == pytest.approx(c.norm().item(), rel=1e-8)
    assert w2_distance(x, x[torch.randperm(300)]) == pytest.approx(0.0, abs=1e-6)


def test_noise_floor_and_mmd() -> None:
    data = torch.randn(2000, 2, generator=torch.Generator().manual_seed(9))
    floor = noise_floor(data, 500)
    assert 0 < floor < 0.5
    with pytest.raises(ValueError, match="2n"):
        noise_floor(data, 1500)
    assert abs(mmd(data[:500], data[500:1000])) < 0.02
    assert mmd(data[:500], data[500:1000] + 2.0) > 0.2


def test_off_manifold_distance() -> None:
    from proxflow_edu.data import embedding
    b = embedding(5)
    assert torch.allclose(b.T @ b, torch.eye(2, dtype=b.dtype), atol=1e-6)
    z = torch.randn(10, 2, dtype=torch.float32)
    on = z @ b.T
    assert off_manifold_distance(on).abs().max() < 1e-5
    normal = torch.linalg.svd(torch.eye(5) - b @ b.T).U[:, 0]  # a unit vector orthogonal to the plane
    assert torch.allclose(off_manifold_distance(on + 0.7 * normal), torch.full((10,), 0.7), atol=1e-5)


def test_centered_hj_residual_ignores_a_time_only_drift() -> None:
    """U + c(t) moves particles exactly like U; only the centred residual is blind to c'(t)."""
    hopf_lax = HopfLaxPotential(A, LAM, T)
    drifted = lambda x, t: hopf_lax(x, t) + 0.7 * torch.as_tensor(t, dtype=x.dtype)  # noqa: E731  c'(t) = 0.7
    flow = euler_flow(hopf_lax, torch.randn(100, 2), T, 0.1, LAM, keep_path=True)
    path = flow.states
    assert hj_residual(drifted, path, 0.1, LAM) == pytest.approx(0.7 * T, rel=1e-9)
    assert hj_residual(drifted, path, 0.1, LAM, centered=True) == pytest.approx(0.0, abs=1e-12)


def test_fit_discriminator_separates_singular_measures_only_without_the_bound() -> None:
    """P on the line x2 = 1, Q on x2 = 0 (mutually singular): D^L_KL = L * 1 with the bound, unbounded without."""
    from proxflow_edu.config import FlowConfig
    from proxflow_edu.course.discriminator import fit_discriminator
    from proxflow_edu.nets import MLPDiscriminator
    g = torch.Generator().manual_seed(0)
    u = 4 * torch.rand(2000, generator=g) - 2
    p, q = torch.stack([u, torch.ones_like(u)], 1).float(), torch.stack([u, torch.zeros_like(u)], 1).float()
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
    free = fit_discriminator(MLPDiscriminator(2), p, q, 300, FlowConfig(variant="unregularized", lr_discriminator=3e-3),
                             generator=g)
    torch.manual_seed(0)
    bounded = fit_discriminator(MLPDiscriminator(2), p, q, 300,
                                FlowConfig(variant="w1", lr_discriminator=3e-3, L=1.0, gp_weight=5.0), generator=g)
    assert free[-1] > 10 and free[-1] > free[100]        # keeps growing
    assert bounded[-1] == pytest.approx(1.0, abs=0.25)   # L * W1(P, Q) = 1
