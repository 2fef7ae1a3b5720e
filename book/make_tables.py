"""Generate the book's benchmark tables from ``benchmarks/*.json`` (run by ``make book`` before jupyter-book).

Writes ``book/_generated/benchmarks.md`` and ``book/_generated/presets.md`` (the ``FlowConfig`` presets, read
from ``proxflow_edu``), which ``book/reproducing.md`` includes. The JSON files are written by
other tools (``make bench`` -> ``benchmarks/train_step.json``; the MNIST run -> ``benchmarks/mnist.json``), so this
script renders any JSON shape generically:

* a dict's scalar entries become a two-column "quantity | value" table,
* a list of dicts becomes one table (columns = the union of the keys, in first-seen order),
* a dict whose values are all dicts (runs, variants, cases) becomes one table with a row per key, nested dicts
  flattened to dotted names (``per_h.h=1.kinetic_energy``), transposed (a column per key) when that is narrower,
* anything nested deeper gets its own sub-heading, recursively.

A missing, empty or unreadable JSON file gives a visible note in the book instead of an error, so the book
builds before the benchmarks have been run. Also makes sure ``book/notebooks`` links to ``../notebooks``.

Usage: ``python book/make_tables.py [--check]`` (``--check``: print the Markdown, write nothing).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
BENCHMARKS = ROOT / "benchmarks"
OUT = BOOK / "_generated" / "benchmarks.md"
PRESETS_OUT = BOOK / "_generated" / "presets.md"
# FlowConfig fields shown in the presets table, in this order
PRESET_FIELDS = ("arch", "prior", "T", "h", "lam", "L", "gp_weight", "n_iters", "batch_size", "disc_steps",
                 "lr_potential", "lr_discriminator", "lr_schedule", "potential_width", "potential_depth",
                 "discriminator_width", "discriminator_depth", "velocity_change_weight", "hj_weight", "terminal_weight",
                 "random_time_grid", "ema_decay")

# Files the book expects, in this order, with a title and the command that produces each one.
# Any other benchmarks/*.json is rendered after these, under its file name.
EXPECTED: dict[str, tuple[str, str]] = {
    "train_step.json": ("Cost of one training step", "`make bench`"),
    "mnist_classifier.json": ("The MNIST classifier: what it accepts and what it rejects",
                              "`python benchmarks/mnist_classifier.py` "
                              "(classifier: `scripts/train_mnist_classifier.py`)"),
    "mnist.json": ("MNIST", "`python benchmarks/mnist_eval.py` on the checkpoints of `make train-mnist`"),
    "wellposed.json": ("Well-posed in practice: the ablation of the options (toys and MNIST)",
                       "`python benchmarks/wellposed.py --workers 2` and `python benchmarks/wellposed.py --mnist`"),
    "mnist_gamma_sweep.json": ("MNIST: the gradient-penalty weight γ (the exploratory runs behind `cpu_mnist`; "
                               "scored with the earlier classifier, which called noise confident: a record of what "
                               "was tried, not a result)",
                               "`python benchmarks/mnist_gamma_sweep.py --runs ...`"),
}
# friendlier headings for common keys of the JSON files
HEADINGS = {"meta": "Where and how it was measured", "metadata": "Where and how it was measured",
            "environment": "Where and how it was measured", "results": "Results", "settings": "Settings"}
MAX_ROWS = 80          # longer tables are cut (with a note): the book is not a data dump
MAX_LIST_ITEMS = 10    # lists of scalars inside a cell are shortened
MAX_COLUMNS = 9        # wider tables are transposed (records as columns) when that makes them narrower


def fmt(value: Any) -> str:
    """One table cell: numbers to 4 significant digits, lists shortened, pipes escaped."""
    if value is None:
        text = "—"
    elif isinstance(value, bool):
        text = str(value)
    elif isinstance(value, int):
        text = f"{value:,}" if abs(value) >= 1000 else str(value)
    elif isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            text = str(value)
        else:
            text = f"{value:.4g}"
    elif isinstance(value, (list, tuple)):
        items = [fmt(v) for v in value[:MAX_LIST_ITEMS]]
        more = f", … ({len(value)} items)" if len(value) > MAX_LIST_ITEMS else ""
        text = "[" + ", ".join(items) + more + "]"
    elif isinstance(value, dict):
        text = ", ".join(f"{k}: {fmt(v)}" for k, v in list(value.items())[:MAX_LIST_ITEMS])
    else:
        text = str(value)
    return text.replace("\n", " ").replace("|", "\\|").replace("$", "\\$").replace("*", "\\*")


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool)) or (
        isinstance(value, list) and all(v is None or isinstance(v, (str, int, float, bool)) for v in value))


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(fmt(h) for h in header) + " |", "|" + "---|" * len(header)]
    for row in rows[:MAX_ROWS]:
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    if len(rows) > MAX_ROWS:
        lines.append("")
        lines.append(f"*({len(rows) - MAX_ROWS} more rows in the JSON file.)*")
    return lines


def records_table(records: list[dict[str, Any]], key_name: str | None = None,
                  keys: list[str] | None = None) -> list[str]:
    columns: list[str] = []
    for r in records:
        for k in r:
            if k not in columns:
                columns.append(k)
    header = ([key_name] if key_name is not None else []) + columns
    rows = [([keys[i]] if keys else []) + [r.get(c, "") for c in columns] for i, r in enumerate(records)]
    return table(header, rows)


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}, "c": 2} -> {"a.b": 1, "c": 2} (nested dicts only; lists stay cells)."""
    flat: dict[str, Any] = {}
    for k, v in record.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            flat.update(flatten(v, key + "."))
        else:
            flat[key] = v
    return flat


def render(value: Any, level: int, title: str | None = None) -> list[str]:
    """Markdown for one JSON value under a heading of the given level."""
    out: list[str] = []
    if title is not None:
        out += [f"{'#' * min(level, 6)} {title}", ""]
    if isinstance(value, dict):
        if (value and all(isinstance(v, dict) and v for v in value.values())
                and set.intersection(*(set(v) for v in value.values()))):
            # records sharing fields (runs, variants, cases), one per key: a single table
            flat = {k: flatten(v) for k, v in value.items()}
            columns: list[str] = []
            for r in flat.values():
                columns += [c for c in r if c not in columns]
            if len(columns) <= MAX_COLUMNS:
                return out + records_table(list(flat.values()), "case", list(flat)) + [""]
            if len(flat) <= MAX_COLUMNS:   # many quantities, few records: records as columns
                rows = [[c] + [r.get(c, "") for r in flat.values()] for c in columns]
                return out + table(["quantity"] + list(flat), rows) + [""]
        scalars = {k: v for k, v in value.items() if is_scalar(v)}
        if scalars:
            out += table(["quantity", "value"], [[k, v] for k, v in scalars.items()]) + [""]
        for k, v in value.items():
            if k not in scalars:
                out += render(v, level + 1, HEADINGS.get(str(k), str(k)))
        return out
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            if all(all(is_scalar(x) for x in v.values()) for v in value):
                return out + records_table(value) + [""]
            for i, v in enumerate(value):
                out += render(v, level + 1, f"{title or 'item'} {i}")
            return out
        return out + [fmt(value), ""]
    return out + [fmt(value), ""]


def wellposed_view(data: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/wellposed.json for reading: the seed summary as one row per (option, toy) with the mean and the
    spread over seeds, and the MNIST results without their class histograms (both stay in the JSON)."""
    view: dict[str, Any] = {"meta": data.get("meta", {}),
                            "options of each run (on top of every option off)": {
                                name: ", ".join(f"{k}={v}" for k, v in opts.items()) or "none (the paper's algorithm)"
                                for name, opts in data.get("configs", {}).items()}}
    rows = []
    for name, per_data in data.get("summary", {}).items():
        for dataset, scores in per_data.items():
            rows.append({"option": name, "toy": dataset,
                         **{m: f"{v['mean']:.4g} [{v['min']:.3g}, {v['max']:.3g}]" for m, v in scores.items()}})
    if rows:
        view["toys: mean [min, max] over the seeds"] = rows
    if "mnist" in data:
        view["MNIST (the shipped checkpoints, one seed each)"] = {
            "meta": data["mnist"].get("meta", {}),
            "results": {k: {m: x for m, x in r.items() if not m.startswith("class_counts")}
                        for k, r in data["mnist"].get("results", {}).items()}}
    return view


# files rendered through a reading view instead of as they are
VIEWS = {"wellposed.json": wellposed_view}


def note(kind: str, text: str) -> list[str]:
    return [f":::{{{kind}}}", text, ":::", ""]


def section(path: Path, title: str, how: str | None) -> list[str]:
    rel = path.relative_to(ROOT).as_posix()
    out = [f"### {title}", ""]  # under "## Our measurements" of reproducing.md
    if not path.exists():
        produce = f" Produce it with {how}, then rebuild the book (`make book`)." if how else ""
        return out + note("note", f"`{rel}` does not exist yet, so there is no table here.{produce}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return out + note("warning", f"`{rel}` could not be read ({type(err).__name__}: {err}); no table. "
                                     f"Regenerate it{' with ' + how if how else ''}.")
    if data in ({}, [], None, ""):
        return out + note("note", f"`{rel}` is empty.")
    out += [f"Source: `{rel}`" + (f" (produced by {how})" if how else "") + ".", ""]
    if path.name in VIEWS and isinstance(data, dict):
        out += ["(A reading view: the per-seed records and the class histograms are in the file.)", ""]
        data = VIEWS[path.name](data)
    return out + render(data, 3)


def generate() -> str:
    lines = ["<!-- generated by book/make_tables.py from benchmarks/*.json; do not edit -->", ""]
    others = sorted(p.name for p in BENCHMARKS.glob("*.json") if p.name not in EXPECTED) if BENCHMARKS.is_dir() else []
    for name, (title, how) in EXPECTED.items():
        lines += section(BENCHMARKS / name, title, how)
    for name in others:
        lines += section(BENCHMARKS / name, Path(name).stem.replace("_", " "), None)
    return "\n".join(lines).rstrip() + "\n"


def presets() -> str:
    """The FlowConfig presets side by side, read from proxflow_edu (so the book cannot drift from the code)."""
    lines = ["<!-- generated by book/make_tables.py from proxflow_edu.train.PRESETS; do not edit -->", ""]
    sys.path.insert(0, str(ROOT))
    try:
        from proxflow_edu.config import PRESETS, FlowConfig
    except Exception as err:  # noqa: BLE001 - the book should still build and say why
        return "\n".join(lines + note("warning", f"Could not import proxflow_edu ({type(err).__name__}: {err}); "
                                                 "no presets table."))
    configs = {name: FlowConfig.preset(name).to_dict() for name in PRESETS}
    header = ["field"] + [f"`{name}`" for name in configs]
    mlp_only = {"potential_width", "potential_depth", "discriminator_width", "discriminator_depth"}
    rows = [[f"`{f}`"] + [("—" if f in mlp_only and c.get("arch") != "mlp" else c.get(f, ""))
                          for c in configs.values()]
            for f in PRESET_FIELDS if any(f in c for c in configs.values())]
    lines += table(header, rows)
    lines += ["", "`lecture_toy_paper` is `FlowConfig()`: the paper's algorithm at the lecture budget, chosen by the "
              "rule of `benchmarks/wellposed.py`; `lecture_toy_straight` is the course's straight recipe (its second "
              "rule; the options are notebook 08's); `cpu_mnist_paper` is the CPU-budget MNIST setting with every "
              "option off (the paper's algorithm), `cpu_mnist` the recommended MNIST run (with options). The "
              "`paper_*` presets follow the authors' scripts and saved runs (`POT_Flow_GAN.py`, "
              "`POT_Flow_GAN_CNN.py`), every option off. Fields not listed are equal to the defaults of "
              "`FlowConfig`; `mnist_cnn` has fixed sizes (the paper's CNNs)."]
    return "\n".join(lines).rstrip() + "\n"


def write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` unless the file already holds it (an unchanged file keeps its mtime)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")


def link_notebooks() -> None:
    """book/notebooks -> ../notebooks, so the toc can list the course notebooks and they run in notebooks/."""
    link = BOOK / "notebooks"
    if link.is_symlink() and os.readlink(link) == "../notebooks":
        return
    if link.exists() or link.is_symlink():
        if link.is_symlink() or link.is_file():
            link.unlink()
        else:
            raise SystemExit(f"{link} is a directory; it must be a symlink to ../notebooks. Remove it and rerun.")
    link.symlink_to("../notebooks", target_is_directory=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="print the Markdown instead of writing it")
    args = parser.parse_args(argv)
    text, preset_text = generate(), presets()
    if args.check:
        sys.stdout.write(preset_text + "\n" + text)
        return 0
    link_notebooks()
    write_if_changed(OUT, text)
    write_if_changed(PRESETS_OUT, preset_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
