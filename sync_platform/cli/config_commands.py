"""``config``: set up, list, show, validate and summarise the YAML configuration."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
import yaml

from sync_platform.cli import output
from sync_platform.cli.context import CliContext, pass_cli
from sync_platform.cli.exit_codes import ExitCode
from sync_platform.configuration import compat
from sync_platform.configuration.compat import IgnoredKey
from sync_platform.configuration.errors import ConfigProblem, key_path
from sync_platform.configuration.loader import read_configuration
from sync_platform.configuration.project import ConfigurationRead, Pipeline, TableSpec
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
    project = ctx.project(pipeline=name)
    found = project.pipeline_name(name)
    if found is None:
        known = ", ".join(sorted({*project.pipelines, *project.aliases})) or "none"
        click.echo(f"pipeline `{name}` not found in {ctx.config_dir / 'pipelines'} (known: {known})", err=True)
        raise SystemExit(ExitCode.CONFIG)
    return project.pipelines[found]


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
@click.option("-v", "--verbose", is_flag=True, help="Also list each table and every accepted-but-ignored key.")
@click.option("--strict", is_flag=True, help="Unknown keys are errors (also SYNC_PLATFORM_STRICT=1).")
@pass_cli
def validate_pipeline(ctx: CliContext, pipeline: str, verbose: bool, strict: bool) -> None:
    """Validate one pipeline (by pipeline.name or file name) and the shared files it uses.

    Problems of other pipeline files do not count: each is one warning line.
    """
    read = read_configuration(ctx.config_dir)
    strict = strict or bool(ctx.strict) or _strict_setting(read)
    project = read.project
    file = _file_of(ctx.config_dir, read, pipeline)
    name = project.pipeline_name(pipeline) if project else None
    p = project.pipelines[name] if project and name else None
    errors = list(read.shared_problems) + (read.broken.get(file, []) if file else [])
    shared_files = {w.file for w in (project.warnings if project else [])}
    warnings = [w for w in read.warnings if w.file in shared_files or (file is not None and w.file == file)]
    if p is not None:
        warnings = _unique([*project.warnings, *p.warnings])  # type: ignore[union-attr]
    others = sorted(f.name for f in read.broken if f != file)
    if others:
        listed = ", ".join(others)
        click.echo(f"note: {len(others)} other pipeline file(s) have problems of their own: {listed}", err=True)
    for warning in warnings:
        click.echo(str(warning), err=True)
    if strict:
        errors += [replace(w, severity="error") for w in warnings if w.severity == "warning"]
    if p is not None:
        errors += _query_problems(p)
    if errors:
        click.echo(f"pipeline {pipeline}: {len(errors)} problem(s)", err=True)
        for problem in errors:
            click.echo(f"- {problem}", err=True)
        raise SystemExit(ExitCode.CONFIG)
    if p is None:
        known = ", ".join(sorted({*project.pipelines, *project.aliases})) if project else "none"
        click.echo(f"pipeline `{pipeline}` not found (known, by name or file name: {known})", err=True)
        raise SystemExit(ExitCode.CONFIG)
    output.ok(
        f"pipeline {p.name} is valid ({p.file}): {len(p.tables)} table(s), source {p.settings.source}, "
        f"target {p.settings.target}, staging {p.settings.s3_config}"
        + (f"; {count} warning(s)" if (count := sum(w.severity == "warning" for w in warnings)) else "")
    )
    if verbose:
        output.table(
            None,
            ["table", "strategy", "cursor", "target", "write", "page rows"],
            [_table_row(t) for t in p.tables.values()],
        )
        notes = [i for i in read.ignored if i.file is not None and _serves(i.file, p)]
        _print_keys("Read in the older tool's shapes", [i for i in notes if i.kind == "translated"])
        _print_keys("Accepted and ignored (as the older tool ignored them)", [i for i in notes if i.kind == "ignored"])


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


def _print_keys(title: str, keys: list[IgnoredKey]) -> None:
    """One row per key and reason (a default_table_config key reaches every table: shown once)."""
    if not keys:
        return
    rows: dict[tuple[str, str], list[str]] = {}
    for item in keys:
        short = item.key.rsplit(".", 1)[-1] if item.key.startswith("tables.") else item.key
        where = "every table" if item.key.startswith("tables.") else ""
        rows.setdefault((short, item.reason), []).append(where or item.key)
    click.echo(f"\n{title}:")
    for (key, reason), places in sorted(rows.items()):
        count = len(places)
        scope = f" ({count} table entries)" if count > 1 and places[0] == "every table" else ""
        click.echo(f"  {key}{scope}: {reason}")


def _serves(file: Path, pipeline: Pipeline) -> bool:
    """Whether ``file`` is the pipeline's own or one every pipeline shares."""
    shared = file.name.startswith("connections") or file.parent.name in ("environments", "templates", "tables")
    return file == pipeline.file or shared


def _unique(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    seen: dict[tuple[object, ...], ConfigProblem] = {}
    for problem in problems:
        seen.setdefault((problem.file, problem.key, problem.message), problem)
    return list(seen.values())


def _strict_setting(read: ConfigurationRead) -> bool:
    return compat.strict_from_environment() or bool(read.project and read.project.connections.strict)


def _file_of(config_dir: Path, read: ConfigurationRead, name: str) -> Path | None:
    """The pipeline file ``name`` means: its pipeline.name, its file name, or its file name without _pipeline."""
    project = read.project
    if project is not None:
        pipeline = project.pipelines.get(project.pipeline_name(name) or "")
        if pipeline is not None:
            return pipeline.file
        if project.broken_file(name) is not None:
            return project.broken_file(name)
    for stem in (name, f"{name}_pipeline"):
        for suffix in (".yml", ".yaml"):
            for folder in (config_dir / "pipelines", config_dir):
                path = folder / f"{stem}{suffix}"
                if path in read.broken or (folder.name == "pipelines" and path.exists()):
                    return path
    return None


@config_group.command("status")
@click.option("--strict", is_flag=True, help="Unknown keys are errors (also SYNC_PLATFORM_STRICT=1).")
@pass_cli
def status(ctx: CliContext, strict: bool) -> None:
    """Summarise the configuration: where it is read from, what it defines, and any problems and warnings."""
    read = read_configuration(ctx.config_dir)
    strict = strict or bool(ctx.strict) or _strict_setting(read)
    project = read.project
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
        if project.broken:
            click.echo(f"Pipeline files not loaded: {', '.join(str(f) for f in sorted(project.broken))}")
    warnings = read.warnings
    if warnings:
        click.echo(f"{len(warnings)} warning(s){' (errors: --strict)' if strict else ''}:", err=True)
        for warning in warnings:
            click.echo(f"- {warning}", err=True)
    problems = read.problems
    if problems:
        click.echo(f"{len(problems)} problem(s):", err=True)
        for problem in problems:
            click.echo(f"- {problem}", err=True)
    if problems or (strict and warnings):
        raise SystemExit(ExitCode.CONFIG)
    output.ok("configuration is valid" + (f" ({len(warnings)} warning(s))" if warnings else ""))
