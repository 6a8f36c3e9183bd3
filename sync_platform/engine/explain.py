"""What a sync of one table would do, worked out without doing it (``sync --dry-run``, ``cdc test-strategy``).

Everything shown comes from the engine's own planning: :func:`sync.plan_extract` resolves the
strategy, mapping, resume point and ceiling exactly as a run does; the MySQL statements are the
ones :class:`pages.PageReader` sends for a page (captured, never read); the warehouse statements
come from the target's dialect in the loader's order. It reads the source (INFORMATION_SCHEMA,
the ceiling, a row or two for example positions), lists the staging store and looks at the target
table, and writes nothing anywhere: no source lock, no staged file, no warehouse table or ledger row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pymysql
import pymysql.connections

from sync_platform.configuration.project import TableSpec
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.load import LoadSpec
from sync_platform.engine.manifest import COPY_MANIFEST_NAME
from sync_platform.engine.mysql_sql import literal, quote_mysql
from sync_platform.engine.pages import PageReader
from sync_platform.engine.shape import TableShape
from sync_platform.engine.source_schema import SourceColumn
from sync_platform.engine.strategies import ReadPlan, build_plan, snapshot_plan
from sync_platform.engine.sync import (
    ExtractPlan,
    RunOptions,
    copy_authorization,
    load_info,
    load_spec_for,
    plan_extract,
    table_prefix,
)
from sync_platform.engine.typemap import TableMapping
from sync_platform.engine.watermark import CursorValue, Watermark
from sync_platform.warehouse import (
    BatchLoad,
    LedgerEntry,
    MissingCopyAuthorization,
    TableRef,
    TargetState,
    WarehouseDialect,
    dialect_for,
)

QueryOne = Callable[[str], tuple[Any, ...] | None]
BATCH_PLACEHOLDER = "<batch-id>"
TARGET_CHECK_TIMEOUT = 10.0


@dataclass(frozen=True)
class ColumnExplanation:
    """One source column and the warehouse column it becomes."""

    source: str
    mysql_type: str
    warehouse: str
    warehouse_type: str
    note: str = ""

    @property
    def renamed(self) -> bool:
        return self.source != self.warehouse


@dataclass(frozen=True)
class TableExplanation:
    """What a sync of one table would do: strategy, columns, the SQL sent to MySQL and to the warehouse."""

    table: str  # schema.table at the source
    identity: str  # SOURCE:schema.table
    pipeline: str
    strategy: str
    detected: str | None  # what was chosen automatically (unconfigured tables)
    timestamp_column: str | None
    id_columns: tuple[str, ...]
    primary_key: tuple[str, ...]
    keyset: tuple[str, ...]  # the paging order of incremental runs (a first run may read in key order)
    write_mode: str
    full_sync_mode: str | None
    lookback_seconds: float
    safety_lag_seconds: float
    page_rows: int
    run_cap: int | None  # rows per run at most (--limit / --max-chunks); None: no cap
    target: str  # target connection.schema.table
    dialect: str
    target_state: str  # "missing", "exists", "exists; would change: …" or why it was not checked
    columns: tuple[ColumnExplanation, ...]
    starts_from: str  # the next run's start (stored watermark, or a newer staged batch)
    ceiling: CursorValue
    ceiling_sql: str | None
    null_cursor_rows: int
    null_cursor_policy: str
    first_run_sql: tuple[str, ...]  # the statements of a first run's first page
    first_run_next_page_sql: tuple[str, ...]
    incremental_from: str  # the watermark the incremental SQL starts from
    incremental_sql: tuple[str, ...]  # the statements of the first page of an incremental run
    incremental_next_page_sql: tuple[str, ...]
    load_sql: tuple[str, ...]  # the warehouse statements of loading one batch
    notes: tuple[str, ...] = ()

    @property
    def renamed_columns(self) -> dict[str, str]:
        return {c.source: c.warehouse for c in self.columns if c.renamed}

    def lines(self) -> list[str]:
        """The explanation as printable lines (no secrets: SQL carries no credentials, COPY is redacted)."""
        out = [f"{self.identity} (pipeline {self.pipeline}) -> {self.target} [{self.dialect}]"]
        strategy = self.strategy + (f" (detected: {self.detected})" if self.detected else "")
        out.append(f"  strategy:      {strategy}")
        if self.timestamp_column:
            out.append(f"  timestamp:     {self.timestamp_column}")
        if self.id_columns:
            out.append(f"  id columns:    {', '.join(self.id_columns)}")
        out.append(f"  primary key:   {', '.join(self.primary_key) or '(none)'}")
        if self.keyset:
            out.append(f"  paged on:      ({', '.join(self.keyset)})")
        mode = self.write_mode + (f" (full_sync_mode {self.full_sync_mode})" if self.full_sync_mode else "")
        out.append(f"  write mode:    {mode}")
        out.append(f"  lookback:      {self.lookback_seconds:g}s   safety lag: {self.safety_lag_seconds:g}s")
        cap = f"{self.run_cap:,} rows per run" if self.run_cap is not None else "no cap"
        out.append(f"  page size:     {self.page_rows:,} rows   run cap: {cap}")
        out.append(f"  target table:  {self.target} ({self.target_state})")
        if self.ceiling_sql is not None:
            out.append(f"  ceiling:       {_text(self.ceiling)}   (from: {self.ceiling_sql})")
        if self.null_cursor_rows:
            out.append(f"  NULL cursor:   {self.null_cursor_rows:,} rows (null_cursor: {self.null_cursor_policy})")
        out.append(f"  next run from: {self.starts_from}")
        out.append("  columns (MySQL -> warehouse):")
        width = max((len(c.source) for c in self.columns), default=0)
        type_width = max((len(c.mysql_type) for c in self.columns), default=0)
        for c in self.columns:
            renamed = f"  (renamed: {c.note})" if c.renamed else ""
            out.append(
                f"    {c.source.ljust(width)}  {c.mysql_type.ljust(type_width)}  -> {c.warehouse} {c.warehouse_type}"
                f"{renamed}"
            )
        out.append("  first run SQL (MySQL):")
        out += [f"    {sql}" for sql in self.first_run_sql]
        if self.first_run_next_page_sql:
            out.append("  first run, following pages:")
            out += [f"    {sql}" for sql in self.first_run_next_page_sql]
        if self.incremental_sql == self.first_run_sql:
            out.append(f"  incremental SQL (MySQL): the same as the first run ({self.incremental_from})")
        else:
            out.append(f"  incremental SQL (MySQL), from {self.incremental_from}:")
            out += [f"    {sql}" for sql in self.incremental_sql]
        if self.incremental_next_page_sql and self.incremental_next_page_sql != self.first_run_next_page_sql:
            out.append("  incremental, following pages:")
            out += [f"    {sql}" for sql in self.incremental_next_page_sql]
        out.append(f"  load SQL ({self.dialect}), per staged batch:")
        for sql in self.load_sql:
            out += [f"    {line}" for line in sql.splitlines()]
        out += [f"  note: {note}" for note in self.notes]
        return out


def explain_table(
    registry: ConnectionRegistry,
    spec: TableSpec,
    watermark: Watermark,
    options: RunOptions,
    shape: TableShape | None = None,
) -> TableExplanation:
    """Describe what syncing ``spec`` from ``watermark`` with ``options`` would do, changing nothing.

    Raises what a run would raise while planning (``PlanError`` for a column or custom query the
    strategy cannot use, ``SourceTableNotFound``, ``ConnectionFailure``). ``shape``: the table as the
    caller already resolved it (resolved here when not given).
    """
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    notes: list[str] = []
    with registry.source(spec.source).connect() as conn:
        query_one = _query_one(conn)
        planned = plan_extract(registry, spec, conn, watermark, options, shape)
        choice, mapping = planned.choice, planned.mapping
        select = mapping.select_list
        # The first run: no watermark, nothing staged (the engine would read a snapshot if it can).
        first = _first_run_plan(spec, planned)
        first_sql = _page_queries(first, select, query_one)
        first_next = _next_page_queries(first, select, query_one, after=None)
        incremental, start, incremental_from = _incremental_plan(spec, planned, first, query_one, notes)
        if incremental is first:
            incremental_sql, incremental_next = first_sql, first_next
        else:
            # The second page continues after the last row of the first; the start position stands in for it.
            after = incremental.after if incremental.after is not None else start.values(incremental.keyset_names)
            incremental_sql = _page_queries(incremental, select, query_one)
            incremental_next = _next_page_queries(incremental, select, query_one, after=after)
    if planned.plan.keyset and planned.ceiling is None and choice.strategy != "full_sync":
        notes.append("no row has a cursor value yet: a run now reads nothing")
    if first.snapshot:
        notes.append(
            "the first run reads in primary-key order (cheaper than the cursor index) up to the ceiling, "
            "then records (ceiling, last key) as its watermark"
        )
    if choice.strategy == "full_sync" and choice.full_sync_mode == "replace":
        notes.append("full_sync replace: every run reads the whole table and swaps it in atomically")
    key = load_spec_for(registry, spec, load_info(planned.shape, planned.plan), authorize=False).key
    target_state, state = _target_state(registry, spec, dialect, mapping, key)
    load_sql = _load_statements(registry, spec, planned, dialect, state, notes)
    return TableExplanation(
        table=spec.name,
        identity=spec.identity,
        pipeline=spec.pipeline,
        strategy=choice.strategy,
        detected=choice.detected,
        timestamp_column=choice.timestamp_column,
        id_columns=choice.id_columns,
        primary_key=choice.primary_key,
        keyset=incremental.keyset_names,
        write_mode=choice.write_mode,
        full_sync_mode=choice.full_sync_mode,
        lookback_seconds=choice.lookback_seconds,
        safety_lag_seconds=choice.safety_lag_seconds,
        page_rows=planned.plan.page_rows,
        run_cap=planned.plan.max_rows,
        target=f"{spec.target}.{spec.target_schema}.{spec.target_table}",
        dialect=dialect.name,
        target_state=target_state,
        columns=column_explanations(mapping, dialect),
        starts_from=planned.resume.describe() if planned.resume.position else "the beginning (no watermark)",
        ceiling=planned.ceiling,
        ceiling_sql=planned.ceiling_sql,
        null_cursor_rows=planned.null_cursor_rows,
        null_cursor_policy=planned.null_cursor_policy,
        first_run_sql=first_sql,
        first_run_next_page_sql=first_next,
        incremental_from=incremental_from,
        incremental_sql=incremental_sql,
        incremental_next_page_sql=incremental_next,
        load_sql=load_sql,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------- MySQL side


class _PageSent(Exception):
    """Stops the page reader once it has sent a page's SELECT (nothing is read)."""


def _query_one(conn: pymysql.connections.Connection) -> QueryOne:
    def run(sql: str) -> tuple[Any, ...] | None:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()

    return run


def _page_queries(plan: ReadPlan, select_list: str, query_one: QueryOne) -> tuple[str, ...]:
    """The statements the engine's page reader sends for the first page of ``plan``, in order.

    The reader itself builds them: its boundary probes (tables without a unique key) run for real,
    since the page SELECT depends on their answer; the page SELECT is captured and not executed.
    """
    sent: list[str] = []

    def read(sql: str) -> Iterator[Any]:
        sent.append(sql)
        raise _PageSent

    def probe(sql: str) -> tuple[Any, ...] | None:
        sent.append(sql)
        return query_one(sql)

    reader = PageReader(plan, select_list, read, lambda batch: batch, (), probe)
    with contextlib.suppress(_PageSent):
        for _ in reader.batches():
            pass
    return tuple(sent)


def _next_page_queries(
    plan: ReadPlan, select_list: str, query_one: QueryOne, *, after: tuple[CursorValue, ...] | None
) -> tuple[str, ...]:
    """A following page's statements: the same plan continuing after a row (an example one from the window)."""
    if not plan.keyset:
        return ()
    if after is None:
        keys = ", ".join(quote_mysql(c.name) for c in plan.keyset)
        row = query_one(plan.page_sql(keys, plan.after, 1))  # the window's first row: a position to continue after
        if row is None:
            return ()
        after = tuple(row)
    return _page_queries(replace(plan, after=after), select_list, query_one)


def _plan_from(spec: TableSpec, planned: ExtractPlan, watermark: Watermark) -> ReadPlan:
    """The engine's plan for a run starting at ``watermark`` (nothing staged), against the same ceiling and caps."""
    return build_plan(
        spec,
        planned.source,
        planned.choice,
        watermark,
        ceiling=planned.ceiling,
        page_rows=planned.plan.page_rows,
        max_rows=planned.plan.max_rows,
    )


def _first_run_plan(spec: TableSpec, planned: ExtractPlan) -> ReadPlan:
    """The plan of a run with no watermark and nothing staged (a snapshot in key order where the engine reads one)."""
    plan = _plan_from(spec, planned, Watermark())
    return snapshot_plan(plan, planned.choice, planned.source) or plan


def _incremental_plan(
    spec: TableSpec, planned: ExtractPlan, first: ReadPlan, query_one: QueryOne, notes: list[str]
) -> tuple[ReadPlan, Watermark, str]:
    """The plan of a run that continues from a watermark, that watermark, and where it comes from.

    With a watermark (or a newer staged batch) it is the next run's own plan. Without one, it is the
    plan a run would have after a complete first run: from the last row at or below the ceiling.
    """
    choice, plan = planned.choice, planned.plan
    if plan.after is not None or plan.lower_from is not None:
        return plan, planned.resume, planned.resume.describe()
    if choice.strategy == "full_sync":
        if choice.full_sync_mode == "paginate":  # a complete pass starts the next one from the first key
            return first, Watermark(), "no watermark: a pass starts at the first key; a capped run continues after it"
        return first, Watermark(), "no watermark: every run reads the whole table"
    keyed = _plan_from(spec, planned, Watermark())  # the cursor keyset, not a snapshot's key order
    if not keyed.keyset:
        return first, Watermark(), "no watermark: the strategy has no cursor, every run reads the same query"
    row = query_one(_last_row_sql(keyed))
    if row is None:
        notes.append("no row at or below the ceiling: the incremental SQL is the first run's")
        return first, Watermark(), "no watermark yet"
    example = Watermark(dict(zip(keyed.keyset_names, row, strict=True)))
    incremental = _plan_from(spec, planned, example)
    return incremental, example, f"an example watermark, the last row a first run would read: {example.describe()}"


def _last_row_sql(plan: ReadPlan) -> str:
    """The keyset of the window's last row (an example watermark; the engine never sends this)."""
    keys = ", ".join(quote_mysql(c.name) for c in plan.keyset)
    first = plan.keyset[0]
    where = []
    if plan.ceiling is not None:
        where.append(f"{quote_mysql(first.name)} <= {literal(first, plan.ceiling)}")
    else:
        where.append(f"{quote_mysql(first.name)} IS NOT NULL")
    if plan.extra_where:
        where.append(f"({plan.extra_where})")
    order = ", ".join(f"{quote_mysql(c.name)} DESC" for c in plan.keyset)
    return f"SELECT {keys} FROM {plan.table_sql} WHERE {' AND '.join(where)} ORDER BY {order} LIMIT 1"


# --------------------------------------------------------------------------- columns and target


def column_explanations(mapping: TableMapping, dialect: WarehouseDialect) -> tuple[ColumnExplanation, ...]:
    """Each mapped column with its warehouse name and type as ``dialect`` renders it (the column mappings)."""
    return tuple(
        ColumnExplanation(
            source=c.source.name,
            mysql_type=_mysql_type(c.source),
            warehouse=c.name,
            warehouse_type=dialect.render_type(c.logical),
            note=_rename_reason(c.source.name, c.name),
        )
        for c in mapping.columns
    )


def _mysql_type(column: SourceColumn) -> str:
    # MariaDB declares JSON as LONGTEXT with a json_valid check: say why it maps to a JSON type.
    if column.data_type == "json" and "json" not in column.column_type.lower():
        return f"{column.column_type} (json)"
    return column.column_type


def _rename_reason(source: str, warehouse: str) -> str:
    if source == warehouse:
        return ""
    if warehouse == source.lower():
        return "lower-cased"
    if warehouse.startswith("col_") and warehouse[4:] == source.lower():
        return "a name starting with a digit or a system column name gets col_"
    return "characters or length the warehouse cannot take"


def _target_state(
    registry: ConnectionRegistry,
    spec: TableSpec,
    dialect: WarehouseDialect,
    mapping: TableMapping,
    key: tuple[str, ...],
) -> tuple[str, TargetState | None]:
    """Whether the target exists and which schema changes a load would make (read-only, best effort).

    Returns (description, state); state None when the target could not be read.
    """
    target = TableRef(spec.target_schema, spec.target_table)
    warehouse = registry.warehouse(spec.target)
    try:  # the connection's transaction is rolled back when the block ends
        with warehouse.connect(attempts=1, connect_timeout=TARGET_CHECK_TIMEOUT) as conn, conn.cursor() as cursor:
            query = dialect.columns_query(target)
            cursor.execute(query.sql, query.params)
            existing = dialect.parse_columns(cursor.fetchall())
            empty, unique = True, False
            if existing:
                cursor.execute(f"SELECT 1 FROM {dialect.table_sql(target)} LIMIT 1")
                empty = cursor.fetchone() is None
                unique_query = dialect.unique_key_query(target) if key else None
                if unique_query is not None:
                    cursor.execute(unique_query.sql, unique_query.params)
                    unique = any(row[0] == sorted(key) for row in cursor.fetchall())
    except Exception as exc:  # the explanation stays useful without the target
        return f"not checked: {registry.mask(str(exc)).splitlines()[0]}", None
    state = TargetState(existing, empty=empty, unique_key=unique)
    if not existing:
        return "missing: the first load creates it", state
    try:
        evolution = dialect.plan_evolution(target, existing, mapping.columns)
    except ValueError as exc:  # IncompatibleSchemaChange: a load would stop here
        return f"exists; a load would stop: {exc}", state
    changes = [c.describe() for c in evolution.changes if c.statements]
    return "exists" + (f"; a load would change it: {'; '.join(changes)}" if changes else ""), state


def _load_statements(
    registry: ConnectionRegistry,
    spec: TableSpec,
    planned: ExtractPlan,
    dialect: WarehouseDialect,
    state: TargetState | None,
    notes: list[str],
) -> tuple[str, ...]:
    """The loader's plan for one batch, from the target's dialect: the very steps a load runs."""
    info = load_info(planned.shape, planned.plan)
    load: LoadSpec = load_spec_for(registry, spec, info, authorize=False)
    schema = load.target.schema
    authorization = None
    manifest_url = None
    if dialect.capabilities.stage_fill == "copy_from_s3":
        manifest = f"{table_prefix(spec)}/{BATCH_PLACEHOLDER}/{COPY_MANIFEST_NAME}"
        manifest_url = registry.staging(spec.staging).uri(manifest)
        try:
            authorization = copy_authorization(registry, spec)
        except ValueError as exc:
            notes.append(f"the COPY cannot be built: {exc}")
    batch = BatchLoad(
        target=load.target,
        columns=tuple(planned.mapping.columns),
        write_mode=load.write_mode,  # type: ignore[arg-type]
        ledger=LedgerEntry(load.table, BATCH_PLACEHOLDER, "<run-id>", 0),
        key=load.key,
        order_by=load.order_by,
        key_equality=load.key_equality,
        layout=load.layout,
        manifest_url=manifest_url,
        authorization=authorization,
    )
    shown = state if state is not None else TargetState()
    lines = ["-- once per load, committed on its own", *dialect.setup_statements(schema)]
    try:
        plan = dialect.load_plan(batch, shown)
    except (MissingCopyAuthorization, ValueError):  # noted above / a load would stop (target state)
        return tuple(lines)
    lines += [f"-- each batch ({'the target as it is now' if state is not None else 'a new target'}):"]
    lines += plan.lines()
    if plan.direct:
        notes.append(
            "the target is new or empty and its key is enforced: the batch is COPYed straight into it "
            "(through the stage instead if a key repeats in the batch)"
        )
    return tuple(lines)


def _text(value: CursorValue) -> str:
    return "(none)" if value is None else str(value)
