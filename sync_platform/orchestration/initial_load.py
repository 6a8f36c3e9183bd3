"""The ``initial_load_<pipeline>`` job: a big table's first load as Dagster ops, one per key range.

``plan_ranges`` plans the load (or reads back the unfinished plan) and fans out one dynamic output
per range; ``load_range`` reads and loads one range; ``finish_initial_load`` collects them, records
the table's watermark and materializes the table's staged and warehouse assets with it, so the
next incremental sync (schedules, ``sync``, the UI) starts where the load ended.

Dagster runs the ranges: its executor decides where (one process with ``in_process``, several with
the default ``multiprocess`` executor, pods or tasks with the Kubernetes / ECS / Celery executors),
and every op claims a slot of the source's pool like any table sync. The ops only adapt the engine
(:mod:`sync_platform.engine.initial_load`), which keeps the plan and each range's state in the
warehouse: a run launched again after a kill — or re-executed from failure — skips the ranges
already done.
"""

# No `from __future__ import annotations` here: Dagster reads the op's config annotation at runtime.
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import dagster as dg
from pydantic import Field

from sync_platform.configuration.project import Pipeline, Project, TableSpec
from sync_platform.connections.preflight import preflight
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.initial_load import finish_initial_load, load_ranges, plan_initial_load
from sync_platform.engine.sync import DEFAULT_BATCH_MAX_ROWS
from sync_platform.errors import ConfigurationError, classify
from sync_platform.orchestration import watermarks
from sync_platform.orchestration.assets import DEFAULT_RETRY_SCHEDULE, RetrySchedule
from sync_platform.orchestration.keys import TableKeys, identifier, source_pool
from sync_platform.orchestration.resources import build_registry

PLAN_OP = "plan_ranges"
RANGE_OP = "load_range"
FINISH_OP = "finish"
TABLE_TAG = "sync_platform/initial_load_table"
T = TypeVar("T")


def initial_load_job_name(pipeline: str) -> str:
    return f"initial_load_{identifier(pipeline)}"


def op_name(pipeline: str, op: str) -> str:
    """An op of the pipeline's initial-load job (op names are unique across the code location)."""
    return f"{initial_load_job_name(pipeline)}__{op}"


class InitialLoadRunConfig(dg.Config):
    """Which table to load in key ranges, and how."""

    table: str = Field(description="schema.table of the pipeline")
    ranges: int | None = Field(None, description="key ranges (default: the table's initial_load.ranges, else 8)")
    new: bool = Field(False, description="abandon an unfinished plan (or redo a finished load) and plan anew")
    batch_max_rows: int = Field(DEFAULT_BATCH_MAX_ROWS, description="rows per staged batch within a range")
    workers: int = Field(
        1,
        ge=1,
        description="ranges each load_range op reads at once, in threads (for one machine: on 2 cores 2 workers "
        "were 1.4x as fast as 1); 1: one range per op, and the executor spreads the ops",
    )


def _step(
    context: dg.OpExecutionContext,
    project: Project,
    resource_keys: set[str],
    work: Callable[[ConnectionRegistry], T],
    retry_schedule: RetrySchedule,
) -> T:
    """Run ``work`` with a registry over the op's resources; failures carry their classification (exit codes)."""
    registry = build_registry(project, {key: getattr(context.resources, key) for key in resource_keys})
    try:
        return work(registry)
    except dg.Failure:
        raise
    except Exception as exc:
        error = classify(exc)
        message = registry.mask(str(exc)) or type(exc).__name__
        failure = dg.Failure(description=message, metadata=error.as_metadata(), allow_retries=False)
        if error.transient and context.retry_number < retry_schedule.retries:
            wait = retry_schedule.delay(context.retry_number)
            context.log.warning(f"{message} (transient: retry {context.retry_number + 1} in {wait:g} s)")
            raise dg.RetryRequested(max_retries=retry_schedule.retries, seconds_to_wait=wait) from failure
        raise failure from exc
    finally:
        registry.close()


def initial_load_job(
    project: Project,
    pipeline: Pipeline,
    tables: Sequence[TableKeys],
    *,
    retry_schedule: RetrySchedule = DEFAULT_RETRY_SCHEDULE,
) -> dg.JobDefinition:
    """The pipeline's initial-load job: plan → one ``load_range`` per key range → finish."""
    by_name = {t.spec.name: t for t in tables}
    resource_keys = {key for t in tables for key in t.resource_keys.values()}
    pool = source_pool(pipeline.settings.source)

    def keys_for(table: str) -> TableKeys:
        keys = by_name.get(table)
        if keys is None:
            problem = ConfigurationError(
                f"{table} is not a table of pipeline {pipeline.name} (tables: {', '.join(sorted(by_name))})"
            )
            raise dg.Failure(description=str(problem), metadata=classify(problem).as_metadata())
        return keys

    def say(context: dg.OpExecutionContext) -> Callable[[str], None]:
        return lambda message: context.log.info(message)

    @dg.op(
        name=op_name(pipeline.name, PLAN_OP),
        out=dg.DynamicOut(dict),
        required_resource_keys=resource_keys,
        pool=pool,
        description="Plan the table's key ranges (or read back the unfinished plan); one output per range.",
    )
    def plan_ranges(context: dg.OpExecutionContext, config: InitialLoadRunConfig) -> Iterator[dg.DynamicOutput]:
        spec = keys_for(config.table).spec

        def plan(registry: ConnectionRegistry) -> Any:
            if context.retry_number == 0:
                preflight(registry, [spec])
            return plan_initial_load(registry, spec, config.ranges, new=config.new, progress=say(context))

        planned = _step(context, project, resource_keys, plan, retry_schedule)
        indices = [state.index for state in planned.ranges]
        for start in range(0, len(indices), config.workers):
            group = indices[start : start + config.workers]
            task = {"table": spec.name, "plan": planned.plan_id, "indices": group, "rows": config.batch_max_rows}
            key = f"range_{group[0] + 1:05d}" + (f"_to_{group[-1] + 1:05d}" if len(group) > 1 else "")
            yield dg.DynamicOutput(task, mapping_key=key)

    @dg.op(
        name=op_name(pipeline.name, RANGE_OP),
        required_resource_keys=resource_keys,
        pool=pool,
        description="Read one key range from MySQL and load it into the warehouse, exactly once.",
    )
    def load_one_range(context: dg.OpExecutionContext, task: dict) -> dg.Output:
        spec = keys_for(task["table"]).spec
        indices = list(task["indices"])

        def work(registry: ConnectionRegistry) -> Any:
            return load_ranges(
                registry,
                spec,
                task["plan"],
                indices,
                workers=len(indices),
                batch_max_rows=task["rows"],
                progress=say(context),
            )

        results = _step(context, project, resource_keys, work, retry_schedule)
        summaries = [
            {
                "table": spec.name,
                "plan": task["plan"],
                "index": result.index,
                "status": result.status,
                "rows": result.rows,
                "rows_extracted": result.rows_extracted,
                "rows_loaded": result.rows_loaded,
                "batches": result.batches,
            }
            for result in results
        ]
        metadata = {
            "plan": task["plan"],
            "ranges": dg.MetadataValue.json(summaries),
            "rows": sum(r.rows for r in results),
            "rows_extracted": sum(r.rows_extracted for r in results),
        }
        return dg.Output(summaries, metadata=metadata)

    @dg.op(
        name=op_name(pipeline.name, FINISH_OP),
        required_resource_keys=resource_keys,
        description="Record the table's watermark once every range is loaded; incremental syncs start there.",
    )
    def finish(context: dg.OpExecutionContext, groups: list[list[dict]]) -> Iterator[Any]:
        results = [result for group in groups for result in group]
        keys = keys_for(results[0]["table"])
        plan_id = results[0]["plan"]

        def work(registry: ConnectionRegistry) -> Any:
            return finish_initial_load(registry, keys.spec, plan_id, progress=say(context))

        done = _step(context, project, resource_keys, work, retry_schedule)
        rows = sum(r.rows for r in done.ranges)
        extracted = sum(r["rows_extracted"] for r in results)
        staged, loaded = watermarks.initial_load_metadata(done, rows, extracted)
        staged[watermarks.TARGET_TABLE] = keys.spec.target_label
        yield dg.AssetMaterialization(asset_key=keys.staging, metadata=staged, description="initial load in key ranges")
        yield dg.AssetMaterialization(
            asset_key=keys.warehouse, metadata=loaded, description="initial load in key ranges"
        )
        yield dg.Output(
            {"plan": plan_id, "rows": rows, "watermark": done.final.describe()},
            metadata={"plan": plan_id, "ranges": len(done.ranges), "rows": rows, "rows_extracted": extracted},
        )

    @dg.job(
        name=initial_load_job_name(pipeline.name),
        description=f"First load of a big table of pipeline {pipeline.name} in primary-key ranges "
        f"(run config: ops.{op_name(pipeline.name, PLAN_OP)}.config.table). Launch it again to resume: "
        "done ranges are skipped.",
        tags={"sync_platform/pipeline": identifier(pipeline.name)},
    )
    def initial_load() -> None:
        tasks = plan_ranges()
        finish(tasks.map(load_one_range).collect())

    return initial_load


def table_of_run(spec: TableSpec) -> dict[str, str]:
    """Tags of an initial-load run of ``spec`` (find its runs in the UI)."""
    return {TABLE_TAG: spec.identity.replace(":", ".")}
