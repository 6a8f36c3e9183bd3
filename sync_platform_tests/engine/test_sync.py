"""The engine end to end: MariaDB → staged parquet → PostgreSQL, against the real services.

Each test states an invariant of DESIGN §4 or a pitfall peers fell into, and proves it by
comparing every row of the target with the source.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal

import pytest

from sync_platform.engine.strategies import PlanError
from sync_platform.engine.sync import ConcurrentRunError
from sync_platform_tests.engine.harness import Harness, assert_same

COLUMNS = ["id", "name", "amount", "updated_at", "note"]


@pytest.fixture
def harness(mysql_db, warehouse_db, make_config_dir) -> Harness:
    return Harness(make_config_dir(postgres=warehouse_db), mysql_db, warehouse_db)


def create_orders(h: Harness, table: str, rows: int, *, start: dt.datetime | None = None, step_s: float = 1.0) -> None:
    h.mysql.execute(f"DROP TABLE IF EXISTS `{table}`")
    h.mysql.execute(
        f"CREATE TABLE `{table}` (id BIGINT PRIMARY KEY, name VARCHAR(64), amount DECIMAL(12,2), "
        "updated_at DATETIME(6) NULL, note TEXT, KEY (updated_at))"
    )
    start = start or dt.datetime(2025, 1, 1)
    h.mysql.executemany(
        f"INSERT INTO `{table}` VALUES (%s, %s, %s, %s, %s)",
        [
            (i, f"name-{i}", f"{i}.25", start + dt.timedelta(seconds=i * step_s), None if i % 3 else f"note {i}")
            for i in range(1, rows + 1)
        ],
    )


def hybrid(**extra):
    return {"cdc_strategy": "hybrid", "cdc_timestamp_column": "updated_at", "cdc_id_column": "id", **extra}


def test_initial_load_then_updates_and_inserts_are_merged(harness: Harness) -> None:
    create_orders(harness, "orders", 500)
    harness.set_tables({f"{harness.mysql.name}.orders": hybrid(lookback=0)}, processing={"batch_size": 64})
    first = harness.sync("orders")
    assert first.extract.rows == 500 and first.load.rows == 500
    assert assert_same(harness, "orders", COLUMNS, "id") == 500

    harness.mysql.execute("UPDATE orders SET amount = amount + 1, updated_at = '2025-06-01' WHERE id % 10 = 0")
    harness.mysql.executemany(
        "INSERT INTO orders VALUES (%s, %s, %s, %s, %s)",
        [(1000 + i, "new", "1.00", "2025-06-02", None) for i in range(5)],
    )
    second = harness.sync("orders")
    assert second.extract.rows == 55  # the 50 updated and 5 new rows, nothing else
    assert assert_same(harness, "orders", COLUMNS, "id") == 505


def test_rows_sharing_a_timestamp_across_a_page_edge_all_arrive(harness: Harness) -> None:
    create_orders(harness, "ties", 1)  # the first run (a snapshot in key order) reads this row
    harness.set_tables({f"{harness.mysql.name}.ties": hybrid(lookback=0)}, processing={"batch_size": 10})
    assert harness.sync("ties").extract.rows == 1
    same = dt.datetime(2025, 3, 1, 12, 0, 0)
    harness.mysql.executemany(
        "INSERT INTO ties VALUES (%s, %s, %s, %s, %s)", [(i, "t", "1.00", same, None) for i in range(2, 27)]
    )
    # 25 rows with one timestamp, read in pages of 10 on (updated_at, id): every page edge cuts the tie.
    assert harness.sync("ties").extract.rows == 25
    assert assert_same(harness, "ties", COLUMNS, "id") == 26
    # A row arriving later with the cursor value equal to the stored maximum arrives exactly once.
    harness.mysql.execute("INSERT INTO ties VALUES (27, 't', '1.00', %s, NULL)", (same,))
    assert harness.sync("ties").extract.rows == 1
    assert assert_same(harness, "ties", COLUMNS, "id") == 27


def test_first_run_reads_in_key_order_up_to_the_ceiling_and_sets_an_exact_watermark(harness: Harness) -> None:
    h = harness
    create_orders(h, "snapshot", 0)
    now = h.mysql.query("SELECT NOW(6)")[0][0]
    old = now - dt.timedelta(hours=1)
    # Timestamps fall as keys rise: in cursor order the last row would be id 1, in key order id 50.
    h.mysql.executemany(
        "INSERT INTO snapshot VALUES (%s, 'r', '1.00', %s, NULL)",
        [(i, old - dt.timedelta(seconds=i)) for i in range(1, 51)],
    )
    h.mysql.execute("INSERT INTO snapshot VALUES (99, 'fresh', '1.00', %s, NULL)", (now,))  # inside safety lag
    h.set_tables({f"{h.mysql.name}.snapshot": hybrid(lookback=0, safety_lag="30s")}, processing={"batch_size": 7})
    first = h.sync("snapshot")
    assert first.extract.rows == 50  # the fresh row waits for a run whose ceiling has passed it
    ceiling = first.extract.ceiling
    assert h.watermarks["snapshot"].position == {"updated_at": ceiling, "id": 50}
    # A row committed later with the cursor exactly at the watermark still arrives.
    h.mysql.execute("INSERT INTO snapshot VALUES (100, 'tie', '1.00', %s, NULL)", (ceiling,))
    second = h.sync("snapshot")
    assert second.extract.rows == 1
    target = h.pg.query(f"SELECT id FROM {h.target('snapshot')} ORDER BY id")
    assert [r[0] for r in target] == [*range(1, 51), 100]


def test_ties_without_a_key_page_safely_and_load_once(harness: Harness) -> None:
    h = harness
    h.mysql.execute("DROP TABLE IF EXISTS events")
    h.mysql.execute("CREATE TABLE events (ts DATETIME(6), payload VARCHAR(20), KEY (ts))")
    rows = [(dt.datetime(2025, 1, 1, 0, 0, i // 7), f"p{i}") for i in range(40)]  # groups of 7 equal ts
    h.mysql.executemany("INSERT INTO events VALUES (%s, %s)", rows)
    h.set_tables(
        {f"{h.mysql.name}.events": {"cdc_strategy": "timestamp_only", "cdc_timestamp_column": "ts"}},
        processing={"batch_size": 5},
    )
    result = h.sync("events")
    assert result.extract.rows == 40 and result.load.rows == 40
    target = sorted(h.pg.query(f"SELECT ts, payload FROM {h.target('events')}"))
    assert target == sorted(rows)
    assert h.sync("events").extract.rows == 0  # nothing new: nothing appended twice
    assert len(h.pg.query(f"SELECT 1 FROM {h.target('events')}")) == 40


def test_datetime6_watermark_round_trips_and_a_second_run_reads_nothing(harness: Harness) -> None:
    create_orders(harness, "precise", 30, start=dt.datetime(2025, 1, 1, 0, 0, 0, 123457), step_s=0.000001)
    harness.set_tables({f"{harness.mysql.name}.precise": hybrid(lookback=0)})
    assert harness.sync("precise").extract.rows == 30
    mark = harness.watermarks["precise"].position["updated_at"]
    assert mark == dt.datetime(2025, 1, 1, 0, 0, 0, 123487)
    assert harness.sync("precise").extract.rows == 0
    assert assert_same(harness, "precise", COLUMNS, "id") == 30


def test_a_transaction_committed_after_the_sync_is_picked_up_by_the_next_run(harness: Harness) -> None:
    h = harness
    create_orders(h, "late", 0)
    h.set_tables({f"{h.mysql.name}.late": hybrid(safety_lag="1s")})  # default lookback: 60s
    now = h.mysql.query("SELECT NOW(6)")[0][0]
    late = h.mysql.connect()
    late.autocommit(False)
    with late.cursor() as cur:  # a long transaction: its row's timestamp is older than what others commit
        cur.execute("INSERT INTO late VALUES (1, 'late', '1.00', %s, NULL)", (now - dt.timedelta(seconds=20),))
    h.mysql.execute("INSERT INTO late VALUES (2, 'early', '1.00', %s, NULL)", (now - dt.timedelta(seconds=10),))
    assert h.sync("late").extract.rows == 1
    late.commit()
    late.close()
    h.sync("late")
    assert assert_same(h, "late", COLUMNS, "id") == 2


def test_rows_newer_than_the_safety_lag_wait_for_the_next_run(harness: Harness) -> None:
    h = harness
    create_orders(h, "fresh", 0)
    h.set_tables({f"{h.mysql.name}.fresh": hybrid(safety_lag="30s")})
    h.mysql.execute("INSERT INTO fresh VALUES (1, 'old', '1.00', NOW(6) - INTERVAL 1 HOUR, NULL)")
    h.mysql.execute("INSERT INTO fresh VALUES (2, 'new', '1.00', NOW(6), NULL)")
    result = h.sync("fresh")
    assert result.extract.rows == 1 and result.extract.ceiling is not None


def test_null_cursor_rows_are_counted_and_full_sync_loads_them(harness: Harness) -> None:
    h = harness
    create_orders(h, "nulls", 10)
    h.mysql.execute("UPDATE nulls SET updated_at = NULL WHERE id IN (3, 4)")
    h.set_tables({f"{h.mysql.name}.nulls": hybrid(null_cursor="report")})
    result = h.sync("nulls")
    assert result.extract.null_cursor_rows == 2 and result.extract.rows == 8
    h.set_tables({f"{h.mysql.name}.nulls": {"cdc_strategy": "full_sync"}})
    full = h.sync("nulls")
    assert full.extract.rows == 10
    assert assert_same(h, "nulls", COLUMNS, "id") == 10


def test_full_sync_replace_reflects_deletes_and_never_duplicates(harness: Harness) -> None:
    h = harness
    create_orders(h, "snap", 100)
    h.set_tables({f"{h.mysql.name}.snap": {"cdc_strategy": "full_sync"}}, processing={"batch_size": 30})
    h.sync("snap")
    h.mysql.execute("DELETE FROM snap WHERE id > 90")
    h.mysql.execute("UPDATE snap SET name = 'changed' WHERE id = 1")
    result = h.sync("snap")
    assert result.load.write_mode == "replace"
    assert assert_same(h, "snap", COLUMNS, "id") == 90


def test_full_sync_paginate_spreads_a_full_pass_over_capped_runs(harness: Harness) -> None:
    h = harness
    create_orders(h, "pages", 25)
    h.set_tables({f"{h.mysql.name}.pages": {"cdc_strategy": "full_sync", "full_sync_mode": "paginate"}})
    assert [h.sync("pages", limit=10).extract.rows for _ in range(3)] == [10, 10, 5]
    assert h.watermarks["pages"].is_empty  # the pass reached the end: the next one starts over
    assert assert_same(h, "pages", COLUMNS, "id") == 25
    h.mysql.execute("UPDATE pages SET name = 'second pass' WHERE id = 2")
    assert h.sync("pages", limit=10).extract.rows == 10
    assert h.pg.query(f"SELECT name FROM {h.target('pages')} WHERE id = 2") == [("second pass",)]


def test_full_sync_append_adds_a_snapshot_per_run(harness: Harness) -> None:
    h = harness
    create_orders(h, "snaps", 4)
    h.set_tables({f"{h.mysql.name}.snaps": {"cdc_strategy": "full_sync", "full_sync_mode": "append"}})
    h.sync("snaps")
    h.sync("snaps")
    assert h.pg.query(f"SELECT COUNT(*), COUNT(DISTINCT id) FROM {h.target('snaps')}") == [(8, 4)]


def test_configured_primary_key_overrides_the_source_key(harness: Harness) -> None:
    h = harness
    h.mysql.execute("DROP TABLE IF EXISTS keyless")
    h.mysql.execute("CREATE TABLE keyless (code VARCHAR(10), v INT, updated_at DATETIME(6), KEY (updated_at))")
    h.mysql.executemany(
        "INSERT INTO keyless VALUES (%s, %s, %s)", [(f"c{i}", i, dt.datetime(2025, 1, 1, 0, 0, i)) for i in range(10)]
    )
    h.set_tables(
        {
            f"{h.mysql.name}.keyless": {
                "cdc_strategy": "timestamp_only",
                "cdc_timestamp_column": "updated_at",
                "primary_key": ["code"],
                "lookback": 0,
            }
        }
    )
    h.sync("keyless")
    h.mysql.execute("UPDATE keyless SET v = 100, updated_at = '2025-02-01' WHERE code = 'c3'")
    result = h.sync("keyless")
    assert result.load.write_mode == "merge" and result.extract.rows == 1
    assert h.pg.query(f"SELECT COUNT(*), SUM(v) FROM {h.target('keyless')}") == [(10, 45 - 3 + 100)]


def test_id_only_appends_new_ids(harness: Harness) -> None:
    h = harness
    create_orders(h, "ids", 20)
    h.set_tables(
        {f"{h.mysql.name}.ids": {"cdc_strategy": "id_only", "cdc_id_column": "id"}}, processing={"batch_size": 7}
    )
    assert h.sync("ids").extract.rows == 20
    h.mysql.executemany("INSERT INTO ids VALUES (%s, 'n', '1.00', NULL, NULL)", [(i,) for i in range(21, 31)])
    assert h.sync("ids").extract.rows == 10
    assert assert_same(h, "ids", COLUMNS, "id") == 30


def test_custom_sql_reads_through_its_placeholders(harness: Harness) -> None:
    h = harness
    create_orders(h, "custom", 50)
    query = (
        "SELECT id, name, amount, updated_at, note FROM {table_name} WHERE amount >= 10 AND "
        "(updated_at, id) > ({last_timestamp}, {last_id}) AND updated_at <= {ceiling_timestamp} "
        "ORDER BY updated_at, id LIMIT {limit}"
    )
    h.set_tables(
        {f"{h.mysql.name}.custom": hybrid(cdc_strategy="custom_sql", custom_query=query, lookback=0)},
        processing={"batch_size": 8},
    )
    assert h.sync("custom").extract.rows == 41
    target = h.pg.query(f"SELECT COUNT(*), MIN(id) FROM {h.target('custom')}")
    assert target == [(41, 10)]


def test_custom_sql_that_is_not_a_select_never_reaches_the_source(harness: Harness) -> None:
    h = harness
    create_orders(h, "victim", 3)
    h.set_tables({f"{h.mysql.name}.victim": hybrid(cdc_strategy="custom_sql", custom_query="DELETE FROM {table_name}")})
    with pytest.raises(PlanError, match="SELECT"):
        h.sync("victim")
    assert h.mysql.query("SELECT COUNT(*) FROM victim") == [(3,)]


def test_limit_caps_a_run_and_the_next_runs_continue(harness: Harness) -> None:
    h = harness
    create_orders(h, "capped", 95)
    h.set_tables({f"{h.mysql.name}.capped": hybrid(lookback=0)})
    totals = []
    for _ in range(10):
        result = h.sync("capped", limit=20)
        totals.append(result.extract.rows)
        if not result.extract.capped:
            break
    assert totals == [20, 20, 20, 20, 15]
    assert assert_same(h, "capped", COLUMNS, "id") == 95


def test_a_second_extract_of_the_same_table_fails_clearly_while_one_runs(harness: Harness) -> None:
    h = harness
    create_orders(h, "busy", 5)
    h.set_tables({f"{h.mysql.name}.busy": hybrid()})
    from sync_platform.engine.sync import _lock_name

    name = _lock_name(h.spec("busy"))
    holder = h.mysql.connect()
    with holder.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0)", (name,))
    try:
        with pytest.raises(ConcurrentRunError, match="another sync of this table is running"):
            h.sync("busy")
    finally:
        holder.close()
    assert h.sync("busy").extract.rows == 5


def test_different_tables_sync_in_parallel(harness: Harness) -> None:
    h = harness
    for name in ("par_a", "par_b"):
        create_orders(h, name, 300)
    h.set_tables({f"{h.mysql.name}.par_a": hybrid(), f"{h.mysql.name}.par_b": hybrid()}, processing={"batch_size": 50})
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            h.sync(name)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("par_a", "par_b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert assert_same(h, "par_a", COLUMNS, "id") == 300
    assert assert_same(h, "par_b", COLUMNS, "id") == 300


def test_unconfigured_table_in_an_open_pipeline_detects_its_timestamp(harness: Harness) -> None:
    h = harness
    create_orders(h, "detect", 12)
    h.config.write(
        "pipelines/default.yml",
        {
            "pipeline": {
                "name": "default",
                "source": h.config.source,
                "target": h.config.target,
                "s3_config": h.config.staging,
            }
        },
    )
    from sync_platform.configuration import load_project, table_spec
    from sync_platform.connections.registry import ConnectionRegistry
    from sync_platform.engine.sync import sync_table
    from sync_platform.engine.watermark import Watermark

    project = load_project(h.config.path, env={})
    spec = table_spec(project, "default", f"{h.mysql.name}.detect")
    with ConnectionRegistry(project.connections, project.config_dir) as registry:
        result = sync_table(registry, spec, Watermark())
    assert result.extract.detected == "hybrid on updated_at, id"
    assert result.load.rows == 12


def test_timing_guard_engine_reads_in_bounded_pages(harness: Harness) -> None:
    """Pages of ``batch_size`` rows: a 1,000-row table read 100 at a time makes 11 queries."""
    h = harness
    create_orders(h, "paged", 1000)
    h.set_tables({f"{h.mysql.name}.paged": hybrid()}, processing={"batch_size": 100})
    started = time.monotonic()
    assert h.sync("paged").extract.rows == 1000
    assert time.monotonic() - started < 120


def test_a_new_source_column_and_a_wider_varchar_reach_the_target(harness: Harness) -> None:
    h = harness
    create_orders(h, "evolve", 5)
    h.set_tables({f"{h.mysql.name}.evolve": hybrid(lookback=0)})
    h.sync("evolve")
    h.mysql.execute("ALTER TABLE evolve ADD COLUMN coupon VARCHAR(20) NULL, MODIFY name VARCHAR(200)")
    h.mysql.execute(
        "UPDATE evolve SET coupon = 'SPRING', name = %s, updated_at = '2026-01-01' WHERE id = 2", ("x" * 150,)
    )
    result = h.sync("evolve")
    assert any("coupon" in change for change in result.load.schema_changes)
    assert any("name" in change for change in result.load.schema_changes)
    assert assert_same(h, "evolve", [*COLUMNS, "coupon"], "id") == 5


def test_widening_a_key_and_a_sort_key_column_keeps_every_row_not_null_and_the_layout(harness: Harness) -> None:
    """INT → BIGINT on the (NOT NULL) key and a SORTKEY column: Redshift cannot ALTER them, so the table is rebuilt."""
    h = harness
    h.mysql.execute("DROP TABLE IF EXISTS grow")
    h.mysql.execute(
        "CREATE TABLE grow (id INT PRIMARY KEY, qty INT, amount DECIMAL(10,2), updated_at DATETIME(6), "
        "KEY (updated_at))"
    )
    h.mysql.executemany(
        "INSERT INTO grow VALUES (%s, %s, %s, %s)",
        [(i, i * 10, f"{i}.50", f"2025-01-01 00:00:{i:02d}") for i in range(1, 21)],
    )
    layout = {"distkey": "id", "sortkey": ["qty"]}  # PostgreSQL ignores it
    h.set_tables({f"{h.mysql.name}.grow": hybrid(lookback=0, redshift=layout)})
    h.sync("grow")
    h.mysql.execute("ALTER TABLE grow MODIFY id BIGINT, MODIFY qty BIGINT, MODIFY amount DECIMAL(16,2)")
    h.mysql.execute("INSERT INTO grow VALUES (5000000000, 6000000000, '12345678901234.25', '2026-01-01')")
    result = h.sync("grow")
    assert result.load.rows == 1 and result.load.schema_changes
    assert assert_same(h, "grow", ["id", "qty", "amount", "updated_at"], "id") == 21
    nullable = dict(
        h.pg.query(
            "SELECT column_name, is_nullable FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'grow'",
            (h.config.target_schema,),
        )
    )
    assert nullable["id"] == "NO", "the key column is still NOT NULL"
    if h.warehouse != "postgres":
        assert any("rebuilt (deep copy)" in change for change in result.load.schema_changes)
        with h.registry() as registry, registry.warehouse(h.config.target).connect() as conn, conn.cursor() as cur:
            cur.execute('SELECT "column", distkey, sortkey FROM pg_table_def WHERE tablename = %s', ("grow",))
            keys = {name: (distkey, sortkey) for name, distkey, sortkey in cur.fetchall()}
        assert keys["id"][0] is True and keys["qty"][1] == 1, keys  # DISTKEY and SORTKEY survive the rebuild


def test_an_incompatible_source_change_stops_the_table_with_a_clear_error(harness: Harness) -> None:
    from sync_platform.warehouse import IncompatibleSchemaChange

    h = harness
    create_orders(h, "breaking", 3)
    h.set_tables({f"{h.mysql.name}.breaking": hybrid(lookback=0)})
    h.sync("breaking")
    h.mysql.execute("ALTER TABLE breaking MODIFY amount VARCHAR(20)")
    h.mysql.execute("UPDATE breaking SET amount = 'n/a', updated_at = '2026-01-01' WHERE id = 1")
    with pytest.raises(IncompatibleSchemaChange) as raised:
        h.sync("breaking")
    assert "amount" in str(raised.value)
    assert h.pg.query(f"SELECT amount FROM {h.target('breaking')} WHERE id = 1") == [(Decimal("1.25"),)]


def test_a_large_postgresql_target_reports_its_estimate_instead_of_counting_every_run(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COUNT(*) visits every row on PostgreSQL: a run that merged a few rows into a large target reports the
    catalog's estimate. Redshift counts cheaply and always reports the count."""
    from sync_platform.engine import load

    create_orders(harness, "counted", 300)
    harness.set_tables({f"{harness.mysql.name}.counted": hybrid(lookback=0)})
    first = harness.sync("counted")
    assert first.load.target_rows == 300 and first.load.target_rows_estimate is None  # never analyzed: counted
    harness.pg.execute(f"ANALYZE {harness.target('counted')}")
    monkeypatch.setattr(load, "EXACT_COUNT_BELOW", 100)  # "large" at this table's size
    harness.mysql.execute("UPDATE counted SET amount = amount + 1, updated_at = '2025-06-01' WHERE id <= 5")
    second = harness.sync("counted")
    assert second.load.rows == 5
    if harness.warehouse == "redshift":
        assert second.load.target_rows == 300 and second.load.target_rows_estimate is None
    else:
        assert second.load.target_rows is None and second.load.target_rows_estimate == 300
    assert assert_same(harness, "counted", COLUMNS, "id") == 300
