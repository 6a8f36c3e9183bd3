"""The generated warehouse SQL, executed against the real PostgreSQL: rows, not strings, are checked."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pyarrow as pa
import pytest

from sync_platform.engine.typemap import Kind, LogicalType
from sync_platform.warehouse import (
    IncompatibleSchemaChange,
    LedgerEntry,
    PostgresDialect,
    TableRef,
    WarehouseColumn,
    arrow_batch_to_copy_bytes,
)
from sync_platform_tests.stack import PostgresDatabase

D = decimal.Decimal
UTC = dt.UTC
PG = PostgresDialect()
SCHEMA = 'sp "schema" one'  # identifiers with quotes, spaces and backticks everywhere
ALL_BYTES = bytes(range(256))


def L(kind: Kind, length: int | None = None, precision: int | None = None, scale: int | None = None) -> LogicalType:
    return LogicalType(kind, length=length, precision=precision, scale=scale)


@pytest.fixture(scope="module")
def db(pg_db: PostgresDatabase) -> PostgresDatabase:
    pg_db.execute(PG.create_schema(SCHEMA))
    pg_db.execute(PG.create_schema(SCHEMA))  # idempotent
    return pg_db


@pytest.fixture
def conn(db: PostgresDatabase) -> Iterator[psycopg2.extensions.connection]:
    connection = db.connect()
    connection.autocommit = False
    try:
        yield connection
    finally:
        connection.rollback()
        connection.close()


def run(conn: psycopg2.extensions.connection, statements: Sequence[str]) -> None:
    """Execute statements in one transaction and commit."""
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
    conn.commit()


def copy_batch(cur: Any, stage: str, columns: Sequence[WarehouseColumn], batch: pa.RecordBatch) -> None:
    cur.copy_expert(PG.copy_from_stdin(stage, columns), io.BytesIO(arrow_batch_to_copy_bytes(batch)))


def rows(conn: psycopg2.extensions.connection, sql: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        result = list(cur.fetchall())
    conn.commit()
    return result


# --------------------------------------------------------------------------- COPY encoding

EVERY_TYPE: list[tuple[str, LogicalType, pa.DataType, list[Any]]] = [
    ("id", L(Kind.INTEGER), pa.int32(), [1, 2, 3, 4]),
    ("tiny", L(Kind.SMALLINT), pa.int8(), [-128, 127, None, 0]),
    ("small", L(Kind.SMALLINT), pa.int16(), [-32768, 32767, None, 0]),
    ("big", L(Kind.BIGINT), pa.int64(), [-(2**63), 2**63 - 1, None, 0]),
    ("u64", L(Kind.DECIMAL, precision=20, scale=0), pa.decimal128(20, 0), [D(2**64 - 1), D(0), None, D(-1)]),
    (
        "d38",
        L(Kind.DECIMAL, precision=38, scale=10),
        pa.decimal128(38, 10),
        [D("9999999999999999999999999999.9999999999"), D("-1E-10"), None, D("0E-10")],
    ),
    (
        "d30",
        L(Kind.DECIMAL, precision=30, scale=20),
        pa.decimal128(30, 20),
        [D("1234567890.12345678901234567891"), D("-0.00000000000000000001"), None, D("0E-20")],
    ),
    ("f32", L(Kind.REAL), pa.float32(), [0.1, 3.4028234663852886e38, None, 1e-45]),
    ("f64", L(Kind.DOUBLE), pa.float64(), [0.1, 1.7976931348623157e308, None, 5e-324]),
    ("day", L(Kind.DATE), pa.date32(), [dt.date(1, 1, 1), dt.date(9999, 12, 31), None, dt.date(2024, 2, 29)]),
    (
        "wall",
        L(Kind.TIMESTAMP),
        pa.timestamp("us"),
        [
            dt.datetime(1, 1, 1, 0, 0, 0, 1),
            dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
            None,
            dt.datetime(2020, 1, 1),
        ],
    ),
    (
        "instant",
        L(Kind.TIMESTAMPTZ),
        pa.timestamp("us", tz="UTC"),
        [
            dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
            dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            None,
            dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
        ],
    ),
    ("code", L(Kind.VARCHAR, length=30), pa.string(), ["", None, "😀" * 30, 'a"b,c\nd\re']),
    ("marker", L(Kind.VARCHAR, length=20), pa.string(), ["\\.", "a\n\\.\nb", "\\N", "NULL"]),
    ("body", L(Kind.TEXT), pa.string(), ["x" * 100_000, "\t tab \\ back 'q' ", None, " "]),
    ("doc", L(Kind.JSON), pa.string(), ['[1, "two", {"three": [3]}, null]', "null", None, '{"é": "😀", "n": 1.5e300}']),
    ("raw", L(Kind.BINARY), pa.binary(), [ALL_BYTES, b"", None, b"\x00\\x00"]),
]


def _every_type_batch() -> tuple[list[WarehouseColumn], pa.RecordBatch]:
    columns = [WarehouseColumn(name, logical) for name, logical, _, _ in EVERY_TYPE]
    batch = pa.record_batch(
        [pa.array(values, type=arrow_type) for _, _, arrow_type, values in EVERY_TYPE],
        names=[name for name, _, _, _ in EVERY_TYPE],
    )
    return columns, batch


def _same(name: str, got: Any, want: Any) -> bool:
    if want is None or got is None:
        return got is None and want is None
    if name == "f32":
        return bool(np.float32(got) == np.float32(want))
    if name == "doc":
        exact = {"parse_float": D, "parse_int": D}  # jsonb keeps numbers exact but may respell them
        return json.loads(got, **exact) == json.loads(want, **exact)
    if name == "raw":
        return bytes(got) == want
    return bool(got == want)


def test_copy_encoding_round_trips_every_staged_type_exactly(conn: psycopg2.extensions.connection) -> None:
    columns, batch = _every_type_batch()
    stage = 'stage "every" `type`'
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'Asia/Kolkata'")  # the CSV carries +00: the session zone must not matter
        cur.execute(PG.create_stage(stage, columns))
        copy_batch(cur, stage, columns, batch)
        cur.execute("SET TIME ZONE 'UTC'")
        select = ", ".join(f"{PG.quote(c.name)}::text" if c.name == "doc" else PG.quote(c.name) for c in columns)
        cur.execute(f"SELECT {select} FROM {PG.quote(stage)} ORDER BY 1")
        got_rows = cur.fetchall()
    want_rows = batch.to_pylist()
    assert len(got_rows) == len(want_rows)
    for got, want in zip(got_rows, want_rows, strict=True):
        for (name, *_), value in zip(EVERY_TYPE, got, strict=True):
            assert _same(name, value, want[name]), f"row {want['id']} {name}: {value!r} != {want[name]!r}"


def test_copy_distinguishes_null_from_empty_string_and_empty_bytes(conn: psycopg2.extensions.connection) -> None:
    columns = [
        WarehouseColumn("id", L(Kind.INTEGER)),
        WarehouseColumn("s", L(Kind.TEXT)),
        WarehouseColumn("b", L(Kind.BINARY)),
    ]
    batch = pa.record_batch(
        [pa.array([1, 2]), pa.array(["", None]), pa.array([b"", None], pa.binary())], names=["id", "s", "b"]
    )
    with conn.cursor() as cur:
        cur.execute(PG.create_stage("nulls", columns))
        copy_batch(cur, "nulls", columns, batch)
        cur.execute('SELECT "s" IS NULL, "s" = \'\', "b" IS NULL, length("b") FROM "nulls" ORDER BY "id"')
        assert cur.fetchall() == [(False, True, False, 0), (True, None, True, None)]


def test_copy_encoding_handles_sliced_and_chunked_binary(conn: psycopg2.extensions.connection) -> None:
    columns = [WarehouseColumn("id", L(Kind.INTEGER)), WarehouseColumn("b", L(Kind.BINARY))]
    full = pa.record_batch(
        [pa.array([0, 1, 2, 3]), pa.array([b"\x01", None, b"\xfe\xff", b""], pa.binary())], names=["id", "b"]
    )
    sliced = full.slice(1, 3)
    table = pa.Table.from_batches([full.slice(0, 2), full.slice(2, 2)])
    with conn.cursor() as cur:
        cur.execute(PG.create_stage("bins", columns))
        copy_batch(cur, "bins", columns, sliced)
        cur.copy_expert(PG.copy_from_stdin("bins", columns), io.BytesIO(arrow_batch_to_copy_bytes(table)))
        cur.execute('SELECT "id", "b" FROM "bins" ORDER BY "id", "b"')
        got = [(i, None if b is None else bytes(b)) for i, b in cur.fetchall()]
    assert got == [(0, b"\x01"), (1, None), (1, None), (2, b"\xfe\xff"), (2, b"\xfe\xff"), (3, b""), (3, b"")]


# --------------------------------------------------------------------------- DDL and schema evolution

ORDERS = TableRef(SCHEMA, 'or`ders "x" y')
ORDER_COLUMNS = [
    WarehouseColumn("id", L(Kind.BIGINT)),
    WarehouseColumn('na"me', L(Kind.VARCHAR, length=20)),
    WarehouseColumn("updated_at", L(Kind.TIMESTAMP)),
    WarehouseColumn("amount", L(Kind.DECIMAL, precision=12, scale=2)),
    WarehouseColumn("doc", L(Kind.JSON)),
]


def _create(
    conn: psycopg2.extensions.connection, table: TableRef, columns: Sequence[WarehouseColumn], key: Sequence[str]
) -> None:
    run(conn, [PG.drop_table(table), PG.create_table(table, columns, primary_key=key)])


def _existing(conn: psycopg2.extensions.connection, table: TableRef) -> Any:
    query = PG.columns_query(table)
    with conn.cursor() as cur:
        cur.execute(query.sql, query.params)
        found = PG.parse_columns(cur.fetchall())
    conn.commit()
    return found


def test_a_created_table_matches_its_mapping_so_evolution_plans_nothing(conn: psycopg2.extensions.connection) -> None:
    table = TableRef(SCHEMA, "every type")
    columns, _ = _every_type_batch()
    _create(conn, table, columns, ["id"])
    run(conn, [PG.create_table(table, columns, primary_key=["id"])])  # IF NOT EXISTS: a no-op
    plan = PG.plan_evolution(table, _existing(conn, table), columns)
    assert plan.changes == () and plan.is_empty


def test_evolution_adds_columns_and_widens_varchar_decimal_and_integer(conn: psycopg2.extensions.connection) -> None:
    table = TableRef(SCHEMA, "evolving `t`")
    v1 = [
        WarehouseColumn("id", L(Kind.BIGINT)),
        WarehouseColumn("name", L(Kind.VARCHAR, length=10)),
        WarehouseColumn("amount", L(Kind.DECIMAL, precision=10, scale=2)),
        WarehouseColumn("qty", L(Kind.INTEGER)),
        WarehouseColumn("gone", L(Kind.TEXT)),
    ]
    _create(conn, table, v1, ["id"])
    run(conn, [f"INSERT INTO {PG.table_sql(table)} VALUES (1, 'ten chars!', 12345678.91, 2147483647, 'bye')"])
    v2 = [
        WarehouseColumn("id", L(Kind.BIGINT)),
        WarehouseColumn("name", L(Kind.VARCHAR, length=40)),
        WarehouseColumn("amount", L(Kind.DECIMAL, precision=14, scale=4)),
        WarehouseColumn("qty", L(Kind.BIGINT)),
        WarehouseColumn('new "col"', L(Kind.DATE)),
    ]
    plan = PG.plan_evolution(table, _existing(conn, table), v2)
    summary = [(c.action, c.column, c.old_type, c.new_type) for c in plan.changes]
    assert summary == [
        ("widen_column", "name", "VARCHAR(10)", "VARCHAR(40)"),
        ("widen_column", "amount", "NUMERIC(10,2)", "NUMERIC(14,4)"),
        ("widen_column", "qty", "INTEGER", "BIGINT"),
        ("add_column", 'new "col"', None, "DATE"),
        ("kept_column", "gone", "TEXT", None),
    ]
    assert all(c.transactional for c in plan.changes)
    run(conn, plan.statements)
    assert PG.plan_evolution(table, _existing(conn, table), v2).is_empty
    long_name = "forty characters long, and then some éé"
    values = f"(2, {PG.literal(long_name)}, 1234567890.1234, 9223372036854775807, 'x', '2020-01-01')"
    run(conn, [f"INSERT INTO {PG.table_sql(table)} VALUES {values}"])
    assert rows(conn, f"SELECT * FROM {PG.table_sql(table)} ORDER BY 1") == [
        (1, "ten chars!", D("12345678.9100"), 2147483647, "bye", None),
        (2, long_name, D("1234567890.1234"), 9223372036854775807, "x", dt.date(2020, 1, 1)),
    ]


def test_an_incompatible_change_is_refused_naming_table_column_types_and_fix(
    conn: psycopg2.extensions.connection,
) -> None:
    table = TableRef(SCHEMA, "incompatible")
    _create(conn, table, [WarehouseColumn("id", L(Kind.BIGINT)), WarehouseColumn("at", L(Kind.TIMESTAMP))], ["id"])
    desired = [WarehouseColumn("id", L(Kind.BIGINT)), WarehouseColumn("at", L(Kind.TIMESTAMPTZ))]
    with pytest.raises(IncompatibleSchemaChange) as caught:
        PG.plan_evolution(table, _existing(conn, table), desired)
    error = caught.value
    assert (error.table, error.column, error.old_type, error.new_type) == (str(table), "at", "TIMESTAMP", "TIMESTAMPTZ")
    assert "Fix:" in str(error) and "DROP TABLE" in str(error)
    narrower = [WarehouseColumn("id", L(Kind.INTEGER)), WarehouseColumn("at", L(Kind.TIMESTAMP))]
    assert PG.plan_evolution(table, _existing(conn, table), narrower).is_empty  # BIGINT still holds INTEGER


# --------------------------------------------------------------------------- merge / append / replace


def _stage_orders(cur: Any, stage: str, data: list[tuple[Any, ...]]) -> None:
    cur.execute(PG.create_stage(stage, ORDER_COLUMNS))
    names = [c.name for c in ORDER_COLUMNS]
    batch = pa.record_batch(
        [
            pa.array([r[0] for r in data], pa.int64()),
            pa.array([r[1] for r in data], pa.string()),
            pa.array([r[2] for r in data], pa.timestamp("us")),
            pa.array([r[3] for r in data], pa.decimal128(12, 2)),
            pa.array([r[4] for r in data], pa.string()),
        ],
        names=names,
    )
    copy_batch(cur, stage, ORDER_COLUMNS, batch)


T0 = dt.datetime(2024, 1, 1)


def _t(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def _orders(conn: psycopg2.extensions.connection) -> list[tuple[Any, ...]]:
    return rows(
        conn, f'SELECT "id", "na""me", "updated_at", "amount", "doc"::text FROM {PG.table_sql(ORDERS)} ORDER BY 1, 3'
    )


def test_merge_keeps_the_latest_row_per_key_and_leaves_other_rows(conn: psycopg2.extensions.connection) -> None:
    _create(conn, ORDERS, ORDER_COLUMNS, ["id"])
    with conn.cursor() as cur:
        _stage_orders(
            cur,
            "s1",
            [
                (1, "one", _t(0), D("1.00"), None),
                (2, "two", _t(0), D("2.00"), None),
                (3, "three", _t(0), D("3.00"), "{}"),
            ],
        )
        for sql in PG.append_statements(ORDERS, "s1", ORDER_COLUMNS):
            cur.execute(sql)
    conn.commit()

    stage = PG.stage_name(ORDERS, "run2")
    with conn.cursor() as cur:
        _stage_orders(
            cur,
            stage,
            [
                (2, "two v3", _t(3), D("2.30"), '{"v": 3}'),
                (2, "two v2", _t(2), D("2.20"), '{"v": 2}'),
                (4, "four null cursor", None, D("4.00"), None),
                (4, "four latest", _t(9), D("4.90"), None),
                (4, "four older", _t(5), D("4.50"), None),
                (5, "five", _t(1), D("5.00"), "[1]"),
            ],
        )
        for sql in PG.merge_statements(ORDERS, stage, ORDER_COLUMNS, key=["id"], order_by=["updated_at", "id"]):
            cur.execute(sql)
    conn.commit()
    assert _orders(conn) == [
        (1, "one", _t(0), D("1.00"), None),
        (2, "two v3", _t(3), D("2.30"), '{"v": 3}'),
        (3, "three", _t(0), D("3.00"), "{}"),
        (4, "four latest", _t(9), D("4.90"), None),
        (5, "five", _t(1), D("5.00"), "[1]"),
    ]


def test_merge_on_a_composite_key_with_awkward_names(conn: psycopg2.extensions.connection) -> None:
    table = TableRef(SCHEMA, "composite")
    columns = [
        WarehouseColumn('k "1"', L(Kind.INTEGER)),
        WarehouseColumn("k `2`", L(Kind.VARCHAR, length=5)),
        WarehouseColumn("v", L(Kind.INTEGER)),
    ]
    _create(conn, table, columns, ['k "1"', "k `2`"])
    run(conn, [f"INSERT INTO {PG.table_sql(table)} VALUES (1, 'a', 1), (1, 'b', 1), (2, 'a', 1)"])
    with conn.cursor() as cur:
        cur.execute(PG.create_stage("c_stage", columns))
        batch = pa.record_batch(
            [pa.array([1, 1, 3], pa.int32()), pa.array(["b", "b", "a"]), pa.array([5, 6, 7], pa.int32())],
            names=[c.name for c in columns],
        )
        copy_batch(cur, "c_stage", columns, batch)
        for sql in PG.merge_statements(table, "c_stage", columns, key=['k "1"', "k `2`"], order_by=["v"]):
            cur.execute(sql)
    conn.commit()
    assert rows(conn, f"SELECT * FROM {PG.table_sql(table)} ORDER BY 1, 2") == [
        (1, "a", 1),
        (1, "b", 6),
        (2, "a", 1),
        (3, "a", 7),
    ]


def test_append_inserts_every_stage_row(conn: psycopg2.extensions.connection) -> None:
    table = TableRef(SCHEMA, "events")
    columns = [WarehouseColumn("id", L(Kind.BIGINT)), WarehouseColumn("doc", L(Kind.JSON))]
    _create(conn, table, columns, [])
    for attempt in range(2):
        with conn.cursor() as cur:
            cur.execute(PG.create_stage(f"e{attempt}", columns))
            copy_batch(
                cur,
                f"e{attempt}",
                columns,
                pa.record_batch([pa.array([1, 1, 2]), pa.array(["1", None, '"x"'])], names=["id", "doc"]),
            )
            for sql in PG.append_statements(table, f"e{attempt}", columns):
                cur.execute(sql)
        conn.commit()
    assert rows(conn, f'SELECT "id", "doc"::text FROM {PG.table_sql(table)} ORDER BY 1, 2') == [
        (1, "1"),
        (1, "1"),
        (1, None),
        (1, None),
        (2, '"x"'),
        (2, '"x"'),
    ]


def _fill_target(conn: psycopg2.extensions.connection, table: TableRef, count: int, tag: str) -> None:
    run(conn, [f"INSERT INTO {PG.table_sql(table)} SELECT g, {PG.literal(tag)} FROM generate_series(1, {count}) AS g"])


def test_replace_is_atomic_for_a_concurrent_reader(db: PostgresDatabase, conn: psycopg2.extensions.connection) -> None:
    table = TableRef(SCHEMA, "replaced 'table'")
    columns = [WarehouseColumn("id", L(Kind.BIGINT)), WarehouseColumn("tag", L(Kind.VARCHAR, length=10))]
    _create(conn, table, columns, ["id"])
    _fill_target(conn, table, 120_000, "old")

    seen: list[tuple[int, str | None, str | None]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        reading = db.connect()
        try:
            with reading.cursor() as cur:
                while True:
                    finished = done.is_set()
                    cur.execute(f'SELECT count(*), min("tag"), max("tag") FROM {PG.table_sql(table)}')
                    seen.append(cur.fetchone())
                    if finished:
                        return
        except BaseException as exc:
            errors.append(exc)
        finally:
            reading.close()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for round_number, (count, tag) in enumerate([(80_000, "new"), (90_000, "newer")]):
            time.sleep(0.2)
            with conn.cursor() as cur:
                stage = f"r{round_number}"
                cur.execute(PG.create_stage(stage, columns))
                cur.execute(
                    f"INSERT INTO {PG.quote(stage)} SELECT g, {PG.literal(tag)} FROM generate_series(1, {count}) AS g"
                )
                conn.commit()
                for sql in PG.replace_in_place_statements(table, stage, columns, key=["id"]):
                    cur.execute(sql)
            conn.commit()
        time.sleep(0.2)
    finally:
        done.set()
        thread.join(30)
    assert not errors, errors
    assert set(seen) <= {(120_000, "old", "old"), (80_000, "new", "new"), (90_000, "newer", "newer")}
    assert seen[0] == (120_000, "old", "old") and seen[-1] == (90_000, "newer", "newer")
    assert (80_000, "new", "new") in seen
    tables = rows(conn, f"SELECT table_name FROM information_schema.tables WHERE table_schema = {PG.literal(SCHEMA)}")
    assert not [t for (t,) in tables if t.startswith("replaced 'table'__sp")]  # no leftovers
    assert rows(conn, f'SELECT count(*) FROM {PG.table_sql(table)} WHERE "id" = 1') == [(1,)]  # key still enforced


def test_replace_in_place_keeps_the_table_and_is_atomic(conn: psycopg2.extensions.connection) -> None:
    table = TableRef(SCHEMA, "in place")
    columns = [WarehouseColumn("id", L(Kind.BIGINT)), WarehouseColumn("tag", L(Kind.VARCHAR, length=10))]
    _create(conn, table, columns, ["id"])
    _fill_target(conn, table, 10, "old")
    oid_before = rows(conn, f"SELECT {PG.literal(PG.table_sql(table))}::regclass::oid")
    with conn.cursor() as cur:
        cur.execute(PG.create_stage("ip", columns))
        cur.execute("INSERT INTO \"ip\" VALUES (1, 'a'), (1, 'b'), (2, 'c')")
        for sql in PG.replace_in_place_statements(table, "ip", columns, key=["id"], order_by=["tag"]):
            cur.execute(sql)
    conn.commit()
    assert rows(conn, f"SELECT * FROM {PG.table_sql(table)} ORDER BY 1") == [(1, "b"), (2, "c")]
    assert rows(conn, f"SELECT {PG.literal(PG.table_sql(table))}::regclass::oid") == oid_before


# --------------------------------------------------------------------------- ledger and lock


def test_ledger_row_commits_with_the_batch_and_is_found_again(conn: psycopg2.extensions.connection) -> None:
    table = TableRef(SCHEMA, "ledgered")
    columns = [WarehouseColumn("id", L(Kind.BIGINT))]
    _create(conn, table, columns, [])
    run(conn, [PG.create_ledger(SCHEMA), PG.create_ledger(SCHEMA)])
    entry = LedgerEntry(str(table), "batch-0001", "run-1", 3, files=1, bytes=123, watermark='{"id": 3}')

    def load(fail: bool) -> None:
        with conn.cursor() as cur:
            cur.execute(PG.lock_statement(table))
            loaded = PG.batch_loaded_query(SCHEMA, entry.table_name, entry.batch_id)
            cur.execute(loaded.sql, loaded.params)
            if cur.fetchone() is not None:
                conn.rollback()
                return
            cur.execute(f"INSERT INTO {PG.table_sql(table)} VALUES (1), (2), (3)")
            record = PG.record_batch(SCHEMA, entry)
            cur.execute(record.sql, record.params)
            if fail:
                raise RuntimeError("crash before commit")
        conn.commit()

    with pytest.raises(RuntimeError):
        load(fail=True)
    conn.rollback()
    assert rows(conn, f"SELECT count(*) FROM {PG.table_sql(table)}") == [(0,)]  # nothing half-done
    load(fail=False)
    load(fail=False)  # already in the ledger: skipped
    assert rows(conn, f"SELECT count(*) FROM {PG.table_sql(table)}") == [(3,)]
    query = PG.loaded_batches_query(SCHEMA, str(table))
    with conn.cursor() as cur:
        cur.execute(query.sql, query.params)
        assert [r[:3] for r in cur.fetchall()] == [("batch-0001", "run-1", 3)]
        duplicate = PG.record_batch(SCHEMA, entry)
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute(duplicate.sql, duplicate.params)


def test_lock_lets_one_writer_per_table_at_a_time(db: PostgresDatabase, conn: psycopg2.extensions.connection) -> None:
    table = TableRef(SCHEMA, "locked")
    other = db.connect()
    other.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute(PG.lock_statement(table))
        with other.cursor() as cur:
            cur.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg2.errors.LockNotAvailable):
                cur.execute(PG.lock_statement(table))
        other.rollback()
        with other.cursor() as cur:  # another table is not blocked
            cur.execute(PG.lock_statement(TableRef(SCHEMA, "locked 2")))
        other.rollback()
        conn.commit()  # releases the first writer's lock
        with other.cursor() as cur:
            cur.execute("SET lock_timeout = '200ms'")
            cur.execute(PG.lock_statement(table))
        other.rollback()
    finally:
        other.close()
