"""The notebooks are tests: each runs headless in smoke mode, and each .py/.ipynb pair is in sync and clean."""
from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def test_there_are_notebooks() -> None:
    assert len(SOURCES) >= 1, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_pair_in_sync_and_without_outputs(source: Path) -> None:
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} missing: run `make sync`"
    paired = nbformat.read(ipynb, as_version=4)
    assert _cells(jupytext.read(source)) == _cells(paired), f"{source.name} and {ipynb.name} differ: run `make sync`"
    with_outputs = [i for i, c in enumerate(paired.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not with_outputs, f"{ipynb.name} carries outputs in cells {with_outputs}: run `make sync`"
    assert any("parameters" in c.metadata.get("tags", ()) for c in paired.cells), f"{ipynb.name}: no parameters cell"
    assert paired.metadata.get("kernelspec", {}).get("name") == "python3", f"{ipynb.name}: kernelspec missing"
    # JupyterLab writes the kernel's language_info into a notebook that lacks it, marking it modified on open
    from ipykernel.ipkernel import IPythonKernel
    assert paired.metadata.get("language_info") == dict(IPythonKernel.language_info), \
        f"{ipynb.name}: language_info missing or stale: run `make sync`"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_mode(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXFLOW_SMOKE", "1")
    notebook = jupytext.read(source)
    src = tmp_path / f"{source.stem}.ipynb"
    nbformat.write(notebook, src)
    try:
        papermill.execute_notebook(str(src), str(tmp_path / f"{source.stem}.out.ipynb"), kernel_name="python3",
                                   cwd=str(NOTEBOOK_DIR), progress_bar=False)
    except papermill.PapermillExecutionError as err:
        pytest.fail(f"{source.name}: cell {err.cell_index} (execution count {err.exec_count}) raised "
                    f"{err.ename}: {err.evalue}", pytrace=False)
