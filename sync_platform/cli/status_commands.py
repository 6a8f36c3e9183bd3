"""``status`` (configuration, connectivity, last watermarks) and ``info`` (what this installation is).

``status`` answers "is everything in order?": the configuration loads, every connection answers
(the same checks as ``connections health``), and where each table's extract and load stand in the
Dagster instance the UI and schedules share. Secrets never reach the output: configuration problems
name keys, not values, and health reports are masked by the registry.
"""

from __future__ import annotations

import datetime as dt
import os

import click

from sync_platform import __version__
from sync_platform.cli import output
from sync_platform.cli.connections_commands import print_health_reports
from sync_platform.cli.context import CliContext, pass_cli
from sync_platform.cli.exit_codes import ExitCode
from sync_platform.cli.strategy_guide import echo_guides
from sync_platform.configuration import ConfigError, Project, load_project
from sync_platform.connections.health import check_all
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.orchestration.instance import DAGSTER_HOME, DEFAULT_DAGSTER_HOME, cli_instance
from sync_platform.orchestration.run_health import runs_in_progress
from sync_platform.orchestration.watermarks import Origin, WatermarkRecord, read_extract_watermark, read_load_watermark


def _load(ctx: CliContext) -> Project:
    """The project, or exit 1 after printing every configuration problem."""
    try:
        return load_project(ctx.config_dir)
    except ConfigError as exc:
        output.fail(f"configuration {ctx.config_dir}: {len(exc.problems)} problem(s)")
        click.echo(str(exc), err=True)
        raise SystemExit(ExitCode.CONFIG) from None


def _tables(project: Project) -> int:
    return sum(len(p.tables) for p in project.pipelines.values())


def _when(record: WatermarkRecord | None) -> str:
    at = record.recorded_at if record is not None else None
    return at.isoformat(sep=" ", timespec="seconds") if at is not None else ""


def _position(record: WatermarkRecord | None) -> str:
    if record is None:
        return "(none recorded)"
    return record.watermark.describe() + (" (set by hand)" if record.origin == Origin.MANUAL else "")


def _watermark_rows(project: Project) -> list[tuple[object, ...]]:
    """Each table's last extract and load watermark, read from the instance (no network I/O)."""
    instance = cli_instance()
    rows: list[tuple[object, ...]] = []
    for pipeline in sorted(project.pipelines.values(), key=lambda p: p.name):
        for spec in pipeline.tables.values():
            extract = read_extract_watermark(instance, spec)
            load = read_load_watermark(instance, spec)
            rows.append(
                (spec.identity, pipeline.name, _position(extract), _when(extract), _position(load), _when(load))
            )
    return rows


def _show_runs_in_progress() -> None:
    """Runs not yet ended; those that look stuck are flagged with the reason and what to do."""
    try:
        runs = runs_in_progress(cli_instance())
    except Exception as exc:  # reported with the watermarks above; the rest of the status still stands
        output.fail(f"runs in progress: cannot read the Dagster instance ({type(exc).__name__}: {exc})")
        return
    if not runs:
        click.echo("Runs in progress: none")
        return
    output.table(
        "Runs in progress",
        ["run", "status", "started", "last event", "where", "stuck?"],
        [
            (
                r.run_id,
                r.status,
                _at(r.started_at),
                _at(r.last_event_at),
                r.where or "launched by Dagster",
                r.stuck or "",
            )
            for r in runs
        ],
    )
    stuck = [r for r in runs if r.stuck]
    for r in stuck:
        output.fail(
            f"run {r.run_id} looks stuck: {r.stuck}. If its process is gone, terminate it in the UI (Runs → "
            "Terminate), or let the daemon's run monitoring end it (dagster.yaml run_monitoring)"
        )


def _at(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


@click.command("status")
@pass_cli
def status(ctx: CliContext) -> None:
    """Configuration, connectivity, each table's last watermarks and runs in progress (stuck ones flagged).

    Exit 1 (configuration) or 2 (a connection is down) on problems.
    """
    project = _load(ctx)
    environment = f"environment {project.environment}, " if project.environment else ""
    output.ok(
        f"configuration {project.config_dir}: {environment}{len(project.pipelines)} pipeline(s), "
        f"{_tables(project)} table(s)"
    )
    with ConnectionRegistry(project.connections, project.config_dir) as registry:
        reports = check_all(registry)
    print_health_reports(reports)
    try:
        rows = _watermark_rows(project)
    except Exception as exc:  # the instance is a separate concern: report it, keep the rest of the status
        output.fail(f"Dagster instance ({os.environ.get(DAGSTER_HOME, '')}): {type(exc).__name__}: {exc}")
        rows = []
    else:
        output.table(
            f"Watermarks (Dagster instance {os.environ.get(DAGSTER_HOME, '')})",
            ["table", "pipeline", "extract watermark", "extracted at", "load watermark", "loaded at"],
            rows,
        )
    _show_runs_in_progress()
    failed = [r for r in reports if not r.ok]
    if failed:
        click.echo(f"{len(failed)} of {len(reports)} connection(s) unreachable", err=True)
        raise SystemExit(ExitCode.CONNECTION)
    click.echo(f"status OK: {len(reports)} connection(s) reachable")


@click.command("info")
@click.option("--strategy", is_flag=True, help="Also describe the CDC strategies.")
@pass_cli
def info(ctx: CliContext, strategy: bool) -> None:
    """Version, configuration directory, Dagster instance and what the configuration defines."""
    click.echo(f"sync-platform {__version__}")
    click.echo(f"config dir:   {ctx.config_dir.resolve()}")
    home = os.environ.get(DAGSTER_HOME)
    click.echo(f"DAGSTER_HOME: {home}" if home else f"DAGSTER_HOME: not set ({DEFAULT_DAGSTER_HOME} is used)")
    problems: ConfigError | None = None
    try:
        project = load_project(ctx.config_dir)
    except ConfigError as exc:
        problems = exc
        click.echo(f"configuration: invalid, {len(exc.problems)} problem(s) (see `config status`)")
    else:
        mode = "connections.yml" if project.mode == "yaml" else "v1.0.0 .env variables"
        click.echo(f"configuration: {mode}, environment {project.environment or '(none)'}")
        click.echo(f"pipelines:    {len(project.pipelines)} ({', '.join(sorted(project.pipelines)) or 'none'})")
        click.echo(f"tables:       {_tables(project)}")
    if strategy:
        click.echo("")
        echo_guides()
    if problems is not None:
        raise SystemExit(ExitCode.CONFIG)
