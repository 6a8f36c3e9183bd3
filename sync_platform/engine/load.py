"""The load step: manifested batches into the warehouse, each exactly once, in order.

Each batch runs the dialect's load plan: fill a session-private stage table (COPY) and commit it,
create the target or run the ALTERs that cannot be in a transaction, then ONE transaction — take
the table's writer lock, skip the batch if the ledger already has it, check the columns are still
those planned for, merge / append / replace, write the ledger row, commit. A crash anywhere
before that commit leaves no row behind; after it, the ledger row makes a rerun skip the batch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import itertools
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
import pyarrow.parquet as pq

from sync_platform.connections.retry import mask_secrets
from sync_platform.connections.staging.store import StagingStore
from sync_platform.connections.warehouse import Warehouse
from sync_platform.engine.faults import checkpoint
from sync_platform.engine.manifest import Manifest
from sync_platform.engine.result import LoadResult
from sync_platform.engine.watermark import Watermark
from sync_platform.errors import WarehouseError, classify
from sync_platform.warehouse import (
    BINARY_HEADER,
    BINARY_TRAILER,
    BatchLoad,
    LedgerEntry,
    LoadPlan,
    LogicalType,
    S3Authorization,
    TableLayout,
    TableRef,
    TargetState,
    WarehouseColumn,
    WarehouseDialect,
    copy_binary,
    copy_text,
    dialect_for,
)

log = logging.getLogger(__name__)
COPY_READ_ROWS = 8_192
# A COPY's CREDENTIALS literal, as a syntax-error excerpt may quote it — whole, or cut anywhere.
_CREDENTIALS = re.compile(r"CREDENTIALS\s+'[^']*'?", re.IGNORECASE)
_EXCERPT = re.compile(r"^LINE \d+: .*(?:\n\s*\^)?", re.MULTILINE)
_CREDENTIAL_PARTS = re.compile(r"(aws_secret_access_key|token)=[^;'\s]*", re.IGNORECASE)


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
    key_equality: tuple[tuple[str, str], ...] = ()  # (key column, what MySQL ignores: case, pad, case_pad)
    layout: TableLayout | None = None
    authorization: S3Authorization | None = None  # Redshift COPY


def columns_of(manifest: Manifest) -> list[WarehouseColumn]:
    """The warehouse columns a batch describes (staged batches are self-describing)."""
    return [WarehouseColumn(c["name"], logical_from_dict(c["logical"])) for c in manifest.columns]


def logical_from_dict(data: dict) -> LogicalType:
    return LogicalType.from_dict(data)


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


def _copy_chunks(store: StagingStore, manifest: Manifest, *, binary: bool = False) -> Iterator[memoryview]:
    """The batch's rows as COPY text (or binary), one row group at a time (memory stays at one row group)."""
    kinds = [(c.logical.kind.value, c.logical.precision, c.logical.scale) for c in columns_of(manifest)]
    if binary:
        yield memoryview(BINARY_HEADER)
    for part in manifest.files:
        with store.open_read(part.key) as handle:
            parquet = pq.ParquetFile(handle, pre_buffer=False)
            for index in range(parquet.num_row_groups):
                group = parquet.read_row_group(index)
                for batch in group.to_batches(max_chunksize=COPY_READ_ROWS):
                    checkpoint("load.copy")
                    yield copy_binary(batch, kinds) if binary else copy_text(batch)
                del group
    if binary:
        yield memoryview(BINARY_TRAILER)


def _ledger_watermark(manifest: Manifest) -> str:
    """The ledger's watermark text; a reconcile repair batch has no position, so it records none
    (the ledger's latest "end" must stay the last sync's, see ``recovery.ledger_watermark``)."""
    load = manifest.extra.get("load", {})
    if load.get("strategy") == "reconcile":
        return json.dumps({"reconcile": {"rows": manifest.rows}})
    return json.dumps({"start": manifest.watermark_start, "end": manifest.watermark_end})


def _rollback_quietly(conn: psycopg2.extensions.connection) -> None:
    """Roll back; a connection that is already gone (terminated backend) has nothing to roll back."""
    with contextlib.suppress(psycopg2.Error):
        conn.rollback()


class _Replan(Exception):
    """The target changed between planning and the lock (a concurrent loader evolved it): plan again."""


class _RepeatedKey(Exception):
    """A direct COPY hit the enforced key: the batch repeats a key, so it goes through the stage."""


CONFLICT_ATTEMPTS = 5
# Targets estimated at fewer rows are counted exactly after a load where COUNT(*) visits every row.
EXACT_COUNT_BELOW = 1_000_000
CONFLICT_BACKOFF_SECONDS = 0.5


class TableLoader:
    """Loads a table's pending batches; one instance per table and run.

    Each batch runs the dialect's :class:`LoadPlan` step by step: what ``explain`` prints is what
    runs here. The loader only reads the target's state, feeds rows to COPY and reacts to the
    plan's checks (already loaded, columns moved, repeated key, conflicting writer).
    """

    def __init__(
        self,
        warehouse: Warehouse,
        store: StagingStore,
        spec: LoadSpec,
        *,
        progress: Callable[[str], None] | None = None,
        disjoint_keys: bool = False,
    ):
        """``disjoint_keys``: no batch holds a key already in the target (the ranges of an initial load
        into an empty table), so batches are COPYed straight in where the warehouse enforces the key, as
        into an empty target; a repeated key still fails that COPY and the batch goes through the stage."""
        self.disjoint_keys = disjoint_keys
        self.warehouse = warehouse
        self.store = store
        self.spec = spec
        self.dialect: WarehouseDialect = dialect_for(warehouse.dialect)
        self.progress = progress or (lambda message: log.info(message))
        self._initial = False
        self._filled_stage: str | None = None

    # ------------------------------------------------------------------ public

    def load(
        self,
        batches: Sequence[Manifest],
        incoming: Iterable[Manifest] = (),
        *,
        superseded_before: dt.datetime | None = None,
    ) -> LoadResult:
        """Load every batch not yet in the ledger, in order: ``batches`` first, then ``incoming``.

        ``incoming`` may be a stream of batches being staged right now (the in-process sync), so
        loading overlaps extraction. Replace mode loads only the newest snapshot of ``batches``. A merge
        re-reading the table from the beginning (``superseded_before``: when it started) supersedes the
        batches staged before it: loading them would only write older versions the re-read overwrites
        (on a new warehouse without its ledger, every batch still in the staging store).
        """
        spec = self.spec
        result = LoadResult(
            table=spec.table, target=f"{spec.target.schema}.{spec.target.name}", write_mode=spec.write_mode
        )
        started = time.monotonic()
        with self.warehouse.connect() as conn:
            self._with_conflict_retry(conn, "preparing", lambda: self._setup(conn))
            loaded = self._loaded_batch_ids(conn)
            pending = [b for b in batches if b.batch_id not in loaded]
            result.skipped_batches = [b.batch_id for b in batches if b.batch_id in loaded]
            superseded: list[Manifest] = []
            if spec.write_mode == "replace" and len(pending) > 1:
                superseded, pending = pending[:-1], pending[-1:]
            elif spec.write_mode == "merge" and superseded_before is not None:
                superseded = [b for b in pending if b.created_at < superseded_before]
                pending = [b for b in pending if b.created_at >= superseded_before]
                if superseded:
                    self.progress(
                        f"{spec.table}: {len(superseded)} batch(es) staged before the table was read again from "
                        "the beginning are superseded by the re-read; not loaded"
                    )
            if superseded:
                self._with_conflict_retry(
                    conn, "recording superseded batches", lambda: self._record_superseded(conn, superseded)
                )
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
                    if result.watermark_start is None:
                        result.watermark_start = Watermark.from_dict(manifest.watermark_start)
                else:
                    result.skipped_batches.append(manifest.batch_id)
            result.target_rows, result.target_rows_estimate = self._count(conn)
        result.seconds = time.monotonic() - started
        return result

    def batch_load(self, manifest: Manifest) -> BatchLoad:
        """What the dialect needs to plan one batch."""
        spec = self.spec
        entry = LedgerEntry(
            spec.table,
            manifest.batch_id,
            manifest.run_id,
            manifest.rows,
            len(manifest.files),
            manifest.bytes,
            _ledger_watermark(manifest),
            loaded_at=dt.datetime.now(dt.UTC),
        )
        from_s3 = self.dialect.capabilities.stage_fill == "copy_from_s3"
        return BatchLoad(
            target=spec.target,
            columns=tuple(columns_of(manifest)),
            write_mode=spec.write_mode,  # type: ignore[arg-type]
            ledger=entry,
            key=spec.key,
            order_by=spec.order_by,
            key_equality=spec.key_equality,
            layout=spec.layout,
            manifest_url=self.store.uri(manifest.copy_manifest_key) if from_s3 else None,
            authorization=spec.authorization,
        )

    # ------------------------------------------------------------------ state

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

    def _state(self, conn: psycopg2.extensions.connection, *, key_columns: bool = False) -> TargetState:
        """The target's columns (and, where it matters, its enforced key and DISTKEY/SORTKEY columns)."""
        d, target = self.dialect, self.spec.target
        with conn.cursor() as cursor:
            query = d.columns_query(target)
            cursor.execute(query.sql, query.params)
            columns = d.parse_columns(cursor.fetchall())
            unique = False
            unique_query = d.unique_key_query(target) if columns and self.spec.key else None
            if unique_query is not None:
                cursor.execute(unique_query.sql, unique_query.params)
                unique = any(row[0] == sorted(self.spec.key) for row in cursor.fetchall())
            keys: frozenset[str] = frozenset()
            if columns and key_columns:
                for statement in d.key_columns_queries(target):
                    cursor.execute(statement.sql, statement.params or None)
                keys = d.parse_key_columns(cursor.fetchall())
        conn.commit()
        empty = self._initial or self.disjoint_keys
        return TargetState(columns, empty=empty, unique_key=unique, key_columns=keys)

    def _plan(self, conn: psycopg2.extensions.connection, batch: BatchLoad, direct: bool | None) -> LoadPlan:
        d = self.dialect
        plan = d.load_plan(batch, self._state(conn), direct=direct)
        rebuilds = any(c.action in ("widen_column", "rebuild_table") and c.transactional for c in plan.changes)
        if d.capabilities.distribution_keys and rebuilds:
            # Only a widening that rebuilds needs the real DISTKEY/SORTKEY columns (AUTO may have chosen one).
            plan = d.load_plan(batch, self._state(conn, key_columns=True), direct=direct)
        return plan

    # ------------------------------------------------------------------ steps

    def _setup(self, conn: psycopg2.extensions.connection) -> None:
        """Schema and ledger exist (their own short transaction)."""
        with conn.cursor() as cursor:
            for statement in self.dialect.setup_statements(self.spec.target.schema):
                cursor.execute(statement)
        conn.commit()

    def _loaded_batch_ids(self, conn: psycopg2.extensions.connection) -> set[str]:
        query = self.dialect.loaded_batches_query(self.spec.target.schema, self.spec.table)
        with conn.cursor() as cursor:
            cursor.execute(query.sql, query.params)
            ids = {row[0] for row in cursor.fetchall()}
        conn.commit()
        return ids

    def _record_superseded(self, conn: psycopg2.extensions.connection, manifests: Sequence[Manifest]) -> None:
        """Batches a newer read replaces (older full snapshots, or batches before a re-read from the
        beginning) are never loaded; the ledger says so."""
        with conn.cursor() as cursor:
            for manifest in manifests:
                entry = LedgerEntry(
                    self.spec.table, manifest.batch_id, manifest.run_id, 0, 0, 0, json.dumps({"superseded": True})
                )
                statement = self.dialect.record_batch(self.spec.target.schema, entry)
                cursor.execute(statement.sql, statement.params)
        conn.commit()

    def _with_conflict_retry(
        self, conn: psycopg2.extensions.connection, doing: str, action: Callable[[], None]
    ) -> None:
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            failure: LoadError | None = None
            try:
                action()
                return
            except psycopg2.Error as exc:
                _rollback_quietly(conn)
                if attempt == CONFLICT_ATTEMPTS or not self.dialect.is_conflict(exc.pgcode, str(exc)):
                    failure = LoadError(self._failure_text(f"{doing} {self.spec.target}", exc))
                    failure.transient = classify(exc).transient  # a lost connection is worth another attempt
                else:
                    failure = None
            if failure is not None:
                raise failure  # outside the handler: no driver error chained
            time.sleep(CONFLICT_BACKOFF_SECONDS * attempt)

    def _load_batch(self, conn: psycopg2.extensions.connection, manifest: Manifest) -> tuple[list[str], bool]:
        """Run the batch's plan; re-plan when the target moved, retry a conflicting writer, never load twice."""
        spec = self.spec
        batch = self.batch_load(manifest)
        direct: bool | None = None
        self._filled_stage = None  # a stage an earlier attempt filled and committed: not filled again
        attempt = 0
        while True:
            attempt += 1
            failure: LoadError | None = None
            try:
                plan = self._plan(conn, batch, direct)
                if attempt == 1:
                    self.progress(f"{spec.table}: loading batch {manifest.batch_id} ({manifest.rows:,} rows)")
                filled = plan.stage is not None and plan.stage == self._filled_stage
                loaded_now = self._run(conn, plan, manifest, skip_stage=filled)
                return [c.describe() for c in plan.changes if c.statements], loaded_now
            except _Replan:
                pass
            except _RepeatedKey:
                direct = False
            except psycopg2.Error as exc:
                _rollback_quietly(conn)
                if attempt >= CONFLICT_ATTEMPTS or not self.dialect.is_conflict(exc.pgcode, str(exc)):
                    what = f"loading batch {manifest.batch_id} into {spec.target}"
                    failure = LoadError(self._failure_text(what, exc))
                    failure.transient = classify(exc).transient  # a lost connection is worth another attempt
                else:
                    log.warning(
                        "%s: batch %s met a concurrent writer (%s); retrying", spec.table, manifest.batch_id, exc.pgcode
                    )
                    time.sleep(CONFLICT_BACKOFF_SECONDS * attempt)
            if failure is not None:
                raise failure  # outside the handler: the driver's error (it may quote a COPY) is not chained
            if attempt >= CONFLICT_ATTEMPTS * 2:
                raise LoadError(
                    f"{spec.table}: batch {manifest.batch_id}: the target kept changing while loading; rerun"
                )

    def _failure_text(self, what: str, exc: psycopg2.Error) -> str:
        """The warehouse's error without any secret (a syntax-error excerpt can quote a COPY's CREDENTIALS)."""
        auth = self.spec.authorization
        secrets = [auth.secret_access_key, auth.session_token] if auth is not None else []
        text = mask_secrets(str(exc).strip(), [*secrets, *self.warehouse.secrets()])
        text = _CREDENTIAL_PARTS.sub(r"\1=***", _CREDENTIALS.sub("CREDENTIALS '***'", text))
        if any(secrets):
            # libpq's excerpt ("LINE 1: ...<40 characters>...") can start inside the key: withhold it.
            text = _EXCERPT.sub("(statement excerpt withheld: the COPY carries access keys)", text)
        state = f" [SQLSTATE {exc.pgcode}]" if exc.pgcode else ""
        return f"{self.spec.table}: {what} failed{state}: {text}"

    def _run(
        self, conn: psycopg2.extensions.connection, plan: LoadPlan, manifest: Manifest, *, skip_stage: bool
    ) -> bool:
        """Execute the plan's steps; False when the ledger already had the batch (nothing changed)."""
        d = self.dialect
        with conn.cursor() as cursor:
            for step in plan.steps:
                if skip_stage and step.phase == "stage":
                    continue
                action = step.action
                if action == "commit":
                    if step.phase == "load":
                        checkpoint("load.before_commit")
                    conn.commit()
                    if step.phase == "stage":
                        self._filled_stage = plan.stage
                    if step.phase == "load":
                        checkpoint("load.after_commit")
                elif action == "execute":
                    cursor.execute(step.executable, step.params or None)
                elif action == "autocommit":
                    # Redshift refuses some ALTERs inside a transaction block: run them on their own.
                    conn.commit()
                    conn.autocommit = True
                    try:
                        cursor.execute(step.executable, step.params or None)
                    finally:
                        conn.autocommit = False
                elif action == "copy_stdin":
                    self._copy_stdin(
                        conn, cursor, step.executable, manifest, direct=step.phase == "load", binary=step.binary
                    )
                elif action == "copy_s3":
                    log.info("%s", step.sql)  # the redacted form
                    checkpoint("load.copy")
                    cursor.execute(step.executable)
                elif action == "skip_if_loaded":
                    cursor.execute(step.sql, step.params or None)
                    if cursor.fetchone() is not None:  # another writer loaded it while we waited for the lock
                        conn.rollback()
                        self._cleanup(conn, plan)
                        return False
                elif action == "verify_columns":
                    cursor.execute(step.sql, step.params or None)
                    if not plan.columns_match(d.described_columns(d.parse_columns(cursor.fetchall()))):
                        conn.rollback()
                        raise _Replan
                else:  # pragma: no cover - the plan's actions are a closed set
                    raise AssertionError(f"unknown load step {action!r}")
        return True

    def _cleanup(self, conn: psycopg2.extensions.connection, plan: LoadPlan) -> None:
        with conn.cursor() as cursor:
            for step in plan.phase("cleanup"):
                if step.action == "commit":
                    conn.commit()
                else:
                    cursor.execute(step.executable)
        conn.commit()

    def _copy_stdin(
        self,
        conn: psycopg2.extensions.connection,
        cursor: psycopg2.extensions.cursor,
        sql: str,
        manifest: Manifest,
        *,
        direct: bool,
        binary: bool = False,
    ) -> None:
        try:
            with _CopyStream(_copy_chunks(self.store, manifest, binary=binary)) as stream:
                cursor.copy_expert(sql, stream, size=1 << 20)
        except psycopg2.errors.UniqueViolation:
            if not direct:
                raise
            conn.rollback()
            raise _RepeatedKey from None

    def _target_is_empty(self, cursor: psycopg2.extensions.cursor) -> bool:
        cursor.execute(f"SELECT 1 FROM {self.dialect.table_sql(self.spec.target)} LIMIT 1")
        return cursor.fetchone() is None

    def _count(self, conn: psycopg2.extensions.connection) -> tuple[int | None, int | None]:
        """(rows in the target, the catalog's estimate instead): counted exactly where that is cheap or the
        table is small; a large target of a warehouse that counts row by row reports its estimate, so a
        run that merged a few rows does not visit all of them (O(table) every run)."""
        estimate_query = self.dialect.row_estimate_query(self.spec.target)
        with conn.cursor() as cursor:
            try:
                if estimate_query is not None:
                    cursor.execute(estimate_query.sql, estimate_query.params)
                    row = cursor.fetchone()
                    estimate = int(row[0]) if row and row[0] is not None else None
                    if estimate is not None and estimate >= EXACT_COUNT_BELOW:
                        conn.commit()
                        return None, estimate
                cursor.execute(f"SELECT COUNT(*) FROM {self.dialect.table_sql(self.spec.target)}")
                count = cursor.fetchone()[0]
            except psycopg2.Error:
                conn.rollback()
                return None, None
        conn.commit()
        return int(count), None
