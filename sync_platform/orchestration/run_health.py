"""Runs in progress and which of them look stuck (for ``status``).

A run whose process died stays STARTED until someone ends it: the CLI ends those of its own host
(``launch.end_runs_of_dead_processes``), and the daemon's run monitoring (``dagster.yaml``) ends the
rest after ``max_runtime_seconds``. Until then ``status`` shows them, with the reason they look stuck.
"""

from __future__ import annotations

import datetime as dt
import socket
from dataclasses import dataclass

import dagster as dg

from sync_platform.orchestration.launch import HOST_TAG, PID_TAG, process_alive

IN_PROGRESS = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
QUIET_MINUTES = 30.0  # a running sync logs a line per page; this long without an event is suspicious
_RUNS_SCANNED = 500


@dataclass(frozen=True)
class RunHealth:
    run_id: str
    status: str
    started_at: dt.datetime | None
    last_event_at: dt.datetime | None
    where: str  # "host pid N" for CLI runs, else "" (launched by the daemon or the UI)
    stuck: str | None  # why it looks stuck, or None


def runs_in_progress(
    instance: dg.DagsterInstance, *, now: dt.datetime | None = None, quiet_minutes: float = QUIET_MINUTES
) -> list[RunHealth]:
    """Every run not yet ended, oldest first, each with the reason it looks stuck (if it does)."""
    now = now or dt.datetime.now(dt.UTC)
    host = socket.gethostname()
    found: list[RunHealth] = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS), limit=_RUNS_SCANNED):
        run = record.dagster_run
        started = _utc(record.start_time or record.create_timestamp.timestamp())
        last = _last_event_at(instance, run.run_id) or started
        run_host, pid = run.tags.get(HOST_TAG, ""), run.tags.get(PID_TAG, "")
        stuck = None
        if run_host == host and pid.isdigit() and not process_alive(int(pid)):
            stuck = f"its process (pid {pid} on this host) is gone"
        elif last is not None and (now - last).total_seconds() > quiet_minutes * 60:
            minutes = (now - last).total_seconds() / 60
            stuck = f"no event for {minutes:.0f} min"
        where = f"{run_host} pid {pid}" if run_host else ""
        found.append(RunHealth(run.run_id, run.status.value, started, last, where, stuck))
    return sorted(found, key=lambda r: r.started_at or now)


def _last_event_at(instance: dg.DagsterInstance, run_id: str) -> dt.datetime | None:
    records = instance.get_records_for_run(run_id, limit=1, ascending=False).records
    return _utc(records[0].event_log_entry.timestamp) if records else None


def _utc(timestamp: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC) if timestamp is not None else None
