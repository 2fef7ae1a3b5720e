"""The generative flow x' = v(x, t) = -grad_x U(x, t) / lambda and its forward-Euler discretisation.

Euler recurrence (39): x_{n+1} = x_n - (h / lambda) grad_x U(x_n, t_n), t_n = n h, n = 0..N-1, N = T/h.

Unlike the authors' sampler (method.md §6 b), the step ``h`` asked for is the step used.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

Potential = Callable[[Tensor, "float | Tensor"], Tensor]


def num_steps(T: float, h: float) -> int:
    """N = T/h, which must be a positive integer (up to rounding).

    Raises:
        ValueError: if T or h is not positive or T is not an integer multiple of h.
    """
    if not (h > 0):
        raise ValueError(f"h must be > 0, got h={h}")
    if not (T > 0):
        raise ValueError(f"T must be > 0, got T={T}")
    n = round(T / h)
    if n < 1 or abs(n * h - T) > 1e-6 * max(T, 1.0):
        raise ValueError(f"T must be an integer multiple of h, got T={T}, h={h} (T/h={T / h:.6g})")
    return n


def potential_gradient(potential: Potential, x: Tensor, t: float | Tensor, create_graph: bool = False) -> Tensor:
    """grad_x U(x, t), shape like ``x``.

    With ``create_graph=True`` the result stays differentiable w.r.t. the network's
    parameters (and x), which training needs: the loss is back-propagated through
    grad_x U (second derivatives). Networks with an ``input_gradient(x, t)`` method
    (the toy MLPs) compute it explicitly; any other callable goes through autograd.
    """
    explicit = getattr(potential, "input_gradient", None)
    if explicit is not None:
        if create_graph:
            return explicit(x, t)
        with torch.no_grad():
            return explicit(x, t)
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(potential(x, t).sum(), x, create_graph=create_graph)
    return grad


def velocity(potential: Potential, x: Tensor, t: float | Tensor, lam: float, create_graph: bool = False) -> Tensor:
    """v(x, t) = -grad_x U(x, t) / lambda (the MFG optimal control, §4)."""
    return -potential_gradient(potential, x, t, create_graph) / lam


@dataclass
class EulerPath:
    """A discretised trajectory.

    Attributes:
        states: (N+1, M, *event) positions x_0..x_N.
        velocities: (N, M, *event) velocities v_n = v(x_n, t_n) used in each step.
        h: the step size.
    """

    states: Tensor
    velocities: Tensor
    h: float

    @property
    def final(self) -> Tensor:
        """x_N, shape (M, *event)."""
        return self.states[-1]


def euler_flow(potential: Potential, x0: Tensor, T: float, h: float, lam: float, create_graph: bool = False) -> EulerPath:
    """Integrate (39) from x0 with step h; keep the autograd graph if ``create_graph``.

    Args:
        potential: U(x, t), maps (M, *event) and t to (M,).
        x0: (M, *event) samples of rho_0.
        T, h, lam: horizon, step, kinetic-energy weight lambda.
        create_graph: keep the graph through every step (training); otherwise every
            state is detached and no graph survives the call.
    """
    n = num_steps(T, h)
    x = x0 if create_graph else x0.detach()
    states, vels = [x], []
    for k in range(n):
        v = velocity(potential, x, k * h, lam, create_graph)
        x = x + h * v  # (39)
        if not create_graph:
            v, x = v.detach(), x.detach()
        states.append(x)
        vels.append(v)
    return EulerPath(torch.stack(states), torch.stack(vels), h)


def generate(
    potential: Potential,
    x0: Tensor,
    T: float,
    h: float,
    lam: float,
    return_path: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Push prior samples through the learned flow with forward Euler at step h.

    Args:
        potential: U(x, t).
        x0: (M, *event) prior samples.
        T: horizon; h: step (T/h must be an integer N); lam: lambda.
        return_path: also return all N+1 states.

    Returns:
        x_T of shape (M, *event), or ``(x_T, path)`` with path (N+1, M, *event).
        Nothing returned carries an autograd graph.
    """
    n = num_steps(T, h)
    x = x0.detach()
    states = [x] if return_path else None
    for k in range(n):
        x = (x + h * velocity(potential, x, k * h, lam)).detach()
        if states is not None:
            states.append(x)
    if states is not None:
        return x, torch.stack(states)
    return x
