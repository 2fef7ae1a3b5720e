"""The notebooks' parameter check: types and ranges against the defaults, and a papermill run with a bad -p."""
from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import papermill
import pytest

from proxflow_edu.course.parameters import check_parameters, parameter_defaults

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = {"seed": 0, "n_iters": 1000, "lam": 0.5, "dims": [2, 12], "variants": ("w1", "w1w2"), "SMOKE": False,
            "dataset": "8gaussians", "shift": -1.0, "optional": None}


@pytest.mark.parametrize("name, value, message", [
    ("dims", "[7]", "dims must be a list like its default [2, 12], got '[7]' (str); papermill's -p passes it as text"),
    ("dims", [7.5], "dims[0] must be an integer"),
    ("dims", [], "dims must not be empty"),
    ("dims", [0], "dims[0] must be > 0"),
    ("seed", -1, "seed must be >= 0"),
    ("seed", 1.5, "seed must be an integer"),
    ("n_iters", 0, "n_iters must be > 0"),
    ("n_iters", True, "n_iters must be an integer"),
    ("lam", "0.5", "lam must be a number"),
    ("lam", -0.1, "lam must be > 0"),
    ("SMOKE", 1, "SMOKE must be a bool"),
    ("dataset", 3, "dataset must be a string"),
    ("variants", "w1", "-y 'variants: ['w1', 'w1w2']'"),
])
def test_bad_parameters_name_the_parameter(name: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match="parameter " + name.replace("[", r"\[").replace("]", r"\]")) as err:
        check_parameters({**DEFAULTS, name: value}, DEFAULTS)
    assert message in str(err.value)


def test_good_parameters_pass() -> None:
    check_parameters(DEFAULTS, DEFAULTS)
    check_parameters({**DEFAULTS, "lam": 1, "dims": (7,), "seed": 3, "shift": 2.0, "optional": "x"}, DEFAULTS)


def test_defaults_are_the_simple_public_values() -> None:
    import math
    namespace = {"math": math, "seed": 0, "_hidden": 1, "f": len, "dims": [2], "path": Path(".")}
    assert parameter_defaults(namespace) == {"seed": 0, "dims": [2]}


def test_a_notebook_rejects_a_list_passed_with_p(tmp_path: Path) -> None:
    """papermill -p dims "[7]" fails at the check cell with a message naming dims, before any training."""
    source = ROOT / "notebooks" / "05_ablation.py"
    nb = jupytext.read(source)
    nbformat.write(nb, tmp_path / "04.ipynb")
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(str(tmp_path / "04.ipynb"), str(tmp_path / "out.ipynb"), parameters={"dims": "[7]"},
                                   kernel_name="python3", cwd=str(ROOT / "notebooks"), progress_bar=False)
    assert "parameter dims must be a" in err.value.evalue and "-y" in err.value.evalue
    check_cell = next(i for i, c in enumerate(nb.cells) if "check_parameters(" in c.source)
    assert err.value.cell_index <= check_cell + 1  # +1: the cell papermill injects
