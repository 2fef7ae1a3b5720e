"""A-posteriori checks of the MFG optimality system (method.md §2, §4, §5). None of these enter a loss.

* kinetic energy of an Euler path, KE_h = (1/M) sum_i sum_n h |v_n^i|^2 / 2            (§2)
* HJ residual  R_HJ = h sum_n mean_i | d_t U - |grad U|^2 / (2 lambda) |  at (x_n, t_n)  (43), correct sign
* terminal error R_T = RMS_i | grad U(x_N, T) - grad phi(x_N) |                          (44)
* straightness = total path length / chord length - 1   (0 for straight lines)
* the straight-line (Hopf-Lax) prediction x(t) = x(T) + ((T - t)/lambda) grad phi(x(T))  (29)
* the discretisation gap: the same prior samples pushed with step h and with a finer step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .flow import Potential, generate, num_steps


def kinetic_energy(velocities: Tensor, h: float) -> Tensor:
    """KE_h = (1/M) sum_i sum_n h |v_n^i|^2 / 2.

    Args:
        velocities: (N, M, *event) the v_n used in the Euler steps (not re-evaluated at x_{n+1}, §6 a).
        h: step size.

    Returns:
        0-d tensor, differentiable if ``velocities`` is.
    """
    return 0.5 * h * velocities.flatten(2).pow(2).sum(dim=2).sum(dim=0).mean()


def path_kinetic_energy(path: Tensor, h: float) -> Tensor:
    """KE_h from positions: (1/M) sum_i sum_n |x_{n+1} - x_n|^2 / (2h); equals :func:`kinetic_energy` for Euler paths.

    Args:
        path: (N+1, M, *event).
    """
    inc = (path[1:] - path[:-1]).flatten(2)
    return inc.pow(2).sum(dim=2).sum(dim=0).mean() / (2 * h)


def chord_kinetic_energy(path: Tensor, T: float) -> Tensor:
    """(1/M) sum_i |x_N - x_0|^2 / (2T), the least KE of any path with these end points (Benamou-Brenier)."""
    return (path[-1] - path[0]).flatten(1).pow(2).sum(dim=1).mean() / (2 * T)


def straightness(path: Tensor) -> float:
    """sum_i (path length)_i / sum_i |x_N^i - x_0^i|  - 1: 0 for straight paths, > 0 for curved ones.

    Args:
        path: (N+1, M, *event).
    """
    length = (path[1:] - path[:-1]).flatten(2).norm(dim=2).sum()
    chord = (path[-1] - path[0]).flatten(1).norm(dim=1).sum()
    return float(length / chord.clamp_min(1e-12) - 1)


def _grad_x_t(potential: Potential, x: Tensor, t: float) -> tuple[Tensor, Tensor]:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        tt = torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device, requires_grad=True)
        gx, gt = torch.autograd.grad(potential(x, tt).sum(), (x, tt), allow_unused=True)
    # a time-independent U has d_t U = 0 (autograd reports it as unused)
    return gx, torch.zeros_like(tt) if gt is None else gt


def hj_residual_pointwise(potential: Potential, x: Tensor, t: float, lam: float) -> Tensor:
    """d_t U(x, t) - |grad_x U(x, t)|^2 / (2 lambda), shape (M,). Zero for a solution of the HJ equation (20)."""
    gx, gt = _grad_x_t(potential, x, t)
    return gt - gx.flatten(1).pow(2).sum(dim=1) / (2 * lam)


def hj_residual(potential: Potential, path: Tensor, h: float, lam: float, centered: bool = False) -> float:
    """R_HJ = h sum_{n<N} (1/M) sum_i |d_t U - |grad U|^2/(2 lambda)| at (x_n^i, t_n)   (43).

    Args:
        potential: U(x, t).
        path: (N+1, M, *event) states of a generated path; the last state is not used.
        h: step of the path; lam: lambda.
        centered: subtract, at each t_n, the mean residual over the particles. Training only sees
            grad_x U, so U + c(t) is as good as U while its residual is off by c'(t); the centred value
            ignores that time-only drift.
    """
    total = torch.zeros(())
    for n in range(path.shape[0] - 1):
        r = hj_residual_pointwise(potential, path[n], n * h, lam)
        total = total + (r - r.mean() if centered else r).abs().mean()
    return float(h * total)


def terminal_error(potential: Potential, discriminator: Callable[[Tensor], Tensor], x_T: Tensor, T: float) -> float:
    """R_T = ( (1/M) sum_i |grad_x U(x_T^i, T) - grad phi(x_T^i)|^2 )^{1/2}   (44).

    Gradients are compared because U(., T) = phi* holds only up to a constant.
    """
    gu, _ = _grad_x_t(potential, x_T, T)
    with torch.enable_grad():
        x = x_T.detach().requires_grad_(True)
        (gphi,) = torch.autograd.grad(discriminator(x).sum(), x)
    return float((gu - gphi).flatten(1).pow(2).sum(dim=1).mean().sqrt())


def straight_line_path(discriminator: Callable[[Tensor], Tensor], x_T: Tensor, times: Tensor, T: float,
                       lam: float) -> Tensor:
    """The MFG prediction (29): x(t) = x(T) + ((T - t)/lambda) grad phi*(x(T)).

    Args:
        discriminator: phi (taken as phi*).
        x_T: (M, *event) end points.
        times: (K,) times in [0, T].

    Returns:
        (K, M, *event) predicted positions.
    """
    with torch.enable_grad():
        x = x_T.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(discriminator(x).sum(), x)
    shape = (-1,) + (1,) * x_T.dim()
    return x_T.detach() + ((T - times.to(x_T)).reshape(shape) / lam) * g


@dataclass
class DiscretizationGap:
    """Same prior samples pushed at a coarse step h and a fine step h_fine.

    Attributes:
        mean_distance: mean_i |x_T^h - x_T^fine|.
        relative: mean_distance / mean_i |x_T^fine - x_0|, the change relative to how far samples move.
        rms: sqrt(mean over all coordinates of (x_T^h - x_T^fine)^2) (RMS pixel change for images).
        x_coarse, x_fine: (M, *event) the two sets of samples.
    """

    mean_distance: float
    relative: float
    rms: float
    x_coarse: Tensor
    x_fine: Tensor


def discretization_gap(potential: Potential, x0: Tensor, T: float, h: float, lam: float,
                       h_fine: float | None = None) -> DiscretizationGap:
    """Compare x_T from step h with x_T from step h_fine (default h/64) for the same x0."""
    h_fine = h / 64 if h_fine is None else h_fine
    num_steps(T, h_fine)
    xc = generate(potential, x0, T, h, lam)
    xf = generate(potential, x0, T, h_fine, lam)
    dist = (xc - xf).flatten(1).norm(dim=1).mean()
    moved = (xf - x0).flatten(1).norm(dim=1).mean()
    return DiscretizationGap(float(dist), float(dist / moved.clamp_min(1e-12)),
                             float((xc - xf).pow(2).mean().sqrt()), xc, xf)
