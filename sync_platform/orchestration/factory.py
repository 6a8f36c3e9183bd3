"""The factory: the project's YAML (read by the project's own config loader) → Dagster definitions.

Per table: the MySQL table (external asset) → the staged batches → the warehouse table, in one
group per pipeline, with the reconciliation and freshness checks. Per pipeline: a schedule (all
sync runs use one job), and a reconcile job (``source_equals_target`` and the full-table count and
key checks) with its optional schedule. Per connection: a resource. Nothing here opens a connection.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg

from sync_platform.configuration import ConfigError, ConfigProblem, Project, compat, load_project
from sync_platform.configuration.loader import sync_differences
from sync_platform.configuration.project import TableSpec
from sync_platform.engine.reconcile import reconcilable
from sync_platform.orchestration import automation, checks, initial_load, reconciliation
from sync_platform.orchestration.assets import DEFAULT_RETRY_SCHEDULE, RetrySchedule, table_assets
from sync_platform.orchestration.keys import TableKeys, identifier
from sync_platform.orchestration.resources import connection_resources
from sync_platform.orchestration.translator import freshness_lag_seconds, shared_table_spec, source_spec

_log = logging.getLogger("sync_platform.definitions")


def project_tables(
    project: Project, *, strict: bool = True, only: Sequence[TableSpec] | None = None
) -> list[TableKeys]:
    """The keys of every configured table, refusing two writers of one warehouse table that do not share it.

    Several source tables may load one warehouse table (the loader marks them, ``shared_target``);
    one source table loaded into one warehouse table by two pipelines is refused, as is a table that
    is not marked as shared (an ad-hoc pipeline's). Not ``strict``: the later writer's table is left
    out and reported (in ``project.broken`` of its file) instead of failing every pipeline.
    ``only``: strict about these tables only (a run of some tables is not stopped by others' conflicts).
    """
    tables, problems = _tables_and_conflicts(project)
    if only is not None:
        concerned = {
            (project.pipelines[s.pipeline].file, f"tables.{s.name}") for s in only if s.pipeline in project.pipelines
        }
        refused = [p for p in problems if (p.file, p.key) in concerned]
    else:
        refused = problems
    if refused and strict:
        raise ConfigError(refused)
    for problem in problems:
        if problem.file is not None:
            project.broken.setdefault(problem.file, []).append(problem)
    return tables


def _tables_and_conflicts(project: Project) -> tuple[list[TableKeys], list[ConfigProblem]]:
    tables: list[TableKeys] = []
    writers: dict[dg.AssetKey, list[tuple[str, TableSpec]]] = {}  # warehouse table → (pipeline: table, spec)
    problems: list[ConfigProblem] = []
    for pipeline in project.pipelines.values():
        for name, spec in pipeline.tables.items():
            if spec.pipeline != pipeline.name:
                continue  # the table another pipeline owns (both list it alike): its assets are the owner's
            keys = TableKeys.of(spec)
            before = writers.setdefault(keys.table, [])
            same = next(((label, other) for label, other in before if other.identity == spec.identity), None)
            unshared = next(
                (label for label, other in before if not (spec.shares_target and other.shares_target)), None
            )
            if same is not None:
                label, other = same
                differ = ", ".join(sync_differences(spec, other)) or "settings"
                problems.append(
                    ConfigProblem(
                        pipeline.file,
                        f"tables.{name}",
                        f"loads {spec.identity} into {spec.target_label}, as {label} does, with different settings "
                        f"({differ}): one source table into one warehouse table is one table, with one watermark",
                        "give both entries the same settings (the table is then synced once, by either pipeline), "
                        "or keep the table in one of the two pipelines",
                    )
                )
                continue
            if unshared is not None:
                problems.append(
                    ConfigProblem(
                        pipeline.file,
                        f"tables.{name}",
                        f"writes {spec.target_label}, as {unshared} does",
                        "give one of them another target_name or target_schema (one writer per table), or list "
                        "both in the configuration files to load the table from both",
                    )
                )
                continue
            before.append((f"{pipeline.name}: {name}", spec))
            tables.append(keys)
    return tables, problems


def build_definitions(
    project: Project,
    *,
    retry_schedule: RetrySchedule | None = DEFAULT_RETRY_SCHEDULE,
    resources: Mapping[str, object] | None = None,
    strict: bool = True,
) -> dg.Definitions:
    """Dagster definitions for every pipeline of ``project`` (no I/O beyond reading the config files).

    ``resources`` replaces the connection resources built from connections.yml (tests, deployments);
    ``retry_schedule`` None: a transient error fails the step at once.
    Not ``strict``: every pipeline file that did not load (``project.broken``) is logged and shown
    in the UI as a ``config_problems`` asset whose description lists its problems, with a failing
    ``configuration_is_valid`` check; the other pipelines load as usual.
    """
    tables = project_tables(project, strict=strict)
    sources: dict[dg.AssetKey, dg.AssetSpec] = {}
    shared: dict[dg.AssetKey, list[TableKeys]] = {}  # a warehouse table several source tables load
    assets: list[dg.AssetsDefinition] = []
    lags: list[tuple[TableKeys, float]] = []
    by_pipeline: dict[str, list[TableKeys]] = {}
    for keys in tables:
        pipeline = project.pipelines[keys.spec.pipeline]
        if keys.source not in sources:  # a MySQL table synced by several pipelines is one asset
            sources[keys.source] = source_spec(project, keys)
        assets.append(table_assets(project, keys, retry_schedule=retry_schedule or RetrySchedule(retries=0)))
        if keys.spec.shares_target:
            shared.setdefault(keys.table, []).append(keys)
        lag = freshness_lag_seconds(pipeline, keys.spec)
        if lag is not None:
            lags.append((keys, lag))
        by_pipeline.setdefault(pipeline.name, []).append(keys)
    # A pipeline listing a table another pipeline owns: its schedule and reconcile job run the owner's assets.
    referenced: dict[str, list[TableKeys]] = {}
    owned = {(keys.spec.pipeline, keys.spec.name) for keys in tables}
    for pipeline in project.pipelines.values():
        for spec in pipeline.tables.values():
            if spec.pipeline != pipeline.name and (spec.pipeline, spec.name) in owned:
                referenced.setdefault(pipeline.name, []).append(TableKeys.of(spec))

    jobs: list[dg.UnresolvedAssetJobDefinition | dg.JobDefinition] = []
    schedules: list[dg.ScheduleDefinition] = []
    sensors: list[dg.SensorDefinition] = [automation.pool_limits_sensor(automation.pool_limits(project))]
    if tables:
        job = automation.tables_job(tables)
        jobs.append(job)
        for name in dict.fromkeys([*by_pipeline, *referenced]):
            keys_of_pipeline = [*by_pipeline.get(name, []), *referenced.get(name, [])]
            schedule = automation.pipeline_schedule(project.pipelines[name], keys_of_pipeline, job)
            if schedule is not None:
                schedules.append(schedule)
        sensors.append(automation.staged_batches_sensor(tables, job))
        for name, keys_of_pipeline in by_pipeline.items():
            jobs.append(
                initial_load.initial_load_job(
                    project,
                    project.pipelines[name],
                    keys_of_pipeline,
                    retry_schedule=retry_schedule or RetrySchedule(retries=0),
                )
            )
    freshness = checks.freshness_checks(lags)
    if freshness:
        sensors.append(checks.freshness_sensor(freshness))
    reconciled: list[dg.AssetChecksDefinition] = []
    for name in dict.fromkeys([*by_pipeline, *referenced]):
        keys_of_pipeline = by_pipeline.get(name, [])
        comparable = [k for k in keys_of_pipeline if reconcilable(k.spec)]
        reconciled += [reconciliation.source_equals_target_check(project, k) for k in comparable]
        reconciled += [reconciliation.full_table_checks(project, k) for k in keys_of_pipeline]
        others = referenced.get(name, [])
        reconcile_job = reconciliation.reconcile_job(
            project.pipelines[name],
            [*comparable, *(k for k in others if reconcilable(k.spec))],
            [*keys_of_pipeline, *others],
        )
        jobs.append(reconcile_job)
        reconcile_schedule = reconciliation.reconcile_schedule(project.pipelines[name], reconcile_job)
        if reconcile_schedule is not None:
            schedules.append(reconcile_schedule)

    problem_specs, problem_checks = _broken_pipeline_markers(project) if not strict else ([], [])
    return dg.Definitions(
        assets=[*sources.values(), *assets, *(shared_table_spec(project, m) for m in shared.values()), *problem_specs],
        asset_checks=[*freshness, *reconciled, *problem_checks],
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources=dict(resources) if resources is not None else connection_resources(project),
    )


def _broken_pipeline_markers(project: Project) -> tuple[list[dg.AssetSpec], list[dg.AssetChecksDefinition]]:
    """One visible marker per pipeline file that did not load, and a log line for each."""
    specs: list[dg.AssetSpec] = []
    checks_: list[dg.AssetChecksDefinition] = []
    for file, problems in sorted(project.broken.items()):
        listing = "\n".join(f"- {p}" for p in problems)
        _log.warning(
            "pipeline file %s has %d problem(s); what they concern is not defined:\n%s", file, len(problems), listing
        )
        key = dg.AssetKey(["config_problems", identifier(file.stem)])
        specs.append(
            dg.AssetSpec(
                key,
                group_name="config_problems",
                description=f"**{file} has problems**; the tables they concern are not defined until it is fixed "
                f"(`sync-platform config validate-pipeline {file.stem}`).\n\n{listing}",
                metadata={"file": str(file), "problems": len(problems)},
                tags={"sync_platform/broken": "true"},
            )
        )
        checks_.append(_failing_check(key, file, problems))
    return specs, checks_


def _failing_check(key: dg.AssetKey, file: Path, problems: list[ConfigProblem]) -> dg.AssetChecksDefinition:
    text = "\n".join(str(p) for p in problems)

    @dg.asset_check(asset=key, name="configuration_is_valid", description=f"{file} loads without problems")
    def _check() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, metadata={"file": str(file), "problems": dg.MetadataValue.md(text)})

    return _check


def load_definitions(
    config_dir: str | Path | None = None, *, environment: str | None = None, strict: bool | None = None
) -> dg.Definitions:
    """Definitions for the configuration directory (``SYNC_PLATFORM_CONFIG_DIR``, else ``./config``).

    A broken pipeline file is reported, not fatal; ``SYNC_PLATFORM_STRICT=1`` (or ``strict``)
    makes any problem fail the code location, as before.
    """
    project = load_project(config_dir, environment=environment, strict=strict)
    if strict is None:
        strict = compat.strict_from_environment() or project.connections.strict
    return build_definitions(project, strict=strict)
