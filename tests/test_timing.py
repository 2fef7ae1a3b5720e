"""Measured run times: scripts/record_timing.py (called by `make run`) and proxflow_edu.course.timing (read by the
notebooks), and the notebooks' use of them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

from proxflow_edu.course import timing

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import record_timing  # noqa: E402

SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def test_record_writes_updates_one_key_and_keeps_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROXFLOW_MACHINE", raising=False)
    path = tmp_path / "timings.json"
    record_timing.record(path, "05_ablation", 143.6, "lecture", today="2026-12-02")
    record_timing.record(path, "01_w2", 12.2, "smoke", today="2026-12-02")
    first = path.read_text()
    assert json.loads(first) == {
        "01_w2": {"smoke_s": 12, "smoke_date": "2026-12-02", "machine": f"{os.cpu_count()}-core CPU"},
        "05_ablation": {"lecture_s": 144, "lecture_date": "2026-12-02", "machine": f"{os.cpu_count()}-core CPU"}}
    assert first == json.dumps(json.loads(first), indent=2, sort_keys=True) + "\n"  # stable format
    # a smoke run adds its keys to the entry, keeps lecture_s and the other notebook, and keeps the machine
    monkeypatch.setenv("PROXFLOW_MACHINE", "laptop")
    table = record_timing.record(path, "05_ablation", 31, "smoke", today="2026-12-03")
    assert table["05_ablation"] == {"lecture_s": 144, "lecture_date": "2026-12-02", "smoke_s": 31,
                                    "smoke_date": "2026-12-03", "machine": "laptop"}
    assert table["01_w2"]["smoke_s"] == 12 and json.loads(path.read_text()) == table
    # re-recording the same numbers leaves the file byte for byte unchanged; no temporary file is left behind
    before = path.read_text()
    record_timing.record(path, "05_ablation", 31, "smoke", today="2026-12-03")
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["timings.json"]
    with pytest.raises(ValueError):
        record_timing.record(path, "05_ablation", 1, "fast")


def test_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "record_timing.py"), "07_mnist", "70", "lecture",
                    "--file", str(path)], check=True, capture_output=True)
    assert json.loads(path.read_text())["07_mnist"]["lecture_s"] == 70


def test_run_time_note() -> None:
    table = {"05_ablation": {"lecture_s": 144, "lecture_date": "2026-12-02", "smoke_s": 61,
                             "smoke_date": "2026-12-03", "machine": "2-core CPU"},
             "06_high": {"smoke_s": 20.4}}
    assert timing.run_time_note("05_ablation", table) == (
        "Last measured run time: lecture 144 s (2026-12-02), smoke 61 s (2026-12-03), on a 2-core CPU; "
        "`make run` records it.")
    assert timing.run_time_note("06_high", table) == "Last measured run time: smoke 20 s; `make run` records it."
    missing = timing.run_time_note("99_missing", table)
    assert missing.startswith("No measured run time yet") and "make run" in missing
    assert timing.run_time_note("99_missing", {}) == missing


def test_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 142.4])
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    monkeypatch.setenv("PROXFLOW_SMOKE", "1")
    assert timing.notebook_timer() == 100.0
    assert timing.elapsed() == "This notebook ran in 42 s (smoke mode)."


def test_every_notebook_has_a_measurement_shows_it_and_prints_its_time() -> None:
    table = timing.read_timings(ROOT / "notebooks" / "timings.json")
    for source in SOURCES:
        assert {"lecture_s", "smoke_s", "machine"} <= set(table.get(source.stem, {})), source.stem
        code = [c.source for c in jupytext.read(source).cells if c.cell_type == "code"]
        assert f'run_time_note("{source.stem}")' in code[0] and "notebook_timer()" in code[0], source.name
        assert "print(elapsed())" in code[-1], source.name
