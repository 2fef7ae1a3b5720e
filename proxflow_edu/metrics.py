"""Sample-quality metrics for the toy problems: exact W2 (POT), its sampling noise floor, distance off the
data plane, and MMD."""
from __future__ import annotations

import numpy as np
import ot
import torch
from torch import Tensor

from .data import embedding


def w2_distance(x: Tensor, y: Tensor) -> float:
    """Exact W2 between the empirical measures of x (n, d) and y (m, d), uniform weights (POT ``emd2``)."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (n, d) and (m, d), got {tuple(x.shape)} and {tuple(y.shape)}")
    a = x.detach().cpu().double().numpy()
    b = y.detach().cpu().double().numpy()
    cost = ot.dist(a, b, metric="sqeuclidean")
    w = ot.emd2(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), cost, numItermax=10_000_000)
    return float(np.sqrt(max(w, 0.0)))


def noise_floor(data: Tensor, n: int, seed: int = 0) -> float:
    """W2 between two disjoint random subsets of size n of ``data``: the best a perfect model can score at size n."""
    if len(data) < 2 * n:
        raise ValueError(f"data needs at least 2n={2 * n} rows, got {len(data)}")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data), generator=g)
    return w2_distance(data[idx[:n]], data[idx[n:2 * n]])


def off_manifold_distance(x: Tensor, basis: Tensor | None = None) -> Tensor:
    """|x - B B^T x| per sample: the distance of x (n, d) from the plane spanned by B's orthonormal columns.

    Default B = ``embedding(d)``, the plane of ``sample_toy(..., dim=d)``; returns (n,) (zeros for d = 2).
    """
    if x.dim() != 2:
        raise ValueError(f"x must be (n, d), got {tuple(x.shape)}")
    basis = embedding(x.shape[1]) if basis is None else basis
    if x.shape[1] == 2 and basis.shape[0] == 2:
        return torch.zeros(x.shape[0])
    b = basis.to(x)
    return (x - (x @ b) @ b.T).norm(dim=1)


def mmd(x: Tensor, y: Tensor, bandwidths: tuple[float, ...] = (0.1, 0.5, 1.0, 2.0)) -> float:
    """Unbiased squared MMD with a sum of Gaussian kernels exp(-|a-b|^2 / (2 s^2))."""
    x, y = x.detach().double(), y.detach().double()
    def k(a: Tensor, b: Tensor) -> Tensor:
        d2 = torch.cdist(a, b).pow(2)
        return sum(torch.exp(-d2 / (2 * s**2)) for s in bandwidths)
    n, m = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    term_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    term_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(term_x + term_y - 2 * kxy.mean())
