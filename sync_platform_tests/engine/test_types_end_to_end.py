"""Every troublesome MySQL value arrives in the warehouse exactly (or as NULL, counted), end to end."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

import sync_platform.engine.load as load_module
from sync_platform_tests.engine.harness import Harness, assert_same


@pytest.fixture
def harness(mysql_db, warehouse_db, make_config_dir) -> Harness:
    return Harness(make_config_dir(postgres=warehouse_db), mysql_db, warehouse_db)


def test_edge_values_round_trip_into_the_warehouse(harness: Harness) -> None:
    h = harness
    redshift = h.warehouse != "postgres"  # the stand-in or a real cluster
    h.mysql.execute("DROP TABLE IF EXISTS edge")
    h.mysql.execute(
        "CREATE TABLE edge (id INT PRIMARY KEY, big BIGINT UNSIGNED, wide DECIMAL(65,2), exact DECIMAL(38,10), "
        "money DECIMAL(20,0), name VARCHAR(30), long_text MEDIUMTEXT, doc JSON, span TIME, d DATE, "
        "dt6 DATETIME(6), flag TINYINT(1), bits BIT(8), yr YEAR, blob_col BLOB, updated_at DATETIME)"
    )
    long_text = "é" * 40_000  # 80,000 bytes: over Redshift's 65,535 (truncated there, counted), fine in PostgreSQL
    emoji = "🙂" * 30  # 30 four-byte characters in VARCHAR(30): 120 bytes, which Redshift's VARCHAR(120) holds
    # JSON is never truncated: over 65,535 bytes it stops a Redshift load, so stay just under there.
    doc = {"list": [1, 2, None], "nested": {"s": "x" * (65_000 if redshift else 70_000)}, "null": None}
    with h.mysql.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")  # allow the zero date an old application wrote
        cur.execute(
            "INSERT INTO edge VALUES (1, 18446744073709551615, "
            "123456789012345678901234567890123456789012345678901234567890123.45, "
            "1234567890123456789012345678.0123456789, 99999999999999999999, %s, %s, %s, '-12:00:00', "
            "'0000-00-00', '9999-12-31 23:59:59.999999', 7, b'10100101', 2155, %s, '2025-01-01')",
            (emoji, long_text, json.dumps(doc), bytes(range(256))),
        )
        cur.execute(
            "INSERT INTO edge VALUES (2, 0, -0.01, 0, 0, '', NULL, 'null', '100:00:00', '2020-00-15', "
            "'0001-01-01 00:00:00', 0, b'0', 1901, '', '2025-01-01')"
        )
    h.set_tables({f"{h.mysql.name}.edge": {"cdc_strategy": "full_sync", "oversize_text": "truncate"}})
    result = h.sync("edge")
    assert result.extract.zero_dates == {"d": 2}  # '0000-00-00' and '2020-00-15' became NULL, counted
    assert result.extract.truncated_values == ({"long_text": 1} if redshift else {})
    rows = h.pg.query(
        f"SELECT id, big, wide, exact, money, name, long_text, doc, span, d, dt6, flag, bits, yr, blob_col "
        f"FROM {h.target('edge')} ORDER BY id"
    )
    first, second = rows
    assert first[1] == Decimal("18446744073709551615")
    assert first[2] == "123456789012345678901234567890123456789012345678901234567890123.45"  # > 38 digits: text
    assert first[3] == Decimal("1234567890123456789012345678.0123456789")
    assert first[4] == Decimal("99999999999999999999")
    assert first[5] == emoji and first[6] == ("é" * 32_767 if redshift else long_text)  # cut at a character
    assert first[7] == doc
    assert first[8] == "-12:00:00" and second[8] == "100:00:00"
    assert first[9] is None and second[9] is None
    assert first[10] == dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
    assert second[10] == dt.datetime(1, 1, 1)
    assert (first[11], first[12], first[13]) == (7, 165, 2155)
    assert bytes(first[14]) == bytes(range(256)) and bytes(second[14]) == b""
    assert second[5] == "" and second[6] is None
    # JSON's own null stays a JSON value; it does not become SQL NULL.
    assert h.pg.query(f"SELECT jsonb_typeof(doc) FROM {h.target('edge')} WHERE id = 2") == [("null",)]
    if not redshift:  # the stand-in keeps SUPER/VARBYTE in PostgreSQL types of its own choosing
        types = dict(
            h.pg.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'edge'")
        )
        assert types["big"] == "numeric" and types["doc"] == "jsonb" and types["blob_col"] == "bytea"


def test_timestamps_are_true_instants_whatever_the_server_zone(harness: Harness) -> None:
    h = harness
    h.mysql.execute("DROP TABLE IF EXISTS zoned")
    h.mysql.execute("CREATE TABLE zoned (id INT PRIMARY KEY, ts TIMESTAMP(6) NULL, local_dt DATETIME(6))")
    (original,) = h.mysql.query("SELECT @@global.time_zone")[0]
    h.mysql.execute("SET GLOBAL time_zone = '+05:30'")
    try:
        with h.mysql.connect() as conn, conn.cursor() as cur:
            cur.execute("SET time_zone = '+05:30'")  # the application's session, as the server default
            cur.execute("INSERT INTO zoned VALUES (1, '2025-06-01 10:00:00.5', NOW(6) - INTERVAL 1 MINUTE)")
        h.set_tables(
            {
                f"{h.mysql.name}.zoned": {
                    "cdc_strategy": "hybrid",
                    "cdc_timestamp_column": "local_dt",
                    "cdc_id_column": "id",
                    "safety_lag": "5s",
                }
            }
        )
        result = h.sync("zoned")
    finally:
        h.mysql.execute(f"SET GLOBAL time_zone = '{original}'")
    # The DATETIME cursor holds the server's local time: the ceiling uses the server's clock, so the
    # row written a minute ago is read now, not 5.5 hours later.
    assert result.extract.rows == 1
    (ts,) = h.pg.query(f"SELECT ts FROM {h.target('zoned')}")[0]
    assert ts == dt.datetime(2025, 6, 1, 4, 30, 0, 500000, tzinfo=dt.UTC)


def test_every_binary_copy_type_round_trips_exactly(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table of only the types with a binary COPY encoder goes to PostgreSQL in binary format, and
    every extreme value arrives exactly: integer limits, decimals of every group alignment (negative,
    tiny, zero), floats, text with COPY-text's special characters, JSON, bytes, the first and last
    date and microsecond, NULL in every nullable column."""
    h = harness
    sent = {"binary": 0}
    real_copy_binary = load_module.copy_binary

    def counting(batch, kinds):  # the real encoder, counted
        sent["binary"] += batch.num_rows
        return real_copy_binary(batch, kinds)

    monkeypatch.setattr(load_module, "copy_binary", counting)
    h.mysql.execute("DROP TABLE IF EXISTS wire")
    h.mysql.execute(
        "CREATE TABLE wire (id INT PRIMARY KEY, i8 BIGINT, i2 SMALLINT, i1 TINYINT, u4 INT UNSIGNED, "
        "amount DECIMAL(12,2), frac DECIMAL(10,10), whole DECIMAL(18,0), odd DECIMAL(15,3), f FLOAT, dbl DOUBLE, "
        "name VARCHAR(30), body MEDIUMTEXT, doc JSON, d DATE, dt6 DATETIME(6), dt0 DATETIME, blob_col BLOB, "
        "updated_at DATETIME)"
    )
    rows = [
        (1, 2**63 - 1, 32767, 127, 2**32 - 1, "9999999999.99", "0.9999999999", "999999999999999999",
         "999999999999.999", 0.25, 1.7976931348623157e308, "a\tb\nc\\d\r🙂 \\N", "é" * 30_000,
         json.dumps({"k": [1, None, "x\ty"], "n": 1.5}), "9999-12-31", "9999-12-31 23:59:59.999999",
         "2000-01-01 00:00:00", bytes(range(256))),
        (2, -(2**63), -32768, -128, 0, "-9999999999.99", "-0.0000000001", "-999999999999999999", "-0.001",
         -1.5, -5e-324, "", "", "null", "0001-01-01", "0001-01-01 00:00:00", "1999-12-31 23:59:59", b""),
        (3, *([None] * 17)),
        (4, 0, 0, 0, 0, "0.00", "0", "0", "0.000", 0.0, 0.0, "0", "NULL", "[]", "2000-01-01",
         "2000-01-01 00:00:00.000001", "1970-01-01 00:00:00", b"\x00\\"),
        (5, 1, 1, 1, 1, "0.01", "0.0001", "10000", "12345.678", 3.0, 0.1, "x", "y", "{}", "1999-12-31",
         "1999-12-31 23:59:59.999999", "2024-02-29 12:00:00", b"\xff"),
    ]  # fmt: skip
    with h.mysql.connect() as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT INTO wire VALUES ({', '.join(['%s'] * 18)}, '2025-01-01')", rows)
    h.set_tables({f"{h.mysql.name}.wire": {"cdc_strategy": "full_sync"}})
    h.sync("wire")
    columns = [
        "id",
        "i8",
        "i2",
        "i1",
        "u4",
        "amount",
        "frac",
        "whole",
        "odd",
        "f",
        "dbl",
        "name",
        "body",
        "doc",
        "d",
        "dt6",
        "dt0",
        "blob_col",
    ]
    assert assert_same(h, "wire", columns, "id", json_columns=("doc",)) == 5
    assert sent["binary"] == (5 if h.warehouse == "postgres" else 0)  # Redshift copies parquet from S3
