"""The factory: the project's YAML (read by the project's own config loader) → Dagster definitions.

Per table: the MySQL table (external asset) → the staged batches → the warehouse table, in one
group per pipeline, with the reconciliation and freshness checks. Per pipeline: a schedule (all
runs use one job). Per connection: a resource. Nothing here opens a connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from sync_platform.configuration import ConfigError, ConfigProblem, Project, load_project
from sync_platform.orchestration import automation, checks
from sync_platform.orchestration.assets import DEFAULT_RETRY_SCHEDULE, RetrySchedule, table_assets
from sync_platform.orchestration.keys import TableKeys
from sync_platform.orchestration.resources import connection_resources
from sync_platform.orchestration.translator import freshness_lag_seconds, source_spec


def project_tables(project: Project) -> list[TableKeys]:
    """The keys of every configured table, refusing two pipelines that write one warehouse table."""
    tables: list[TableKeys] = []
    writers: dict[dg.AssetKey, str] = {}
    problems: list[ConfigProblem] = []
    for pipeline in project.pipelines.values():
        for name, spec in pipeline.tables.items():
            keys = TableKeys.of(spec)
            other = writers.get(keys.warehouse)
            if other is not None:
                problems.append(
                    ConfigProblem(
                        pipeline.file,
                        f"tables.{name}",
                        f"writes {spec.target}.{spec.target_schema}.{spec.target_table}, as {other} does",
                        "give one of them another target_name or target_schema (one writer per table)",
                    )
                )
                continue
            writers[keys.warehouse] = f"{pipeline.name}: {name}"
            tables.append(keys)
    if problems:
        raise ConfigError(problems)
    return tables


def build_definitions(
    project: Project,
    *,
    retry_schedule: RetrySchedule | None = DEFAULT_RETRY_SCHEDULE,
    resources: Mapping[str, object] | None = None,
) -> dg.Definitions:
    """Dagster definitions for every pipeline of ``project`` (no I/O beyond reading the config files).

    ``resources`` replaces the connection resources built from connections.yml (tests, deployments);
    ``retry_schedule`` None: a transient error fails the step at once.
    """
    tables = project_tables(project)
    sources: dict[dg.AssetKey, dg.AssetSpec] = {}
    assets: list[dg.AssetsDefinition] = []
    lags: list[tuple[TableKeys, float]] = []
    by_pipeline: dict[str, list[TableKeys]] = {}
    for keys in tables:
        pipeline = project.pipelines[keys.spec.pipeline]
        if keys.source not in sources:  # a MySQL table synced by several pipelines is one asset
            sources[keys.source] = source_spec(project, keys)
        assets.append(table_assets(project, keys, retry_schedule=retry_schedule or RetrySchedule(retries=0)))
        lag = freshness_lag_seconds(pipeline, keys.spec)
        if lag is not None:
            lags.append((keys, lag))
        by_pipeline.setdefault(pipeline.name, []).append(keys)

    jobs: list[dg.UnresolvedAssetJobDefinition] = []
    schedules: list[dg.ScheduleDefinition] = []
    sensors: list[dg.SensorDefinition] = [automation.pool_limits_sensor(automation.pool_limits(project))]
    if tables:
        job = automation.tables_job(tables)
        jobs.append(job)
        for name, keys_of_pipeline in by_pipeline.items():
            schedule = automation.pipeline_schedule(project.pipelines[name], keys_of_pipeline, job)
            if schedule is not None:
                schedules.append(schedule)
        sensors.append(automation.staged_batches_sensor(tables, job))
    freshness = checks.freshness_checks(lags)
    if freshness:
        sensors.append(checks.freshness_sensor(freshness))

    return dg.Definitions(
        assets=[*sources.values(), *assets],
        asset_checks=freshness,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources=dict(resources) if resources is not None else connection_resources(project),
    )


def load_definitions(config_dir: str | Path | None = None, *, environment: str | None = None) -> dg.Definitions:
    """Definitions for the configuration directory (``SYNC_PLATFORM_CONFIG_DIR``, else ``./config``)."""
    return build_definitions(load_project(config_dir, environment=environment))
