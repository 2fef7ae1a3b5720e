"""The two proximal terms of the losses (method.md §2-§3).

* W1 proximal: the Lipschitz-regularised KL divergence in its Donsker-Varadhan dual form,
  D^L_KL(P || Q) = sup_{Lip(phi) <= L} { E_P[phi] - log E_Q[e^phi] }   (7), KL case,
  with P = rho_T (generated) and Q = pi (data); the bound is imposed softly by the one-sided
  gradient penalty (41).
* W2 proximal: the kinetic energy of the Euler path, KE_h = (1/M) sum_i sum_n h |v_n^i|^2 / 2, in (42);
  the one kinetic energy of the package (uniform and non-uniform grids, velocities or positions).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F


def log_mean_exp(values: Tensor) -> Tensor:
    """log( (1/M) sum_j exp(values_j) ), computed stably (logsumexp - log M)."""
    # the authors' naive log(mean(exp)) overflows in float32 once |phi| > ~88 (§6 d6)
    return torch.logsumexp(values, dim=0) - math.log(values.shape[0])


def lipschitz_kl_dual(phi_generated: Tensor, phi_target: Tensor) -> Tensor:
    """Minibatch DV estimate  mean_i phi(x_N^i) - log mean_j exp(phi(y^j))  (40), for phi (M,) on generated
    samples (P = rho_T) and (M',) on data (Q = pi): the Lipschitz-regularised KL when phi is L-Lipschitz."""
    return phi_generated.mean() - log_mean_exp(phi_target)


def f_dual_nu(phi_generated: Tensor, phi_target: Tensor, nu: float | Tensor) -> Tensor:
    """The f*-form of (7) for KL at a given shift nu:  E_P[phi] - nu - E_Q[exp(phi - nu - 1)].

    f(s) = s log s, f*(y) = e^{y-1}. Maximising over nu gives nu* = log E_Q e^phi - 1,
    where it equals :func:`lipschitz_kl_dual`.
    """
    return phi_generated.mean() - nu - torch.exp(phi_target - nu - 1).mean()


def interpolates(x_generated: Tensor, x_target: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """x_hat^i = s_i y^i + (1 - s_i) x^i with s_i ~ U[0, 1] i.i.d. per sample (41)."""
    if x_generated.shape != x_target.shape:
        raise ValueError(f"x_generated and x_target must have the same shape, got {tuple(x_generated.shape)} "
                         f"and {tuple(x_target.shape)}")
    s_shape = (x_generated.shape[0],) + (1,) * (x_generated.dim() - 1)
    s = torch.rand(s_shape, generator=generator, dtype=x_generated.dtype, device=x_generated.device)
    return s * x_target + (1 - s) * x_generated


def gradient_penalty(grad_phi: Tensor, L: float) -> Tensor:
    """GP = mean_i relu(|grad phi(x_hat^i)|^2 - L^2), one-sided, on the squared norm (41).

    ``grad_phi``: (M, *event) grad_x phi at the interpolates x_hat (:func:`interpolates`); L: the Lipschitz bound.
    """
    sq_norm = grad_phi.flatten(1).pow(2).sum(dim=1)
    return F.relu(sq_norm - L**2).mean()


def kinetic_energy(velocities: Tensor, h: float | Sequence[float]) -> Tensor:
    """KE_h = (1/M) sum_i sum_n h_n |v_n^i|^2 / 2, the discrete Benamou-Brenier action of an Euler path (42).

    ``velocities``: (N, M, *event) the v_n of the Euler steps (not re-evaluated at x_{n+1}, §6 a); ``h``: the step,
    or the N steps h_n = t_{n+1} - t_n of the path's grid (``EulerPath.steps``). 0-d, differentiable.
    """
    sq = velocities.flatten(2).pow(2).sum(dim=2)  # (N, M): |v_n^i|^2
    if not isinstance(h, (int, float)):
        steps = torch.tensor(h, dtype=sq.dtype, device=sq.device)
        if bool((steps != steps[0]).any()):  # a non-uniform grid: h_n inside the sum over n
            return 0.5 * (steps[:, None] * sq).sum(dim=0).mean()
        h = float(h[0])
    return 0.5 * h * sq.sum(dim=0).mean()  # a uniform grid: h factored out, as (42) is written
