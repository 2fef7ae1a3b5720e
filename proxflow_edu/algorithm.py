"""Algorithms 1 and 2 of the paper (method.md §5): one discriminator step and one potential step.

    Algorithm 1 (W1 proximal)  maximise  J_D(omega) = mean phi(x_N) - log mean exp phi(y) - gamma GP   (40)-(41)
    Algorithm 2 (W2 proximal)  minimise  J_G(theta) = mean phi(x_N(theta)) + lambda KE_h(theta)         (42)

One training iteration is ``disc_steps`` calls of :func:`discriminator_step` and one of :func:`potential_step`;
:func:`proxflow_edu.train.train` is the driver around them. Each step returns what it measured, as 0-d
tensors without a graph; their field names are the keys of the training history (None: not measured).

Optional terms of J_G (``FlowConfig`` well-posedness options, off in the paper; each vanishes on the exact MFG
solution, whose characteristics are straight at constant speed): :func:`velocity_change`, :func:`hj_penalty`,
:func:`terminal_gap`; and a jittered time grid, :func:`jittered_times`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .config import FlowConfig
from .flow import EulerPath, euler_flow
from .nets import MLPPotential, input_gradient, time_column
from .objectives import gradient_penalty, interpolates, kinetic_energy, lipschitz_kl_dual


@dataclass
class DiscriminatorStep:
    """What one step of Algorithm 1 measured."""

    loss_discriminator: Tensor       # -J_D, the minimised loss
    divergence: Tensor               # DV estimate of D^L_KL(rho_T || pi), (40)
    gradient_penalty: Tensor         # GP, (41); 0 without the W1 bound
    grad_norm_discriminator: Tensor  # |d loss / d omega|


@dataclass
class PotentialStep:
    """What one step of Algorithm 2 measured."""

    loss_potential: Tensor       # J_G, (42), with the optional terms that are on
    terminal_cost: Tensor        # mean phi(x_N)
    kinetic_energy: Tensor       # KE_h of the Euler path
    grad_norm_potential: Tensor  # |d J_G / d theta|
    velocity_change: Tensor      # (1/M) sum_i sum_n |v_{n+1} - v_n|^2 / 2 of the path, measured always (0 if straight)
    hj_penalty: Tensor | None = None    # centred squared HJ residual at a random time, when hj_weight > 0
    terminal_gap: Tensor | None = None  # mean |grad U(x_N, T) - grad phi(x_N)|^2, when terminal_weight > 0


def discriminator_step(discriminator: nn.Module, optimizer: torch.optim.Optimizer, x_generated: Tensor,
                       x_data: Tensor, config: FlowConfig, generator: torch.Generator | None = None) -> DiscriminatorStep:
    """One ascent step of phi on J_D, for generated samples x_N (M, *event) and data samples y (M, *event)."""
    M = x_generated.shape[0]
    phi_x, phi_y = discriminator(torch.cat([x_generated, x_data])).split(M)  # one forward pass for both
    divergence = lipschitz_kl_dual(phi_x, phi_y)  # (40)
    penalty = torch.zeros((), device=x_generated.device)
    if config.uses_w1:
        x_hat = interpolates(x_generated, x_data, generator)  # x_hat = s y + (1 - s) x, s ~ U[0, 1]
        penalty = gradient_penalty(input_gradient(discriminator, x_hat, create_graph=True), config.L)  # (41)
    loss = -divergence + config.gp_weight * penalty
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return DiscriminatorStep(loss.detach(), divergence.detach(), penalty.detach(), grad_norm(discriminator))


def potential_step(potential: nn.Module, discriminator: nn.Module, optimizer: torch.optim.Optimizer, x0: Tensor,
                   config: FlowConfig, generator: torch.Generator | None = None) -> PotentialStep:
    """One descent step of U on J_G for prior samples x0 (M, *event), back-propagating through all N Euler steps.

    ``generator`` draws the random time grid and the HJ penalty's time (only when those options are on).
    """
    discriminator.requires_grad_(False)  # phi is fixed here: no gradient flows into omega
    times = jittered_times(config, generator, x0.device) if config.random_time_grid else None
    path = euler_flow(potential, x0, config.T, config.h, config.lam, create_graph=True, keep_path=True,
                      times=times)  # (39)
    # KE_h at (x_n, t_n) with the graph kept, unlike the authors' (§6 a)
    ke = kinetic_energy(path.velocities, config.h) if times is None else grid_kinetic_energy(path.velocities, times)
    terminal = discriminator(path.final).mean()
    loss = terminal + config.lam * ke if config.uses_w2 else terminal  # (42)
    # the optional terms of the W2 proximal's optimality system (FlowConfig), each zero on the exact MFG flow
    w2 = config.uses_w2
    penalise_change = w2 and config.velocity_change_weight > 0
    change = velocity_change(path.velocities if penalise_change else path.velocities.detach())
    hj = gap = None
    if penalise_change:  # zero on straight constant-speed paths
        loss = loss + config.velocity_change_weight * change
    if w2 and config.hj_weight > 0:  # HJ equation (20), centred
        t = float(torch.rand((), generator=generator, device=x0.device)) * config.T
        hj = hj_penalty(potential, path_point(path, t, config.h, times), t, config.lam, config.T)
        loss = loss + config.hj_weight * hj
    if w2 and config.terminal_weight > 0:  # terminal condition (21)
        gap = terminal_gap(potential, discriminator, path.final, config.T)
        loss = loss + config.terminal_weight * gap
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    discriminator.requires_grad_(True)
    norm = grad_norm(potential)
    optimizer.step()
    return PotentialStep(loss.detach(), terminal.detach(), ke.detach(), norm, change.detach(),
                         None if hj is None else hj.detach(), None if gap is None else gap.detach())


def velocity_change(velocities: Tensor) -> Tensor:
    """(1/M) sum_i sum_{n=0}^{N-2} |v_{n+1}^i - v_n^i|^2 / 2 for the velocities (N, M, *event) of an Euler path.

    Zero iff every particle moves at constant velocity (a straight line at constant speed), as the exact
    MFG flow does (24): Dv/Dt = -grad_x(d_t U - |grad U|^2/(2 lambda))/lambda vanishes on a solution of (20).
    """
    dv = velocities[1:] - velocities[:-1]
    return 0.5 * dv.flatten(2).pow(2).sum(dim=2).sum(dim=0).mean()


def space_time_gradient(potential: nn.Module, x: Tensor, t: Tensor,
                        create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """(grad_x U(x, t), d_t U(x, t)), shapes like x and (M,), for t of shape (M,).

    The toy :class:`~proxflow_edu.nets.MLPPotential` gets both from one explicit backward (its input is
    (x, t)); any other potential goes through autograd. With ``create_graph`` both are differentiable in the weights.
    """
    if isinstance(potential, MLPPotential):
        with torch.set_grad_enabled(create_graph):
            g = potential.net.backward_input(torch.cat([x, time_column(t, x)], dim=1))
        return g[:, : potential.dim], g[:, potential.dim]
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        t = t.detach().to(x).requires_grad_(True)
        grad_x, d_t = torch.autograd.grad(potential(x, t).sum(), (x, t), create_graph=create_graph, allow_unused=True)
    return grad_x, torch.zeros_like(t) if d_t is None else d_t


def hj_penalty(potential: nn.Module, x: Tensor, t: float, lam: float, T: float, create_graph: bool = True) -> Tensor:
    """T (1/M) sum_i (r_i - mean r)^2 with r = d_t U - |grad_x U|^2/(2 lambda) at (x^i, t)   (20), centred.

    A one-time Monte Carlo estimate of int_0^T Var_i r dt (t ~ U[0, T)). Centred because U + c(t) gives the same
    flow as U while its residual is off by c'(t). Zero for a solution of the HJ equation (20).
    """
    grad_x, d_t = space_time_gradient(potential, x.detach(), torch.full((x.shape[0],), float(t), dtype=x.dtype,
                                                                        device=x.device), create_graph)
    r = d_t - grad_x.flatten(1).pow(2).sum(dim=1) / (2 * lam)
    return T * (r - r.mean()).pow(2).mean()


def path_point(path: EulerPath, t: float, h: float, times: list[float] | None = None) -> Tensor:
    """x(t), detached, on the piecewise-linear Euler path: x_n + (t - t_n) v_n for t_n <= t < t_{n+1}."""
    n_steps = path.velocities.shape[0]
    grid = [n * h for n in range(n_steps + 1)] if times is None else times
    n = min(max(k for k in range(n_steps) if grid[k] <= t), n_steps - 1)
    return (path.states[n] + (t - grid[n]) * path.velocities[n]).detach()


def terminal_gap(potential: nn.Module, discriminator: nn.Module, x_N: Tensor, T: float,
                 create_graph: bool = True) -> Tensor:
    """(1/M) sum_i |grad_x U(x_N^i, T) - grad phi(x_N^i)|^2, x_N detached, phi fixed: the terminal condition (21).

    Its square root is the diagnostic R_T (44); zero when grad U(., T) = grad phi on the samples.
    """
    x_N = x_N.detach()
    target = input_gradient(discriminator, x_N).detach()
    return (input_gradient(potential, x_N, T, create_graph=create_graph) - target).flatten(1).pow(2).sum(dim=1).mean()


def jittered_times(config: FlowConfig, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> list[float]:
    """t_0 = 0, t_n = (n + u_n) h with u_n ~ U(-1/2, 1/2) for 0 < n < N, t_N = T: N steps in (0, 2h)."""
    N, h = config.n_steps, config.h
    u = (torch.rand(N - 1, generator=generator, device=device) - 0.5).tolist()
    return [0.0, *[(n + u[n - 1]) * h for n in range(1, N)], config.T]


def grid_kinetic_energy(velocities: Tensor, times: list[float]) -> Tensor:
    """KE = (1/M) sum_i sum_n (t_{n+1} - t_n) |v_n^i|^2 / 2 on a non-uniform grid (``kinetic_energy`` for h_n = h)."""
    steps = torch.tensor([b - a for a, b in zip(times, times[1:])], dtype=velocities.dtype, device=velocities.device)
    return 0.5 * (steps[:, None] * velocities.flatten(2).pow(2).sum(dim=2)).sum(dim=0).mean()


def grad_norm(module: nn.Module) -> Tensor:
    """Euclidean norm of all parameter gradients (U's output bias gets none: only grad_x U enters the flow)."""
    return torch.nn.utils.get_total_norm([p.grad for p in module.parameters() if p.grad is not None])
