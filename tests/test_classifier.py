"""The shipped MNIST classifier refuses garbage and accepts real digits (outlier exposure), and the case builders.

The "confident" score of generated digits is only worth something if the classifier is not confident on noise,
blends or blurs: before outlier exposure it called 94 % of uniform noise a confident digit. These tests read the
shipped ``checkpoints/mnist_classifier.pt`` and need the verified MNIST files in data/MNIST/raw (``make data``).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks.classifier_cases import (
    EVAL_SEED,
    GARBAGE_KINDS,
    GARBAGE_MAX_CONFIDENT,
    PASS_KINDS,
    PASS_MIN_CONFIDENT,
    gaussian_blur,
    gaussian_kernel1d,
    outlier_images,
    pass_images,
    robustness_table,
    shift_images,
)
from proxflow_edu.mnist.classifier import (
    accuracy,
    load_classifier,
)
from proxflow_edu.mnist.data import mnist_is_ready

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
N_PER_KIND = 2000  # images per case of the table (the real cases: 2,000 of the test digits)

needs_mnist = pytest.mark.skipif(not mnist_is_ready(DATA), reason="MNIST files missing in data/ (run `make data`)")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def table(mnist_test_set: tuple[torch.Tensor, torch.Tensor]):  # noqa: ANN201
    x, y = mnist_test_set
    return robustness_table(load_classifier(), x, y, n=N_PER_KIND, seed=EVAL_SEED)


# ------------------------------------------------------------------ the shipped classifier

@needs_mnist
@pytest.mark.parametrize("kind", PASS_KINDS)
def test_real_digits_are_confident(table, kind: str) -> None:  # noqa: ANN001
    row = table.rows[kind]
    assert row["n"] == N_PER_KIND
    assert row["confident"] >= PASS_MIN_CONFIDENT, table.format()
    assert row["accuracy"] >= (0.99 if kind == "real" else 0.98), table.format()


@needs_mnist
@pytest.mark.parametrize("kind", GARBAGE_KINDS)
def test_garbage_is_not_confident(table, kind: str) -> None:  # noqa: ANN001
    assert table.rows[kind]["n"] == N_PER_KIND
    assert table.rows[kind]["confident"] <= GARBAGE_MAX_CONFIDENT, table.format()
    assert "accuracy" not in table.rows[kind]


@needs_mnist
def test_whole_test_set_accuracy_and_stored_table(mnist_test_set: tuple[torch.Tensor, torch.Tensor],
                                                  table) -> None:  # noqa: ANN001
    clf = load_classifier()
    x, y = mnist_test_set
    acc = accuracy(clf, x, y)
    assert acc >= 0.99
    assert acc == pytest.approx(clf.test_accuracy, abs=1e-6)  # the stored figure is the measured one
    assert table.ok()
    stored = clf.info["robustness"]  # written by scripts/train_mnist_classifier.py on the same seed and n
    assert stored["seed"] == EVAL_SEED and set(stored["rows"]) == set(PASS_KINDS + GARBAGE_KINDS)
    for kind, row in table.rows.items():
        assert stored["rows"][kind]["confident"] == pytest.approx(row["confident"], abs=1e-6), kind


@needs_mnist
def test_benchmark_json_is_the_shipped_classifiers_table(table) -> None:  # noqa: ANN001
    """benchmarks/mnist_classifier.json (the book's table) was computed from this checkpoint, same seed and n."""
    import json
    bench = json.loads((ROOT / "benchmarks" / "mnist_classifier.json").read_text())
    assert bench["seed"] == table.seed and bench["n_per_case"] == N_PER_KIND and bench["targets"]["met"]
    assert set(bench["cases"]) == set(table.rows)
    for kind, row in table.rows.items():
        assert bench["cases"][kind]["confident"] == pytest.approx(row["confident"], abs=1e-6), kind
    assert bench["test_accuracy"] == pytest.approx(load_classifier().test_accuracy, abs=1e-6)


# ------------------------------------------------------------------ the case builders

def _fake_digits(n: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-in digits in [0, 1] (no MNIST needed): a bright bar whose position depends on the label."""
    labels = torch.arange(n) % 10
    x = torch.zeros(n, 1, 28, 28)
    rows = 4 + 2 * labels
    x[torch.arange(n), 0, rows] = 1.0
    x[torch.arange(n), 0, :, 14] = 0.8
    return x, labels


@pytest.mark.parametrize("kind", GARBAGE_KINDS)
def test_outlier_images_seeded_shape_and_range(kind: str) -> None:
    digits, labels = _fake_digits()
    make = lambda seed: outlier_images(kind, 37, torch.Generator().manual_seed(seed), digits, labels)  # noqa: E731
    a, b, c = make(0), make(0), make(1)
    assert a.shape == (37, 1, 28, 28) and a.dtype == torch.float32
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b)  # same seed, same images
    assert not torch.equal(a, c)  # another seed, other images


@pytest.mark.parametrize("kind", PASS_KINDS)
def test_pass_images_seeded_shape_range_labels(kind: str) -> None:
    digits, labels = _fake_digits()
    make = lambda seed: pass_images(kind, 20, torch.Generator().manual_seed(seed), digits, labels)  # noqa: E731
    (a, ya), (b, yb) = make(0), make(0)
    assert a.shape == (20, 1, 28, 28) and ya.shape == (20,)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b) and torch.equal(ya, yb)
    # real digits drawn without replacement, with their own labels
    x_all, y_all = pass_images(kind, 500, torch.Generator().manual_seed(0), digits, labels)
    assert torch.equal(y_all, labels) and (kind != "real" or torch.equal(x_all, digits))


def test_uniform_and_prior_noise_ranges() -> None:
    g = torch.Generator().manual_seed(3)
    u, p = outlier_images("uniform_noise", 200, g), outlier_images("prior_noise", 200, g)
    assert float(u.max()) > 0.99 and abs(float(u.mean()) - 0.5) < 0.01
    assert float(p.max()) <= 0.5 and abs(float(p.mean()) - 0.25) < 0.005
    blobs = outlier_images("noise_blobs", 20, g)
    assert torch.allclose(blobs.amin(dim=(1, 2, 3)), torch.zeros(20))  # stretched back to the full range
    assert torch.allclose(blobs.amax(dim=(1, 2, 3)), torch.ones(20))


def test_blend_mixes_two_different_labels() -> None:
    digits, labels = _fake_digits()
    x = outlier_images("two_digit_blend", 100, torch.Generator().manual_seed(0), digits, labels)
    # each fake digit has one bright row (its label); a blend of two different labels has exactly two at 0.5
    row_mean = x[:, 0, :, :14].mean(dim=2)  # (100, 28), left of the vertical bar
    assert torch.all((row_mean == 0.5).sum(dim=1) == 2)
    with pytest.raises(ValueError, match="needs real digits"):
        outlier_images("two_digit_blend", 3, torch.Generator().manual_seed(0))


def test_gaussian_kernel_closed_form() -> None:
    # sigma >= 1 px (all the builders use): below, sampling aliases the Gaussian and the variance falls short
    # of sigma^2 (0.215 instead of 0.25 at sigma = 0.5)
    for sigma in (1.0, 1.5, 2.0, 3.0):
        k = gaussian_kernel1d(sigma)
        r = (len(k) - 1) // 2
        t = torch.arange(-r, r + 1, dtype=torch.float64)
        kd = k.double()
        assert r == int(torch.ceil(torch.tensor(4 * sigma)))
        assert float(kd.sum()) == pytest.approx(1.0, abs=1e-6)
        assert torch.allclose(k, k.flip(0))  # symmetric, mean 0
        # variance of the sampled, truncated Gaussian = sigma^2 (Poisson summation; 4-sigma truncation)
        assert float((kd * t * t).sum()) == pytest.approx(sigma ** 2, rel=2e-3)
        # ratio of neighbouring weights: exp(-(2t + 1) / (2 sigma^2))
        assert torch.allclose(kd[r + 1:] / kd[r:-1], torch.exp(-(2 * t[r:-1] + 1) / (2 * sigma ** 2)), rtol=1e-4)
    per_image = gaussian_kernel1d(torch.tensor([1.0, 2.0]))
    assert per_image.shape == (2, 17) and torch.allclose(per_image.sum(dim=1), torch.ones(2))
    with pytest.raises(ValueError):
        gaussian_kernel1d(0.0)


def test_gaussian_blur_of_a_point_is_the_separable_kernel() -> None:
    x = torch.zeros(2, 1, 28, 28)
    x[:, 0, 14, 14] = 1.0
    y = gaussian_blur(x, torch.tensor([1.0, 2.0]))
    for i, sigma in enumerate((1.0, 2.0)):
        k = gaussian_kernel1d(sigma)
        r = (len(k) - 1) // 2
        assert torch.allclose(y[i, 0, 14 - r:15 + r, 14 - r:15 + r], torch.outer(k, k), atol=1e-7)
        assert float(y[i].sum()) == pytest.approx(1.0, abs=1e-5)  # far from the border: mass kept
    assert torch.equal(gaussian_blur(x, 1.0), gaussian_blur(x, torch.tensor([1.0, 1.0])))


def test_shift_images_moves_without_wrapping() -> None:
    x = torch.zeros(3, 1, 28, 28)
    x[:, 0, 1, 1] = 1.0  # near the top-left corner
    y = shift_images(x, torch.tensor([2, -2, 0]), torch.tensor([0, 0, -2]))
    assert y.shape == x.shape
    assert y[0, 0, 1, 3] == 1.0 and float(y[0].sum()) == 1.0  # right by 2
    assert float(y[1].sum()) == 0.0  # pushed off the left edge: gone, not wrapped to the right
    assert float(y[2].sum()) == 0.0  # pushed off the top edge
