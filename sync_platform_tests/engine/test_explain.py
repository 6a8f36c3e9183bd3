"""``explain_table``: what a sync would do, proved against what a real sync does, and that it changes nothing."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import pytest
import yaml

from sync_platform.engine.explain import TableExplanation, explain_table
from sync_platform.engine.strategies import PlanError
from sync_platform.engine.sync import RunOptions
from sync_platform.engine.watermark import Watermark
from sync_platform_tests.engine.harness import Harness
from sync_platform_tests.engine.test_sync import create_orders, hybrid


@pytest.fixture
def harness(mysql_db, pg_db, make_config_dir) -> Harness:
    return Harness(make_config_dir(), mysql_db, pg_db)


def explain(h: Harness, table: str, watermark: Watermark | None = None, **options: object) -> TableExplanation:
    with h.registry() as registry:
        return explain_table(registry, h.spec(table), watermark or Watermark(), RunOptions(**options))


def ids_of(h: Harness, sql: str) -> list[int]:
    """Run a printed page SELECT on MariaDB; the first selected value is the table's id."""
    return [row[0] for row in h.mysql.query(sql)]


def staged_files(h: Harness) -> list[Path]:
    root = Path(h.config.staging_location)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_the_printed_first_run_sql_reads_exactly_what_a_real_first_sync_loads(harness: Harness) -> None:
    h = harness
    create_orders(h, "first", 60)
    h.set_tables({f"{h.mysql.name}.first": hybrid(lookback=0)}, processing={"batch_size": 1000})
    explained = explain(h, "first")
    assert explained.strategy == "hybrid" and explained.keyset == ("updated_at", "id")
    (page,) = explained.first_run_sql  # a keyed table: one SELECT per page
    assert "FORCE INDEX (PRIMARY)" in page and page.endswith("LIMIT 1000")  # the snapshot in key order
    printed = ids_of(h, page)

    result = h.sync("first")
    loaded = [row[0] for row in h.pg.query(f"SELECT id FROM {h.target('first')} ORDER BY id")]
    assert result.extract.rows == 60
    assert printed == loaded == list(range(1, 61))
    assert result.extract.ceiling == explained.ceiling


def test_the_printed_incremental_sql_reads_exactly_what_the_next_sync_reads(harness: Harness) -> None:
    h = harness
    create_orders(h, "incr", 40)
    h.set_tables({f"{h.mysql.name}.incr": hybrid(lookback=0)}, processing={"batch_size": 1000})
    h.sync("incr")
    h.mysql.execute("UPDATE incr SET name = 'changed', updated_at = '2025-05-01' WHERE id IN (3, 7, 11)")
    h.mysql.execute("INSERT INTO incr VALUES (41, 'new', '1.00', '2025-05-01', NULL)")

    explained = explain(h, "incr", h.watermarks["incr"])
    (page,) = explained.incremental_sql
    # lookback 0: the first incremental page already continues after the watermark's (cursor, id)
    assert (
        "`updated_at` >= '2025-01-01 00:00:40.000000' AND (`updated_at` > '2025-01-01 00:00:40.000000' OR (`id` > 40))"
        in page
    )
    printed = sorted(ids_of(h, page))

    second = h.sync("incr")
    assert second.extract.rows == len(printed) == 4
    assert printed == [3, 7, 11, 41]


def test_keyset_pages_continue_after_the_cursor_and_key_of_the_last_row(harness: Harness) -> None:
    h = harness
    create_orders(h, "paged", 30)
    h.set_tables({f"{h.mysql.name}.paged": hybrid()}, processing={"batch_size": 10})  # default lookback 60s
    wm = Watermark({"updated_at": dt.datetime(2025, 1, 1, 0, 0, 20), "id": 20})
    explained = explain(h, "paged", wm)
    (first_page,) = explained.incremental_sql
    # the lookback re-reads a window from 60 s before the watermark, then pages on (updated_at, id)
    assert "`updated_at` >= '2024-12-31 23:59:20.000000'" in first_page and first_page.endswith("LIMIT 10")
    (next_page,) = explained.incremental_next_page_sql
    assert "AND (`updated_at` > '2025-01-01 00:00:20.000000' OR (`id` > 20))" in next_page
    assert "ORDER BY `updated_at`, `id` LIMIT 10" in next_page
    assert ids_of(h, next_page) == list(range(21, 31))


def test_limit_and_max_chunks_follow_the_older_tools_arithmetic(harness: Harness) -> None:
    h = harness
    create_orders(h, "capped", 5)
    h.set_tables({f"{h.mysql.name}.capped": hybrid()}, processing={"batch_size": 100})
    both = explain(h, "capped", limit=25, max_chunks=3)
    assert (both.page_rows, both.run_cap) == (25, 75)
    limit_only = explain(h, "capped", limit=30)
    assert (limit_only.page_rows, limit_only.run_cap) == (30, 30)
    chunks_only = explain(h, "capped", max_chunks=4)
    assert (chunks_only.page_rows, chunks_only.run_cap) == (100, 400)
    # a capped first run is not a snapshot: it reads in cursor order so the next run can continue
    assert "FORCE INDEX" not in limit_only.first_run_sql[0] and limit_only.first_run_sql[0].endswith("LIMIT 30")
    assert "run cap: 75 rows per run" in "\n".join(both.lines())


def test_explain_writes_nothing_anywhere(mysql_db, pg_db, make_config_dir) -> None:
    schema = "explain_untouched"
    h = Harness(make_config_dir(target_schema=schema), mysql_db, pg_db)
    create_orders(h, "quiet", 20)
    h.set_tables({f"{h.mysql.name}.quiet": hybrid()})
    explained = explain(h, "quiet")
    assert explained.target_state.startswith("missing")
    assert any(s.startswith(f'CREATE TABLE IF NOT EXISTS "{schema}"."quiet"') for s in explained.load_sql)
    assert staged_files(h) == []
    assert h.pg.query("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)) == []
    assert h.mysql.query("SELECT COUNT(*) FROM quiet") == [(20,)]


def test_explain_after_a_sync_leaves_staging_target_and_ledger_as_they_were(harness: Harness) -> None:
    h = harness
    create_orders(h, "after", 15)
    h.set_tables({f"{h.mysql.name}.after": hybrid()})
    h.sync("after")
    files, ledger = staged_files(h), h.pg.query("SELECT batch_id FROM public._sync_load_ledger ORDER BY batch_id")
    target = h.pg.query(f"SELECT * FROM {h.target('after')} ORDER BY id")
    h.mysql.execute("UPDATE after SET updated_at = '2025-09-01' WHERE id = 1")  # pending work must stay pending

    explained = explain(h, "after", h.watermarks["after"])
    assert explained.target_state == "exists"
    assert staged_files(h) == files
    assert h.pg.query("SELECT batch_id FROM public._sync_load_ledger ORDER BY batch_id") == ledger
    assert h.pg.query(f"SELECT * FROM {h.target('after')} ORDER BY id") == target
    assert h.sync("after").extract.rows >= 1  # explain moved no watermark: the change is still read


def test_a_table_without_a_key_probes_the_page_boundary_then_reads_whole_groups(harness: Harness) -> None:
    h = harness
    h.mysql.execute("DROP TABLE IF EXISTS events")
    h.mysql.execute("CREATE TABLE events (ts DATETIME(6), payload VARCHAR(20), KEY (ts))")
    h.mysql.executemany(
        "INSERT INTO events VALUES (%s, %s)", [(dt.datetime(2025, 1, 1, 0, 0, i // 7), f"p{i}") for i in range(40)]
    )
    h.set_tables(
        {f"{h.mysql.name}.events": {"cdc_strategy": "timestamp_only", "cdc_timestamp_column": "ts"}},
        processing={"batch_size": 5},
    )
    explained = explain(h, "events")
    assert explained.write_mode == "append" and explained.primary_key == ()
    probe, page = explained.first_run_sql
    assert probe.endswith("LIMIT 1 OFFSET 4")
    assert "NOT (`ts` > '2025-01-01 00:00:00.000000')" in page  # the whole group of 7 equal ts, not 5 rows
    assert len(h.mysql.query(page)) == 7
    assert not any("DELETE FROM" in s for s in explained.load_sql)  # appended: no merge
    # A new target: the batch is COPYed straight into it (PostgreSQL; no key to dedup on).
    assert any(s.startswith('COPY "public"."events" (') for s in explained.load_sql)


def test_columns_show_warehouse_names_and_types_with_renames(harness: Harness) -> None:
    h = harness
    h.mysql.execute("DROP TABLE IF EXISTS odd")
    h.mysql.execute(
        "CREATE TABLE odd (id INT UNSIGNED PRIMARY KEY, `1st_value` DECIMAL(40,2), `Mixed` VARCHAR(10), "
        "flag TINYINT(1), changed TIMESTAMP(3) NULL)"
    )
    h.set_tables({f"{h.mysql.name}.odd": {"cdc_strategy": "full_sync"}})
    explained = explain(h, "odd")
    columns = {c.source: (c.mysql_type, c.warehouse, c.warehouse_type) for c in explained.columns}
    assert columns["id"] == ("int(10) unsigned", "id", "BIGINT")
    assert columns["1st_value"] == ("decimal(40,2)", "col_1st_value", "VARCHAR(42)")
    assert columns["Mixed"][1:] == ("mixed", "VARCHAR(10)")
    assert columns["flag"][2] == "SMALLINT" and columns["changed"][2] == "TIMESTAMPTZ"
    assert explained.renamed_columns == {"1st_value": "col_1st_value", "Mixed": "mixed"}
    text = "\n".join(explained.lines())
    assert "1st_value" in text and "col_1st_value" in text and "renamed" in text
    # full_sync replace: every run reads the whole table and swaps it in
    assert explained.write_mode == "replace" and explained.incremental_sql == explained.first_run_sql
    # Replaced in place (grants, ownership and dependent views survive), never swapped by rename.
    assert not any("RENAME" in s for s in explained.load_sql)


def test_a_custom_query_that_is_not_a_select_is_refused_before_it_reaches_the_source(harness: Harness) -> None:
    h = harness
    create_orders(h, "victim", 3)
    h.set_tables({f"{h.mysql.name}.victim": hybrid(cdc_strategy="custom_sql", custom_query="DELETE FROM {table_name}")})
    with pytest.raises(PlanError, match="custom_query must be a SELECT statement"):
        explain(h, "victim")
    assert h.mysql.query("SELECT COUNT(*) FROM victim") == [(3,)]


def test_a_missing_cdc_column_is_named(harness: Harness) -> None:
    h = harness
    create_orders(h, "nocol", 3)
    h.set_tables({f"{h.mysql.name}.nocol": hybrid(cdc_timestamp_column="modified_on")})
    with pytest.raises(PlanError, match="`modified_on` is not a column"):
        explain(h, "nocol")


def test_a_redshift_target_gets_copy_from_the_manifest_with_the_role_and_no_secret(
    mysql_db, pg_db, make_config_dir
) -> None:
    h = Harness(make_config_dir(staging="s3"), mysql_db, pg_db)  # Redshift COPYs from S3
    create_orders(h, "rs", 3)
    document = yaml.safe_load(h.config.connections_file.read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens: the cluster is not reachable from here
    document["connections"]["targets"]["dw"].update(
        {"type": "redshift", "port": closed, "password": "Never-Printed-1", "iam_role": "arn:aws:iam::1:role/copy"}
    )
    h.config.write("connections.yml", document)
    h.set_tables({f"{h.mysql.name}.rs": hybrid()})
    explained = explain(h, "rs")
    assert explained.dialect == "redshift" and explained.target_state.startswith("not checked")
    (copy,) = [s for s in explained.load_sql if s.startswith("COPY")]
    assert "IAM_ROLE 'arn:aws:iam::1:role/copy' FORMAT AS PARQUET MANIFEST" in copy
    assert f"FROM 's3://{h.config.staging_location}/p/{h.mysql.name}/rs/<batch-id>/_manifest-copy.json'" in copy
    assert any('"note" VARCHAR(65535)' in s for s in explained.load_sql)  # TEXT: Redshift VARCHAR in bytes
    order = [s.split(" ")[0] for s in explained.load_sql if not s.startswith(("--", " ", ")"))]
    # The stage is filled and committed before the target is created and locked (LOCK needs the table).
    assert order.index("COPY") < order.index("COMMIT") < order.index("LOCK")
    assert explained.load_sql.index(next(s for s in explained.load_sql if s.startswith("CREATE TABLE IF"))) < (
        explained.load_sql.index('LOCK "public"."rs"')
    )
    assert not any("pg_advisory" in s or "_sync_platform_schema" in s for s in explained.load_sql)
    assert "Never-Printed-1" not in "\n".join(explained.lines())
