"""``sync``, ``sync pipeline``, ``sync connections`` and ``backup``: table syncs run as Dagster runs.

Every command here materializes the tables' assets in the persistent Dagster instance (see
``orchestration/launch.py``), so a CLI run appears in the UI and moves the same watermarks as the
schedules. ``--backup-only`` selects only the staging asset, ``--redshift-only`` only the warehouse
asset; ``--limit`` / ``--max-chunks`` cap the extract as the older tool did.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import dagster as dg

from sync_platform.cli import output, timings
from sync_platform.cli.context import CliContext, pass_cli
from sync_platform.cli.exit_codes import ExitCode, exit_code_for
from sync_platform.cli.run_progress import RunProgress
from sync_platform.cli.tables import resolve_table
from sync_platform.configuration import ConfigError, ConfigProblem, Project, TableSpec, table_spec
from sync_platform.configuration.models import PipelineSettings
from sync_platform.configuration.project import Pipeline
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.sync import RunOptions
from sync_platform.engine.watermark import Watermark
from sync_platform.errors import INTERRUPTED, Classification
from sync_platform.orchestration import watermarks
from sync_platform.orchestration.assets import DEFAULT_RETRY_SCHEDULE
from sync_platform.orchestration.instance import cli_instance
from sync_platform.orchestration.launch import (
    DEFAULT_WAIT_TIMEOUT,
    RunOutcome,
    TableOutcome,
    run_initial_load,
    run_tables,
    with_pipeline,
)


@dataclass(frozen=True)
class SyncRequest:
    """What a sync command was asked to do, whichever command it was."""

    stage: bool = True
    load: bool = True
    limit: int | None = None
    max_chunks: int | None = None
    batch_size: int | None = None
    dry_run: bool = False
    json_output: Path | None = None
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT
    retries: int | None = None
    pipeline_label: str | None = None


def _sync_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every sync command shares (names and meaning as in the older tool)."""
    options = [
        click.option("--backup-only", is_flag=True, help="Only stage the batches (MySQL → S3); load later."),
        click.option("--redshift-only", is_flag=True, help="Only load batches already staged (S3 → warehouse)."),
        click.option("--limit", type=click.IntRange(min=1), help="Rows per page, and rows per run at most."),
        click.option("--max-chunks", type=click.IntRange(min=1), help="Pages per run at most."),
        click.option("--dry-run", is_flag=True, help="Show strategy, columns, target and SQL; change nothing."),
        click.option(
            "--json-output",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write the run's result as JSON to this file (the older tool's schema).",
        ),
        click.option(
            "--wait-timeout",
            type=click.FloatRange(min=1),
            default=DEFAULT_WAIT_TIMEOUT,
            show_default=True,
            help="Give up when no table of the run could start for this many seconds (pool or table busy).",
        ),
        click.option(
            "--retries",
            type=click.IntRange(min=0),
            help=f"Attempts after a transient error (lost connection, table busy); default "
            f"{DEFAULT_RETRY_SCHEDULE.retries}, backing off {DEFAULT_RETRY_SCHEDULE.describe()}. 0 fails at once "
            "(e.g. when Airflow retries the task itself). An endpoint down at the start is never retried.",
        ),
        click.option("--max-workers", type=int, hidden=True, help="Accepted for compatibility; tables run in turn."),
        click.option("--parallel", is_flag=True, hidden=True, help="Accepted for compatibility."),
        click.option("--verify-data", is_flag=True, hidden=True, help="Accepted: the checks run on every load."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _request(options: dict[str, Any], **fixed: Any) -> SyncRequest:
    """The request from a command's sync options (``fixed`` overrides them, e.g. ``backup_only`` for ``backup``)."""
    values = {**options, **fixed}
    if values.get("backup_only") and values.get("redshift_only"):
        raise click.UsageError("--backup-only and --redshift-only exclude each other (give neither to do both)")
    return SyncRequest(
        stage=not values.get("redshift_only"),
        load=not values.get("backup_only"),
        limit=values.get("limit"),
        max_chunks=values.get("max_chunks"),
        batch_size=values.get("batch_size"),
        dry_run=bool(values.get("dry_run")),
        json_output=values.get("json_output"),
        wait_timeout=values.get("wait_timeout") or DEFAULT_WAIT_TIMEOUT,
        retries=values.get("retries"),
        pipeline_label=values.get("pipeline_label"),
    )


def _config_error(exc: ConfigError, ctx: CliContext | None = None) -> SystemExit:
    click.echo(str(exc), err=True)
    if ctx is not None:
        ctx.last_error = str(exc)
    return SystemExit(ExitCode.CONFIG)


# --------------------------------------------------------------------------- commands


@click.group("sync", invoke_without_command=True)
@click.option("-t", "--table", "tables", multiple=True, help="schema.table or CONN:schema.table (repeatable).")
@click.option("-p", "--pipeline", help="The pipeline the tables belong to (auto-detected when unique).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Rows per page (default: the table's batch_size).")
@click.option("-s", "--strategy", "execution_strategy", hidden=True, help="Accepted for compatibility.")
@_sync_options
@pass_cli
@click.pass_context
def sync_group(
    click_ctx: click.Context, ctx: CliContext, tables: tuple[str, ...], pipeline: str | None, **options: Any
) -> None:
    """Sync tables: `sync -t schema.table` (v1.0.0), `sync pipeline -p P`, `sync connections -s S -r T -t T`."""
    timings.mark("command")
    if click_ctx.invoked_subcommand is not None:
        given = [name for name, value in options.items() if value not in (None, False, DEFAULT_WAIT_TIMEOUT)]
        if tables or pipeline or given:
            raise click.UsageError(
                f"give the options after the subcommand: sync {click_ctx.invoked_subcommand} … -t schema.table"
            )
        return
    if not tables:
        click.echo(click_ctx.get_help(), err=True)
        raise click.UsageError("name the tables with -t schema.table, or use `sync pipeline -p P`")
    request = _request(options)
    with json_on_every_exit(ctx, request, tables):
        _sync_named(ctx, tables, pipeline, request)


@sync_group.command("pipeline")
@click.option("-p", "--pipeline", required=True, help="The pipeline (config/pipelines/<name>.yml).")
@click.option("-t", "--table", "tables", multiple=True, help="schema.table of the pipeline; default: every table.")
@click.option("--s3-completion-bucket", hidden=True, help="Accepted for compatibility; not written.")
@_sync_options
@pass_cli
def sync_pipeline(ctx: CliContext, pipeline: str, tables: tuple[str, ...], **options: Any) -> None:
    """Sync the tables of pipeline P (its pipeline.name or file name; all enabled tables when -t is not given)."""
    request = _request(options, pipeline_label=pipeline)
    timings.mark("command")
    with json_on_every_exit(ctx, request, tables):
        project = ctx.project(pipeline=pipeline)
        try:
            if tables:
                specs = [resolve_table(project, name, pipeline) for name in tables]
            else:
                specs = [s for s in table_spec_list(project, pipeline) if s.config.enabled]
        except ConfigError as exc:
            raise _config_error(exc, ctx) from None
        if not specs:
            ctx.last_error = f"pipeline {pipeline} has no enabled tables; name some with -t schema.table"
            click.echo(ctx.last_error, err=True)
            raise SystemExit(ExitCode.CONFIG)
        # Only this pipeline's definitions are built (and those of pipelines loading the same warehouse
        # tables, whose rows the checks count, or listing the same table, which must agree with it):
        # another pipeline's problems cannot stop this run.
        names = {
            specs[0].pipeline,
            *(other.pipeline for spec in specs for other in project.sharing(spec)),
            *(other.pipeline for spec in specs for other in project.listing(spec)),
        }
        project = dataclasses.replace(project, pipelines={n: p for n, p in project.pipelines.items() if n in names})
        _execute(ctx, project, specs, request)


def table_spec_list(project: Project, pipeline: str) -> list[TableSpec]:
    name = project.pipeline_name(pipeline)
    if name is None:
        table_spec(project, pipeline, "x.y")  # raises the "pipeline not found" problem, with known names
    return list(project.pipelines[name or pipeline].tables.values())


@contextmanager
def json_on_every_exit(ctx: CliContext, request: SyncRequest, tables: Sequence[str]) -> Iterator[None]:
    """``--json-output`` written however the command ends: a refused configuration, a missing table,
    an interruption or an unexpected error (``status: failed`` with the error and the exit code)."""
    path = request.json_output
    if path is None:
        yield
        return
    started = dt.datetime.now(dt.UTC)
    before = path.stat().st_mtime_ns if path.exists() else None
    try:
        yield
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else ExitCode.CONFIG
        written = path.exists() and path.stat().st_mtime_ns != before
        if code != 0 and not written:
            error = ctx.last_error or f"the command exited with code {code}"
            write_json(path, failure_document(request, tables, error, int(code), started))
        raise
    except KeyboardInterrupt:
        write_json(path, failure_document(request, tables, "interrupted", int(ExitCode.INTERRUPTED), started))
        raise
    except Exception as exc:
        code = exit_code_for(exc)
        write_json(path, failure_document(request, tables, f"{type(exc).__name__}: {exc}", int(code), started))
        raise


def failure_document(
    request: SyncRequest, tables: Sequence[str], error: str, code: int, started: dt.datetime
) -> dict[str, Any]:
    """The JSON of a run that did not get to sync: every requested table failed with ``error``."""
    ended = dt.datetime.now(dt.UTC)
    results = {name: {"status": "failed", "error_message": error, "failed_at": ended.isoformat()} for name in tables}
    return {
        "execution_id": f"sync_{started:%Y%m%d_%H%M%S}_failed",
        "start_time": started.isoformat(),
        "pipeline": request.pipeline_label,
        "tables_requested": list(tables),
        "total_tables": len(tables),
        "table_results": results,
        "status": "failed",
        "success": False,
        "error": error,
        "exit_code": code,
        "end_time": ended.isoformat(),
        "duration_seconds": round((ended - started).total_seconds(), 3),
        "summary": {
            "success_count": 0,
            "failure_count": len(tables),
            "total_rows_processed": 0,
            "total_files_created": 0,
        },
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


@sync_group.command("connections")
@click.option("-s", "--source", required=True, help="Source connection (connections.yml sources).")
@click.option("-r", "--target", required=True, help="Target connection (connections.yml targets).")
@click.option("-t", "--table", "tables", multiple=True, required=True, help="schema.table (repeatable).")
@click.option("--s3-config", help="Staging (s3_configs entry); needed when there are several.")
@click.option("--batch-size", type=click.IntRange(min=1), default=10_000, show_default=True, help="Rows per page.")
@_sync_options
@pass_cli
def sync_connections(
    ctx: CliContext, source: str, target: str, tables: tuple[str, ...], s3_config: str | None, **options: Any
) -> None:
    """Sync tables between two connections without a pipeline file (pipeline `adhoc_<source>_<target>`)."""
    timings.mark("command")
    request = _request(options, pipeline_label=f"adhoc_{source}_{target}")
    with json_on_every_exit(ctx, request, tables):
        project = ctx.project()
        try:
            pipeline = adhoc_pipeline(project, source, target, s3_config)
            project = with_pipeline(project, pipeline)
            specs = [table_spec(project, pipeline.name, name) for name in tables]
        except ConfigError as exc:
            raise _config_error(exc, ctx) from None
        _execute(ctx, project, specs, request)


def adhoc_pipeline(project: Project, source: str, target: str, s3_config: str | None) -> Pipeline:
    """An open pipeline between two configured connections (tables auto-detect their strategy)."""
    conns = project.connections
    problems = []
    if source not in conns.connections.sources:
        known = ", ".join(sorted(conns.connections.sources)) or "none"
        problems.append(ConfigProblem(None, "-s", f"no source connection `{source}`", f"sources: {known}"))
    if target not in conns.connections.targets:
        known = ", ".join(sorted(conns.connections.targets)) or "none"
        problems.append(ConfigProblem(None, "-r", f"no target connection `{target}`", f"targets: {known}"))
    staging = s3_config
    if staging is None and len(conns.s3_configs) == 1:
        staging = next(iter(conns.s3_configs))
    if staging not in conns.s3_configs:
        known = ", ".join(sorted(conns.s3_configs)) or "none"
        problems.append(
            ConfigProblem(None, "--s3-config", f"choose the staging store with --s3-config (s3_configs: {known})")
        )
    if problems:
        raise ConfigError(problems)
    settings = PipelineSettings(name=f"adhoc_{source}_{target}", source=source, target=target, s3_config=staging)
    return Pipeline(name=settings.name, file=None, settings=settings, tables={}, open_tables=True)


@sync_group.command("initial-load")
@click.option("-t", "--table", "table", required=True, help="schema.table of the pipeline.")
@click.option("-p", "--pipeline", help="The pipeline the table belongs to (auto-detected when unique).")
@click.option(
    "--ranges",
    type=click.IntRange(min=1),
    help="Primary-key ranges to cut the table into (default: the table's initial_load.ranges, else 8).",
)
@click.option("--new", is_flag=True, help="Plan anew: abandon an unfinished load, or load a finished table again.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Ranges read at once in this process (threads); on 2 cores 2 were 1.4x as fast as 1.",
)
@click.option(
    "--json-output", type=click.Path(dir_okay=False, path_type=Path), help="Write the result as JSON to this file."
)
@click.option("--wait-timeout", type=click.FloatRange(min=1), default=DEFAULT_WAIT_TIMEOUT, show_default=True)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    help=f"Attempts of a range after a transient error (default {DEFAULT_RETRY_SCHEDULE.retries}).",
)
@pass_cli
def sync_initial_load(
    ctx: CliContext,
    table: str,
    pipeline: str | None,
    ranges: int | None,
    new: bool,
    workers: int,
    json_output: Path | None,
    wait_timeout: float,
    retries: int | None,
) -> None:
    """First load of a big table in primary-key ranges, as the initial_load_<pipeline> job.

    Each range is read and loaded once; run the same command again after a failure or a kill and
    only the ranges not yet done run. When every range is done, incremental syncs of the table
    continue from where the load started reading (its ceiling), not from the beginning.
    """
    timings.mark("command")
    request = SyncRequest(json_output=json_output, wait_timeout=wait_timeout, retries=retries)
    with json_on_every_exit(ctx, request, (table,)):
        project = ctx.project(pipeline=pipeline)
        try:
            spec = resolve_table(project, table, pipeline)
        except ConfigError as exc:
            raise _config_error(exc, ctx) from None
        started = dt.datetime.now(dt.UTC)
        instance = cli_instance()

        def progress(_spec: TableSpec, message: str) -> None:
            if not ctx.quiet:
                click.echo(f"{dt.datetime.now():%H:%M:%S} {message}", err=True)

        try:
            outcome = run_initial_load(
                project,
                spec,
                instance=instance,
                ranges=ranges,
                new=new,
                workers=workers,
                wait_timeout=wait_timeout,
                retries=retries,
                progress=progress,
            )
        except ConfigError as exc:
            raise _config_error(exc, ctx) from None
        rows = [
            (
                f"{int(r['index']) + 1}",
                str(r["status"]).replace("_", " "),
                f"{int(r['rows']):,}",
                f"{int(r['rows_extracted']):,}",
                f"{int(r['rows_loaded']):,}",
            )
            for r in outcome.ranges
        ]
        output.table(
            f"Initial load of {spec.identity}, plan {outcome.plan_id or '-'} (run {outcome.run_id}, "
            f"{outcome.seconds:.1f} s)",
            ["range", "status", "rows", "read now", "loaded now"],
            rows,
        )
        if outcome.status == "success":
            code = ExitCode.OK
            output.ok(
                f"{spec.identity}: {outcome.rows:,} rows in {len(outcome.ranges)} ranges; incremental syncs continue "
                f"from {outcome.watermark}"
            )
        else:
            kind = outcome.error_kind
            code = kind.exit_code if kind is not None else ExitCode.PARTIAL
            ctx.last_error = outcome.error
            output.fail(output.failure_line(spec, f"{outcome.error} (run the same command again to resume)"))
        if json_output is not None:
            ended = dt.datetime.now(dt.UTC)
            write_json(
                json_output,
                {
                    "command": "sync initial-load",
                    "dagster_run_id": outcome.run_id,
                    "table": spec.name,
                    "pipeline": spec.pipeline,
                    "plan_id": outcome.plan_id,
                    "status": outcome.status,
                    "success": outcome.status == "success",
                    "ranges": outcome.ranges,
                    "failed_ranges": outcome.failed_ranges,
                    "rows": outcome.rows,
                    "rows_extracted": outcome.rows_extracted,
                    "watermark": outcome.watermark,
                    "error": outcome.error,
                    "exit_code": int(code),
                    "start_time": started.isoformat(),
                    "end_time": ended.isoformat(),
                    "duration_seconds": round((ended - started).total_seconds(), 3),
                },
            )
        raise SystemExit(code)


@click.command("backup")
@click.option("-t", "--table", "tables", multiple=True, required=True, help="schema.table (repeatable).")
@click.option("-p", "--pipeline", help="The pipeline the tables belong to (auto-detected when unique).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Rows per page (default: the table's batch_size).")
@click.option("--limit", type=click.IntRange(min=1), help="Rows per page, and rows per run at most.")
@click.option("--max-chunks", type=click.IntRange(min=1), help="Pages per run at most.")
@click.option("--dry-run", is_flag=True, help="Show strategy, columns and SQL; change nothing.")
@click.option("--json-output", type=click.Path(dir_okay=False, path_type=Path), help="Write the result as JSON.")
@click.option("--wait-timeout", type=click.FloatRange(min=1), default=DEFAULT_WAIT_TIMEOUT, show_default=True)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    help=f"Attempts after a transient error (default {DEFAULT_RETRY_SCHEDULE.retries}, backing off "
    f"{DEFAULT_RETRY_SCHEDULE.describe()}).",
)
@click.option("-s", "--strategy", "execution_strategy", hidden=True, help="Accepted for compatibility.")
@click.option("--max-workers", type=int, hidden=True, help="Accepted for compatibility.")
@click.option("--estimate", is_flag=True, hidden=True, help="Accepted: use --dry-run.")
@pass_cli
def backup(ctx: CliContext, tables: tuple[str, ...], pipeline: str | None, **options: Any) -> None:
    """Stage tables from MySQL without loading them (v1.0.0; the same as `sync --backup-only`)."""
    timings.mark("command")
    request = _request(options, backup_only=True)
    with json_on_every_exit(ctx, request, tables):
        _sync_named(ctx, tables, pipeline, request)


# --------------------------------------------------------------------------- execution


def _sync_named(ctx: CliContext, tables: Sequence[str], pipeline: str | None, request: SyncRequest) -> None:
    """Sync tables named on the command line, each in its pipeline (given, detected, or ``default``)."""
    project = ctx.project(pipeline=pipeline)
    try:
        specs = [resolve_table(project, name, pipeline) for name in tables]
    except ConfigError as exc:
        raise _config_error(exc, ctx) from None
    _execute(ctx, project, specs, request)


def _execute(ctx: CliContext, project: Project, specs: Sequence[TableSpec], request: SyncRequest) -> None:
    timings.mark("configuration")
    if request.batch_size:
        specs = [dataclasses.replace(s, page_rows=request.batch_size) for s in specs]
    if request.dry_run:
        _dry_run(project, specs, request)
        return
    started = dt.datetime.now(dt.UTC)
    instance = cli_instance()
    timings.mark("instance")
    try:
        with RunProgress(specs, quiet=ctx.quiet) as progress:
            outcome = run_tables(
                project,
                specs,
                instance=instance,
                stage=request.stage,
                load=request.load,
                limit=request.limit,
                max_chunks=request.max_chunks,
                wait_timeout=request.wait_timeout,
                retries=request.retries,
                progress=progress.update,
            )
            progress.finish(outcome)
        timings.record(outcome.marks)
    except ConfigError as exc:  # e.g. an ad-hoc table that a pipeline already writes
        raise _config_error(exc, ctx) from None
    summary(outcome, request)
    code = exit_code(outcome)
    interrupted = _interrupted(instance, outcome)
    if interrupted:  # Ctrl-C / SIGINT: Dagster ended the run at its next checkpoint
        code = ExitCode.INTERRUPTED
        for table in outcome.failed:
            table.error = table.error or "interrupted before it finished"
        output.fail("interrupted: the run was canceled")
    if request.json_output is not None:
        document = json_document(outcome, request, specs, started, code)
        if interrupted:  # the run as a whole failed, whatever tables finished before the interrupt
            document.update(status="failed", success=False, error=f"interrupted: {document['error']}")
        write_json(request.json_output, document)
    raise SystemExit(code)


_INTERRUPTS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")


def _interrupted(instance: dg.DagsterInstance, outcome: RunOutcome) -> bool:
    """Whether Ctrl-C / SIGINT ended the run: in a step, or before any step started (then every
    table is "not run" and only the run's own failure or cancellation event says why)."""
    if outcome.blocked:  # the watchdog ended a run no step of which could start: not the user's Ctrl-C
        return False
    if any(t.error_kind is not None and t.error_kind.kind == INTERRUPTED.kind for t in outcome.failed):
        return True
    run = instance.get_run_by_id(outcome.run_id)
    if run is not None and run.status in (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED):
        return True
    if not outcome.failed:
        return False
    kinds = {dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_CANCELED}
    for record in instance.all_logs(outcome.run_id, of_type=kinds):
        if any(name in repr(record.dagster_event) for name in _INTERRUPTS):
            return True
    return False


def exit_code(outcome: RunOutcome) -> ExitCode:
    failed = outcome.failed
    if not failed:
        return ExitCode.OK
    if len(failed) < len(outcome.tables):
        return ExitCode.PARTIAL
    if all(t.check_errors for t in failed):  # the data is wrong, not the run: a check found it
        return ExitCode.DATA
    kind = failed[0].error_kind
    return kind.exit_code if kind is not None else ExitCode.PARTIAL


def summary(outcome: RunOutcome, request: SyncRequest) -> None:
    rows = []
    for t in outcome.tables:
        checks = ", ".join(f"{name}: {'ok' if passed else 'FAILED'}" for name, passed in sorted(t.checks.items()))
        rows.append(
            (
                t.spec.identity,
                t.status,
                f"{t.rows_extracted:,}" if request.stage else "-",
                f"{t.rows_loaded:,}" if request.load else "-",
                t.files if request.stage else "-",
                _target_rows_text(t),
                _null_cursor_text(t),
                f"{t.seconds:.1f}",
                checks,
            )
        )
    output.table(
        f"Run {outcome.run_id} ({outcome.seconds:.1f} s)",
        ["table", "status", "read", "loaded", "files", "rows in target", "NULL cursor", "seconds", "checks"],
        rows,
    )
    for t in outcome.tables:
        for warning in t.warnings:
            click.echo(f"warning: {t.spec.identity}: {warning}", err=True)
    for t in outcome.failed:
        output.fail(output.failure_line(t.spec, _failure_text(t)))
    if request.stage and not request.load and not outcome.failed:
        click.echo("Staged only: the batches load with `sync --redshift-only` or the load_staged_batches sensor.")


def _error_kind(t: TableOutcome) -> Classification:
    """The table's failure as the taxonomy classifies it (a failed check: data)."""
    if t.error_kind is not None:
        return t.error_kind
    if t.check_errors:
        return Classification("data", ExitCode.DATA, False)
    return Classification("error", ExitCode.PARTIAL, False)


def _failure_text(t: TableOutcome) -> str:
    """Why a table failed; a failed check says what it found and what to run."""
    if not t.check_errors:
        return t.error or "not run"
    found = "; ".join(f"check {name} failed: {text}" for name, text in sorted(t.check_errors.items()))
    return (
        f"{found}. The rows were loaded, but the target does not match the source; "
        f"`watermark-count validate-counts -t {t.spec.name}` shows the counts"
    )


def _target_rows_text(t: TableOutcome) -> str:
    """The counted rows, or ``~N (estimate)`` for a large target counted only by the catalog (see README)."""
    if t.target_rows is not None:
        return f"{t.target_rows:,}"
    if t.target_rows_estimate is not None:
        return f"~{t.target_rows_estimate:,} (estimate)"
    return ""


def _null_cursor_text(t: TableOutcome) -> str:
    """The NULL-cursor rows of a table and what the run did with them ("" when the run staged nothing)."""
    if t.null_cursor_policy is None:
        return ""
    if t.null_cursor_policy == "load":
        return f"{t.null_cursor_rows:,} (loaded {t.null_cursor_loaded:,})"
    return f"{t.null_cursor_rows:,} ({'NOT loaded: ' if t.null_cursor_rows else ''}{t.null_cursor_policy})"


def json_document(
    outcome: RunOutcome,
    request: SyncRequest,
    specs: Sequence[TableSpec],
    started: dt.datetime,
    code: int | None = None,
) -> dict[str, Any]:
    """The older tool's ``--json-output`` document, with true counts and durations.

    ``rows_processed`` is the rows read from MySQL by this run (rows loaded with ``--redshift-only``);
    ``files_created`` the parquet files this run staged. ``dagster_run_id`` links to the UI.
    """
    ended = dt.datetime.now(dt.UTC)
    results: dict[str, Any] = {}
    for t in outcome.tables:
        if t.status == "success":
            processed = t.rows_extracted if request.stage else t.rows_loaded
            results[t.spec.name] = {
                "status": "success",
                "rows_processed": processed,
                "rows_extracted": t.rows_extracted,
                "rows_loaded": t.rows_loaded,
                "files_created": t.files,
                "target_rows": t.target_rows,
                "target_rows_estimate": t.target_rows_estimate,
                "duration_seconds": round(t.seconds, 3),
                "completed_at": (t.finished_at or ended).isoformat(),
                "extract_watermark": t.extract_watermark,
                "load_watermark": t.load_watermark,
                "null_cursor_rows": t.null_cursor_rows,
                "null_cursor_policy": t.null_cursor_policy,
                "null_cursor_rows_loaded": t.null_cursor_loaded,
                "checks": dict(t.checks),
                "check_details": dict(t.check_details),
                "checks_seconds": round(sum(d.get("seconds", 0.0) for d in t.check_details.values()), 3),
                "warnings": list(t.warnings),
            }
        else:
            results[t.spec.name] = {
                "status": "failed",
                "error_message": _failure_text(t),
                "error_kind": _error_kind(t).kind,
                "exit_code": int(_error_kind(t).exit_code),
                "transient": _error_kind(t).transient,
                "checks": dict(t.checks),
                "check_details": dict(t.check_details),
                "failed_at": (t.finished_at or ended).isoformat(),
            }
    failures = len(outcome.failed)
    status = "success" if not failures else "failed" if failures == len(outcome.tables) else "partial_success"
    succeeded = [r for r in results.values() if r["status"] == "success"]
    pipelines = sorted({s.pipeline for s in specs})
    return {
        "execution_id": f"sync_{started:%Y%m%d_%H%M%S}_{outcome.run_id[:8]}",
        "dagster_run_id": outcome.run_id,
        "start_time": started.isoformat(),
        "pipeline": request.pipeline_label or (pipelines[0] if len(pipelines) == 1 else ",".join(pipelines)),
        "tables_requested": [s.name for s in specs],
        "total_tables": len(specs),
        "table_results": results,
        "status": status,
        "success": status == "success",
        # The DAGs read a top-level `error` to say what failed; the first failure's message.
        "error": next((t.error or "not run" for t in outcome.failed), None),
        "exit_code": int(exit_code(outcome) if code is None else code),
        "stages": {
            "backup": {"summary": {"total_rows": sum(t.rows_extracted for t in outcome.tables)}},
            "redshift": {"summary": {"total_rows_loaded": sum(t.rows_loaded for t in outcome.tables)}},
        },
        "end_time": ended.isoformat(),
        "duration_seconds": round((ended - started).total_seconds(), 3),
        "summary": {
            "success_count": len(succeeded),
            "failure_count": failures,
            "total_rows_processed": sum(r["rows_processed"] for r in succeeded),
            "total_files_created": sum(r["files_created"] for r in succeeded),
        },
    }


def _dry_run(project: Project, specs: Sequence[TableSpec], request: SyncRequest) -> None:
    from sync_platform.engine.explain import explain_table

    instance = cli_instance()
    options = RunOptions(limit=request.limit, max_chunks=request.max_chunks)
    steps = [name for name, wanted in (("stage", request.stage), ("load", request.load)) if wanted]
    with ConnectionRegistry(project.connections, project.config_dir) as registry:
        for spec in specs:
            record = watermarks.read_extract_watermark(instance, spec)
            start = record.watermark if record is not None else Watermark()
            click.echo(f"== {spec.identity} ({' + '.join(steps)}; nothing is changed)")
            click.echo(f"extract watermark: {record.describe() if record else 'none recorded (recovered at run time)'}")
            try:
                explanation = explain_table(registry, spec, start, options)
            except Exception as exc:
                output.fail(f"{spec.identity}: {registry.mask(str(exc))}")
                raise SystemExit(exit_code_for(exc)) from None
            for line in explanation.lines():
                click.echo(line)
