"""Named extra terms of J_G that push a trained flow towards the MFG optimum (``FlowConfig`` well-posedness options).

Each term vanishes on the exact solution of the optimality system (20)-(21), whose characteristics are straight
lines at constant speed (22)-(29); all are off in the paper's presets. They belong to the W2 proximal's optimality
system (without kinetic energy there is no HJ equation, method.md §4), so, like lambda KE_h, they are used by the
variants "w2" and "w1w2" only. ``algorithm.potential_step`` minimises (42) + sum_k w_k term_k over the terms of
:data:`EXTRA_TERMS` whose weight w_k is > 0; adding a term is one function and one entry there (and its weight field).

* :func:`velocity_change`: sum_n |v_{n+1} - v_n|^2 / 2 along the Euler path (zero on constant-velocity paths);
* :func:`hj_penalty`: the centred HJ residual of (20) at a random time;
* :func:`terminal_gap`: |grad U(x_N, T) - grad phi(x_N)|^2, the terminal condition (21);
* :func:`jittered_times`: the random time grid (``random_time_grid``), which changes the grid, not the loss.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from .config import FlowConfig
from .flow import EulerPath, Potential
from .mfg import hj_residual_pointwise, terminal_gap_pointwise


def velocity_change(velocities: Tensor) -> Tensor:
    """(1/M) sum_i sum_{n=0}^{N-2} |v_{n+1}^i - v_n^i|^2 / 2 for the velocities (N, M, *event) of an Euler path.

    Zero iff every particle moves at constant velocity (a straight line at constant speed), as the exact
    MFG flow does (24): Dv/Dt = -grad_x(d_t U - |grad U|^2/(2 lambda))/lambda vanishes on a solution of (20).
    """
    dv = velocities[1:] - velocities[:-1]
    return 0.5 * dv.flatten(2).pow(2).sum(dim=2).sum(dim=0).mean()


def hj_penalty(potential: Potential, x: Tensor, t: float, lam: float, T: float, create_graph: bool = True) -> Tensor:
    """T (1/M) sum_i (r_i - mean r)^2 with r the HJ residual (20) at (x^i, t), centred.

    A one-time Monte Carlo estimate of int_0^T Var_i r dt (t ~ U[0, T)). Centred because U + c(t) gives the same
    flow as U while its residual is off by c'(t). Zero for a solution of the HJ equation (20).
    """
    r = hj_residual_pointwise(potential, x, t, lam, create_graph)
    return T * (r - r.mean()).pow(2).mean()


def terminal_gap(potential: Potential, discriminator: Callable[[Tensor], Tensor], x_N: Tensor, T: float,
                 create_graph: bool = True) -> Tensor:
    """(1/M) sum_i |grad_x U(x_N^i, T) - grad phi(x_N^i)|^2: the terminal condition (21); its root is R_T (44)."""
    return terminal_gap_pointwise(potential, discriminator, x_N, T, create_graph).mean()


def path_point(path: EulerPath, t: float) -> Tensor:
    """x(t), detached, on the piecewise-linear Euler path: x_n + (t - t_n) v_n for t_n <= t < t_{n+1}."""
    n_steps = path.velocities.shape[0]
    n = min(max(k for k in range(n_steps) if path.times[k] <= t), n_steps - 1)
    return (path.states[n] + (t - path.times[n]) * path.velocities[n]).detach()


def jittered_times(config: FlowConfig, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> list[float]:
    """t_0 = 0, t_n = (n + u_n) h with u_n ~ U(-1/2, 1/2) for 0 < n < N, t_N = T: N steps in (0, 2h)."""
    N, h = config.n_steps, config.h
    u = (torch.rand(N - 1, generator=generator, device=device) - 0.5).tolist()
    return [0.0, *[(n + u[n - 1]) * h for n in range(1, N)], config.T]


# Each term is a function of the step's Euler path (kept, with its graph), U, phi (fixed), the config and the
# step's generator. The names look the functions up at call time, so a patched velocity_change is the one used.
def _velocity_change_term(path: EulerPath, potential: nn.Module, discriminator: nn.Module, config: FlowConfig,
                          generator: torch.Generator | None) -> Tensor:
    return velocity_change(path.velocities)


def _hj_term(path: EulerPath, potential: nn.Module, discriminator: nn.Module, config: FlowConfig,
             generator: torch.Generator | None) -> Tensor:
    t = float(torch.rand((), generator=generator, device=path.final.device)) * config.T
    return hj_penalty(potential, path_point(path, t), t, config.lam, config.T)


def _terminal_term(path: EulerPath, potential: nn.Module, discriminator: nn.Module, config: FlowConfig,
                   generator: torch.Generator | None) -> Tensor:
    return terminal_gap(potential, discriminator, path.final, config.T)


# term name (its key in the training history) -> (its weight's FlowConfig field, the term), in the order they are added
EXTRA_TERMS: dict[str, tuple[str, Callable[..., Tensor]]] = {
    "velocity_change": ("velocity_change_weight", _velocity_change_term),
    "hj_penalty": ("hj_weight", _hj_term),
    "terminal_gap": ("terminal_weight", _terminal_term),
}


def extra_terms(path: EulerPath, potential: nn.Module, discriminator: nn.Module, config: FlowConfig,
                generator: torch.Generator | None = None) -> dict[str, tuple[float, Tensor]]:
    """name -> (weight, value) of every term of :data:`EXTRA_TERMS` that is on for ``config``."""
    if not config.uses_w2:
        return {}
    return {name: (getattr(config, field), term(path, potential, discriminator, config, generator))
            for name, (field, term) in EXTRA_TERMS.items() if getattr(config, field) > 0}
