"""Wall-clock marks of a CLI run's phases, written to a file when ``SYNC_PLATFORM_TIMINGS`` names one.

``python -m bench`` sets it to split a run's end-to-end time into start-up, configuration, instance,
definitions and the run itself; the run's own events give the rest. Unset, nothing is recorded.
"""

from __future__ import annotations

import json
import os
import time

TIMINGS_VARIABLE = "SYNC_PLATFORM_TIMINGS"
_marks: dict[str, float] = {}


def mark(name: str) -> None:
    """Remember when (seconds since the epoch) the run reached ``name``; the first mark of a name wins."""
    _marks.setdefault(name, time.time())


def record(marks: dict[str, float]) -> None:
    """Add marks taken elsewhere (e.g. the launcher's)."""
    for name, at in marks.items():
        _marks.setdefault(name, at)


def write() -> None:
    """Write the marks as JSON to ``$SYNC_PLATFORM_TIMINGS`` (when set)."""
    path = os.environ.get(TIMINGS_VARIABLE)
    if not path:
        return
    mark("exit")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(_marks, handle)
