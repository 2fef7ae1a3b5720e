"""Every cross-reference to a notebook ("notebook 08", "notebooks 05 and 07", "notebook 06, §2", "08 §3",
``08_straight_flows_in_practice``) names a notebook that exists, and a section that its headings have."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))}
NUM = r"\d\d"
SECTION = r"(?:,?\s*(?:§\s?|section\s+)(?P<section>\d+[a-z]?))?"
# "notebook 06", "notebooks 05 and 07", "Notebooks 01, 05 and 07", "notebooks 01–03", each optionally with a section
REFERENCE = re.compile(rf"\b[Nn]otebooks?\s+(?P<nums>{NUM}(?:\s*(?:,|and|or|–|-)\s*{NUM})*){SECTION}")
# "07 §5", "07's §4" without the word notebook (a section sign is needed, so that numbers in prose don't count)
BARE_SECTION = re.compile(r"(?<![\w.§])(?P<num>0\d)(?:'s|’s)?\s+§\s?(?P<section>\d+[a-z]?)")
STEM = re.compile(r"\b(?P<num>\d\d)_(?P<stem>[a-z][a-z0-9_]*?)(?=_solutions|\.py|\.ipynb|\.html|\b)")


def sections(notebook: Path) -> set[str]:
    """Numbers of the headings "## 5 · ...", "## 5b. ...", "## 5 ..." (markdown cells of the percent file)."""
    return {m.group(1) for m in re.finditer(r"^# #{2,3}\s+(\d+[a-z]?)\b", notebook.read_text(), re.M)}


def text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / f for f in listed if Path(f).suffix in {".py", ".md", ".yml"} and (ROOT / f).is_file()
            and not f.startswith(("book/_vendor", "tests/test_crossrefs"))]


def expand(nums: str) -> list[str]:
    """"01–03" -> 01, 02, 03; "04 and 06" -> 04, 06."""
    out = []
    for part in re.split(r"\s*(?:,|and|or)\s*", nums):
        if re.fullmatch(rf"{NUM}\s*[–-]\s*{NUM}", part):
            a, b = (int(x) for x in re.split(r"\s*[–-]\s*", part))
            out += [f"{k:02d}" for k in range(a, b + 1)]
        else:
            out.append(part.strip())
    return out


def broken_references(text: str) -> list[str]:
    broken = []
    for m in REFERENCE.finditer(text):
        nums = expand(m.group("nums"))
        broken += [f"{m.group(0)!r}: no notebook {n}" for n in nums if n not in NOTEBOOKS]
        if m.group("section") and len(nums) == 1 and nums[0] in NOTEBOOKS \
                and m.group("section") not in sections(NOTEBOOKS[nums[0]]):
            broken.append(f"{m.group(0)!r}: notebook {nums[0]} has no section {m.group('section')}")
    for m in BARE_SECTION.finditer(text):
        n = m.group("num")
        if n not in NOTEBOOKS:
            broken.append(f"{m.group(0)!r}: no notebook {n}")
        elif m.group("section") not in sections(NOTEBOOKS[n]):
            broken.append(f"{m.group(0)!r}: notebook {n} has no section {m.group('section')}")
    for m in STEM.finditer(text):
        n, stem = m.group("num"), m.group("stem")
        if n in NOTEBOOKS and not NOTEBOOKS[n].stem.startswith(f"{n}_{stem}"):
            broken.append(f"{m.group(0)!r}: notebook {n} is {NOTEBOOKS[n].stem}")
    return broken


def test_the_checker_finds_broken_references() -> None:
    last = max(NOTEBOOKS)
    first_sections = sorted(sections(NOTEBOOKS["01"]))
    assert broken_references(f"see notebook {int(last) + 1:02d}") and broken_references("notebooks 01 and 99")
    assert broken_references("notebook 01, §99") and broken_references("01 §99")
    assert broken_references(f"notebooks/01_{'x' * 5}.py")
    assert not broken_references(f"notebook 01, §{first_sections[0]}; notebooks 01–{last}; {NOTEBOOKS['01'].stem}")


@pytest.mark.parametrize("path", text_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_cross_references_exist(path: Path) -> None:
    broken = broken_references(path.read_text(encoding="utf-8", errors="replace"))
    assert not broken, f"{path.relative_to(ROOT)}: " + "; ".join(broken)
