"""Algorithms 1 and 2 of the paper (method.md §5): one discriminator step and one potential step.

    Algorithm 1 (W1 proximal)  maximise  J_D(omega) = mean phi(x_N) - log mean exp phi(y) - gamma GP   (40)-(41)
    Algorithm 2 (W2 proximal)  minimise  J_G(theta) = mean phi(x_N(theta)) + lambda KE_h(theta)         (42)

One training iteration is ``disc_steps`` calls of :func:`discriminator_step` and one of :func:`potential_step`;
:func:`proxflow_edu.train.train` is the driver around them. Each step returns what it measured, as 0-d
tensors without a graph; their field names are the keys of the training history (None: not measured).

:func:`potential_step` minimises the paper's J_G (:func:`potential_loss`) plus the named extra terms of
:mod:`proxflow_edu.wellposed` whose weights are > 0 (the ``FlowConfig`` well-posedness options; all off in the paper).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor, nn

from .config import FlowConfig
from .flow import EulerPath, euler_flow
from .nets import input_gradient
from .objectives import gradient_penalty, interpolates, kinetic_energy, lipschitz_kl_dual
from .wellposed import extra_terms, jittered_times, velocity_change


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

    loss_potential: Tensor       # J_G, (42), plus the extra terms that are on
    terminal_cost: Tensor        # mean phi(x_N)
    kinetic_energy: Tensor       # KE_h of the Euler path
    grad_norm_potential: Tensor  # |d loss / d theta|
    velocity_change: Tensor      # (1/M) sum_i sum_n |v_{n+1} - v_n|^2 / 2 of the path, measured always (0 if straight)
    hj_penalty: Tensor | None = None    # centred squared HJ residual at a random time, when hj_weight > 0
    terminal_gap: Tensor | None = None  # mean |grad U(x_N, T) - grad phi(x_N)|^2, when terminal_weight > 0


def discriminator_step(discriminator: nn.Module, optimizer: torch.optim.Optimizer, x_generated: Tensor,
                       x_data: Tensor, config: FlowConfig,
                       generator: torch.Generator | None = None) -> DiscriminatorStep:
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


def potential_loss(path: EulerPath, discriminator: nn.Module, config: FlowConfig) -> tuple[Tensor, Tensor, Tensor]:
    """(J_G, mean phi(x_N), KE_h) of an Euler path kept with its graph: J_G = mean phi(x_N) + lambda KE_h   (42).

    KE_h is taken at (x_n, t_n) with the graph kept, unlike the authors' code (§6 a); without the W2 proximal
    (variants (46), (48)) J_G is the terminal cost alone.
    """
    terminal = discriminator(path.final).mean()
    ke = kinetic_energy(path.velocities, path.steps)
    return (terminal + config.lam * ke if config.uses_w2 else terminal), terminal, ke


def potential_step(potential: nn.Module, discriminator: nn.Module, optimizer: torch.optim.Optimizer, x0: Tensor,
                   config: FlowConfig, generator: torch.Generator | None = None) -> PotentialStep:
    """One descent step of U on J_G + sum_k w_k term_k for prior samples x0 (M, *event), through all N Euler steps.

    ``generator`` draws the random time grid and the HJ penalty's time (only when those options are on).
    """
    times = jittered_times(config, generator, x0.device) if config.random_time_grid else None
    with frozen(discriminator):  # phi is fixed here: no gradient flows into omega
        path = euler_flow(potential, x0, config.T, config.h, config.lam, create_graph=True, keep_path=True,
                          times=times)  # (39)
        loss, terminal, ke = potential_loss(path, discriminator, config)  # (42)
        terms = extra_terms(path, potential, discriminator, config, generator)
        for weight, value in terms.values():
            loss = loss + weight * value
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
    norm = grad_norm(potential)
    optimizer.step()
    change = terms["velocity_change"][1] if "velocity_change" in terms else velocity_change(path.velocities.detach())
    measured = {name: value.detach() for name, (_, value) in terms.items() if name != "velocity_change"}
    return PotentialStep(loss.detach(), terminal.detach(), ke.detach(), norm, change.detach(), **measured)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` with requires_grad off for the block, restored afterwards, also when the block raises."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def grad_norm(module: nn.Module) -> Tensor:
    """Euclidean norm of all parameter gradients (U's output bias gets none: only grad_x U enters the flow)."""
    return torch.nn.utils.get_total_norm([p.grad for p in module.parameters() if p.grad is not None])
