"""Reconcile in Dagster: the ``source_equals_target`` check on each warehouse table, a job and a schedule per pipeline.

The check runs :func:`sync_platform.engine.reconcile.reconcile_table` (repairing as the table's
``repair`` / ``deletes`` settings say, or the pipeline's ``reconcile.repair``) and passes when the
target equals the source afterwards. Its metadata carries the counts a user looks for: missing,
extra, changed, ranges scanned, rows transferred, seconds. It runs in the pipeline's
``<pipeline>_reconcile`` job (scheduled by ``pipeline.reconcile.schedule``) or alone from the UI —
never inside a sync, whose cost it would multiply.

The same job runs each table's full-table row-count and key checks (``row_count_matches_source_full``,
``primary_key_unique_full``): the sync op's own checks count only the rows each run loaded.
"""

from collections.abc import Iterator, Sequence

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string

from sync_platform.configuration.errors import ConfigError, ConfigProblem
from sync_platform.configuration.project import Pipeline, Project
from sync_platform.engine.reconcile import ReconcileOptions, ReconcileResult, reconcile_table
from sync_platform.engine.shape import read_table_shape
from sync_platform.orchestration import checks, watermarks
from sync_platform.orchestration.checks import FULL_ROW_COUNT_CHECK, FULL_UNIQUE_KEY_CHECK
from sync_platform.orchestration.keys import TableKeys, identifier
from sync_platform.orchestration.resources import build_registry

SOURCE_EQUALS_TARGET = "source_equals_target"
PIPELINE_TAG = "sync_platform/pipeline"


def reconcile_job_name(pipeline: str) -> str:
    return f"{identifier(pipeline)}_reconcile"


def reconcile_options(pipeline: Pipeline) -> ReconcileOptions:
    """The pipeline's ``reconcile:`` settings as engine options (each table's own settings apply otherwise)."""
    settings = pipeline.settings.reconcile
    if settings is None:
        return ReconcileOptions()
    return ReconcileOptions(
        repair=settings.repair,
        range_rows=settings.range_rows,
        rows_per_second=settings.rows_per_second,
        sleep_seconds=settings.sleep_seconds,
    )


def source_equals_target_check(project: Project, keys: TableKeys) -> dg.AssetChecksDefinition:
    """The check of one warehouse table (its own op: a pipeline's job runs its tables one after another)."""
    pipeline = project.pipelines[keys.spec.pipeline]
    options = reconcile_options(pipeline)
    spec = keys.spec

    @dg.asset_check(
        asset=keys.warehouse,
        name=SOURCE_EQUALS_TARGET,
        additional_deps=[keys.source],
        required_resource_keys=set(keys.resource_keys.values()),
        pool=keys.pool,
        op_tags={PIPELINE_TAG: keys.group},
        description=(
            "The target equals the source: row counts and row hashes compared per checksummed key range, "
            "bisected to the rows that differ (missing, extra, changed). Repairs as the table's `repair` and "
            "`deletes` settings say; fails while differences remain."
        ),
    )
    def source_equals_target(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        resources = {key: getattr(context.resources, key) for key in keys.resource_keys.values()}
        registry = build_registry(project, resources)
        try:
            result = reconcile_table(registry, spec, options, progress=context.log.info)
        except Exception as exc:
            message = registry.mask(str(exc)) or type(exc).__name__
            raise dg.Failure(description=f"{spec.identity}: {message}", allow_retries=False) from exc
        finally:
            registry.close()
        return check_result(keys, result)

    return source_equals_target


def full_table_checks(project: Project, keys: TableKeys) -> dg.AssetChecksDefinition:
    """The full-table row-count and key checks of one table (O(table): they read the whole table on both
    sides), run in the reconcile job; the sync op's own checks cover only the rows each run loaded."""
    spec = keys.spec

    @dg.multi_asset_check(
        specs=checks.full_check_specs(keys),
        name=f"{keys.op}_full_checks",
        required_resource_keys=set(keys.resource_keys.values()),
        pool=keys.pool,
        op_tags={PIPELINE_TAG: keys.group},
        can_subset=True,
    )
    def full_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        resources = {key: getattr(context.resources, key) for key in keys.resource_keys.values()}
        registry = build_registry(project, resources)
        wanted = {key.name for key in context.selected_asset_check_keys}
        try:
            shape = read_table_shape(registry, spec)
            load = watermarks.resolve_load_watermark(context.instance, registry, spec).watermark
            floor = watermarks.read_manual_floor(context.instance, spec)
            others = [(other, read_table_shape(registry, other)) for other in project.sharing(spec)]
            shared = (
                watermarks.shared_members(context.instance, registry, spec, shape, load, others) if others else None
            )
            yield from checks.full_checks(registry, keys, wanted, shape, load, floor, shared)
        except Exception as exc:
            message = registry.mask(str(exc)) or type(exc).__name__
            raise dg.Failure(description=f"{spec.identity}: {message}", allow_retries=False) from exc
        finally:
            registry.close()

    return full_checks


def check_result(keys: TableKeys, result: ReconcileResult) -> dg.AssetCheckResult:
    """The check's verdict and metadata from a reconcile result."""
    metadata: dict[str, object] = {
        "missing": result.missing,
        "extra": result.extra,
        "changed": result.changed,
        "ranges_scanned": result.ranges_scanned,
        "rows_transferred": result.rows_transferred,
        "seconds": round(result.seconds, 3),
        "source_seconds": round(result.source_seconds, 3),
        "target_seconds": round(result.target_seconds, 3),
        "source_rows": result.source_rows,
        "target_rows": result.target_rows,
        "rows_repaired": result.rows_merged,
        "rows_deleted": result.rows_deleted + result.rows_soft_deleted,
        "remaining": result.remaining,
        "mode": result.mode,
        "deletes": result.deletes,
        "repair": result.repair,
    }
    if result.mode == "cursor ranges":
        metadata["differing_ranges"] = result.differing_ranges
    for kind, sample in result.samples.items():
        metadata[f"sample_{kind}"] = ", ".join(sample)
    return dg.AssetCheckResult(
        asset_key=keys.warehouse,
        check_name=SOURCE_EQUALS_TARGET,
        passed=result.exact,
        severity=dg.AssetCheckSeverity.ERROR,
        description=result.summary() + ("" if result.exact else f"; {result.remaining:,} differences remain"),
        metadata=metadata,
    )


def reconcile_job(
    pipeline: Pipeline, tables: Sequence[TableKeys], counted: Sequence[TableKeys] = ()
) -> "dg.UnresolvedAssetJobDefinition":
    """Reconciles (and repairs, as configured) every table of the pipeline (``tables``), and runs the
    full-table count and key checks of ``counted``."""
    full = [
        dg.AssetCheckKey(t.warehouse, name) for t in counted for name in (FULL_ROW_COUNT_CHECK, FULL_UNIQUE_KEY_CHECK)
    ]
    return dg.define_asset_job(
        reconcile_job_name(pipeline.name),
        selection=dg.AssetSelection.checks(
            *[dg.AssetCheckKey(t.warehouse, SOURCE_EQUALS_TARGET) for t in tables], *full
        ),
        description=f"Prove every table of pipeline {pipeline.name} equals its source; repair as configured.",
        tags={PIPELINE_TAG: identifier(pipeline.name)},
    )


def reconcile_schedule(pipeline: Pipeline, job: "dg.UnresolvedAssetJobDefinition") -> dg.ScheduleDefinition | None:
    """``pipeline.reconcile.schedule`` (None when the pipeline sets none)."""
    settings = pipeline.settings.reconcile
    if settings is None or not settings.schedule:
        return None
    if not is_valid_cron_string(settings.schedule):
        raise ConfigError(
            [
                ConfigProblem(
                    pipeline.file,
                    "pipeline.reconcile.schedule",
                    f"{settings.schedule!r} is not a cron expression",
                    'write five fields, e.g. "0 3 * * *" (every day at 03:00)',
                )
            ]
        )
    return dg.ScheduleDefinition(
        name=f"{job.name}_schedule",
        cron_schedule=settings.schedule,
        job=job,
        execution_timezone=settings.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING if settings.enabled else dg.DefaultScheduleStatus.STOPPED,
        description=f"Reconcile every table of pipeline {pipeline.name}: {settings.schedule} ({settings.timezone}).",
    )
