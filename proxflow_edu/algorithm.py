"""Algorithms 1 and 2 of the paper (method.md §5): one discriminator step and one potential step.

    Algorithm 1 (W1 proximal)  maximise  J_D(omega) = mean phi(x_N) - log mean exp phi(y) - gamma GP   (40)-(41)
    Algorithm 2 (W2 proximal)  minimise  J_G(theta) = mean phi(x_N(theta)) + lambda KE_h(theta)         (42)

One training iteration is ``disc_steps`` calls of :func:`discriminator_step` and one of :func:`potential_step`;
:func:`proxflow_edu.train.train` is the driver around them. Each step returns what it measured, as 0-d
tensors without a graph; their field names are the keys of the training history (None: not measured).

Optional terms of J_G (``FlowConfig`` well-posedness options, off in the paper; each vanishes on the exact MFG
solution, whose characteristics are straight at constant speed) are in :mod:`proxflow_edu.wellposed`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .config import FlowConfig
from .flow import euler_flow
from .nets import input_gradient
from .objectives import gradient_penalty, interpolates, kinetic_energy, lipschitz_kl_dual
from .wellposed import grid_kinetic_energy, hj_penalty, jittered_times, path_point, terminal_gap, velocity_change


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


def grad_norm(module: nn.Module) -> Tensor:
    """Euclidean norm of all parameter gradients (U's output bias gets none: only grad_x U enters the flow)."""
    return torch.nn.utils.get_total_norm([p.grad for p in module.parameters() if p.grad is not None])
