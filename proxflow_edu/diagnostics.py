"""A-posteriori checks of the MFG optimality system (method.md §2, §4, §5). None of these enter a loss.

* kinetic energy from positions and the chord energy, the least KE with the same end points   (§2)
* HJ residual  R_HJ = h sum_n mean_i | d_t U - |grad U|^2 / (2 lambda) |  at (x_n, t_n)     (43), correct sign
* terminal error R_T = RMS_i | grad U(x_N, T) - grad phi(x_N) |                             (44)
* straightness = total path length / chord length - 1   (0 for straight lines)
* the straight-line (Hopf-Lax) prediction x(t) = x(T) + ((T - t)/lambda) grad phi(x(T))     (29)
* the discretisation gap: the same prior samples pushed with step h and with a finer step
* the slope |grad phi| of the discriminator, against the Lipschitz bound L of (7)
"""
# R_HJ and R_T are built on mfg.hj_residual_pointwise (re-exported here) and mfg.terminal_gap_pointwise, the
# same quantities the penalties of proxflow_edu.wellposed use.
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .flow import Potential, euler_flow
from .mfg import hj_residual_pointwise, terminal_gap_pointwise
from .nets import input_gradient
from .objectives import kinetic_energy


def path_kinetic_energy(path: Tensor, h: float) -> Tensor:
    """KE_h from positions (N+1, M, *event): (1/M) sum_i sum_n |x_{n+1} - x_n|^2 / (2h)."""
    return kinetic_energy((path[1:] - path[:-1]) / h, h)


def chord_kinetic_energy(path: Tensor, T: float) -> Tensor:
    """(1/M) sum_i |x_N - x_0|^2 / (2T), the least KE of any path with these end points (Benamou-Brenier)."""
    return (path[-1] - path[0]).flatten(1).pow(2).sum(dim=1).mean() / (2 * T)


def straightness(path: Tensor) -> float:
    """sum_i (path length)_i / sum_i |x_N^i - x_0^i| - 1 of a path (N+1, M, *event): 0 for straight paths."""
    length = (path[1:] - path[:-1]).flatten(2).norm(dim=2).sum()
    chord = (path[-1] - path[0]).flatten(1).norm(dim=1).sum()
    return float(length / chord.clamp_min(1e-12) - 1)


def hj_residual(potential: Potential, path: Tensor, h: float, lam: float, centered: bool = False) -> float:
    """R_HJ = h sum_{n<N} (1/M) sum_i |d_t U - |grad U|^2/(2 lambda)| at (x_n^i, t_n)   (43).

    ``path``: (N+1, M, *event) states of a generated path with step h (the last state is not used).
    ``centered``: subtract, at each t_n, the mean residual over the particles.
    """
    # Training only sees grad_x U, so U + c(t) is as good as U while its residual is off by c'(t); the centred
    # value ignores that time-only drift.
    total = torch.zeros(())
    for n in range(path.shape[0] - 1):
        r = hj_residual_pointwise(potential, path[n], n * h, lam)
        total = total + (r - r.mean() if centered else r).abs().mean()
    return float(h * total)


def terminal_error(potential: Potential, discriminator: Callable[[Tensor], Tensor], x_T: Tensor, T: float) -> float:
    """R_T = ( (1/M) sum_i |grad_x U(x_T^i, T) - grad phi(x_T^i)|^2 )^{1/2}   (44), the terminal condition (21).

    Gradients are compared because U(., T) = phi* holds only up to a constant.
    """
    return float(terminal_gap_pointwise(potential, discriminator, x_T, T).mean().sqrt())


def straight_line_path(discriminator: Callable[[Tensor], Tensor], x_T: Tensor, times: Tensor, T: float,
                       lam: float) -> Tensor:
    """The MFG prediction (29) x(t) = x(T) + ((T - t)/lambda) grad phi*(x(T)), phi taken as phi*.

    For end points x_T (M, *event) and times (K,) in [0, T]: the predicted positions (K, M, *event).
    """
    shape = (-1,) + (1,) * x_T.dim()
    return x_T.detach() + ((T - times.to(x_T)).reshape(shape) / lam) * input_gradient(discriminator, x_T)


def discriminator_slope(discriminator: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """|grad_x phi(x)| per sample, shape (n,): phi's actual local Lipschitz constant at x."""
    # The penalty (41) is soft, so this can exceed L; compare it with L to see whether the W1 bound of (7) is really
    # in force (a phi with slope k L acts like the Lipschitz-kL divergence).
    return input_gradient(discriminator, x).flatten(1).norm(dim=1)


@dataclass
class DiscretizationGap:
    """Same prior samples pushed at a coarse step h and a fine step h_fine."""

    mean_distance: float  # mean_i |x_T^h - x_T^fine|
    relative: float       # mean_distance / mean_i |x_T^fine - x_0|: the change relative to how far samples move
    rms: float            # sqrt(mean over all coordinates of (x_T^h - x_T^fine)^2) (RMS pixel change for images)
    x_coarse: Tensor      # (M, *event) the two sets of samples
    x_fine: Tensor


def discretization_gap(potential: Potential, x0: Tensor, T: float, h: float, lam: float,
                       h_fine: float | None = None) -> DiscretizationGap:
    """Compare x_T from step h with x_T from step h_fine (default h/64) for the same x0."""
    xc = euler_flow(potential, x0, T, h, lam).final
    xf = euler_flow(potential, x0, T, h / 64 if h_fine is None else h_fine, lam).final
    dist = (xc - xf).flatten(1).norm(dim=1).mean()
    moved = (xf - x0).flatten(1).norm(dim=1).mean()
    return DiscretizationGap(float(dist), float(dist / moved.clamp_min(1e-12)),
                             float((xc - xf).pow(2).mean().sqrt()), xc, xf)
