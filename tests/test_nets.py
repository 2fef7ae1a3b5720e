"""Networks: shapes, parameter counts of the paper's CNNs, and the explicit input gradients of the toy MLPs."""
from __future__ import annotations

import torch

from proxflow_edu.mnist.nets import CNNDiscriminator, CNNPotential
from proxflow_edu.nets import (
    MixedPrecision,
    MLPDiscriminator,
    MLPPotential,
    ScalarNetwork,
    autograd_input_gradient,
    count_parameters,
    input_gradient,
)


def test_explicit_gradients_match_autograd_including_second_order() -> None:
    torch.manual_seed(0)
    potential, phi = MLPPotential(5).double(), MLPDiscriminator(5).double()
    x = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    t = torch.rand(7, dtype=torch.float64)
    (auto_u,) = torch.autograd.grad(potential(x, t).sum(), x, create_graph=True)
    explicit_u = potential.input_gradient(x, t, create_graph=True)
    assert torch.allclose(explicit_u, auto_u, atol=1e-12)
    (auto_phi,) = torch.autograd.grad(phi(x).sum(), x, create_graph=True)
    assert torch.allclose(phi.input_gradient(x, create_graph=True), auto_phi, atol=1e-12)
    # the parameter gradients of a loss built on grad_x U agree as well (what training back-propagates)
    w = potential.net.layers[0].weight
    (g_auto,) = torch.autograd.grad(auto_u.pow(2).sum(), w, retain_graph=True)
    (g_explicit,) = torch.autograd.grad(explicit_u.pow(2).sum(), w)
    assert torch.allclose(g_auto, g_explicit, atol=1e-10)
    # and the input derivative (the trajectory's dependence on x_n)
    (h_auto,) = torch.autograd.grad(auto_u.sum(), x, retain_graph=True)
    (h_explicit,) = torch.autograd.grad(potential.input_gradient(x, t, create_graph=True).sum(), x)
    assert torch.allclose(h_auto, h_explicit, atol=1e-10)


def test_shapes_and_the_papers_parameter_counts() -> None:
    assert MLPPotential(12)(torch.zeros(3, 12), 0.5).shape == (3,)
    assert MLPDiscriminator(12)(torch.zeros(3, 12)).shape == (3,)
    u, phi = CNNPotential(), CNNDiscriminator()
    x = torch.rand(2, 1, 28, 28)
    assert u(x, torch.tensor([0.0, 4.0])).shape == (2,) and phi(x).shape == (2,)
    assert count_parameters(u) == 731_081 and count_parameters(phi) == 235_977  # method.md §7.1


def test_one_input_gradient_path() -> None:
    """input_gradient: the network's own method for a ScalarNetwork (autograd by default), autograd for a callable;
    without create_graph nothing keeps a graph."""

    class Quadratic(ScalarNetwork):  # no override: the base class's autograd
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Parameter(torch.tensor(0.7))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * self.a * x.pow(2).sum(1)

    x = torch.randn(5, 3)
    quad = Quadratic()
    for f in (quad, lambda y: 0.5 * 0.7 * y.pow(2).sum(1)):
        g = input_gradient(f, x)
        assert torch.allclose(g, 0.7 * x) and g.grad_fn is None
    g = input_gradient(quad, x, create_graph=True)
    (da,) = torch.autograd.grad(g.sum(), quad.a)
    assert torch.allclose(da, x.sum())
    torch.manual_seed(0)
    phi = MLPDiscriminator(3)
    assert input_gradient(phi, x).grad_fn is None and input_gradient(phi, x, create_graph=True).grad_fn is not None
    assert torch.allclose(input_gradient(phi, x), autograd_input_gradient(phi, x), atol=1e-6)


def test_mixed_precision_answers_in_float32_from_the_same_float32_weights() -> None:
    """MixedPrecision runs the CNN in bfloat16 (about 3 significant digits) and answers in float32; the weights it
    trains are the wrapped network's float32 parameters, and their gradients arrive in float32."""
    torch.manual_seed(0)
    u = CNNPotential()
    view = MixedPrecision(u, "cpu")
    assert [id(p) for p in view.parameters()] == [id(p) for p in u.parameters()]
    x, t = torch.rand(6, 1, 28, 28), torch.rand(6)
    exact, grad = u(x, t), u.input_gradient(x, t)
    low, low_grad = view(x, t), view.input_gradient(x, t, create_graph=True)
    assert low.dtype == low_grad.dtype == torch.float32
    assert 0 < (low - exact).norm() / exact.norm() < 0.03  # bf16 arithmetic: close, and not the fp32 numbers
    # grad_x of a ReLU/max-pool network is piecewise constant: bf16 rounding of the conv outputs moves some ReLU
    # masks and pooling argmaxes, so the input gradient differs by ~15 % at initialisation
    # (benchmarks/precision_curves.json compares the learning curves instead); a broken view (zeros, the wrong
    # network) is off by ~100 %
    assert 0 < (low_grad - grad).norm() / grad.norm() < 0.3
    low_grad.pow(2).sum().backward()
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in u.parameters())
    assert u.head.layers[0].weight.dtype == torch.float32 and u.head.layers[0].weight.grad is not None
    grad_x, d_t = view.space_time_gradient(x, t)
    assert grad_x.dtype == d_t.dtype == torch.float32 and grad_x.shape == x.shape and d_t.shape == (6,)
