"""Row-count and key-uniqueness queries behind the asset checks: plain Python, no Dagster.

- Row counts: source and target rows within the synced window, i.e. rows whose keyset is at or
  below the load watermark (every row the syncs so far must have delivered); a whole-table count
  for full syncs.
- Key uniqueness: primary-key values that occur more than once in the target.
- The target's columns (``information_schema``) for the asset's column schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sync_platform.configuration.project import TableSpec
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.shape import TableShape
from sync_platform.engine.strategies import keyset_after, quote_mysql, table_sql
from sync_platform.engine.watermark import CursorValue, Watermark
from sync_platform.warehouse import ExistingColumn, TableRef, WarehouseDialect, dialect_for


@dataclass(frozen=True)
class RowCounts:
    """Rows in the source and the target over the same window."""

    source_rows: int
    target_rows: int
    window: str  # the condition counted, readable

    @property
    def difference(self) -> int:
        return self.target_rows - self.source_rows


@dataclass(frozen=True)
class NotComparable:
    """Why a check cannot say anything for this table (reported, never silently passed)."""

    reason: str


@dataclass(frozen=True)
class KeyDuplicates:
    key: tuple[str, ...]
    duplicated_keys: int  # key values present more than once
    extra_rows: int  # rows beyond the first for those keys


def _target(spec: TableSpec) -> TableRef:
    return TableRef(spec.target_schema, spec.target_table)


def _exists(cursor: Any, dialect: WarehouseDialect, table: TableRef) -> bool:
    query = dialect.table_exists_query(table)
    cursor.execute(query.sql, query.params)
    return cursor.fetchone() is not None


def _at_or_below(dialect: WarehouseDialect, columns: tuple[str, ...], values: tuple[CursorValue, ...]) -> str:
    """``(c1, c2, …) <= (%s, %s, …)`` without row constructors (Redshift has none)."""
    first = dialect.quote(columns[0])
    if len(columns) == 1:
        return f"{first} <= %s"
    return f"({first} < %s OR ({first} = %s AND {_at_or_below(dialect, columns[1:], values[1:])}))"


def _params(values: tuple[CursorValue, ...]) -> list[CursorValue]:
    """Parameters for :func:`_at_or_below`: every column but the last appears twice."""
    out: list[CursorValue] = []
    for value in values[:-1]:
        out += [value, value]
    return [*out, values[-1]]


def compare_row_counts(
    registry: ConnectionRegistry,
    spec: TableSpec,
    shape: TableShape,
    load_watermark: Watermark,
    floor: Watermark | None = None,
) -> RowCounts | NotComparable:
    """Source and target row counts within the synced window (the whole table for full syncs).

    ``floor``: the last manual ``watermark set`` position; rows at or below it were skipped on purpose
    and are counted on neither side.
    """
    choice = shape.choice
    if choice.strategy == "custom_sql":
        return NotComparable("custom_sql: the source rows are defined by a query, not a table window")
    full = choice.strategy == "full_sync"
    if full and choice.write_mode == "append":
        return NotComparable("full_sync in append mode keeps every pass, so counts differ by design")
    extra = spec.config.additional_where
    source_sql = f"SELECT COUNT(*) FROM {table_sql(spec.schema, spec.table)}"
    conditions: list[str] = [f"({extra})"] if extra else []
    target_where, window = "", "whole table"
    params: list[CursorValue] = []
    if not full:
        names = shape.keyset_names
        values = load_watermark.values(names) if names else None
        if values is None:
            return NotComparable("nothing loaded yet (no load watermark)")
        first = quote_mysql(names[0])
        conditions += [f"{first} IS NOT NULL", f"NOT ({keyset_after(shape.keyset, values)})"]
        dialect = dialect_for(registry.warehouse(spec.target).dialect)
        target_where = " WHERE " + _at_or_below(dialect, shape.warehouse_names(names), values)
        params = _params(values)
        window = f"({', '.join(names)}) <= {load_watermark.describe()}"
        floor_values = floor.values(names) if floor is not None else None
        if floor_values is not None:
            conditions.append(keyset_after(shape.keyset, floor_values))
            target_where += f" AND NOT ({_at_or_below(dialect, shape.warehouse_names(names), floor_values)})"
            params += _params(floor_values)
            window = f"{floor.describe()} < ({', '.join(names)}) <= {load_watermark.describe()} (manual set)"
    if conditions:
        source_sql += " WHERE " + " AND ".join(conditions)
    with registry.source(spec.source).connect() as conn, conn.cursor() as cursor:
        cursor.execute(source_sql)
        (source_rows,) = cursor.fetchone()
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    with warehouse.connect() as conn, conn.cursor() as cursor:
        target_rows = 0
        if _exists(cursor, dialect, _target(spec)):
            cursor.execute(f"SELECT COUNT(*) FROM {dialect.table_sql(_target(spec))}{target_where}", params or None)
            (target_rows,) = cursor.fetchone()
    return RowCounts(int(source_rows), int(target_rows), window)


def duplicate_keys(registry: ConnectionRegistry, spec: TableSpec, shape: TableShape) -> KeyDuplicates | NotComparable:
    """Primary-key values present more than once in the target (Redshift does not enforce keys).

    Keys are compared as the source compares them (``TableShape.key_equality``): under
    ``utf8mb4_general_ci`` a target holding both ``'abc'`` and ``'ABC '`` holds one key twice.
    """
    if not shape.choice.primary_key:
        return NotComparable("the table has no primary key (loads append)")
    if shape.choice.write_mode == "append":
        return NotComparable("write_mode append: rows are appended, keys are not merged")
    key = shape.warehouse_names(shape.choice.primary_key)
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    rules = {shape.mapping.warehouse_name(k): rule for k, rule in shape.key_equality.items()}
    columns = ", ".join(dialect.key_match(dialect.quote(c), rules.get(c)) for c in key)
    with warehouse.connect() as conn, conn.cursor() as cursor:
        if not _exists(cursor, dialect, _target(spec)):
            return KeyDuplicates(key, 0, 0)
        cursor.execute(
            "SELECT COUNT(*), COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM "
            f"{dialect.table_sql(_target(spec))} GROUP BY {columns} HAVING COUNT(*) > 1) AS duplicated"
        )
        duplicated, extra = cursor.fetchone()
    return KeyDuplicates(key, int(duplicated), int(extra))


def target_columns(registry: ConnectionRegistry, spec: TableSpec) -> tuple[ExistingColumn, ...]:
    """The target table's columns as information_schema reports them (empty when it does not exist)."""
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    query = dialect.columns_query(_target(spec))
    with warehouse.connect() as conn, conn.cursor() as cursor:
        cursor.execute(query.sql, query.params)
        return dialect.parse_columns(cursor.fetchall())
