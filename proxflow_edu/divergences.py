"""The W1 proximal: the Lipschitz-regularised KL divergence in its Donsker-Varadhan dual form.

D^L_KL(P || Q) = sup_{Lip(phi) <= L} { E_P[phi] - log E_Q[e^phi] }   (7), KL case, method.md §3,

with P = rho_T (generated) and Q = pi (data). The Lipschitz bound is imposed softly by the
one-sided gradient penalty (41).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def log_mean_exp(values: Tensor) -> Tensor:
    """log( (1/M) sum_j exp(values_j) ), computed stably (logsumexp - log M).

    The authors' naive log(mean(exp)) overflows in float32 once |phi| > ~88 (§6 d6).
    """
    return torch.logsumexp(values, dim=0) - math.log(values.shape[0])


def lipschitz_kl_dual(phi_generated: Tensor, phi_target: Tensor) -> Tensor:
    """Minibatch DV estimate  mean_i phi(x_N^i) - log mean_j exp(phi(y^j))  (40).

    It is the Lipschitz-regularised KL when phi is L-Lipschitz, the plain KL dual otherwise.

    Args:
        phi_generated: (M,) values phi(x) on generated samples (P = rho_T).
        phi_target: (M',) values phi(y) on data samples (Q = pi).
    """
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


def gradient_penalty_from_grad(grad: Tensor, L: float) -> Tensor:
    """GP = mean_i relu(|grad_i|^2 - L^2), one-sided, on the squared norm (41). grad: (M, *event)."""
    sq_norm = grad.flatten(1).pow(2).sum(dim=1)
    return F.relu(sq_norm - L**2).mean()


def discriminator_gradient(discriminator: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """grad_x phi(x), shape like x, differentiable w.r.t. phi's parameters (``create_graph``).

    Uses the network's explicit ``input_gradient`` when it has one (the toy MLPs), autograd otherwise.
    """
    explicit = getattr(discriminator, "input_gradient", None)
    if explicit is not None:
        return explicit(x)
    with torch.enable_grad():
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(discriminator(x).sum(), x, create_graph=True)
    return grad


def discriminator_slope(discriminator: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """|grad_x phi(x)| per sample, shape (n,): phi's actual local Lipschitz constant at x.

    The penalty (41) is soft, so this can exceed L; compare it with L to see whether the W1 bound of
    (7) is really in force (a phi with slope k L acts like the Lipschitz-kL divergence).
    """
    with torch.enable_grad():
        grad = discriminator_gradient(discriminator, x.detach())
    return grad.detach().flatten(1).norm(dim=1)


def gradient_penalty(
    discriminator: Callable[[Tensor], Tensor],
    x_generated: Tensor,
    x_target: Tensor,
    L: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One-sided gradient penalty on random interpolates, differentiable w.r.t. phi's parameters.

    Args:
        discriminator: phi, maps (M, *event) to (M,).
        x_generated, x_target: (M, *event) paired samples of rho_T and pi.
        L: Lipschitz bound.
    """
    x_hat = interpolates(x_generated.detach(), x_target.detach(), generator)
    return gradient_penalty_from_grad(discriminator_gradient(discriminator, x_hat), L)


def fit_discriminator(discriminator: nn.Module, x_generated: Tensor, x_target: Tensor, steps: int, lr: float = 1e-3,
                      L: float | None = None, gp_weight: float = 0.0, batch_size: int = 200,
                      generator: torch.Generator | None = None,
                      callback: Callable[[int, nn.Module], None] | None = None) -> list[float]:
    """Algorithm 1 alone, for fixed samples: ascend the DV dual (40) (minus gp_weight * GP (41) when L is given).

    A teaching tool: with P and Q fixed it shows what the discriminator learns, e.g. that without the
    Lipschitz bound the estimate grows without limit between mutually singular P and Q.

    Args:
        discriminator: phi, trained in place.
        x_generated: (n, *event) samples of P; x_target: (m, *event) samples of Q.
        steps: Adam steps (betas (0.5, 0.9) as in the paper); lr: learning rate.
        L, gp_weight: Lipschitz bound and penalty weight (no penalty when L is None).
        batch_size: minibatch size M.
        callback: called as callback(step, discriminator) after every step (for logging).

    Returns:
        the minibatch DV estimate after each step.
    """
    opt = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.9))
    estimates = []
    for _ in range(steps):
        x = x_generated[torch.randint(len(x_generated), (batch_size,), generator=generator)]
        y = x_target[torch.randint(len(x_target), (batch_size,), generator=generator)]
        dv = lipschitz_kl_dual(discriminator(x), discriminator(y))
        loss = -dv if L is None else -dv + gp_weight * gradient_penalty(discriminator, x, y, L, generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        estimates.append(dv.detach())
        if callback is not None:
            callback(len(estimates) - 1, discriminator)
    return torch.stack(estimates).tolist() if estimates else []
