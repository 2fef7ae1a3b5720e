"""The generative flow x' = v(x, t) = -grad_x U(x, t) / lambda and its forward-Euler discretisation.

Euler recurrence (39): x_{n+1} = x_n - (h / lambda) grad_x U(x_n, t_n), t_n = n h, n = 0..N-1, N = T/h.

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


def velocity(potential: Potential, x: Tensor, t: float | Tensor, lam: float, create_graph: bool = False) -> Tensor:
    """v(x, t) = -grad_x U(x, t) / lambda (the MFG optimal control, §4)."""
    return -input_gradient(potential, x, t, create_graph=create_graph) / lam


@dataclass
class EulerPath:
    """The result of :func:`euler_flow`.

    Attributes:
        final: (M, *event) x_N.
        states: (N+1, M, *event) positions x_0..x_N, or None unless ``keep_path`` was asked for.
        velocities: (N, M, *event) the v_n = v(x_n, t_n) of each step, or None unless ``keep_path``.
    """

    final: Tensor
    states: Tensor | None = None
    velocities: Tensor | None = None


def euler_flow(potential: Potential, x0: Tensor, T: float, h: float, lam: float, create_graph: bool = False,
               keep_path: bool = False, times: Sequence[float] | None = None) -> EulerPath:
    """Integrate (39) from x0 with step h.

    Args:
        potential: U(x, t), maps (M, *event) and t to (M,).
        x0: (M, *event) samples of rho_0.
        T, h, lam: horizon, step (T/h must be an integer N), kinetic-energy weight lambda.
        create_graph: keep the autograd graph through every step (training); otherwise every state is
            detached and no graph survives the call.
        keep_path: also return all states and velocities (N times the memory of x0: h = 1/64 on MNIST is
            320 steps x batch).
        times: a non-uniform grid t_0 = 0 < t_1 < ... < t_N = T (N + 1 increasing floats) used instead of
            t_n = n h: x_{n+1} = x_n + (t_{n+1} - t_n) v(x_n, t_n) (``FlowConfig.random_time_grid``).
    """
    n = num_steps(T, h)
    if times is not None:
        times = [float(t) for t in times]
        if len(times) != n + 1 or any(b <= a for a, b in zip(times, times[1:])):
            raise ValueError(f"times must be {n + 1} increasing floats (t_0..t_N), got {times}")
    x = x0 if create_graph else x0.detach()
    states, velocities = [x], []
    for k in range(n):
        if times is None:
            v = velocity(potential, x, k * h, lam, create_graph)
            x = x + h * v  # (39)
        else:
            v = velocity(potential, x, times[k], lam, create_graph)
            x = x + (times[k + 1] - times[k]) * v
        if not create_graph:
            v, x = v.detach(), x.detach()
        if keep_path:
            states.append(x)
            velocities.append(v)
    if not keep_path:
        return EulerPath(x)
    return EulerPath(x, torch.stack(states), torch.stack(velocities))
