"""The classifier's robustness cases: images it must refuse ("garbage") or still accept, and the table of its answers.

They serve only ``scripts/train_mnist_classifier.py`` (outlier exposure), ``benchmarks/mnist_classifier.py`` (the
table) and ``tests/test_classifier.py``, so they live here rather than in the package a student reads
(``proxflow_edu.mnist.classifier`` scores samples). Import with the repository root on ``sys.path``:
``from benchmarks.classifier_cases import robustness_table``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from proxflow_edu.mnist.classifier import Classifier, predict

GARBAGE_KINDS: tuple[str, ...] = ("uniform_noise", "prior_noise", "noise_blobs", "two_digit_blend", "blur", "blank")
PASS_KINDS: tuple[str, ...] = ("real", "real_haze", "real_shift")
EVAL_SEED = 20_190_000  # evaluation draws; training draws its garbage from other seeds (see the training script)
PASS_MIN_CONFIDENT = 0.90  # targets of the shipped classifier (tests/test_classifier.py)
GARBAGE_MAX_CONFIDENT = 0.05
BLUR_SIGMA = 2.0  # the evaluation's blur: sigma = 2 px already makes most digits unreadable blobs
BLOB_SIGMA = (1.0, 3.0)  # smoothing of the noise blobs, drawn per image
HAZE_MAX = 0.1  # light background haze of the pass case: + U[0, 0.1] per pixel
SHIFT_PX = 2


def gaussian_kernel1d(sigma: float | Tensor, radius: int | None = None) -> Tensor:
    """Sampled, normalised 1-D Gaussian kernel(s) ``k[t] ~ exp(-t^2 / (2 sigma^2))``, t = -radius..radius.

    Args:
        sigma: a float, or a (n,) tensor of per-image widths (pixels, > 0).
        radius: half-width; default ``ceil(4 * max sigma)`` (the truncated tail mass is < 1e-4, so for
            sigma >= 1 px the kernel's variance equals sigma^2 to about 1e-3 relative; below 1 px the sampling
            aliases the Gaussian and the variance falls short, 0.215 instead of 0.25 at sigma = 0.5).

    Returns:
        (2 radius + 1,) for a float sigma, (n, 2 radius + 1) for a tensor; each row sums to 1.
    """
    s = torch.as_tensor(sigma, dtype=torch.float32)
    if not bool((s > 0).all()):
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if radius is None:
        radius = int(math.ceil(4 * float(s.max())))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-t.pow(2) / (2 * s.unsqueeze(-1).pow(2)))  # (..., 2r+1)
    return k / k.sum(dim=-1, keepdim=True)


def gaussian_blur(x: Tensor, sigma: float | Tensor) -> Tensor:
    """Blur images (n, 1, H, W) with a separable Gaussian of width ``sigma`` (a float or (n,) per image).

    Two 1-D grouped convolutions (one group per image, so a different sigma per image costs no Python loop),
    reflect padding so that noise keeps its statistics at the border (digits have a black border: the same
    as zero padding for them). Returns (n, 1, H, W).
    """
    n, c, h, w = x.shape
    if c != 1:
        raise ValueError(f"gaussian_blur expects one channel, got shape={tuple(x.shape)}")
    sig = torch.as_tensor(sigma, dtype=torch.float32)
    k = gaussian_kernel1d(sig.expand(n) if sig.dim() == 0 else sig)  # (n, 2r+1)
    r = (k.shape[1] - 1) // 2
    if r >= min(h, w):
        raise ValueError(f"sigma too large for {h}x{w} images (kernel radius {r})")
    y = F.pad(x.float().reshape(1, n, h, w), (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(n, 1, 1, -1), groups=n)  # along the width
    y = F.conv2d(y, k.view(n, 1, -1, 1), groups=n)  # along the height
    return y.reshape(n, 1, h, w)


def shift_images(x: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    """Translate each image (n, 1, H, W) by integer (dx[i], dy[i]) pixels (right, down), filling with 0.

    Unlike ``torch.roll`` nothing wraps around (a digit pushed off one edge must not reappear at the other)
    and every image has its own shift (one gather, no loop). dx, dy: (n,) int tensors with |d| < H, W.
    """
    n, _, h, w = x.shape
    m = int(max(dx.abs().max(), dy.abs().max())) if n else 0
    xp = F.pad(x, (m, m, m, m))  # zeros around
    rows = torch.arange(h).unsqueeze(0) + m - dy.long().unsqueeze(1)  # (n, H): source row of each output row
    cols = torch.arange(w).unsqueeze(0) + m - dx.long().unsqueeze(1)  # (n, W)
    out = xp[torch.arange(n)[:, None, None], 0, rows[:, :, None], cols[:, None, :]]  # (n, H, W)
    return out.unsqueeze(1)


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator) -> Tensor:
    """(n,) draws from U[lo, hi]."""
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def _need_digits(kind: str, digits: Tensor | None, labels: Tensor | None, with_labels: bool) -> None:
    if digits is None or (with_labels and labels is None):
        raise ValueError(f"kind {kind!r} needs real digits" + (" and their labels" if with_labels else ""))
    if with_labels and len(torch.unique(labels)) < 2:
        raise ValueError("two_digit_blend needs digits of at least two different labels")


def _other_label_indices(labels: Tensor, idx: Tensor, generator: torch.Generator) -> Tensor:
    """For each index in idx (n,), a random index j with labels[j] != labels[idx] (vectorised).

    Draw the other digit's label uniformly among the present labels other than labels[idx] (a random
    non-zero offset in the list of present classes), then a uniform image of that class via the labels'
    sorted order: start[c] + floor(u * count[c]).
    """
    classes, counts = torch.unique(labels, return_counts=True)  # sorted present classes (c,), counts (c,)
    order = torch.argsort(labels, stable=True)  # indices grouped by class
    start = torch.cumsum(counts, 0) - counts
    pos = torch.searchsorted(classes, labels[idx])  # position of each label among the classes
    offset = torch.randint(1, len(classes), (len(idx),), generator=generator)
    other = (pos + offset) % len(classes)
    u = torch.rand(len(idx), generator=generator)
    j = start[other] + (u * counts[other]).long().clamp_max(counts[other] - 1)
    return order[j]


def outlier_images(kind: str, n: int, generator: torch.Generator, digits: Tensor | None = None,
                   labels: Tensor | None = None, blur_sigma: float | tuple[float, float] = BLUR_SIGMA) -> Tensor:
    """n images (n, 1, 28, 28) in [0, 1] that are not digits and must NOT be classified confidently.

    Kinds (``GARBAGE_KINDS``):

    * ``uniform_noise``: every pixel U[0, 1];
    * ``prior_noise``: every pixel U[0, 0.5], the flow's prior (its samples at t = 0);
    * ``noise_blobs``: uniform noise blurred with a Gaussian of sigma ~ U[1, 3] per image, then min-max rescaled
      to [0, 1]: smooth bright blobs, closer to strokes than white noise;
    * ``two_digit_blend``: 0.5 a + 0.5 b of two real digits with different labels (needs ``digits``, ``labels``);
    * ``blur``: a real digit blurred with sigma ``blur_sigma`` (a float, or a (lo, hi) range drawn per image;
      default 2 px) (needs ``digits``);
    * ``blank``: a constant image of grey level U[0, 1] (black included). Not trained on, the network called an
      all-black image a confident digit once the real digits were augmented with lower contrasts.

    All randomness comes from ``generator``: the same seed gives the same images.

    Args:
        digits: (m, 1, 28, 28) real digits in [0, 1] to build the digit-based kinds from; labels: (m,).
    """
    if kind == "uniform_noise":
        return torch.rand(n, 1, 28, 28, generator=generator)
    if kind == "prior_noise":
        return 0.5 * torch.rand(n, 1, 28, 28, generator=generator)
    if kind == "noise_blobs":
        x = gaussian_blur(torch.rand(n, 1, 28, 28, generator=generator), _uniform(n, *BLOB_SIGMA, generator))
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        hi = x.amax(dim=(1, 2, 3), keepdim=True)
        return ((x - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)  # blurring shrinks the range: stretch it back
    if kind == "two_digit_blend":
        _need_digits(kind, digits, labels, with_labels=True)
        i = torch.randint(0, len(digits), (n,), generator=generator)
        j = _other_label_indices(labels, i, generator)
        return (0.5 * digits[i] + 0.5 * digits[j]).clamp(0, 1)
    if kind == "blur":
        _need_digits(kind, digits, labels, with_labels=False)
        i = torch.randint(0, len(digits), (n,), generator=generator)
        sigma = (torch.full((n,), float(blur_sigma)) if isinstance(blur_sigma, (int, float))
                 else _uniform(n, *blur_sigma, generator))
        return gaussian_blur(digits[i], sigma).clamp(0, 1)
    if kind == "blank":
        return torch.rand(n, 1, 1, 1, generator=generator).expand(n, 1, 28, 28).clone()
    raise ValueError(f"unknown garbage kind {kind!r}; expected one of {GARBAGE_KINDS}")


def haze(x: Tensor, generator: torch.Generator, amplitude: float | Tensor = HAZE_MAX) -> Tensor:
    """x + U[0, amplitude] per pixel, clamped to [0, 1]; amplitude a float or (n,) per image. (n, 1, 28, 28)."""
    a = torch.as_tensor(amplitude, dtype=torch.float32)
    a = a.view(-1, 1, 1, 1) if a.dim() == 1 else a
    return (x + a * torch.rand(x.shape, generator=generator)).clamp(0, 1)


def pass_images(kind: str, n: int, generator: torch.Generator, digits: Tensor,
                labels: Tensor) -> tuple[Tensor, Tensor]:
    """n real digits (n, 1, 28, 28) in [0, 1] with their labels (n,) that MUST still be classified confidently.

    Kinds (``PASS_KINDS``):

    * ``real``: n distinct digits drawn without replacement (all of them, in order, when n >= len(digits));
    * ``real_haze``: the same kind of draw + U[0, 0.1] per pixel (clamped): a slightly grey background, as the
      flow's samples often have;
    * ``real_shift``: translated by exactly 2 px along each axis, random signs (zero fill): the digits are not
      always centred by the centre of mass as in MNIST.
    """
    if kind not in PASS_KINDS:
        raise ValueError(f"unknown pass kind {kind!r}; expected one of {PASS_KINDS}")
    i = torch.arange(len(digits)) if n >= len(digits) else torch.randperm(len(digits), generator=generator)[:n]
    x, y = digits[i], labels[i]
    if kind == "real_haze":
        x = haze(x, generator)
    elif kind == "real_shift":
        sign = 2 * torch.randint(0, 2, (2, len(i)), generator=generator) - 1
        x = shift_images(x, SHIFT_PX * sign[0], SHIFT_PX * sign[1])
    return x, y


@dataclass
class RobustnessTable:
    """What the classifier answers on the garbage and the pass cases (``robustness_table``).

    Attributes:
        rows: kind -> {"n", "confident" (fraction with max softmax >= threshold), "mean_confidence",
            "should" ("pass" or "fail"), and "accuracy" for the pass kinds}.
        threshold: confidence threshold (0.9); seed: the generator seed of the draws.
    """

    rows: dict[str, dict[str, float | int | str]]
    threshold: float
    seed: int

    def ok(self, pass_min: float = PASS_MIN_CONFIDENT, garbage_max: float = GARBAGE_MAX_CONFIDENT) -> bool:
        """True when every pass kind has confident >= pass_min and every garbage kind <= garbage_max."""
        return all(r["confident"] >= pass_min if r["should"] == "pass" else r["confident"] <= garbage_max
                   for r in self.rows.values())

    def to_dict(self) -> dict:
        """Plain dict (floats, ints, strings) for the checkpoint's info (loadable with weights_only=True)."""
        return {"threshold": self.threshold, "seed": self.seed, "rows": {k: dict(v) for k, v in self.rows.items()}}

    def format(self) -> str:
        """A printable table, one line per kind."""
        lines = [f"{'case':18s} {'should':6s} {'confident':>9s} {'mean conf':>9s} {'accuracy':>8s}"]
        for k, r in self.rows.items():
            acc = f"{r['accuracy']:8.4f}" if "accuracy" in r else f"{'':8s}"
            lines.append(f"{k:18s} {r['should']:6s} {r['confident']:9.4f} {r['mean_confidence']:9.4f} {acc}")
        return "\n".join(lines)


def robustness_table(classifier: Classifier, x_test: Tensor, y_test: Tensor, n: int = 2000, seed: int = EVAL_SEED,
                     threshold: float = 0.9, kinds: Sequence[str] = PASS_KINDS + GARBAGE_KINDS) -> RobustnessTable:
    """Confident fraction (and accuracy for the real cases) of the classifier on each pass and garbage kind.

    Args:
        x_test, y_test: (m, 1, 28, 28) test digits in [0, 1] and labels (m,): the source of the digit-based
            cases (the test set, never seen in training, so blends and blurs are of unseen digits).
        n: images per kind (the real kinds use all m digits when n >= m).
        seed: each kind gets its own generator seeded with ``seed + index of the kind``, so that a row does
            not change when others are added or removed and no two kinds share draws.
    """
    all_kinds = PASS_KINDS + GARBAGE_KINDS
    rows: dict[str, dict[str, float | int | str]] = {}
    for kind in kinds:  # a loop over the (8) kinds, not over samples
        g = torch.Generator().manual_seed(seed + all_kinds.index(kind))
        if kind in PASS_KINDS:
            x, y = pass_images(kind, n, g, x_test, y_test)
        else:
            x, y = outlier_images(kind, n, g, x_test, y_test), None
        p, pred, _ = predict(classifier, x)
        conf = p.max(dim=1).values
        row: dict[str, float | int | str] = {"n": len(x), "should": "pass" if kind in PASS_KINDS else "fail",
                                             "confident": float((conf >= threshold).float().mean()),
                                             "mean_confidence": float(conf.mean())}
        if y is not None:
            row["accuracy"] = float((pred == y.cpu()).float().mean())
        rows[kind] = row
    return RobustnessTable(rows, threshold, seed)
