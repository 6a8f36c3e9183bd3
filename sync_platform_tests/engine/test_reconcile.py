"""Reconcile end to end: MariaDB → PostgreSQL, differences made behind the sync's back, found and repaired.

Every test changes the target or the source in a way no incremental sync can see (a delete, an
update that keeps the cursor, a row lost from the target), then proves that reconcile reports
exactly those rows and that ``repair`` makes the target equal to the source again.
"""

from __future__ import annotations

import datetime as dt

import pytest

from sync_platform.engine.mysql_sql import quote_mysql
from sync_platform.engine.reconcile import ReconcileOptions, ReconcileResult, reconcile_table
from sync_platform_tests.engine.harness import Harness, assert_same
from sync_platform_tests.engine.test_typemap import ALL_TYPES_DDL, BIG_JSON, EXPECTED_TYPES, ROWS

# Small ranges so that a few hundred rows already exercise the bisection.
SMALL = {"range_rows": 40, "factor": 4, "leaf_rows": 8}


@pytest.fixture
def harness(mysql_db, pg_db, make_config_dir, warehouse) -> Harness:
    return Harness(make_config_dir(), mysql_db, pg_db)


def reconcile(h: Harness, table: str, **options) -> ReconcileResult:
    with h.registry() as registry:
        return reconcile_table(registry, h.spec(table), ReconcileOptions(**{**SMALL, **options}))


def fresh(h: Harness, table: str) -> None:
    """No table of that name on either side (the databases are shared by the warehouse variants)."""
    h.mysql.execute(f"DROP TABLE IF EXISTS `{table}`")
    h.pg.execute(f"DROP TABLE IF EXISTS {h.target(table)}")
    ledger = f'"{h.config.target_schema}"._sync_load_ledger'
    if h.pg.query("SELECT to_regclass(%s)", (ledger,)) != [(None,)]:
        h.pg.execute(f"DELETE FROM {ledger} WHERE table_name LIKE %s", (f"%.{table}",))


def int_table(h: Harness, table: str, rows: int = 300, **config) -> None:
    fresh(h, table)
    h.mysql.execute(
        f"CREATE TABLE `{table}` (id INT PRIMARY KEY, name VARCHAR(40), amount DECIMAL(12,2), "
        "updated_at DATETIME(6) NOT NULL, KEY (updated_at))"
    )
    start = dt.datetime(2025, 1, 1)
    h.mysql.executemany(
        f"INSERT INTO `{table}` VALUES (%s, %s, %s, %s)",
        [(i, f"name-{i}", f"{i}.50", start + dt.timedelta(seconds=i)) for i in range(1, rows + 1)],
    )
    h.set_tables(
        {
            f"{h.mysql.name}.{table}": {
                "cdc_strategy": "hybrid",
                "cdc_timestamp_column": "updated_at",
                "cdc_id_column": "id",
                **config,
            }
        }
    )
    h.sync(table)


def break_table(h: Harness, table: str) -> None:
    """3 deleted at the source, 3 changed without moving the cursor, 3 lost from the target."""
    h.mysql.execute(f"DELETE FROM `{table}` WHERE id IN (5, 150, 299)")
    h.mysql.execute(f"UPDATE `{table}` SET name = 'drifted' WHERE id IN (7, 77, 200)")
    h.pg.execute(f"DELETE FROM {h.target(table)} WHERE id IN (1, 123, 300)")


COLUMNS = ["id", "name", "amount", "updated_at"]


def test_an_identical_table_reconciles_with_no_differences(harness: Harness) -> None:
    int_table(harness, "same")
    result = reconcile(harness, "same")
    assert (result.missing, result.extra, result.changed) == (0, 0, 0)
    assert result.source_rows == result.target_rows == 300
    assert result.exact


def test_deletes_drift_and_lost_rows_are_found_and_repaired(harness: Harness) -> None:
    int_table(harness, "broken", deletes="hard", repair=True)
    break_table(harness, "broken")
    result = reconcile(harness, "broken")
    assert sorted(result.samples["extra"]) == ["150", "299", "5"]
    assert (result.missing, result.extra, result.changed) == (3, 3, 3)
    assert result.rows_merged == 6 and result.rows_deleted == 3
    assert_same(harness, "broken", COLUMNS, "id")
    again = reconcile(harness, "broken")
    assert again.differences == 0


def test_target_rows_outside_the_source_key_span_and_sparse_keys_are_found(harness: Harness) -> None:
    """Integer keys are cut by arithmetic over the source's MIN..MAX: the edge ranges stay open."""
    int_table(harness, "edges", deletes="hard")
    harness.mysql.execute("DELETE FROM `edges` WHERE id <= 2 OR id >= 298")  # below and above what remains
    result = reconcile(harness, "edges")
    assert sorted(result.samples["extra"], key=int) == ["1", "2", "298", "299", "300"]
    assert result.rows_deleted == 5 and reconcile(harness, "edges").differences == 0
    # Keys far apart (more than 16 key values per row) are walked instead; differences are found the same.
    harness.mysql.execute("UPDATE `edges` SET id = id * 1000 WHERE id > 250")
    harness.sync("edges")
    harness.mysql.execute("UPDATE `edges` SET name = 'drifted' WHERE id = 260000")
    harness.pg.execute(f"DELETE FROM {harness.target('edges')} WHERE id IN (3, 297000)")
    found = reconcile(harness, "edges", repair=True)
    assert (found.missing, found.changed) == (2, 1) and found.ranges_scanned > 1
    assert_same(harness, "edges", COLUMNS, "id")


def test_report_mode_changes_nothing_and_says_what_remains(harness: Harness) -> None:
    int_table(harness, "reported")  # defaults: deletes report, repair false
    break_table(harness, "reported")
    before = harness.pg.query(f"SELECT * FROM {harness.target('reported')} ORDER BY id")
    result = reconcile(harness, "reported")
    assert (result.missing, result.extra, result.changed) == (3, 3, 3)
    assert result.remaining == 9 and not result.exact
    assert (result.rows_merged, result.rows_deleted, result.rows_soft_deleted) == (0, 0, 0)
    assert harness.pg.query(f"SELECT * FROM {harness.target('reported')} ORDER BY id") == before


def test_soft_deletes_mark_rows_and_later_syncs_and_reconciles_see_them_as_gone(harness: Harness) -> None:
    int_table(harness, "soft", deletes="soft")
    harness.mysql.execute("DELETE FROM `soft` WHERE id IN (10, 20)")
    result = reconcile(harness, "soft")
    assert result.extra == 2 and result.rows_soft_deleted == 2 and result.exact
    marked = harness.pg.query(f'SELECT id FROM {harness.target("soft")} WHERE "_deleted_at" IS NOT NULL ORDER BY id')
    assert marked == [(10,), (20,)]
    assert reconcile(harness, "soft").differences == 0
    # A row inserted again at the source comes back unmarked through the normal sync.
    harness.mysql.execute("INSERT INTO `soft` VALUES (10, 'back', 1.00, NOW(6) - INTERVAL 10 SECOND)")
    run = harness.sync("soft")
    assert run.load is not None and not any("_deleted_at" in c for c in run.load.schema_changes)
    assert harness.pg.query(f'SELECT "_deleted_at" FROM {harness.target("soft")} WHERE id = 10') == [(None,)]
    assert reconcile(harness, "soft").differences == 0


def test_case_insensitive_string_keys_are_ranged_and_repaired_correctly(harness: Harness) -> None:
    table = "ci_keys"
    fresh(harness, table)
    harness.mysql.execute(
        f"CREATE TABLE `{table}` (code VARCHAR(20) COLLATE utf8mb4_general_ci PRIMARY KEY, qty INT, "
        "updated_at DATETIME(6) NOT NULL, KEY (updated_at))"
    )
    words = [f"{w}{i:03d}" for i in range(60) for w in ("alpha", "Bravo", "CHARLIE", "delta_", "Écho", "zulu")]
    harness.mysql.executemany(
        f"INSERT INTO `{table}` VALUES (%s, %s, '2025-01-01')", [(w, n) for n, w in enumerate(words)]
    )
    harness.set_tables(
        {
            f"{harness.mysql.name}.{table}": {
                "cdc_strategy": "hybrid",
                "cdc_timestamp_column": "updated_at",
                "cdc_id_column": "code",
                "deletes": "hard",
                "repair": True,
            }
        }
    )
    harness.sync(table)
    assert reconcile(harness, table).differences == 0
    harness.mysql.execute(f"DELETE FROM `{table}` WHERE code IN ('alpha007', 'Écho031', 'zulu059')")
    harness.mysql.execute(f"UPDATE `{table}` SET qty = -1 WHERE code IN ('Bravo010', 'delta_044')")
    harness.pg.execute(f"DELETE FROM {harness.target(table)} WHERE code IN ('CHARLIE000', 'Écho002')")
    result = reconcile(harness, table)
    assert (result.extra, result.changed, result.missing) == (3, 2, 2)
    assert sorted(result.samples["missing"]) == ["'CHARLIE000'", "'Écho002'"]
    # Each server orders these keys its own way: compare the rows as sets.
    source = set(harness.mysql.query(f"SELECT code, qty FROM `{table}`"))
    assert set(harness.pg.query(f"SELECT code, qty FROM {harness.target(table)}")) == source and len(source) == 357
    assert reconcile(harness, table).differences == 0


def test_composite_keys_are_ranged_and_repaired_correctly(harness: Harness) -> None:
    table = "composite"
    fresh(harness, table)
    harness.mysql.execute(
        f"CREATE TABLE `{table}` (region VARCHAR(8) NOT NULL, id INT NOT NULL, note VARCHAR(30), "
        "updated_at DATETIME(6) NOT NULL, PRIMARY KEY (region, id), KEY (updated_at))"
    )
    harness.mysql.executemany(
        f"INSERT INTO `{table}` VALUES (%s, %s, %s, '2025-01-01')",
        [(region, i, f"n{i}") for region in ("eu", "us", "apac") for i in range(100)],
    )
    harness.set_tables(
        {
            f"{harness.mysql.name}.{table}": {
                "cdc_strategy": "full_sync",
                "primary_key": ["region", "id"],
                "deletes": "hard",
                "repair": True,
            }
        }
    )
    harness.sync(table)
    assert reconcile(harness, table).differences == 0
    harness.mysql.execute(f"DELETE FROM `{table}` WHERE (region, id) IN (('eu', 3), ('us', 99))")
    harness.mysql.execute(f"UPDATE `{table}` SET note = NULL WHERE (region, id) IN (('apac', 50), ('eu', 0))")
    harness.pg.execute(f"DELETE FROM {harness.target(table)} WHERE region = 'us' AND id IN (0, 42)")
    result = reconcile(harness, table)
    assert (result.extra, result.changed, result.missing) == (2, 2, 2)
    rows = "SELECT region, id, note FROM {} ORDER BY region, id"
    assert reconcile(harness, table).differences == 0
    assert harness.pg.query(rows.format(harness.target(table))) == harness.mysql.query(rows.format(f"`{table}`"))


def test_a_table_without_a_key_is_compared_per_cursor_range_and_not_repaired(harness: Harness) -> None:
    table = "events"
    fresh(harness, table)
    harness.mysql.execute(f"CREATE TABLE `{table}` (seq INT NOT NULL, payload VARCHAR(20), KEY (seq))")
    harness.mysql.executemany(f"INSERT INTO `{table}` VALUES (%s, %s)", [(i, f"p{i}") for i in range(1, 201)])
    harness.set_tables({f"{harness.mysql.name}.{table}": {"cdc_strategy": "id_only", "cdc_id_column": "seq"}})
    harness.sync(table)
    same = reconcile(harness, table, repair=True)
    assert same.mode == "cursor ranges" and same.differences == 0 and same.exact
    harness.pg.execute(f"DELETE FROM {harness.target(table)} WHERE seq = 150")
    harness.mysql.execute(f"UPDATE `{table}` SET payload = 'changed' WHERE seq = 20")
    result = reconcile(harness, table, repair=True)
    assert result.differing_ranges == 2 and not result.exact
    assert result.rows_merged == 0
    assert harness.pg.query(f"SELECT COUNT(*) FROM {harness.target(table)}") == [(199,)]


def test_a_table_without_a_key_compares_the_rows_whose_cursor_is_null_as_one_more_range(harness: Harness) -> None:
    table = "null_cursor"
    fresh(harness, table)
    harness.mysql.execute(f"CREATE TABLE `{table}` (seq INT NULL, payload VARCHAR(20), KEY (seq))")
    rows = [(i if i % 10 else None, f"p{i}") for i in range(1, 201)]  # 20 rows without a cursor value
    harness.mysql.executemany(f"INSERT INTO `{table}` VALUES (%s, %s)", rows)
    harness.set_tables({f"{harness.mysql.name}.{table}": {"cdc_strategy": "id_only", "cdc_id_column": "seq"}})
    harness.sync(table)  # an id cursor never reads a NULL: those 20 rows stay behind
    behind = reconcile(harness, table)
    assert (behind.source_rows, behind.target_rows) == (200, 180)
    assert behind.differing_ranges == 1 and behind.samples["differing_ranges"] == ["seq IS NULL"]
    nulls = ", ".join(f"(NULL, 'p{i}')" for i in range(10, 201, 10))  # as a full load would have put them
    harness.pg.execute(f"INSERT INTO {harness.target(table)} (seq, payload) VALUES {nulls}")
    same = reconcile(harness, table)
    assert same.differences == 0 and (same.source_rows, same.target_rows) == (200, 200)
    harness.mysql.execute(f"UPDATE `{table}` SET payload = 'changed' WHERE payload = 'p10'")  # seq is NULL
    changed = reconcile(harness, table)
    assert changed.differing_ranges == 1 and changed.samples["differing_ranges"] == ["seq IS NULL"]


def test_datetime_fractions_with_trailing_zeros_compare_equal_and_a_microsecond_is_a_change(harness: Harness) -> None:
    """DATETIME's canonical text is PostgreSQL's (trailing fraction zeros dropped): MySQL trims to match."""
    table = "fractions"
    fresh(harness, table)
    harness.mysql.execute(f"CREATE TABLE `{table}` (id INT PRIMARY KEY, d6 DATETIME(6), d3 DATETIME(3), d0 DATETIME)")
    values = ["2024-05-06 07:08:09.500000", "2024-05-06 07:08:10.000000", "2024-05-06 07:08:10.000100"]
    rows = [(i, v, v[:23], v[:19]) for i, v in enumerate(values, start=1)] + [(4, None, None, None)]
    harness.mysql.executemany(f"INSERT INTO `{table}` VALUES (%s, %s, %s, %s)", rows)
    harness.set_tables({f"{harness.mysql.name}.{table}": {"cdc_strategy": "full_sync", "repair": False}})
    harness.sync(table)
    assert reconcile(harness, table).differences == 0
    harness.mysql.execute(f"UPDATE `{table}` SET d6 = '2024-05-06 07:08:10.000001' WHERE id = 2")
    harness.mysql.execute(f"UPDATE `{table}` SET d3 = '2024-05-06 07:08:09.510' WHERE id = 1")
    found = reconcile(harness, table)
    assert (found.changed, found.missing, found.extra) == (2, 0, 0)


def _all_types_table(h: Harness) -> None:
    h.pg.execute(f"DROP TABLE IF EXISTS {h.target('all_types')}")
    with h.mysql.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS `all_types`, `all_types_original`")
        cur.execute(ALL_TYPES_DDL)
        cur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,ALLOW_INVALID_DATES'")  # zero dates as they are
        for row in ROWS:
            if h.warehouse == "redshift" and row.get("js") == BIG_JSON:  # SUPER holds at most 65535 bytes
                row = {**row, "js": '{"big": false}'}
            names = list(row)
            values = [
                "ST_GeomFromText(%s)"
                if n in ("g", "geo")
                else "CAST(%s AS UNSIGNED)"
                if n.startswith("b") and n[1:].isdigit()
                else "%s"
                for n in names
            ]
            cur.execute(
                f"INSERT INTO `all_types` ({', '.join(quote_mysql(n) for n in names)}) VALUES ({', '.join(values)})",
                [row[n] for n in names],
            )
        cur.execute("CREATE TABLE `all_types_original` AS SELECT * FROM `all_types`")
    h.set_tables({f"{h.mysql.name}.all_types": {"cdc_strategy": "full_sync", "repair": True}})
    h.sync("all_types")


def test_every_type_of_the_type_map_compares_equal_after_a_sync_and_a_change_to_any_column_is_found(
    harness: Harness,
) -> None:
    """Same canonical text on both servers for every type; a change in any one column is a changed row.

    Row 5 is mostly NULL: giving one of its columns row 1's value changes exactly that column (JSON
    compares by presence, so NULL → a value is the change it can see).
    """
    _all_types_table(harness)
    same = reconcile(harness, "all_types")
    assert same.differences == 0, same.samples
    columns = [n for n in EXPECTED_TYPES if n != "id"]
    with harness.mysql.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
        for column in columns:
            q = quote_mysql(column)
            cur.execute(f"UPDATE `all_types` a JOIN `all_types` b ON b.id = 1 SET a.{q} = b.{q} WHERE a.id = 5")
            found = reconcile(harness, "all_types", repair=False)
            cur.execute(
                f"UPDATE `all_types` a JOIN `all_types_original` o ON o.id = a.id SET a.{q} = o.{q} WHERE a.id = 5"
            )
            assert (found.changed, found.missing, found.extra) == (1, 0, 0), f"a change to `{column}` went unseen"
    # Repair brings every type back exactly (row 2 holds the minima and awkward values).
    harness.pg.execute(f"DELETE FROM {harness.target('all_types')} WHERE id IN (1, 2)")
    repaired = reconcile(harness, "all_types")
    assert repaired.missing == 2 and repaired.rows_merged == 2
    assert reconcile(harness, "all_types").differences == 0


def test_the_redshift_checksums_agree_with_mysql_through_the_redshift_standin(
    harness: Harness, make_config_dir
) -> None:
    """The Redshift dialect's checksum SQL (STRTOL, SHA2, MD5, TO_HEX, no bit casts) run by the stand-in.

    The tables are loaded by the PostgreSQL path into the database the stand-in fronts, then compared
    through a ``type: redshift`` connection (report mode: nothing is loaded through Redshift's COPY).
    """
    _all_types_table(harness)
    int_table(harness, "via_redshift")
    redshift = Harness(make_config_dir(warehouse="redshift"), harness.mysql, harness.pg)
    redshift.set_tables(
        {f"{harness.mysql.name}.{t}": {"cdc_strategy": "full_sync"} for t in ("all_types", "via_redshift")}
    )
    assert reconcile(redshift, "all_types").differences == 0
    assert reconcile(redshift, "via_redshift").differences == 0
    break_table(harness, "via_redshift")
    found = reconcile(redshift, "via_redshift")
    assert (found.missing, found.extra, found.changed) == (3, 3, 3)
    # Deletes need no COPY: marking them runs the Redshift statements (ALTER … ADD COLUMN, LOCK, UPDATE).
    redshift.set_tables({f"{harness.mysql.name}.via_redshift": {"cdc_strategy": "full_sync", "deletes": "soft"}})
    marked = reconcile(redshift, "via_redshift")
    assert marked.rows_soft_deleted == 3
    gone = harness.pg.query(f'SELECT id FROM {harness.target("via_redshift")} WHERE "_deleted_at" IS NOT NULL')
    assert sorted(gone) == [(5,), (150,), (299,)]
    assert reconcile(redshift, "via_redshift").extra == 0


def test_source_reads_are_paced_by_rows_per_second_and_sleep_between_ranges(harness: Harness) -> None:
    int_table(harness, "paced")
    by_rate = reconcile(harness, "paced", rows_per_second=400)  # 300 rows: at least 0.75 s
    assert by_rate.differences == 0 and by_rate.seconds >= 0.75
    by_sleep = reconcile(harness, "paced", sleep_seconds=0.1)  # 300 rows / 40 per range: 8 ranges
    assert by_sleep.ranges_scanned == 8 and by_sleep.seconds >= 0.8
