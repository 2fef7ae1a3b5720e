"""Networks: the potential U_theta(x, t) and the discriminator phi_omega(x).

Two families, both from the paper's code (method.md §7.1, §8):

* toys: an MLP potential ``(d+1) -> width^depth -> 1`` with tanh (smooth, so that
  the HJ residual and the Hopf-Lax paths are meaningful) and a ReLU MLP discriminator;
* MNIST: two 7x7 conv layers (no bias) + max-pooling, then an MLP; the potential
  concatenates the raw scalar time t to the 392 conv features.

Every network maps a batch to one scalar per sample: ``U(x, t)`` has shape ``(M,)``
for ``x`` of shape ``(M, *event_shape)`` and ``t`` a float or a tensor of shape ``(M,)``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


def _init_glorot(module: nn.Module) -> None:
    """Glorot/Xavier-normal weights and zero biases, as in the authors' code (§5)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _mlp(sizes: Sequence[int], activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def _time_column(t: float | Tensor, x: Tensor) -> Tensor:
    """Broadcast ``t`` (float, 0-d or shape (M,)) to a column of shape (M, 1)."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return t.expand(x.shape[0]).reshape(-1, 1) if t.dim() == 0 else t.reshape(-1, 1)


class MLPPotential(nn.Module):
    """U_theta(x, t) for x in R^d: an MLP on the concatenation (x, t).

    Args:
        dim: data dimension d.
        width: hidden units per layer (paper: 48).
        depth: number of hidden layers (paper: 5).
    """

    def __init__(self, dim: int, width: int = 48, depth: int = 5) -> None:
        super().__init__()
        self.dim = dim
        self.net = _mlp([dim + 1, *[width] * depth, 1], nn.Tanh)
        _init_glorot(self)

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        """x: (M, d), t: float or (M,) -> U: (M,)."""
        return self.net(torch.cat([x, _time_column(t, x)], dim=1)).squeeze(1)


class MLPDiscriminator(nn.Module):
    """phi_omega(x) for x in R^d: a ReLU MLP (paper: d -> 48^3 -> 1)."""

    def __init__(self, dim: int, width: int = 48, depth: int = 3) -> None:
        super().__init__()
        self.dim = dim
        self.net = _mlp([dim, *[width] * depth, 1], nn.ReLU)
        _init_glorot(self)

    def forward(self, x: Tensor) -> Tensor:
        """x: (M, d) -> phi: (M,)."""
        return self.net(x).squeeze(1)


def _conv_trunk(channels: int = 8, kernel: int = 7) -> nn.Sequential:
    """(M, 1, 28, 28) -> (M, 392): conv7x7 -> ReLU -> maxpool, twice (method.md §7.1)."""
    pad = kernel // 2
    return nn.Sequential(
        nn.Conv2d(1, channels, kernel, padding=pad, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(channels, channels, kernel, padding=pad, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
    )


class CNNPotential(nn.Module):
    """The paper's MNIST potential U(x, t): conv trunk, concat raw t, 393 -> 512^3 -> 1 (731,081 params)."""

    def __init__(self, width: int = 512) -> None:
        super().__init__()
        self.trunk = _conv_trunk()
        self.head = _mlp([392 + 1, width, width, width, 1], nn.ReLU)
        _init_glorot(self)

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        """x: (M, 1, 28, 28), t: float or (M,) -> U: (M,)."""
        h = self.trunk(x)
        return self.head(torch.cat([h, _time_column(t, h)], dim=1)).squeeze(1)


class CNNDiscriminator(nn.Module):
    """The paper's MNIST discriminator phi(x): conv trunk, 392 -> 256^3 -> 1 (235,977 params)."""

    def __init__(self, width: int = 256) -> None:
        super().__init__()
        self.trunk = _conv_trunk()
        self.head = _mlp([392, width, width, width, 1], nn.ReLU)
        _init_glorot(self)

    def forward(self, x: Tensor) -> Tensor:
        """x: (M, 1, 28, 28) -> phi: (M,)."""
        return self.head(self.trunk(x)).squeeze(1)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
