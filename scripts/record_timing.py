"""Record one notebook's measured run time in notebooks/timings.json (called by `make run` after each notebook).

    python scripts/record_timing.py 05_ablation 144 lecture      # make run
    python scripts/record_timing.py 05_ablation 31 smoke         # PROXFLOW_SMOKE=1 make run

Sets ``<mode>_s`` (whole seconds) and ``<mode>_date`` (today, ISO) of that notebook and keeps every other entry
and key. ``machine`` is $PROXFLOW_MACHINE if set, else the entry's previous value, else "<n>-core CPU". The file is
written atomically (a temporary file renamed over it), with sorted keys and two-space indents, so that re-running
changes only the numbers and dates.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
from pathlib import Path

DEFAULT_FILE = Path(__file__).resolve().parents[1] / "notebooks" / "timings.json"
MODES = ("lecture", "smoke")


def record(path: Path, name: str, seconds: float, mode: str, today: str | None = None) -> dict:
    """Update ``path`` with one measurement and return the whole table."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    table = json.loads(path.read_text()) if path.is_file() else {}
    entry = table.setdefault(name, {})
    entry[f"{mode}_s"] = round(seconds)
    entry[f"{mode}_date"] = today or datetime.date.today().isoformat()
    entry["machine"] = os.environ.get("PROXFLOW_MACHINE") or entry.get("machine") or f"{os.cpu_count()}-core CPU"
    text = json.dumps(table, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".timings.", suffix=".tmp", delete=False,
                                     encoding="utf-8") as tmp:
        tmp.write(text)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="notebook stem, e.g. 05_ablation")
    parser.add_argument("seconds", type=float, help="measured wall time")
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    args = parser.parse_args()
    record(args.file, args.name, args.seconds, args.mode)
    print(f"{args.file.name}: {args.name} {args.mode} {round(args.seconds)} s")


if __name__ == "__main__":
    main()
