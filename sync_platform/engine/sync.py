"""One table's sync, as plain Python: extract (MySQL → staged batches) and load (batches → warehouse).

Nothing here knows about Dagster or click: callers pass the table spec, the connection registry
and the previous watermark, and get back an :class:`ExtractResult` / :class:`LoadResult`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import pyarrow as pa
import pymysql

from sync_platform.configuration.project import TableSpec
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.connections.staging.store import StagingStore
from sync_platform.engine.extract import read_batches
from sync_platform.engine.load import LoadSpec, TableLoader
from sync_platform.engine.manifest import Manifest, new_run_id
from sync_platform.engine.memory import tune_allocator
from sync_platform.engine.open_transactions import OpenTransaction, hold_ceiling
from sync_platform.engine.pages import PageReader
from sync_platform.engine.recovery import ledger_watermark, loaded_end, target_column_names, target_has_rows
from sync_platform.engine.result import ExtractResult, LoadResult, TableRunResult
from sync_platform.engine.shape import TableShape, resolve_table
from sync_platform.engine.source_schema import SourceTable
from sync_platform.engine.stage import BatchStager, list_batches
from sync_platform.engine.strategies import (
    NullCursorRowsError,
    PlanError,
    ReadPlan,
    StrategyChoice,
    build_plan,
    ceiling_from,
    ceiling_query,
    null_cursor_plan,
    null_cursor_query,
    run_cap,
    snapshot_plan,
)
from sync_platform.engine.typemap import LogicalType, TableMapping
from sync_platform.engine.watermark import CursorValue, PositionOrder, Watermark, later
from sync_platform.errors import DataError, TableBusy
from sync_platform.warehouse import S3Authorization, TableLayout, TableRef, WarehouseDialect, dialect_for

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

DEFAULT_BATCH_MAX_ROWS = 500_000  # rows per manifested batch: loads overlap extraction; a crash redoes at most this
# The first batch of a run is cut sooner (at the first page end past this), so the warehouse starts
# loading while the rest is read instead of waiting for a whole batch: the overlap starts earlier.
FIRST_BATCH_MAX_ROWS = 100_000
READ_BATCH_ROWS = 16_384
LOCK_WAIT_SECONDS = 0


class ConcurrentRunError(TableBusy, RuntimeError):
    """Another run of the same table holds its lock (one writer per table)."""


class LostTargetError(DataError, RuntimeError):
    """The target and its load ledger are gone, and staged batches would be appended a second time."""


@dataclass(frozen=True)
class RunOptions:
    limit: int | None = None  # the older tool's --limit
    max_chunks: int | None = None  # the older tool's --max-chunks
    batch_max_rows: int = DEFAULT_BATCH_MAX_ROWS
    lock_wait_seconds: float = LOCK_WAIT_SECONDS  # 0: a second run fails at once with a clear message
    dry_run: bool = False
    # The orchestrator recorded loads of this table into its target: a target that is now missing or empty
    # lost them even when the warehouse has no load ledger (a new warehouse), so the run starts over.
    target_loaded: bool = False


def table_prefix(spec: TableSpec) -> str:
    """Where a table's batches live in the staging store."""
    return "/".join(p for p in (spec.staging_prefix, spec.scope, spec.schema, spec.table) if p)


def _lock_name(spec: TableSpec) -> str:
    # MySQL lock names are limited to 64 characters.
    digest = hashlib.sha1(f"{spec.identity}->{spec.target}".encode()).hexdigest()[:20]
    return f"sync_platform:{spec.table[:20]}:{digest}"


@contextmanager
def table_lock(conn: pymysql.connections.Connection, spec: TableSpec, wait: float) -> Iterator[None]:
    """One extract of a table at a time, held on the source server (visible to every process)."""
    name = _lock_name(spec)
    with conn.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, %s)", (name, wait))
        (acquired,) = cursor.fetchone()
    if acquired != 1:
        raise ConcurrentRunError(
            f"{spec.identity}: another sync of this table is running (source lock {name!r} is held); "
            "wait for it to finish, or check for a stuck process"
        )
    try:
        yield
    except BaseException:
        # A lost connection (server restart, tunnel down) also lost the lock: releasing it would
        # fail and hide the error that ended the run.
        with suppress(pymysql.MySQLError):
            _release_lock(conn, name)
        raise
    _release_lock(conn, name)  # failing here means the lock was lost mid-run: the caller must know


def _release_lock(conn: pymysql.connections.Connection, name: str) -> None:
    with conn.cursor() as cursor:
        cursor.execute("SELECT RELEASE_LOCK(%s)", (name,))
        cursor.fetchone()


def _query_one(conn: pymysql.connections.Connection) -> Callable[[str], tuple | None]:
    def run(sql: str) -> tuple | None:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()

    return run


def _resume_point(
    previous: Watermark, staged: list[Manifest], columns: tuple[str, ...], order: PositionOrder | None = None
) -> Watermark:
    """The later of the stored watermark and the newest staged batch made after any manual set.

    A crash after a batch's manifest but before its watermark was stored must not re-extract it.
    A batch whose end carries its own ``manual_at`` (a completed full pass) restarts the count.
    ``order`` compares text positions in the source's collation order.
    """
    resume = previous
    for manifest in staged:
        end = Watermark.from_dict(manifest.watermark_end)
        if resume.manual_at and manifest.created_at <= resume.manual_at:
            continue
        if end.manual_at and (resume.manual_at is None or end.manual_at > resume.manual_at):
            resume = end
            continue
        resume = later(resume, end, columns, order)
    return resume


@dataclass(frozen=True)
class ExtractPlan:
    """What a run of the table reads: the resolved strategy, the column mapping, the window and paging."""

    shape: TableShape  # the table resolved for this run: source columns, strategy, keyset, mapping
    plan: ReadPlan
    resume: Watermark  # where the run starts: the stored watermark or a newer staged batch
    ceiling: CursorValue
    ceiling_sql: str | None  # the query that fixed the ceiling (None: the strategy has none)
    null_cursor_rows: int = 0
    null_cursor_policy: str = "load"  # what this run does with them (load falls back to report without a key)
    null_plan: ReadPlan | None = None  # the by-key read of the NULL-cursor rows (policy load)
    warnings: tuple[str, ...] = ()
    held_by: tuple[OpenTransaction, ...] = ()  # the open transactions the ceiling was held back for, oldest first
    # Set when the run reads the table again from the beginning because its target lost rows or gained
    # columns: the batches staged before this moment are superseded by the re-read (see load_table).
    restarted_at: dt.datetime | None = None

    @property
    def source(self) -> SourceTable:
        return self.shape.source

    @property
    def choice(self) -> StrategyChoice:
        return self.shape.choice

    @property
    def mapping(self) -> TableMapping:
        return self.shape.mapping


def plan_extract(
    registry: ConnectionRegistry,
    spec: TableSpec,
    conn: pymysql.connections.Connection,
    previous: Watermark,
    options: RunOptions = RunOptions(),
    shape: TableShape | None = None,
) -> ExtractPlan:
    """Resolve the table's read against the real source (ceiling) and the staged batches; reads only.

    ``shape`` is the table as this run resolved it (:func:`resolve_table` on ``conn`` when not given).
    """
    store = registry.staging(spec.staging)
    shape = shape or resolve_table(conn, spec)
    source_table, choice, mapping = shape.source, shape.choice, shape.mapping
    order = shape.position_order
    if spec.shares_target and choice.write_mode == "replace":
        others = ", ".join(i for i in spec.shared_target if i != spec.identity)
        raise PlanError(
            f"{spec.name}: a replace would delete the rows {others} loaded into {spec.target_schema}."
            f"{spec.target_table}; set full_sync_mode: paginate or write_mode: merge, or give it its own target_name"
        )
    page_rows, cap = run_cap(spec.page_rows, options.limit, options.max_chunks)
    warnings: list[str] = []
    if choice.write_mode == "replace" and cap is not None:
        # A replace swaps the whole target for what the run read: a capped read would drop every other row.
        warnings.append(
            f"--limit/--max-chunks do not apply to a replace (full_sync_mode: replace): the whole table of "
            f"{spec.name} is read, since a partial snapshot would replace the whole target; use "
            "full_sync_mode: paginate to spread a full pass over capped runs"
        )
        page_rows, cap = spec.page_rows, None
    probe = build_plan(spec, source_table, choice, Watermark(), ceiling=None, page_rows=page_rows, max_rows=cap)
    staged = list_batches(store, table_prefix(spec))
    resume = _resume_point(previous, staged, probe.keyset_names, order) if probe.watermark_columns else previous
    if probe.watermark_columns and choice.write_mode == "append" and choice.strategy != "full_sync":
        # Without a key a re-read duplicates rows: the ledger also says how far loads got.
        loaded = loaded_end(registry, spec, previous, probe.keyset_names, order)
        resume = later(resume, loaded, probe.keyset_names, order)
    loose = [k for k in choice.primary_key if choice.write_mode == "merge" and source_table.column(k).compares_loosely]
    if loose:
        warnings.append(
            f"key column(s) {', '.join(loose)} compare without case or accents (collation "
            f"{source_table.column(loose[0]).collation}): the merge matches keys ignoring case and trailing spaces "
            "as MySQL does, but not accents, so a key whose accents change at the source ('é' → 'e') stays twice "
            f"in the target; `cdc validate -t {spec.name}` says how to fix it"
        )
    restarted_at = None
    if probe.watermark_columns and not resume.is_empty:
        restart = _restart_for_lost_target(registry, spec, resume, options.target_loaded, choice, staged)
        if restart is None and choice.write_mode == "merge" and choice.strategy != "custom_sql":
            restart = _restart_for_new_columns(registry, spec, mapping)
        if restart is not None:
            resume, note = restart
            warnings.append(note)
            restarted_at = resume.manual_at
    ceiling, ceiling_sql, nulls = None, None, 0
    held_by: tuple[OpenTransaction, ...] = ()
    if probe.keyset and choice.strategy != "full_sync":
        first = probe.keyset[0]
        ceiling_sql = ceiling_query(first, probe.table_sql, choice.safety_lag_seconds, spec.config.additional_where)
        row = _query_one(conn)(ceiling_sql)
        ceiling = ceiling_from(first, *(row or (None, None)))
        if ceiling is not None:  # after the ceiling's clock: a writer still open then is seen here
            after = resume.values(probe.keyset_names)
            ceiling, held_by, notes = hold_ceiling(
                conn, first, ceiling, row[0], choice, probe.table_sql, after[0] if after else None
            )
            warnings += notes
        # A NOT NULL column holds no NULLs; there MySQL's `IS NULL` would match its zero dates instead.
        if choice.timestamp_column and source_table.column(choice.timestamp_column).nullable:
            (count,) = _query_one(conn)(null_cursor_query(first, probe.table_sql, spec.config.additional_where))
            nulls = int(count or 0)
    plan = build_plan(spec, source_table, choice, resume, ceiling=ceiling, page_rows=page_rows, max_rows=cap)
    null_plan, policy = None, spec.config.null_cursor
    if nulls:
        null_plan, policy, null_warnings = _null_cursor_handling(spec, shape, plan, nulls)
        warnings += null_warnings
    plan = snapshot_plan(plan, choice, source_table) or plan
    return ExtractPlan(
        shape, plan, resume, ceiling, ceiling_sql, nulls, policy, null_plan, tuple(warnings), held_by, restarted_at
    )


def _restart_for_lost_target(
    registry: ConnectionRegistry,
    spec: TableSpec,
    resume: Watermark,
    target_loaded: bool,
    choice: StrategyChoice,
    staged: list[Manifest],
) -> tuple[Watermark, str] | None:
    """Rows were loaded (the ledger, or the orchestrator, says so), but the target is gone or empty:
    read from the beginning.

    Resuming would bring back only the rows changed since (a dropped table, a TRUNCATE, a new
    warehouse without the ledger table). The restart is marked like a manual reset, so batches staged
    before it never move the resume point again.
    """
    has_rows = target_has_rows(registry, spec)
    if has_rows:
        return None
    in_ledger = ledger_watermark(registry, spec) is not None
    if not in_ledger and not target_loaded:
        # Nothing was ever loaded: the batches wait for their load (--backup-only), or a person set
        # where a new table starts (watermark set).
        return None
    state = "does not exist" if has_rows is None else "is empty"
    why = "" if in_ledger else f" and {spec.target_schema}._sync_load_ledger has no row for it (a new warehouse?)"
    if not in_ledger and choice.write_mode == "append" and staged:
        # Without a ledger every staged batch counts as not loaded: it would be appended besides the re-read.
        raise LostTargetError(
            f"{spec.name}: the target {spec.target_schema}.{spec.target_table} {state}{why} although the watermark "
            f"is at {resume.describe()}. Reading it again from the beginning would also append the {len(staged)} "
            "batch(es) still in the staging store, which no ledger marks as loaded, so rows would arrive twice. "
            f"Delete them, then sync again: sync-platform s3clean clean -t {spec.name} -p {spec.pipeline} "
            "--older-than 0d --force -y"
        )
    note = (
        f"the target {spec.target_schema}.{spec.target_table} {state}{why} although the watermark is at "
        f"{resume.describe()}: reading {spec.name} again from the beginning"
    )
    return Watermark(manual_at=dt.datetime.now(dt.UTC), note=note), note


def _restart_for_new_columns(
    registry: ConnectionRegistry, spec: TableSpec, mapping: TableMapping
) -> tuple[Watermark, str] | None:
    """The source gained columns the target lacks: re-read every row, so rows already loaded get their values.

    The load adds the column; without a re-read, every row not changed since would hold NULL there
    although the source has a value (a DEFAULT, a backfill). Loads merge, so the re-read is idempotent.
    """
    existing = target_column_names(registry, spec)
    if existing is None:
        return None
    added = [c for c in mapping.columns if c.name not in existing]
    if not added:
        return None
    names = ", ".join(c.source.name for c in added)
    note = (
        f"the source gained column(s) {names}, which {spec.target_schema}.{spec.target_table} lacks: reading "
        f"every row of {spec.name} again so the rows already loaded get their values"
    )
    return Watermark(manual_at=dt.datetime.now(dt.UTC), note=note), note


def _null_cursor_handling(
    spec: TableSpec, shape: TableShape, plan: ReadPlan, nulls: int
) -> tuple[ReadPlan | None, str, list[str]]:
    """(by-key read, effective policy, warnings) for a table with ``nulls`` NULL-cursor rows."""
    source, choice = shape.source, shape.choice
    cursor = choice.timestamp_column
    policy = spec.config.null_cursor
    if policy == "fail":
        raise NullCursorRowsError(
            f"{spec.name}: {nulls:,} rows have a NULL {cursor}, so no incremental run can read them, and the "
            f"table sets null_cursor: fail. Give them a {cursor} value (UPDATE … SET {cursor} = NOW() WHERE {cursor} "
            "IS NULL) or set null_cursor: load (read them by key every run) or report"
        )
    if policy == "report":
        return None, "report", []
    null_plan = null_cursor_plan(plan, choice, source)
    if null_plan is None:
        why = "the table has no primary key to merge them by" if not choice.primary_key else "loads append"
        return (
            None,
            "report",
            [
                f"{nulls:,} rows have a NULL {cursor} and are not loaded: {why}, so reading them every run would "
                f"duplicate them. Give them a {cursor} value, or sync the table with cdc_strategy: full_sync"
            ],
        )
    indexed = any(columns[0].lower() == (cursor or "").lower() for columns in shape.indexes.values())
    warnings = []
    if not indexed:
        warnings.append(
            f"{cursor} is not indexed: finding the {nulls:,} NULL-{cursor} rows scans the whole table every run; "
            f"add one: ALTER TABLE {source.qualified_name} ADD INDEX ({cursor})"
        )
    return null_plan, "load", warnings


def extract_table(
    registry: ConnectionRegistry,
    spec: TableSpec,
    previous: Watermark,
    options: RunOptions = RunOptions(),
    progress: Progress | None = None,
    on_batch: Callable[[Manifest], None] | None = None,
    on_planned: Callable[[ExtractPlan], None] | None = None,
    shape: TableShape | None = None,
) -> ExtractResult:
    """Read the table's window from MySQL into manifested parquet batches (the "backup" step).

    ``on_batch`` is called with each batch's manifest as soon as the batch is committed; ``on_planned``
    with the plan, once the run has decided where it starts (after looking at the target and its
    ledger). ``shape`` is the table as the caller resolved it for this run (resolved here when not given).
    """
    say = progress or (lambda message: log.info(message))
    tune_allocator()
    started, wall = time.monotonic(), dt.datetime.now(dt.UTC)
    source = registry.source(spec.source)
    store = registry.staging(spec.staging)
    dialect = dialect_for(registry.warehouse(spec.target).dialect)
    prefix = table_prefix(spec)
    result = ExtractResult(
        table=spec.name,
        identity=spec.identity,
        strategy=spec.config.cdc_strategy,
        watermark_before=previous,
        watermark=previous,
        started_at=wall,
    )
    with source.connect() as conn, table_lock(conn, spec, options.lock_wait_seconds):
        planned = plan_extract(registry, spec, conn, previous, options, shape)
        if on_planned is not None:
            on_planned(planned)
        choice, plan = planned.choice, planned.plan
        resume, ceiling = planned.resume, planned.ceiling
        result.strategy, result.detected = choice.strategy, choice.detected
        if choice.detected:
            say(f"{spec.name}: no configuration, using {choice.detected}")
        result.null_cursor_rows = planned.null_cursor_rows
        result.null_cursor_policy = planned.null_cursor_policy
        for warning in planned.warnings:
            result.warnings.append(warning)
            say(f"{spec.name}: warning: {warning}")
        if plan.snapshot:
            say(f"{spec.name}: first run: reading in primary-key order up to {choice.timestamp_column} <= {ceiling}")
        result.ceiling = ceiling
        result.ceiling_held_by = [t.to_dict() for t in planned.held_by]
        result.watermark_before = resume
        if options.dry_run:
            result.watermark = resume
            return result
        if resume.is_empty and choice.write_mode == "merge" and choice.strategy in ("hybrid", "timestamp_only"):
            from sync_platform.engine.initial_load import refuse_during_initial_load  # it builds on this module

            refuse_during_initial_load(registry, spec)
        if plan.keyset and ceiling is None and planned.null_plan is None and choice.strategy not in ("full_sync",):
            say(f"{spec.name}: no rows with a cursor value yet; nothing to read")
            result.seconds = time.monotonic() - started
            result.finished_at = dt.datetime.now(dt.UTC)
            return result
        with source.endpoint() as (host, port):
            _stream_to_stage(
                spec,
                plan,
                planned.shape,
                conn,
                source.connection_url(host, port),
                store,
                prefix,
                dialect,
                resume,
                options,
                result,
                say,
                on_batch,
                planned.null_plan,
                planned.restarted_at,
            )
    result.seconds = time.monotonic() - started
    result.finished_at = dt.datetime.now(dt.UTC)
    return result


# In a manifest's load info: the batches staged before this moment are superseded (see load_table).
SUPERSEDES_BEFORE = "supersedes_before"


def load_info(shape: TableShape, plan: ReadPlan) -> dict:
    """How the loader writes the table's batches (recorded in each manifest, so batches stay self-describing)."""
    choice, mapping = shape.choice, shape.mapping
    keyed = choice.write_mode != "append"
    return {
        "write_mode": choice.write_mode,
        # An appended table holds every snapshot: its key is not unique there, so it is not declared.
        "key": [mapping.warehouse_name(k) for k in choice.primary_key] if keyed else [],
        # Key columns MySQL compares ignoring case / trailing spaces: the merge compares them the same way.
        "key_equality": {mapping.warehouse_name(k): rule for k, rule in shape.key_equality.items()} if keyed else {},
        "order_by": [mapping.warehouse_name(c.name) for c in plan.keyset if c.name not in choice.primary_key]
        or [mapping.warehouse_name(k) for k in choice.primary_key],
        "strategy": choice.strategy,
    }


def batch_normalizer(
    spec: TableSpec, mapping: TableMapping, dialect: WarehouseDialect
) -> tuple[Callable[[pa.RecordBatch], pa.RecordBatch], dict[str, int], dict[str, int]]:
    """(raw batch → staged batch, zero dates turned NULL per column, values truncated per column)."""
    counts: dict[str, int] = {}
    truncated: dict[str, int] = {}

    def normalize(raw: pa.RecordBatch) -> pa.RecordBatch:
        batch, zero = mapping.normalize(raw)
        for column, count in zero.items():
            counts[column] = counts.get(column, 0) + count
        batch, cut = dialect.enforce_limits(
            batch, mapping.columns, table=spec.name, oversize_text=spec.config.oversize_text
        )
        for column, count in cut.items():
            truncated[column] = truncated.get(column, 0) + count
        return batch

    return normalize, counts, truncated


def _stream_to_stage(
    spec: TableSpec,
    plan: ReadPlan,
    shape: TableShape,
    conn: pymysql.connections.Connection,
    url: str,
    store: StagingStore,
    prefix: str,
    dialect: WarehouseDialect,
    resume: Watermark,
    options: RunOptions,
    result: ExtractResult,
    say: Progress,
    on_batch: Callable[[Manifest], None] | None,
    null_plan: ReadPlan | None = None,
    restarted_at: dt.datetime | None = None,
) -> None:
    choice, mapping = shape.choice, shape.mapping
    normalize, counts, truncated = batch_normalizer(spec, mapping, dialect)
    key_fields = tuple(mapping.warehouse_name(c.name) for c in plan.keyset)
    reader = PageReader(
        plan,
        mapping.select_list,
        lambda sql: read_batches(url, sql, READ_BATCH_ROWS),
        normalize,
        key_fields,
        _query_one(conn),
    )
    info = load_info(shape, plan)
    if restarted_at is not None:  # every batch says so: a load run of its own finds it among the batches it lists
        info[SUPERSEDES_BEFORE] = restarted_at.isoformat(timespec="microseconds")
    run_id = new_run_id()
    single_batch = choice.write_mode == "replace"  # a snapshot must be loaded whole
    batch_start = resume
    stager: BatchStager | None = None
    sequence = 0
    pages_seen = 0

    def open_stager() -> BatchStager:
        nonlocal sequence
        sequence += 1
        return BatchStager(
            store,
            prefix,
            run_id=run_id,
            sequence=sequence,
            table_identity=spec.identity,
            schema=mapping.arrow_schema,
            columns=staged_columns(mapping),
            max_rows=spec.file_max_rows,
            max_mb=spec.file_max_mb,
            compression=spec.compression,
        )

    def close_stager(end: Watermark) -> None:
        nonlocal stager, batch_start
        if stager is None:
            return
        end = _keep_manual_mark(end, resume)
        manifest = stager.finish(
            watermark_start=batch_start.to_dict(),
            watermark_end=end.to_dict(),
            extra={"load": info, "zero_dates": dict(counts), "truncated": dict(truncated)},
        )
        result.batches.append(manifest.batch_id)
        result.files += len(manifest.files)
        result.bytes += manifest.bytes
        result.watermark = end  # durable now: the manifest is written
        say(f"{spec.name}: staged batch {manifest.batch_id} ({manifest.rows:,} rows, {result.rows:,} so far)")
        batch_start = end
        stager = None
        if on_batch is not None:
            on_batch(manifest)

    if plan.ceiling is not None or not plan.keyset or plan.strategy == "full_sync":
        for batch in reader.batches():
            if reader.pages != pages_seen:  # a page ended before this batch: a safe place to cut
                pages_seen = reader.pages
                limit = options.batch_max_rows if sequence > 1 else min(options.batch_max_rows, FIRST_BATCH_MAX_ROWS)
                if stager is not None and stager.rows >= limit and not single_batch:
                    close_stager(_position(plan, reader.last, resume, final=False))
            if stager is None:
                stager = open_stager()
            stager.write(batch)
            result.rows += batch.num_rows
    end = _position(plan, reader.last, resume, final=not reader.capped) if plan.watermark_columns else Watermark()
    if null_plan is not None and not reader.capped:
        # Rows with a NULL cursor lie outside every window: read by key each run, merged with this batch.
        started = time.monotonic()
        null_keys = tuple(mapping.warehouse_name(c.name) for c in null_plan.keyset)
        nulls = PageReader(null_plan, mapping.select_list, reader.read, normalize, null_keys, _query_one(conn))
        for batch in nulls.batches():
            if stager is None:
                stager = open_stager()
            stager.write(batch)
            result.rows += batch.num_rows
            result.null_cursor_loaded += batch.num_rows
        result.null_cursor_seconds = time.monotonic() - started
        say(
            f"{spec.name}: read {result.null_cursor_loaded:,} rows with a NULL {choice.timestamp_column} by key "
            f"({result.null_cursor_seconds:.2f} s)"
        )
    close_stager(end)
    if stager is None and not result.batches:
        result.watermark = _keep_manual_mark(end, resume) if plan.watermark_columns else resume
    result.capped = reader.capped
    result.zero_dates = counts
    result.truncated_values = truncated


def _keep_manual_mark(end: Watermark, start: Watermark) -> Watermark:
    """Positions after a reset keep its moment, so batches staged before it never count again."""
    if end.manual_at or not start.manual_at or end.is_empty:
        return end
    return Watermark(end.position, manual_at=start.manual_at)


def staged_columns(mapping: TableMapping) -> list[dict]:
    """The column descriptions a batch's manifest carries (the loader creates the table from them)."""
    return [{"name": c.name, "source": c.source.name, "logical": _logical_dict(c.logical)} for c in mapping.columns]


def _logical_dict(logical: LogicalType) -> dict:
    return {
        "kind": logical.kind.value,
        "length": logical.length,
        "precision": logical.precision,
        "scale": logical.scale,
    }


def _position(plan: ReadPlan, last: tuple | None, fallback: Watermark, *, final: bool) -> Watermark:
    """The watermark after the rows read so far (``last``: keyset values of the last row)."""
    if last is None or not plan.watermark_columns:
        return fallback if plan.watermark_columns else Watermark()
    if plan.strategy == "full_sync" and final:
        # paginate: a pass that reached the end starts the next one from the first key; the mark
        # also tells the resume logic that the older batches' positions no longer apply.
        return Watermark(manual_at=dt.datetime.now(dt.UTC), note="full pass complete")
    if plan.snapshot:
        # Progress in key order is not a cursor position: only a finished snapshot moves the watermark,
        # to (ceiling, last key), since every row up to the ceiling has been read.
        if not final:
            return fallback
        return Watermark(dict(zip(plan.watermark_columns, (plan.ceiling, *last), strict=True)))
    return Watermark(dict(zip(plan.keyset_names, last, strict=True)))


def load_table(
    registry: ConnectionRegistry,
    spec: TableSpec,
    progress: Progress | None = None,
    incoming: Iterator[Manifest] | None = None,
    superseded_before: dt.datetime | None = None,
) -> LoadResult:
    """Load every manifested batch of the table that the warehouse ledger does not have yet.

    ``incoming`` streams batches staged while this load runs (they follow the listed ones).
    ``superseded_before``: the run reads a merged table again from the beginning (its target was lost,
    or gained columns); batches staged before that moment and not loaded are superseded by the re-read.
    A re-read staged by another run says so in its batches' load info (``supersedes_before``).
    """
    store = registry.staging(spec.staging)
    warehouse = registry.warehouse(spec.target)
    batches = list_batches(store, table_prefix(spec))
    # A re-read staged by an extract run of its own (--backup-only, then a load run) says so in its batches.
    marks = [b.extra.get("load", {}).get(SUPERSEDES_BEFORE) for b in batches]
    moments = [dt.datetime.fromisoformat(m) for m in marks if m]
    if superseded_before is not None:
        moments.append(superseded_before)
    superseded_before = max(moments, default=None)
    stream: Iterator[Manifest] = iter(incoming or ())
    first = batches[-1] if batches else next(stream, None)
    if first is None:
        return LoadResult(table=spec.identity, target=f"{spec.target_schema}.{spec.target_table}", write_mode="merge")
    if not batches:
        batches = [first]
    load_spec = load_spec_for(registry, spec, first.extra.get("load", {}))
    loader = TableLoader(warehouse, store, load_spec, progress=progress)
    return loader.load(batches, stream, superseded_before=superseded_before)


def load_spec_for(registry: ConnectionRegistry, spec: TableSpec, info: dict, *, authorize: bool = True) -> LoadSpec:
    """The loader's settings for a table from a batch's recorded load info (see :func:`load_info`).

    ``authorize=False`` leaves out the Redshift COPY credentials (for describing a load, not running it).
    """
    layout = TableLayout.from_config(spec.config.redshift) if spec.config.redshift else None
    redshift = registry.warehouse(spec.target).dialect == "redshift"
    return LoadSpec(
        table=spec.identity,
        target=TableRef(spec.target_schema, spec.target_table),
        write_mode=info.get("write_mode", "merge"),
        key=tuple(info.get("key", ())),
        order_by=tuple(info.get("order_by", ())),
        key_equality=tuple(sorted((info.get("key_equality") or {}).items())),
        layout=layout,
        authorization=copy_authorization(registry, spec) if redshift and authorize else None,
    )


def copy_authorization(registry: ConnectionRegistry, spec: TableSpec) -> S3Authorization:
    """How Redshift reads the table's staging bucket; ValueError when neither a role nor keys are configured."""
    staging = registry.connections.s3_configs[spec.staging]
    target = registry.connections.connections.targets[spec.target]

    def secret(value: object) -> str | None:
        return value.get_secret_value() if value is not None else None  # type: ignore[attr-defined]

    return S3Authorization(
        iam_role=target.iam_role,
        access_key_id=secret(staging.access_key_id),
        secret_access_key=secret(staging.secret_access_key),
        session_token=secret(staging.session_token),
    )


def sync_table(
    registry: ConnectionRegistry,
    spec: TableSpec,
    previous: Watermark,
    options: RunOptions = RunOptions(),
    progress: Progress | None = None,
    shape: TableShape | None = None,
) -> TableRunResult:
    """Extract then load one table (the older tool's ``sync``); each batch loads while the next is read."""
    run = TableRunResult(table=spec.name)
    if options.dry_run:
        run.extract = extract_table(registry, spec, previous, options, progress, shape=shape)
        return run
    staged: queue.Queue[Manifest | None] = queue.Queue()
    outcome: dict[str, object] = {}

    # The loader starts once the extract has looked at the target: loading batches a warehouse without its
    # ledger does not know about must not hide that the target was lost (see _restart_for_lost_target).
    planned = threading.Event()

    restarts: list[dt.datetime | None] = []

    def on_planned(plan: ExtractPlan) -> None:
        restarts.append(plan.restarted_at)
        planned.set()

    def load_in_background() -> None:
        planned.wait()
        if outcome.get("lost_target"):  # the staged batches would be appended a second time
            return
        try:
            restarted_at = restarts[0] if restarts else None
            outcome["load"] = load_table(registry, spec, progress, iter(staged.get, None), restarted_at)
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc
            while staged.get() is not None:  # keep the extractor from waiting on a dead loader
                pass

    loader = threading.Thread(target=load_in_background, name=f"load-{spec.name}", daemon=True)
    loader.start()
    try:
        run.extract = extract_table(
            registry, spec, previous, options, progress, on_batch=staged.put, on_planned=on_planned, shape=shape
        )
    except LostTargetError:
        outcome["lost_target"] = True
        raise
    finally:
        planned.set()
        staged.put(None)
        loader.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    run.load = outcome["load"]  # type: ignore[assignment]
    run.timings.extract_seconds = run.extract.seconds
    run.timings.load_seconds = run.load.seconds
    return run
