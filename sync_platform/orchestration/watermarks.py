"""Watermarks in the Dagster instance: the one module that reads and writes them.

- The **extract watermark** (where the next read from MySQL starts) is the ``watermark`` metadata
  entry of the latest materialization of the staging asset ``staging/<pipeline>/<schema>/<table>_staged``.
- The **load watermark** (the end of the last batch loaded) is the ``watermark`` entry of the latest
  materialization of the warehouse asset ``warehouse/<target>/<schema>/<table>``.
- A **manual set or reset** is a runless ``AssetObservation`` on the staging asset carrying
  ``watermark`` and ``manual: true``; it wins over materializations older than it. Its ``manual_at``
  tells the engine to ignore batches staged before it.
- With nothing in the instance (new instance, wiped asset) the watermark is recovered from the
  warehouse (:mod:`sync_platform.engine.recovery`) and the run's metadata says so.

The CLI uses the same functions (``read_extract_watermark``, ``record_manual_watermark``, …), so the
UI, schedules and CLI always see the same positions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

import dagster as dg

from sync_platform.configuration.project import TableSpec
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.initial_load import InitialLoadPlan
from sync_platform.engine.reconcile.counts import SharedMember
from sync_platform.engine.recovery import ledger_watermark, recover_watermark
from sync_platform.engine.result import ExtractResult, LoadResult
from sync_platform.engine.shape import TableShape
from sync_platform.engine.watermark import Watermark
from sync_platform.orchestration.keys import staging_key, warehouse_key

# --------------------------------------------------------------------------- metadata keys

WATERMARK = "watermark"  # JSON, Watermark.to_dict(): the position after this run (the value the next run reads)
WATERMARK_TEXT = "watermark_text"  # the same, readable
WATERMARK_BEFORE = "watermark_before"  # JSON: where this run started
WATERMARK_ORIGIN = "watermark_origin"  # where the starting watermark came from (see Origin below)
MANUAL = "manual"  # True on a manual set / reset observation
NOTE = "note"
ROWS = "rows"
FILES = "files"
BYTES = "bytes"
BATCHES = "batches"
SKIPPED_BATCHES = "skipped_batches"
DURATION = "duration_seconds"
NULL_CURSOR_ROWS = "null_cursor_rows"
NULL_CURSOR_POLICY = "null_cursor_policy"
NULL_CURSOR_LOADED = "null_cursor_rows_loaded"
NULL_CURSOR_SECONDS = "null_cursor_seconds"
WARNINGS = "warnings"
ZERO_DATES = "zero_dates"  # JSON {column: values turned NULL}
ZERO_DATE_COUNT = "zero_date_count"
TRUNCATED_VALUES = "truncated_values"
SCHEMA_CHANGES = "schema_changes"
STRATEGY = "strategy"
CEILING = "ceiling"
CEILING_HELD_BY = "ceiling_held_by"  # JSON: the open source transactions that held the ceiling back, oldest first
CAPPED = "capped"
TARGET_TABLE = "target_table"  # staging records: the warehouse table (connection.schema.table) the watermark served
WRITE_MODE = "write_mode"
TARGET_ROWS = "dagster/row_count"
TARGET_ROWS_ESTIMATE = "target_rows_estimate"  # a large PostgreSQL target: the catalog's estimate, not a count
COLUMN_SCHEMA = "dagster/column_schema"


class Origin:
    """Values of ``watermark_origin``."""

    MATERIALIZATION = "materialization"  # the latest materialization of the asset
    MANUAL = "manual"  # a manual set / reset (runless observation)
    LEDGER = "recovered from warehouse ledger"
    TARGET = "recovered from warehouse MAX(cursor)"
    NONE = "none"  # nothing recorded anywhere: start from the beginning


@dataclass(frozen=True)
class WatermarkRecord:
    """A watermark and where it was read from."""

    watermark: Watermark
    origin: str
    detail: str = ""
    run_id: str | None = None
    storage_id: int | None = None
    timestamp: float | None = None  # seconds since the epoch, when the event was recorded
    target: str | None = None  # the warehouse table the run that recorded it loaded (staging records)

    @property
    def recorded_at(self) -> dt.datetime | None:
        return dt.datetime.fromtimestamp(self.timestamp, dt.UTC) if self.timestamp is not None else None

    def describe(self) -> str:
        where = f"{self.origin}: {self.detail}" if self.detail else self.origin
        return f"{self.watermark.describe()} ({where})"


# --------------------------------------------------------------------------- reading


def _record(entry: Any, origin: str) -> WatermarkRecord | None:
    """The watermark of an event-log record, or None when the event carries none."""
    if entry is None:
        return None
    event = entry.event_log_entry
    data = event.asset_materialization or event.asset_observation
    metadata = data.metadata if data is not None else {}
    value = metadata.get(WATERMARK)
    if value is None:
        return None
    note = metadata.get(NOTE)
    target = metadata.get(TARGET_TABLE)
    return WatermarkRecord(
        watermark=Watermark.from_dict(value.value),
        origin=origin,
        detail=str(note.value) if note is not None else "",
        run_id=event.run_id or None,
        storage_id=entry.storage_id,
        timestamp=event.timestamp,
        target=str(target.value) if target is not None else None,
    )


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey, *, with_manual: bool) -> WatermarkRecord | None:
    records = instance.get_asset_records([key])
    if not records:
        return None
    entry = records[0].asset_entry
    found = _record(entry.last_materialization_record, Origin.MATERIALIZATION)
    if with_manual:  # asset entries do not always carry the last observation: ask for it
        observations = instance.fetch_observations(key, limit=1).records
        manual = _record(observations[0], Origin.MANUAL) if observations else None
        if manual is not None and (found is None or (manual.storage_id or 0) > (found.storage_id or 0)):
            found = manual
    return found


def read_extract_watermark(instance: dg.DagsterInstance, spec: TableSpec) -> WatermarkRecord | None:
    """Where the next extract starts, from the instance: the newer of the last staging materialization
    and the last manual set. None when the instance has no record (see :func:`resolve_extract_watermark`)."""
    return _latest(instance, staging_key(spec), with_manual=True)


def read_manual_floor(instance: dg.DagsterInstance, spec: TableSpec) -> Watermark | None:
    """The position of the last manual ``watermark set``, or None (never set, or reset to the start).

    Rows at or below it were skipped on purpose, so the row-count check counts only the rows above it.
    """
    observations = instance.fetch_observations(staging_key(spec), limit=1).records
    if not observations:
        return None
    observation = observations[0].event_log_entry.asset_observation
    metadata = observation.metadata if observation is not None else {}
    if MANUAL not in metadata or WATERMARK not in metadata:
        return None
    floor = Watermark.from_dict(metadata[WATERMARK].value)
    return floor if floor.position else None


def loaded_elsewhere(record: WatermarkRecord | None, spec: TableSpec) -> bool:
    """The extract watermark was earned by runs into another warehouse table (``target_name`` or
    ``target_schema`` changed since): this table has not received the rows before it."""
    return (
        record is not None
        and record.origin == Origin.MATERIALIZATION
        and record.target is not None
        and record.target != spec.target_label
        and not record.watermark.is_empty
    )


def read_load_watermark(instance: dg.DagsterInstance, spec: TableSpec) -> WatermarkRecord | None:
    """The end of the last batch loaded into the warehouse, from the instance (None when never recorded)."""
    return _latest(instance, warehouse_key(spec), with_manual=False)


def resolve_extract_watermark(
    instance: dg.DagsterInstance, registry: ConnectionRegistry, spec: TableSpec
) -> WatermarkRecord:
    """The instance's extract watermark, or, when it has none, the one the warehouse implies (network I/O)."""
    stored = read_extract_watermark(instance, spec)
    if stored is not None:
        return stored
    recovered = recover_watermark(registry, spec)
    origin = {"ledger": Origin.LEDGER, "target": Origin.TARGET}.get(recovered.origin, Origin.NONE)
    return WatermarkRecord(recovered.watermark, origin, recovered.detail)


def resolve_load_watermark(
    instance: dg.DagsterInstance, registry: ConnectionRegistry, spec: TableSpec
) -> WatermarkRecord:
    """The load ledger's watermark (network I/O), else the instance's, else none.

    The ledger row commits in the same transaction as the batch's rows, so it is right even when a run
    died after its commit and before Dagster recorded the materialization; the instance can lag it.
    """
    from_ledger = ledger_watermark(registry, spec)
    if from_ledger is not None:
        return WatermarkRecord(from_ledger, Origin.LEDGER, f"{spec.target_schema}._sync_load_ledger")
    stored = read_load_watermark(instance, spec)
    if stored is not None:
        return stored
    return WatermarkRecord(Watermark(), Origin.NONE, "nothing loaded yet")


# --------------------------------------------------------------------------- manual set / reset


def record_manual_watermark(
    instance: dg.DagsterInstance,
    spec: TableSpec,
    watermark: Watermark,
    *,
    note: str | None = None,
    now: dt.datetime | None = None,
) -> Watermark:
    """Set a table's extract watermark by hand; the next run starts there.

    Recorded as a runless observation of the staging asset. ``manual_at`` is stamped (now, UTC) so the
    engine stops resuming from batches staged before this moment. Returns the watermark as stored.
    """
    stamped = Watermark(dict(watermark.position), manual_at=now or dt.datetime.now(dt.UTC), note=note)
    metadata: dict[str, Any] = {
        WATERMARK: dg.MetadataValue.json(stamped.to_dict()),
        WATERMARK_TEXT: stamped.describe(),
        MANUAL: True,
    }
    if note:
        metadata[NOTE] = note
    instance.report_runless_asset_event(
        dg.AssetObservation(asset_key=staging_key(spec), metadata=metadata, description="watermark set by hand")
    )
    return stamped


def reset_watermark(instance: dg.DagsterInstance, spec: TableSpec, *, note: str | None = "reset") -> Watermark:
    """Start the table over: the next run reads from the beginning (loads merge, so nothing duplicates)."""
    return record_manual_watermark(instance, spec, Watermark(), note=note)


def next_extract_watermark(result: ExtractResult, start: Watermark) -> Watermark:
    """The watermark to store after an extract: the engine's, keeping the manual-set moment it started from.

    ``manual_at`` must survive later runs: batches staged before a manual set stay ignored for good.
    """
    position = result.watermark
    manual_at = position.manual_at or start.manual_at
    return replace(position, manual_at=manual_at, note=None)


# --------------------------------------------------------------------------- metadata of a run


def _json_safe(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value if value is None or isinstance(value, int | float | str | bool) else str(value)


def staging_metadata(result: ExtractResult, start: WatermarkRecord, stored: Watermark, target: str) -> dict[str, Any]:
    """Metadata of a staging materialization: the extract watermark, what the run read, and the warehouse
    table (``target``) it was read for."""
    return {
        TARGET_TABLE: target,
        WATERMARK: dg.MetadataValue.json(stored.to_dict()),
        WATERMARK_TEXT: stored.describe(),
        WATERMARK_BEFORE: dg.MetadataValue.json(result.watermark_before.to_dict()),
        WATERMARK_ORIGIN: start.origin + (f" ({start.detail})" if start.detail else ""),
        STRATEGY: result.strategy + (f" (detected: {result.detected})" if result.detected else ""),
        ROWS: result.rows,
        FILES: result.files,
        BYTES: result.bytes,
        BATCHES: dg.MetadataValue.json(list(result.batches)),
        DURATION: round(result.seconds, 3),
        NULL_CURSOR_ROWS: result.null_cursor_rows,
        NULL_CURSOR_POLICY: result.null_cursor_policy,
        NULL_CURSOR_LOADED: result.null_cursor_loaded,
        NULL_CURSOR_SECONDS: round(result.null_cursor_seconds, 3),
        WARNINGS: dg.MetadataValue.json(list(result.warnings)),
        ZERO_DATE_COUNT: result.zero_date_count,
        ZERO_DATES: dg.MetadataValue.json(dict(result.zero_dates)),
        TRUNCATED_VALUES: dg.MetadataValue.json(dict(result.truncated_values)),
        CEILING: str(_json_safe(result.ceiling)),
        CEILING_HELD_BY: dg.MetadataValue.json(list(result.ceiling_held_by)),
        CAPPED: result.capped,
    }


def warehouse_metadata(result: LoadResult, stored: Watermark, origin: str) -> dict[str, Any]:
    """Metadata of a warehouse materialization: the load watermark and what the run loaded."""
    metadata: dict[str, Any] = {
        WATERMARK: dg.MetadataValue.json(stored.to_dict()),
        WATERMARK_TEXT: stored.describe(),
        WATERMARK_ORIGIN: origin,
        ROWS: result.rows,
        BATCHES: dg.MetadataValue.json(list(result.batches)),
        SKIPPED_BATCHES: len(result.skipped_batches),
        SCHEMA_CHANGES: dg.MetadataValue.json(list(result.schema_changes)),
        WRITE_MODE: result.write_mode,
        DURATION: round(result.seconds, 3),
    }
    if result.target_rows is not None:
        metadata[TARGET_ROWS] = result.target_rows
    if result.target_rows_estimate is not None:
        metadata[TARGET_ROWS_ESTIMATE] = result.target_rows_estimate
    return metadata


def initial_load_metadata(plan: InitialLoadPlan, rows: int, extracted: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(staging, warehouse) materialization metadata of a finished initial load in key ranges.

    Both carry the plan's final watermark, ``(ceiling, last key)``: the next incremental run reads
    only rows past the ceiling. ``rows``: rows the ranges hold; ``extracted``: read by this run.
    """
    note = f"initial load {plan.plan_id} in {len(plan.ranges)} key ranges"
    common: dict[str, Any] = {
        WATERMARK: dg.MetadataValue.json(plan.final.to_dict()),
        WATERMARK_TEXT: plan.final.describe(),
        NOTE: note,
        BATCHES: dg.MetadataValue.json([]),
    }
    staging = {**common, ROWS: extracted, STRATEGY: note, CEILING: str(_json_safe(plan.ceiling)), CAPPED: False}
    warehouse = {**common, ROWS: rows, WATERMARK_ORIGIN: note}
    return staging, warehouse


# --------------------------------------------------------------------------- what the instance knows


_IN_PROGRESS = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
_RUNS_SCANNED = 500  # runs in progress at once; dagster.yaml allows a handful
_HISTORY_PAGE = 1000


def run_extracting(instance: dg.DagsterInstance, spec: TableSpec) -> dg.DagsterRun | None:
    """A run in progress that extracts the table: it stores its own watermark when it ends, replacing
    one set by hand meanwhile."""
    from sync_platform.orchestration.automation import TABLES_JOB

    key = staging_key(spec)
    for record in instance.get_run_records(dg.RunsFilter(statuses=_IN_PROGRESS), limit=_RUNS_SCANNED):
        run = record.dagster_run
        selection = run.asset_selection
        if (key in selection) if selection is not None else run.job_name == TABLES_JOB:
            return run
    return None


def materialized_rows(instance: dg.DagsterInstance, key: dg.AssetKey) -> tuple[int, int]:
    """(rows summed over every recorded materialization of ``key``, number of materializations)."""
    rows = runs = 0
    cursor: str | None = None
    while True:
        page = instance.fetch_materializations(key, limit=_HISTORY_PAGE, cursor=cursor, ascending=True)
        for record in page.records:
            materialization = record.event_log_entry.asset_materialization
            value = materialization.metadata.get(ROWS) if materialization else None
            if value is not None and isinstance(value.value, int):
                rows += value.value
                runs += 1
        if not page.has_more:
            return rows, runs
        cursor = page.cursor


def shared_members(
    instance: dg.DagsterInstance,
    registry: ConnectionRegistry,
    spec: TableSpec,
    shape: TableShape,
    load_watermark: Watermark,
    others: list[tuple[TableSpec, TableShape]],
) -> list[SharedMember]:
    """Every source table loading ``spec``'s warehouse table, each with how far it has loaded (``spec`` first)."""
    members = [SharedMember(spec, shape, load_watermark, read_manual_floor(instance, spec))]
    for other, other_shape in others:
        record = resolve_load_watermark(instance, registry, other)
        if record.origin != Origin.NONE:  # a source never loaded has no rows in the target
            members.append(SharedMember(other, other_shape, record.watermark, read_manual_floor(instance, other)))
    return members
