"""Jupyter server configuration that `make setup` installs into .venv/etc/jupyter/ (every `jupyter lab` of the venv
reads it, `make lab` included): the course notebooks are saved without outputs.

JupyterLab autosaves an open notebook every two minutes, so a Run All used to write its outputs (figures, tqdm's
widget JSON) and execution counts into the committed notebooks/NN_name.ipynb: `git status` showed them modified and
tests/test_notebooks.py failed ("carries outputs"). This pre-save hook strips them on every save, autosave included,
before the file is written. Chosen over a git clean filter (nbstripout) because
- the file on disk stays clean, so `git status` *and* the tests, which read the working-tree .ipynb files, agree;
  a filter only cleans what git stages, and the test would still fail in the student's checkout;
- a filter lives in .git/config, which `git clone` does not carry and which all worktrees of a clone share;
  this file lives in the venv that `make setup` builds anyway.
The outputs stay on screen until the notebook is closed or reloaded; `make run` keeps executed copies in build/.

What is removed: every code cell's outputs and execution count, the cell metadata that records a run or the view of
its output (`execution`, `ExecuteTime`, `collapsed`, `scrolled`, `autoscroll`, `jupyter.outputs_hidden`) and the
notebook's saved widget state (`metadata.widgets`). Kept: every cell's source, its `tags` (`parameters`) and other
metadata, and the notebook's `kernelspec`, `jupytext` and `language_info` (scripts/notebook_metadata.py says why
`language_info` must stay), so a student's own edit to a cell still shows in `git status`.

Only notebooks paired by jupytext with a text file (`metadata.jupytext.formats` names a second format, as every course
notebook does: the .py is the source, the .ipynb is committed without outputs) are stripped; a notebook of the
student's own keeps its outputs. A hook that fails is logged by the server and the notebook is saved unstripped
(jupyter_server never loses a save to a hook).
"""
from __future__ import annotations

import warnings
from typing import Any

RUN_CELL_METADATA = ("execution", "ExecuteTime", "collapsed", "scrolled", "autoscroll")


def is_paired_notebook(notebook: dict[str, Any]) -> bool:
    formats = notebook.get("metadata", {}).get("jupytext", {}).get("formats", "")
    if isinstance(formats, str):
        formats = [f for f in formats.split(",") if f.strip()]
    return len(formats) >= 2


def strip_cell(cell: dict[str, Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in cell.get("metadata", {}).items() if k not in RUN_CELL_METADATA}
    if isinstance(metadata.get("jupyter"), dict):
        metadata["jupyter"] = {k: v for k, v in metadata["jupyter"].items() if k != "outputs_hidden"}
        if not metadata["jupyter"]:
            del metadata["jupyter"]
    stripped = {**cell, "metadata": metadata}
    if cell.get("cell_type") == "code":
        stripped.update(outputs=[], execution_count=None)
    return stripped


def strip_notebook(notebook: dict[str, Any]) -> dict[str, Any]:
    """A copy of `notebook` without outputs, execution counts, run metadata and widget state (the input is unchanged:
    jupytext writes the paired .py from the same cells)."""
    metadata = {k: v for k, v in notebook.get("metadata", {}).items() if k != "widgets"}
    return {**notebook, "metadata": metadata, "cells": [strip_cell(c) for c in notebook.get("cells", [])]}


def strip_outputs_on_save(model: dict[str, Any], path: str, contents_manager: Any, **kwargs: Any) -> None:
    """ContentsManager pre-save hook: replace a paired notebook's content by its stripped copy."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    if is_paired_notebook(model["content"]):
        model["content"] = strip_notebook(model["content"])
        contents_manager.log.debug("proxflow-edu: %s saved without outputs (scripts/jupyter_server_config.py)", path)


if "get_config" in globals():  # loaded by Jupyter as a config file (importing it for its functions sets nothing)
    c = get_config()  # noqa: F821
    c.ContentsManager.pre_save_hook = strip_outputs_on_save
    # jupyter_server 2.x warns "Overriding existing pre_save_hook (X) with a new one (X)" for any callable hook set by
    # config (its validator compares the new value with itself), a false alarm printed at every start; silenced for
    # this hook only
    warnings.filterwarnings("ignore", message=r"Overriding existing pre_save_hook \(strip_outputs_on_save\) "
                            r"with a new one \(strip_outputs_on_save\)", category=UserWarning)
