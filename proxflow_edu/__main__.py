"""Command line: ``python -m proxflow_edu train ...`` and ``python -m proxflow_edu sample ...``.

    python -m proxflow_edu train --dataset 8gaussians --dim 12 --variant w1w2 --n-iters 1500 --out runs/g12
    python -m proxflow_edu sample --run runs/g12 --n 1000 --h 0.2 --seed 0 --out samples.pt
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path

import torch

from . import checkpoint
from .config import PRESETS, FlowConfig
from .data import TOY_DATASETS, sample_toy
from .flow import num_steps
from .mnist.data import load_mnist
from .train import DivergedRunWarning, train


def _add_config_args(p: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(FlowConfig):
        if f.name == "adam_betas":
            continue
        kind = int if f.name.endswith(("_width", "_depth")) else type(f.default)
        p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=None, help=f"(default {f.default})")


def _load_data(dataset: str, n: int, dim: int, seed: int, data_root: str) -> torch.Tensor:
    if dataset == "mnist":
        return load_mnist(data_root, train=True, n=n, seed=seed)
    return sample_toy(dataset, n, dim=dim, seed=seed)


def _check_args(args: argparse.Namespace) -> None:
    """Raise ValueError naming the first invalid argument (the config fields are checked by FlowConfig)."""
    if args.command == "sample":
        checks = [("--n", args.n, args.n >= 1, "an integer >= 1"),
                  ("--seed", args.seed, args.seed >= 0, "an integer >= 0"),
                  ("--h", args.h, args.h is None or args.h > 0, "> 0")]
    else:
        checks = [("--dim", args.dim, args.dim >= 2, "an integer >= 2"),
                  ("--n-data", args.n_data, args.n_data is None or args.n_data >= 1, "an integer >= 1")]
    for name, value, ok, rule in checks:
        if not ok:
            raise ValueError(f"{name} must be {rule}, got {name} {value}")
    out = Path(args.out)
    if args.command == "sample" and out.is_dir():
        raise ValueError(f"--out must be a file path, got the folder {out}")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir() and existing != out:
        raise ValueError(f"--out cannot be created: {existing} is a file, not a folder")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proxflow_edu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a flow and save it to a run directory")
    t.add_argument("--dataset", required=True, choices=[*TOY_DATASETS, "mnist"])
    t.add_argument("--dim", type=int, default=2, help="ambient dimension of a toy data set")
    t.add_argument("--n-data", type=int, default=None, help="training samples (default 20000 toys, 6000 MNIST)")
    t.add_argument("--data-root", default="data", help="folder holding MNIST/raw")
    t.add_argument("--preset", choices=list(PRESETS), default=None)
    t.add_argument("--out", required=True, help="run directory to write")
    t.add_argument("--quiet", action="store_true")
    _add_config_args(t)
    s = sub.add_parser("sample", help="generate samples from a saved run")
    s.add_argument("--run", required=True, help="run directory (or its model.pt)")
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--h", type=float, default=None, help="Euler step (default: the training step)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output .pt file: a float tensor (n, *event_shape)")
    args = parser.parse_args(argv)

    try:
        _check_args(args)
        if args.command == "train":
            overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(FlowConfig)
                         if f.name != "adam_betas" and getattr(args, f.name, None) is not None}
            if args.dataset == "mnist" and args.preset is None:
                args.preset = "paper_mnist"
            config = FlowConfig.preset(args.preset, **overrides) if args.preset else FlowConfig(**overrides)
            n_data = args.n_data or (6000 if args.dataset == "mnist" else 20000)
            data = _load_data(args.dataset, n_data, args.dim, config.seed, args.data_root)
            result = train(config, data, progress=not args.quiet)
            path = checkpoint.save(result, args.out, extra={"dataset": args.dataset, "dim": args.dim,
                                                            "n_data": n_data})
            status = ("finished" if result.diverged_at is None
                      else f"diverged at iteration {result.diverged_at} ({result.divergence_reason})")
            print(f"{status}: {result.iterations_done} iterations in {result.wall_time:.1f} s -> {path}")
        else:
            result = checkpoint.load(args.run)
            if args.h is not None:
                try:
                    num_steps(result.config.T, args.h)
                except ValueError as err:
                    raise ValueError(f"--h {args.h} does not fit the run's horizon: {err}") from None
            if result.diverged_at is not None:
                print(f"warning: {args.run} diverged at iteration {result.diverged_at} ({result.divergence_reason}); "
                      f"sampling its last good weights", file=sys.stderr)
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DivergedRunWarning)  # said once above, in one line
                x = result.sample(args.n, seed=args.seed, h=args.h)
            if result.config.arch == "mnist_cnn":
                x = x.clamp(0, 1)  # images: pixel range
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            torch.save(x.cpu(), out)
            print(f"wrote {tuple(x.shape)} samples to {out}")
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
