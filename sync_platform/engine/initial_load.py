"""A big table's first load in primary-key ranges: plan the ranges, load each one exactly once, finish.

A 100-million-row table is too much for one unit of work: one process, one failure point, hours
to redo. Here the first load is cut into ranges of the primary key, each a unit of work that an
orchestrator can run anywhere, in any order, several at once:

1. **Plan** (:func:`plan_initial_load`): fix the cursor ceiling first (``min(MAX(cursor), now -
   safety_lag)``, as every run does), then walk the primary key for range boundaries (every
   ``rows / ranges``-th key, :class:`~sync_platform.engine.key_ranges.MySQLKeyWalk`). The plan —
   ranges, ceiling and the watermark the table will have when the load is done — is written to the
   warehouse (``<schema>._sync_initial_load``, next to the load ledger) before any range runs.
2. **Range** (:func:`load_range`): read ``lower < key <= upper`` with ``cursor <= ceiling`` in key
   order (the clustered index), stage manifested batches, load them through the ledger (merge by
   key), then mark the range done. Every batch's manifest names its plan, range and the last key it
   holds, so a range that died midway continues after its last staged batch, and loads what it had
   staged but not loaded: no row is read twice and none is lost. A range already marked done is
   skipped without touching MySQL.
3. **Finish** (:func:`finish_initial_load`): when every range is done, write the table's watermark
   ``(ceiling, last key)`` to the ledger (a marker row) and mark the plan finished. Rows that changed
   during the load have a cursor past the ceiling, so the next incremental run reads them — and only
   the rows past the ceiling, not the whole table. Loads merge, so a re-read row changes nothing.

A killed load is resumed by running it again: the plan is read back, done ranges are skipped.
Only keyed tables synced ``hybrid`` or ``timestamp_only`` (merge by the primary key) qualify: those
whose first run already reads in key order up to the ceiling (:func:`~sync_platform.engine.strategies.snapshot_plan`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg2

from sync_platform.configuration.project import TableSpec
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.extract import read_batches
from sync_platform.engine.key_ranges import KeyRange, KeyValues, MySQLKeyWalk
from sync_platform.engine.load import TableLoader
from sync_platform.engine.manifest import Manifest, new_run_id
from sync_platform.engine.mysql_sql import keyset_at_or_below, quote_mysql, table_sql
from sync_platform.engine.open_transactions import hold_ceiling
from sync_platform.engine.pages import PageReader
from sync_platform.engine.recovery import target_has_rows
from sync_platform.engine.shape import TableShape, resolve_table
from sync_platform.engine.source_schema import SourceTable
from sync_platform.engine.stage import BatchStager, list_batches
from sync_platform.engine.strategies import (
    PlanError,
    ReadPlan,
    StrategyChoice,
    build_plan,
    ceiling_from,
    ceiling_query,
    snapshot_plan,
)
from sync_platform.engine.sync import (
    DEFAULT_BATCH_MAX_ROWS,
    READ_BATCH_ROWS,
    ConcurrentRunError,
    batch_normalizer,
    load_info,
    load_spec_for,
    staged_columns,
    table_prefix,
)
from sync_platform.engine.typemap import TableMapping
from sync_platform.engine.watermark import CursorValue, Watermark, decode_value, encode_value
from sync_platform.errors import ExitCode, SyncPlatformError
from sync_platform.warehouse import LedgerEntry, TableRef, WarehouseDialect, dialect_for

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

STATE_TABLE = "_sync_initial_load"
PLAN_ROW = -1  # range_index of the plan's own row
EXACT_COUNT_BELOW = 5_000_000  # tables the statistics call smaller are counted exactly (cheap there)


class InitialLoadError(PlanError):
    """The table cannot be loaded in key ranges, or the load is not in a state to do what was asked."""


class InitialLoadIncomplete(SyncPlatformError, RuntimeError):
    """Finish was asked while ranges are still not loaded (names them; rerun the load)."""


class InitialLoadInProgress(SyncPlatformError, RuntimeError):
    """A plain sync of a table whose initial load in key ranges is not finished (it would read it all again)."""

    exit_code = ExitCode.CONNECTION
    kind = "busy"


def refuse_during_initial_load(registry: ConnectionRegistry, spec: TableSpec) -> None:
    """Raise :class:`InitialLoadInProgress` when the table has an unfinished initial load.

    A sync starting from no watermark would read the whole table beside the ranges; one starting
    later would leave the ranges' rows behind its watermark. Either way: finish or abandon it first.
    """
    plan = read_plan(registry, spec)
    if plan is None or plan.finished:
        return
    done = len(plan.ranges) - len(plan.pending)
    raise InitialLoadInProgress(
        f"{spec.name}: its initial load {plan.plan_id} in key ranges is not finished ({done} of {len(plan.ranges)} "
        f"ranges done): run `sync initial-load -t {spec.name}` to finish it (done ranges are skipped), or "
        f"`sync initial-load -t {spec.name} --new` to start over; plain syncs of the table wait until then"
    )


@dataclass(frozen=True)
class RangeState:
    index: int
    lower: KeyValues | None  # exclusive
    upper: KeyValues | None  # inclusive
    state: str  # planned | done
    rows: int = 0

    def describe(self, key: tuple[str, ...]) -> str:
        def shown(values: KeyValues | None, open_end: str) -> str:
            if values is None:
                return open_end
            return str(values[0]) if len(values) == 1 else "(" + ", ".join(map(str, values)) + ")"

        column = key[0] if len(key) == 1 else "(" + ", ".join(key) + ")"
        return f"{shown(self.lower, 'start')} < {column} <= {shown(self.upper, 'end')}"


@dataclass(frozen=True)
class InitialLoadPlan:
    """A table's first load in key ranges, as recorded in the warehouse."""

    table: str  # identity, SOURCE:schema.table
    plan_id: str
    key: tuple[str, ...]
    ceiling: CursorValue
    final: Watermark  # the table's extract watermark once every range is loaded
    ranges: tuple[RangeState, ...]
    state: str  # planned | finished | abandoned
    updated_at: dt.datetime
    target_empty: bool = False  # the target held no row when planned: ranges' keys meet no loaded row

    @property
    def pending(self) -> list[int]:
        return [r.index for r in self.ranges if r.state != "done"]

    @property
    def finished(self) -> bool:
        return self.state == "finished"


@dataclass
class RangeResult:
    """What one range's unit of work did."""

    index: int
    count: int
    status: str  # loaded | resumed (an earlier attempt had staged part of it) | already_done
    rows_extracted: int = 0  # read from MySQL by this attempt
    rows_loaded: int = 0  # loaded into the warehouse by this attempt
    rows: int = 0  # rows the range holds (every attempt)
    batches: list[str] = field(default_factory=list)
    resumed_after: KeyValues | None = None  # a crashed attempt had staged up to this key
    seconds: float = 0.0


# --------------------------------------------------------------------------- the state table


def _state_ref(spec: TableSpec) -> TableRef:
    return TableRef(spec.target_schema, STATE_TABLE)


def _create_state(dialect: WarehouseDialect, spec: TableSpec) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {dialect.table_sql(_state_ref(spec))} (\n"
        '  "table_name" VARCHAR(1024) NOT NULL,\n'
        '  "plan_id" VARCHAR(256) NOT NULL,\n'
        '  "range_index" INTEGER NOT NULL,\n'
        '  "range_count" INTEGER NOT NULL,\n'
        '  "lower_key" VARCHAR(65535),\n'
        '  "upper_key" VARCHAR(65535),\n'
        '  "detail" VARCHAR(65535),\n'
        '  "state" VARCHAR(32) NOT NULL,\n'
        '  "row_count" BIGINT,\n'
        '  "updated_at" TIMESTAMPTZ NOT NULL\n'
        ")"
    )


def _key_json(values: KeyValues | None) -> str | None:
    return None if values is None else json.dumps([encode_value(v) for v in values])


def _key_from_json(text: str | None) -> KeyValues | None:
    return None if text is None else tuple(decode_value(v) for v in json.loads(text))


def _exists(cursor: Any, dialect: WarehouseDialect, table: TableRef) -> bool:
    query = dialect.table_exists_query(table)
    cursor.execute(query.sql, query.params)
    return cursor.fetchone() is not None


def read_plan(registry: ConnectionRegistry, spec: TableSpec) -> InitialLoadPlan | None:
    """The table's latest initial-load plan that was not abandoned; None when it never had one."""
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    with warehouse.connect() as conn, conn.cursor() as cursor:
        if not _exists(cursor, dialect, _state_ref(spec)):
            conn.commit()
            return None
        cursor.execute(
            f'SELECT "plan_id" FROM {dialect.table_sql(_state_ref(spec))} WHERE "table_name" = %s AND '
            f'"range_index" = {PLAN_ROW} AND "state" <> \'abandoned\' ORDER BY "updated_at" DESC, "plan_id" DESC '
            "LIMIT 1",
            (spec.identity,),
        )
        row = cursor.fetchone()
        if row is None:
            conn.commit()
            return None
        plan_id = row[0]
        cursor.execute(
            'SELECT "range_index", "lower_key", "upper_key", "detail", "state", "row_count", "updated_at" '
            f'FROM {dialect.table_sql(_state_ref(spec))} WHERE "table_name" = %s AND "plan_id" = %s '
            'ORDER BY "range_index"',
            (spec.identity, plan_id),
        )
        rows = cursor.fetchall()
        conn.commit()
    header = next(r for r in rows if r[0] == PLAN_ROW)
    detail = json.loads(header[3])
    ranges = tuple(
        RangeState(r[0], _key_from_json(r[1]), _key_from_json(r[2]), r[4], int(r[5] or 0))
        for r in rows
        if r[0] != PLAN_ROW
    )
    return InitialLoadPlan(
        table=spec.identity,
        plan_id=plan_id,
        key=tuple(detail["key"]),
        ceiling=decode_value(detail["ceiling"]),
        final=Watermark.from_dict(detail["final"]),
        ranges=ranges,
        state=header[4],
        updated_at=header[6],
        target_empty=bool(detail.get("target_empty")),
    )


def _write(registry: ConnectionRegistry, spec: TableSpec, statements: list[tuple[str, tuple]]) -> None:
    """Run ``statements`` in one warehouse transaction (after making sure the state table exists)."""
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    with warehouse.connect() as conn:
        try:
            with conn.cursor() as cursor:
                for statement in dialect.setup_statements(spec.target_schema):
                    cursor.execute(statement)
                cursor.execute(_create_state(dialect, spec))
            conn.commit()
            with conn.cursor() as cursor:
                for sql, params in statements:
                    cursor.execute(sql, params)
            conn.commit()
        except psycopg2.Error:
            conn.rollback()
            raise


def _insert(spec: TableSpec, dialect: WarehouseDialect, values: tuple) -> tuple[str, tuple]:
    return (
        f"INSERT INTO {dialect.table_sql(_state_ref(spec))} "
        '("table_name", "plan_id", "range_index", "range_count", "lower_key", "upper_key", "detail", "state", '
        '"row_count", "updated_at") VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)',
        values,
    )


def _set_state(
    spec: TableSpec, dialect: WarehouseDialect, plan_id: str, index: int, state: str, rows: int | None = None
) -> tuple[str, tuple]:
    return (
        f'UPDATE {dialect.table_sql(_state_ref(spec))} SET "state" = %s, "row_count" = COALESCE(%s, "row_count"), '
        '"updated_at" = %s WHERE "table_name" = %s AND "plan_id" = %s AND "range_index" = %s',
        (state, rows, dt.datetime.now(dt.UTC), spec.identity, plan_id, index),
    )


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class _Shape:
    table: TableShape  # the table as this step resolved it (columns, strategy, key equality)
    base: ReadPlan  # the table's plan over the whole window (keyset: cursor, key)

    @property
    def source(self) -> SourceTable:
        return self.table.source

    @property
    def choice(self) -> StrategyChoice:
        return self.table.choice

    @property
    def mapping(self) -> TableMapping:
        return self.table.mapping


def _shape(conn: Any, spec: TableSpec, ceiling: CursorValue = None) -> _Shape:
    table = resolve_table(conn, spec)
    base = build_plan(
        spec, table.source, table.choice, Watermark(), ceiling=ceiling, page_rows=spec.page_rows, max_rows=None
    )
    return _Shape(table, base)


def _snapshot(shape: _Shape, spec: TableSpec, ceiling: CursorValue) -> ReadPlan:
    plan = replace(shape.base, ceiling=ceiling)
    snapshot = snapshot_plan(plan, shape.choice, shape.source)
    if snapshot is None:
        raise InitialLoadError(
            f"{spec.name}: a load in key ranges needs a table with a primary key, synced with cdc_strategy hybrid "
            "or timestamp_only on that key (loads merge by it); this table is "
            f"{shape.choice.strategy} with write_mode {shape.choice.write_mode} and key "
            f"{', '.join(shape.choice.primary_key) or 'none'}. Sync it with `sync -t {spec.name}` instead"
        )
    return snapshot


def plan_initial_load(
    registry: ConnectionRegistry,
    spec: TableSpec,
    ranges: int | None = None,
    *,
    new: bool = False,
    progress: Progress | None = None,
) -> InitialLoadPlan:
    """The table's unfinished plan (a resumed load), or a new one of ``ranges`` key ranges.

    ``new`` abandons an unfinished plan (its loaded rows stay; merge makes reloading them harmless).
    A finished plan is not redone unless ``new`` is given.
    """
    say = progress or (lambda message: log.info(message))
    existing = read_plan(registry, spec)
    if existing is not None and not new:
        if existing.finished:
            raise InitialLoadError(
                f"{spec.name}: its initial load {existing.plan_id} finished; incremental syncs continue from "
                f"{existing.final.describe()}. To load the whole table again, give --new"
            )
        done = len(existing.ranges) - len(existing.pending)
        say(f"{spec.name}: resuming initial load {existing.plan_id}: {done} of {len(existing.ranges)} ranges done")
        return existing
    wanted = ranges or spec.config.initial_load.ranges
    dialect = dialect_for(registry.warehouse(spec.target).dialect)
    statements: list[tuple[str, tuple]] = []
    if existing is not None and not existing.finished:
        statements.append(_set_state(spec, dialect, existing.plan_id, PLAN_ROW, "abandoned"))
        say(f"{spec.name}: abandoning unfinished initial load {existing.plan_id}")
    started = time.monotonic()
    with registry.source(spec.source).connect() as conn:
        shape = _shape(conn, spec)
        key = _snapshot(shape, spec, 0).keyset_names  # refuses a table that cannot be read in key ranges
        first = shape.base.keyset[0]
        # The ceiling first: rows that change while the boundaries are walked lie past it.
        sql = ceiling_query(first, shape.base.table_sql, shape.choice.safety_lag_seconds, spec.config.additional_where)
        with conn.cursor() as cursor:
            cursor.execute(sql)
            row = cursor.fetchone()
        ceiling = ceiling_from(first, *(row or (None, None)))
        if ceiling is not None:  # a transaction still open may commit rows stamped below the ceiling
            ceiling, _holders, notes = hold_ceiling(
                conn, first, ceiling, row[0], shape.choice, shape.base.table_sql, None
            )
            for note in notes:
                say(f"{spec.name}: warning: {note}")
        if ceiling is None:
            raise InitialLoadError(
                f"{spec.name}: no row has a {first.name} value yet, so there is nothing to load in ranges; "
                f"sync it with `sync -t {spec.name}`"
            )
        quoted = [quote_mysql(k) for k in key]
        total = _row_count(conn, spec)
        step = max(1, math.ceil(total / wanted))
        walk = MySQLKeyWalk(conn, table_sql(spec.schema, spec.table), quoted)
        bounds = walk.boundaries(KeyRange(), step, limit=wanted - 1)
        with conn.cursor() as cursor:
            cursor.execute(
                f"SELECT {', '.join(quoted)} FROM {table_sql(spec.schema, spec.table)} "
                f"ORDER BY {', '.join(q + ' DESC' for q in quoted)} LIMIT 1"
            )
            last = cursor.fetchone()
    final = Watermark(dict(zip(shape.base.watermark_columns, (ceiling, *(last or ())), strict=True)))
    edges: list[KeyValues | None] = [None, *bounds, None]
    plan_id = new_run_id()
    now = dt.datetime.now(dt.UTC)
    count = len(edges) - 1
    detail = json.dumps(
        {
            "key": list(key),
            "ceiling": encode_value(ceiling),
            "final": final.to_dict(),
            "rows_estimated": total,
            "target_empty": not target_has_rows(registry, spec),
        }
    )
    statements.append(
        _insert(spec, dialect, (spec.identity, plan_id, PLAN_ROW, count, None, None, detail, "planned", total, now))
    )
    for index in range(count):
        lower, upper = edges[index], edges[index + 1]
        statements.append(
            _insert(
                spec,
                dialect,
                (spec.identity, plan_id, index, count, _key_json(lower), _key_json(upper), None, "planned", None, now),
            )
        )
    _write(registry, spec, statements)
    say(
        f"{spec.name}: planned initial load {plan_id}: {count} ranges of about {step:,} rows on "
        f"{', '.join(key)} ({walk.queries} boundary queries, {time.monotonic() - started:.1f} s); "
        f"ceiling {ceiling}; incremental syncs continue from {final.describe()} when it is done"
    )
    plan = read_plan(registry, spec)
    assert plan is not None and plan.plan_id == plan_id
    return plan


def _row_count(conn: Any, spec: TableSpec) -> int:
    """The table's rows: the statistics' estimate for a big table, an exact count for a smaller one."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (spec.schema, spec.table),
        )
        row = cursor.fetchone()
        estimate = int(row[0] or 0) if row else 0
        if estimate >= EXACT_COUNT_BELOW:
            return estimate
        cursor.execute(f"SELECT COUNT(*) FROM {table_sql(spec.schema, spec.table)}")
        return int(cursor.fetchone()[0])


# --------------------------------------------------------------------------- one range


def _range_plan(snapshot: ReadPlan, lower: KeyValues | None, upper: KeyValues | None) -> ReadPlan:
    """The snapshot read restricted to ``lower < key <= upper`` (both ends bound the index range scan)."""
    extra = snapshot.extra_where
    if upper is not None:
        at_most = keyset_at_or_below(snapshot.keyset, upper)
        extra = f"({extra}) AND ({at_most})" if extra else at_most
    return replace(snapshot, after=lower, extra_where=extra, watermark_columns=())


def _range_batches(store: Any, spec: TableSpec, plan_id: str, index: int) -> list[Manifest]:
    def mine(manifest: Manifest) -> bool:
        mark = manifest.extra.get("initial_load") or {}
        return mark.get("plan") == plan_id and mark.get("range") == index

    return [m for m in list_batches(store, table_prefix(spec)) if mine(m)]


def load_range(
    registry: ConnectionRegistry,
    spec: TableSpec,
    plan_id: str,
    index: int,
    *,
    batch_max_rows: int = DEFAULT_BATCH_MAX_ROWS,
    progress: Progress | None = None,
) -> RangeResult:
    """Read and load range ``index`` of plan ``plan_id`` exactly once; a done range is skipped."""
    say = progress or (lambda message: log.info(message))
    started = time.monotonic()
    plan = read_plan(registry, spec)
    if plan is None or plan.plan_id != plan_id:
        raise InitialLoadError(
            f"{spec.name}: initial load {plan_id} is not the table's current plan "
            f"({plan.plan_id if plan else 'none'}); plan it again with `sync initial-load -t {spec.name}`"
        )
    state = plan.ranges[index]
    count = len(plan.ranges)
    label = f"{spec.name}: range {index + 1}/{count} ({state.describe(plan.key)})"
    result = RangeResult(index=index, count=count, status="loaded")
    if state.state == "done":
        result.status, result.rows = "already_done", state.rows
        say(f"{label}: already loaded ({state.rows:,} rows); skipped")
        return result
    store = registry.staging(spec.staging)
    dialect = dialect_for(registry.warehouse(spec.target).dialect)
    staged = _range_batches(store, spec, plan_id, index)
    complete = any((m.extra.get("initial_load") or {}).get("last") for m in staged)
    after = state.lower
    if staged:
        after = _key_from_json(json.dumps(staged[-1].extra["initial_load"]["after"]))
        result.resumed_after = after
        result.status = "resumed"
        say(f"{label}: {len(staged)} batch(es) staged by an earlier attempt, up to key {after}")
    source = registry.source(spec.source)
    with source.connect() as conn, _range_lock(conn, spec, plan_id, index):
        shape = _shape(conn, spec)
        snapshot = _snapshot(shape, spec, plan.ceiling)
        info = load_info(shape.table, snapshot)
        queue_: queue.Queue[Manifest | None] = queue.Queue()
        outcome: dict[str, Any] = {}

        def load_in_background() -> None:
            try:
                loader = TableLoader(
                    registry.warehouse(spec.target),
                    store,
                    load_spec_for(registry, spec, info),
                    progress=say,
                    disjoint_keys=plan.target_empty,
                )
                outcome["load"] = loader.load(staged, iter(queue_.get, None))
            except BaseException as exc:  # handed to the caller below
                outcome["error"] = exc
                while queue_.get() is not None:
                    pass

        loader = threading.Thread(target=load_in_background, name=f"load-range-{index}", daemon=True)
        loader.start()
        try:
            if not complete:
                with source.endpoint() as (host, port):
                    url = source.connection_url(host, port)
                    _stream_range(
                        _RangeRead(spec, _range_plan(snapshot, after, state.upper), shape, plan_id, index, info),
                        conn,
                        url,
                        store,
                        dialect,
                        batch_max_rows,
                        result,
                        label,
                        say,
                        queue_.put,
                    )
        finally:
            queue_.put(None)
            loader.join()
    if "error" in outcome:
        raise outcome["error"]
    loaded = outcome["load"]
    result.rows_loaded = loaded.rows
    range_rows = sum(m.rows for m in staged) + result.rows_extracted
    result.rows = range_rows
    _write(registry, spec, [_set_state(spec, dialect, plan_id, index, "done", range_rows)])
    result.seconds = time.monotonic() - started
    say(
        f"{label}: done: {range_rows:,} rows ({result.rows_extracted:,} read and {result.rows_loaded:,} loaded "
        f"now) in {result.seconds:.1f} s"
    )
    return result


@contextmanager
def _range_lock(conn: Any, spec: TableSpec, plan_id: str, index: int) -> Iterator[None]:
    """One attempt of a range at a time, held on the source server (a zombie attempt cannot interleave)."""
    digest = hashlib.sha1(f"{spec.identity}\0{plan_id}\0{index}".encode()).hexdigest()[:24]
    name = f"sync_platform:range:{digest}"
    with conn.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, 0)", (name,))
        (acquired,) = cursor.fetchone()
    if acquired != 1:
        raise ConcurrentRunError(
            f"{spec.name}: range {index + 1} of initial load {plan_id} is being loaded by another process "
            f"(source lock {name!r}); wait for it, or check for a stuck process"
        )
    try:
        yield
    finally:
        with suppress(Exception), conn.cursor() as cursor:
            cursor.execute("SELECT RELEASE_LOCK(%s)", (name,))
            cursor.fetchone()


@dataclass(frozen=True)
class _RangeRead:
    spec: TableSpec
    plan: ReadPlan  # the range's read: key order, lower < key <= upper, cursor <= ceiling
    shape: _Shape
    plan_id: str
    index: int
    info: dict  # load settings recorded in each manifest


def _stream_range(
    read: _RangeRead,
    conn: Any,
    url: str,
    store: Any,
    dialect: WarehouseDialect,
    batch_max_rows: int,
    result: RangeResult,
    label: str,
    say: Progress,
    on_batch: Callable[[Manifest], None],
) -> None:
    spec, plan, mapping, info, plan_id, index = (
        read.spec,
        read.plan,
        read.shape.mapping,
        read.info,
        read.plan_id,
        read.index,
    )
    normalize, counts, truncated = batch_normalizer(spec, mapping, dialect)
    key_fields = tuple(mapping.warehouse_name(c.name) for c in plan.keyset)

    def query_one(sql: str) -> tuple | None:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()

    reader = PageReader(
        plan, mapping.select_list, lambda sql: read_batches(url, sql, READ_BATCH_ROWS), normalize, key_fields, query_one
    )
    run_id = new_run_id()
    sequence = 0
    stager: BatchStager | None = None

    def close(last: bool) -> None:
        nonlocal stager
        if stager is None:
            return
        position = reader.last
        manifest = stager.finish(
            watermark_start={},
            watermark_end={},
            extra={
                "load": info,
                "zero_dates": dict(counts),
                "truncated": dict(truncated),
                "initial_load": {
                    "plan": plan_id,
                    "range": index,
                    "after": [encode_value(v) for v in position or ()],
                    "last": last,
                },
            },
        )
        result.batches.append(manifest.batch_id)
        say(f"{label}: staged batch {manifest.batch_id} ({manifest.rows:,} rows)")
        stager = None
        on_batch(manifest)

    pages_seen = 0
    for batch in reader.batches():
        if reader.pages != pages_seen:
            pages_seen = reader.pages
            if stager is not None and stager.rows >= batch_max_rows:
                close(last=False)
        if stager is None:
            sequence += 1
            stager = BatchStager(
                store,
                table_prefix(spec),
                run_id=run_id,
                sequence=sequence,
                table_identity=spec.identity,
                schema=mapping.arrow_schema,
                columns=staged_columns(mapping),
                max_rows=spec.file_max_rows,
                max_mb=spec.file_max_mb,
                compression=spec.compression,
            )
        stager.write(batch)
        result.rows_extracted += batch.num_rows
    close(last=True)


# --------------------------------------------------------------------------- finishing


def finish_initial_load(
    registry: ConnectionRegistry, spec: TableSpec, plan_id: str, *, progress: Progress | None = None
) -> InitialLoadPlan:
    """Every range is loaded: record the table's watermark in the ledger and mark the plan finished.

    Idempotent: finishing a finished plan changes nothing. Ranges not yet loaded: :class:`InitialLoadIncomplete`.
    """
    say = progress or (lambda message: log.info(message))
    plan = read_plan(registry, spec)
    if plan is None or plan.plan_id != plan_id:
        raise InitialLoadError(f"{spec.name}: initial load {plan_id} is not the table's current plan")
    if plan.finished:
        return plan
    if plan.pending:
        shown = ", ".join(str(i + 1) for i in plan.pending[:20])
        raise InitialLoadIncomplete(
            f"{spec.name}: initial load {plan_id} has {len(plan.pending)} range(s) not loaded ({shown}); run "
            f"`sync initial-load -t {spec.name}` again to load them (done ranges are skipped)"
        )
    dialect = dialect_for(registry.warehouse(spec.target).dialect)
    rows = sum(r.rows for r in plan.ranges)
    marker = LedgerEntry(
        spec.identity,
        f"{plan_id}-initial-load",
        plan_id,
        0,
        0,
        0,
        json.dumps({"start": {}, "end": plan.final.to_dict(), "initial_load": {"plan": plan_id, "rows": rows}}),
        loaded_at=dt.datetime.now(dt.UTC),
    )
    record = dialect.record_batch(spec.target_schema, marker)
    _write(
        registry,
        spec,
        [(record.sql, tuple(record.params or ())), _set_state(spec, dialect, plan_id, PLAN_ROW, "finished", rows)],
    )
    say(
        f"{spec.name}: initial load {plan_id} finished: {rows:,} rows; "
        f"incremental syncs continue from {plan.final.describe()}"
    )
    finished = read_plan(registry, spec)
    assert finished is not None
    return finished


def run_initial_load(
    registry: ConnectionRegistry,
    spec: TableSpec,
    ranges: int | None = None,
    *,
    workers: int = 1,
    new: bool = False,
    batch_max_rows: int = DEFAULT_BATCH_MAX_ROWS,
    progress: Progress | None = None,
) -> tuple[InitialLoadPlan, list[RangeResult]]:
    """Plan, load every range (``workers`` at once, in threads of this process) and finish.

    The orchestrator runs the same three steps as separate units of work (see
    ``orchestration/initial_load.py``); this is the one-process form, used to measure whether
    reading ranges concurrently pays on one machine.
    """
    plan = plan_initial_load(registry, spec, ranges, new=new, progress=progress)
    indices = [r.index for r in plan.ranges]
    results = load_ranges(
        registry, spec, plan.plan_id, indices, workers=workers, batch_max_rows=batch_max_rows, progress=progress
    )
    return finish_initial_load(registry, spec, plan.plan_id, progress=progress), results


def load_ranges(
    registry: ConnectionRegistry,
    spec: TableSpec,
    plan_id: str,
    indices: list[int],
    *,
    workers: int = 1,
    batch_max_rows: int = DEFAULT_BATCH_MAX_ROWS,
    progress: Progress | None = None,
) -> list[RangeResult]:
    """:func:`load_range` for each of ``indices``, ``workers`` at a time in threads of this process.

    Every range runs to its end even when another fails (a done range stays done); then the first
    failure is raised. On 2 cores, 2 workers read 500,000 rows in 8 ranges 1.4x as fast as 1
    (``python -m bench.initial_load``): MySQL, the parquet writer and the COPY overlap.
    """

    def one(index: int) -> RangeResult:
        return load_range(registry, spec, plan_id, index, batch_max_rows=batch_max_rows, progress=progress)

    if workers <= 1 or len(indices) <= 1:
        return [one(i) for i in indices]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="range") as pool:
        futures = [pool.submit(one, i) for i in indices]
        errors = [f.exception() for f in futures]
    failure = next((e for e in errors if e is not None), None)
    if failure is not None:
        raise failure
    return [f.result() for f in futures]


def describe_ranges(plan: InitialLoadPlan) -> Iterator[str]:
    for state in plan.ranges:
        yield f"range {state.index + 1}/{len(plan.ranges)}: {state.describe(plan.key)}: {state.state}"
