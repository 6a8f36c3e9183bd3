"""Watermarks kept in Dagster: advanced by materializations, set by hand, recovered from the warehouse.

Every test runs the real definitions in-process against MariaDB → local staging → PostgreSQL and
compares the target with the source row by row.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from sync_platform.engine.watermark import Watermark
from sync_platform.orchestration import watermarks
from sync_platform_tests.engine.harness import source_rows, target_rows
from sync_platform_tests.orchestration.platform import Platform, add_orders, create_orders, hybrid, metadata_of

COLUMNS = ["id", "name", "amount", "updated_at"]


@pytest.fixture
def platform(mysql_db, pg_db, make_config_dir) -> Iterator[Platform]:
    with dg.instance_for_test() as instance:  # SQLite storage in a temporary DAGSTER_HOME, as in production
        yield Platform(make_config_dir(), mysql_db, pg_db, instance)


def assert_target_equals_source(p: Platform, table: str) -> int:
    expected = sorted(source_rows(p.mysql, table, COLUMNS, "id"))
    actual = sorted(target_rows(p.pg, p.target(table), COLUMNS, "id"))
    assert actual == expected, f"{table}: target differs from source ({len(actual)} vs {len(expected)} rows)"
    return len(actual)


def test_two_materializations_advance_the_watermark_and_the_second_reads_only_new_rows(platform: Platform) -> None:
    create_orders(platform.mysql, "orders", 120)
    platform.set_tables({"orders": hybrid()}, processing={"batch_size": 50})
    keys, spec = platform.keys("orders"), platform.spec("orders")

    first = platform.materialize("orders")
    staged = metadata_of(first, keys.staging)
    assert staged["rows"] == 120 and staged["watermark_origin"].startswith("none")
    first_mark = Watermark.from_dict(staged["watermark"])
    assert first_mark.position == {"updated_at": first_mark.position["updated_at"], "id": 120}
    loaded = metadata_of(first, keys.warehouse)
    assert loaded["rows"] == 120 and loaded["dagster/row_count"] == 120
    assert [c.name for c in loaded["dagster/column_schema"].columns] == COLUMNS

    add_orders(platform.mysql, "orders", range(121, 126))
    platform.mysql.execute("UPDATE orders SET amount = 0, updated_at = '2025-06-01' WHERE id IN (3, 4)")
    second = platform.materialize("orders")
    staged = metadata_of(second, keys.staging)
    assert staged["rows"] == 7  # five new rows and two updated ones, nothing else
    assert staged["watermark_origin"] == "materialization"
    assert Watermark.from_dict(staged["watermark_before"]).position["id"] == 120
    assert assert_target_equals_source(platform, "orders") == 125

    stored = watermarks.read_extract_watermark(platform.instance, spec)
    assert stored is not None and stored.watermark.position == Watermark.from_dict(staged["watermark"]).position
    assert stored.watermark.position["id"] == 4  # the updated rows carry the newest updated_at
    load = watermarks.read_load_watermark(platform.instance, spec)
    assert load is not None and load.watermark.position == stored.watermark.position


def test_a_manual_set_is_honored_and_a_reset_starts_over(platform: Platform) -> None:
    create_orders(platform.mysql, "manual", 60)
    platform.set_tables({"manual": hybrid()})
    keys, spec = platform.keys("manual"), platform.spec("manual")
    platform.materialize("manual")
    first = watermarks.read_extract_watermark(platform.instance, spec)
    assert first is not None

    # Back to row 40: rows 41..60 are read again (and merged, so nothing duplicates).
    position = {"updated_at": dt.datetime(2025, 1, 1, 0, 0, 40), "id": 40}
    stored = watermarks.record_manual_watermark(platform.instance, spec, Watermark(position), note="replay")
    assert stored.manual_at is not None
    current = watermarks.read_extract_watermark(platform.instance, spec)
    assert current is not None and current.origin == watermarks.Origin.MANUAL and current.detail == "replay"

    again = metadata_of(platform.materialize("manual"), keys.staging)
    assert again["rows"] == 20 and again["watermark_origin"].startswith("manual")
    after = Watermark.from_dict(again["watermark"])
    assert after.position["id"] == 60 and after.manual_at == stored.manual_at  # batches before the set stay ignored

    watermarks.reset_watermark(platform.instance, spec)
    assert metadata_of(platform.materialize("manual"), keys.staging)["rows"] == 60
    assert assert_target_equals_source(platform, "manual") == 60


@pytest.mark.parametrize("lose_ledger", [False, True], ids=["from-ledger", "from-target-max"])
def test_a_wiped_instance_recovers_from_the_warehouse_without_duplicates(platform: Platform, lose_ledger: bool) -> None:
    table = f"events_{int(lose_ledger)}"
    create_orders(platform.mysql, table, 80, keyed=False)  # no key: loads append, a re-read would duplicate
    platform.set_tables({table: {"cdc_strategy": "id_only", "cdc_id_column": "id"}})
    keys, spec = platform.keys(table), platform.spec(table)
    platform.materialize(table)
    add_orders(platform.mysql, table, range(81, 91))

    platform.instance.wipe_assets([keys.staging, keys.warehouse])  # as a new instance: no metadata at all
    shutil.rmtree(Path(platform.config.staging_location))  # and no staged manifests to resume from
    if lose_ledger:  # a table the older tool loaded: only the target's MAX(id) is left
        platform.pg.execute(f'DELETE FROM "{platform.config.target_schema}"._sync_load_ledger')
    result = platform.materialize(table)

    staged = metadata_of(result, keys.staging)
    assert staged["rows"] == 10
    expected = watermarks.Origin.TARGET if lose_ledger else watermarks.Origin.LEDGER
    assert staged["watermark_origin"].startswith(expected)
    assert Watermark.from_dict(staged["watermark_before"]).position == {"id": 80}
    assert assert_target_equals_source(platform, table) == 90
    assert watermarks.read_extract_watermark(platform.instance, spec).watermark.position == {"id": 90}
