"""The exercise solutions run: every fenced ```python block of each notebooks/solutions/*.md, in smoke mode.

The blocks of one file run in order in one namespace (later blocks reuse earlier names), from ``notebooks/`` as the
working directory, the way the notebooks run, with ``PROXFLOW_SMOKE=1``. A solution that needs the notebook's
objects gets them from the file's own setup block (which defines them at smoke size or runs the notebook's code
cells); no block is skipped.
"""
from __future__ import annotations

import re
import sys
import traceback
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
SOLUTIONS = sorted((NOTEBOOK_DIR / "solutions").glob("*_solutions.md"))
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def python_blocks(markdown: str) -> list[str]:
    """The bodies of the fenced ```python blocks, in order."""
    return [m.group(1) for m in FENCE.finditer(markdown)]


def test_the_fence_parser() -> None:
    text = "x\n```python\na = 1\n```\n\n```text\nno\n```\n```python\nb = a + 1\n```\n"
    assert python_blocks(text) == ["a = 1\n", "b = a + 1\n"]


def test_every_notebook_has_a_solution_file() -> None:
    notebooks = {p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.py")}
    assert {p.name.removesuffix("_solutions.md") for p in SOLUTIONS} == notebooks


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name[:2])
def test_solution_blocks_run(solution: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    monkeypatch.setenv("PROXFLOW_SMOKE", "1")
    monkeypatch.chdir(NOTEBOOK_DIR)
    threads = torch.get_num_threads()
    # a module of its own, registered like __main__ of a kernel (dataclasses defined in a notebook look it up)
    module = types.ModuleType(f"solutions_{solution.name[:2]}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    blocks = python_blocks(solution.read_text())
    try:
        for i, block in enumerate(blocks):
            try:
                exec(compile(block, f"{solution.name}[block {i}]", "exec"), namespace)
            except Exception:  # noqa: BLE001 - report which block failed, with its traceback
                first = block.strip().splitlines()[0] if block.strip() else ""
                pytest.fail(f"{solution.name}: python block {i} ({first!r}) failed:\n{traceback.format_exc()}",
                            pytrace=False)
    finally:
        plt.close("all")
        torch.set_num_threads(threads)
