"""The type map against the real MariaDB + connectorx: every MySQL type, edge values, exact results."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Iterator
from typing import Any

import connectorx as cx
import numpy as np
import pyarrow as pa
import pytest

from sync_platform.engine.mysql_sql import quote_mysql
from sync_platform.engine.source_schema import (
    SourceColumn,
    SourceTable,
    SourceTableNotFound,
    read_server_time_zone,
    read_source_table,
)
from sync_platform.engine.typemap import (
    ColumnMapping,
    ColumnNameCollision,
    Kind,
    LogicalType,
    OversizeValueError,
    TableMapping,
    UnsupportedColumnType,
    enforce_redshift_limits,
    map_column,
    map_table,
    normalize_batch,
    warehouse_column_name,
    warehouse_column_names,
)
from sync_platform_tests.stack import MySQLDatabase

UTC = dt.UTC
D = decimal.Decimal

ALL_TYPES_DDL = """
CREATE TABLE `all_types` (
  `id` INT NOT NULL PRIMARY KEY,
  `ti` TINYINT, `flag` TINYINT(1), `tiu` TINYINT UNSIGNED,
  `si` SMALLINT, `siu` SMALLINT UNSIGNED,
  `mi` MEDIUMINT, `miu` MEDIUMINT UNSIGNED,
  `i` INT, `iu` INT UNSIGNED,
  `bi` BIGINT, `biu` BIGINT UNSIGNED,
  `d65_2` DECIMAL(65,2), `d38_10` DECIMAL(38,10), `d20_0` DECIMAL(20,0), `d30_20` DECIMAL(30,20),
  `d5_2` DECIMAL(5,2) UNSIGNED,
  `f` FLOAT, `db` DOUBLE,
  `dt6` DATETIME(6), `dt0` DATETIME NOT NULL DEFAULT '2000-01-01 00:00:00',
  `ts6` TIMESTAMP(6) NULL, `ts0` TIMESTAMP NULL,
  `d` DATE,
  `y` YEAR,
  `tm` TIME, `tm6` TIME(6),
  `vc` VARCHAR(30), `ch` CHAR(4), `tt` TINYTEXT, `tx` TEXT, `mt` MEDIUMTEXT, `lt` LONGTEXT,
  `js` JSON,
  `b1` BIT(1), `b8` BIT(8), `b64` BIT(64),
  `e` ENUM('small','large','extra large'), `st` SET('a','b','c d'),
  `bn` BINARY(4), `vb` VARBINARY(16), `bl` BLOB, `lb` LONGBLOB,
  `g` POINT, `geo` GEOMETRY
) CHARACTER SET utf8mb4
"""

ALL_BYTES = bytes(range(256))
BIG_JSON = json.dumps({"nested": {"text": "é" * 40_000, "list": [1, 2.5, None, True]}})
MAX_65_2 = D("9" * 63 + ".99")
MIN_65_2 = D("-" + "9" * 63 + ".99")  # not -MAX_65_2: that rounds to 28 digits


# fmt: off
ROWS: list[dict[str, Any]] = [
    {  # maxima
        "id": 1,
        "ti": 127, "flag": 1, "tiu": 255, "si": 32767, "siu": 65535, "mi": 8388607, "miu": 16777215,
        "i": 2147483647, "iu": 4294967295, "bi": 9223372036854775807, "biu": 18446744073709551615,
        "d65_2": MAX_65_2, "d38_10": D("9999999999999999999999999999.9999999999"),
        "d20_0": D("99999999999999999999"), "d30_20": D("1234567890.12345678901234567891"), "d5_2": D("999.99"),
        "f": 3.4028234663852886e38, "db": 1.7976931348623157e308,
        "dt6": "9999-12-31 23:59:59.999999", "dt0": "9999-12-31 23:59:59",
        "ts6": "2038-01-19 03:14:07.999999", "ts0": "2038-01-19 03:14:07",
        "d": "9999-12-31", "y": 2155, "tm": "838:59:59", "tm6": "838:59:59.000000",
        "vc": "😀" * 30, "ch": "abcd", "tt": "t" * 255, "tx": "ü" * 1000, "mt": "m", "lt": "l",
        "js": '[1, "two", {"three": [3]}, null]',
        "b1": 1, "b8": 255, "b64": 18446744073709551615,
        "e": "extra large", "st": "a,b,c d",
        "bn": b"\x00\x01\x02\x03", "vb": b"\xff" * 16, "bl": ALL_BYTES, "lb": ALL_BYTES * 10,
        "g": "POINT(1 2)", "geo": "LINESTRING(0 0,1 1.5)",
    },
    {  # minima and awkward values
        "id": 2,
        "ti": -128, "flag": 7, "tiu": 0, "si": -32768, "siu": 0, "mi": -8388608, "miu": 0,
        "i": -2147483648, "iu": 0, "bi": -9223372036854775808, "biu": 0,
        "d65_2": MIN_65_2, "d38_10": D("-0.0000000001"), "d20_0": D("-99999999999999999999"),
        "d30_20": D("-0.00000000000000000001"), "d5_2": D("0.00"),
        "f": 0.1, "db": -2.2250738585072014e-308,
        "dt6": "0001-01-01 00:00:00.000001", "dt0": "1000-01-01 00:00:00",
        "ts6": "1970-01-01 00:00:01.000000", "ts0": "1970-01-01 00:00:01",
        "d": "0001-01-01", "y": 1901, "tm": "-838:59:59", "tm6": "-00:00:00.000001",
        "vc": "", "ch": "", "tt": "", "tx": "line1\nline2\r\n\t\"quoted\" 'single' \\back", "mt": "", "lt": "",
        "js": "null",
        "b1": 0, "b8": 0, "b64": 0,
        "e": "small", "st": "",
        "bn": b"\x00\x00\x00\x00", "vb": b"", "bl": b"", "lb": b"\x00",
        "g": "POINT(-1.5 2.25)", "geo": "POINT(0 0)",
    },
    {  # zero and invalid dates, TIME past 24h
        "id": 3,
        "dt6": "2020-00-15 10:00:00", "dt0": "0000-00-00 00:00:00",
        "ts6": "0000-00-00 00:00:00", "ts0": "0000-00-00 00:00:00",
        "d": "0000-00-00", "y": 0, "tm": "-12:00:00", "tm6": "100:00:00.5",
        "js": BIG_JSON,
    },
    {"id": 4, "d": "2020-00-15", "dt6": "2020-02-31 00:00:00", "tm": "100:00:00", "js": "[]"},
    {"id": 5, "d": "2020-02-31", "dt6": "0000-01-01 00:00:00"},  # nullable columns left NULL
]
# fmt: on

EXPECTED_TYPES: dict[str, tuple[pa.DataType, LogicalType]] = {
    "id": (pa.int32(), LogicalType(Kind.INTEGER)),
    "ti": (pa.int8(), LogicalType(Kind.SMALLINT)),
    "flag": (pa.int8(), LogicalType(Kind.SMALLINT)),
    "tiu": (pa.int16(), LogicalType(Kind.SMALLINT)),
    "si": (pa.int16(), LogicalType(Kind.SMALLINT)),
    "siu": (pa.int32(), LogicalType(Kind.INTEGER)),
    "mi": (pa.int32(), LogicalType(Kind.INTEGER)),
    "miu": (pa.int32(), LogicalType(Kind.INTEGER)),
    "i": (pa.int32(), LogicalType(Kind.INTEGER)),
    "iu": (pa.int64(), LogicalType(Kind.BIGINT)),
    "bi": (pa.int64(), LogicalType(Kind.BIGINT)),
    "biu": (pa.decimal128(20, 0), LogicalType(Kind.DECIMAL, precision=20, scale=0)),
    "d65_2": (pa.string(), LogicalType(Kind.VARCHAR, length=67)),
    "d38_10": (pa.decimal128(38, 10), LogicalType(Kind.DECIMAL, precision=38, scale=10)),
    "d20_0": (pa.decimal128(20, 0), LogicalType(Kind.DECIMAL, precision=20, scale=0)),
    "d30_20": (pa.decimal128(30, 20), LogicalType(Kind.DECIMAL, precision=30, scale=20)),
    "d5_2": (pa.decimal128(5, 2), LogicalType(Kind.DECIMAL, precision=5, scale=2)),
    "f": (pa.float32(), LogicalType(Kind.REAL)),
    "db": (pa.float64(), LogicalType(Kind.DOUBLE)),
    "dt6": (pa.timestamp("us"), LogicalType(Kind.TIMESTAMP)),
    "dt0": (pa.timestamp("us"), LogicalType(Kind.TIMESTAMP)),
    "ts6": (pa.timestamp("us", tz="UTC"), LogicalType(Kind.TIMESTAMPTZ)),
    "ts0": (pa.timestamp("us", tz="UTC"), LogicalType(Kind.TIMESTAMPTZ)),
    "d": (pa.date32(), LogicalType(Kind.DATE)),
    "y": (pa.int16(), LogicalType(Kind.SMALLINT)),
    "tm": (pa.string(), LogicalType(Kind.VARCHAR, length=10)),
    "tm6": (pa.string(), LogicalType(Kind.VARCHAR, length=17)),
    "vc": (pa.string(), LogicalType(Kind.VARCHAR, length=30)),
    "ch": (pa.string(), LogicalType(Kind.VARCHAR, length=4)),
    "tt": (pa.string(), LogicalType(Kind.TEXT)),
    "tx": (pa.string(), LogicalType(Kind.TEXT)),
    "mt": (pa.string(), LogicalType(Kind.TEXT)),
    "lt": (pa.string(), LogicalType(Kind.TEXT)),
    "js": (pa.string(), LogicalType(Kind.JSON)),
    "b1": (pa.int64(), LogicalType(Kind.BIGINT)),
    "b8": (pa.int64(), LogicalType(Kind.BIGINT)),
    "b64": (pa.decimal128(20, 0), LogicalType(Kind.DECIMAL, precision=20, scale=0)),
    "e": (pa.string(), LogicalType(Kind.VARCHAR, length=11)),
    "st": (pa.string(), LogicalType(Kind.VARCHAR, length=7)),
    "bn": (pa.binary(), LogicalType(Kind.BINARY, length=4)),
    "vb": (pa.binary(), LogicalType(Kind.BINARY, length=16)),
    "bl": (pa.binary(), LogicalType(Kind.BINARY, length=65535)),
    "lb": (pa.binary(), LogicalType(Kind.BINARY, length=None)),
    "g": (pa.string(), LogicalType(Kind.TEXT)),
    "geo": (pa.string(), LogicalType(Kind.TEXT)),
}


def _expected_rows() -> list[dict[str, Any]]:
    """What each row must look like after normalize_batch (None where the source was NULL/invalid)."""
    nulls = dict.fromkeys(EXPECTED_TYPES)
    first = {
        **nulls,
        **ROWS[0],
        "d65_2": str(MAX_65_2),
        "f": float(np.float32(3.4028234663852886e38)),
        "dt6": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        "dt0": dt.datetime(9999, 12, 31, 23, 59, 59),
        "ts6": dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
        "ts0": dt.datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC),
        "d": dt.date(9999, 12, 31),
        "tm6": "838:59:59.000000",
    }
    second = {
        **nulls,
        **ROWS[1],
        "d65_2": str(MIN_65_2),
        "d38_10": D("-1E-10"),
        "d30_20": D("-1E-20"),
        "f": float(np.float32(0.1)),
        "dt6": dt.datetime(1, 1, 1, 0, 0, 0, 1),
        "dt0": dt.datetime(1000, 1, 1),
        "ts6": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
        "ts0": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
        "d": dt.date(1, 1, 1),
        "tm6": "-00:00:00.000001",
    }
    third = {**nulls, "id": 3, "y": 0, "tm": "-12:00:00", "tm6": "100:00:00.500000", "js": BIG_JSON}
    fourth = {**nulls, "id": 4, "tm": "100:00:00", "js": "[]", "dt0": dt.datetime(2000, 1, 1)}
    fifth = {**nulls, "id": 5, "dt0": dt.datetime(2000, 1, 1)}
    return [first, second, third, fourth, fifth]


@pytest.fixture(scope="module")
def all_types(mysql_db: MySQLDatabase) -> MySQLDatabase:
    with mysql_db.connect() as conn, conn.cursor() as cur:
        cur.execute(ALL_TYPES_DDL)
        cur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,ALLOW_INVALID_DATES'")  # zero dates in, no clamping
        for row in ROWS:
            names = list(row)
            values = []
            for name in names:
                if name in ("g", "geo"):
                    values.append("ST_GeomFromText(%s)")
                elif name in ("b1", "b8", "b64"):
                    values.append("CAST(%s AS UNSIGNED)")
                else:
                    values.append("%s")
            cur.execute(
                f"INSERT INTO `all_types` ({', '.join(quote_mysql(n) for n in names)}) VALUES ({', '.join(values)})",
                [row[n] for n in names],
            )
    return mysql_db


def _url(db: MySQLDatabase) -> str:
    return f"mysql://{db.user}:{db.password}@{db.host}:{db.port}/{db.name}"


def _read(db: MySQLDatabase, sql: str) -> Iterator[pa.RecordBatch]:
    yield from cx.read_sql(_url(db), sql, return_type="arrow_stream", batch_size=2)


def _mapping(db: MySQLDatabase, table: str) -> TableMapping:
    with db.connect() as conn:
        return map_table(read_source_table(conn, db.name, table))


def _read_normalized(db: MySQLDatabase, mapping: TableMapping, prefix: str = "") -> tuple[pa.Table, dict[str, int]]:
    table = f"{quote_mysql(db.name)}.{quote_mysql(mapping.source.table)}"
    key = quote_mysql(mapping.source.primary_key[0])
    sql = f"{prefix}SELECT {mapping.select_list} FROM {table} ORDER BY {key}"
    batches, counts = [], {}
    for batch in _read(db, sql):
        normalized, batch_counts = normalize_batch(batch, mapping.columns)
        batches.append(normalized)
        for name, count in batch_counts.items():
            counts[name] = counts.get(name, 0) + count
    return pa.Table.from_batches(batches, schema=mapping.arrow_schema), counts


# --------------------------------------------------------------------------- the type map, end to end


def test_every_mysql_type_maps_to_the_documented_arrow_and_warehouse_type(all_types: MySQLDatabase) -> None:
    mapping = _mapping(all_types, "all_types")
    got = {m.name: (m.arrow_type, m.logical) for m in mapping.columns}
    assert got == EXPECTED_TYPES
    assert mapping.arrow_schema == pa.schema([pa.field(n, t) for n, (t, _) in EXPECTED_TYPES.items()])


def test_every_mysql_type_reads_exactly_through_connectorx(all_types: MySQLDatabase) -> None:
    mapping = _mapping(all_types, "all_types")
    table, _ = _read_normalized(all_types, mapping)
    assert table.schema == mapping.arrow_schema
    rows = table.to_pylist()
    expected = _expected_rows()
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):
        for name in EXPECTED_TYPES:
            assert got[name] == want[name], f"row {want['id']} column {name}: {got[name]!r} != {want[name]!r}"


def test_zero_and_invalid_dates_become_null_and_are_counted_per_column(all_types: MySQLDatabase) -> None:
    _, counts = _read_normalized(all_types, _mapping(all_types, "all_types"))
    # dt6: '2020-00-15', '2020-02-31', '0000-01-01'; dt0 (NOT NULL): zero date; ts6/ts0: zero
    # timestamp; d: '0000-00-00', '2020-00-15', '2020-02-31'. NULLs at the source are not counted.
    assert counts == {"dt6": 3, "dt0": 1, "ts6": 1, "ts0": 1, "d": 3}


def test_timestamp_comes_out_as_true_utc_when_the_session_zone_is_not_utc(all_types: MySQLDatabase) -> None:
    mapping = _mapping(all_types, "all_types")
    shifted = "SET STATEMENT time_zone = '+05:30' FOR "
    raw = cx.read_sql(
        _url(all_types), f"{shifted}SELECT `ts0`, @@time_zone AS z FROM `all_types` WHERE `id` = 1", return_type="arrow"
    ).to_pylist()[0]
    assert raw["z"] == "+05:30"
    assert raw["ts0"] == dt.datetime(2038, 1, 19, 8, 44, 7)  # what a naive read gives: +05:30 wall-clock

    table, _ = _read_normalized(all_types, mapping, prefix=shifted)
    first = table.to_pylist()[0]
    assert first["ts0"] == dt.datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC)
    assert first["ts6"] == dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC)
    assert first["dt0"] == dt.datetime(9999, 12, 31, 23, 59, 59)  # DATETIME has no zone: untouched


def test_json_values_arrive_as_their_exact_text(all_types: MySQLDatabase) -> None:
    table, _ = _read_normalized(all_types, _mapping(all_types, "all_types"))
    values = table.column("js").to_pylist()
    assert values[:4] == ['[1, "two", {"three": [3]}, null]', "null", BIG_JSON, "[]"]
    assert json.loads(values[2])["nested"]["text"] == "é" * 40_000


# --------------------------------------------------------------------------- why the expressions exist


def test_connectorx_panics_on_raw_zero_dates_time_and_wide_decimals(all_types: MySQLDatabase) -> None:
    """The facts behind the SELECT expressions: a raw read is not safe (PanicException is a BaseException)."""
    for sql in (
        "SELECT `d` FROM `all_types` WHERE `id` = 3",  # '0000-00-00'
        "SELECT `dt6` FROM `all_types` WHERE `id` = 4",  # '2020-02-31'
        "SELECT `tm` FROM `all_types` WHERE `id` = 3",  # '-12:00:00'
        "SELECT `d65_2` FROM `all_types` WHERE `id` = 1",  # 65 digits
        "SELECT `g` FROM `all_types` WHERE `id` = 1",  # geometry
    ):
        with pytest.raises(BaseException) as caught:
            cx.read_sql(_url(all_types), sql, return_type="arrow")
        assert not isinstance(caught.value, Exception), f"{sql}: expected a PanicException, got {caught.value!r}"


def test_connectorx_native_decimals_are_lossy_so_decimals_are_read_as_text(all_types: MySQLDatabase) -> None:
    native = cx.read_sql(_url(all_types), "SELECT `d30_20` FROM `all_types` WHERE `id` = 1", return_type="arrow")
    assert native.schema.field(0).type == pa.decimal128(38, 10)
    assert native.column(0).to_pylist() == [D("1234567890.1234567890")]  # 10 digits silently gone
    with pytest.raises(RuntimeError, match="scale"):  # DECIMAL(20,0) max does not fit at all
        cx.read_sql(_url(all_types), "SELECT `d20_0` FROM `all_types` WHERE `id` = 1", return_type="arrow")


def test_connectorx_reads_bit_as_binary_and_unsigned_as_unsigned(all_types: MySQLDatabase) -> None:
    raw = cx.read_sql(_url(all_types), "SELECT `b8`, `biu`, `y` FROM `all_types` WHERE `id` = 1", return_type="arrow")
    assert [f.type for f in raw.schema] == [pa.large_binary(), pa.uint64(), pa.int16()]
    assert raw.to_pylist() == [{"b8": b"\xff", "biu": 18446744073709551615, "y": 2155}]


# --------------------------------------------------------------------------- names and identifiers


def test_identifiers_with_backticks_quotes_and_spaces_are_read_safely(mysql_db: MySQLDatabase) -> None:
    weird = 'we`ird "col" x'
    with mysql_db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            f"CREATE TABLE `odd``table name` (`Id` INT PRIMARY KEY, {quote_mysql(weird)} VARCHAR(5), "
            "`9lives` DATE, `__sp_v0` INT)"
        )
        cur.execute("INSERT INTO `odd``table name` VALUES (1, 'x', '2020-01-01', 7)")
    mapping = _mapping(mysql_db, "odd`table name")
    assert mapping.column_names == ("id", "we`ird _col_ x", "col_9lives", "__sp_v0")
    assert mapping.renames == {"Id": "id", weird: "we`ird _col_ x", "9lives": "col_9lives"}
    assert mapping.primary_key == ("id",)
    table, counts = _read_normalized(mysql_db, mapping)
    assert table.to_pylist() == [{"id": 1, "we`ird _col_ x": "x", "col_9lives": dt.date(2020, 1, 1), "__sp_v0": 7}]
    assert counts == {}
    assert "AS `___sp_v0`" in mapping.select_list  # aliases never shadow a source column name


def test_warehouse_column_name_rule() -> None:
    assert warehouse_column_name("OrderID") == "orderid"
    assert warehouse_column_name("190_time") == "col_190_time"
    assert warehouse_column_name('a"b') == "a_b"
    assert warehouse_column_name("OID") == "col_oid" and warehouse_column_name("xmin") == "col_xmin"
    long_name = "x" * 64
    assert warehouse_column_name(long_name, max_bytes=127) == long_name
    short = warehouse_column_name(long_name, max_bytes=63)
    assert len(short.encode()) <= 63 and short.startswith("x" * 54 + "_")
    assert warehouse_column_name("é" * 40, max_bytes=63) != warehouse_column_name("é" * 41, max_bytes=63)
    assert len(warehouse_column_name("é" * 64, max_bytes=63).encode()) <= 63


def test_column_name_collisions_are_refused_and_stored_mappings_win() -> None:
    with pytest.raises(ColumnNameCollision, match="'1a' and 'col_1a'"):
        warehouse_column_names(["1a", "col_1a"], table="s.t")
    assert warehouse_column_names(["1a", "col_1a"], overrides={"1a": "one_a"}) == {"1a": "one_a", "col_1a": "col_1a"}


# --------------------------------------------------------------------------- source schema


def test_read_source_table_reports_keys_json_and_unsigned(mysql_db: MySQLDatabase) -> None:
    with mysql_db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE `keyed` (`a` INT UNSIGNED NOT NULL, `b` VARCHAR(10) NOT NULL, `doc` JSON, `c` INT, "
            "PRIMARY KEY (`b`, `a`), UNIQUE KEY `uc` (`c`))"
        )
        source = read_source_table(conn, mysql_db.name, "keyed")
    assert source.primary_key == ("b", "a")
    assert source.unique_keys == (("c",),)
    assert source.column("DOC").data_type == "json"
    assert source.column("a").unsigned and not source.column("c").unsigned
    assert [c.ordinal for c in source.columns] == [1, 2, 3, 4]


def test_a_missing_table_is_a_clear_error_naming_schema_and_table(mysql_db: MySQLDatabase) -> None:
    with mysql_db.connect() as conn, pytest.raises(SourceTableNotFound, match=f"{mysql_db.name}.no_such_table"):
        read_source_table(conn, mysql_db.name, "no_such_table")


def test_server_time_zone_facts(mysql_db: MySQLDatabase) -> None:
    with mysql_db.connect() as conn:
        zone = read_server_time_zone(conn)
        assert zone.session_zone == "+00:00" and zone.session_is_utc
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+05:30'")
        assert read_server_time_zone(conn).session_offset_seconds == 19800


def test_an_unknown_source_type_is_refused_with_the_column_named() -> None:
    column = SourceColumn("v", 1, "vector", "vector(3)", True)
    with pytest.raises(UnsupportedColumnType, match=r"s\.t\.v: MySQL type 'vector\(3\)'"):
        map_column(column, table="s.t")


def test_normalize_batch_refuses_a_batch_read_with_another_select_list() -> None:
    mapping = map_column(SourceColumn("d", 1, "date", "date", True))
    with pytest.raises(ValueError, match="select list"):
        normalize_batch(pa.record_batch({"x": pa.array([None], pa.date32())}), [mapping])


# --------------------------------------------------------------------------- Redshift byte limits


def _text_mapping(name: str, data_type: str, length: int | None = None) -> ColumnMapping:
    column = SourceColumn(name, 1, data_type, data_type if length is None else f"{data_type}({length})", True, length)
    return map_column(column)


def test_oversize_text_fails_by_default_naming_table_column_and_bytes() -> None:
    mapping = _text_mapping("body", "mediumtext")
    batch = pa.record_batch({"body": pa.array(["ok", "é" * 40_000, None])})
    with pytest.raises(OversizeValueError) as caught:
        enforce_redshift_limits(batch, [mapping], table="shop.notes")
    assert "shop.notes.body" in str(caught.value) and "80000 bytes" in str(caught.value)
    assert caught.value.byte_length == 80_000 and caught.value.limit == 65535


def test_oversize_text_truncates_at_a_utf8_boundary_and_counts() -> None:
    mapping = _text_mapping("body", "longtext")
    values = ["short", "a" + "😀" * 20_000, None, "é" * 40_000]
    batch = pa.record_batch({"body": pa.array(values)})
    cut, counts = enforce_redshift_limits(batch, [mapping], table="shop.notes", oversize_text="truncate")
    got = cut.column(0).to_pylist()
    assert counts == {"body": 2}
    assert got[0] == "short" and got[2] is None
    assert got[1] == "a" + "😀" * 16_383 and len(got[1].encode()) == 65533  # no half emoji
    assert got[3] == "é" * 32_767


def test_json_over_the_limit_always_fails_and_small_declared_columns_are_not_scanned() -> None:
    json_mapping = map_column(SourceColumn("doc", 1, "json", "longtext", True))
    batch = pa.record_batch({"doc": pa.array([BIG_JSON])})
    with pytest.raises(OversizeValueError, match="JSON cannot be truncated"):
        enforce_redshift_limits(batch, [json_mapping], table="s.t", oversize_text="truncate")
    small = _text_mapping("code", "varchar", 30)
    same = pa.record_batch({"code": pa.array(["😀" * 30])})
    assert enforce_redshift_limits(same, [small], table="s.t") == (same, {})


def test_oversize_binary_is_checked_against_varbyte() -> None:
    mapping = map_column(SourceColumn("blob", 1, "longblob", "longblob", True))
    batch = pa.record_batch({"blob": pa.array([b"\x00" * 1_024_001, b"ok"], pa.binary())})
    with pytest.raises(OversizeValueError, match="1024001 bytes"):
        enforce_redshift_limits(batch, [mapping], table="s.t")
    cut, counts = enforce_redshift_limits(batch, [mapping], table="s.t", oversize_text="truncate")
    assert counts == {"blob": 1} and len(cut.column(0)[0].as_py()) == 1_024_000


def test_map_table_uses_the_dialect_identifier_limit() -> None:
    column = SourceColumn("c" * 64, 1, "int", "int(11)", False)
    source = SourceTable("s", "t", (column,), ("c" * 64,))
    assert map_table(source).column_names == ("c" * 64,)
    pg_name = map_table(source, max_identifier_bytes=63).column_names[0]
    assert len(pg_name) == 63 and pg_name != "c" * 63
