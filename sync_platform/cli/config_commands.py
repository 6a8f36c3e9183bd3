"""``config``: set up, list, show, validate and summarise the YAML configuration."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from sync_platform.cli import output
from sync_platform.cli.context import CliContext, pass_cli
from sync_platform.cli.exit_codes import ExitCode
from sync_platform.configuration import ConfigProblem, read_project
from sync_platform.configuration.errors import key_path
from sync_platform.configuration.project import Pipeline, TableSpec
from sync_platform.configuration.scaffold import write_skeleton
from sync_platform.engine.strategies import PlanError, check_custom_query


@click.group("config")
def config_group() -> None:
    """Set up, inspect and validate the YAML configuration."""


@config_group.command("setup")
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@pass_cli
def setup(ctx: CliContext, force: bool) -> None:
    """Create the configuration skeleton (connections.yml, pipelines/, environments/, templates/, tables/)."""
    written, kept = write_skeleton(ctx.config_dir, force=force)
    for path in written:
        output.ok(f"wrote {path}")
    for path in kept:
        click.echo(f"kept {path} (exists; --force overwrites)")
    if kept and not written:
        click.echo("An existing project: nothing added (the examples would name connections it does not have).")
    click.echo(f"Next: edit {ctx.config_dir / 'connections.yml'}, then run `sync-platform connections test --all`.")


@config_group.command("list-pipelines")
@pass_cli
def list_pipelines(ctx: CliContext) -> None:
    """List the pipelines with their connections and table counts."""
    project = ctx.project()
    rows = [
        (
            p.name,
            p.settings.source,
            p.settings.target,
            p.settings.s3_config,
            "any (v1.0.0 default)" if p.open_tables and not p.tables else len(p.tables),
            p.settings.schedule.cron if p.settings.schedule else "",
            p.file or "(from environment variables)",
        )
        for p in sorted(project.pipelines.values(), key=lambda p: p.name)
    ]
    output.table("Pipelines", ["pipeline", "source", "target", "staging", "tables", "schedule", "file"], rows)


def _pipeline(ctx: CliContext, name: str) -> Pipeline:
    project = ctx.project()
    if name not in project.pipelines:
        known = ", ".join(sorted(project.pipelines)) or "none"
        click.echo(f"pipeline `{name}` not found in {ctx.config_dir / 'pipelines'} (known: {known})", err=True)
        raise SystemExit(ExitCode.CONFIG)
    return project.pipelines[name]


def _table_row(spec: TableSpec) -> tuple[object, ...]:
    cfg = spec.config
    cursor = ", ".join(c for c in (cfg.cdc_timestamp_column, cfg.cdc_id_column) if c)
    mode = cfg.full_sync_mode if cfg.cdc_strategy == "full_sync" else cfg.write_mode or "merge by key / append"
    return (spec.name, cfg.cdc_strategy, cursor, f"{spec.target_schema}.{spec.target_table}", mode, spec.page_rows)


@config_group.command("show-pipeline")
@click.argument("pipeline")
@click.option("-v", "--verbose", is_flag=True, help="Show every resolved table setting.")
@pass_cli
def show_pipeline(ctx: CliContext, pipeline: str, verbose: bool) -> None:
    """Show a pipeline's connections, staging and tables as resolved (templates and environment applied)."""
    p = _pipeline(ctx, pipeline)
    s = p.settings
    click.echo(f"Pipeline {s.name}  ({p.file or 'generated from environment variables'})")
    if s.description:
        click.echo(f"  {s.description}")
    click.echo(
        f"  source {s.source} -> staging {s.s3_config} (prefix {s.s3.isolation_prefix or s.name}) -> target {s.target}"
    )
    click.echo(f"  environment: {p.environment or 'none applied'}; page rows {s.processing.batch_size}")
    if s.schedule:
        click.echo(f"  schedule: {s.schedule.cron} ({s.schedule.timezone})")
    output.table(
        "Tables",
        ["table", "strategy", "cursor", "target", "write", "page rows"],
        [_table_row(t) for t in p.tables.values()],
    )
    if verbose:
        for spec in p.tables.values():
            click.echo(f"\n{spec.name}:")
            resolved = spec.config.model_dump(mode="json", exclude_none=True, exclude_defaults=False)
            click.echo(yaml.safe_dump(resolved, sort_keys=True, default_flow_style=False).rstrip())


@config_group.command("validate-pipeline")
@click.argument("pipeline")
@click.option("-v", "--verbose", is_flag=True, help="Also list each table's resolved strategy.")
@pass_cli
def validate_pipeline(ctx: CliContext, pipeline: str, verbose: bool) -> None:
    """Validate one pipeline (and the connections it uses); every problem is listed with its fix."""
    project, problems = read_project(ctx.config_dir)
    pipeline_file = _pipeline_file(ctx.config_dir, pipeline)
    relevant = [
        p
        for p in problems
        if p.file is None
        or p.file == pipeline_file
        or p.file.parent.name in ("templates", "tables", "environments")
        or p.file.name.startswith("connections")
    ]
    if project is not None and pipeline in project.pipelines:
        relevant += _query_problems(project.pipelines[pipeline])
    if relevant:
        click.echo(f"pipeline {pipeline}: {len(relevant)} problem(s)", err=True)
        for problem in relevant:
            click.echo(f"- {problem}", err=True)
        raise SystemExit(ExitCode.CONFIG)
    if project is None or pipeline not in project.pipelines:
        known = ", ".join(sorted(project.pipelines)) if project else "none"
        click.echo(f"pipeline `{pipeline}` not found (known: {known})", err=True)
        raise SystemExit(ExitCode.CONFIG)
    p = project.pipelines[pipeline]
    output.ok(
        f"pipeline {pipeline} is valid: {len(p.tables)} table(s), source {p.settings.source}, "
        f"target {p.settings.target}, staging {p.settings.s3_config}"
    )
    if verbose:
        output.table(
            None,
            ["table", "strategy", "cursor", "target", "write", "page rows"],
            [_table_row(t) for t in p.tables.values()],
        )


def _query_problems(pipeline: Pipeline) -> list[ConfigProblem]:
    """Each ``custom_query`` the engine would refuse (not one read-only SELECT), found without a connection."""
    problems = []
    for name, spec in pipeline.tables.items():
        query = spec.config.custom_query
        if query is None:
            continue
        try:
            check_custom_query(query)
        except PlanError as exc:
            problems.append(
                ConfigProblem(
                    pipeline.file,
                    key_path(("tables", name, "custom_query")),
                    str(exc),
                    "write one SELECT that only reads, with placeholders such as {table_name} and {last_id}",
                )
            )
    return problems


def _pipeline_file(config_dir: Path, name: str) -> Path | None:
    for suffix in (".yml", ".yaml"):
        path = config_dir / "pipelines" / f"{name}{suffix}"
        if path.exists():
            return path
    return None


@config_group.command("status")
@pass_cli
def status(ctx: CliContext) -> None:
    """Summarise the configuration: where it is read from, what it defines, and any problems."""
    project, problems = read_project(ctx.config_dir)
    click.echo(f"Configuration directory: {ctx.config_dir.resolve()}")
    if project is not None:
        mode = "connections.yml" if project.mode == "yaml" else "v1.0.0 environment variables (.env)"
        conns = project.connections
        click.echo(f"Mode: {mode}")
        click.echo(f"Environment: {project.environment or 'none applied'}")
        click.echo(
            f"Sources: {', '.join(conns.connections.sources) or 'none'}; "
            f"targets: {', '.join(conns.connections.targets) or 'none'}; "
            f"staging: {', '.join(conns.s3_configs) or 'none'}"
        )
        tables = sum(len(p.tables) for p in project.pipelines.values())
        click.echo(f"Pipelines: {len(project.pipelines)} ({', '.join(sorted(project.pipelines))}); tables: {tables}")
    if problems:
        click.echo(f"{len(problems)} problem(s):", err=True)
        for problem in problems:
            click.echo(f"- {problem}", err=True)
        raise SystemExit(ExitCode.CONFIG)
    output.ok("configuration is valid")
