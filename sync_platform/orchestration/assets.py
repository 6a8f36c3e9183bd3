"""One Dagster op per table: it materializes the staged batches and the warehouse table, and runs the checks.

The op adapts the engine and holds no sync logic: it reads the watermark from the instance, calls
``sync_table`` (extract and load overlapped) when both assets are selected, ``extract_table`` or
``load_table`` when only one is, and reports what the engine returned as materialization metadata.
Transient failures (a lost connection, another run of the same table holding its lock) are left to
the op's RetryPolicy; anything else fails the step without retries, with the engine's message.
"""

# No `from __future__ import annotations` here: Dagster reads the op's config annotation at runtime.
from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field

from sync_platform.configuration.project import Project
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.connections.retry import is_transient_db_error
from sync_platform.engine.extract import ExtractError
from sync_platform.engine.recovery import TableShape, read_table_shape
from sync_platform.engine.result import ExtractResult, LoadResult
from sync_platform.engine.sync import ConcurrentRunError, RunOptions, extract_table, load_table, sync_table
from sync_platform.orchestration import checks, watermarks
from sync_platform.orchestration.keys import TableKeys
from sync_platform.orchestration.reconcile import target_columns
from sync_platform.orchestration.resources import build_registry
from sync_platform.orchestration.translator import staging_spec, warehouse_spec

# Transient errors are retried after 30 s, 60 s, 120 s (± jitter); a second run of a table therefore
# waits for the first instead of interleaving with it.
DEFAULT_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


class TableRunConfig(dg.Config):
    """Run options of a table sync (the older tool's ``--limit`` and ``--max-chunks``)."""

    limit: int | None = Field(None, description="rows per page and rows per run at most (the old --limit)")
    max_chunks: int | None = Field(None, description="pages per run at most (the old --max-chunks)")
    lock_wait_seconds: float = Field(
        0.0, description="how long to wait for another run of the same table before failing (then retried)"
    )


def is_transient(exc: BaseException) -> bool:
    """Whether a later attempt of the step may succeed."""
    if isinstance(exc, ConcurrentRunError):
        return True
    if isinstance(exc, ExtractError):
        return exc.retryable
    return is_transient_db_error(exc)


def table_assets(
    project: Project, keys: TableKeys, *, retry_policy: dg.RetryPolicy | None = DEFAULT_RETRY_POLICY
) -> dg.AssetsDefinition:
    """The multi-asset of one table: staged batches → warehouse table, with its reconciliation checks."""
    pipeline = project.pipelines[keys.spec.pipeline]

    @dg.multi_asset(
        name=keys.op,
        specs=[staging_spec(project, pipeline, keys), warehouse_spec(project, pipeline, keys)],
        check_specs=checks.check_specs(keys),
        can_subset=True,
        pool=keys.pool,
        retry_policy=retry_policy,
        required_resource_keys=set(keys.resource_keys.values()),
        op_tags={"sync_platform/table": keys.spec.identity.replace(":", "."), "sync_platform/pipeline": keys.group},
        description=f"Sync {keys.spec.identity} → {keys.warehouse.to_user_string()}",
    )
    def sync_one_table(context: dg.AssetExecutionContext, config: TableRunConfig) -> Iterator[Any]:
        yield from run_table(context, project, keys, config)

    return sync_one_table


def run_table(
    context: dg.AssetExecutionContext, project: Project, keys: TableKeys, config: TableRunConfig
) -> Iterator[Any]:
    """Execute whatever of the table's assets and checks the run selected."""
    resources = {key: getattr(context.resources, key) for key in keys.resource_keys.values()}
    registry = build_registry(project, resources)
    try:
        yield from _run(context, registry, keys, config)
    except dg.Failure:
        raise
    except Exception as exc:
        message = registry.mask(str(exc)) or type(exc).__name__
        if is_transient(exc):
            context.log.warning(f"{keys.spec.identity}: {message} (transient; the step will be retried)")
            raise
        raise dg.Failure(description=f"{keys.spec.identity}: {message}", allow_retries=False) from exc
    finally:
        registry.close()  # closes any SSH tunnel the engine opened


def _run(
    context: dg.AssetExecutionContext, registry: ConnectionRegistry, keys: TableKeys, config: TableRunConfig
) -> Iterator[Any]:
    spec, instance = keys.spec, context.instance
    selected = context.selected_asset_keys
    stage, load = keys.staging in selected, keys.warehouse in selected
    options = RunOptions(limit=config.limit, max_chunks=config.max_chunks, lock_wait_seconds=config.lock_wait_seconds)

    def progress(message: str) -> None:
        context.log.info(message)

    extracted: ExtractResult | None = None
    loaded: LoadResult | None = None
    if stage:
        start = watermarks.resolve_extract_watermark(instance, registry, spec)
        context.log.info(f"{spec.identity}: extract starts from {start.describe()}")
        if load:
            run = sync_table(registry, spec, start.watermark, options, progress)
            extracted, loaded = run.extract, run.load
        else:
            extracted = extract_table(registry, spec, start.watermark, options, progress)
        assert extracted is not None
        stored = watermarks.next_extract_watermark(extracted, start.watermark)
        yield dg.MaterializeResult(
            asset_key=keys.staging, metadata=watermarks.staging_metadata(extracted, start, stored)
        )
    if load:
        if loaded is None:
            loaded = load_table(registry, spec, progress)
        yield dg.MaterializeResult(
            asset_key=keys.warehouse, metadata=_warehouse_metadata(context, registry, keys, loaded)
        )
    wanted = {check.name for check in context.selected_asset_check_keys}
    if wanted:
        yield from _checks(context, registry, keys, wanted, loaded)


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
) -> Iterator[dg.AssetCheckResult]:
    shape: TableShape = read_table_shape(registry, keys.spec)
    if checks.ROW_COUNT_CHECK in wanted:
        if loaded is not None and loaded.batches:
            load_watermark = loaded.watermark
        else:
            load_watermark = watermarks.resolve_load_watermark(context.instance, registry, keys.spec).watermark
        yield checks.row_count_result(registry, keys, shape, load_watermark)
    if checks.UNIQUE_KEY_CHECK in wanted:
        yield checks.unique_key_result(registry, keys, shape)
    if checks.NULL_CURSOR_CHECK in wanted:
        yield checks.null_cursor_result(registry, keys, shape)
