"""The notebooks fit a laptop screen: static checks of their sources (fast, nothing is executed).

JupyterLab on a 1366-px laptop with the file browser open leaves an output area about 930 px wide, about 100
characters of code. So a code cell's lines are at most 100 characters (markdown cells, written as comment lines in
the percent-format .py files, wrap and may be longer), and a cell whose only job is to display a generated reading
(``display(Markdown(...))``) carries the ``remove-input`` tag, so that the book shows the text and not the f-string
code behind it.
"""
from __future__ import annotations

from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
MAX_CODE_LINE = 100


def long_code_lines(source: Path, limit: int = MAX_CODE_LINE) -> list[str]:
    """'cell i: n chars: line' for every line of a code cell longer than ``limit``."""
    out = []
    for i, cell in enumerate(jupytext.read(source).cells):
        if cell.cell_type == "code":
            out += [f"cell {i}: {len(line)} chars: {line[:60]}..." for line in cell.source.splitlines()
                    if len(line) > limit]
    return out


def is_reading(code: str) -> bool:
    """A cell that computes nothing the notebook checks or draws: it only writes a reading as Markdown."""
    flat = "".join(code.split())
    return ("display(Markdown(" in flat and "assert" not in code and "print(" not in code
            and "plt." not in code and "|---" not in code and "---|" not in code and "train(" not in code)


def untagged_readings(source: Path) -> list[str]:
    return [f"cell {i}: {cell.source.splitlines()[0][:60]}"
            for i, cell in enumerate(jupytext.read(source).cells)
            if cell.cell_type == "code" and is_reading(cell.source)
            and "remove-input" not in cell.metadata.get("tags", ())]


def test_there_are_notebooks() -> None:
    assert len(SOURCES) >= 9, f"notebooks missing in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_code_lines_fit_the_screen(source: Path) -> None:
    long = long_code_lines(source)
    assert not long, f"{source.name}: {len(long)} code lines over {MAX_CODE_LINE} characters:\n" + "\n".join(long)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_generated_readings_hide_their_code_in_the_book(source: Path) -> None:
    untagged = untagged_readings(source)
    assert not untagged, (f"{source.name}: cells that only display a generated reading need "
                          f'`# %% tags=["remove-input"]`:\n' + "\n".join(untagged))


def test_the_checks_notice_a_long_line_and_an_untagged_reading(tmp_path: Path) -> None:
    source = tmp_path / "99_example.py"
    source.write_text('# %% [markdown]\n# ' + "m" * 150 + "\n\n# %%\nx = 1\n\n"
                      "# %%\ndisplay(Markdown(f\"x = {x}\"))\n\n"
                      '# %% tags=["remove-input"]\ndisplay(Markdown(f"x = {x}"))\n\n'
                      "# %%\ny = " + "1 + " * 30 + "1\n")
    assert [line.split(":")[0] for line in long_code_lines(source)] == ["cell 4"]
    assert untagged_readings(source) == ['cell 2: display(Markdown(f"x = {x}"))']
