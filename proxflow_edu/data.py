"""Data: 2-D toy manifolds (optionally embedded in R^dim) and the priors rho_0. MNIST is in ``proxflow_edu.mnist``.

The toy targets live on a 2-D plane: for ``dim > 2`` the 2-D points are mapped by
``embedding(dim)``, a fixed (dim, 2) matrix with orthonormal columns, so pi is singular
w.r.t. Lebesgue measure in R^dim, exactly the setting where the W1 proximal is needed.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from .utils import seeded_generator


def _8gaussians(n: int, g: torch.Generator) -> Tensor:
    k = torch.randint(0, 8, (n,), generator=g)
    angle = k.float() * (2 * math.pi / 8)
    centres = 2.0 * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centres + 0.1 * torch.randn(n, 2, generator=g)


def _moons(n: int, g: torch.Generator) -> Tensor:
    # sklearn.make_moons(noise=0.05), centred and scaled by 2
    upper = torch.rand(n, generator=g) < 0.5
    s = math.pi * torch.rand(n, generator=g)
    x = torch.where(upper, torch.cos(s), 1 - torch.cos(s))
    y = torch.where(upper, torch.sin(s), 0.5 - torch.sin(s))
    pts = torch.stack([x, y], dim=1) + 0.05 * torch.randn(n, 2, generator=g)
    return 2.0 * (pts - torch.tensor([0.5, 0.25]))


def _pinwheel(n: int, g: torch.Generator) -> Tensor:
    # 5 arms, radial std 0.3, tangential std 0.1, rate 0.25 (method.md §8), scaled by 1.4
    arms, rate = 5, 0.25
    k = torch.randint(0, arms, (n,), generator=g)
    feats = torch.randn(n, 2, generator=g) * torch.tensor([0.3, 0.1]) + torch.tensor([1.0, 0.0])
    angle = k.float() * (2 * math.pi / arms) + rate * torch.exp(feats[:, 0])
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([c, -s], 1), torch.stack([s, c], 1)], 1)  # (n, 2, 2)
    return 1.4 * torch.einsum("nij,nj->ni", rot, feats)


def _swissroll(n: int, g: torch.Generator) -> Tensor:
    s = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
    pts = torch.stack([s * torch.cos(s), s * torch.sin(s)], dim=1) / 5.0
    return pts + 0.05 * torch.randn(n, 2, generator=g)


def _circles(n: int, g: torch.Generator) -> Tensor:
    r = torch.where(torch.rand(n, generator=g) < 0.5, 1.0, 2.0)
    s = 2 * math.pi * torch.rand(n, generator=g)
    return r[:, None] * torch.stack([torch.cos(s), torch.sin(s)], 1) + 0.05 * torch.randn(n, 2, generator=g)


def _checkerboard(n: int, g: torch.Generator) -> Tensor:
    x1 = 4 * torch.rand(n, generator=g) - 2
    x2 = 2 * torch.rand(n, generator=g) - 2 + torch.floor(x1).remainder(2) * 2
    return torch.stack([x1, x2], dim=1) * 1.5


_TOYS: dict[str, Callable[[int, torch.Generator], Tensor]] = {
    "8gaussians": _8gaussians, "moons": _moons, "pinwheel": _pinwheel,
    "swissroll": _swissroll, "circles": _circles, "checkerboard": _checkerboard,
}
TOY_DATASETS = tuple(_TOYS)


def embedding(dim: int, seed: int = 0) -> Tensor:
    """A fixed (dim, 2) float32 matrix with orthonormal columns (the data plane in R^dim)."""
    if dim < 2:
        raise ValueError(f"dim must be >= 2, got dim={dim}")
    a = torch.randn(dim, 2, generator=seeded_generator(seed), dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    return (q * torch.sign(torch.diagonal(r))).float()


def sample_toy(name: str, n: int, dim: int = 2, seed: int | None = None) -> Tensor:
    """n samples of a 2-D toy distribution, embedded in R^dim for dim > 2.

    Args:
        name: one of ``TOY_DATASETS``.
        n: number of samples (>= 1).
        dim: ambient dimension (>= 2); for dim > 2, x = embedding(dim) @ z.
        seed: same seed -> same samples; None draws a fresh seed.

    Returns:
        (n, dim) float32.
    """
    if name not in _TOYS:
        raise ValueError(f"unknown dataset name={name!r}; allowed: {', '.join(TOY_DATASETS)}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got n={n!r}")
    if not isinstance(dim, int) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2, got dim={dim!r}")
    z = _TOYS[name](n, seeded_generator(seed)).float()
    return z if dim == 2 else z @ embedding(dim).T


def project_to_plane(x: Tensor) -> Tensor:
    """Coordinates (n, 2) of x (n, dim) in the data plane's basis (the inverse of the embedding on the plane)."""
    return x if x.shape[1] == 2 else x @ embedding(x.shape[1])


PRIORS = ("gaussian", "uniform")


def sample_prior(kind: str, n: int, event_shape: tuple[int, ...], generator: torch.Generator | None = None,
                 device: str | torch.device = "cpu") -> Tensor:
    """Samples of rho_0: ``gaussian`` = N(0, I) (toys), ``uniform`` = U[0, 0.5]^d (the paper's MNIST prior)."""
    if generator is not None:
        device = generator.device
    if kind == "gaussian":
        return torch.randn((n, *event_shape), generator=generator, device=device)
    if kind == "uniform":
        return 0.5 * torch.rand((n, *event_shape), generator=generator, device=device)
    raise ValueError(f"unknown prior={kind!r}; allowed: {', '.join(PRIORS)}")
