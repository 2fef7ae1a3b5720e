"""Measured run times of the notebooks, instead of typed estimates.

``make run`` times each notebook and records the seconds in ``notebooks/timings.json`` with
``scripts/record_timing.py`` (``lecture_s``; ``smoke_s`` under ``PROXFLOW_SMOKE=1``). A notebook's
introduction shows its entry, its first code cell starts the timer and its last cell prints it::

    >>> run_time_note("05_ablation", {"05_ablation": {"lecture_s": 144, "lecture_date": "2026-12-02",
    ...                                               "machine": "2-core CPU"}})
    'Last measured run time: lecture 144 s (2026-12-02), on a 2-core CPU; `make run` records it.'
    >>> start = notebook_timer(); elapsed().startswith("This notebook ran in")
    True
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

MODES = ("lecture", "smoke")
_started: list[float] = []


def timings_file() -> Path:
    """``timings.json`` next to the notebooks: found from ``notebooks/`` (where they run) or above it."""
    for folder in (Path.cwd(), *Path.cwd().parents):
        for candidate in (folder / "timings.json", folder / "notebooks" / "timings.json"):
            if candidate.is_file():
                return candidate
    return Path(__file__).resolve().parents[2] / "notebooks" / "timings.json"


def read_timings(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every notebook's entry; empty if the file does not exist yet."""
    path = path or timings_file()
    return json.loads(path.read_text()) if path.is_file() else {}


def run_time_note(stem: str, timings: dict[str, dict[str, Any]] | None = None) -> str:
    """One Markdown sentence: the last measured lecture and smoke times of notebook ``stem``."""
    entry = (read_timings() if timings is None else timings).get(stem, {})
    parts = [f"{mode} {entry[f'{mode}_s']:.0f} s" + (f" ({entry[f'{mode}_date']})" if f"{mode}_date" in entry else "")
             for mode in MODES if f"{mode}_s" in entry]
    if not parts:
        return ("No measured run time yet for this notebook: `make run` (lecture) and `PROXFLOW_SMOKE=1 make run` "
                "(smoke) record one in `notebooks/timings.json`.")
    machine = f", on a {entry['machine']}" if entry.get("machine") else ""
    return f"Last measured run time: {', '.join(parts)}{machine}; `make run` records it."


def notebook_timer() -> float:
    """Start (or restart) the notebook's clock; returns the start time (``time.perf_counter``)."""
    _started[:] = [time.perf_counter()]
    return _started[0]


def elapsed() -> str:
    """'This notebook ran in N s (lecture mode)', counted from :func:`notebook_timer`."""
    seconds = time.perf_counter() - (_started[0] if _started else time.perf_counter())
    mode = "smoke" if os.environ.get("PROXFLOW_SMOKE", "0") == "1" else "lecture"
    return f"This notebook ran in {seconds:.0f} s ({mode} mode)."
