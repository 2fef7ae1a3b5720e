"""Which well-posedness options each notebook's comparisons have on (static: the code cells of the .py sources).

Notebooks 01-07 teach the paper: every config they build must be the paper's algorithm (every option off), so
that no comparison credits the W1 or W2 proximal with what the course's options do. Notebooks 08-09 compare the
paper's algorithm with the course's options, and must build both sides.
"""
from __future__ import annotations

import re
from pathlib import Path

import jupytext
import pytest

from proxflow_edu.config import OFF, PRESETS, FlowConfig

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.py"))
PRESET_CALL = re.compile(r"FlowConfig\.preset\(\s*[\"']([a-z0-9_]+)[\"']")
OPTION_KWARG = re.compile(rf"\b({'|'.join(OFF)})\s*=")
PAPER_ONLY = {"01", "02", "03", "04", "05", "06", "07"}


def code_of(notebook: Path) -> str:
    return "\n".join(c.source for c in jupytext.read(notebook).cells if c.cell_type == "code")


def options_on(preset: str) -> dict:
    config = FlowConfig.preset(preset)
    return {k: getattr(config, k) for k in OFF if getattr(config, k) != OFF[k]}


def test_flowconfig_defaults_have_every_option_off() -> None:
    # so a plain FlowConfig(...) in a notebook is the paper's algorithm too
    assert {k: getattr(FlowConfig(), k) for k in OFF} == OFF


@pytest.mark.parametrize("notebook", [n for n in NOTEBOOKS if n.name[:2] in PAPER_ONLY], ids=lambda p: p.stem)
def test_paper_notebooks_build_only_the_papers_algorithm(notebook: Path) -> None:
    code = code_of(notebook)
    with_options = [name for name in PRESET_CALL.findall(code) if options_on(name)]
    assert not with_options, f"{notebook.stem} trains presets with options on: {with_options}"
    kwargs = sorted(set(OPTION_KWARG.findall(code)))
    assert not kwargs, f"{notebook.stem} switches options on by keyword: {kwargs}"


@pytest.mark.parametrize("notebook", [n for n in NOTEBOOKS if n.name[:2] not in PAPER_ONLY], ids=lambda p: p.stem)
def test_comparisons_build_both_sides(notebook: Path) -> None:
    names = set(PRESET_CALL.findall(code_of(notebook)))
    assert names & {n for n in PRESETS if not options_on(n)}, f"{notebook.stem}: no paper-algorithm preset"
    assert names & {n for n in PRESETS if options_on(n)}, f"{notebook.stem}: no preset with the course's options"


def test_the_checker_sees_an_option() -> None:
    assert OPTION_KWARG.findall("FlowConfig(velocity_change_weight=0.3)") == ["velocity_change_weight"]
    assert options_on("lecture_toy_straight") and not options_on("lecture_toy_paper")
    assert PRESET_CALL.findall('FlowConfig.preset("cpu_mnist", seed=1)') == ["cpu_mnist"]
