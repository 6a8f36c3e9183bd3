"""Where a table's sync stands, according to the warehouse: for when the orchestrator's record is gone.

Watermarks normally live in the orchestrator (Dagster materialization metadata). A new Dagster
instance, or a wiped asset, loses them; re-reading every table from the start would then be slow
and, for append-only tables, would duplicate rows. The warehouse still knows:

1. the load ledger (``<schema>._sync_load_ledger``), written in each batch's own transaction, holds
   the exact keyset position at the end of every batch loaded — the first choice;
2. without a ledger row (a table loaded by the older tool), the largest keyset value in the target
   table, ``MAX((cursor, key))``.

The ledger wins when it has a row for the table, even one that says "from the start": the first run
of a keyed table loads in primary-key order, so while that snapshot is unfinished the target's
MAX(cursor) is *not* a position below which every row has arrived, and trusting it would lose rows.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from sync_platform.configuration.project import TableSpec
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.mysql_sql import quote_mysql, table_sql
from sync_platform.engine.shape import TableShape, read_table_shape
from sync_platform.engine.strategies import CursorColumn, StrategyChoice
from sync_platform.engine.watermark import CursorValue, PositionOrder, Watermark, later
from sync_platform.warehouse import TableRef, WarehouseDialect, dialect_for

LEDGER_ROWS_SCANNED = 100  # the newest rows; only superseded snapshots ever lack an end position


@dataclass(frozen=True)
class RecoveredWatermark:
    """A watermark read back from the warehouse, and where it came from (shown to the user)."""

    watermark: Watermark
    origin: Literal["ledger", "target", "none"]
    detail: str


@dataclass(frozen=True)
class NullCursorCounts:
    """Rows whose cursor is NULL at the source and in the target, and the table's policy for them."""

    column: str
    policy: str  # load | report | fail, as in effect (load needs a key to merge by; report otherwise)
    source_rows: int
    target_rows: int


def null_cursor_policy(spec: TableSpec, choice: StrategyChoice) -> str:
    """The ``null_cursor`` policy in effect: ``load`` merges by key, so without one the rows are only reported."""
    policy = spec.config.null_cursor
    mergeable = choice.strategy in ("hybrid", "timestamp_only") and choice.write_mode == "merge" and choice.primary_key
    return "report" if policy == "load" and not mergeable else policy


def null_cursor_counts(registry: ConnectionRegistry, spec: TableSpec, shape: TableShape) -> NullCursorCounts | None:
    """Count the NULL-cursor rows on both sides; None when the strategy has no cursor that can be NULL."""
    column = shape.choice.timestamp_column
    if not column or shape.choice.strategy in ("full_sync", "custom_sql"):
        return None
    if not shape.source.column(column).nullable:  # `IS NULL` would match a NOT NULL column's zero dates
        return NullCursorCounts(column, null_cursor_policy(spec, shape.choice), 0, 0)
    extra = spec.config.additional_where
    where = f"{quote_mysql(column)} IS NULL" + (f" AND ({extra})" if extra else "")
    with registry.source(spec.source).connect() as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table_sql(spec.schema, spec.table)} WHERE {where}")
        (source_rows,) = cursor.fetchone()
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    target = TableRef(spec.target_schema, spec.target_table)
    target_rows = 0
    with warehouse.connect() as conn, conn.cursor() as cursor:
        if _exists(cursor, dialect, target):
            name = dialect.quote(shape.mapping.warehouse_name(column))
            cursor.execute(f"SELECT COUNT(*) FROM {dialect.table_sql(target)} WHERE {name} IS NULL")
            (target_rows,) = cursor.fetchone()
    return NullCursorCounts(column, null_cursor_policy(spec, shape.choice), int(source_rows), int(target_rows))


def target_has_rows(registry: ConnectionRegistry, spec: TableSpec) -> bool | None:
    """None when the target table does not exist, else whether it holds any row."""
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    target = TableRef(spec.target_schema, spec.target_table)
    with warehouse.connect() as conn, conn.cursor() as cursor:
        if not _exists(cursor, dialect, target):
            return None
        cursor.execute(f"SELECT 1 FROM {dialect.table_sql(target)} LIMIT 1")
        return cursor.fetchone() is not None


def target_column_names(registry: ConnectionRegistry, spec: TableSpec) -> set[str] | None:
    """The target table's column names; None when it does not exist."""
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    target = TableRef(spec.target_schema, spec.target_table)
    query = dialect.columns_query(target)
    with warehouse.connect() as conn, conn.cursor() as cursor:
        cursor.execute(query.sql, query.params)
        columns = dialect.parse_columns(cursor.fetchall())
    return {c.name for c in columns} or None


def ledger_watermark(registry: ConnectionRegistry, spec: TableSpec) -> Watermark | None:
    """The end position of the last batch the ledger records as loaded; None when it has no row for the table."""
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    ledger = dialect.ledger_table(spec.target_schema)
    with warehouse.connect() as conn, conn.cursor() as cursor:
        if not _exists(cursor, dialect, ledger):
            return None
        cursor.execute(
            f'SELECT "watermark" FROM {dialect.table_sql(ledger)} WHERE "table_name" = %s '
            f'ORDER BY "loaded_at" DESC, "batch_id" DESC LIMIT {LEDGER_ROWS_SCANNED}',
            (spec.identity,),
        )
        rows = cursor.fetchall()
    if not rows:
        return None
    for (text,) in rows:
        data = json.loads(text) if text else {}
        if isinstance(data, dict) and "end" in data:
            return Watermark.from_dict(data["end"])
    return Watermark()


def loaded_end(
    registry: ConnectionRegistry,
    spec: TableSpec,
    previous: Watermark,
    columns: tuple[str, ...],
    order: PositionOrder | None = None,
) -> Watermark:
    """The furthest watermark the ledger has loaded for the table since any manual set (start when none).

    Staged batches can vanish (cleaned, or a staging store that lost its data) after a run loaded
    them but before its watermark was stored; an appended table would then get their rows again.
    ``order`` compares text positions in the source's collation order (see :func:`watermark.later`).
    """
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    ledger = dialect.ledger_table(spec.target_schema)
    end = Watermark()
    with warehouse.connect() as conn, conn.cursor() as cursor:
        if not _exists(cursor, dialect, ledger):
            return end
        cursor.execute(
            f'SELECT "watermark", "loaded_at" FROM {dialect.table_sql(ledger)} '
            'WHERE "table_name" = %s AND "row_count" > 0',
            (spec.identity,),
        )
        for meta, loaded_at in cursor.fetchall():
            if previous.manual_at and loaded_at <= previous.manual_at:
                continue
            end = later(end, Watermark.from_dict(json.loads(meta or "{}").get("end")), columns, order)
    return end


def target_max_watermark(registry: ConnectionRegistry, spec: TableSpec, shape: TableShape) -> Watermark | None:
    """The largest keyset value in the target table (rows with a NULL cursor aside); None when empty or missing."""
    if not shape.keyset:
        return None
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    target = TableRef(spec.target_schema, spec.target_table)
    columns = shape.warehouse_names(shape.keyset_names)
    quoted = [dialect.quote(c) for c in columns]
    with warehouse.connect() as conn, conn.cursor() as cursor:
        if not _exists(cursor, dialect, target):
            return None
        cursor.execute(
            f"SELECT {', '.join(quoted)} FROM {dialect.table_sql(target)} WHERE {quoted[0]} IS NOT NULL "
            f"ORDER BY {', '.join(q + ' DESC' for q in quoted)} LIMIT 1"
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return Watermark({c.name: _cursor_value(c, v) for c, v in zip(shape.keyset, row, strict=True)})


def recover_watermark(registry: ConnectionRegistry, spec: TableSpec) -> RecoveredWatermark:
    """The extract watermark the warehouse implies: the ledger's, else MAX of the keyset in the target."""
    where = f"{spec.target_schema}._sync_load_ledger"
    from_ledger = ledger_watermark(registry, spec)
    if from_ledger is not None:
        return RecoveredWatermark(from_ledger, "ledger", f"end of the last batch recorded in {where}")
    if spec.config.cdc_strategy == "full_sync" and spec.config.full_sync_mode != "paginate":
        return RecoveredWatermark(Watermark(), "none", "full_sync reads the whole table on every run")
    target = f"{spec.target_schema}.{spec.target_table}"
    if spec.shares_target:
        # The target also holds the other sources' rows: its MAX may be theirs, and taking it would skip ours.
        others = ", ".join(i for i in spec.shared_target if i != spec.identity)
        return RecoveredWatermark(
            Watermark(),
            "none",
            f"no ledger rows in {where} for {spec.identity}, and {target} is shared with {others} (its MAX cannot "
            "tell the sources apart): starting from the beginning (`watermark set` to start later)",
        )
    shape = read_table_shape(registry, spec)
    from_target = target_max_watermark(registry, spec, shape)
    if from_target is not None:
        names = ", ".join(shape.warehouse_names(shape.keyset_names))
        return RecoveredWatermark(from_target, "target", f"MAX(({names})) of {target} (no ledger rows in {where})")
    return RecoveredWatermark(
        Watermark(), "none", f"{target} has no rows and {where} none: starting from the beginning"
    )


def _exists(cursor: Any, dialect: WarehouseDialect, table: TableRef) -> bool:
    query = dialect.table_exists_query(table)
    cursor.execute(query.sql, query.params)
    return cursor.fetchone() is not None


def _cursor_value(column: CursorColumn, value: Any) -> CursorValue:
    """A warehouse value in the form the engine writes watermarks in (so comparisons and literals work)."""
    if value is None:
        return None
    if column.kind == "timestamp" and isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if column.kind == "datetime" and isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    if column.kind in ("integer", "unix") and isinstance(value, Decimal | float) and value == int(value):
        return int(value)
    return value
