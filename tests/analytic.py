"""Closed-form potentials for the tests (method.md §9)."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class QuadraticPotential(nn.Module):
    """U(x, t) = c |x|^2 / 2 (time-independent)."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        return 0.5 * self.c * x.flatten(1).pow(2).sum(1)


class HopfLaxPotential(nn.Module):
    """U(x, t) = a lam |x|^2 / (2 (lam + sign a (T - t))): sign=+1 solves the correct HJ equation (20) with
    U(., T) = a|x|^2/2; sign=-1 solves the authors' wrong-sign equation (method.md §9.4)."""

    def __init__(self, a: float, lam: float, T: float, sign: float = 1.0) -> None:
        super().__init__()
        self.a, self.lam, self.T, self.sign = a, lam, T, sign

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        t = torch.as_tensor(t, dtype=x.dtype)
        denom = 2 * (self.lam + self.sign * self.a * (self.T - t))
        return self.a * self.lam * x.flatten(1).pow(2).sum(1) / denom


class QuadraticDiscriminator(nn.Module):
    """phi(x) = a |x|^2 / 2."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = a

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * self.a * x.flatten(1).pow(2).sum(1)


class LinearDiscriminator(nn.Module):
    """phi(x) = w . x + b."""

    def __init__(self, w: Tensor, b: float = 0.0) -> None:
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.w + self.b
