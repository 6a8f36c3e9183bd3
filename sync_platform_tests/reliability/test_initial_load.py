"""A big table's first load in primary-key ranges, end to end: the Dagster job, the CLI, a kill, the next sync.

- The ``initial_load_<pipeline>`` job loads an integer-keyed table and a table keyed by
  (VARCHAR, INT) in N ranges: target == source, each range's batch loaded once (the ledger says so).
- ``sync initial-load`` SIGKILLed after k ranges committed, then run again: target exact, and the
  ranges already loaded are not read again (its JSON and the staged batches say so).
- Then a normal ``sync`` reads only the rows changed since the load's ceiling (lookback 0), not the table.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from sync_platform.configuration import load_project
from sync_platform.engine.initial_load import read_plan
from sync_platform.engine.stage import list_batches
from sync_platform.engine.sync import table_prefix
from sync_platform.orchestration.factory import build_definitions
from sync_platform.orchestration.initial_load import PLAN_OP, RANGE_OP, initial_load_job_name, op_name
from sync_platform.orchestration.launch import only_tables
from sync_platform.orchestration.watermarks import read_extract_watermark
from sync_platform_tests.engine.harness import PIPELINE, Harness
from sync_platform_tests.reliability.support import (
    BASE,
    KEYED_COLUMNS,
    add_table,
    assert_exact,
    instance_at,
    make_append,
    make_keyed,
    run_cli,
)

LATER = BASE + dt.timedelta(days=30)
COMPOSITE_COLUMNS = ["region", "n", "updated_at", "label"]


def _ledger(h: Harness, identity: str) -> list[tuple[str, int, dict[str, Any]]]:
    """(batch id, rows, watermark JSON) of every ledger row of the table."""
    rows = h.pg.query(
        f'SELECT batch_id, row_count, watermark FROM "{h.config.target_schema}"."_sync_load_ledger" '
        "WHERE table_name = %s",
        (identity,),
    )
    return [(batch, int(count), json.loads(meta or "{}")) for batch, count, meta in rows]


def _range_batches(h: Harness, table: str, plan_id: str) -> list[Any]:
    spec = h.spec(table)
    with h.registry() as registry:
        batches = list_batches(registry.staging(spec.staging), table_prefix(spec))
    return [b for b in batches if (b.extra.get("initial_load") or {}).get("plan") == plan_id]


def _assert_each_range_loaded_once(h: Harness, table: str, ranges: int, rows: int) -> str:
    """The plan is finished, each range staged one batch, the ledger loaded each once and holds every row."""
    spec = h.spec(table)
    with h.registry() as registry:
        plan = read_plan(registry, spec)
    assert plan is not None and plan.finished, f"{table}: the initial load is not finished: {plan}"
    assert len(plan.ranges) == ranges and all(r.state == "done" for r in plan.ranges)
    batches = _range_batches(h, table, plan.plan_id)
    by_range = Counter(b.extra["initial_load"]["range"] for b in batches)
    assert by_range == dict.fromkeys(range(ranges), 1), f"{table}: batches staged per range: {by_range}"
    ledger = _ledger(h, spec.identity)
    ids = [batch for batch, _rows, _meta in ledger]
    assert len(ids) == len(set(ids)), f"{table}: a batch is in the ledger twice: {ids}"
    assert {b.batch_id for b in batches} <= set(ids), f"{table}: a range's batch was never loaded"
    assert sum(count for _b, count, _m in ledger) == rows, f"{table}: the ledger's rows differ from the source's"
    marker = [meta for batch, _r, meta in ledger if batch == f"{plan.plan_id}-initial-load"]
    assert marker and marker[0]["end"] == plan.final.to_dict(), f"{table}: the ledger lacks the finish marker"
    return plan.plan_id


def _make_composite(h: Harness, table: str, rows: int) -> None:
    """A table keyed by (VARCHAR, INT), in a case-insensitive collation, synced hybrid on updated_at."""
    h.mysql.execute(f"DROP TABLE IF EXISTS `{table}`")
    h.mysql.execute(
        f"CREATE TABLE `{table}` (region VARCHAR(20) COLLATE utf8mb4_general_ci NOT NULL, n INT NOT NULL, "
        "updated_at DATETIME(6) NOT NULL, label VARCHAR(40), PRIMARY KEY (region, n), KEY (updated_at))"
    )
    regions = ["apac", "Emea", "latam", "na", "Ünter"]
    data = [
        (regions[i % len(regions)], i // len(regions), BASE + dt.timedelta(seconds=i // 3), f"label-{i}")
        for i in range(rows)
    ]
    h.mysql.executemany(f"INSERT INTO `{table}` VALUES (%s, %s, %s, %s)", data)
    add_table(h, table, {"cdc_strategy": "hybrid", "cdc_timestamp_column": "updated_at"})


@pytest.mark.parametrize("shape", ["integer", "composite"])
def test_dagster_job_loads_every_range_once(harness: Harness, shape: str) -> None:
    h = harness
    table, ranges = f"il_job_{shape[:4]}", 5
    workers = 2 if shape == "integer" else 1  # 2: each op reads two ranges at once, in threads
    if shape == "integer":
        make_keyed(h, table, 730)
        columns, key = KEYED_COLUMNS, "id"
    else:
        _make_composite(h, table, 730)
        columns, key = COMPOSITE_COLUMNS, None
    project = load_project(h.config.path, env={})
    spec = h.spec(table)
    definitions = build_definitions(only_tables(project, [spec]))
    with dg.instance_for_test() as instance:  # resolved under the instance: Dagster reads its defs state there
        job = definitions.resolve_job_def(initial_load_job_name(PIPELINE))
        result = job.execute_in_process(
            run_config={
                "ops": {
                    op_name(PIPELINE, PLAN_OP): {"config": {"table": spec.name, "ranges": ranges, "workers": workers}}
                }
            },
            instance=instance,
            raise_on_error=False,
        )
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        range_steps = [
            e
            for e in result.all_events
            if e.is_step_success and e.step_key.startswith(op_name(PIPELINE, RANGE_OP) + "[")
        ]
        assert len(range_steps) == -(-ranges // workers), f"one load_range step per {workers} key range(s)"
        stored = read_extract_watermark(instance, spec)
        with h.registry() as registry:
            plan = read_plan(registry, spec)
        assert stored is not None and plan is not None and stored.watermark == plan.final
    rows = assert_exact(h, table, columns, key=key)
    assert rows == 730
    _assert_each_range_loaded_once(h, table, ranges, rows)


def test_cli_killed_midway_resumes_then_sync_reads_only_new_rows(
    harness: Harness, tmp_path: Path, fault_report
) -> None:
    h = harness
    table, ranges, total = "il_cli", 6, 600
    make_keyed(h, table, total)
    add_table(h, table, {"cdc_strategy": "hybrid", "cdc_timestamp_column": "updated_at", "lookback": 0})
    home = tmp_path / "dagster_home"
    name = f"{h.mysql.name}.{table}"
    report = tmp_path / "initial.json"
    command = ("sync", "initial-load", "-t", name, "--ranges", str(ranges), "--json-output", str(report))
    fault = "SIGKILL of `sync initial-load` after 2 of 6 key ranges committed [load.after_commit:2]"
    fault_report(fault, "not reached")

    killed = run_cli(h.config.path, home, *command, kill_at="load.after_commit:2")
    assert killed.returncode == -signal.SIGKILL, f"exit {killed.returncode}: {killed.stderr[-2000:]}"
    loaded_at_kill = h.pg.query(f"SELECT COUNT(*) FROM {h.target(table)}")[0][0]
    assert loaded_at_kill == 200, f"two ranges of 100 rows were committed before the kill, found {loaded_at_kill}"

    rerun = run_cli(h.config.path, home, *command, "--workers", "2")
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    document = json.loads(report.read_text())
    assert document["status"] == "success" and document["exit_code"] == 0
    statuses = [r["status"] for r in document["ranges"]]
    # Range 1 was marked done; range 2 committed its batch and died before marking: its staged batch
    # is found and not read again. Only the 4 ranges never reached are read from MySQL.
    assert statuses == ["already_done", "resumed", "loaded", "loaded", "loaded", "loaded"], statuses
    assert [r["rows_extracted"] for r in document["ranges"]] == [0, 0, 100, 100, 100, 100]
    assert document["rows_extracted"] == total - 200 and document["rows"] == total
    assert "range 1/6" in rerun.stderr and "already loaded" in rerun.stderr, "progress is shown per range"
    rows = assert_exact(h, table, KEYED_COLUMNS, key="id")
    plan_id = _assert_each_range_loaded_once(h, table, ranges, rows)
    assert document["plan_id"] == plan_id

    # The next incremental sync reads only what changed after the load's ceiling.
    h.mysql.execute(f"UPDATE `{table}` SET name = CONCAT(name, '-v2'), updated_at = %s WHERE id <= 10", (LATER,))
    h.mysql.executemany(
        f"INSERT INTO `{table}` VALUES (%s, %s, %s, %s, %s)",
        [(total + i, LATER, f"new-{i}", "2.50", None) for i in range(1, 6)],
    )
    incremental = tmp_path / "incremental.json"
    synced = run_cli(h.config.path, home, "sync", "-t", name, "--json-output", str(incremental))
    assert synced.returncode == 0, synced.stdout[-3000:] + synced.stderr[-3000:]
    result = json.loads(incremental.read_text())["table_results"][name]
    assert result["rows_extracted"] == 15, f"the sync after the initial load read {result['rows_extracted']} rows"
    assert_exact(h, table, KEYED_COLUMNS, key="id")
    spec = h.spec(table)
    stored = read_extract_watermark(instance_at(home), spec)
    assert stored is not None and stored.watermark.position == {"updated_at": LATER, "id": total + 5}
    fault_report(
        fault,
        f"killed (exit -9, {loaded_at_kill} rows committed); rerun skipped range 1 (done) and range 2 (committed, "
        f"staged batch found), read the other {total - 200} rows; target == source ({rows} rows), each range "
        "staged and loaded once; the next `sync` read only the 15 changed rows",
    )


def test_cli_refuses_a_table_without_a_key(harness: Harness, tmp_path: Path) -> None:
    """A table without a primary key cannot be loaded in key ranges: exit 1, the reason, and what to run."""
    h = harness
    make_append(h, "il_nokey", 30)
    report = tmp_path / "refused.json"
    name = f"{h.mysql.name}.il_nokey"
    done = run_cli(h.config.path, tmp_path / "home", "sync", "initial-load", "-t", name, "--json-output", str(report))
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "needs a table with a primary key" in done.stdout + done.stderr
    assert f"sync -t {name}" in done.stdout + done.stderr
    document = json.loads(report.read_text())
    assert document["status"] == "failed" and document["exit_code"] == 1 and "primary key" in document["error"]


def test_job_launched_with_the_multiprocess_executor(harness: Harness, tmp_path: Path) -> None:
    """`dagster job execute` of the code location: the default executor runs each range op in its own
    process (the ops are rebuilt from the code location, outputs pass through the instance's storage)."""
    h = harness
    make_keyed(h, "il_multi", 300)
    spec = h.spec("il_multi")
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = tmp_path / "run.yaml"
    plan_config = {"table": spec.name, "ranges": 3}
    config.write_text(
        yaml.safe_dump(
            {
                "ops": {op_name(PIPELINE, PLAN_OP): {"config": plan_config}},
                "execution": {"config": {"multiprocess": {"max_concurrent": 2}}},
            }
        )
    )
    env = {**os.environ, "DAGSTER_HOME": str(home), "SYNC_PLATFORM_CONFIG_DIR": str(h.config.path)}
    command = ["dagster", "job", "execute", "-m", "sync_platform.definitions", "-j", initial_load_job_name(PIPELINE)]
    done = subprocess.run([*command, "-c", str(config)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = assert_exact(h, "il_multi", KEYED_COLUMNS, key="id")
    _assert_each_range_loaded_once(h, "il_multi", 3, rows)
    instance = instance_at(home)
    [run] = instance.get_runs(limit=1)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    started = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_WORKER_STARTED).records
    pids = {
        r.event_log_entry.step_key: r.event_log_entry.dagster_event.engine_event_data.metadata["pid"].value
        for r in started
    }
    assert len(pids) == 5 and len(set(pids.values())) == 5, f"plan, 3 ranges and finish: a process each: {pids}"
    stored = read_extract_watermark(instance, spec)
    assert stored is not None and stored.watermark.position["id"] == 300
