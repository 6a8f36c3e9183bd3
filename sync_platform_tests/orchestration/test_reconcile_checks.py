"""The ``source_equals_target`` check, the reconcile job and its schedule, against real data."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from sync_platform.configuration.errors import ConfigError
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
