"""The ``source_equals_target`` check, the reconcile job and its schedule, against real data."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from sync_platform.configuration.errors import ConfigError
from sync_platform.orchestration.checks import FULL_ROW_COUNT_CHECK, FULL_UNIQUE_KEY_CHECK, ROW_COUNT_CHECK
from sync_platform.orchestration.reconciliation import SOURCE_EQUALS_TARGET, reconcile_job_name
from sync_platform_tests.orchestration.platform import Platform, create_orders, hybrid


@pytest.fixture
def platform(mysql_db, pg_db, make_config_dir) -> Iterator[Platform]:
    with dg.instance_for_test() as instance:
        yield Platform(make_config_dir(), mysql_db, pg_db, instance)


def run_reconcile_job(platform: Platform) -> dg.AssetCheckEvaluation:
    job = platform.definitions().resolve_job_def(reconcile_job_name("p"))
    result = job.execute_in_process(instance=platform.instance, raise_on_error=False)
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == SOURCE_EQUALS_TARGET]
    return evaluation


def test_the_check_reports_counts_in_metadata_and_the_job_repairs_as_configured(platform: Platform) -> None:
    create_orders(platform.mysql, "audited", 120)
    platform.set_tables({"audited": hybrid()}, reconcile={"schedule": "0 3 * * *"})
    platform.materialize("audited")
    assert run_reconcile_job(platform).passed

    platform.mysql.execute("DELETE FROM audited WHERE id IN (4, 90)")
    platform.mysql.execute("UPDATE audited SET name = 'drifted' WHERE id = 33")  # the cursor does not move
    platform.pg.execute(f"DELETE FROM {platform.target('audited')} WHERE id = 60")
    failed = run_reconcile_job(platform)  # defaults: deletes report, repair false
    metadata = {k: v.value for k, v in failed.metadata.items()}
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert (metadata["missing"], metadata["extra"], metadata["changed"]) == (1, 2, 1)
    assert metadata["ranges_scanned"] >= 1 and metadata["rows_transferred"] > 0 and metadata["seconds"] > 0
    assert metadata["sample_extra"] == "4, 90"

    platform.set_tables({"audited": hybrid(deletes="hard", repair=True)}, reconcile={"schedule": "0 3 * * *"})
    repaired = run_reconcile_job(platform)
    assert repaired.passed and repaired.metadata["rows_repaired"].value == 2
    assert run_reconcile_job(platform).metadata["missing"].value == 0
    count = platform.pg.query(f"SELECT COUNT(*) FROM {platform.target('audited')}")
    assert count == [(118,)]


def test_the_pipeline_reconcile_schedule_comes_from_config_and_a_bad_cron_names_the_key(platform: Platform) -> None:
    create_orders(platform.mysql, "scheduled", 5)
    platform.set_tables({"scheduled": hybrid()}, reconcile={"schedule": "0 3 * * *", "timezone": "Europe/Paris"})
    defs = platform.definitions()
    schedule = defs.resolve_schedule_def(f"{reconcile_job_name('p')}_schedule")
    assert schedule.cron_schedule == "0 3 * * *" and schedule.execution_timezone == "Europe/Paris"
    assert schedule.job_name == reconcile_job_name("p")
    platform.set_tables({"scheduled": hybrid()}, reconcile={"schedule": "every night"})
    with pytest.raises(ConfigError, match=r"pipeline\.reconcile\.schedule"):
        platform.definitions()


@pytest.fixture
def either(mysql_db, warehouse_db, make_config_dir) -> Iterator[Platform]:
    """The platform over the ``warehouse`` parameter's target (PostgreSQL, the Redshift stand-in)."""
    with dg.instance_for_test() as instance:
        yield Platform(make_config_dir(postgres=warehouse_db), mysql_db, warehouse_db, instance)


def test_the_reconcile_job_runs_the_full_table_count_and_key_checks_the_syncs_leave_out(either: Platform) -> None:
    create_orders(either.mysql, "counted", 40)
    either.set_tables({"counted": hybrid()})
    either.materialize("counted")
    target = either.target("counted")
    # Lost and doubled below the next run's window: a run with nothing new checks no rows and passes.
    either.pg.execute(f"DELETE FROM {target} WHERE id IN (3, 4)")
    either.pg.execute(f'ALTER TABLE {target} DROP CONSTRAINT IF EXISTS "counted_pkey"')
    either.pg.execute(f"INSERT INTO {target} SELECT * FROM {target} WHERE id = 9")
    quiet = {e.check_name: e for e in either.materialize("counted").get_asset_check_evaluations()}
    assert quiet[ROW_COUNT_CHECK].passed and quiet[ROW_COUNT_CHECK].metadata["source_rows"].value == 0
    assert quiet[ROW_COUNT_CHECK].metadata["scope"].value == "this run's window"

    job = either.definitions().resolve_job_def(reconcile_job_name("p"))
    result = job.execute_in_process(instance=either.instance, raise_on_error=False)
    found = {e.check_name: e for e in result.get_asset_check_evaluations()}
    rows, keys = found[FULL_ROW_COUNT_CHECK], found[FULL_UNIQUE_KEY_CHECK]
    assert not rows.passed and rows.severity == dg.AssetCheckSeverity.ERROR
    assert (rows.metadata["source_rows"].value, rows.metadata["target_rows"].value) == (40, 39)
    assert rows.metadata["scope"].value == "synced window" and rows.metadata["seconds"].value >= 0
    assert not keys.passed and keys.metadata["duplicated_keys"].value == 1
    assert keys.metadata["scope"].value == "whole table"
