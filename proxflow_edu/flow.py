"""The generative flow x' = v(x, t) = -grad_x U(x, t) / lambda and its forward-Euler discretisation.

Euler recurrence (39): x_{n+1} = x_n - (h_n / lambda) grad_x U(x_n, t_n), n = 0..N-1, on the uniform grid
t_n = n h, h_n = h, N = T/h (the paper's), or on a given grid 0 = t_0 < ... < t_N = T with h_n = t_{n+1} - t_n.

Unlike the authors' sampler (method.md §6 b), the step ``h`` asked for is the step used.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

from .nets import input_gradient

Potential = Callable[[Tensor, "float | Tensor"], Tensor]


def num_steps(T: float, h: float) -> int:
    """N = T/h; ValueError unless T, h > 0 and T is an integer multiple of h (up to rounding)."""
    if not (h > 0):
        raise ValueError(f"h must be > 0, got h={h}")
    if not (T > 0):
        raise ValueError(f"T must be > 0, got T={T}")
    n = round(T / h)
    if n < 1 or abs(n * h - T) > 1e-6 * max(T, 1.0):
        raise ValueError(f"T must be an integer multiple of h, got T={T}, h={h} (T/h={T / h:.6g})")
    return n


def time_grid(T: float, h: float, times: Sequence[float] | None = None) -> tuple[list[float], list[float]]:
    """(t_0..t_N, h_0..h_{N-1}): the uniform grid t_n = n h, h_n = h, or ``times`` (N + 1 increasing floats)."""
    n = num_steps(T, h)
    if times is None:
        return [k * h for k in range(n)] + [T], [h] * n
    times = [float(t) for t in times]
    if len(times) != n + 1 or any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError(f"times must be {n + 1} increasing floats (t_0..t_N), got {times}")
    return times, [b - a for a, b in zip(times, times[1:])]


def velocity(potential: Potential, x: Tensor, t: float | Tensor, lam: float, create_graph: bool = False) -> Tensor:
    """v(x, t) = -grad_x U(x, t) / lambda (the MFG optimal control, §4)."""
    return -input_gradient(potential, x, t, create_graph=create_graph) / lam


@dataclass
class EulerPath:
    """The result of :func:`euler_flow`."""

    final: Tensor                    # (M, *event) x_N
    states: Tensor | None = None     # (N+1, M, *event) x_0..x_N, with keep_path
    velocities: Tensor | None = None  # (N, M, *event) the v_n = v(x_n, t_n) of each step, with keep_path
    times: list[float] | None = None  # t_0..t_N
    steps: list[float] | None = None  # h_0..h_{N-1} (all equal to h on the uniform grid)


def euler_flow(potential: Potential, x0: Tensor, T: float, h: float, lam: float, create_graph: bool = False,
               keep_path: bool = False, times: Sequence[float] | None = None) -> EulerPath:
    """Integrate (39) from x0 with step h, or on the grid ``times``.

    U(x, t) maps (M, *event) and t to (M,); x0 (M, *event) are samples of rho_0; T/h must be an integer N.
    ``create_graph`` keeps the autograd graph through every step (training), otherwise no graph survives the call;
    ``keep_path`` also returns all states and velocities (N times the memory of x0); ``times`` is a non-uniform
    grid t_0 = 0 < t_1 < ... < t_N = T used instead of t_n = n h (``FlowConfig.random_time_grid``).

    Example:
        >>> euler_flow(lambda x, t: -(x ** 2).sum(1) / 2, torch.ones(1, 2), T=1.0, h=0.5, lam=1.0).final
        tensor([[2.2500, 2.2500]])
    """
    grid, steps = time_grid(T, h, times)
    x = x0 if create_graph else x0.detach()
    states, velocities = [x], []
    for t, dt in zip(grid, steps):
        v = velocity(potential, x, t, lam, create_graph)
        x = x + dt * v  # (39)
        if not create_graph:
            v, x = v.detach(), x.detach()
        if keep_path:
            states.append(x)
            velocities.append(v)
    if not keep_path:
        return EulerPath(x, times=grid, steps=steps)
    return EulerPath(x, torch.stack(states), torch.stack(velocities), grid, steps)
