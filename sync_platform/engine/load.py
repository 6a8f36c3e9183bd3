"""The load step: manifested batches into the warehouse, each exactly once, in order.

Each batch is one warehouse transaction: take the table's writer lock, skip the batch if the
ledger already has it, create or evolve the table, fill a stage table (COPY), merge / append /
replace into the target, write the ledger row, commit. A crash anywhere before the commit leaves
nothing behind; after it, the ledger row makes a rerun skip the batch.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
import pyarrow.parquet as pq

from sync_platform.connections.staging.store import StagingStore
from sync_platform.connections.warehouse import Warehouse
from sync_platform.engine.faults import checkpoint
from sync_platform.engine.manifest import Manifest
from sync_platform.engine.result import LoadResult
from sync_platform.engine.typemap import Kind, LogicalType
from sync_platform.engine.watermark import Watermark
from sync_platform.errors import WarehouseError
from sync_platform.warehouse import (
    IncompatibleSchemaChange,
    LedgerEntry,
    PostgresDialect,
    S3Authorization,
    SchemaChange,
    Statement,
    TableLayout,
    TableRef,
    WarehouseColumn,
    WarehouseDialect,
    copy_text,
    dialect_for,
)

log = logging.getLogger(__name__)
COPY_READ_ROWS = 8_192


class LoadError(WarehouseError, RuntimeError):
    """The warehouse refused a batch (names table, batch and the statement that failed)."""


@dataclass(frozen=True)
class LoadSpec:
    """What the loader needs to know about one table (plain data; built by the sync step)."""

    table: str  # source schema.table, the ledger's table name
    target: TableRef
    write_mode: str  # merge | append | replace
    key: tuple[str, ...]  # warehouse column names of the primary key
    order_by: tuple[str, ...]  # cursor columns (warehouse names): the latest row per key wins
    layout: TableLayout | None = None
    authorization: S3Authorization | None = None  # Redshift COPY


def columns_of(manifest: Manifest) -> list[WarehouseColumn]:
    """The warehouse columns a batch describes (staged batches are self-describing)."""
    return [WarehouseColumn(c["name"], logical_from_dict(c["logical"])) for c in manifest.columns]


def logical_from_dict(data: dict) -> LogicalType:
    return LogicalType(Kind(data["kind"]), data.get("length"), data.get("precision"), data.get("scale"))


class _CopyStream(io.RawIOBase):
    """A file-like view of COPY text chunks for ``cursor.copy_expert`` (bounded memory).

    The chunks are produced in a background thread, a few ahead, so encoding the next rows
    overlaps with PostgreSQL parsing the previous ones instead of alternating with it.
    """

    def __init__(self, chunks: Iterator[memoryview], ahead: int = 3):
        self._queue: queue.Queue[memoryview | BaseException | None] = queue.Queue(maxsize=ahead)
        self._buffer = memoryview(b"")
        self._done = False
        self._stop = threading.Event()
        self._producer = threading.Thread(target=self._produce, args=(chunks,), name="copy-text", daemon=True)
        self._producer.start()

    def _produce(self, chunks: Iterator[memoryview]) -> None:
        try:
            for chunk in chunks:
                while not self._stop.is_set():
                    try:
                        self._queue.put(chunk, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._queue.put(None)
        except BaseException as exc:  # handed to the reader, raised in the COPY's thread
            self._queue.put(exc)

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            if self._done:
                return 0
            item = self._queue.get()
            if item is None:
                self._done = True
                return 0
            if isinstance(item, BaseException):
                self._done = True
                raise item
            self._buffer = memoryview(item)
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]  # a view: no copy of the rest
        return size

    def close(self) -> None:
        self._stop.set()
        super().close()


def _copy_chunks(store: StagingStore, manifest: Manifest) -> Iterator[memoryview]:
    """The batch's rows as COPY text, one row group at a time (memory stays at one row group)."""
    for part in manifest.files:
        with store.open_read(part.key) as handle:
            parquet = pq.ParquetFile(handle, pre_buffer=False)
            for index in range(parquet.num_row_groups):
                group = parquet.read_row_group(index)
                for batch in group.to_batches(max_chunksize=COPY_READ_ROWS):
                    checkpoint("load.copy")
                    yield copy_text(batch)
                del group


def _rollback_quietly(conn: psycopg2.extensions.connection) -> None:
    """Roll back; a connection that is already gone (terminated backend) has nothing to roll back."""
    with contextlib.suppress(psycopg2.Error):
        conn.rollback()


class TableLoader:
    """Loads a table's pending batches; one instance per table and run."""

    def __init__(
        self,
        warehouse: Warehouse,
        store: StagingStore,
        spec: LoadSpec,
        *,
        progress: Callable[[str], None] | None = None,
    ):
        self.warehouse = warehouse
        self.store = store
        self.spec = spec
        self.dialect: WarehouseDialect = dialect_for(warehouse.dialect)
        self.progress = progress or (lambda message: log.info(message))
        self._initial = False

    # ------------------------------------------------------------------ public

    def load(self, batches: Sequence[Manifest], incoming: Iterable[Manifest] = ()) -> LoadResult:
        """Load every batch not yet in the ledger, in order: ``batches`` first, then ``incoming``.

        ``incoming`` may be a stream of batches being staged right now (the in-process sync), so
        loading overlaps extraction. Replace mode loads only the newest snapshot of ``batches``.
        """
        spec = self.spec
        result = LoadResult(
            table=spec.table, target=f"{spec.target.schema}.{spec.target.name}", write_mode=spec.write_mode
        )
        started = time.monotonic()
        with self.warehouse.connect() as conn:
            self._prepare(conn)
            loaded = self._loaded_batch_ids(conn)
            pending = [b for b in batches if b.batch_id not in loaded]
            result.skipped_batches = [b.batch_id for b in batches if b.batch_id in loaded]
            if spec.write_mode == "replace" and len(pending) > 1:
                superseded, pending = pending[:-1], pending[-1:]
                self._record_superseded(conn, superseded)
                result.skipped_batches += [b.batch_id for b in superseded]
            self._initial = self._initial_load(conn)
            for manifest in itertools.chain(pending, incoming):
                if manifest.batch_id in loaded:
                    result.skipped_batches.append(manifest.batch_id)
                    continue
                changes, loaded_now = self._load_batch(conn, manifest)
                result.schema_changes += changes
                loaded.add(manifest.batch_id)
                if loaded_now:
                    result.batches.append(manifest.batch_id)
                    result.rows += manifest.rows
                    result.watermark = Watermark.from_dict(manifest.watermark_end)
                else:
                    result.skipped_batches.append(manifest.batch_id)
            result.target_rows = self._count(conn)
        result.seconds = time.monotonic() - started
        return result

    def _initial_load(self, conn: psycopg2.extensions.connection) -> bool:
        """True when the target is missing or empty: batches may then be copied straight into it."""
        with conn.cursor() as cursor:
            query = self.dialect.table_exists_query(self.spec.target)
            cursor.execute(query.sql, query.params)
            if cursor.fetchone() is None:
                conn.commit()
                return True
            empty = self._target_is_empty(cursor)
        conn.commit()
        return empty

    # ------------------------------------------------------------------ steps

    def _execute(self, cursor: psycopg2.extensions.cursor, statement: str | Statement) -> None:
        if isinstance(statement, Statement):
            cursor.execute(statement.sql, statement.params)
        else:
            cursor.execute(statement)

    def _prepare(self, conn: psycopg2.extensions.connection) -> None:
        """Schema and ledger exist (their own short transaction; concurrent creators are harmless)."""
        d, schema = self.dialect, self.spec.target.schema
        with conn.cursor() as cursor:
            self._execute(cursor, d.lock_statement(TableRef(schema, "_sync_platform_schema")))
            self._execute(cursor, d.create_schema(schema))
            self._execute(cursor, d.create_ledger(schema))
        conn.commit()

    def _loaded_batch_ids(self, conn: psycopg2.extensions.connection) -> set[str]:
        query = self.dialect.loaded_batches_query(self.spec.target.schema, self.spec.table)
        with conn.cursor() as cursor:
            cursor.execute(query.sql, query.params)
            ids = {row[0] for row in cursor.fetchall()}
        conn.commit()
        return ids

    def _record_superseded(self, conn: psycopg2.extensions.connection, manifests: Sequence[Manifest]) -> None:
        """Older full snapshots are never loaded once a newer one exists; the ledger says so."""
        with conn.cursor() as cursor:
            for manifest in manifests:
                entry = LedgerEntry(
                    self.spec.table, manifest.batch_id, manifest.run_id, 0, 0, 0, json.dumps({"superseded": True})
                )
                self._execute(cursor, self.dialect.record_batch(self.spec.target.schema, entry))
        conn.commit()

    def _load_batch(self, conn: psycopg2.extensions.connection, manifest: Manifest) -> tuple[list[str], bool]:
        spec, d = self.spec, self.dialect
        columns = columns_of(manifest)
        with conn.cursor() as cursor:
            try:
                self._execute(cursor, d.lock_statement(spec.target))
                already = d.batch_loaded_query(spec.target.schema, spec.table, manifest.batch_id)
                cursor.execute(already.sql, already.params)
                if cursor.fetchone() is not None:  # another writer loaded it while we waited for the lock
                    conn.rollback()
                    return [], False
                changes = self._ensure_table(cursor, columns)
                self.progress(f"{spec.table}: loading batch {manifest.batch_id} ({manifest.rows:,} rows)")
                self._apply(cursor, manifest, columns)
                entry = LedgerEntry(
                    spec.table,
                    manifest.batch_id,
                    manifest.run_id,
                    manifest.rows,
                    len(manifest.files),
                    manifest.bytes,
                    json.dumps({"start": manifest.watermark_start, "end": manifest.watermark_end}),
                )
                self._execute(cursor, d.record_batch(spec.target.schema, entry))
                conn.commit()
                checkpoint("load.after_commit")
                return changes, True
            except IncompatibleSchemaChange:
                _rollback_quietly(conn)
                raise
            except psycopg2.Error as exc:
                _rollback_quietly(conn)
                raise LoadError(
                    f"{spec.table}: loading batch {manifest.batch_id} into "
                    f"{spec.target.schema}.{spec.target.name} failed: {exc}".strip()
                ) from exc

    def _ensure_table(self, cursor: psycopg2.extensions.cursor, columns: list[WarehouseColumn]) -> list[str]:
        spec, d = self.spec, self.dialect
        query = d.columns_query(spec.target)
        cursor.execute(query.sql, query.params)
        existing = d.parse_columns(cursor.fetchall())
        if not existing:
            self._execute(cursor, d.create_table(spec.target, columns, primary_key=spec.key, layout=spec.layout))
            return [f"created {spec.target.schema}.{spec.target.name} ({len(columns)} columns)"]
        plan = d.plan_evolution(spec.target, existing, columns, layout=spec.layout)
        described: list[str] = []
        for change in plan.changes:
            described.append(change.describe())
            self._apply_change(cursor, change)
        return described

    def _apply_change(self, cursor: psycopg2.extensions.cursor, change: SchemaChange) -> None:
        if not change.transactional:
            # Redshift refuses some ALTERs inside a transaction block: run them on their own.
            conn = cursor.connection
            conn.commit()
            conn.autocommit = True
            try:
                for statement in change.statements:
                    cursor.execute(statement)
            finally:
                conn.autocommit = False
            self._execute(cursor, self.dialect.lock_statement(self.spec.target))
            return
        for statement in change.statements:
            cursor.execute(statement)

    def _apply(self, cursor: psycopg2.extensions.cursor, manifest: Manifest, columns: list[WarehouseColumn]) -> None:
        spec, d = self.spec, self.dialect
        if spec.write_mode == "replace":
            plan = d.replace_plan(spec.target, "", columns, key=spec.key, order_by=spec.order_by, layout=spec.layout)
            for statement in plan.prepare:
                cursor.execute(statement)
            if not self._copy_direct(cursor, manifest, columns, plan.new_table):
                stage = self._fill_stage(cursor, manifest, columns)
                plan = d.replace_plan(
                    spec.target, stage, columns, key=spec.key, order_by=spec.order_by, layout=spec.layout
                )
                for statement in plan.fill:
                    cursor.execute(statement)
            for statement in plan.swap:
                cursor.execute(statement)
            return
        if self._initial and self._copy_direct(cursor, manifest, columns, spec.target):
            return
        stage = self._fill_stage(cursor, manifest, columns)
        if spec.write_mode == "merge":
            statements = d.merge_statements(spec.target, stage, columns, key=spec.key, order_by=spec.order_by)
        else:
            statements = d.append_statements(spec.target, stage, columns)
        for statement in statements:
            cursor.execute(statement)
        cursor.execute(d.drop_stage(stage))

    def _target_is_empty(self, cursor: psycopg2.extensions.cursor) -> bool:
        cursor.execute(f"SELECT 1 FROM {self.dialect.table_sql(self.spec.target)} LIMIT 1")
        return cursor.fetchone() is None

    def _copy_direct(
        self,
        cursor: psycopg2.extensions.cursor,
        manifest: Manifest,
        columns: list[WarehouseColumn],
        table: TableRef,
    ) -> bool:
        """PostgreSQL fast path: COPY straight into an empty table whose declared key catches duplicates.

        Returns False (and undoes the attempt) when the batch repeats a key, so the caller dedups
        through a stage instead. Redshift enforces no key, so it always goes through the stage.
        """
        if not isinstance(self.dialect, PostgresDialect):
            return False
        if self.spec.key and not self._has_unique_key(cursor, table):
            return False  # without an enforced key a duplicate would go unnoticed: use the stage
        cursor.execute("SAVEPOINT sp_direct_copy")
        try:
            sql = self.dialect.copy_from_stdin(table, columns)
            with _CopyStream(_copy_chunks(self.store, manifest)) as stream:
                cursor.copy_expert(sql, stream, size=1 << 20)
        except psycopg2.errors.UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT sp_direct_copy")
            return False
        cursor.execute("RELEASE SAVEPOINT sp_direct_copy")
        return True

    def _has_unique_key(self, cursor: psycopg2.extensions.cursor, table: TableRef) -> bool:
        """The table has a unique index on exactly the key columns (PostgreSQL enforces it)."""
        cursor.execute(
            "SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
            "WHERE n.nspname = %s AND c.relname = %s AND i.indisunique GROUP BY i.indexrelid",
            (table.schema, table.name),
        )
        wanted = sorted(self.spec.key)
        return any(row[0] == wanted for row in cursor.fetchall())

    def _fill_stage(
        self, cursor: psycopg2.extensions.cursor, manifest: Manifest, columns: list[WarehouseColumn]
    ) -> str:
        d = self.dialect
        stage = d.stage_name(self.spec.target)
        cursor.execute(d.drop_stage(stage))
        cursor.execute(d.create_stage(stage, columns, layout=self.spec.layout))
        if isinstance(d, PostgresDialect):
            with _CopyStream(_copy_chunks(self.store, manifest)) as stream:
                cursor.copy_expert(d.copy_from_stdin(stage, columns), stream, size=1 << 20)
        else:
            if self.spec.authorization is None:
                raise LoadError(f"{self.spec.table}: Redshift COPY needs iam_role on the target or S3 keys")
            copy = d.copy_from_s3(
                stage,
                columns,
                self.store.uri(manifest.copy_manifest_key),
                self.spec.authorization,
            )
            log.info("%s", copy.redacted())
            cursor.execute(copy.sql)
        return stage

    def _count(self, conn: psycopg2.extensions.connection) -> int | None:
        with conn.cursor() as cursor:
            try:
                cursor.execute(f"SELECT COUNT(*) FROM {self.dialect.table_sql(self.spec.target)}")
                count = cursor.fetchone()[0]
            except psycopg2.Error:
                conn.rollback()
                return None
        conn.commit()
        return int(count)
