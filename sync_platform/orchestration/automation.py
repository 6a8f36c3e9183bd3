"""Automation from pipeline config: a job and a schedule per pipeline, the staged-batch sensor, pool limits.

- ``sync_tables`` is the job every table sync runs in; a run selects its tables' assets.
- ``<pipeline>_schedule`` ticks on ``pipeline.schedule.cron`` and runs every table of the pipeline,
  ``processing.max_parallel_tables`` at a time (in one process when it is 1); a tick is skipped while
  the previous run of the pipeline is still going, so a slow run never piles up behind itself.
- ``load_staged_batches`` loads batches that were staged by a run that did not also load them (a
  backup-only run, a staging asset materialized alone, a run whose load step failed).
- ``sync_platform_pool_limits`` keeps the instance's pool limits equal to ``max_concurrent_per_source``
  (one pool per MySQL source: at most that many table syncs read one source at once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string

from sync_platform.configuration.errors import ConfigError, ConfigProblem
from sync_platform.configuration.project import Pipeline, Project
from sync_platform.orchestration.checks import sync_check_keys
from sync_platform.orchestration.keys import TableKeys, group_name, schedule_name, source_pool

TABLES_JOB = "sync_tables"
STAGED_BATCHES_SENSOR = "load_staged_batches"
POOL_LIMITS_SENSOR = "sync_platform_pool_limits"
PIPELINE_TAG = "sync_platform/pipeline"
TRIGGER_TAG = "sync_platform/trigger"
_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
_ENDED_BADLY = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def tables_job(tables: Sequence[TableKeys]) -> dg.UnresolvedAssetJobDefinition:
    """The one job every table sync runs in; schedules, the sensor and the CLI pick tables by asset selection.

    A job per pipeline would make Dagster resolve the whole asset graph once per pipeline when the
    code location loads; one job keeps loading a thousand tables fast whatever the number of pipelines.
    """
    # Only the sync op's own checks: the reconcile job's checks (source_equals_target and the full-table
    # count and key checks) read whole tables and would multiply every sync's cost.
    own_checks = [key for t in tables for key in sync_check_keys(t)]
    return dg.define_asset_job(
        TABLES_JOB,
        selection=dg.AssetSelection.assets(*[k for t in tables for k in (t.staging, t.warehouse)]).without_checks()
        | dg.AssetSelection.checks(*own_checks),
        description="Table syncs: MySQL → staged parquet → warehouse. Runs select the tables they sync.",
    )


def executor_config(pipeline: Pipeline) -> dict[str, Any]:
    """Run config for ``processing.max_parallel_tables`` tables at a time (in one process when it is 1)."""
    parallel = pipeline.settings.processing.max_parallel_tables
    if parallel <= 1:
        return {"execution": {"config": {"in_process": {}}}}
    return {"execution": {"config": {"multiprocess": {"max_concurrent": parallel}}}}


def pipeline_run_request(pipeline: Pipeline, tables: Sequence[TableKeys], trigger: str) -> dg.RunRequest:
    """A run of every table of the pipeline, tagged with the pipeline and what triggered it."""
    return dg.RunRequest(
        asset_selection=[k for t in tables for k in (t.staging, t.warehouse)],
        asset_check_keys=[key for t in tables for key in sync_check_keys(t)],
        run_config=executor_config(pipeline),
        tags={PIPELINE_TAG: group_name(pipeline.name), TRIGGER_TAG: trigger},
    )


def pipeline_schedule(
    pipeline: Pipeline, tables: Sequence[TableKeys], job: dg.UnresolvedAssetJobDefinition
) -> dg.ScheduleDefinition | None:
    """The pipeline's cron schedule (None when the pipeline has none)."""
    schedule = pipeline.settings.schedule
    if schedule is None:
        return None
    if not is_valid_cron_string(schedule.cron):
        raise ConfigError(
            [
                ConfigProblem(
                    pipeline.file,
                    "pipeline.schedule.cron",
                    f"{schedule.cron!r} is not a cron expression",
                    'write five fields, e.g. "*/15 * * * *" (every 15 minutes)',
                )
            ]
        )
    group = group_name(pipeline.name)

    @dg.schedule(
        name=schedule_name(pipeline.name),
        cron_schedule=schedule.cron,
        job=job,
        execution_timezone=schedule.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING if schedule.enabled else dg.DefaultScheduleStatus.STOPPED,
        description=f"Every table of pipeline {pipeline.name}: {schedule.cron} ({schedule.timezone}).",
    )
    def tick(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        running = context.instance.get_run_records(dg.RunsFilter(tags={PIPELINE_TAG: group}, statuses=_ACTIVE), limit=1)
        if running:
            return dg.SkipReason(
                f"run {running[0].dagster_run.run_id} of pipeline {pipeline.name} is still in progress"
            )
        return pipeline_run_request(pipeline, tables, "schedule")

    return tick


def staged_batches_sensor(tables: Sequence[TableKeys], job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """Requests a load of every table whose newest staged batch no run has loaded or is loading."""
    by_staging = {t.staging: t for t in tables}

    @dg.sensor(
        name=STAGED_BATCHES_SENSOR,
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Loads newly staged batches into the warehouse when the run that staged them did not.",
    )
    def load_staged_batches(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        requests = pending_loads(context.instance, tables, by_staging, job_name=job.name)
        if not requests:
            return dg.SkipReason("every staged batch is loaded or being loaded")
        return dg.SensorResult(run_requests=requests)

    return load_staged_batches


def pending_loads(
    instance: dg.DagsterInstance,
    tables: Sequence[TableKeys],
    by_staging: Mapping[dg.AssetKey, TableKeys] | None = None,
    *,
    job_name: str | None = None,
) -> list[dg.RunRequest]:
    """One run request per table staged more recently than it was loaded (two event-log queries in all)."""
    by_staging = by_staging or {t.staging: t for t in tables}
    staged = {r.asset_entry.asset_key: r.asset_entry for r in instance.get_asset_records(list(by_staging))}
    loaded = {r.asset_entry.asset_key: r.asset_entry for r in instance.get_asset_records([t.warehouse for t in tables])}
    requests: list[dg.RunRequest] = []
    for key, entry in staged.items():
        latest = entry.last_materialization_record
        table = by_staging.get(key)
        if latest is None or table is None:
            continue
        target = loaded.get(table.warehouse)
        done = target.last_materialization_record if target is not None else None
        if done is not None and done.storage_id > latest.storage_id:
            continue
        staged_by = latest.event_log_entry.run_id
        if target is not None and target.last_planned_materialization_run_id == staged_by:
            run = instance.get_run_by_id(staged_by)
            if run is not None and run.status not in _ENDED_BADLY:
                continue  # the run that staged the batch loads it too
        requests.append(
            dg.RunRequest(
                run_key=f"load:{table.warehouse.to_user_string()}:{latest.storage_id}",
                asset_selection=[table.warehouse],
                asset_check_keys=sync_check_keys(table),
                job_name=job_name,
                tags={PIPELINE_TAG: table.group, TRIGGER_TAG: "staged-batch"},
            )
        )
    return requests


def pool_limits(project: Project) -> dict[str, int]:
    """``{pool: limit}``: one pool per MySQL source, the smallest ``max_concurrent_per_source`` of its pipelines."""
    limits: dict[str, int] = {}
    for pipeline in project.pipelines.values():
        if not pipeline.tables:
            continue
        pool = source_pool(pipeline.settings.source)
        limit = pipeline.settings.max_concurrent_per_source
        limits[pool] = min(limit, limits.get(pool, limit))
    return limits


def apply_pool_limits(instance: dg.DagsterInstance, limits: Mapping[str, int]) -> dict[str, int]:
    """Set each pool's limit in the instance where it differs; returns what was changed."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    current = {pool.name: pool.limit for pool in storage.get_pool_limits()}
    changed = {pool: limit for pool, limit in limits.items() if current.get(pool) != limit}
    for pool, limit in changed.items():
        storage.set_concurrency_slots(pool, limit)
    return changed


def pool_limits_sensor(limits: Mapping[str, int]) -> dg.SensorDefinition:
    """Keeps the instance's pool limits as the configuration says (CLI runs apply them too)."""
    wanted = dict(limits)

    @dg.sensor(
        name=POOL_LIMITS_SENSOR,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Sets the limit of each source's concurrency pool from max_concurrent_per_source.",
    )
    def sync_pool_limits(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        changed = apply_pool_limits(context.instance, wanted)
        if changed:
            return dg.SkipReason("set " + ", ".join(f"{pool}={limit}" for pool, limit in sorted(changed.items())))
        return dg.SkipReason("pool limits already as configured")

    return sync_pool_limits
