"""Networks U_theta(x, t) -> (M,) and phi_omega(x) -> (M,) for x (M, *event), and the one gradient path.

:func:`input_gradient` (grad_x) and :func:`space_time_gradient` (grad_x U, d_t U) are the one place that computes
them; a :class:`ScalarNetwork` answers with its own methods, any other callable goes through autograd.
"""
# The flow needs grad_x U and the gradient penalty grad_x phi, both inside a loss back-propagated to the weights.
# ScalarNetwork's methods are autograd by default; a network with a hand-written backward (the MLPs here, the CNNs
# in proxflow_edu.mnist) overrides them next to its forward. The toy networks are the paper's (method.md §8): a tanh
# MLP potential (d+1) -> 48^5 -> 1 (smooth, so that the HJ residual and the Hopf-Lax paths are meaningful) and a
# ReLU MLP discriminator d -> 48^3 -> 1.
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
    """A network with one scalar output per sample, ``f(x, *cond) -> (M,)``, that knows its input gradient.

    Autograd here; subclasses with a hand-written backward override the two gradient methods next to their forward.
    With ``create_graph`` the results are differentiable w.r.t. the weights (training); without it no graph is kept.
    """

    def input_gradient(self, x: Tensor, *cond: float | Tensor, create_graph: bool = False) -> Tensor:
        """grad_x f(x, *cond), shape like x."""
        return autograd_input_gradient(self, x, *cond, create_graph=create_graph)

    def space_time_gradient(self, x: Tensor, t: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """(grad_x U(x, t), d_t U(x, t)), shapes like x and (M,), for a potential U and t of shape (M,)."""
        return autograd_space_time_gradient(self, x, t, create_graph)



class MixedPrecision(ScalarNetwork):
    """A view of ``network`` whose convolutions and matmuls run in bfloat16 (``torch.autocast``), answering in float32
    (``FlowConfig(precision="bf16")``). The weights stay the network's float32 parameters, so the optimisers, the
    checkpoint and sampling use the plain network, and what is built from the answers (the Euler update, the DV
    logsumexp, the kinetic energy, the penalties) is float32."""

    def __init__(self, network: ScalarNetwork, device_type: str) -> None:
        super().__init__()
        self.network, self.device_type = network, device_type

    def forward(self, x: Tensor, *cond: float | Tensor) -> Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.network(x, *cond).float()

    def input_gradient(self, x: Tensor, *cond: float | Tensor, create_graph: bool = False) -> Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.network.input_gradient(x, *cond, create_graph=create_graph).float()

    def space_time_gradient(self, x: Tensor, t: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return tuple(g.float() for g in self.network.space_time_gradient(x, t, create_graph))  # type: ignore

def input_gradient(f: Callable[..., Tensor], x: Tensor, *cond: float | Tensor, create_graph: bool = False) -> Tensor:
    """grad_x f(x, *cond) for a :class:`ScalarNetwork` (its own method) or any callable (autograd)."""
    if isinstance(f, ScalarNetwork):
        return f.input_gradient(x, *cond, create_graph=create_graph)
    return autograd_input_gradient(f, x, *cond, create_graph=create_graph)


def autograd_space_time_gradient(potential: Callable[[Tensor, Tensor], Tensor], x: Tensor, t: Tensor,
                                 create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """(grad_x U, d_t U) by autograd; d_t U = 0 for a U that does not depend on t."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        t = t.detach().to(x).requires_grad_(True)
        grad_x, d_t = torch.autograd.grad(potential(x, t).sum(), (x, t), create_graph=create_graph, allow_unused=True)
    return grad_x, torch.zeros_like(t) if d_t is None else d_t


def space_time_gradient(potential: Callable[[Tensor, Tensor], Tensor], x: Tensor, t: float | Tensor,
                        create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """(grad_x U(x, t), d_t U(x, t)), shapes like x and (M,): the one path to both derivatives of a potential.

    A :class:`ScalarNetwork` answers with its own method (an explicit backward where it has one), any other
    callable through autograd. ``t`` is a float or a tensor of shape (M,).
    """
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
    if isinstance(potential, ScalarNetwork):
        return potential.space_time_gradient(x, t, create_graph)
    return autograd_space_time_gradient(potential, x, t, create_graph)


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


# (width, depth) of the hidden layers per architecture (method.md §7-§8): the toy MLPs and the CNNs' MLP heads
NETWORK_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "mlp": {"potential": (48, 5), "discriminator": (48, 3)},
    "mnist_cnn": {"potential": (512, 3), "discriminator": (256, 3)},
}

# name -> (sigma, sigma' as a function of (z, sigma(z))): tanh' = 1 - tanh^2; relu' = 1[z > 0] (0 at 0, as in
# autograd); softplus' = sigmoid (a smooth ReLU: C^infinity, so grad_x U is C^1 and its HJ residual is defined)
ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor, Tensor], Tensor]]] = {
    "tanh": (torch.tanh, lambda z, a: 1 - a * a),
    "relu": (torch.relu, lambda z, a: (z > 0).to(z.dtype)),
    "softplus": (F.softplus, lambda z, a: torch.sigmoid(z)),
}


class MLP(nn.Module):
    """``sizes[0] -> ... -> sizes[-1] = 1`` with tanh, ReLU or softplus; its input gradient by a hand-written backward.

    Initialised by its owner (so that the random stream is the same as for the equivalent ``nn.Sequential``).
    """
    # Training differentiates through grad_x U (and the gradient penalty through grad_x phi). Written as ordinary
    # tensor operations, g_{k-1} = (g_k * sigma'(z_k)) W_k, the input gradient has the values autograd would give,
    # but the weight update then needs first-order autograd only and sampling none: about twice as fast on a CPU
    # for these small networks.

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
        width, depth: hidden units per layer and hidden layers (paper: 48 and 5, :data:`NETWORK_SIZES`).
    """

    def __init__(self, dim: int, width: int = NETWORK_SIZES["mlp"]["potential"][0],
                 depth: int = NETWORK_SIZES["mlp"]["potential"][1]) -> None:
        super().__init__()
        self.dim = dim
        self.net = MLP([dim + 1, *[width] * depth, 1], "tanh")
        init_glorot(self)

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        """x: (M, d), t: float or (M,) -> U: (M,)."""
        return self.net(torch.cat([x, time_column(t, x)], dim=1))

    def input_gradient(self, x: Tensor, t: float | Tensor, create_graph: bool = False) -> Tensor:
        """grad_x U(x, t), (M, d): the x columns of :meth:`space_time_gradient`'s explicit backward."""
        return self.space_time_gradient(x, t, create_graph)[0]

    def space_time_gradient(self, x: Tensor, t: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """(grad_x U, d_t U) from one explicit backward: the input is (x, t), so both are columns of it."""
        with torch.set_grad_enabled(create_graph):
            g = self.net.backward_input(torch.cat([x, time_column(t, x)], dim=1))
        return g[:, : self.dim], g[:, self.dim]


class MLPDiscriminator(ScalarNetwork):
    """phi_omega(x) for x in R^d: a ReLU MLP (paper: d -> 48^3 -> 1)."""

    def __init__(self, dim: int, width: int = NETWORK_SIZES["mlp"]["discriminator"][0],
                 depth: int = NETWORK_SIZES["mlp"]["discriminator"][1]) -> None:
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
