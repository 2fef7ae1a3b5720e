"""The paper's MNIST networks (method.md §7.1), each with its input gradient by a hand-written backward.

Both share a conv trunk, two 7x7 convolutions (8 channels, no bias) each followed by 2x2 max-pooling and
ReLU, (M, 1, 28, 28) -> (M, 392), and end in a ReLU MLP head. The potential concatenates the raw scalar
time t to the 392 features.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..nets import ACTIVATIONS, MLP, NETWORK_SIZES, ScalarNetwork, init_glorot, time_column


def channels_last(x: Tensor) -> Tensor:
    """NHWC memory layout (the same values): oneDNN's 8-channel 7x7 convolutions run faster on a CPU in it."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


class ConvTrunk(nn.Module):
    """(M, 1, 28, 28) -> (M, 392): conv7x7 -> maxpool -> ReLU (or softplus), twice.

    The paper's order is conv -> ReLU -> maxpool. ReLU is monotone, so relu(max(a)) = max(relu(a)) and the
    two orders are the same function (same gradients wherever both are differentiable). Pooling first
    applies the ReLU and its backward to a tensor 4x smaller, which matters on a CPU because training
    differentiates through grad_x U. Softplus is monotone too, so the same holds for it.
    """

    def __init__(self, channels: int = 8, kernel: int = 7, activation: str = "relu") -> None:
        super().__init__()
        if activation not in ("relu", "softplus"):
            raise ValueError(f"activation must be 'relu' or 'softplus', got activation={activation!r}")
        self.conv1 = nn.Conv2d(1, channels, kernel, padding=kernel // 2, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False)
        self.act, self.slope = ACTIVATIONS[activation]

    def forward(self, x: Tensor) -> Tensor:
        """(M, 1, 28, 28) -> (M, 392)."""
        h = self.act(F.max_pool2d(self.conv1(x), 2))
        return self.act(F.max_pool2d(self.conv2(h), 2)).flatten(1)

    def forward_with_backward(self, x: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
        """The features of :meth:`forward` and a function mapping d out / d features to d out / d x.

        The backward is written out: the activation's slope (ReLU: a 0/1 mask), max-unpooling to the argmax
        positions (exactly where autograd sends the gradient) and the transposed convolutions, all first-order
        differentiable.
        """
        z1 = self.conv1(x)
        p1, i1 = F.max_pool2d(z1, 2, return_indices=True)
        a1 = self.act(p1)
        z2 = self.conv2(a1)
        p2, i2 = F.max_pool2d(z2, 2, return_indices=True)
        a2 = self.act(p2)

        def backward(g_features: Tensor) -> Tensor:
            g = g_features.reshape(p2.shape) * self.slope(p2, a2)
            # max_unpool2d answers in NCHW; in it, oneDNN has no transposed convolution and PyTorch's fallback is
            # 3-4x slower (the same values), hence channels_last before each conv_transpose2d
            g = channels_last(F.max_unpool2d(g, i2, 2, output_size=z2.shape[-2:]))
            g = F.conv_transpose2d(g, self.conv2.weight, padding=self.conv2.padding) * self.slope(p1, a1)
            g = channels_last(F.max_unpool2d(g, i1, 2, output_size=z1.shape[-2:]))
            return F.conv_transpose2d(g, self.conv1.weight, padding=self.conv1.padding)

        return a2.flatten(1), backward


class CNNPotential(ScalarNetwork):
    """The paper's MNIST potential U(x, t): conv trunk, concat raw t, 393 -> 512^3 -> 1 (731,081 params).

    ``activation="softplus"`` (``FlowConfig.smooth_potential``) replaces every ReLU by softplus: the paper's ReLU
    network is piecewise linear in x, so grad_x U is piecewise constant and the HJ equation's D^2 U is 0 almost
    everywhere, while the characteristics argument assumes U in C^2 (max-pooling keeps kinks where the argmax
    switches).
    """

    def __init__(self, width: int = NETWORK_SIZES["mnist_cnn"]["potential"][0],
                 depth: int = NETWORK_SIZES["mnist_cnn"]["potential"][1], activation: str = "relu") -> None:
        super().__init__()
        self.trunk = ConvTrunk(activation=activation)
        self.head = MLP([392 + 1, *[width] * depth, 1], activation)
        init_glorot(self)
        self.trunk.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        """x: (M, 1, 28, 28), t: float or (M,) -> U: (M,)."""
        h = self.trunk(channels_last(x))
        return self.head(torch.cat([h, time_column(t, h)], dim=1))

    def input_gradient(self, x: Tensor, t: float | Tensor, create_graph: bool = False) -> Tensor:
        """grad_x U(x, t), shape like x: the head's backward, then the trunk's."""
        with torch.set_grad_enabled(create_graph):
            features, backward = self.trunk.forward_with_backward(channels_last(x))
            g = self.head.backward_input(torch.cat([features, time_column(t, features)], dim=1))
            return backward(g[:, : features.shape[1]])


class CNNDiscriminator(ScalarNetwork):
    """The paper's MNIST discriminator phi(x): conv trunk, 392 -> 256^3 -> 1 (235,977 params)."""

    def __init__(self, width: int = NETWORK_SIZES["mnist_cnn"]["discriminator"][0],
                 depth: int = NETWORK_SIZES["mnist_cnn"]["discriminator"][1]) -> None:
        super().__init__()
        self.trunk = ConvTrunk()
        self.head = MLP([392, *[width] * depth, 1], "relu")
        init_glorot(self)
        self.trunk.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        """x: (M, 1, 28, 28) -> phi: (M,)."""
        return self.head(self.trunk(channels_last(x)))

    def input_gradient(self, x: Tensor, create_graph: bool = False) -> Tensor:
        """grad_x phi(x), shape like x: the head's backward, then the trunk's."""
        with torch.set_grad_enabled(create_graph):
            features, backward = self.trunk.forward_with_backward(channels_last(x))
            return backward(self.head.backward_input(features))
