"""Train the small LeNet-style MNIST classifier used to score generated digits (proxflow_edu.mnist.classifier).

    python scripts/train_mnist_classifier.py [--epochs 6] [--threads 1] [--out checkpoints/mnist_classifier.pt]

CPU, a few minutes. Writes the weights, the test accuracy, and the mean/covariance of the classifier's 128
features on the 10,000 test images (the reference of the Frechet distance).

Outlier exposure (Hendrycks, Mazeika & Dietterich 2019, "Deep anomaly detection with outlier exposure"):
without it the network calls uniform noise a confident digit (94 % of it at softmax >= 0.9), so its
"confident" score says little about a generator. Each batch therefore also gets ``--outliers`` freshly drawn
garbage images (a mix of ``GARBAGE_KINDS``, from the training digits, with their own seeded generator) whose
target is the uniform distribution over the 10 classes: the loss adds
``--oe-weight * mean_garbage(-1/10 sum_k log softmax_k)``. The real digits, which keep their labels, are
augmented with per-image shifts of up to 2 px, a mild blur (sigma <= 1) or a lower contrast (x 0.7-1) on a
third each, and a light background haze U[0, a], a <= 0.1, on half of them (``augment``), so that these
nuisances are not mistaken for garbage. The robustness table (``robustness_table``, fixed
evaluation seed on the test digits, disjoint from the training draws) is printed and stored in ``info``.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: benchmarks/

from benchmarks.classifier_cases import (  # noqa: E402
    EVAL_SEED,
    GARBAGE_KINDS,
    HAZE_MAX,
    SHIFT_PX,
    gaussian_blur,
    haze,
    outlier_images,
    robustness_table,
    shift_images,
)
from proxflow_edu.mnist.classifier import (  # noqa: E402
    DEFAULT_CLASSIFIER,
    Classifier,
    MNISTClassifier,
    accuracy,
    feature_statistics,
    load_classifier,
    predict,
    save_classifier,
    score_samples,
)
from proxflow_edu.mnist.data import load_mnist, load_mnist_with_labels  # noqa: E402

TRAIN_BLUR_SIGMA = (2.0, 3.5)  # training blurs span a range (evaluation: exactly 2, the hardest of "sigma >= 2")
OUTLIER_SEED_OFFSET = 1_000_003  # the garbage generator's seed = --seed + this (never the evaluation's seeds)


def garbage_batch(n: int, generator: torch.Generator, digits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """n garbage images (n, 1, 28, 28) in [0, 1]: an equal share of each of GARBAGE_KINDS (remainder to the first).

    Built from the training digits (the evaluation builds its blends and blurs from the test digits).
    """
    counts = [n // len(GARBAGE_KINDS)] * len(GARBAGE_KINDS)
    counts[0] += n - sum(counts)
    return torch.cat([outlier_images(kind, c, generator, digits, labels, blur_sigma=TRAIN_BLUR_SIGMA)
                      for kind, c in zip(GARBAGE_KINDS, counts) if c])


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Nuisances that must NOT count as garbage, applied to real digits (n, 1, 28, 28); labels are unchanged.

    * every digit: a shift in [-2, 2] px per axis (zero fill, per image);
    * a random third: a mild blur, sigma ~ U[0.3, 1] px, and another third: the contrast scaled by U[0.7, 1].
      Without these two the garbage blurs (sigma >= 2, fainter and softer than digits) teach the network the
      shortcut "soft or faint strokes = garbage": it then refused digits blurred with sigma 0.7 or scaled by
      0.6, which a generator's slightly soft samples are;
    * a random half: a haze U[0, a] per pixel, a ~ U[0, HAZE_MAX] per image (clamped).
    """
    n = len(x)
    d = torch.randint(-SHIFT_PX, SHIFT_PX + 1, (2, n), generator=generator)
    x = shift_images(x, d[0], d[1])
    which = torch.randint(0, 3, (n,), generator=generator)  # 0: as is, 1: mild blur, 2: lower contrast
    soft = which == 1
    if soft.any():
        x = x.clone()
        sigma = 0.3 + 0.7 * torch.rand(int(soft.sum()), generator=generator)
        x[soft] = gaussian_blur(x[soft], sigma)
    scale = torch.where(which == 2, 0.7 + 0.3 * torch.rand(n, generator=generator), torch.ones(n))
    x = x * scale.view(n, 1, 1, 1)
    amp = HAZE_MAX * torch.rand(n, generator=generator) * (torch.rand(n, generator=generator) < 0.5)
    return haze(x, generator, amp)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--outliers", type=int, default=64, help="garbage images per batch (outlier exposure)")
    p.add_argument("--oe-weight", type=float, default=0.5, help="weight of the uniform-target loss on garbage")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-root", default="data")
    p.add_argument("--out", default=str(DEFAULT_CLASSIFIER))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x_tr, y_tr = load_mnist_with_labels(args.data_root, train=True)
    x_te, y_te = load_mnist_with_labels(args.data_root, train=False)
    net = MNISTClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps = args.epochs * math.ceil(len(x_tr) / args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    g = torch.Generator().manual_seed(args.seed)
    # garbage gets its own generator: its draws do not depend on the batch order, and its seed is never one of
    # the evaluation's (robustness_table uses EVAL_SEED + kind index, on the test digits)
    g_out = torch.Generator().manual_seed(args.seed + OUTLIER_SEED_OFFSET)
    assert not EVAL_SEED <= args.seed + OUTLIER_SEED_OFFSET < EVAL_SEED + 16
    start = time.perf_counter()
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(x_tr), generator=g)
        for idx in perm.split(args.batch_size):
            xb = augment(x_tr[idx], g)
            xo = garbage_batch(args.outliers, g_out, x_tr, y_tr) if args.outliers else xb[:0]
            logits = net(torch.cat([xb, xo]))  # one forward pass (no batch norm: the two parts do not interact)
            loss = F.cross_entropy(logits[:len(xb)], y_tr[idx])
            if len(xo):
                # cross-entropy to the uniform label: -1/10 sum_k log softmax_k, averaged over the garbage
                loss = loss + args.oe_weight * (-logits[len(xb):].log_softmax(dim=1).mean(dim=1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        clf = Classifier(net, torch.zeros(128), torch.eye(128), 0.0)
        quick = robustness_table(clf, x_te, y_te, n=500)  # a cheap look at the targets while training
        conf = " ".join(f"{k} {r['confident']:.3f}" for k, r in quick.rows.items())
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}, test accuracy {accuracy(clf, x_te, y_te):.4f}, "
              f"{time.perf_counter() - start:.0f} s; confident: {conf}", flush=True)
    train_time = time.perf_counter() - start
    net.eval()
    acc = accuracy(Classifier(net, torch.zeros(128), torch.eye(128), 0.0), x_te, y_te)
    mu, cov = feature_statistics(predict(Classifier(net, torch.zeros(128), torch.eye(128), 0.0), x_te)[2])
    table = robustness_table(Classifier(net, torch.zeros(128), torch.eye(128), 0.0), x_te, y_te)
    info = {"epochs": args.epochs, "train_seconds": round(train_time, 1), "threads": args.threads,
            "seed": args.seed, "torch": str(torch.__version__), "batch_size": args.batch_size, "lr": args.lr,
            "outlier_exposure": {"outliers_per_batch": args.outliers, "weight": args.oe_weight,
                                 "kinds": list(GARBAGE_KINDS), "train_blur_sigma": list(TRAIN_BLUR_SIGMA),
                                 "seed": args.seed + OUTLIER_SEED_OFFSET},
            "robustness": table.to_dict()}
    save_classifier(net, mu, cov, acc, args.out, info)
    clf = load_classifier(args.out)
    # the sampling floor of the Frechet distance: real training digits (not in the test set), n = 1000
    floor = score_samples(load_mnist(args.data_root, train=True, n=1000, seed=123), clf)
    info["real_train_1000"] = floor.to_dict()
    save_classifier(net, mu, cov, acc, args.out, info)
    print(table.format())
    print(f"targets (pass >= 0.90, garbage <= 0.05 confident) {'met' if table.ok() else 'NOT met'}")
    print(f"test accuracy {acc:.4f}; 1000 real training digits: confident {floor.confident:.3f}, "
          f"Frechet {floor.frechet:.2f}; wrote {args.out} ({Path(args.out).stat().st_size / 1e3:.0f} kB) "
          f"in {train_time:.0f} s")


if __name__ == "__main__":
    main()
