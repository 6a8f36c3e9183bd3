"""``scripts/reliability_report.py`` replaces the README's marked section and nothing else (no services).

It tests the report itself, not a fault, so it records no ``fault_report`` entry.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sync_platform_tests.reliability.support import REPO

SCRIPT = REPO / "scripts" / "reliability_report.py"
START, END = "<!-- reliability-report:start -->", "<!-- reliability-report:end -->"

README = f"""# project

## Operations

Text before.

## Reliability

A hand-written paragraph.

{START}
an old table that must go
| old | table |
{END}

## Dependencies

Text after.
"""


def _entries(*statuses: str) -> list[dict[str, str]]:
    return [
        {
            "test": f"sync_platform_tests/reliability/test_x.py::test_{n}",
            "fault": f"fault {n} | with a pipe",
            "outcome": f"outcome {n}\non two lines",
            "status": status,
        }
        for n, status in enumerate(statuses)
    ]


def _run(report: Path, readme: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SCRIPT), "--report", str(report), "--readme", str(readme), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def _section(text: str) -> str:
    return text.split(START, 1)[1].split(END, 1)[0]


def test_the_marked_section_is_replaced_not_duplicated(tmp_path: Path) -> None:
    readme, report = tmp_path / "README.md", tmp_path / "report.json"
    readme.write_text(README)
    report.write_text(json.dumps(_entries("passed", "failed", "passed")))

    result = _run(report, readme, "--date", "2026-01-02")
    assert result.returncode == 0, result.stderr
    text = readme.read_text()
    assert text.count(START) == 1 and text.count(END) == 1
    section = _section(text)
    assert "old table" not in section
    assert "python -m pytest sync_platform_tests/reliability -q" in section and "2026-01-02" in section
    assert "3 cases from 1 test files, 2 passed, 1 failed" in section
    rows = [line for line in section.splitlines() if line.startswith("| `test_x.py`")]
    assert len(rows) == 3
    assert "fault 0 \\| with a pipe" in rows[0] and "outcome 0 on two lines" in rows[0]
    assert rows[1].endswith("| **failed** |")
    # Everything outside the markers is untouched.
    assert text.split(START)[0] == README.split(START)[0]
    assert text.split(END)[1] == README.split(END)[1]

    # A second run with a newer report replaces the table again: one table, the new one.
    report.write_text(json.dumps(_entries("passed")))
    assert _run(report, readme, "--date", "2026-02-03").returncode == 0
    again = readme.read_text()
    assert again.count(START) == 1 and again.count(END) == 1 and again.count("| Test file |") == 1
    assert "2026-02-03" in _section(again) and "2026-01-02" not in again
    assert "1 cases from 1 test files, 1 passed, 0 failed" in _section(again)
    assert len([line for line in _section(again).splitlines() if line.startswith("| `")]) == 1

    # The same report again changes nothing.
    assert _run(report, readme, "--date", "2026-02-03").returncode == 0
    assert readme.read_text() == again


def test_without_markers_or_with_a_bad_report_nothing_is_written(tmp_path: Path) -> None:
    readme, report = tmp_path / "README.md", tmp_path / "report.json"
    report.write_text(json.dumps(_entries("passed")))
    for text in ("# no markers\n", f"{END}\n{START}\n", f"{START}\n{END}\n{START}\n{END}\n"):
        readme.write_text(text)
        result = _run(report, readme)
        assert result.returncode == 1 and "reliability_report:" in result.stderr
        assert readme.read_text() == text

    readme.write_text(README)
    report.write_text('{"not": "a list"}')
    result = _run(report, readme)
    assert result.returncode == 1 and "expected a JSON list" in result.stderr
    assert readme.read_text() == README
