"""One Dagster op per table: it materializes the staged batches and the warehouse table, and runs the checks.

The op adapts the engine and holds no sync logic: it reads the watermark from the instance, calls
``sync_table`` (extract and load overlapped) when both assets are selected, ``extract_table`` or
``load_table`` when only one is, and reports what the engine returned as materialization metadata.
Before reading anything the op checks that every endpoint the table needs answers (a down endpoint
fails the step at once, without retries). Transient failures in the middle of the run (a lost
connection, another run of the same table holding its lock) are retried on a fixed back-off; a retry
resumes after the batches already staged. Anything else fails the step with the engine's message.
"""

# No `from __future__ import annotations` here: Dagster reads the op's config annotation at runtime.
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
from pydantic import Field

from sync_platform.configuration.project import Project, TableSpec
from sync_platform.connections.preflight import preflight
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.faults import checkpoint
from sync_platform.engine.reconcile.counts import Window, target_columns
from sync_platform.engine.result import ExtractResult, LoadResult
from sync_platform.engine.shape import TableShape, read_table_shape
from sync_platform.engine.sync import RunOptions, extract_table, load_table, sync_table
from sync_platform.engine.watermark import Watermark
from sync_platform.errors import classify
from sync_platform.orchestration import checks, watermarks
from sync_platform.orchestration.keys import TableKeys
from sync_platform.orchestration.resources import build_registry
from sync_platform.orchestration.translator import staging_spec, warehouse_spec


@dataclass(frozen=True)
class RetrySchedule:
    """How a table's step retries a transient error: ``retries`` more attempts, waiting
    ``first_delay`` seconds, then twice as long before each next one (30 s, 60 s, 120 s by default).

    The op requests each retry itself (``dg.RetryRequested``) so the waits are exactly these; Dagster's
    exponential ``RetryPolicy`` would wait (2^n - 1) x delay +- delay, about 60/90/210 s.
    """

    retries: int = 3
    first_delay: float = 30.0

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number + 1`` (``context.retry_number`` counts from 0)."""
        return self.first_delay * 2**retry_number

    def describe(self) -> str:
        return "/".join(f"{self.delay(n):g}" for n in range(self.retries)) + " s" if self.retries else "no retries"


# A second run of a table therefore waits for the first instead of interleaving with it.
DEFAULT_RETRY_SCHEDULE = RetrySchedule()


class TableRunConfig(dg.Config):
    """Run options of a table sync (the older tool's ``--limit`` and ``--max-chunks``)."""

    limit: int | None = Field(None, description="rows per page and rows per run at most (the old --limit)")
    max_chunks: int | None = Field(None, description="pages per run at most (the old --max-chunks)")
    lock_wait_seconds: float = Field(
        0.0, description="how long to wait for another run of the same table before failing (then retried)"
    )


def table_assets(
    project: Project, keys: TableKeys, *, retry_schedule: RetrySchedule = DEFAULT_RETRY_SCHEDULE
) -> dg.AssetsDefinition:
    """The multi-asset of one table: staged batches → warehouse table, with its reconciliation checks."""
    pipeline = project.pipelines[keys.spec.pipeline]

    @dg.multi_asset(
        name=keys.op,
        specs=[staging_spec(project, pipeline, keys), warehouse_spec(project, pipeline, keys)],
        check_specs=checks.check_specs(keys),
        can_subset=True,
        pool=keys.pool,
        required_resource_keys=set(keys.resource_keys.values()),
        op_tags={"sync_platform/table": keys.spec.identity.replace(":", "."), "sync_platform/pipeline": keys.group},
        description=f"Sync {keys.spec.identity} → {keys.warehouse.to_user_string()}",
    )
    def sync_one_table(context: dg.AssetExecutionContext, config: TableRunConfig) -> Iterator[Any]:
        yield from run_table(context, project, keys, config, retry_schedule)

    return sync_one_table


def run_table(
    context: dg.AssetExecutionContext,
    project: Project,
    keys: TableKeys,
    config: TableRunConfig,
    retry_schedule: RetrySchedule = DEFAULT_RETRY_SCHEDULE,
) -> Iterator[Any]:
    """Execute whatever of the table's assets and checks the run selected.

    Every failure leaves the step as a ``dg.Failure`` whose metadata is the error's classification
    (:mod:`sync_platform.errors`), which the CLI reads for its exit code; transient ones are retried
    on ``retry_schedule`` first.
    """
    resources = {key: getattr(context.resources, key) for key in keys.resource_keys.values()}
    registry = build_registry(project, resources)
    try:
        if context.retry_number == 0:  # a retry resumes a run that already reached every endpoint
            selected, checking = context.selected_asset_keys, bool(context.selected_asset_check_keys)
            # The checks compare the source with the target, so they need both.
            preflight(
                registry,
                [keys.spec],
                stage=keys.staging in selected or checking,
                load=keys.warehouse in selected or checking,
            )
        yield from _run(context, project, registry, keys, config)
    except dg.Failure:
        raise
    except Exception as exc:
        error = classify(exc)
        message = registry.mask(str(exc)) or type(exc).__name__
        failure = dg.Failure(description=message, metadata=error.as_metadata(), allow_retries=False)
        failure.__cause__ = exc
        if error.transient and context.retry_number < retry_schedule.retries:
            wait = retry_schedule.delay(context.retry_number)
            context.log.warning(
                f"{message} (transient: retry {context.retry_number + 1} of {retry_schedule.retries} "
                f"in {wait:g} s; it resumes after the batches already staged)"
            )
            raise dg.RetryRequested(max_retries=retry_schedule.retries, seconds_to_wait=wait) from failure
        raise failure from exc
    finally:
        registry.close()  # closes any SSH tunnel the engine opened


def _run(
    context: dg.AssetExecutionContext,
    project: Project,
    registry: ConnectionRegistry,
    keys: TableKeys,
    config: TableRunConfig,
) -> Iterator[Any]:
    spec, instance = keys.spec, context.instance
    selected = context.selected_asset_keys
    stage, load = keys.staging in selected, keys.warehouse in selected
    loaded_before = watermarks.read_load_watermark(instance, spec) if stage else None
    # A watermark earned by loads into another table (its target renamed) counts as loaded: the new, empty
    # table is then read from the beginning instead of receiving only the rows after it.
    moved = stage and watermarks.loaded_elsewhere(watermarks.read_extract_watermark(instance, spec), spec)
    options = RunOptions(
        limit=config.limit,
        max_chunks=config.max_chunks,
        lock_wait_seconds=config.lock_wait_seconds,
        target_loaded=(loaded_before is not None and not loaded_before.watermark.is_empty) or moved,
    )

    def progress(message: str) -> None:
        context.log.info(message)

    extracted: ExtractResult | None = None
    loaded: LoadResult | None = None
    wanted = {check.name for check in context.selected_asset_check_keys}
    # The table is resolved once per run: the extract and the checks use the same columns, keys and strategy.
    shape = read_table_shape(registry, spec) if stage or wanted else None
    if stage:
        start = watermarks.resolve_extract_watermark(instance, registry, spec)
        context.log.info(f"{spec.identity}: extract starts from {start.describe()}")
        if load:
            run = sync_table(registry, spec, start.watermark, options, progress, shape)
            extracted, loaded = run.extract, run.load
        else:
            extracted = extract_table(registry, spec, start.watermark, options, progress, shape=shape)
        assert extracted is not None
        stored = watermarks.next_extract_watermark(extracted, start.watermark)
        yield dg.MaterializeResult(
            asset_key=keys.staging, metadata=watermarks.staging_metadata(extracted, start, stored, spec.target_label)
        )
    if load:
        if loaded is None:
            loaded = load_table(registry, spec, progress)
        yield dg.MaterializeResult(
            asset_key=keys.warehouse, metadata=_warehouse_metadata(context, registry, keys, loaded)
        )
    if wanted:
        assert shape is not None
        yield from _checks(context, registry, keys, wanted, loaded, shape, project.sharing(keys.spec))


def _warehouse_metadata(
    context: dg.AssetExecutionContext, registry: ConnectionRegistry, keys: TableKeys, loaded: LoadResult
) -> dict[str, Any]:
    if loaded.batches:
        stored, origin = loaded.watermark, "this run's last batch"
    else:  # nothing new: the table is as the previous load left it
        previous = watermarks.resolve_load_watermark(context.instance, registry, keys.spec)
        stored, origin = previous.watermark, f"unchanged ({previous.origin})"
    metadata = watermarks.warehouse_metadata(loaded, stored, origin)
    columns = target_columns(registry, keys.spec)
    if columns:
        metadata[watermarks.COLUMN_SCHEMA] = dg.TableSchema(
            columns=[
                dg.TableColumn(
                    c.name,
                    type=c.data_type + (f"({c.char_max_length})" if c.char_max_length else ""),
                    constraints=dg.TableColumnConstraints(nullable=c.nullable),
                )
                for c in columns
            ]
        )
    return metadata


def _checks(
    context: dg.AssetExecutionContext,
    registry: ConnectionRegistry,
    keys: TableKeys,
    wanted: set[str],
    loaded: LoadResult | None,
    shape: TableShape,
    others: list[TableSpec],
) -> Iterator[dg.AssetCheckResult]:
    checkpoint("checks.start")
    other_shapes = [(spec, read_table_shape(registry, spec)) for spec in others]
    window: Window | None = None  # checks run alone: everything synced so far
    if loaded is not None:  # the run loaded: the rows it loaded (an empty window when nothing was new)
        window = Window(loaded.watermark_start, loaded.watermark) if loaded.batches else Window.nothing()

    def load_watermark() -> Watermark:
        if loaded is not None and loaded.batches:
            return loaded.watermark
        return watermarks.resolve_load_watermark(context.instance, registry, keys.spec).watermark

    yield from checks.run_checks(
        registry,
        keys,
        wanted,
        shape,
        window,
        load_watermark=load_watermark,
        floor=lambda: watermarks.read_manual_floor(context.instance, keys.spec),
        shared=(
            (
                lambda: watermarks.shared_members(
                    context.instance, registry, keys.spec, shape, load_watermark(), other_shapes
                )
            )
            if others
            else None
        ),
    )
    if checks.NULL_CURSOR_CHECK in wanted:
        yield checks.null_cursor_result(registry, keys, shape, other_shapes)
