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

from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F


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


def _explicit_input_gradient(linears: Sequence[nn.Linear], h: Tensor, activation: str) -> Tensor:
    """d out / d h for the MLP ``Linear, act, ..., Linear(., 1)`` by an explicit backward pass, (M, in).

    g_{k-1} = (g_k * act'(z_k)) W_k gives the values autograd would, built from ordinary differentiable
    tensor operations, so training needs first-order autograd only and sampling none.
    """
    slopes = []
    for layer in linears[:-1]:
        z = layer(h)
        h = torch.tanh(z) if activation == "tanh" else torch.relu(z)
        # tanh' = 1 - tanh^2; relu' = 1[z > 0] (0 at 0, as in autograd)
        slopes.append(1 - h * h if activation == "tanh" else (z > 0).to(z.dtype))
    g = linears[-1].weight.expand(h.shape[0], -1)
    for layer, slope in zip(reversed(linears[:-1]), reversed(slopes)):
        g = (g * slope) @ layer.weight
    return g


def _linears(seq: nn.Sequential) -> list[nn.Linear]:
    return [m for m in seq if isinstance(m, nn.Linear)]


class _ExplicitGradientMLP(nn.Module):
    """An MLP ``sizes[0] -> ... -> 1`` that also returns its input gradient by an explicit backward pass.

    Training differentiates through grad_x U (and the gradient penalty through grad_x phi). Writing the
    input gradient as ordinary tensor operations, g_{k-1} = (g_k * sigma'(z_k)) W_k, gives the values
    autograd would, but the parameter update then needs only first-order autograd, and sampling needs
    no autograd at all: about twice as fast on a CPU for these small networks.
    """

    def __init__(self, sizes: Sequence[int], activation: str) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = activation
        _init_glorot(self)

    def _act(self, z: Tensor) -> Tensor:
        return torch.tanh(z) if self.activation == "tanh" else torch.relu(z)

    def output(self, h: Tensor) -> Tensor:
        """(M, sizes[0]) -> (M,)."""
        for layer in self.layers[:-1]:
            h = self._act(layer(h))
        return self.layers[-1](h).squeeze(1)

    def input_gradient(self, h: Tensor) -> Tensor:
        """d output / d input, (M, sizes[0]); differentiable w.r.t. the weights and the input."""
        return _explicit_input_gradient(list(self.layers), h, self.activation)


class MLPPotential(nn.Module):
    """U_theta(x, t) for x in R^d: a tanh MLP on the concatenation (x, t).

    Args:
        dim: data dimension d.
        width: hidden units per layer (paper: 48).
        depth: number of hidden layers (paper: 5).
    """

    def __init__(self, dim: int, width: int = 48, depth: int = 5) -> None:
        super().__init__()
        self.dim = dim
        self.net = _ExplicitGradientMLP([dim + 1, *[width] * depth, 1], "tanh")

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        """x: (M, d), t: float or (M,) -> U: (M,)."""
        return self.net.output(torch.cat([x, _time_column(t, x)], dim=1))

    def input_gradient(self, x: Tensor, t: float | Tensor) -> Tensor:
        """grad_x U(x, t), (M, d), by the explicit backward pass."""
        return self.net.input_gradient(torch.cat([x, _time_column(t, x)], dim=1))[:, : self.dim]


class MLPDiscriminator(nn.Module):
    """phi_omega(x) for x in R^d: a ReLU MLP (paper: d -> 48^3 -> 1)."""

    def __init__(self, dim: int, width: int = 48, depth: int = 3) -> None:
        super().__init__()
        self.dim = dim
        self.net = _ExplicitGradientMLP([dim, *[width] * depth, 1], "relu")

    def forward(self, x: Tensor) -> Tensor:
        """x: (M, d) -> phi: (M,)."""
        return self.net.output(x)

    def input_gradient(self, x: Tensor) -> Tensor:
        """grad_x phi(x), (M, d), by the explicit backward pass."""
        return self.net.input_gradient(x)


def _conv_trunk(channels: int = 8, kernel: int = 7) -> nn.Sequential:
    """(M, 1, 28, 28) -> (M, 392): conv7x7 -> ReLU -> maxpool, twice (method.md §7.1).

    Written as conv -> maxpool -> ReLU: ReLU is monotone, so relu(max(a)) = max(relu(a)) and the two
    orders are the same function (same gradients wherever both are differentiable). Pooling first applies
    the ReLU and its (double) backward to a tensor 4x smaller, which matters on a CPU because training
    differentiates through grad_x U (second derivatives).
    """
    pad = kernel // 2
    return nn.Sequential(
        nn.Conv2d(1, channels, kernel, padding=pad, bias=False), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(channels, channels, kernel, padding=pad, bias=False), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(),
    )


def _channels_last(x: Tensor) -> Tensor:
    """NHWC memory layout (the same values): oneDNN's 8-channel 7x7 convolutions run faster on a CPU in it."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def _trunk_forward_with_backward(trunk: nn.Sequential, x: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """Features (M, 392) of the conv trunk and a function mapping d out / d features to d out / d x.

    The backward is written out: ReLU mask, max-unpooling to the argmax positions (exactly where autograd
    sends the gradient) and the transposed convolution, all first-order differentiable.
    """
    conv1, conv2 = trunk[0], trunk[3]
    z1 = conv1(x)
    p1, i1 = F.max_pool2d(z1, 2, return_indices=True)
    z2 = conv2(torch.relu(p1))
    p2, i2 = F.max_pool2d(z2, 2, return_indices=True)

    def backward(g_features: Tensor) -> Tensor:
        g = g_features.reshape(p2.shape) * (p2 > 0)
        g = F.max_unpool2d(g, i2, 2, output_size=z2.shape[-2:])
        g = F.conv_transpose2d(g, conv2.weight, padding=conv2.padding) * (p1 > 0)
        g = F.max_unpool2d(g, i1, 2, output_size=z1.shape[-2:])
        return F.conv_transpose2d(g, conv1.weight, padding=conv1.padding)

    return torch.relu(p2).flatten(1), backward


class CNNPotential(nn.Module):
    """The paper's MNIST potential U(x, t): conv trunk, concat raw t, 393 -> 512^3 -> 1 (731,081 params)."""

    def __init__(self, width: int = 512) -> None:
        super().__init__()
        self.trunk = _conv_trunk()
        self.head = _mlp([392 + 1, width, width, width, 1], nn.ReLU)
        _init_glorot(self)
        self.trunk.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        """x: (M, 1, 28, 28), t: float or (M,) -> U: (M,)."""
        h = self.trunk(_channels_last(x))
        return self.head(torch.cat([h, _time_column(t, h)], dim=1)).squeeze(1)

    def input_gradient(self, x: Tensor, t: float | Tensor) -> Tensor:
        """grad_x U(x, t), shape like x, by the explicit backward pass (same values as autograd)."""
        features, backward = _trunk_forward_with_backward(self.trunk, _channels_last(x))
        head_input = torch.cat([features, _time_column(t, features)], dim=1)
        g = _explicit_input_gradient(_linears(self.head), head_input, "relu")
        return backward(g[:, : features.shape[1]])


class CNNDiscriminator(nn.Module):
    """The paper's MNIST discriminator phi(x): conv trunk, 392 -> 256^3 -> 1 (235,977 params)."""

    def __init__(self, width: int = 256) -> None:
        super().__init__()
        self.trunk = _conv_trunk()
        self.head = _mlp([392, width, width, width, 1], nn.ReLU)
        _init_glorot(self)
        self.trunk.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        """x: (M, 1, 28, 28) -> phi: (M,)."""
        return self.head(self.trunk(_channels_last(x))).squeeze(1)

    def input_gradient(self, x: Tensor) -> Tensor:
        """grad_x phi(x), shape like x, by the explicit backward pass (same values as autograd)."""
        features, backward = _trunk_forward_with_backward(self.trunk, _channels_last(x))
        return backward(_explicit_input_gradient(_linears(self.head), features, "relu"))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
