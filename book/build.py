"""Build the Jupyter Book: ``make book`` (lecture budget) and ``tests/test_book.py`` (a smoke copy).

Two modes, each with its own output tree, execution cache and stamp, so that neither overwrites the other:

* ``lecture`` (``make book``, ``python book/build.py``): the notebooks run at their lecture budget, as with
  ``make run``: ``PROXFLOW_SMOKE`` is removed from the environment even when the caller set it (``make test``'s
  pytest sets it). Output ``book/_build/html`` (the site), cache ``book/_build/.jupyter_cache``.
* ``smoke`` (``python book/build.py --smoke``; what ``make test`` builds and checks in a browser): the notebooks run
  with ``PROXFLOW_SMOKE=1`` (a few training iterations, numbers meaningless). Output
  ``build/book-smoke/_build/html`` (jupyter-book's ``--path-output build/book-smoke``), cache
  ``build/book-smoke/_build/.jupyter_cache``.

Steps, per mode:
1. ``book/notebooks`` -> ``../notebooks`` (symlink) and the generated tables (:mod:`make_tables`);
2. drop the mode's execution cache when ``proxflow_edu/`` or ``checkpoints/`` changed, or when it was filled in the
   other mode: jupyter-cache keys executed notebooks on their code cells only, not on the package or the
   environment, so without this a changed package (or a cache filled in smoke mode) would keep showing old outputs;
3. ``jupyter-book build --all -W --keep-going --path-output <tree> book`` with :func:`build_env`: every notebook runs
   in ``notebooks/``, warnings are errors, a failing cell fails the build (``execute.raise_on_error``);
4. on success, a stamp ``<tree>/_build/.build-ok`` holding a fingerprint of every input and the mode, so that
   ``--if-stale`` can skip a build whose inputs have not changed.

Usage: ``python book/build.py [--smoke] [--if-stale]``; exit status 0 = built (or fresh), else the build failed.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
MODES = ("lecture", "smoke")
SMOKE_VAR = "PROXFLOW_SMOKE"  # the notebooks' switch: SMOKE = os.environ.get("PROXFLOW_SMOKE", "0") == "1"
sys.path.insert(0, str(BOOK))

import make_tables  # noqa: E402


def _check(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    return mode


def output_dir(mode: str = "lecture") -> Path:
    """jupyter-book's ``--path-output``: ``book/`` for the lecture site, ``build/book-smoke/`` for the smoke copy."""
    return BOOK if _check(mode) == "lecture" else ROOT / "build" / "book-smoke"


def build_dir(mode: str = "lecture") -> Path:
    return output_dir(mode) / "_build"


def html_dir(mode: str = "lecture") -> Path:
    return build_dir(mode) / "html"


def stamp_path(mode: str = "lecture") -> Path:
    return build_dir(mode) / ".build-ok"


def cache_dir(mode: str = "lecture") -> Path:
    return build_dir(mode) / ".jupyter_cache"


def execution_stamp_path(mode: str = "lecture") -> Path:
    return build_dir(mode) / ".execution-inputs-fingerprint"


# the lecture site, under the names this module had before it had modes
BUILD, HTML, STAMP, CACHE = build_dir(), html_dir(), stamp_path(), cache_dir()


def build_env(mode: str = "lecture", base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment jupyter-book (and so every notebook kernel) runs in: ``base`` (default ``os.environ``)
    without ``PROXFLOW_SMOKE``, plus ``PROXFLOW_SMOKE=1`` in smoke mode only."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k != SMOKE_VAR}
    if _check(mode) == "smoke":
        env[SMOKE_VAR] = "1"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # no debugger warning on stderr in every executed notebook
    return env


def jupyter_book() -> str:
    exe = Path(sys.executable).parent / "jupyter-book"
    return str(exe) if exe.exists() else "jupyter-book"


def build_command(mode: str = "lecture") -> list[str]:
    """The jupyter-book command line of step 3."""
    return [jupyter_book(), "build", "--all", "-W", "--keep-going", "--path-output", str(output_dir(mode)), str(BOOK)]


def _files(folder: Path, patterns: tuple[str, ...], recursive: bool = False) -> list[Path]:
    if not folder.is_dir():
        return []
    found = {p for pat in patterns for p in (folder.rglob(pat) if recursive else folder.glob(pat)) if p.is_file()}
    return sorted(found)


def execution_inputs() -> list[Path]:
    """What the notebooks' outputs depend on besides their code cells: the package and the shipped checkpoints."""
    return (_files(ROOT / "proxflow_edu", ("*.py",), recursive=True)
            + _files(ROOT / "checkpoints", ("*",), recursive=True))


def input_files() -> list[Path]:
    """Everything the built site depends on (the notebooks through the book/notebooks symlink)."""
    book = [p for p in _files(BOOK, ("*",), recursive=True)
            if not {"_build", "_generated", "notebooks", "__pycache__"} & set(p.relative_to(BOOK).parts)]
    return (book + _files(ROOT / "notebooks", ("*.ipynb",)) + _files(ROOT / "notebooks" / "solutions", ("*.md",))
            + _files(ROOT / "benchmarks", ("*.json",)) + execution_inputs())


def fingerprint(paths: list[Path], mode: str | None = None) -> str:
    """SHA-256 of the files' paths and contents, and of the mode when given (one mode's stamp never fits the other)."""
    h = hashlib.sha256()
    if mode is not None:
        h.update(f"mode={_check(mode)}\0".encode())
    for p in paths:
        h.update(p.relative_to(ROOT).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def is_fresh(mode: str = "lecture") -> bool:
    """True when the last successful build in ``mode`` used exactly the current inputs."""
    stamp = stamp_path(mode)
    return (stamp.is_file() and (html_dir(mode) / "index.html").is_file()
            and stamp.read_text().strip() == fingerprint(input_files(), mode))


def invalidate_cache_if_inputs_changed(mode: str = "lecture") -> None:
    current = fingerprint(execution_inputs(), mode)
    cache, stamp = cache_dir(mode), execution_stamp_path(mode)
    if cache.exists() and (not stamp.is_file() or stamp.read_text().strip() != current):
        print(f"book/build.py: proxflow_edu/ or checkpoints/ changed since the notebooks were cached in {mode} mode "
              "(or the cache predates the modes); re-executing them", flush=True)
        shutil.rmtree(cache)
    build_dir(mode).mkdir(parents=True, exist_ok=True)
    stamp.write_text(current + "\n")


def build(mode: str = "lecture", quiet: bool = False) -> subprocess.CompletedProcess[str]:
    """Run steps 1-4 in ``mode``; returns the jupyter-book process (its output captured when ``quiet``)."""
    _check(mode)
    make_tables.main([])
    invalidate_cache_if_inputs_changed(mode)
    stamp_path(mode).unlink(missing_ok=True)
    print(f"book/build.py: {mode} build -> {html_dir(mode).relative_to(ROOT)}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(build_command(mode), cwd=ROOT, env=build_env(mode), text=True,
                          stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None)
    if proc.returncode == 0:
        stamp_path(mode).write_text(fingerprint(input_files(), mode) + "\n")
    print(f"book/build.py: jupyter-book ({mode}) exited {proc.returncode} after {time.perf_counter() - start:.1f} s",
          flush=True)
    return proc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="build the smoke copy (PROXFLOW_SMOKE=1) in build/book-smoke/, not the lecture site")
    parser.add_argument("--if-stale", action="store_true", help="do nothing when the last build is up to date")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "lecture"
    if args.if_stale and is_fresh(mode):
        print(f"book/build.py: {html_dir(mode).relative_to(ROOT)} is up to date ({mode} mode)")
        return 0
    return build(mode).returncode


if __name__ == "__main__":
    sys.exit(main())
