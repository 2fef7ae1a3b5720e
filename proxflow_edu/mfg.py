"""The MFG optimality system (20)-(21) evaluated on a potential, per sample: the one HJ residual and the one
terminal-condition gap, from which the diagnostics (43)-(44) and the well-posedness penalties are built.

    HJ equation (20)          d_t U - |grad_x U|^2 / (2 lambda) = 0        (the correct sign, method.md §6 c)
    terminal condition (21)   U(., T) = phi*,  compared as gradients: grad_x U(x, T) = grad phi(x)
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor

from .flow import Potential
from .nets import input_gradient, space_time_gradient


def hj_residual_pointwise(potential: Potential, x: Tensor, t: float | Tensor, lam: float,
                          create_graph: bool = False) -> Tensor:
    """r_i = d_t U(x^i, t) - |grad_x U(x^i, t)|^2 / (2 lambda), shape (M,); zero for a solution of (20)."""
    grad_x, d_t = space_time_gradient(potential, x.detach(), t, create_graph)
    return d_t - grad_x.flatten(1).pow(2).sum(dim=1) / (2 * lam)


def terminal_gap_pointwise(potential: Potential, discriminator: Callable[[Tensor], Tensor], x_T: Tensor, T: float,
                           create_graph: bool = False) -> Tensor:
    """|grad_x U(x_T^i, T) - grad phi(x_T^i)|^2, shape (M,), x_T detached and phi fixed; zero when (21) holds."""
    x_T = x_T.detach()
    target = input_gradient(discriminator, x_T).detach()
    return (input_gradient(potential, x_T, T, create_graph=create_graph) - target).flatten(1).pow(2).sum(dim=1)

