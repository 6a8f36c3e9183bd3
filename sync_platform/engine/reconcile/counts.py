"""Row-count and key-uniqueness queries behind the asset checks: plain Python, no Dagster.

- Row counts per run (:func:`window_row_counts`): source and target rows whose keyset position is
  in the window the run loaded, ``(start of its first batch, end of its last]`` — O(rows changed).
- Row counts in full (:func:`compare_row_counts`): rows whose keyset is at or below the load
  watermark (every row the syncs so far must have delivered) — O(table). Full syncs count the whole
  table either way.
- Key uniqueness per run (:func:`window_duplicate_keys`): keys of the window's rows that occur more
  than once in the target; in full (:func:`duplicate_keys`): every key of the target.
- The target's columns (``information_schema``) for the asset's column schema.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sync_platform.configuration.project import TableSpec
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.mysql_sql import keyset_after, keyset_at_or_below, table_sql
from sync_platform.engine.shape import TableShape
from sync_platform.engine.watermark import CursorValue, Watermark
from sync_platform.warehouse import ExistingColumn, TableRef, WarehouseDialect, dialect_for


@dataclass(frozen=True)
class RowCounts:
    """Rows in the source and the target over the same window, and what counting them cost."""

    source_rows: int
    target_rows: int
    window: str  # the condition counted, readable
    scope: str = "synced window"  # WINDOW (this run's rows), SYNCED (everything synced so far) or WHOLE
    source_seconds: float = 0.0
    target_seconds: float = 0.0

    @property
    def difference(self) -> int:
        return self.target_rows - self.source_rows

    @property
    def seconds(self) -> float:
        return self.source_seconds + self.target_seconds


@dataclass(frozen=True)
class NotComparable:
    """Why a check cannot say anything for this table (reported, never silently passed)."""

    reason: str


@dataclass(frozen=True)
class KeyDuplicates:
    key: tuple[str, ...]
    duplicated_keys: int  # key values present more than once
    extra_rows: int  # rows beyond the first for those keys
    scope: str = "whole table"
    window: str = "whole table"
    seconds: float = 0.0


# What a count or key check covered (the ``scope`` of its metadata).
WINDOW = "this run's window"  # rows whose keyset position is in (start, end] of the batches this run loaded
SYNCED = "synced window"  # every row at or below the load watermark: all that the syncs so far delivered
WHOLE = "whole table"  # full syncs, and tables whose keyset has no position yet
ENFORCED = "unique index"  # the warehouse enforces the key (PostgreSQL): nothing to read


@dataclass(frozen=True)
class Window:
    """Keyset positions ``(start, end]``: the rows one run loaded (``start`` None: from the beginning)."""

    start: Watermark | None
    end: Watermark

    @classmethod
    def nothing(cls) -> Window:
        """The window of a run that loaded no batch."""
        return cls(Watermark(), Watermark())

    @property
    def empty(self) -> bool:
        return self.start is not None and self.start.position == self.end.position

    def describe(self, names: tuple[str, ...]) -> str:
        if self.empty:
            return "empty: this run loaded no rows"
        start = self.start.describe() if self.start is not None and self.start.position else "start"
        return f"{start} < ({', '.join(names)}) <= {self.end.describe()}"


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


@dataclass(frozen=True)
class _Bounds:
    """One keyset window written for both servers: MySQL text, warehouse text with its parameters."""

    source: str  # conditions joined by AND ("" for the whole table)
    target: str
    params: list[CursorValue]
    text: str


def _bounds(
    registry: ConnectionRegistry,
    spec: TableSpec,
    shape: TableShape,
    lower: tuple[CursorValue, ...] | None,
    upper: tuple[CursorValue, ...],
    text: str,
) -> _Bounds:
    """``lower < keyset <= upper`` on both sides (rows whose first keyset column is NULL are in neither).

    On MySQL the bounds are written so an index on the first keyset column range-scans the window.
    """
    names = shape.keyset_names
    dialect = dialect_for(registry.warehouse(spec.target).dialect)
    columns = shape.warehouse_names(names)
    source = [keyset_at_or_below(shape.keyset, upper)]
    target = [_at_or_below(dialect, columns, upper)]
    params = _params(upper)
    if lower is not None:
        source.insert(0, keyset_after(shape.keyset, lower))
        target.append(f"NOT ({_at_or_below(dialect, columns, lower)})")
        params += _params(lower)
    extra = spec.config.additional_where
    if extra:
        source.insert(0, f"({extra})")
    return _Bounds(" AND ".join(source), " AND ".join(target), params, text)


def _count(registry: ConnectionRegistry, spec: TableSpec, bounds: _Bounds | None, scope: str, window: str) -> RowCounts:
    """Count both sides over ``bounds`` (None: the whole table, with ``additional_where`` on the source).

    The two servers count at the same time: the check takes the longer of the two, not their sum.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="source-count") as pool:
        source = pool.submit(_timed, _source_rows, registry, spec, bounds)
        where = bounds.target if bounds is not None else ""
        target_rows, target_seconds = _timed(
            _target_rows, registry, spec, where, bounds.params if bounds is not None and where else []
        )
        source_rows, source_seconds = source.result()
    return RowCounts(source_rows, target_rows, window, scope, source_seconds, target_seconds)


def _timed(count: Callable[..., int], *args: Any) -> tuple[int, float]:
    started = time.monotonic()
    rows = count(*args)
    return rows, time.monotonic() - started


def _source_rows(registry: ConnectionRegistry, spec: TableSpec, bounds: _Bounds | None) -> int:
    source_sql = f"SELECT COUNT(*) FROM {table_sql(spec.schema, spec.table)}"
    extra = spec.config.additional_where
    if bounds is not None and bounds.source:
        source_sql += f" WHERE {bounds.source}"
    elif bounds is None and extra:
        source_sql += f" WHERE ({extra})"
    with registry.source(spec.source).connect() as conn, conn.cursor() as cursor:
        cursor.execute(source_sql)
        (rows,) = cursor.fetchone()
    return int(rows)


def _target_rows(registry: ConnectionRegistry, spec: TableSpec, where: str, params: list[CursorValue]) -> int:
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    with warehouse.connect() as conn, conn.cursor() as cursor:
        if not _exists(cursor, dialect, _target(spec)):
            return 0
        cursor.execute(
            f"SELECT COUNT(*) FROM {dialect.table_sql(_target(spec))}" + (f" WHERE {where}" if where else ""),
            params or None,
        )
        (rows,) = cursor.fetchone()
    return int(rows)


def _countable(shape: TableShape) -> NotComparable | None:
    choice = shape.choice
    if choice.strategy == "custom_sql":
        return NotComparable("custom_sql: the source rows are defined by a query, not a table window")
    if choice.strategy == "full_sync" and choice.write_mode == "append":
        return NotComparable("full_sync in append mode keeps every pass, so counts differ by design")
    return None


def compare_row_counts(
    registry: ConnectionRegistry,
    spec: TableSpec,
    shape: TableShape,
    load_watermark: Watermark,
    floor: Watermark | None = None,
) -> RowCounts | NotComparable:
    """Source and target row counts within the synced window (the whole table for full syncs): the
    full-table check, O(table) on both sides.

    ``floor``: the last manual ``watermark set`` position; rows at or below it were skipped on purpose
    and are counted on neither side.
    """
    bounds = _synced_bounds(registry, spec, shape, load_watermark, floor)
    if isinstance(bounds, NotComparable):
        return bounds
    if bounds is None:
        return _count(registry, spec, None, WHOLE, "whole table")
    return _count(registry, spec, bounds, SYNCED, bounds.text)


@dataclass(frozen=True)
class SharedMember:
    """One of several source tables loading one warehouse table, with its own load watermark."""

    spec: TableSpec
    shape: TableShape
    load_watermark: Watermark
    floor: Watermark | None = None


def _synced_bounds(
    registry: ConnectionRegistry, spec: TableSpec, shape: TableShape, load_watermark: Watermark, floor: Watermark | None
) -> _Bounds | NotComparable | None:
    """Everything synced so far: keyset at or below the load watermark, above a manual set (None: whole table)."""
    refused = _countable(shape)
    if refused is not None:
        return refused
    if shape.choice.strategy == "full_sync":
        return None
    names = shape.keyset_names
    values = load_watermark.values(names) if names else None
    if values is None:
        return NotComparable("nothing loaded yet (no load watermark)")
    window = f"({', '.join(names)}) <= {load_watermark.describe()}"
    floor_values = floor.values(names) if floor is not None else None
    if floor is not None and floor_values is not None:
        window = f"{floor.describe()} < ({', '.join(names)}) <= {load_watermark.describe()} (manual set)"
    return _bounds(registry, spec, shape, floor_values, values, window)


def compare_shared_row_counts(registry: ConnectionRegistry, members: list[SharedMember]) -> RowCounts | NotComparable:
    """A warehouse table several source tables load: the SUM of the sources' rows in their own synced
    windows against the target's rows in any of those windows (a target row is counted once). O(table).

    The target cannot tell which source a row came from, so a row of one source replaced by another
    source's row with the same key shows as a row missing here.
    """
    windows: list[tuple[TableSpec, _Bounds | None]] = []
    for member in members:
        bounds = _synced_bounds(registry, member.spec, member.shape, member.load_watermark, member.floor)
        if isinstance(bounds, NotComparable):
            return NotComparable(f"{member.spec.identity}: {bounds.reason}")
        windows.append((member.spec, bounds))
    started = time.monotonic()
    source_rows = sum(_source_rows(registry, spec, bounds) for spec, bounds in windows)
    source_seconds = time.monotonic() - started
    whole = any(bounds is None or not bounds.target for _, bounds in windows)
    where = "" if whole else " OR ".join(f"({bounds.target})" for _, bounds in windows if bounds is not None)
    params = [] if whole else [p for _, bounds in windows if bounds is not None for p in bounds.params]
    described = "; ".join(f"{spec.identity}: {bounds.text if bounds else 'whole table'}" for spec, bounds in windows)
    started = time.monotonic()
    target_rows = _target_rows(registry, members[0].spec, where, params)
    return RowCounts(
        source_rows,
        target_rows,
        f"sum of {len(windows)} sources ({described})",
        SYNCED,
        source_seconds,
        time.monotonic() - started,
    )


def window_row_counts(
    registry: ConnectionRegistry, spec: TableSpec, shape: TableShape, window: Window
) -> RowCounts | NotComparable:
    """Source and target rows whose keyset position is in the window one run loaded: the per-run check,
    O(rows in the window) (a full sync's window is the whole table).

    Both sides are counted at check time over the same positions. A row this run loaded and the source
    changed since (its cursor moved past the window) is in the target's count only: more rows in the
    target, which the check reports as a warning, never as rows missing.
    """
    refused = _countable(shape)
    if refused is not None:
        return refused
    names = shape.keyset_names
    if window.empty:
        return RowCounts(0, 0, window.describe(names), WINDOW)
    if shape.choice.strategy == "full_sync":
        return _count(registry, spec, None, WHOLE, "whole table")
    upper = window.end.values(names) if names else None
    if upper is None:
        return NotComparable("the rows loaded have no cursor position (only rows with a NULL cursor)")
    lower = window.start.values(names) if window.start is not None else None
    text = window.describe(names)
    return _count(registry, spec, _bounds(registry, spec, shape, lower, upper, text), WINDOW, text)


def _keyed(shape: TableShape) -> NotComparable | None:
    if not shape.choice.primary_key:
        return NotComparable("the table has no primary key (loads append)")
    if shape.choice.write_mode == "append":
        return NotComparable("write_mode append: rows are appended, keys are not merged")
    return None


def duplicate_keys(registry: ConnectionRegistry, spec: TableSpec, shape: TableShape) -> KeyDuplicates | NotComparable:
    """Primary-key values present more than once in the whole target (Redshift does not enforce keys)."""
    refused = _keyed(shape)
    if refused is not None:
        return refused
    return _duplicates(registry, spec, shape, None)


def window_duplicate_keys(
    registry: ConnectionRegistry, spec: TableSpec, shape: TableShape, window: Window
) -> KeyDuplicates | NotComparable:
    """Primary-key values present more than once in the target among the keys of the rows in the window
    one run loaded (every row with such a key is counted, wherever its cursor is: a merge that left the
    old version beside the new one is found). A full sync's window is the whole table."""
    refused = _keyed(shape)
    if refused is not None:
        return refused
    names = shape.keyset_names
    if window.empty:
        return KeyDuplicates(shape.warehouse_names(shape.choice.primary_key), 0, 0, WINDOW, window.describe(names))
    upper = window.end.values(names) if names else None
    lower = window.start.values(names) if window.start is not None else None
    if shape.choice.strategy == "full_sync" or upper is None or lower is None:
        # The window is the table (or reaches its start): every key once is cheaper than a join.
        return _duplicates(registry, spec, shape, None, enforced_ok=True)
    bounds = _bounds(registry, spec, shape, lower, upper, window.describe(names))
    return _duplicates(registry, spec, shape, bounds, enforced_ok=True)


def _enforced(cursor: Any, dialect: WarehouseDialect, table: TableRef, key: tuple[str, ...]) -> bool:
    """Whether a unique index of the target covers the key (PostgreSQL; Redshift enforces no key)."""
    query = dialect.unique_key_query(table)
    if query is None:
        return False
    cursor.execute(query.sql, query.params)
    return any(set(columns) <= set(key) for (columns,) in cursor.fetchall())


def _duplicates(
    registry: ConnectionRegistry,
    spec: TableSpec,
    shape: TableShape,
    bounds: _Bounds | None,
    *,
    enforced_ok: bool = False,
) -> KeyDuplicates:
    """Duplicate keys over ``bounds`` (None: every key). ``enforced_ok``: a unique index on the key
    answers without reading rows (the per-run check; the full one reads every key regardless)."""
    key = shape.warehouse_names(shape.choice.primary_key)
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    table = dialect.table_sql(_target(spec))
    scope, text = (WHOLE, "whole table") if bounds is None else (WINDOW, bounds.text)
    started = time.monotonic()
    # Keys compared as the source compares them (TableShape.key_equality): under utf8mb4_general_ci a
    # target holding both 'abc' and 'ABC ' holds one key twice.
    rules = {shape.mapping.warehouse_name(k): rule for k, rule in shape.key_equality.items()}

    def matched(column: str, prefix: str = "") -> str:
        return dialect.key_match(prefix + dialect.quote(column), rules.get(column))

    with warehouse.connect() as conn, conn.cursor() as cursor:
        if not _exists(cursor, dialect, _target(spec)):
            return KeyDuplicates(key, 0, 0, scope, text)
        # A unique index compares exactly: it proves nothing for keys the source compares loosely.
        if enforced_ok and not rules and _enforced(cursor, dialect, _target(spec), key):
            return KeyDuplicates(key, 0, 0, ENFORCED, text, time.monotonic() - started)
        if bounds is None:
            columns = ", ".join(matched(c) for c in key)
            grouped = f"SELECT COUNT(*) AS n FROM {table} GROUP BY {columns} HAVING COUNT(*) > 1"
            params = None
        else:  # every row of the target whose key is among the window's keys (a join: Redshift has no row IN)
            inner = ", ".join(f"{matched(c)} AS {dialect.quote(c)}" for c in key)
            joined = " AND ".join(f"{matched(c, 't.')} = w.{dialect.quote(c)}" for c in key)
            grouped = (
                f"SELECT COUNT(*) AS n FROM {table} AS t JOIN (SELECT DISTINCT {inner} FROM {table} "
                f"WHERE {bounds.target}) AS w ON {joined} "
                f"GROUP BY {', '.join(matched(c, 't.') for c in key)} HAVING COUNT(*) > 1"
            )
            params = bounds.params
        cursor.execute(f"SELECT COUNT(*), COALESCE(SUM(n - 1), 0) FROM ({grouped}) AS duplicated", params)
        duplicated, extra = cursor.fetchone()
    return KeyDuplicates(key, int(duplicated), int(extra), scope, text, time.monotonic() - started)


def target_columns(registry: ConnectionRegistry, spec: TableSpec) -> tuple[ExistingColumn, ...]:
    """The target table's columns as information_schema reports them (empty when it does not exist)."""
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    query = dialect.columns_query(_target(spec))
    with warehouse.connect() as conn, conn.cursor() as cursor:
        cursor.execute(query.sql, query.params)
        return dialect.parse_columns(cursor.fetchall())
