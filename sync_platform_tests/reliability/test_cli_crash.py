"""SIGKILL the ``sync-platform sync -t …`` process (a Dagster run executing in that process), then
run the same command again: the target equals the source exactly and the instance's watermarks are sane.

The CLI executes the ``sync_tables`` job in-process against the instance under ``DAGSTER_HOME``; the
watermarks live in the materialization metadata Dagster writes *after* the engine returns. Killing
the process right after the warehouse commit therefore leaves committed rows that the instance does
not know about, and killing it mid-extract leaves parquet parts without a manifest. Each case runs
on a keyed table (hybrid, merge) and on a table without a key (append, where a batch loaded twice
shows as duplicate rows), on the first run of the table (no watermark in the instance) and on an
incremental run (a stored watermark that the killed run did not move).

The killed run stays STARTED in the instance, holding the source pool's slot (see the last test).
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from sync_platform.engine.watermark import Watermark
from sync_platform.orchestration.keys import source_pool, staging_key
from sync_platform.orchestration.watermarks import WATERMARK_ORIGIN, read_extract_watermark, read_load_watermark
from sync_platform_tests.engine.harness import Harness
from sync_platform_tests.reliability.support import (
    APPEND_COLUMNS,
    BASE,
    KEYED_COLUMNS,
    assert_exact,
    instance_at,
    make_append,
    make_keyed,
    run_cli,
)

ROWS = 600  # 12 pages of 50 rows; the CLI stages one batch per run (500,000 rows per batch by default)
# Every invocation, killed or not, is the same command; a short wait timeout turns a run blocked on
# the pool into a failure within seconds instead of the default 10 minutes.
WAIT_TIMEOUT = "20"
LATER = BASE + dt.timedelta(days=30)

KILL_POINTS = {
    "load.after_commit": "after the warehouse commit of the run's last (only) batch, before Dagster stored any "
    "materialization (watermark)",
    "extract.page": "mid-extract (pages read from MySQL, no batch manifested)",
}


def _command(h: Harness, table: str) -> tuple[str, ...]:
    return ("sync", "-t", f"{h.mysql.name}.{table}", "--wait-timeout", WAIT_TIMEOUT)


def _require(condition: Any, message: str) -> None:
    """Fail with ``message`` as the report's outcome line (an ``assert`` would end with its expression)."""
    if not condition:
        pytest.fail(message, pytrace=False)


def _output(result: subprocess.CompletedProcess[str]) -> str:
    """The CLI's own failure line (``FAIL table: why``) when it printed one, else the tail of its output."""
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    failures = [line for line in lines if line.startswith("FAIL")]
    return " ".join(failures) if failures else " ".join(lines[-8:])


def _change_source(h: Harness, table: str, kind: str) -> None:
    """Changes between two runs: updated rows (keyed) and new rows, ≥ 3 pages for the next run to read."""
    if kind == "keyed":
        h.mysql.execute(
            f"UPDATE `{table}` SET name = CONCAT(name, '-v2'), updated_at = %s WHERE MOD(id, 10) = 0", (LATER,)
        )
        h.mysql.executemany(
            f"INSERT INTO `{table}` VALUES (%s, %s, %s, %s, %s)",
            [(ROWS + i, LATER, f"new-{i}", "1.00", None) for i in range(1, 121)],
        )
    else:
        h.mysql.executemany(
            f"INSERT INTO `{table}` VALUES (%s, %s, %s)",
            [(LATER + dt.timedelta(seconds=i // 3), i, "new") for i in range(150)],
        )


def _source_position(h: Harness, table: str, kind: str) -> dict[str, Any]:
    """The keyset position of the source's last row: where a caught-up watermark must stand."""
    if kind == "keyed":
        [(updated_at, ident)] = h.mysql.query(
            f"SELECT updated_at, id FROM `{table}` ORDER BY updated_at DESC, id DESC LIMIT 1"
        )
        return {"updated_at": updated_at, "id": ident}
    [(ts,)] = h.mysql.query(f"SELECT MAX(ts) FROM `{table}`")
    return {"ts": ts}


def _events(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> list[Any]:
    return [r.event_log_entry for r in instance.get_records_for_run(run_id, of_type=kind, limit=10_000).records]


def _checks(instance: dg.DagsterInstance, run_id: str) -> dict[str, bool]:
    return {
        e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data.passed
        for e in _events(instance, run_id, dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    }


def _claims(instance: dg.DagsterInstance, pool: str) -> list[str]:
    """Run ids holding a slot of ``pool``."""
    return [slot.run_id for slot in instance.event_log_storage.get_concurrency_info(pool).claimed_slots]


@pytest.mark.parametrize("kind", ["keyed", "append"])
@pytest.mark.parametrize("phase", ["first", "incremental"])
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_cli_sync_killed_then_rerun(
    harness: Harness, tmp_path: Path, kind: str, phase: str, point: str, fault_report
) -> None:
    h = harness
    table = f"c_{kind[:3]}_{phase[:3]}_{point.split('.')[0]}"
    (make_keyed if kind == "keyed" else make_append)(h, table, ROWS)
    columns, key = (KEYED_COLUMNS, "id") if kind == "keyed" else (APPEND_COLUMNS, None)
    spec = h.spec(table)
    home = tmp_path / "dagster_home"
    command = _command(h, table)
    # The first run reads 12 pages; an incremental one ≥ 3 (keyed: the lookback re-reads more).
    kill_at = "load.after_commit:1" if point == "load.after_commit" else f"extract.page:{5 if phase == 'first' else 2}"
    fault = f"SIGKILL of `sync-platform sync -t` ({phase} run) {KILL_POINTS[point]} [{kill_at}] — {kind} table"
    fault_report(fault, "not reached")

    before = None
    if phase == "incremental":
        first = run_cli(h.config.path, home, *command)
        assert first.returncode == 0, _output(first)
        assert_exact(h, table, columns, key=key)
        before = read_extract_watermark(instance_at(home), spec)
        assert before is not None
        _change_source(h, table, kind)

    killed = run_cli(h.config.path, home, *command, kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, (
        f"to be killed at {kill_at}; exit {killed.returncode}: {_output(killed)}"
    )
    instance = instance_at(home)
    killed_run = instance.get_runs(limit=1)[0]
    assert not _events(instance, killed_run.run_id, dg.DagsterEventType.ASSET_MATERIALIZATION), (
        "the run was killed before Dagster stored any materialization"
    )
    stale = read_extract_watermark(instance, spec)
    # The instance still holds what the last finished run stored (nothing on a first run).
    assert (stale.watermark if stale else None) == (before.watermark if before else None)
    target_after_kill = h.pg.query(f"SELECT COUNT(*) FROM {h.target(table)}")[0][0] if _target_exists(h, table) else 0

    rerun = run_cli(h.config.path, home, *command)
    _require(
        rerun.returncode == 0, f"the rerun after a kill at {kill_at} failed (exit {rerun.returncode}): {_output(rerun)}"
    )
    rows = assert_exact(h, table, columns, key=key)

    instance = instance_at(home)
    rerun_run = instance.get_runs(limit=1)[0]
    assert rerun_run.status == dg.DagsterRunStatus.SUCCESS
    extract, load = read_extract_watermark(instance, spec), read_load_watermark(instance, spec)
    assert extract is not None and load is not None, "the rerun stored both watermarks"
    expected = _source_position(h, table, kind)
    _require(
        extract.watermark.position == expected and load.watermark.position == expected,
        f"target == source ({rows} rows), but the instance's watermarks are not both at the source's last row "
        f"({Watermark(expected).describe()}): extract {extract.describe()}, load {load.describe()}",
    )
    assert extract.run_id == load.run_id == rerun_run.run_id
    assert extract.watermark.manual_at is None
    checks = _checks(instance, rerun_run.run_id)
    assert checks and all(checks.values()), f"the rerun's reconciliation checks: {checks}"
    latest = instance.get_latest_materialization_event(staging_key(spec))
    assert latest is not None and latest.asset_materialization is not None
    origin = latest.asset_materialization.metadata[WATERMARK_ORIGIN].value
    killed_record = instance.get_run_by_id(killed_run.run_id)
    assert killed_record is not None
    held = _claims(instance, source_pool(spec.source)).count(killed_run.run_id)

    fault_report(
        fault,
        f"killed (exit -9; {target_after_kill} rows in the target, no materialization stored); the same command "
        f"rerun as a new Dagster run succeeded (it started from: {origin}); target == source ({rows} rows, "
        f"per-column checksums equal, no duplicate {'keys' if key else 'rows'}); extract and load watermarks "
        f"both at the source's last row, checks {', '.join(sorted(checks))} passed. The killed run is still "
        f"{killed_record.status.value} in the instance and holds {held} slot(s) of pool {source_pool(spec.source)}",
    )


def _target_exists(h: Harness, table: str) -> bool:
    return h.pg.query("SELECT to_regclass(%s) IS NOT NULL", (h.target(table),))[0][0]


def test_rerun_after_two_killed_cli_runs_of_one_source(harness: Harness, tmp_path: Path, fault_report) -> None:
    """Two killed runs of tables of one MySQL source, then the command again (pool default limit: 2 slots).

    A killed in-process run never ends in the instance, so nothing frees the pool slot its step
    claimed; this checks that the platform gets them back for the next run.
    """
    h = harness
    home = tmp_path / "dagster_home"
    fault = "SIGKILL of 2 `sync-platform sync -t` runs of one source [load.after_commit:1], then the same command"
    fault_report(fault, "not reached")
    tables = ["c_two_a", "c_two_b"]
    for table in tables:
        make_keyed(h, table, 200)
    for table in tables:
        killed = run_cli(h.config.path, home, *_command(h, table), kill_at="load.after_commit:1")
        assert killed.returncode == -signal.SIGKILL, _output(killed)
    instance = instance_at(home)
    pool = source_pool(h.spec(tables[0]).source)
    statuses = sorted(r.status.value for r in instance.get_runs())
    held = len(_claims(instance, pool))
    limit = instance.event_log_storage.get_concurrency_info(pool).slot_count

    rerun = run_cli(h.config.path, home, *_command(h, tables[0]))
    _require(
        rerun.returncode == 0,
        f"after 2 killed CLI runs (runs left {statuses}, {held} of {limit} `{pool}` slots held by them) the same "
        f"command failed (exit {rerun.returncode}): {_output(rerun)}",
    )
    rows = assert_exact(h, tables[0], KEYED_COLUMNS, key="id")
    fault_report(
        fault,
        f"the killed runs left {statuses} holding {held} of {limit} `{pool}` slots; the rerun succeeded, "
        f"target == source ({rows} rows)",
    )
