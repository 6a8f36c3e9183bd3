"""Staging cleanup: which staged batches of a table may go, and removing them safely.

A batch is deleted only when the warehouse ledger says it is loaded and it is older than the
retention, or when it is a crash leftover (no manifest) old enough not to be a running stager.
A batch that is staged but not loaded is never deleted unless ``force`` says so explicitly: it is
the only copy of those rows. Tables are matched exactly: a table's batches live under its own
prefix, and only batch-id folders below it count (``orders`` never matches ``orders_old``).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass
from typing import Literal

from sync_platform.configuration.project import TableSpec
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.connections.staging.store import StagingStore
from sync_platform.engine.manifest import MANIFEST_NAME
from sync_platform.engine.stage import list_batches, unmanifested_batches
from sync_platform.engine.sync import table_prefix
from sync_platform.warehouse import dialect_for

BatchState = Literal["loaded", "pending", "unmanifested"]
LEFTOVER_MIN_AGE = dt.timedelta(hours=1)  # a stager still running has no manifest yet either


@dataclass(frozen=True)
class StagedBatch:
    batch_id: str
    prefix: str
    state: BatchState
    created_at: dt.datetime
    files: int
    bytes: int
    rows: int | None


def inventory(registry: ConnectionRegistry, spec: TableSpec) -> list[StagedBatch]:
    """Every batch of the table in staging, with its state from the warehouse ledger, oldest first."""
    store = registry.staging(spec.staging)
    prefix = table_prefix(spec)
    manifests = list_batches(store, prefix)
    loaded = _loaded_batch_ids(registry, spec) if manifests else set()
    batches = [
        StagedBatch(
            m.batch_id,
            m.prefix,
            "loaded" if m.batch_id in loaded else "pending",
            m.created_at,
            len(m.files),
            m.bytes,
            m.rows,
        )
        for m in manifests
    ]
    for leftover in unmanifested_batches(store, prefix):
        batches.append(
            StagedBatch(
                leftover.prefix.rsplit("/", 1)[-1],
                leftover.prefix,
                "unmanifested",
                leftover.last_modified,
                len(leftover.keys),
                leftover.bytes,
                None,
            )
        )
    return sorted(batches, key=lambda b: b.created_at)


def _loaded_batch_ids(registry: ConnectionRegistry, spec: TableSpec) -> set[str]:
    warehouse = registry.warehouse(spec.target)
    dialect = dialect_for(warehouse.dialect)
    query = dialect.loaded_batches_query(spec.target_schema, spec.identity)
    exists = dialect.table_exists_query(dialect.ledger_table(spec.target_schema))
    with warehouse.connect() as conn, conn.cursor() as cursor:
        cursor.execute(exists.sql, exists.params)
        if cursor.fetchone() is None:
            return set()
        cursor.execute(query.sql, query.params)
        return {row[0] for row in cursor.fetchall()}


def select_for_deletion(
    batches: list[StagedBatch],
    *,
    older_than: dt.timedelta,
    now: dt.datetime | None = None,
    pattern: str | None = None,
    force: bool = False,
) -> list[StagedBatch]:
    """The batches a clean may delete (pure: decides, deletes nothing)."""
    now = now or dt.datetime.now(dt.UTC)
    chosen = []
    for batch in batches:
        if pattern and not fnmatch.fnmatch(batch.batch_id, pattern):
            continue
        age = now - batch.created_at
        if batch.state == "unmanifested":
            if age >= max(older_than, LEFTOVER_MIN_AGE) or (force and age >= LEFTOVER_MIN_AGE):
                chosen.append(batch)
        elif age >= older_than and (batch.state == "loaded" or force):
            chosen.append(batch)
    return chosen


def delete_batches(store: StagingStore, batches: list[StagedBatch]) -> int:
    """Remove the batches' objects, manifest first (an interrupted delete leaves only a leftover)."""
    removed = 0
    for batch in batches:
        manifest = f"{batch.prefix}/{MANIFEST_NAME}"
        keys = [o.key for o in store.list(batch.prefix + "/")]
        if manifest in keys:
            store.delete([manifest])
            removed += 1
        rest = [k for k in keys if k != manifest]
        if rest:
            store.delete(rest)
            removed += len(rest)
    return removed
