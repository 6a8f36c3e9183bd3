"""``sync``, ``sync pipeline``, ``sync connections`` and ``backup`` end to end, as Dagster runs.

Each command runs in a subprocess against the real MariaDB, PostgreSQL and a Dagster instance in a
temporary ``DAGSTER_HOME``; the tests compare the target with the source and read the instance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from sync_platform.orchestration.keys import TableKeys
from sync_platform.orchestration.watermarks import read_extract_watermark, read_load_watermark
from sync_platform_tests.cli.test_config_and_connections_cli import run
from sync_platform_tests.cli.test_s3clean import staged_batches
from sync_platform_tests.engine.harness import PIPELINE, Harness, assert_same
from sync_platform_tests.engine.test_sync import COLUMNS, create_orders, hybrid


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    return home


@pytest.fixture
def harness(mysql_db, warehouse_db, make_config_dir) -> Harness:
    h = Harness(make_config_dir(postgres=warehouse_db), mysql_db, warehouse_db)
    schema = h.config.target_schema
    for table in ("orders", "items", "adhoc", "legacy_orders", "_sync_load_ledger"):  # each test starts from nothing
        warehouse_db.execute(f'DROP TABLE IF EXISTS "{schema}"."{table}"')
    create_orders(h, "orders", 300)
    create_orders(h, "items", 120)
    h.set_tables(
        {f"{mysql_db.name}.orders": hybrid(lookback=0), f"{mysql_db.name}.items": hybrid(lookback=0)},
        processing={"batch_size": 50},
    )
    return h


def cli(h: Harness, home: Path, *args: str, env: dict[str, str] | None = None):
    return run("--config-dir", str(h.config.path), *args, env={"DAGSTER_HOME": str(home), **(env or {})})


def instance_at(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def test_sync_pipeline_without_tables_syncs_every_table_as_a_dagster_run(harness: Harness, dagster_home: Path) -> None:
    result = cli(harness, dagster_home, "sync", "pipeline", "-p", PIPELINE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert assert_same(harness, "orders", COLUMNS, "id") == 300
    assert assert_same(harness, "items", COLUMNS, "id") == 120
    assert "success" in result.stdout and "rows in target" in result.stdout

    # The run is in the instance, and the watermarks the UI and the schedules read have moved.
    instance = instance_at(dagster_home)
    runs = instance.get_runs()
    assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS
    assert runs[0].tags["sync_platform/trigger"] == "cli"
    spec = harness.spec("orders")
    extract, load = read_extract_watermark(instance, spec), read_load_watermark(instance, spec)
    assert extract is not None and load is not None
    assert extract.watermark.position["id"] == 300 and load.watermark.position["id"] == 300

    # A second run reads only what changed.
    harness.mysql.execute("UPDATE orders SET name = 'changed', updated_at = '2026-01-01' WHERE id <= 5")
    again = cli(harness, dagster_home, "sync", "pipeline", "-p", PIPELINE, "--json-output", "/dev/stdout")
    assert again.returncode == 0, again.stderr
    document = json.loads(again.stdout[again.stdout.index("{") :])
    assert document["table_results"][f"{harness.mysql.name}.orders"]["rows_processed"] == 5
    assert document["table_results"][f"{harness.mysql.name}.items"]["rows_processed"] == 0
    assert assert_same(harness, "orders", COLUMNS, "id") == 300


@pytest.mark.timeout(600)  # six Dagster runs in sequence; through the stand-in each also COPYs from S3
def test_airflow_loop_with_limit_until_caught_up_totals_match_the_target(harness: Harness, dagster_home: Path) -> None:
    table = f"{harness.mysql.name}.orders"
    output = dagster_home.parent / "result.json"
    totals, runs = 0, 0
    while True:
        result = cli(
            harness, dagster_home, "sync", "pipeline", "-p", PIPELINE, "-t", table,
            "--json-output", str(output), "--limit", "70", "--max-workers", "1",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        document = json.loads(output.read_text())
        assert document["status"] == "success" and document["total_tables"] == 1
        rows = document["table_results"][table]["rows_processed"]
        assert rows <= 70
        totals += rows
        runs += 1
        if rows == 0:
            break
        assert runs < 10, "the loop must catch up"
    assert runs == 6  # 70 + 70 + 70 + 70 + 20, then a run that finds nothing
    assert totals == 300 == assert_same(harness, "orders", COLUMNS, "id")
    assert document["summary"] == {
        "success_count": 1,
        "failure_count": 0,
        "total_rows_processed": 0,
        "total_files_created": 0,
    }


def test_backup_only_then_redshift_only_and_s3clean_keeps_what_is_not_loaded(
    harness: Harness, dagster_home: Path
) -> None:
    table = f"{harness.mysql.name}.orders"
    staged = cli(harness, dagster_home, "sync", "-t", table, "--backup-only", "--json-output", "/dev/null")
    assert staged.returncode == 0, staged.stderr
    assert harness.pg.query(f"SELECT to_regclass('{harness.config.target_schema}.orders')") == [(None,)]
    batches = staged_batches(harness, "orders")
    assert batches

    cleaned = cli(harness, dagster_home, "s3clean", "clean", "-t", table, "--older-than", "0s")
    assert cleaned.returncode == 0, cleaned.stderr
    assert staged_batches(harness, "orders") == batches  # nothing unloaded is deleted

    loaded = cli(harness, dagster_home, "sync", "-t", table, "--redshift-only")
    assert loaded.returncode == 0, loaded.stderr
    assert assert_same(harness, "orders", COLUMNS, "id") == 300
    # `backup` is the v1.0.0 name of a staging-only run: nothing new to stage, nothing loaded.
    again = cli(harness, dagster_home, "backup", "-t", table)
    assert again.returncode == 0, again.stderr
    assert assert_same(harness, "orders", COLUMNS, "id") == 300


def test_sync_connections_between_two_named_connections(harness: Harness, dagster_home: Path) -> None:
    config = harness.config
    create_orders(harness, "adhoc", 80)
    table = f"{harness.mysql.name}.adhoc"
    result = cli(harness, dagster_home, "sync", "connections", "-s", config.source, "-r", config.target, "-t", table)
    assert result.returncode == 0, result.stdout + result.stderr
    assert assert_same(harness, "adhoc", COLUMNS, "id") == 80
    # A table a pipeline already writes, with other settings, is refused: one source table into one
    # warehouse table is one table, with one watermark.
    taken = f"{harness.mysql.name}.items"
    twice = cli(harness, dagster_home, "sync", "connections", "-s", config.source, "-r", config.target, "-t", taken)
    assert twice.returncode == 1, twice.stderr
    assert "with different settings" in twice.stderr and "is one table, with one watermark" in twice.stderr
    unknown = cli(harness, dagster_home, "sync", "connections", "-s", "nope", "-r", config.target, "-t", table)
    assert unknown.returncode == 1 and "no source connection `nope`" in unknown.stderr


def test_v1_0_0_env_mode_syncs_any_table_through_the_default_pipeline(
    mysql_db, pg_db, tmp_path: Path, dagster_home: Path
) -> None:
    h = Harness(None, mysql_db, pg_db)  # type: ignore[arg-type]
    create_orders(h, "legacy_orders", 90)
    config_dir = tmp_path / "config"
    config_dir.mkdir()  # no connections.yml: the older tool's .env variables
    env = {
        "DAGSTER_HOME": str(dagster_home),
        "DB_HOST": mysql_db.host,
        "DB_PORT": str(mysql_db.port),
        "DB_DATABASE": mysql_db.name,
        "DB_USER": mysql_db.user,
        "DB_PASSWORD": mysql_db.password,
        "REDSHIFT_TYPE": "postgres",
        "REDSHIFT_HOST": pg_db.host,
        "REDSHIFT_PORT": str(pg_db.port),
        "REDSHIFT_DATABASE": pg_db.name,
        "REDSHIFT_SCHEMA": "public",
        "REDSHIFT_USER": pg_db.user,
        "REDSHIFT_PASSWORD": pg_db.password,
        "S3_LOCAL_PATH": str(tmp_path / "staging"),
    }
    result = run("--config-dir", str(config_dir), "sync", "-t", f"{mysql_db.name}.legacy_orders", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    source = sorted(mysql_db.query("SELECT id, name, amount FROM legacy_orders"))
    target = sorted(pg_db.query("SELECT id, name, amount FROM public.legacy_orders"))
    assert len(target) == 90 and [(i, n, str(a)) for i, n, a in source] == [(i, n, str(a)) for i, n, a in target]


def test_a_failed_table_is_reported_with_a_partial_exit_code_and_in_the_json(
    harness: Harness, dagster_home: Path
) -> None:
    db = harness.mysql.name
    harness.set_tables({f"{db}.orders": hybrid(lookback=0), f"{db}.missing": hybrid(lookback=0)})
    output = dagster_home.parent / "result.json"
    result = cli(harness, dagster_home, "sync", "pipeline", "-p", PIPELINE, "--json-output", str(output))
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"{db}.missing" in result.stderr and "does not exist" in result.stderr
    document = json.loads(output.read_text())
    assert document["status"] == "partial_success"
    assert document["table_results"][f"{db}.missing"]["status"] == "failed"
    assert "does not exist" in document["table_results"][f"{db}.missing"]["error_message"]
    assert document["table_results"][f"{db}.orders"]["rows_processed"] == 300
    assert assert_same(harness, "orders", COLUMNS, "id") == 300

    alone = cli(harness, dagster_home, "sync", "-t", f"{db}.missing")
    assert alone.returncode == 1, alone.stderr  # the table does not exist: a configuration problem


def test_a_run_blocked_on_its_pool_gives_up_after_the_wait_timeout(harness: Harness, dagster_home: Path) -> None:
    table = f"{harness.mysql.name}.orders"
    instance = instance_at(dagster_home)
    pool = TableKeys.of(harness.spec("orders")).pool
    instance.event_log_storage.set_concurrency_slots(pool, 0)  # another deployment holds every slot
    result = cli(harness, dagster_home, "sync", "-t", table, "--wait-timeout", "3")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "gave up after 3 s" in result.stderr and pool in result.stderr
    assert "DagsterExecutionInterruptedError" not in result.stdout + result.stderr
    assert harness.pg.query(f"SELECT to_regclass('{harness.config.target_schema}.orders')") == [(None,)]
    # In the instance (and the UI) the run is canceled with what it was waiting for, and holds no claim.
    run = instance.get_runs(limit=1)[0]
    assert run.status == dg.DagsterRunStatus.CANCELED
    ended = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_CANCELED)
    assert "gave up after 3 s" in ended[-1].message and pool in ended[-1].message
    assert run.run_id not in {s.run_id for s in instance.event_log_storage.get_concurrency_info(pool).pending_steps}

    instance.event_log_storage.set_concurrency_slots(pool, 1)
    result = cli(harness, dagster_home, "sync", "-t", table)
    assert result.returncode == 0, result.stderr
    assert assert_same(harness, "orders", COLUMNS, "id") == 300


def test_usage_errors_exit_1_with_the_reason(harness: Harness, dagster_home: Path) -> None:
    table = f"{harness.mysql.name}.orders"
    both = cli(harness, dagster_home, "sync", "-t", table, "--backup-only", "--redshift-only")
    assert both.returncode == 1 and "exclude each other" in both.stderr
    bare = cli(harness, dagster_home, "sync")
    assert bare.returncode == 1 and "sync pipeline -p P" in bare.stderr
    unknown = cli(harness, dagster_home, "sync", "pipeline", "-p", "nope")
    assert unknown.returncode == 1 and "pipeline `nope` not found" in unknown.stderr
    misplaced = cli(harness, dagster_home, "sync", "--limit", "5", "pipeline", "-p", PIPELINE)
    assert misplaced.returncode == 1 and "after the subcommand" in misplaced.stderr  # not silently ignored
    not_listed = cli(harness, dagster_home, "sync", "pipeline", "-p", PIPELINE, "-t", "other.table")
    assert not_listed.returncode == 1 and "not part of pipeline" in not_listed.stderr


def test_watermark_set_then_sync_resumes_from_the_set_point(harness: Harness, dagster_home: Path) -> None:
    table = f"{harness.mysql.name}.orders"
    first = cli(harness, dagster_home, "sync", "-t", table, "--limit", "100", "--max-chunks", "1")
    assert first.returncode == 0, first.stderr
    # create_orders: row i has updated_at = 2025-01-01 + i s; jump past row 250.
    moved = cli(
        harness, dagster_home, "watermark", "set", "-t", table, "--timestamp", "2025-01-01 00:04:10", "--id", "250"
    )
    assert moved.returncode == 0, moved.stdout + moved.stderr
    output = dagster_home.parent / "after_set.json"
    resumed = cli(harness, dagster_home, "sync", "-t", table, "--json-output", str(output))
    assert "(50 rows, 50 so far)" in resumed.stdout + resumed.stderr  # rows 251..300 staged
    ids = [row[0] for row in harness.pg.query(f"SELECT id FROM {harness.target('orders')} ORDER BY id")]
    assert ids == [*range(1, 101), *range(251, 301)]  # 101..250 skipped by the manual set, nothing doubled
    # Rows skipped on purpose are outside the row-count check's window (it starts at the set point), so
    # the run succeeds; rows lost above the set point would still fail it (exit 4).
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert json.loads(output.read_text())["table_results"][table]["status"] == "success"
    assert "row_count_matches_source: ok" in resumed.stdout + resumed.stderr


def test_progress_and_summary_on_a_terminal(harness: Harness, dagster_home: Path) -> None:
    """On a terminal the run shows a live line per table and a drawn summary table (rich)."""
    config = str(harness.config.path)
    command = " ".join([sys.executable, "-m", "sync_platform.cli.main", "--config-dir", config, "sync", "pipeline"])
    command += f" -p {PIPELINE}"
    result = subprocess.run(
        ["script", "-qec", command, "/dev/null"],  # a pseudo-terminal, as an operator's shell has
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home), "COLUMNS": "200"},
        cwd=harness.config.path.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "━" in result.stdout or "─" in result.stdout  # rich drew the table
    assert "done" in result.stdout and f"src:{harness.mysql.name}.orders" in result.stdout
    assert assert_same(harness, "items", COLUMNS, "id") == 120


def test_dry_run_shows_the_plan_and_changes_nothing(harness: Harness, dagster_home: Path) -> None:
    table = f"{harness.mysql.name}.orders"
    result = cli(harness, dagster_home, "sync", "-t", table, "--dry-run", "--limit", "40", "--max-chunks", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "strategy:      hybrid" in out and "write mode:    merge" in out
    assert f"dw.{harness.config.target_schema}.orders" in out  # the target
    assert "amount" in out and "NUMERIC(12,2)" in out  # a column with its warehouse type
    assert "SELECT" in out and "LIMIT 40" in out  # the SQL that would run, with the --limit page
    # The warehouse statements are the load plan the loader executes, in its order.
    schema = harness.config.target_schema
    if harness.warehouse == "postgres":
        assert "pg_advisory_xact_lock" in out and "FROM STDIN" in out
    else:
        assert out.index("FORMAT AS PARQUET MANIFEST") < out.index(f'LOCK "{schema}"."orders"')
        assert "pg_advisory" not in out and "FROM STDIN" not in out
    # Nothing happened: no target table, no staged batch, no Dagster run.
    assert harness.pg.query(f"SELECT to_regclass('{harness.config.target_schema}.orders')") == [(None,)]
    assert staged_batches(harness, "orders") == []
    assert instance_at(dagster_home).get_runs() == []
