"""The two servers a reconcile compares, behind one interface: checksums, boundaries and row hashes of key ranges.

A key range is ``(lower, upper]`` on the primary key in the *source's* order; ``None`` is open.
MySQL compares the raw key columns (its index, its collation). The warehouse compares each key
column through ``WarehouseDialect.key_order_expression``, which follows MySQL's order where the
types allow (``UPPER`` for case-insensitive collations); where it still differs (accents), a row
lands in another range on each side, both ranges differ, and the rows are matched by key.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from sync_platform.engine.key_ranges import (
    KeyRange,
    KeyValues,
    KeyWalk,
    compare_keys,
    key_params,
    mysql_boundary_sql,
    range_condition,
)
from sync_platform.engine.mysql_sql import quote_mysql, table_sql
from sync_platform.engine.typemap import Kind, LogicalType
from sync_platform.warehouse import TableRef, WarehouseDialect

KEYS_PER_QUERY = 500


@dataclass(frozen=True)
class KeyColumn:
    """One primary-key column: its names on each side, its warehouse type and MySQL collation."""

    source_name: str
    warehouse_name: str
    logical: LogicalType
    case_insensitive: bool = False


@dataclass(frozen=True)
class Checksum:
    rows: int
    total: int  # sum of the rows' 60-bit hashes


def comparable_key(values: Sequence[Any]) -> KeyValues:
    """A key as Python compares it across drivers (bytea arrives as memoryview, instants with a zone)."""
    out: list[Any] = []
    for value in values:
        if isinstance(value, memoryview | bytearray):
            value = bytes(value)
        elif isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        elif isinstance(value, Decimal) and value == value.to_integral_value():
            value = int(value)
        out.append(value)
    return tuple(out)


class Side(Protocol):
    name: str

    def checksum(self, key_range: KeyRange) -> Checksum: ...

    def boundaries(self, key_range: KeyRange, step: int) -> list[KeyValues]: ...

    def next_boundary(self, key_range: KeyRange, step: int) -> KeyValues | None: ...

    def split_boundaries(self, key_range: KeyRange, step: int) -> list[KeyValues]: ...

    def checksums(self, key_range: KeyRange, bounds: Sequence[KeyValues]) -> list[Checksum]: ...

    def row_hashes(self, key_range: KeyRange) -> dict[KeyValues, int]: ...

    def hashes_for_keys(self, keys: Sequence[KeyValues]) -> dict[KeyValues, int]: ...

    def bucket_checksums(self, key_range: KeyRange, origin: int, width: int, buckets: int) -> list[Checksum]: ...

    def integer_span(self) -> IntegerSpan | None: ...


INTEGER_KINDS = (Kind.SMALLINT, Kind.INTEGER, Kind.BIGINT)
EXACT_COUNT_BELOW = 100_000  # estimated rows under which integer_span counts them


@dataclass(frozen=True)
class IntegerSpan:
    """The rows (estimated on large tables) and the smallest and largest key of a single integer key."""

    rows: int
    low: int
    high: int


def bucket_expression(column: str, buckets: int, divide: str) -> str:
    """Which of ``buckets`` buckets of ``width`` keys after ``origin`` a key falls in (parameters: origin, width).

    ``(k - origin - 1) DIV width``, clamped to the first and last bucket: bucket ``i`` holds
    ``origin + i·width < k <= origin + (i+1)·width``; keys below or above the span land in the edge
    buckets. Integer division truncates on both servers; the clamp makes the sign irrelevant.
    """
    return f"LEAST(GREATEST(({column} - %s - 1) {divide} %s, 0), {buckets - 1})"


class Pacer:
    """Keeps source reads under ``rows_per_second``; sleeps ``sleep_seconds`` per range read.

    A query that checksums several top-level ranges at once is followed by one sleep per range.
    """

    def __init__(self, rows_per_second: float | None = None, sleep_seconds: float = 0.0) -> None:
        self.rows_per_second = rows_per_second
        self.sleep_seconds = sleep_seconds
        self.started = time.monotonic()
        self.rows = 0
        self.slept = 0.0

    def read(self, rows: int, ranges: int = 1) -> None:
        self.rows += rows
        pause = self.sleep_seconds * ranges
        if self.rows_per_second:
            ahead = self.rows / self.rows_per_second - (time.monotonic() - self.started)
            pause = max(pause, ahead)
        if pause > 0:
            self.slept += pause
            time.sleep(pause)


class _CountedQueries:
    """One side's queries on its connection, counted and timed (``queries``, ``seconds``) for the result."""

    conn: Any
    queries: int
    seconds: float

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        self.queries += 1
        started = time.monotonic()
        with self.conn.cursor() as cursor:
            cursor.execute(sql, tuple(params))
            rows = list(cursor.fetchall())
        self.seconds += time.monotonic() - started
        return rows


class MySQLSide(_CountedQueries, KeyWalk):
    """The source: one connection holding a consistent snapshot for the whole comparison."""

    name = "source"

    def __init__(self, conn: Any, schema: str, table: str, keys: Sequence[KeyColumn], row_hash_sql: str, pacer: Pacer):
        self.conn = conn
        self.schema, self.table = schema, table
        self.table_sql = table_sql(schema, table)
        self.keys = tuple(keys)
        self.columns = [quote_mysql(k.source_name) for k in keys]
        self.key_list = ", ".join(self.columns)
        self.row_hash_sql = row_hash_sql.replace("%", "%%")  # queries always carry parameters
        self.pacer = pacer
        self.queries = 0
        self.seconds = 0.0  # spent in queries (pacing aside)

    def checksum(self, key_range: KeyRange) -> Checksum:
        where, params = range_condition(self.columns, key_range)
        ((rows, total),) = self._run(
            f"SELECT COUNT(*), COALESCE(SUM({self.row_hash_sql}), 0) FROM {self.table_sql} WHERE {where}", params
        )
        self.pacer.read(int(rows))
        return Checksum(int(rows), int(total))

    def null_checksum(self) -> Checksum:
        """The rows whose (cursor) column is NULL: outside every range."""
        ((rows, total),) = self._run(
            f"SELECT COUNT(*), COALESCE(SUM({self.row_hash_sql}), 0) FROM {self.table_sql} "
            f"WHERE {self.columns[0]} IS NULL",
            (),
        )
        self.pacer.read(int(rows))
        return Checksum(int(rows), int(total))

    def next_boundary(self, key_range: KeyRange, step: int) -> KeyValues | None:
        """The ``step``-th key of the range, walking the primary key (touches ``step`` index entries)."""
        where, params = range_condition(self.columns, key_range)
        rows = self._run(mysql_boundary_sql(self.table_sql, self.key_list, where, step), params)
        return tuple(rows[0]) if rows else None

    def split_boundaries(self, key_range: KeyRange, step: int) -> list[KeyValues]:
        """Every ``step``-th key of a (small) range: a few short index walks, cheaper in MySQL than a window."""
        return self.boundaries(key_range, step)

    def checksums(self, key_range: KeyRange, bounds: Sequence[KeyValues]) -> list[Checksum]:
        """The checksum of each sub-range ``bounds`` cut ``key_range`` into, hashing each row once."""
        where, params = range_condition(self.columns, key_range)
        bucket, bucket_params = _bucket_case(self.columns, ["%s"] * len(self.columns), bounds)
        rows = self._run(
            f"SELECT {bucket} AS sp_bucket, COUNT(*), COALESCE(SUM({self.row_hash_sql}), 0) FROM {self.table_sql} "
            f"WHERE {where} GROUP BY sp_bucket",
            [*bucket_params, *params],
        )
        self.pacer.read(sum(int(r[1]) for r in rows))
        return _by_bucket(rows, len(bounds) + 1)

    def integer_span(self) -> IntegerSpan | None:
        """Rows, lowest and highest key of a single integer key; None for other keys or an empty table.

        MIN and MAX read the ends of the primary key. The rows only size the ranges: InnoDB's estimate
        (no scan) where it is large; an exact COUNT where the estimate is small or missing (a table
        analyzed while small, which an undersized estimate would cut into few huge ranges).
        """
        if len(self.keys) != 1 or self.keys[0].logical.kind not in INTEGER_KINDS:
            return None
        column = self.columns[0]
        ((low, high, estimate),) = self._run(
            f"SELECT MIN({column}), MAX({column}), (SELECT table_rows FROM information_schema.tables "
            f"WHERE table_schema = %s AND table_name = %s) FROM {self.table_sql}",
            (self.schema, self.table),
        )
        if low is None:
            return None
        rows = int(estimate or 0)
        if rows < EXACT_COUNT_BELOW:
            ((rows,),) = self._run(f"SELECT COUNT(*) FROM {self.table_sql}", ())
        return IntegerSpan(max(1, int(rows)), int(low), int(high))

    def bucket_checksums(self, key_range: KeyRange, origin: int, width: int, buckets: int) -> list[Checksum]:
        """The checksums of ``buckets`` arithmetic buckets of the range (see :func:`bucket_expression`)."""
        where, params = range_condition(self.columns, key_range)
        # Signed: an unsigned key minus a larger origin would be out of range (MySQL raises).
        bucket = bucket_expression(f"CAST({self.columns[0]} AS SIGNED)", buckets, "DIV")
        rows = self._run(
            f"SELECT {bucket} AS sp_bucket, COUNT(*), COALESCE(SUM({self.row_hash_sql}), 0) FROM {self.table_sql} "
            f"WHERE {where} GROUP BY sp_bucket",
            [origin, width, *params],
        )
        self.pacer.read(sum(int(r[1]) for r in rows), ranges=buckets)
        return _by_bucket(rows, buckets)

    def row_hashes(self, key_range: KeyRange) -> dict[KeyValues, int]:
        where, params = range_condition(self.columns, key_range)
        rows = self._run(f"SELECT {self.key_list}, {self.row_hash_sql} FROM {self.table_sql} WHERE {where}", params)
        self.pacer.read(len(rows))
        width = len(self.columns)
        return {comparable_key(r[:width]): int(r[width]) for r in rows}

    def hashes_for_keys(self, keys: Sequence[KeyValues]) -> dict[KeyValues, int]:
        """Row hashes of the rows with these keys (in the snapshot)."""
        found: dict[KeyValues, int] = {}
        one = "(" + " AND ".join(f"{c} = %s" for c in self.columns) + ")"
        width = len(self.columns)
        for start in range(0, len(keys), KEYS_PER_QUERY):
            chunk = keys[start : start + KEYS_PER_QUERY]
            rows = self._run(
                f"SELECT {self.key_list}, {self.row_hash_sql} FROM {self.table_sql} "
                f"WHERE {' OR '.join([one] * len(chunk))}",
                [v for key in chunk for v in key],
            )
            found.update({comparable_key(r[:width]): int(r[width]) for r in rows})
        return found

    def keys_present(self, keys: Sequence[KeyValues]) -> set[KeyValues]:
        """Which of ``keys`` exist now (a current read outside the snapshot: checked before deleting)."""
        present: set[KeyValues] = set()
        one = "(" + " AND ".join(f"{c} = %s" for c in self.columns) + ")"
        for start in range(0, len(keys), KEYS_PER_QUERY):
            chunk = keys[start : start + KEYS_PER_QUERY]
            rows = self._run(
                f"SELECT {self.key_list} FROM {self.table_sql} WHERE {' OR '.join([one] * len(chunk))}",
                [v for key in chunk for v in key],
            )
            present.update(comparable_key(r) for r in rows)
        return present


class WarehouseSide(_CountedQueries, KeyWalk):
    """The target: compares keys through the dialect's key order expressions."""

    name = "target"

    def integer_span(self) -> IntegerSpan | None:
        return None  # ranges are cut on the source

    def __init__(
        self,
        conn: Any,
        dialect: WarehouseDialect,
        table: TableRef,
        keys: Sequence[KeyColumn],
        row_hash_sql: str,
        live_filter: str | None = None,
    ):
        self.conn = conn
        self.dialect = dialect
        self.table_sql = dialect.table_sql(table)
        self.keys = tuple(keys)
        self.order = [
            dialect.key_order_expression(
                dialect.quote(k.warehouse_name), k.logical, case_insensitive=k.case_insensitive
            )
            for k in keys
        ]
        self.key_list = ", ".join(dialect.quote(k.warehouse_name) for k in keys)
        self.row_hash_sql = row_hash_sql.replace("%", "%%")
        self.live_filter = live_filter  # e.g. soft-deleted rows are not rows of the source
        self.queries = 0
        self.seconds = 0.0

    def _where(self, key_range: KeyRange) -> tuple[str, list[Any]]:
        where, params = _warehouse_condition(self, key_range)
        if self.live_filter:
            where = f"({where}) AND {self.live_filter}"
        return where, params

    def checksum(self, key_range: KeyRange) -> Checksum:
        where, params = self._where(key_range)
        ((rows, total),) = self._run(
            f"SELECT COUNT(*), {self.dialect.hash_sum(self.row_hash_sql)} FROM {self.table_sql} WHERE {where}", params
        )
        return Checksum(int(rows), int(total))

    def null_checksum(self) -> Checksum:
        live = f" AND {self.live_filter}" if self.live_filter else ""
        ((rows, total),) = self._run(
            f"SELECT COUNT(*), {self.dialect.hash_sum(self.row_hash_sql)} FROM {self.table_sql} "
            f"WHERE {self.order[0]} IS NULL{live}",
            (),
        )
        return Checksum(int(rows), int(total))

    def next_boundary(self, key_range: KeyRange, step: int) -> KeyValues | None:
        where, params = self._where(key_range)
        rows = self._run(
            f"SELECT {self.key_list} FROM {self.table_sql} WHERE {where} ORDER BY {', '.join(self.order)} "
            f"LIMIT 1 OFFSET {step - 1}",
            params,
        )
        return comparable_key(rows[0]) if rows else None

    def split_boundaries(self, key_range: KeyRange, step: int) -> list[KeyValues]:
        where, params = self._where(key_range)
        order = ", ".join(self.order)
        rows = self._run(
            f"SELECT {self.key_list} FROM (SELECT {self.key_list}, ROW_NUMBER() OVER (ORDER BY {order}) AS sp_rn "
            f"FROM {self.table_sql} WHERE {where}) AS numbered WHERE MOD(sp_rn, {step}) = 0 ORDER BY sp_rn",
            params,
        )
        return [comparable_key(r) for r in rows]

    def checksums(self, key_range: KeyRange, bounds: Sequence[KeyValues]) -> list[Checksum]:
        where, params = self._where(key_range)
        bucket, bucket_params = _bucket_case(
            self.order, _parameters(self), [warehouse_values(self.keys, b) for b in bounds]
        )
        rows = self._run(
            f"SELECT sp_bucket, COUNT(*), {self.dialect.hash_sum('sp_hash')} FROM (SELECT {bucket} AS sp_bucket, "
            f"{self.row_hash_sql} AS sp_hash FROM {self.table_sql} WHERE {where}) AS hashed GROUP BY sp_bucket",
            [*bucket_params, *params],
        )
        return _by_bucket(rows, len(bounds) + 1)

    def bucket_checksums(self, key_range: KeyRange, origin: int, width: int, buckets: int) -> list[Checksum]:
        where, params = self._where(key_range)
        bucket = bucket_expression(self.order[0], buckets, "/")  # integers: truncating division
        rows = self._run(
            f"SELECT {bucket} AS sp_bucket, COUNT(*), {self.dialect.hash_sum(self.row_hash_sql)} "
            f"FROM {self.table_sql} WHERE {where} GROUP BY 1",
            [origin, width, *params],
        )
        return _by_bucket(rows, buckets)

    def hashes_for_keys(self, keys: Sequence[KeyValues]) -> dict[KeyValues, int]:
        return _warehouse_hashes_for_keys(self, keys)

    def row_hashes(self, key_range: KeyRange) -> dict[KeyValues, int]:
        where, params = self._where(key_range)
        rows = self._run(f"SELECT {self.key_list}, {self.row_hash_sql} FROM {self.table_sql} WHERE {where}", params)
        width = len(self.keys)
        return {comparable_key(r[:width]): int(r[width]) for r in rows}


def _warehouse_hashes_for_keys(side: WarehouseSide, keys: Sequence[KeyValues]) -> dict[KeyValues, int]:
    found: dict[KeyValues, int] = {}
    d = side.dialect
    one = "(" + " AND ".join(f"{d.quote(k.warehouse_name)} = %s" for k in side.keys) + ")"
    width = len(side.keys)
    live = f" AND {side.live_filter}" if side.live_filter else ""
    for start in range(0, len(keys), KEYS_PER_QUERY):
        chunk = keys[start : start + KEYS_PER_QUERY]
        rows = side._run(
            f"SELECT {side.key_list}, {side.row_hash_sql} FROM {side.table_sql} "
            f"WHERE ({' OR '.join([one] * len(chunk))}){live}",
            [v for key in chunk for v in warehouse_values(side.keys, key)],
        )
        found.update({comparable_key(r[:width]): int(r[width]) for r in rows})
    return found


def _bucket_case(columns: Sequence[str], values: Sequence[str], bounds: Sequence[KeyValues]) -> tuple[str, list[Any]]:
    """``CASE WHEN key <= b0 THEN 0 WHEN key <= b1 THEN 1 … ELSE n END`` and its parameters."""
    if not bounds:
        return "0", []
    whens: list[str] = []
    params: list[Any] = []
    for index, bound in enumerate(bounds):
        whens.append(f"WHEN {compare_keys(columns, values, above=False)} THEN {index}")
        params += key_params(bound)
    return f"CASE {' '.join(whens)} ELSE {len(bounds)} END", params


def _by_bucket(rows: Sequence[tuple], count: int) -> list[Checksum]:
    found = {int(r[0]): Checksum(int(r[1]), int(r[2])) for r in rows}
    return [found.get(i, Checksum(0, 0)) for i in range(count)]


def _parameters(side: WarehouseSide) -> list[str]:
    """Each key column's parameter placeholder, wrapped in the column's order expression."""
    d = side.dialect
    return [
        d.key_order_expression(_typed_parameter(k.logical), k.logical, case_insensitive=k.case_insensitive)
        for k in side.keys
    ]


def _warehouse_condition(side: WarehouseSide, key_range: KeyRange) -> tuple[str, list[Any]]:
    """Like :func:`range_condition`, each parameter wrapped in its column's order expression."""
    values = _parameters(side)
    parts: list[str] = []
    params: list[Any] = []
    if key_range.lower is not None:
        parts.append(compare_keys(side.order, values, above=True))
        params += key_params(warehouse_values(side.keys, key_range.lower))
    if key_range.upper is not None:
        parts.append(compare_keys(side.order, values, above=False))
        params += key_params(warehouse_values(side.keys, key_range.upper))
    if not parts and side.order:
        parts.append(f"{side.order[0]} IS NOT NULL")
    return (" AND ".join(parts) or "TRUE"), params


def _typed_parameter(logical: LogicalType) -> str:
    """A parameter typed like its column (PostgreSQL cannot infer the type of ``UPPER(%s)``)."""
    if logical.kind in (Kind.VARCHAR, Kind.TEXT):
        return "CAST(%s AS VARCHAR)"
    return "%s"


def warehouse_values(keys: Sequence[KeyColumn], values: KeyValues) -> KeyValues:
    """Source key values as the warehouse column holds them (TIMESTAMP keys are UTC instants)."""
    out = []
    for key, value in zip(keys, values, strict=True):
        if key.logical.kind is Kind.TIMESTAMPTZ and isinstance(value, dt.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        out.append(value)
    return tuple(out)
