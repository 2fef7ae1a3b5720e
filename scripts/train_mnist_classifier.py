"""Train the small LeNet-style MNIST classifier used to score generated digits (proxflow_edu.mnist.classifier).

    python scripts/train_mnist_classifier.py [--epochs 6] [--out checkpoints/mnist_classifier.pt]

CPU, a few minutes on 2 cores. Writes the weights, the test accuracy, and the mean/covariance of the
classifier's 128 features on the 10,000 test images (the reference of the Frechet distance).
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from proxflow_edu.mnist.data import load_mnist, load_mnist_with_labels
from proxflow_edu.mnist.classifier import (DEFAULT_CLASSIFIER, Classifier, MNISTClassifier, accuracy, feature_statistics,
                                   load_classifier, predict, save_classifier, score_samples)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
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
    start = time.perf_counter()
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(x_tr), generator=g)
        for idx in perm.split(args.batch_size):
            xb = x_tr[idx]
            # light augmentation: random shifts by up to 2 pixels
            dx, dy = torch.randint(-2, 3, (2,), generator=g).tolist()
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(net(xb), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        clf = Classifier(net, torch.zeros(128), torch.eye(128), 0.0)
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}, test accuracy {accuracy(clf, x_te, y_te):.4f}, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    train_time = time.perf_counter() - start
    net.eval()
    acc = accuracy(Classifier(net, torch.zeros(128), torch.eye(128), 0.0), x_te, y_te)
    mu, cov = feature_statistics(predict(Classifier(net, torch.zeros(128), torch.eye(128), 0.0), x_te)[2])
    info = {"epochs": args.epochs, "train_seconds": round(train_time, 1), "threads": args.threads,
            "seed": args.seed, "torch": str(torch.__version__)}
    save_classifier(net, mu, cov, acc, args.out, info)
    clf = load_classifier(args.out)
    # the sampling floor of the Frechet distance: real training digits (not in the test set), n = 1000
    floor = score_samples(load_mnist(args.data_root, train=True, n=1000, seed=123), clf)
    info["real_train_1000"] = floor.to_dict()
    save_classifier(net, mu, cov, acc, args.out, info)
    print(f"test accuracy {acc:.4f}; 1000 real training digits: confident {floor.confident:.3f}, "
          f"Frechet {floor.frechet:.2f}; wrote {args.out} ({Path(args.out).stat().st_size / 1e3:.0f} kB) "
          f"in {train_time:.0f} s")


if __name__ == "__main__":
    main()
