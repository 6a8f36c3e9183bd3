"""Reconcile one table: prove the target equals the source, find what differs, repair it as configured.

Plain Python (no Dagster, no click): the asset check, the reconcile job and the CLI adapt
:func:`reconcile_table`. Repairs go through the normal load path: lost and changed rows are re-read
by key, staged as one manifested batch under ``<table prefix>/_reconcile/`` and merged by the
loader (ledger row in the same transaction: exactly once); rows deleted at the source are deleted
(``deletes: hard``) or marked (``deletes: soft``, column ``_deleted_at``) after a current read of
the source confirms they are still gone.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pymysql

from sync_platform.configuration.project import TableSpec
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.extract import read_batches
from sync_platform.engine.faults import checkpoint
from sync_platform.engine.load import TableLoader
from sync_platform.engine.manifest import new_run_id
from sync_platform.engine.mysql_sql import quote_mysql, table_sql, value_literal
from sync_platform.engine.reconcile.canonical import row_hash
from sync_platform.engine.reconcile.diff import Differences, DiffSettings, diff_ranges
from sync_platform.engine.reconcile.sides import (
    Checksum,
    KeyColumn,
    KeyRange,
    KeyValues,
    MySQLSide,
    Pacer,
    WarehouseSide,
    warehouse_values,
)
from sync_platform.engine.shape import TableShape, resolve_table
from sync_platform.engine.stage import BatchStager, list_batches
from sync_platform.engine.sync import READ_BATCH_ROWS, load_spec_for, staged_columns, table_lock, table_prefix
from sync_platform.engine.typemap import TableMapping
from sync_platform.warehouse import TableRef, dialect_for
from sync_platform.warehouse.dialect import SOFT_DELETE_COLUMN

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
REPAIR_PREFIX = "_reconcile"
KEYS_PER_STATEMENT = 500
SAMPLE_KEYS = 10
LOCK_WAIT_SECONDS = 300.0
CONNECTIONS_PER_SERVER = 2


class ReconcileError(RuntimeError):
    """A table cannot be reconciled (names the table and the fix)."""


@dataclass(frozen=True)
class ReconcileOptions:
    repair: bool | None = None  # None: the table's `repair` setting
    deletes: Literal["hard", "soft", "report"] | None = None  # None: the table's `deletes` setting
    range_rows: int = DiffSettings.range_rows
    factor: int = DiffSettings.factor
    leaf_rows: int = DiffSettings.leaf_rows
    rows_per_second: float | None = None
    sleep_seconds: float = 0.0
    lock_wait_seconds: float = LOCK_WAIT_SECONDS
    # Connections per server in the first pass over an integer key (unpaced reads only).
    connections: int = CONNECTIONS_PER_SERVER


@dataclass
class ReconcileResult:
    """What a reconcile found and did; ``remaining`` differences make the check fail and the CLI exit 4."""

    table: str
    target: str
    mode: Literal["key ranges", "cursor ranges"] = "key ranges"
    key: tuple[str, ...] = ()
    source_rows: int = 0
    target_rows: int = 0
    missing: int = 0  # lost: in the source, not in the target
    extra: int = 0  # deleted at the source, still in the target
    changed: int = 0  # in both, values differ
    differing_ranges: int = 0  # tables without a key: ranges whose counts or hashes differ
    ranges_scanned: int = 0
    rows_transferred: int = 0  # boundary keys, (key, hash) pairs and rows re-read for repair
    seconds: float = 0.0
    source_seconds: float = 0.0  # in source queries (the comparison; pacing aside)
    target_seconds: float = 0.0  # in target queries
    source_queries: int = 0
    target_queries: int = 0
    rows_merged: int = 0
    rows_deleted: int = 0
    rows_soft_deleted: int = 0
    still_present: int = 0  # "deleted" rows that are back at the source by repair time (left alone)
    repair: bool = False
    deletes: str = "report"
    repair_batch: str | None = None
    samples: dict[str, list[str]] = field(default_factory=dict)
    note: str = ""

    @property
    def differences(self) -> int:
        return self.missing + self.extra + self.changed + (self.differing_ranges if self.mode == "cursor ranges" else 0)

    @property
    def remaining(self) -> int:
        """Differences this run did not repair."""
        if self.mode == "cursor ranges":
            return self.differing_ranges
        left = 0 if self.repair else self.missing + self.changed
        if self.deletes == "report":
            left += self.extra
        return left

    @property
    def exact(self) -> bool:
        return self.remaining == 0

    def summary(self) -> str:
        what = (
            f"{self.differing_ranges:,} differing ranges"
            if self.mode == "cursor ranges"
            else f"{self.missing:,} missing, {self.extra:,} extra, {self.changed:,} changed"
        )
        done = []
        if self.rows_merged:
            done.append(f"{self.rows_merged:,} re-loaded")
        if self.rows_deleted:
            done.append(f"{self.rows_deleted:,} deleted")
        if self.rows_soft_deleted:
            done.append(f"{self.rows_soft_deleted:,} marked _deleted_at")
        repaired = f"; repaired: {', '.join(done)}" if done else ""
        return (
            f"{self.table} → {self.target}: {what} ({self.source_rows:,} source rows, {self.target_rows:,} target "
            f"rows; {self.ranges_scanned:,} ranges, {self.rows_transferred:,} rows transferred, "
            f"{self.seconds:.1f} s){repaired}"
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(differences=self.differences, remaining=self.remaining, exact=self.exact)
        return data


def _key_columns(conn: Any, spec: TableSpec, mapping: TableMapping, key: Sequence[str]) -> list[KeyColumn]:
    """Key columns with their MySQL collation (``_ci`` ones compare case-insensitively)."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, collation_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            (spec.schema, spec.table),
        )
        collations = {str(name).lower(): (coll or "") for name, coll in cursor.fetchall()}
    columns = []
    for name in key:
        warehouse = mapping.warehouse_name(name)
        logical = mapping.column(warehouse).logical
        columns.append(KeyColumn(name, warehouse, logical, collations.get(name.lower(), "").endswith("_ci")))
    return columns


def _target_columns(cursor: Any, registry: ConnectionRegistry, spec: TableSpec) -> set[str] | None:
    dialect = dialect_for(registry.warehouse(spec.target).dialect)
    query = dialect.columns_query(TableRef(spec.target_schema, spec.target_table))
    cursor.execute(query.sql, query.params)
    names = {c.name for c in dialect.parse_columns(cursor.fetchall())}
    return names or None


def reconcilable(spec: TableSpec) -> bool:
    """Whether the target can equal the source: not for custom queries, nor for appended full passes, nor
    for a warehouse table that other source tables load too (its rows are the union of several sources)."""
    config = spec.config
    return (
        not spec.shares_target
        and config.cdc_strategy != "custom_sql"
        and not (config.cdc_strategy == "full_sync" and config.full_sync_mode == "append")
    )


def reconcile_table(
    registry: ConnectionRegistry,
    spec: TableSpec,
    options: ReconcileOptions = ReconcileOptions(),
    progress: Progress | None = None,
) -> ReconcileResult:
    """Compare the table on both sides by checksummed key ranges; repair per the table's settings."""
    say = progress or (lambda message: log.info(message))
    started = time.monotonic()
    target = TableRef(spec.target_schema, spec.target_table)
    result = ReconcileResult(table=spec.identity, target=str(target))
    result.repair = spec.config.repair if options.repair is None else options.repair
    result.deletes = options.deletes or spec.config.deletes
    if spec.config.cdc_strategy == "custom_sql":
        raise ReconcileError(
            f"{spec.name}: a custom_sql table's rows are defined by a query, not the table; reconcile compares "
            "tables (remove the table from the reconcile run)"
        )
    if spec.shares_target:
        others = ", ".join(i for i in spec.shared_target if i != spec.identity)
        raise ReconcileError(
            f"{spec.name}: {spec.target_schema}.{spec.target_table} is also loaded from {others}, so it holds the "
            "rows of several source tables and cannot equal this one range by range (repairs and deletes would "
            "touch the other sources' rows); the sync's row_count_matches_source check compares it with the sum "
            "of its sources. To reconcile this table, give it its own target_name"
        )
    if not reconcilable(spec):
        raise ReconcileError(
            f"{spec.name}: full_sync in append mode keeps every pass in the target, so it never equals the "
            "source by design; reconcile tables that merge or replace"
        )
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    source = registry.source(spec.source)
    settings = DiffSettings(options.range_rows, options.factor, options.leaf_rows)
    paced = bool(options.rows_per_second) or options.sleep_seconds > 0
    with ExitStack() as stack:
        conn = stack.enter_context(source.connect())
        wconn = stack.enter_context(warehouse.connect())
        shape = resolve_table(conn, spec)
        mapping, choice = shape.mapping, shape.choice
        with wconn.cursor() as cursor:
            existing = _target_columns(cursor, registry, spec)
        wconn.commit()
        if existing is None:
            raise ReconcileError(
                f"{spec.name}: the target table {target} does not exist; sync the table first (sync -t {spec.identity})"
            )
        live = f"{dialect.quote(SOFT_DELETE_COLUMN)} IS NULL" if SOFT_DELETE_COLUMN in existing else None
        missing_columns = [c.name for c in mapping.columns if c.name not in existing]
        if missing_columns:
            raise ReconcileError(
                f"{spec.name}: the target {target} lacks the source columns {', '.join(missing_columns)}; "
                "run a sync first (it adds them)"
            )
        source_hash = row_hash(
            mapping.columns, hash_text=dialect.hashes_unbounded_text, timestamp_as_text=dialect.timestamp_as_text
        )
        target_hash = dialect.row_hash(dialect.row_text([(dialect.quote(c.name), c.logical) for c in mapping.columns]))
        pacer = Pacer(options.rows_per_second or None, options.sleep_seconds)
        keyed = bool(choice.primary_key) and choice.write_mode != "append"
        if keyed:
            keys = _key_columns(conn, spec, mapping, choice.primary_key)
        else:
            names = list(shape.keyset_names)[:1]
            keys = _key_columns(conn, spec, mapping, names) if names else []
            result.mode = "cursor ranges"
        result.key = tuple(k.source_name for k in keys)
        # Unpaced, more connections to each server share the first pass (each source one on its own
        # snapshot, opened together).
        more = 0 if paced or not keyed else max(0, options.connections - 1)
        helper_conns = [stack.enter_context(source.connect()) for _ in range(more)]
        for each in (conn, *helper_conns):  # every source read of a connection sees one snapshot
            with each.cursor() as cursor:
                cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        target_conns = [wconn, *(stack.enter_context(warehouse.connect()) for _ in range(more))]
        for each in target_conns:
            with each.cursor() as cursor:  # undone by the rollback that ends the comparison
                for statement in dialect.reconcile_session:
                    cursor.execute(statement)
        mine = MySQLSide(conn, spec.schema, spec.table, keys, source_hash, pacer)
        helpers = [MySQLSide(c, spec.schema, spec.table, keys, source_hash, pacer) for c in helper_conns]
        theirs, *target_helpers = [WarehouseSide(c, dialect, target, keys, target_hash, live) for c in target_conns]
        say(f"{spec.name}: comparing {spec.identity} with {target} by {result.mode}")
        try:
            if keyed:
                found = diff_ranges(mine, theirs, settings, helpers, target_helpers)
            else:
                found = _compare_cursor_ranges(mine, theirs, settings, result)
        finally:
            for each in (conn, *helper_conns):
                with suppress(pymysql.MySQLError):
                    each.commit()
            for each in target_conns:
                each.rollback()
        _record(result, found)
        result.source_seconds = sum(side.seconds for side in (mine, *helpers))
        result.source_queries = sum(side.queries for side in (mine, *helpers))
        result.target_seconds = sum(side.seconds for side in (theirs, *target_helpers))
        result.target_queries = sum(side.queries for side in (theirs, *target_helpers))
        if keyed and (result.repair or result.deletes != "report") and found.total:
            with table_lock(conn, spec, options.lock_wait_seconds):
                _repair(registry, spec, shape, keys, found, result, conn, wconn, mine, say)
    result.seconds = time.monotonic() - started
    say(result.summary())
    return result


def _record(result: ReconcileResult, found: Differences) -> None:
    result.source_rows, result.target_rows = found.source_rows, found.target_rows
    result.missing, result.extra, result.changed = len(found.lost), len(found.deleted), len(found.changed)
    result.ranges_scanned, result.rows_transferred = found.ranges_scanned, found.rows_transferred
    for name, keys in (("missing", found.lost), ("extra", found.deleted), ("changed", found.changed)):
        if keys:
            result.samples[name] = [_show(k) for k in keys[:SAMPLE_KEYS]]


def _show(key: KeyValues) -> str:
    return repr(key[0]) if len(key) == 1 else repr(key)


def _compare_cursor_ranges(
    mine: MySQLSide, theirs: WarehouseSide, settings: DiffSettings, result: ReconcileResult
) -> Differences:
    """A table without a key: counts and hashes per cursor range (the whole table when it has no cursor).

    Rows whose cursor is NULL are compared as one more range of their own.
    """
    found = Differences()
    ranges = [KeyRange()]
    if mine.keys:
        bounds = list(dict.fromkeys(mine.boundaries(KeyRange(), settings.range_rows)))  # equal cursors: one edge
        found.rows_transferred += len(bounds)
        edges: list[KeyValues | None] = [None, *bounds]
        ranges = [KeyRange(edges[i], edges[i + 1]) for i in range(len(bounds))] + [KeyRange(edges[-1], None)]
    compared: list[tuple[str, Checksum, Checksum]] = [
        (r.describe(), mine.checksum(r), theirs.checksum(r)) for r in ranges
    ]
    if mine.keys:  # rows whose cursor is NULL lie in no range: one more bucket of their own
        compared.append((f"{mine.keys[0].source_name} IS NULL", mine.null_checksum(), theirs.null_checksum()))
    for described, a, b in compared:
        found.ranges_scanned += 1
        found.source_rows += a.rows
        found.target_rows += b.rows
        if a != b:
            result.differing_ranges += 1
            result.samples.setdefault("differing_ranges", []).append(described)
    result.note = "no primary key: differences are reported per cursor range, not repaired"
    return found


def _repair(
    registry: ConnectionRegistry,
    spec: TableSpec,
    shape: TableShape,
    keys: Sequence[KeyColumn],
    found: Differences,
    result: ReconcileResult,
    conn: Any,
    wconn: Any,
    source_side: MySQLSide,
    say: Progress,
) -> None:
    if result.repair and (found.lost or found.changed):
        _reload_rows(registry, spec, shape, keys, [*found.lost, *found.changed], result, conn, say)
    if result.deletes != "report" and found.deleted:
        _apply_deletes(registry, spec, keys, found.deleted, result, wconn, source_side, say)


def _key_sql(keys: Sequence[KeyColumn], values: Sequence[KeyValues]) -> str:
    """``(k1 = v1 AND k2 = v2) OR …`` with the engine's exact literals (right under any ``sql_mode``)."""
    columns = [quote_mysql(k.source_name) for k in keys]
    return " OR ".join(
        "(" + " AND ".join(f"{c} = {value_literal(v)}" for c, v in zip(columns, key, strict=True)) + ")"
        for key in values
    )


def _reload_rows(
    registry: ConnectionRegistry,
    spec: TableSpec,
    shape: TableShape,
    keys: Sequence[KeyColumn],
    wanted: Sequence[KeyValues],
    result: ReconcileResult,
    conn: Any,
    say: Progress,
) -> None:
    """Re-read rows by key (current values) into one staged batch, and merge it through the loader."""
    mapping = shape.mapping
    store = registry.staging(spec.staging)
    prefix = f"{table_prefix(spec)}/{REPAIR_PREFIX}"
    dialect = dialect_for(registry.warehouse(spec.target).dialect)
    warehouse = registry.warehouse(spec.target)
    # A batch staged by a run that crashed before loading it holds rows read back then: the diff
    # below has found again whatever it would have fixed, so it is dropped, never loaded late.
    _drop_unloaded(registry, spec, prefix)
    source = registry.source(spec.source)
    table = table_sql(spec.schema, spec.table)
    key_names = [k.warehouse_name for k in keys]
    stager = BatchStager(
        store,
        prefix,
        run_id=new_run_id(),
        table_identity=spec.identity,
        schema=mapping.arrow_schema,
        columns=staged_columns(mapping),
        max_rows=spec.file_max_rows,
        compression=spec.compression,
    )
    with stager, source.endpoint() as (host, port):
        url = source.connection_url(host, port)
        for start in range(0, len(wanted), KEYS_PER_STATEMENT):
            chunk = wanted[start : start + KEYS_PER_STATEMENT]
            sql = f"SELECT {mapping.select_list} FROM {table} WHERE {_key_sql(keys, chunk)}"
            for raw in read_batches(url, sql, READ_BATCH_ROWS, table=spec.name):
                batch, _zero = mapping.normalize(raw)
                batch, _cut = dialect.enforce_limits(
                    batch, mapping.columns, table=spec.name, oversize_text=spec.config.oversize_text
                )
                stager.write(batch)
        info = {
            "write_mode": "merge",
            "key": key_names,
            "order_by": key_names,
            "strategy": "reconcile",
            # Keys match as the source compares them, as in a sync's merge (see sync.load_info).
            "key_equality": {mapping.warehouse_name(k): rule for k, rule in shape.key_equality.items()},
        }
        manifest = stager.finish(extra={"load": info, "reconcile": {"keys": len(wanted)}})
    result.rows_transferred += manifest.rows
    result.repair_batch = manifest.batch_id
    checkpoint("reconcile.staged")
    say(f"{spec.name}: re-loading {manifest.rows:,} rows (batch {manifest.batch_id})")
    loader = TableLoader(warehouse, store, load_spec_for(registry, spec, info), progress=say)
    loaded = loader.load([manifest])
    result.rows_merged = loaded.rows


def _drop_unloaded(registry: ConnectionRegistry, spec: TableSpec, prefix: str) -> None:
    store = registry.staging(spec.staging)
    batches = list_batches(store, prefix)
    if not batches:
        return
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    with warehouse.connect() as conn, conn.cursor() as cursor:
        exists = dialect.table_exists_query(dialect.ledger_table(spec.target_schema))
        cursor.execute(exists.sql, exists.params)
        loaded: set[str] = set()
        if cursor.fetchone() is not None:
            query = dialect.loaded_batches_query(spec.target_schema, spec.identity)
            cursor.execute(query.sql, query.params)
            loaded = {row[0] for row in cursor.fetchall()}
    for manifest in batches:
        if manifest.batch_id not in loaded:
            store.delete([o.key for o in store.list(manifest.prefix + "/")])


def _apply_deletes(
    registry: ConnectionRegistry,
    spec: TableSpec,
    keys: Sequence[KeyColumn],
    deleted: Sequence[KeyValues],
    result: ReconcileResult,
    wconn: Any,
    source_side: MySQLSide,
    say: Progress,
) -> None:
    """Delete (or mark) target rows whose key the source no longer has — checked again right now."""
    back = source_side.keys_present(list(deleted))
    gone = [k for k in deleted if k not in back]
    result.still_present = len(deleted) - len(gone)
    if not gone:
        return
    dialect = dialect_for(registry.warehouse(spec.target).dialect)
    target = TableRef(spec.target_schema, spec.target_table)
    names = [k.warehouse_name for k in keys]
    soft = result.deletes == "soft"
    marked_at = dt.datetime.now(dt.UTC)  # the client's clock, as the ledger's loaded_at
    with wconn.cursor() as cursor:
        if soft:
            existing = _target_columns(cursor, registry, spec) or set()
            if SOFT_DELETE_COLUMN not in existing:
                cursor.execute(dialect.add_soft_delete_column(target))
                wconn.commit()
        cursor.execute(dialect.lock_statement(target))
        changed = 0
        for start in range(0, len(gone), KEYS_PER_STATEMENT):
            chunk = gone[start : start + KEYS_PER_STATEMENT]
            values = [v for key in chunk for v in warehouse_values(keys, key)]
            if soft:
                cursor.execute(dialect.soft_delete_keys(target, names, len(chunk)), [marked_at, *values])
            else:
                cursor.execute(dialect.delete_keys(target, names, len(chunk)), values)
            changed += cursor.rowcount
        wconn.commit()
    if soft:
        result.rows_soft_deleted = changed
    else:
        result.rows_deleted = changed
    say(f"{spec.name}: {'marked' if soft else 'deleted'} {changed:,} rows deleted at the source")
