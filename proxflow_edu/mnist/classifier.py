"""Scoring generated MNIST digits with a small pretrained classifier (no reference to the flow's training).

A LeNet-style CNN trained on the MNIST training set (``scripts/train_mnist_classifier.py``, >= 99 % test
accuracy) is shipped as ``checkpoints/mnist_classifier.pt`` together with the mean and covariance of its
128 penultimate features on the 10,000 test images. For a batch of samples we report

* ``confident``: the fraction classified with softmax confidence >= 0.9 (a crude "looks like a digit");
* ``class_counts``: the histogram of predicted classes (mode collapse shows as missing digits);
* ``frechet``: the Frechet distance between Gaussians fitted to the samples' features and to the test set's,
  ``|mu_g - mu_t|^2 + tr(S_g + S_t - 2 (S_g^{1/2} S_t S_g^{1/2})^{1/2})`` (FID-style, in this classifier's
  feature space, so only comparable with numbers from the same classifier; it has a sampling floor that
  grows as the number of samples shrinks: compare at equal n).

"Confident" only means something if the classifier refuses what is not a digit. The classifier is therefore
trained with outlier exposure (Hendrycks et al. 2019, ``scripts/train_mnist_classifier.py``): garbage images are
pushed towards the uniform softmax. The cases it must refuse (uniform noise, the flow's prior noise, smooth noise
blobs, blends of two different digits, heavily blurred digits, blank grey images) and those it must still accept
(real digits, with light haze, shifted by 2 px) serve only the classifier's training and its robustness table, so
they live beside them in ``benchmarks/classifier_cases.py``; the table is stored in the checkpoint's
``info["robustness"]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..utils import atomic_write

DEFAULT_CLASSIFIER = Path(__file__).resolve().parents[2] / "checkpoints" / "mnist_classifier.pt"
CLASSIFIER_FORMAT = 1


class MNISTClassifier(nn.Module):
    """LeNet-style: conv5x5 1->16, pool, conv5x5 16->32, pool, FC 512->128 (features) -> 10 logits.

    Input (M, 1, 28, 28) in [0, 1] (pixels / 255).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5)
        self.conv2 = nn.Conv2d(16, 32, 5)
        self.fc1 = nn.Linear(32 * 4 * 4, 128)
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(128, 10)

    def features(self, x: Tensor) -> Tensor:
        """(M, 1, 28, 28) -> (M, 128) penultimate ReLU features."""
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc1(h.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """(M, 1, 28, 28) -> (M, 10) logits."""
        return self.fc2(self.drop(self.features(x)))


@dataclass
class Classifier:
    """The loaded classifier with the test set's feature statistics.

    Attributes:
        net: the network (eval mode).
        feature_mean: (128,) float64 mean of test-set features; feature_cov: (128, 128) their covariance.
        test_accuracy: accuracy on the 10,000 test images measured when it was trained.
        info: other facts stored with it (training time, epochs, ...).
    """

    net: MNISTClassifier
    feature_mean: Tensor
    feature_cov: Tensor
    test_accuracy: float
    info: dict = field(default_factory=dict)


@dataclass
class SampleScores:
    """Scores of one batch of generated images.

    Attributes:
        n: number of samples scored.
        confident: fraction with max softmax probability >= ``threshold``.
        threshold: the confidence threshold (0.9).
        class_counts: (10,) predicted-class histogram, as a list of ints.
        missing_classes: digits never predicted.
        frechet: Frechet distance to the test set in the classifier's feature space.
        mean_confidence: mean max-probability.
    """

    n: int
    confident: float
    threshold: float
    class_counts: list[int]
    missing_classes: list[int]
    frechet: float
    mean_confidence: float

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def save_classifier(net: MNISTClassifier, feature_mean: Tensor, feature_cov: Tensor, test_accuracy: float,
                    path: str | Path = DEFAULT_CLASSIFIER, info: dict | None = None) -> Path:
    """Write the classifier and its test-feature statistics (plain tensors, loadable with weights_only=True)."""
    payload = {"format_version": CLASSIFIER_FORMAT,
               "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
               "feature_mean": feature_mean.double().cpu(), "feature_cov": feature_cov.double().cpu(),
               "test_accuracy": float(test_accuracy), "info": info or {}}
    return atomic_write(path, lambda f: torch.save(payload, f))


def load_classifier(path: str | Path = DEFAULT_CLASSIFIER) -> Classifier:
    """Load the shipped classifier (``weights_only=True``).

    Raises:
        FileNotFoundError: no file at ``path`` (train one with ``python scripts/train_mnist_classifier.py``).
        ValueError: the file is not a classifier checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classifier checkpoint not found: {path}; "
                                f"train it with `python scripts/train_mnist_classifier.py`")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format_version") != CLASSIFIER_FORMAT:
        raise ValueError(f"{path} is not an MNIST classifier checkpoint of format {CLASSIFIER_FORMAT}")
    net = MNISTClassifier()
    net.load_state_dict(payload["state_dict"])
    net.eval()
    return Classifier(net, payload["feature_mean"], payload["feature_cov"], payload["test_accuracy"],
                      payload.get("info", {}))


def _check_images(x: Tensor) -> Tensor:
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"images must have shape (n, 1, 28, 28), got shape={tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or inf")
    return x.detach().float().cpu().clamp(0, 1)


@torch.no_grad()
def predict(classifier: Classifier, images: Tensor, batch_size: int = 1000) -> tuple[Tensor, Tensor, Tensor]:
    """Probabilities (n, 10), predicted labels (n,) and features (n, 128) of images in [0, 1] (clamped)."""
    x = _check_images(images)
    probs, feats = [], []
    for chunk in x.split(batch_size):
        f = classifier.net.features(chunk)
        feats.append(f)
        probs.append(classifier.net.fc2(f).softmax(dim=1))
    p = torch.cat(probs)
    return p, p.argmax(dim=1), torch.cat(feats)


def feature_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (k,) and unbiased covariance (k, k) in float64 of features (n, k)."""
    f = features.double()
    mu = f.mean(dim=0)
    d = f - mu
    return mu, d.T @ d / max(len(f) - 1, 1)


def _sqrtm_psd(a: Tensor) -> Tensor:
    w, v = torch.linalg.eigh((a + a.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """|mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov1^{1/2} cov2 cov1^{1/2})^{1/2}) (float64, via eigh)."""
    s1 = _sqrtm_psd(cov1.double())
    cross = _sqrtm_psd(s1 @ cov2.double() @ s1)
    return float((mu1.double() - mu2.double()).pow(2).sum() + torch.trace(cov1.double()) + torch.trace(cov2.double())
                 - 2 * torch.trace(cross))


def score_samples(images: Tensor, classifier: Classifier | None = None, threshold: float = 0.9) -> SampleScores:
    """Confidence, class histogram and Frechet distance to the test set of generated images (n, 1, 28, 28).

    Images are clamped to [0, 1] first (the flow's samples can leave the pixel range slightly).
    """
    classifier = classifier or load_classifier()
    p, labels, feats = predict(classifier, images)
    conf = p.max(dim=1).values
    counts = torch.bincount(labels, minlength=10)
    mu, cov = feature_statistics(feats)
    return SampleScores(
        n=len(p), confident=float((conf >= threshold).float().mean()), threshold=threshold,
        class_counts=[int(c) for c in counts], missing_classes=[i for i in range(10) if counts[i] == 0],
        frechet=frechet_distance(mu, cov, classifier.feature_mean, classifier.feature_cov),
        mean_confidence=float(conf.mean()))


def accuracy(classifier: Classifier, images: Tensor, labels: Tensor) -> float:
    """Fraction of ``images`` whose predicted class equals ``labels``."""
    return float((predict(classifier, images)[1] == labels.cpu()).float().mean())
