"""The shipped MNIST classifier on inputs it should accept and inputs it should reject.

Writes ``benchmarks/mnist_classifier.json``.

    python benchmarks/mnist_classifier.py [--n 2000] [--out benchmarks/mnist_classifier.json]

A score for generated digits means something only if it rejects what is not a digit. This evaluates
``checkpoints/mnist_classifier.pt`` (trained with outlier exposure by ``scripts/train_mnist_classifier.py``) with
``benchmarks/classifier_cases.robustness_table``: the confident fraction (max softmax >= 0.9) on real test
digits, with light haze and with +-2 px shifts (should pass), and on uniform noise, the flow's prior U[0, 0.5],
smoothed noise blobs, 50/50 blends of two different digits, digits blurred with sigma = 2 and blank images (should
fail), plus the test accuracy; the classifier's training facts are copied from the checkpoint.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: benchmarks/

from benchmarks.classifier_cases import (  # noqa: E402
    EVAL_SEED,
    GARBAGE_MAX_CONFIDENT,
    PASS_MIN_CONFIDENT,
    robustness_table,
)
from proxflow_edu.mnist.classifier import (  # noqa: E402
    accuracy,
    load_classifier,
)
from proxflow_edu.mnist.data import load_mnist_with_labels  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="images per case")
    p.add_argument("--data-root", default="data")
    p.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    args = p.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    clf = load_classifier()
    x_test, y_test = load_mnist_with_labels(args.data_root, train=False)
    table = robustness_table(clf, x_test, y_test, n=args.n, seed=EVAL_SEED)
    out = {"about": __doc__.strip().splitlines()[0],
           "targets": {"pass_min_confident": PASS_MIN_CONFIDENT, "garbage_max_confident": GARBAGE_MAX_CONFIDENT,
                       "test_accuracy_min": 0.99, "met": table.ok()},
           "test_accuracy": accuracy(clf, x_test, y_test),
           "cases": table.to_dict()["rows"], "threshold": table.threshold, "seed": table.seed, "n_per_case": args.n,
           "training": {k: v for k, v in clf.info.items() if k in ("epochs", "train_seconds", "threads", "seed",
                                                                   "outlier_exposure", "batch_size", "lr", "torch")},
           "eval_seconds": round(time.perf_counter() - start, 1), "eval_threads": 1}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(table.format())
    print(f"test accuracy {out['test_accuracy']:.4f}; targets met: {table.ok()}; wrote {args.out}")


if __name__ == "__main__":
    main()
