"""Networks U_theta(x, t) and phi_omega(x), and the one way to take their gradient in x.

Every network maps a batch to one scalar per sample: ``U(x, t)`` has shape ``(M,)`` for ``x`` of shape
``(M, *event_shape)`` and ``t`` a float or a tensor of shape ``(M,)``; ``phi(x)`` has shape ``(M,)``.

The flow needs grad_x U and the gradient penalty needs grad_x phi, both inside a loss that is
back-propagated to the weights. :func:`input_gradient` is the one place that computes them. A
:class:`ScalarNetwork` answers it with its :meth:`~ScalarNetwork.input_gradient` method, which is autograd
by default; a network with a hand-written backward (the MLPs here, the CNNs in ``proxflow_edu.mnist``)
overrides that method next to its forward. Any other callable goes through autograd.

The toy networks are the paper's (method.md §8): a tanh MLP potential ``(d+1) -> 48^5 -> 1`` (smooth,
so that the HJ residual and the Hopf-Lax paths are meaningful) and a ReLU MLP discriminator ``d -> 48^3 -> 1``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def autograd_input_gradient(f: Callable[..., Tensor], x: Tensor, *cond: float | Tensor,
                            create_graph: bool = False) -> Tensor:
    """grad_x f(x, *cond) by autograd, shape like x; with ``create_graph`` it stays differentiable."""
    with torch.enable_grad():
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(f(x, *cond).sum(), x, create_graph=create_graph)
    return grad


class ScalarNetwork(nn.Module):
    """A network with one scalar output per sample, ``f(x, *cond) -> (M,)``, that knows its input gradient."""

    def input_gradient(self, x: Tensor, *cond: float | Tensor, create_graph: bool = False) -> Tensor:
        """grad_x f(x, *cond), shape like x. Autograd here; subclasses override it with an explicit backward.

        With ``create_graph`` the result is differentiable w.r.t. the weights (training); without it no
        graph is kept (sampling, diagnostics).
        """
        return autograd_input_gradient(self, x, *cond, create_graph=create_graph)


def input_gradient(f: Callable[..., Tensor], x: Tensor, *cond: float | Tensor, create_graph: bool = False) -> Tensor:
    """grad_x f(x, *cond) for a :class:`ScalarNetwork` (its own method) or any callable (autograd)."""
    if isinstance(f, ScalarNetwork):
        return f.input_gradient(x, *cond, create_graph=create_graph)
    return autograd_input_gradient(f, x, *cond, create_graph=create_graph)


def init_glorot(module: nn.Module) -> None:
    """Glorot/Xavier-normal weights and zero biases, as in the authors' code (§5)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def time_column(t: float | Tensor, x: Tensor) -> Tensor:
    """Broadcast ``t`` (float, 0-d or shape (M,)) to a column of shape (M, 1)."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return t.expand(x.shape[0]).reshape(-1, 1) if t.dim() == 0 else t.reshape(-1, 1)


# name -> (sigma, sigma' as a function of (z, sigma(z))): tanh' = 1 - tanh^2; relu' = 1[z > 0] (0 at 0, as in
# autograd); softplus' = sigmoid (a smooth ReLU: C^infinity, so grad_x U is C^1 and its HJ residual is defined)
ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor, Tensor], Tensor]]] = {
    "tanh": (torch.tanh, lambda z, a: 1 - a * a),
    "relu": (torch.relu, lambda z, a: (z > 0).to(z.dtype)),
    "softplus": (F.softplus, lambda z, a: torch.sigmoid(z)),
}


class MLP(nn.Module):
    """``sizes[0] -> ... -> sizes[-1] = 1`` with tanh, ReLU or softplus, and its input gradient by a hand-written backward.

    Training differentiates through grad_x U (and the gradient penalty through grad_x phi). Written as
    ordinary tensor operations, g_{k-1} = (g_k * sigma'(z_k)) W_k, the input gradient has the values autograd
    would give, but the weight update then needs first-order autograd only and sampling none: about twice
    as fast on a CPU for these small networks. Initialised by its owner (so that the random stream is the
    same as for the equivalent ``nn.Sequential``).
    """

    def __init__(self, sizes: Sequence[int], activation: str) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got activation={activation!r}")
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = activation

    def _act(self, z: Tensor) -> Tensor:
        return ACTIVATIONS[self.activation][0](z)

    def forward(self, h: Tensor) -> Tensor:
        """(M, sizes[0]) -> (M,)."""
        for layer in self.layers[:-1]:
            h = self._act(layer(h))
        return self.layers[-1](h).squeeze(1)

    def backward_input(self, h: Tensor) -> Tensor:
        """d forward / d h, (M, sizes[0]), differentiable w.r.t. the weights and the input."""
        slopes = []
        for layer in self.layers[:-1]:
            z = layer(h)
            h = self._act(z)
            slopes.append(ACTIVATIONS[self.activation][1](z, h))
        g = self.layers[-1].weight.expand(h.shape[0], -1)
        for layer, slope in zip(reversed(self.layers[:-1]), reversed(slopes)):
            g = (g * slope) @ layer.weight
        return g


class MLPPotential(ScalarNetwork):
    """U_theta(x, t) for x in R^d: a tanh MLP on the concatenation (x, t).

    Args:
        dim: data dimension d.
        width: hidden units per layer (paper: 48).
        depth: number of hidden layers (paper: 5).
    """

    def __init__(self, dim: int, width: int = 48, depth: int = 5) -> None:
        super().__init__()
        self.dim = dim
        self.net = MLP([dim + 1, *[width] * depth, 1], "tanh")
        init_glorot(self)

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        """x: (M, d), t: float or (M,) -> U: (M,)."""
        return self.net(torch.cat([x, time_column(t, x)], dim=1))

    def input_gradient(self, x: Tensor, t: float | Tensor, create_graph: bool = False) -> Tensor:
        """grad_x U(x, t), (M, d), by the explicit backward of :class:`MLP`."""
        with torch.set_grad_enabled(create_graph):
            return self.net.backward_input(torch.cat([x, time_column(t, x)], dim=1))[:, : self.dim]


class MLPDiscriminator(ScalarNetwork):
    """phi_omega(x) for x in R^d: a ReLU MLP (paper: d -> 48^3 -> 1)."""

    def __init__(self, dim: int, width: int = 48, depth: int = 3) -> None:
        super().__init__()
        self.dim = dim
        self.net = MLP([dim, *[width] * depth, 1], "relu")
        init_glorot(self)

    def forward(self, x: Tensor) -> Tensor:
        """x: (M, d) -> phi: (M,)."""
        return self.net(x)

    def input_gradient(self, x: Tensor, create_graph: bool = False) -> Tensor:
        """grad_x phi(x), (M, d), by the explicit backward of :class:`MLP`."""
        with torch.set_grad_enabled(create_graph):
            return self.net.backward_input(x)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
