"""Reliability suite: faults injected into real runs, and a report of fault → observed outcome.

Every test records what it tried and what happened through the ``fault_report`` fixture; at the
end of the session the suite writes ``build/reliability/report.json`` and ``report.md`` (under
the pytest root, or ``$SYNC_PLATFORM_RELIABILITY_REPORT`` if set) — the README's section is
generated from them. A test that fails is reported as such, with its error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sync_platform_tests.engine.harness import Harness

REPORT_VARIABLE = "SYNC_PLATFORM_RELIABILITY_REPORT"
_ENTRIES: list[dict[str, str]] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability_slow: a reliability test that is slow by nature (still runs by default)"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.failed):
        item.stash[_RESULT] = report


_RESULT = pytest.StashKey[pytest.TestReport]()


@pytest.fixture
def fault_report(request: pytest.FixtureRequest) -> Iterator[Callable[[str, str], None]]:
    """``fault_report(fault, outcome)``: what the test did to the system and what it observed.

    A second call with the same fault replaces its outcome: a test may name its fault before the steps
    that can fail, so that a failure is reported against the fault rather than the test's id.
    """
    recorded: dict[str, str] = {}
    yield recorded.__setitem__
    report = request.node.stash.get(_RESULT, None)
    passed = report is not None and report.passed
    for fault, outcome in list(recorded.items()) or [(request.node.name, "")]:
        entry = {"test": request.node.nodeid, "fault": fault, "outcome": outcome, "status": "passed"}
        if not passed:
            entry["status"] = "failed"
            entry["outcome"] = (report.longreprtext.strip().splitlines() or ["failed"])[-1] if report else "error"
        _ENTRIES.append(entry)


def report_dir(config: pytest.Config) -> Path:
    return Path(os.environ.get(REPORT_VARIABLE) or config.rootpath / "build" / "reliability")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _ENTRIES:
        return
    directory = report_dir(session.config)
    directory.mkdir(parents=True, exist_ok=True)
    entries = sorted(_ENTRIES, key=lambda e: e["test"])
    (directory / "report.json").write_text(json.dumps(entries, indent=1))
    lines = ["| Fault | Observed outcome | Status |", "|---|---|---|"]
    for e in entries:
        cells = [e["fault"], e["outcome"], e["status"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    (directory / "report.md").write_text("\n".join(lines) + "\n")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if _ENTRIES:
        terminalreporter.write_line(f"reliability report: {report_dir(config) / 'report.md'}")


@pytest.fixture
def harness(mysql_db, warehouse_db, make_config_dir) -> Harness:
    """The reliability suite runs against both warehouses (``warehouse``: postgres and the Redshift stand-in)."""
    return Harness(make_config_dir(postgres=warehouse_db), mysql_db, warehouse_db)
