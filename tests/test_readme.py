"""README's measured numbers are the benchmarks' (generated here from the JSON and compared, not typed)."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = json.loads((ROOT / "benchmarks" / "wellposed.json").read_text())["defaults"]


def defaults_sentence() -> str:
    """The README's sentence on FlowConfig() and the straight recipe, from benchmarks/wellposed.json["defaults"]."""
    choice, recipe = DEFAULTS["choice"], DEFAULTS["recipe"]
    manifolds, dims = DEFAULTS["meta"]["choice_manifolds"], DEFAULTS["meta"]["dims"]
    seeds = sorted({r["seed"] for r in DEFAULTS["records"] if r["config"] == choice["reference"]})

    def cells(name: str, metric: str) -> list[float]:
        return [DEFAULTS["summary"][f"{name} | {d} R^{k}"][metric] for d in manifolds for k in dims]

    def describe(name: str) -> str:
        w2, ke = cells(name, "w2_floor_N5"), cells(name, "ke_chord_Ntrain")
        return (f"W2/floor at N = 5 of {statistics.fmean(w2):.2f} on average ({min(w2):.2f}–{max(w2):.2f}) and "
                f"KE/chord of at most {max(ke):.3f}")

    losses = choice["candidates"][recipe["chosen"]]["worse_than_reference_on"]
    return (f"Measured (`benchmarks/wellposed.json`, part \"defaults\": {DEFAULTS['meta']['budget_s']:.0f} s of one "
            f"core per run, {len(seeds)} seeds, {len(manifolds)} manifolds × R^{dims[0]}, R^{dims[1]}): "
            f"`FlowConfig()` ({choice['chosen']}) reaches {describe(choice['chosen'])}; `lecture_toy_straight` "
            f"({recipe['chosen']}) reaches {describe(recipe['chosen'])}, worse than the paper's algorithm on "
            f"{len(losses)} of {len(manifolds) * len(dims)} cells ({', '.join(losses) or 'none'}).")


def test_readme_quotes_the_default_benchmark() -> None:
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    expected = defaults_sentence()
    assert expected in readme, f"README.md should say (regenerate it from the JSON):\n{expected}"
