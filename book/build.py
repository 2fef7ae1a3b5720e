"""Build the Jupyter Book (``make book``; also used by ``tests/test_book.py``).

Steps:
1. ``book/notebooks`` -> ``../notebooks`` (symlink) and the generated tables (:mod:`make_tables`);
2. drop the execution cache when ``proxflow_edu/`` or ``checkpoints/`` changed: jupyter-cache keys executed notebooks
   on their code cells only, so without this a change in the package would keep showing old outputs;
3. ``jupyter-book build --all -W --keep-going book`` with ``PROXFLOW_SMOKE=1``: every notebook runs in smoke
   mode in ``notebooks/`` (cached in ``book/_build/.jupyter_cache``), warnings are errors, a failing cell fails
   the build (``execute.raise_on_error``);
4. on success, a stamp ``book/_build/.build-ok`` holding a fingerprint of every input, so that
   ``--if-stale`` can skip a build whose inputs have not changed.

Usage: ``python book/build.py [--if-stale]``; exit status 0 = built (or fresh), else the build failed.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
BUILD = BOOK / "_build"
HTML = BUILD / "html"
STAMP = BUILD / ".build-ok"
CACHE = BUILD / ".jupyter_cache"
PACKAGE_STAMP = BUILD / ".execution-inputs-fingerprint"
sys.path.insert(0, str(BOOK))

import make_tables  # noqa: E402


def _files(folder: Path, patterns: tuple[str, ...], recursive: bool = False) -> list[Path]:
    if not folder.is_dir():
        return []
    found = {p for pat in patterns for p in (folder.rglob(pat) if recursive else folder.glob(pat)) if p.is_file()}
    return sorted(found)


def execution_inputs() -> list[Path]:
    """What the notebooks' outputs depend on besides their code cells: the package and the shipped checkpoints."""
    return _files(ROOT / "proxflow_edu", ("*.py",), recursive=True) + _files(ROOT / "checkpoints", ("*",), recursive=True)


def input_files() -> list[Path]:
    """Everything the built site depends on (the notebooks through the book/notebooks symlink)."""
    book = [p for p in _files(BOOK, ("*",), recursive=True)
            if not {"_build", "_generated", "notebooks", "__pycache__"} & set(p.relative_to(BOOK).parts)]
    return (book + _files(ROOT / "notebooks", ("*.ipynb",)) + _files(ROOT / "notebooks" / "solutions", ("*.md",))
            + _files(ROOT / "benchmarks", ("*.json",)) + execution_inputs())


def fingerprint(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.relative_to(ROOT).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def is_fresh() -> bool:
    """True when the last successful build used exactly the current inputs."""
    return STAMP.is_file() and (HTML / "index.html").is_file() and STAMP.read_text().strip() == fingerprint(input_files())


def invalidate_cache_if_inputs_changed() -> None:
    current = fingerprint(execution_inputs())
    if CACHE.exists() and (not PACKAGE_STAMP.is_file() or PACKAGE_STAMP.read_text().strip() != current):
        print("book/build.py: proxflow_edu/ or checkpoints/ changed since the notebooks were cached; re-executing them",
              flush=True)
        shutil.rmtree(CACHE)
    BUILD.mkdir(parents=True, exist_ok=True)
    PACKAGE_STAMP.write_text(current + "\n")


def jupyter_book() -> str:
    exe = Path(sys.executable).parent / "jupyter-book"
    return str(exe) if exe.exists() else "jupyter-book"


def build(quiet: bool = False) -> subprocess.CompletedProcess[str]:
    """Run steps 1-4; returns the jupyter-book process (its output captured when ``quiet``)."""
    make_tables.main([])
    invalidate_cache_if_inputs_changed()
    STAMP.unlink(missing_ok=True)
    env = {**os.environ, "PROXFLOW_SMOKE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    cmd = [jupyter_book(), "build", "--all", "-W", "--keep-going", str(BOOK)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None)
    if proc.returncode == 0:
        STAMP.write_text(fingerprint(input_files()) + "\n")
    print(f"book/build.py: jupyter-book exited {proc.returncode} after {time.perf_counter() - start:.1f} s", flush=True)
    return proc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--if-stale", action="store_true", help="do nothing when the last build is up to date")
    args = parser.parse_args(argv)
    if args.if_stale and is_fresh():
        print(f"book/build.py: {HTML.relative_to(ROOT)} is up to date")
        return 0
    return build().returncode


if __name__ == "__main__":
    sys.exit(main())
