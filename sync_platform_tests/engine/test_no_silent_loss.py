"""No silent loss: every source row reaches the target, or the run fails loudly.

Each test reproduces a way real tables lost or doubled rows while a run still exited 0, against
the real MariaDB and the warehouse, and proves the fix by comparing the target with the source.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from sync_platform.engine.collation import sort_key
from sync_platform.engine.faults import FAULT_DIR_VARIABLE, PAUSE_VARIABLE
from sync_platform.engine.mysql_sql import quote_mysql, value_literal
from sync_platform.engine.pages import PageNotAdvancingError
from sync_platform.engine.reconcile.counts import duplicate_keys
from sync_platform.engine.shape import read_table_shape
from sync_platform.engine.strategies import NullCursorRowsError, PlanError
from sync_platform.engine.watermark import Watermark, later, moves_back
from sync_platform_tests.cli.test_config_and_connections_cli import run
from sync_platform_tests.engine.harness import PIPELINE, Harness, assert_same


@pytest.fixture
def harness(mysql_db, warehouse_db, make_config_dir) -> Harness:
    """The module's MariaDB and the ``warehouse`` parameter's target (PostgreSQL, the Redshift stand-in)."""
    return Harness(make_config_dir(postgres=warehouse_db), mysql_db, warehouse_db)


def hybrid(**extra):
    return {"cdc_strategy": "hybrid", "cdc_timestamp_column": "updated_at", **extra}


# --------------------------------------------------------------------------- case 1: keys of every type


def _keyed_table(h: Harness, table: str, key_type: str, keys: list, *, step: dt.timedelta | None = None) -> None:
    h.mysql.execute(f"DROP TABLE IF EXISTS `{table}`")
    h.mysql.execute(
        f"CREATE TABLE `{table}` (id {key_type} PRIMARY KEY, name VARCHAR(32), updated_at DATETIME(6) NOT NULL, "
        "KEY (updated_at))"
    )
    base = dt.datetime(2025, 1, 1)
    h.mysql.executemany(
        f"INSERT INTO `{table}` VALUES (%s, %s, %s)",
        [(k, f"row {i}", base + (step or dt.timedelta(0)) * i) for i, k in enumerate(keys)],
    )


def _sync_in_pages_then_update(h: Harness, table: str, keys: list) -> None:
    """A first run (key order, pages of 3), then updates sharing one timestamp (keyset on (ts, key))."""
    h.set_tables({f"{h.mysql.name}.{table}": hybrid(lookback=0)}, processing={"batch_size": 3})
    first = h.sync(table)
    assert first.extract.rows == len(keys)
    assert assert_same(h, table, ["id", "name", "updated_at"], "id") == len(keys)
    h.mysql.execute(f"UPDATE `{table}` SET name = 'changed', updated_at = '2025-06-01'")
    second = h.sync(table)
    assert second.extract.rows == len(keys)  # every key after every page edge, each once
    assert assert_same(h, table, ["id", "name", "updated_at"], "id") == len(keys)
    assert h.sync(table).extract.rows == 0


def test_binary_uuid_keys_all_arrive_and_paging_ends(harness: Harness) -> None:
    keys = sorted(uuid.UUID(int=(i * 0x0B3F_9D1C_5A7E_42D1 << 64) % (1 << 128) | i).bytes for i in range(1, 21))
    keys += [b"\x00" * 16, b"\xff" * 16, b"b'\\x00" + b"\x00" * 10, b"'" * 16, b"\\" * 16]
    assert any(k[0] > 0x62 for k in keys)
    _keyed_table(harness, "uuids", "BINARY(16)", keys)
    _sync_in_pages_then_update(harness, "uuids", keys)


def test_string_keys_with_any_characters_all_arrive(harness: Harness) -> None:
    keys = ["plain", "it's", "back\\slash", "tab\there", "😀 emoji", "\\", "'", '"', "%_", "trail\\"]
    _keyed_table(harness, "skeys", "VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", keys)
    _sync_in_pages_then_update(harness, "skeys", keys)


def test_decimal_date_and_time_keys_all_arrive(harness: Harness) -> None:
    decimals = [Decimal("0.0000000001"), Decimal("1E+19"), Decimal("-12345678901234567890.1234567890"), Decimal(0)]
    decimals += [Decimal("99999999999999999999.9999999999"), Decimal("0.1"), Decimal("0.1000000001")]
    _keyed_table(harness, "dkeys", "DECIMAL(30,10)", decimals)
    _sync_in_pages_then_update(harness, "dkeys", decimals)

    dates = [dt.date(1000, 1, 1), dt.date(1970, 1, 1), dt.date(2024, 2, 29), dt.date(9999, 12, 31), dt.date(2025, 1, 1)]
    _keyed_table(harness, "datekeys", "DATE", dates)
    _sync_in_pages_then_update(harness, "datekeys", dates)

    times = ["-838:59:59", "-00:00:01", "00:00:00", "12:30:00", "23:59:59", "24:00:00", "100:00:00", "838:59:59"]
    harness.mysql.execute("DROP TABLE IF EXISTS tkeys")
    harness.mysql.execute(
        "CREATE TABLE tkeys (id TIME PRIMARY KEY, name VARCHAR(32), updated_at DATETIME(6) NOT NULL, KEY (updated_at))"
    )
    harness.mysql.executemany("INSERT INTO tkeys VALUES (%s, 'r', '2025-01-01')", [(t,) for t in times])
    harness.set_tables({f"{harness.mysql.name}.tkeys": hybrid(lookback=0)}, processing={"batch_size": 3})
    assert harness.sync("tkeys").extract.rows == len(times)
    harness.mysql.execute("UPDATE tkeys SET name = 'changed', updated_at = '2025-06-01'")
    assert harness.sync("tkeys").extract.rows == len(times)
    target = {row[0]: row[1] for row in harness.pg.query(f"SELECT id, name FROM {harness.target('tkeys')}")}
    assert target == {t: "changed" for t in times}


def test_binary_keys_page_safely_in_a_full_sync_paginate_and_without_a_unique_key(harness: Harness) -> None:
    keys = [bytes([i * 37 % 256]) * 4 for i in range(1, 13)]
    _keyed_table(harness, "binpag", "VARBINARY(8)", keys)
    harness.set_tables(
        {f"{harness.mysql.name}.binpag": {"cdc_strategy": "full_sync", "full_sync_mode": "paginate"}},
        processing={"batch_size": 5},
    )
    harness.sync("binpag")
    assert assert_same(harness, "binpag", ["id", "name", "updated_at"], "id") == len(keys)

    harness.mysql.execute("DROP TABLE IF EXISTS binnokey")
    harness.mysql.execute("CREATE TABLE binnokey (tag VARBINARY(4), n INT, updated_at DATETIME NOT NULL)")
    harness.mysql.executemany(
        "INSERT INTO binnokey VALUES (%s, %s, '2025-01-01')", [(bytes([0x70 + i % 3]), i) for i in range(10)]
    )
    harness.set_tables(
        {f"{harness.mysql.name}.binnokey": {"cdc_strategy": "id_only", "cdc_id_column": "tag"}},
        processing={"batch_size": 3},
    )
    assert harness.sync("binnokey").extract.rows == 10
    assert harness.pg.query(f"SELECT count(*) FROM {harness.target('binnokey')}")[0][0] == 10


def test_a_page_that_does_not_advance_stops_the_run_with_an_error(harness: Harness) -> None:
    """A custom query that ignores its watermark placeholders returns the same page forever."""
    _keyed_table(harness, "stuck", "INT", list(range(1, 11)), step=dt.timedelta(seconds=1))
    query = "SELECT id, name, updated_at FROM {table_name} ORDER BY updated_at, id LIMIT {limit}"
    harness.set_tables(
        {
            f"{harness.mysql.name}.stuck": {
                "cdc_strategy": "custom_sql",
                "cdc_timestamp_column": "updated_at",
                "cdc_id_column": "id",
                "custom_query": query,
            }
        },
        processing={"batch_size": 4},
    )
    with pytest.raises(PageNotAdvancingError) as raised:
        harness.sync("stuck")
    message = str(raised.value)
    assert "stuck" in message and "did not advance" in message and "{last_timestamp}" in message


@pytest.mark.parametrize("sql_mode", ["", "NO_BACKSLASH_ESCAPES,ANSI_QUOTES"])
def test_every_literal_reads_back_as_exactly_its_value(mysql_db, sql_mode: str) -> None:
    """The one literal path, checked by the server itself, in the default and the strictest sql_mode."""
    texts = [b"\x00\xff'\\b'\x62\x63", b"", "it's", "back\\slash\\", "nul\0inside", "😀 \t\n", '"q"']
    as_text = {  # the value, and its text as the server renders the literal
        Decimal("1E+19"): "10000000000000000000",  # a DOUBLE would read 1e19
        Decimal("-0.0000000001"): "-0.0000000001",
        dt.date(1000, 1, 1): "1000-01-01",
        dt.datetime(2024, 2, 29, 23, 59, 59, 999999): "2024-02-29 23:59:59.999999",
        dt.timedelta(hours=-838, minutes=-59, seconds=-59): "-838:59:59.000000",
        dt.time(12, 30, 0, 5): "12:30:00.000005",
        2**63 - 1: "9223372036854775807",
        1.5e-300: "1.5e-300",
    }
    with mysql_db.connect() as conn, conn.cursor() as cursor:
        cursor.execute(f"SET SESSION sql_mode = '{sql_mode}'")
        for value in texts:
            raw = value if isinstance(value, bytes) else value.encode("utf-8")
            cursor.execute(f"SELECT HEX({value_literal(value)})")
            assert cursor.fetchone()[0] == raw.hex().upper(), f"{value!r}: {value_literal(value)}"
        for value, text in as_text.items():
            cursor.execute(f"SELECT CAST({value_literal(value)} AS CHAR)")
            assert cursor.fetchone()[0] == text, f"{value!r}: {value_literal(value)}"
    with pytest.raises(ValueError, match="NUL"):
        quote_mysql("a\0b")


# --------------------------------------------------------------------------- case 9: NULL cursors


def _orders_with_null_cursors(h: Harness, table: str, *, indexed: bool = True) -> None:
    h.mysql.execute(f"DROP TABLE IF EXISTS `{table}`")
    index = ", KEY (updated_at)" if indexed else ""
    h.mysql.execute(
        f"CREATE TABLE `{table}` (id INT PRIMARY KEY, name VARCHAR(32), updated_at DATETIME(6) NULL{index})"
    )
    h.mysql.executemany(
        f"INSERT INTO `{table}` VALUES (%s, %s, %s)",
        [
            (i, f"row {i}", None if i % 4 == 0 else dt.datetime(2025, 1, 1) + dt.timedelta(minutes=i))
            for i in range(1, 21)
        ],
    )


def test_null_cursor_rows_load_by_default_and_are_merged_every_run(harness: Harness) -> None:
    _orders_with_null_cursors(harness, "nullc")
    harness.set_tables({f"{harness.mysql.name}.nullc": hybrid(lookback=0)}, processing={"batch_size": 2})
    first = harness.sync("nullc")
    assert first.extract.null_cursor_rows == 5 and first.extract.null_cursor_loaded == 5
    assert first.extract.null_cursor_policy == "load" and not first.extract.warnings
    assert assert_same(harness, "nullc", ["id", "name", "updated_at"], "id") == 20
    # A change to a NULL-cursor row (its cursor still NULL) arrives on the next run, merged by key.
    harness.mysql.execute("UPDATE nullc SET name = 'changed while NULL' WHERE id = 8")
    harness.mysql.execute("INSERT INTO nullc VALUES (100, 'new, NULL cursor', NULL)")
    second = harness.sync("nullc")
    assert second.extract.null_cursor_loaded == 6
    assert assert_same(harness, "nullc", ["id", "name", "updated_at"], "id") == 21


def test_null_cursor_policies_report_and_fail_and_the_unindexed_warning(harness: Harness) -> None:
    _orders_with_null_cursors(harness, "nullu", indexed=False)
    harness.set_tables({f"{harness.mysql.name}.nullu": hybrid(lookback=0)})
    loaded = harness.sync("nullu")
    assert loaded.extract.null_cursor_loaded == 5
    (warning,) = loaded.extract.warnings
    assert "not indexed" in warning and "ADD INDEX (updated_at)" in warning

    _orders_with_null_cursors(harness, "nullr")
    harness.set_tables({f"{harness.mysql.name}.nullr": hybrid(lookback=0, null_cursor="report")})
    reported = harness.sync("nullr")
    assert reported.extract.null_cursor_rows == 5 and reported.extract.null_cursor_loaded == 0
    assert harness.pg.query(f"SELECT count(*) FROM {harness.target('nullr')}")[0][0] == 15

    harness.set_tables({f"{harness.mysql.name}.nullr": hybrid(lookback=0, null_cursor="fail")})
    with pytest.raises(NullCursorRowsError, match=r"5 rows have a NULL updated_at.*null_cursor: fail"):
        harness.sync("nullr")


def test_null_cursor_rows_show_in_the_summary_the_json_a_check_and_validate_counts(
    harness: Harness, tmp_path: Path
) -> None:
    _orders_with_null_cursors(harness, "nullcli")
    table = f"{harness.mysql.name}.nullcli"
    harness.set_tables({table: hybrid(lookback=0)})
    home = tmp_path / "dagster_home"
    home.mkdir()

    def cli(*args: str):
        return run("--config-dir", str(harness.config.path), *args, env={"DAGSTER_HOME": str(home)})

    report = tmp_path / "result.json"
    synced = cli("sync", "pipeline", "-p", PIPELINE, "-t", table, "--json-output", str(report))
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "NULL cursor" in synced.stdout and "5 (loaded 5)" in synced.stdout
    assert "null_cursor_rows: ok" in synced.stdout
    result = json.loads(report.read_text())["table_results"][table]
    assert result["null_cursor_rows"] == 5 and result["null_cursor_rows_loaded"] == 5
    assert result["null_cursor_policy"] == "load" and result["checks"]["null_cursor_rows"] is True
    assert assert_same(harness, "nullcli", ["id", "name", "updated_at"], "id") == 20
    counted = cli("watermark-count", "validate-counts", "-t", table, "-p", PIPELINE)
    assert counted.returncode == 0, counted.stdout + counted.stderr
    assert "5 at the source, 5 in the target (null_cursor: load" in counted.stdout

    # report: the rows stay out, and every place says so; validate-counts exits 4 (data).
    harness.set_tables({table: hybrid(lookback=0, null_cursor="report")})
    harness.mysql.execute("INSERT INTO nullcli VALUES (200, 'left out', NULL)")
    reported = cli("sync", "pipeline", "-p", PIPELINE, "-t", table, "--json-output", str(report))
    assert "6 (NOT loaded: report)" in reported.stdout, reported.stdout
    assert "null_cursor_rows: FAILED" in reported.stdout
    assert json.loads(report.read_text())["table_results"][table]["null_cursor_rows"] == 6
    counted = cli("watermark-count", "validate-counts", "-t", table, "-p", PIPELINE)
    assert counted.returncode == 4, counted.stdout + counted.stderr
    assert "6 rows with a NULL updated_at are not loaded (null_cursor: report)" in counted.stdout + counted.stderr


# --------------------------------------------------------------------------- case 10: a failed check fails the run


def _cli_paused_at_checks(
    harness: Harness, home: Path, table: str, report: Path, tamper
) -> subprocess.CompletedProcess:
    """`sync pipeline -t TABLE` whose run pauses after its load, right before its checks; ``tamper()``
    changes the target there (rows lost or doubled between the load and the check), then the run goes on."""
    faults = home.parent / "faults"
    faults.mkdir(exist_ok=True)
    for old in faults.iterdir():
        old.unlink()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        PAUSE_VARIABLE: "checks.start:1",
        FAULT_DIR_VARIABLE: str(faults),
    }
    args = ["--config-dir", str(harness.config.path), "sync", "pipeline", "-p", PIPELINE, "-t", table]
    child = subprocess.Popen(
        [sys.executable, "-m", "sync_platform.cli.main", *args, "--json-output", str(report)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not (faults / "checks.start.reached").exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the run never reached its checks"
            time.sleep(0.05)
        tamper()
    finally:
        (faults / "checks.start.release").write_text("")
    stdout, stderr = child.communicate(timeout=120)
    return subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)


def test_a_row_lost_or_doubled_in_the_window_the_run_loaded_fails_the_run_with_exit_4(
    harness: Harness, tmp_path: Path
) -> None:
    _keyed_table(harness, "checked", "INT", list(range(1, 31)), step=dt.timedelta(seconds=1))
    table = f"{harness.mysql.name}.checked"
    target = harness.target("checked")
    harness.set_tables({table: hybrid(lookback=0)})
    home = tmp_path / "dagster_home"
    home.mkdir()
    report = tmp_path / "result.json"

    def cli(*args: str):
        return run("--config-dir", str(harness.config.path), *args, env={"DAGSTER_HOME": str(home)})

    def sync():
        return cli("sync", "pipeline", "-p", PIPELINE, "-t", table, "--json-output", str(report))

    def add(ids: range, day: dt.datetime) -> None:
        harness.mysql.executemany(
            "INSERT INTO checked VALUES (%s, %s, %s)", [(i, f"row {i}", day + dt.timedelta(seconds=i)) for i in ids]
        )

    assert sync().returncode == 0
    # New rows arrive; one of them vanishes from the warehouse between this run's load and its checks.
    add(range(31, 36), dt.datetime(2025, 2, 1))
    missing = _cli_paused_at_checks(
        harness, home, table, report, lambda: harness.pg.execute(f"DELETE FROM {target} WHERE id = 33")
    )
    assert missing.returncode == 4, missing.stdout + missing.stderr
    assert "check row_count_matches_source failed: 1 rows missing from the target" in missing.stderr
    document = json.loads(report.read_text())
    result = document["table_results"][table]
    assert document["status"] == "failed" and result["status"] == "failed"
    assert "row_count_matches_source" in result["error_message"]
    details = result["check_details"]["row_count_matches_source"]
    assert (details["source_rows"], details["target_rows"], details["passed"]) == (5, 4, False)

    # A run with nothing new covers no rows, so it passes; the full count finds the row still missing.
    quiet = sync()
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    quiet_checks = json.loads(report.read_text())["table_results"][table]["check_details"]
    assert quiet_checks["row_count_matches_source"]["source_rows"] == 0
    counted = cli("watermark-count", "validate-counts", "-t", table, "-p", PIPELINE)
    assert counted.returncode == 4, counted.stdout + counted.stderr
    assert "1 rows of the window are missing from the target" in counted.stdout + counted.stderr
    harness.mysql.execute("UPDATE checked SET updated_at = '2025-03-01' WHERE id = 33")
    assert sync().returncode == 0  # the next change of the row brings it back
    assert assert_same(harness, "checked", ["id", "name", "updated_at"], "id") == 35

    # A key twice in the target (a table without a declared key, as Redshift's are): once inside the window,
    # and once as an old version left beside the row this run merged (its cursor below the window).
    harness.pg.execute(f"ALTER TABLE {target} DROP CONSTRAINT IF EXISTS checked_pkey")
    add(range(36, 41), dt.datetime(2025, 4, 1))
    harness.mysql.execute("UPDATE checked SET updated_at = '2025-03-02', name = 'moved' WHERE id = 5")

    def double() -> None:
        harness.pg.execute(f"INSERT INTO {target} SELECT * FROM {target} WHERE id = 38")
        harness.pg.execute(f"INSERT INTO {target} (id, name, updated_at) VALUES (5, 'row 4', '2025-01-01 00:00:04')")

    doubled = _cli_paused_at_checks(harness, home, table, report, double)
    assert doubled.returncode == 4, doubled.stdout + doubled.stderr
    assert "check primary_key_unique failed: 2 values of (id) occur more than once" in doubled.stderr, doubled.stderr
    assert json.loads(report.read_text())["status"] == "failed"


def test_the_per_run_checks_count_the_rows_the_run_loaded_not_the_table(harness: Harness, tmp_path: Path) -> None:
    _keyed_table(harness, "bounded", "INT", list(range(1, 5001)), step=dt.timedelta(seconds=1))
    table = f"{harness.mysql.name}.bounded"
    harness.set_tables({table: hybrid(lookback=0)})
    home = tmp_path / "dagster_home"
    home.mkdir()
    report = tmp_path / "result.json"

    def cli(*args: str):
        return run("--config-dir", str(harness.config.path), *args, env={"DAGSTER_HOME": str(home)})

    def checks_of_a_sync() -> dict:
        synced = cli("sync", "pipeline", "-p", PIPELINE, "-t", table, "--json-output", str(report))
        assert synced.returncode == 0, synced.stdout + synced.stderr
        result = json.loads(report.read_text())["table_results"][table]
        assert result["checks_seconds"] >= 0
        return result["check_details"]

    first = checks_of_a_sync()  # the first load touched every row
    assert first["row_count_matches_source"]["source_rows"] == 5000
    # Three rows change: the checks count those three on each side, not the 5,000 rows of the table.
    harness.mysql.execute("UPDATE bounded SET name = 'changed', updated_at = '2026-01-01' WHERE id IN (7, 2500, 4999)")
    changed = checks_of_a_sync()
    rows = changed["row_count_matches_source"]
    assert (rows["source_rows"], rows["target_rows"], rows["scope"]) == (3, 3, "this run's window")
    assert "2026-01-01" in rows["window"] and "seconds" in rows
    # PostgreSQL enforces the key with the target's primary key: nothing to read. Redshift does not: the
    # keys of the window's rows are counted.
    unique = changed["primary_key_unique"]
    assert unique["passed"] and unique["scope"] == (
        "unique index" if harness.warehouse == "postgres" else rows["scope"]
    )
    # Nothing new: nothing to count.
    quiet = checks_of_a_sync()
    assert quiet["row_count_matches_source"]["source_rows"] == 0
    assert quiet["row_count_matches_source"]["window"].startswith("empty")
    # None of these syncs ran the reconcile job's whole-table checks (they would read every row each time).
    instance = dg.DagsterInstance.from_config(str(home))
    warehouse_key = next(k for k in instance.get_asset_keys() if k.path[0] == "warehouse")
    for name in ("source_equals_target", "row_count_matches_source_full", "primary_key_unique_full"):
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(warehouse_key, name), limit=1
        )
        assert history == [], name
    ran = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(warehouse_key, "row_count_matches_source"), limit=10
    )
    assert len(ran) == 3
    # The full count still reads the whole synced window.
    counted = cli("watermark-count", "validate-counts", "-t", table, "-p", PIPELINE)
    assert counted.returncode == 0, counted.stdout + counted.stderr
    assert "source rows       5,000" in counted.stdout and "target rows       5,000" in counted.stdout


# --------------------------------------------------------------------------- case 7: replace never swaps in a part


def test_a_capped_full_sync_replace_still_replaces_with_the_whole_table(harness: Harness) -> None:
    _keyed_table(harness, "snap", "INT", list(range(1, 11)))
    harness.set_tables({f"{harness.mysql.name}.snap": {"cdc_strategy": "full_sync"}}, processing={"batch_size": 2})
    assert harness.sync("snap").extract.rows == 10
    capped = harness.sync("snap", limit=3)
    assert capped.extract.rows == 10 and not capped.extract.capped
    assert any("do not apply to a replace" in w for w in capped.extract.warnings)
    assert assert_same(harness, "snap", ["id", "name", "updated_at"], "id") == 10


# --------------------------------------------------------------------------- case 8: zero dates as cursor values


@pytest.mark.parametrize("cursor_type", ["TIMESTAMP(6)", "DATETIME(6)"])
def test_zero_cursor_values_are_the_lowest_position_and_every_row_arrives(harness: Harness, cursor_type: str) -> None:
    table = f"zero_{cursor_type[:4].lower()}"
    harness.mysql.execute(f"DROP TABLE IF EXISTS `{table}`")
    harness.mysql.execute(
        f"CREATE TABLE `{table}` (id INT PRIMARY KEY, name VARCHAR(16), updated_at {cursor_type} NOT NULL "
        "DEFAULT '2025-01-01', KEY (updated_at))"
    )
    with harness.mysql.connect() as conn, conn.cursor() as cursor:
        cursor.execute("SET SESSION sql_mode = ''")  # as an old application wrote them
        cursor.executemany(
            f"INSERT INTO `{table}` VALUES (%s, %s, %s)",
            [(i, f"r{i}", "0000-00-00 00:00:00" if i <= 5 else f"2025-01-01 00:00:{i:02d}") for i in range(1, 13)],
        )
        conn.commit()
    harness.set_tables({f"{harness.mysql.name}.{table}": hybrid(lookback=0)}, processing={"batch_size": 2})
    total = 0
    for _ in range(10):  # capped runs page on (updated_at, id) from the start, across the zero values
        run_ = harness.sync(table, limit=2)
        total += run_.extract.rows
        if not run_.extract.capped:
            break
    assert total == 12
    ids = [row[0] for row in harness.pg.query(f"SELECT id FROM {harness.target(table)} ORDER BY id")]
    assert ids == list(range(1, 13))
    assert harness.pg.query(f"SELECT count(*) FROM {harness.target(table)} WHERE updated_at IS NULL")[0][0] == 5
    harness.mysql.execute(f"UPDATE `{table}` SET name = 'later', updated_at = '2025-06-01' WHERE id = 2")
    assert harness.sync(table).extract.rows == 1


# --------------------------------------------------------------------------- case 6: target lost, watermark kept


def test_a_dropped_or_emptied_target_is_read_again_from_the_beginning(harness: Harness) -> None:
    _keyed_table(harness, "lost", "INT", list(range(1, 11)), step=dt.timedelta(minutes=1))
    harness.set_tables({f"{harness.mysql.name}.lost": hybrid(lookback=0)}, processing={"batch_size": 4})
    assert harness.sync("lost").extract.rows == 10
    harness.mysql.execute("UPDATE lost SET name = 'changed', updated_at = '2025-06-01' WHERE id IN (2, 3)")
    # The advice of an incompatible-change error: drop the target table and run the sync again.
    harness.pg.execute(f"DROP TABLE {harness.target('lost')}")
    again = harness.sync("lost")
    assert again.extract.rows == 10
    assert any("does not exist although the watermark" in w for w in again.extract.warnings)
    assert assert_same(harness, "lost", ["id", "name", "updated_at"], "id") == 10

    harness.pg.execute(f"TRUNCATE {harness.target('lost')}")
    emptied = harness.sync("lost", limit=4)  # a capped restart, then the rest: no batch from before counts
    assert emptied.extract.rows == 4 and any("is empty although" in w for w in emptied.extract.warnings)
    while harness.sync("lost", limit=4).extract.capped:
        pass
    assert assert_same(harness, "lost", ["id", "name", "updated_at"], "id") == 10
    assert harness.sync("lost").extract.rows == 0


@pytest.mark.parametrize("runs", ["one sync", "extract, then load"])
def test_a_new_warehouse_is_filled_by_one_re_read_not_by_replaying_the_batches_staged_before(
    harness: Harness, runs: str
) -> None:
    """Without target and ledger (a new warehouse), the batches still staged would each be merged before
    the re-read from the beginning overwrites them, and bring back rows deleted at the source since: they
    are superseded, in the ledger, and never loaded — also when a load run of its own finds the re-read's
    batches (``--backup-only`` then ``--redshift-only``)."""
    table = "rehomed" if runs == "one sync" else "rehomed_split"
    _keyed_table(harness, table, "INT", list(range(1, 31)), step=dt.timedelta(minutes=1))
    harness.set_tables({f"{harness.mysql.name}.{table}": hybrid(lookback=0)}, processing={"batch_size": 8})
    first = harness.sync(table)
    harness.mysql.execute(f"UPDATE {table} SET name = 'changed', updated_at = '2025-06-01' WHERE id IN (3, 4)")
    second = harness.sync(table)
    staged_before = {*first.load.batches, *second.load.batches}
    assert first.load.rows == 30 and second.load.rows == 2 and len(staged_before) >= 2
    harness.pg.execute(f"DROP TABLE {harness.target(table)}")
    harness.pg.execute(f'DROP TABLE IF EXISTS "{harness.config.target_schema}"."_sync_load_ledger"')
    harness.mysql.execute(f"DELETE FROM {table} WHERE id = 30")  # gone at the source: the old batches still hold it

    if runs == "one sync":
        again = harness.sync(table, target_loaded=True)  # the orchestrator knows the table was loaded before
        extracted, loaded = again.extract, again.load
    else:
        extracted = harness.extract(table, target_loaded=True)
        loaded = harness.load(table)
    assert any("from the beginning" in w for w in extracted.warnings)
    assert extracted.rows == 29 and loaded.rows == 29  # the re-read only, no replay of the old batches
    assert staged_before <= set(loaded.skipped_batches)
    assert assert_same(harness, table, ["id", "name", "updated_at"], "id") == 29
    assert harness.load(table).rows == 0  # recorded as superseded: a later load does not pick them up


# --------------------------------------------------------------------------- case 3: epoch integer cursors


def test_epoch_millisecond_cursors_are_read_in_their_unit_and_a_wrong_unit_fails_clearly(harness: Harness) -> None:
    harness.mysql.execute("DROP TABLE IF EXISTS epochs")
    harness.mysql.execute(
        "CREATE TABLE epochs (id INT PRIMARY KEY, name VARCHAR(16), updated_ms BIGINT NOT NULL, KEY (updated_ms))"
    )
    (now_s,) = harness.mysql.query("SELECT UNIX_TIMESTAMP()")[0]
    base_ms = (int(now_s) - 3600) * 1000
    harness.mysql.executemany(
        "INSERT INTO epochs VALUES (%s, %s, %s)", [(i, f"r{i}", base_ms + i * 1000) for i in range(1, 21)]
    )
    harness.set_tables(
        {f"{harness.mysql.name}.epochs": hybrid(cdc_timestamp_column="updated_ms", lookback="10s")},
        processing={"batch_size": 6},
    )
    first = harness.sync("epochs")
    assert first.extract.rows == 20 and first.extract.ceiling == base_ms + 20_000
    assert assert_same(harness, "epochs", ["id", "name", "updated_ms"], "id") == 20
    harness.mysql.execute(f"UPDATE epochs SET name = 'changed', updated_ms = {base_ms + 60_000} WHERE id = 4")
    second = harness.sync("epochs")
    assert second.extract.rows >= 1  # the change, plus the 10 s lookback window re-read in milliseconds
    assert second.extract.rows < 20
    assert assert_same(harness, "epochs", ["id", "name", "updated_ms"], "id") == 20

    # Values that are no epoch at all (YYYYMMDDhhmmss as a number): no run could ever read them.
    harness.mysql.execute("DROP TABLE IF EXISTS stamps_num")
    harness.mysql.execute("CREATE TABLE stamps_num (id INT PRIMARY KEY, changed BIGINT NOT NULL)")
    harness.mysql.execute("INSERT INTO stamps_num VALUES (1, 20250101120000), (2, 20250102120000)")
    harness.set_tables({f"{harness.mysql.name}.stamps_num": hybrid(cdc_timestamp_column="changed")})
    with pytest.raises(PlanError, match=r"`changed` is read as epoch .*more than a day after the source's clock"):
        harness.sync("stamps_num")


# --------------------------------------------------------------------------- case 4: a column added with a DEFAULT


def test_a_source_column_added_with_a_default_reaches_every_existing_target_row(harness: Harness) -> None:
    _keyed_table(harness, "added", "INT", list(range(1, 11)), step=dt.timedelta(minutes=1))
    harness.set_tables({f"{harness.mysql.name}.added": hybrid(lookback=0)}, processing={"batch_size": 4})
    assert harness.sync("added").extract.rows == 10
    harness.mysql.execute("ALTER TABLE added ADD COLUMN state VARCHAR(10) NOT NULL DEFAULT 'active'")
    harness.mysql.execute("UPDATE added SET state = 'closed', updated_at = '2025-06-01' WHERE id IN (3, 4)")
    evolved = harness.sync("added")
    assert any("gained column(s) state" in w for w in evolved.extract.warnings)
    assert evolved.extract.rows == 10
    assert assert_same(harness, "added", ["id", "name", "updated_at", "state"], "id") == 10
    states = dict(harness.pg.query(f"SELECT state, count(*) FROM {harness.target('added')} GROUP BY state"))
    assert states == {"active": 8, "closed": 2}
    assert harness.sync("added").extract.rows == 0  # once the target has the column, runs are incremental again


# --------------------------------------------------------------------------- case 5: keys MySQL compares loosely


def _text_keyed(h: Harness, table: str, collation: str, keys: list[str]) -> None:
    h.mysql.execute(f"DROP TABLE IF EXISTS `{table}`")
    h.mysql.execute(
        f"CREATE TABLE `{table}` (code VARCHAR(8) CHARACTER SET utf8mb4 COLLATE {collation} PRIMARY KEY, "
        "name VARCHAR(16), updated_at DATETIME NOT NULL, KEY (updated_at))"
    )
    h.mysql.executemany(f"INSERT INTO `{table}` VALUES (%s, 'first', '2025-01-01')", [(k,) for k in keys])
    h.set_tables({f"{h.mysql.name}.{table}": hybrid(lookback=0)})


def _exactly_the_source(h: Harness, table: str) -> list[tuple]:
    """Target rows == source rows (compared as sets: MySQL and the warehouse order text differently)."""
    source = sorted(h.mysql.query(f"SELECT code, name FROM `{table}`"))
    target = sorted(h.pg.query(f"SELECT code, name FROM {h.target(table)}"))
    assert [tuple(r) for r in target] == [tuple(r) for r in source], f"target {target}, source {source}"
    return source


@pytest.mark.parametrize("collation", ["utf8mb4_general_ci", "utf8mb4_bin"])
def test_a_key_whose_case_or_trailing_spaces_change_replaces_its_row(harness: Harness, collation: str) -> None:
    """general_ci: 'abc' = 'ABC' = 'abc '; utf8mb4_bin is PAD SPACE too: 'abc' = 'abc '. The merge agrees."""
    table = f"keys_{collation.removeprefix('utf8mb4_')}"  # one target table per collation
    _text_keyed(harness, table, collation, ["abc", "xyz", "k"])
    assert harness.sync(table).extract.rows == 3
    changed = "ABC " if collation.endswith("_ci") else "abc "
    harness.mysql.execute(
        f"UPDATE {table} SET code = %s, name = 'second', updated_at = '2025-02-01' WHERE code = 'abc'", (changed,)
    )
    harness.mysql.execute(f"DELETE FROM {table} WHERE code = 'xyz'")
    harness.mysql.execute(
        f"INSERT INTO {table} VALUES (%s, 'third', '2025-03-01')", ("XYZ" if "_ci" in collation else "xyz  ",)
    )
    assert harness.sync(table).extract.rows == 2
    rows = _exactly_the_source(harness, table)
    assert len(rows) == 3 and (changed, "second") in [tuple(r) for r in rows]
    # A target that still holds a key twice under the source's equality (loaded before the merge matched
    # keys this way) fails the primary_key_unique check.
    with harness.registry() as registry:
        spec = harness.spec(table)
        assert duplicate_keys(registry, spec, read_table_shape(registry, spec)).duplicated_keys == 0
        harness.pg.execute(
            f"INSERT INTO {harness.target(table)} (code, name, updated_at) VALUES ('k ', 'stale', '2025-01-01')"
        )
        found = duplicate_keys(registry, spec, read_table_shape(registry, spec))
    assert (found.duplicated_keys, found.extra_rows) == (1, 1)


def test_cdc_validate_names_a_case_insensitive_key_what_the_merge_does_and_the_fix(harness: Harness) -> None:
    _text_keyed(harness, "ci_keys", "utf8mb4_general_ci", ["abc", "xyz"])
    table = f"{harness.mysql.name}.ci_keys"
    checked = run("--config-dir", str(harness.config.path), "cdc", "validate", "-t", table, "-p", PIPELINE)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = checked.stdout + checked.stderr
    assert "key column `code` (collation utf8mb4_general_ci) is compared ignoring case and trailing spaces" in text
    assert "accents" in text and "COLLATE utf8mb4_bin" in text  # what the merge cannot match, and the fix
    assert any("but not accents" in w for w in harness.sync("ci_keys").extract.warnings)

    _text_keyed(harness, "nopad_keys", "utf8mb4_nopad_bin", ["abc"])
    exact = run("--config-dir", str(harness.config.path), "cdc", "validate", "-t", f"{harness.mysql.name}.nopad_keys")
    assert exact.returncode == 0 and "`code`" not in exact.stdout.split("id column")[0], exact.stdout
    assert "compared ignoring" not in exact.stdout


def test_text_positions_compare_in_the_source_collation_order(harness: Harness) -> None:
    """An appended table paged on a general_ci text column: 'a' < 'B' at the source although 'B' < 'a' in Python.

    The resume point is the later of the stored watermark and the staged batches' ends; compared in
    Python's order, the first batch ('a') looked later than the second ('B') and 'B' was appended again.
    """
    harness.mysql.execute("DROP TABLE IF EXISTS coded")
    harness.mysql.execute(
        "CREATE TABLE coded (code VARCHAR(8) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL, "
        "name VARCHAR(16), KEY (code))"
    )
    harness.set_tables({f"{harness.mysql.name}.coded": {"cdc_strategy": "id_only", "cdc_id_column": "code"}})
    harness.mysql.execute("INSERT INTO coded VALUES ('a', 'first')")
    assert harness.sync("coded").extract.rows == 1
    harness.mysql.execute("INSERT INTO coded VALUES ('B', 'second')")
    assert harness.sync("coded").extract.rows == 1
    assert harness.sync("coded").extract.rows == 0
    harness.mysql.execute("INSERT INTO coded VALUES ('c', 'third'), ('_', 'fourth')")  # general_ci: 'B' < 'c' < '_'
    assert harness.sync("coded").extract.rows == 2
    assert harness.sync("coded").extract.rows == 0
    assert len(_exactly_the_source(harness, "coded")) == 4


@pytest.mark.parametrize(
    "collation",
    ["utf8mb4_general_ci", "utf8mb4_bin", "utf8mb4_unicode_ci", "utf8mb4_uca1400_ai_ci", "utf8mb4_nopad_bin"],
)
def test_the_python_order_of_text_positions_is_the_collation_order(mysql_db, collation: str) -> None:
    """Checked by the server: sorted by MySQL, every value's Python sort key is at least its predecessor's."""
    key = sort_key("varchar", collation) or (lambda v: v)
    values = ["a", "A", "B", "b ", "_", "-", "1", "9", "Z", "é", "E", "e", "ab", "a b", "a_", "aB", "Ab", " x", "~"]
    with mysql_db.connect() as conn, conn.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS ordering")
        cursor.execute(f"CREATE TABLE ordering (v VARCHAR(8) CHARACTER SET utf8mb4 COLLATE {collation})")
        cursor.executemany("INSERT INTO ordering VALUES (%s)", [(v,) for v in values])
        cursor.execute("SELECT v FROM ordering ORDER BY v, BINARY v")
        ordered = [r[0] for r in cursor.fetchall()]
        conn.commit()
    keys = [key(v) for v in ordered]
    assert all(a <= b for a, b in itertools.pairwise(keys)), list(zip(ordered, keys, strict=True))
    highest = later(Watermark({"v": "a"}), Watermark({"v": "B"}), ("v",), {"v": key})
    assert highest.position["v"] == ("a" if collation.endswith("bin") else "B")
    # watermark set's move-back check on an appended table: from 'B' to 'a' moves back only where 'a' < 'B'.
    back = moves_back(Watermark({"v": "a"}), Watermark({"v": "B"}), ("v",), {"v": key})
    assert back is not collation.endswith("bin")
