"""Asset checks against real data, the staged-batch sensor and a schedule tick."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pytest

from sync_platform.orchestration import watermarks
from sync_platform.orchestration.automation import STAGED_BATCHES_SENSOR, TRIGGER_TAG
from sync_platform.orchestration.checks import ROW_COUNT_CHECK, UNIQUE_KEY_CHECK
from sync_platform.orchestration.keys import schedule_name
from sync_platform_tests.orchestration.platform import (
    PIPELINE,
    Platform,
    add_orders,
    create_orders,
    hybrid,
    metadata_of,
)


@pytest.fixture
def platform(mysql_db, pg_db, make_config_dir) -> Iterator[Platform]:
    with dg.instance_for_test() as instance:  # SQLite storage in a temporary DAGSTER_HOME, as in production
        yield Platform(make_config_dir(), mysql_db, pg_db, instance)


def test_checks_pass_on_a_good_sync_and_fail_on_a_tampered_target(platform: Platform) -> None:
    create_orders(platform.mysql, "checked", 50)
    platform.mysql.execute("UPDATE checked SET updated_at = NULL WHERE id = 50")  # never in the synced window
    platform.set_tables({"checked": hybrid()})
    result = platform.materialize("checked")
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations[ROW_COUNT_CHECK].passed and evaluations[UNIQUE_KEY_CHECK].passed
    assert evaluations[ROW_COUNT_CHECK].metadata["source_rows"].value == 49

    target = platform.target("checked")
    platform.pg.execute(f"DELETE FROM {target} WHERE id IN (7, 8)")
    rows = platform.run_checks("checked", expect_success=False)[ROW_COUNT_CHECK]  # blocking: the run fails
    assert not rows.passed and rows.severity == dg.AssetCheckSeverity.ERROR
    assert rows.metadata["difference"].value == -2

    # Redshift does not enforce keys: a duplicate there must be caught by the check.
    (constraint,) = platform.pg.query(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", (target,)
    )[0]
    platform.pg.execute(f'ALTER TABLE {target} DROP CONSTRAINT "{constraint}"')
    platform.pg.execute(f"INSERT INTO {target} SELECT * FROM {target} WHERE id = 3")
    unique = platform.run_checks("checked", expect_success=False)[UNIQUE_KEY_CHECK]
    assert not unique.passed and unique.metadata["duplicated_keys"].value == 1


def test_the_sensor_loads_batches_that_only_the_staging_asset_staged(platform: Platform) -> None:
    create_orders(platform.mysql, "backup_only", 30)
    platform.set_tables({"backup_only": hybrid()})
    keys = platform.keys("backup_only")
    defs = platform.definitions()
    sensor = defs.resolve_sensor_def(STAGED_BATCHES_SENSOR)

    def tick() -> list[dg.RunRequest]:
        data = sensor.evaluate_tick(dg.build_sensor_context(instance=platform.instance, definitions=defs))
        return list(data.run_requests or [])

    platform.materialize("backup_only", warehouse=False)  # the older tool's `backup`: staged, not loaded
    (request,) = tick()
    assert request.asset_selection == [keys.warehouse] and request.tags[TRIGGER_TAG] == "staged-batch"
    result = platform.execute(set(request.asset_selection), tags=dict(request.tags))
    assert metadata_of(result, keys.warehouse)["rows"] == 30
    assert tick() == []  # loaded: nothing more to do

    add_orders(platform.mysql, "backup_only", [31])
    platform.materialize("backup_only")  # staged and loaded by the same run: the sensor stays quiet
    assert tick() == []


def test_a_schedule_tick_runs_every_table_of_the_pipeline_and_moves_the_same_watermarks(platform: Platform) -> None:
    create_orders(platform.mysql, "tick_a", 10)
    create_orders(platform.mysql, "tick_b", 5)
    platform.set_tables(
        {"tick_a": hybrid(), "tick_b": {"cdc_strategy": "full_sync"}},
        schedule={"cron": "*/15 * * * *"},
        processing={"max_parallel_tables": 1},
    )
    defs = platform.definitions()
    schedule = defs.resolve_schedule_def(schedule_name(PIPELINE))
    context = dg.build_schedule_context(
        instance=platform.instance, scheduled_execution_time=dt.datetime(2025, 1, 1, 0, 15, tzinfo=dt.UTC)
    )
    (request,) = schedule.evaluate_tick(context).run_requests or []
    a, b = platform.keys("tick_a"), platform.keys("tick_b")
    assert set(request.asset_selection) == {a.staging, a.warehouse, b.staging, b.warehouse}
    platform.execute(set(request.asset_selection), run_config=request.run_config, tags=dict(request.tags))
    stored = watermarks.read_extract_watermark(platform.instance, platform.spec("tick_a"))
    assert stored is not None and stored.watermark.position["id"] == 10
    assert platform.pg.query(f"SELECT COUNT(*) FROM {platform.target('tick_b')}")[0][0] == 5
