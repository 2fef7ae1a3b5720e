"""The optional terms of J_G that push a trained flow towards the MFG optimum (``FlowConfig`` well-posedness options).

Each vanishes on the exact solution of the optimality system, whose characteristics are straight lines at constant
speed (22)-(29), so it does not move the optimum; all are off in the paper's presets. ``algorithm.potential_step``
adds them to (42) when their weight is > 0.

* :func:`velocity_change`: sum_n |v_{n+1} - v_n|^2 / 2 along the Euler path (zero on constant-velocity paths);
* :func:`hj_penalty`: the centred HJ residual of (20) at a random time;
* :func:`terminal_gap`: |grad U(x_N, T) - grad phi(x_N)|^2, the terminal condition (21);
* :func:`jittered_times`, :func:`grid_kinetic_energy`: a random time grid and its kinetic energy.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import FlowConfig
from .flow import EulerPath
from .nets import MLPPotential, input_gradient, time_column


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
