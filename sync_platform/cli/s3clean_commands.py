"""``s3clean``: list and remove staged batches that are loaded and past retention."""

from __future__ import annotations

import datetime as dt

import click

from sync_platform.cli import output
from sync_platform.cli.context import CliContext, pass_cli
from sync_platform.cli.exit_codes import ExitCode, exit_code_for
from sync_platform.cli.tables import resolve_table
from sync_platform.configuration import ConfigError, TableSpec
from sync_platform.configuration.models import parse_duration
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.cleanup import StagedBatch, delete_batches, inventory, select_for_deletion


def _older_than(value: str | None, spec: TableSpec, ctx: CliContext) -> dt.timedelta:
    if value is None:
        days = ctx.project().pipelines[spec.pipeline].settings.s3.retention_days
        return dt.timedelta(days=days)
    try:
        return dt.timedelta(seconds=parse_duration(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None


def _specs(ctx: CliContext, tables: tuple[str, ...], pipeline: str | None) -> list[TableSpec]:
    project = ctx.project()
    try:
        if tables:
            return [resolve_table(project, t, pipeline) for t in tables]
        names = [pipeline] if pipeline else sorted(project.pipelines)
        return [spec for name in names for spec in project.pipelines[name].tables.values()]
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(ExitCode.CONFIG) from None
    except KeyError:
        click.echo(f"pipeline `{pipeline}` not found", err=True)
        raise SystemExit(ExitCode.CONFIG) from None


def _rows(spec: TableSpec, batches: list[StagedBatch], timestamps: bool) -> list[tuple[object, ...]]:
    return [
        (
            spec.identity,
            b.batch_id,
            b.state,
            b.files,
            f"{b.bytes / 1e6:.1f}",
            "" if b.rows is None else f"{b.rows:,}",
            b.created_at.isoformat(sep=" ", timespec="seconds") if timestamps else "",
        )
        for b in batches
    ]


@click.group("s3clean")
def s3clean_group() -> None:
    """List and remove staged batches (only loaded ones, unless --force)."""


@s3clean_group.command("list")
@click.option("-t", "--table", "tables", multiple=True, help="schema.table (or CONN:schema.table); default: all.")
@click.option("-p", "--pipeline", help="The pipeline the table belongs to (auto-detected when unique).")
@click.option("--show-timestamps", is_flag=True)
@pass_cli
def list_batches(ctx: CliContext, tables: tuple[str, ...], pipeline: str | None, show_timestamps: bool) -> None:
    """Staged batches per table: loaded (safe to clean), pending (not loaded yet) or unmanifested (leftover)."""
    project = ctx.project()
    rows: list[tuple[object, ...]] = []
    with ConnectionRegistry(project.connections, project.config_dir) as registry:
        for spec in _specs(ctx, tables, pipeline):
            rows += _rows(spec, inventory(registry, spec), show_timestamps)
    output.table("Staged batches", ["table", "batch", "state", "files", "MB", "rows", "created"], rows)


def _clean(
    ctx: CliContext,
    specs: list[TableSpec],
    older_than: str | None,
    pattern: str | None,
    dry_run: bool,
    force: bool,
    yes: bool,
) -> None:
    project = ctx.project()
    total = 0
    with ConnectionRegistry(project.connections, project.config_dir) as registry:
        for spec in specs:
            try:
                batches = inventory(registry, spec)
                chosen = select_for_deletion(
                    batches, older_than=_older_than(older_than, spec, ctx), pattern=pattern, force=force
                )
            except Exception as exc:
                click.echo(f"{spec.identity}: {registry.mask(str(exc))}", err=True)
                raise SystemExit(exit_code_for(exc)) from None
            pending = [b for b in chosen if b.state == "pending"]
            kept = [b for b in batches if b.state == "pending" and b not in chosen]
            if kept:
                click.echo(
                    f"{spec.identity}: keeping {len(kept)} batch(es) not loaded yet "
                    "(load them first, or --force to delete them anyway)"
                )
            if not chosen:
                continue
            verb = "would delete" if dry_run else "deleting"
            for batch in chosen:
                click.echo(f"{spec.identity}: {verb} {batch.batch_id} ({batch.state}, {batch.files} files)")
            if dry_run:
                continue
            if (
                pending
                and not yes
                and not output.confirm(
                    f"{len(pending)} of these batches are NOT loaded: their rows exist nowhere else. Delete them?"
                )
            ):
                raise SystemExit(ExitCode.OK)
            total += delete_batches(registry.staging(spec.staging), chosen)
    click.echo(f"{'dry run: nothing deleted' if dry_run else f'{total} object(s) deleted'}")


@s3clean_group.command("clean")
@click.option("-t", "--table", "tables", multiple=True, required=True, help="schema.table (or CONN:schema.table).")
@click.option("-p", "--pipeline", help="The pipeline the table belongs to (auto-detected when unique).")
@click.option("--older-than", help="Age, e.g. 7d, 24h, 30m (default: the pipeline's s3.retention_days).")
@click.option("--pattern", help="Only batch ids matching this glob, e.g. '20261124*'.")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted.")
@click.option("--force", is_flag=True, help="Also delete batches that are NOT loaded yet (their only copy).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting batches that are not loaded.")
@click.option("--show-timestamps", is_flag=True, hidden=True)
@click.option("--simple-delete", is_flag=True, hidden=True, help="Accepted for compatibility.")
@pass_cli
def clean(
    ctx: CliContext,
    tables: tuple[str, ...],
    pipeline: str | None,
    older_than: str | None,
    pattern: str | None,
    dry_run: bool,
    force: bool,
    yes: bool,
    show_timestamps: bool,
    simple_delete: bool,
) -> None:
    """Delete a table's loaded batches older than the retention (and crash leftovers)."""
    _clean(ctx, _specs(ctx, tables, pipeline), older_than, pattern, dry_run, force, yes)


@s3clean_group.command("clean-all")
@click.option("-p", "--pipeline", help="Only this pipeline (default: every pipeline).")
@click.option("--older-than", help="Age, e.g. 7d, 24h, 30m (default: each pipeline's s3.retention_days).")
@click.option("--pattern", help="Only batch ids matching this glob.")
@click.option("--dry-run", is_flag=True)
@click.option("--force", is_flag=True, help="Also delete batches that are NOT loaded yet.")
@click.option("-y", "--yes", is_flag=True)
@pass_cli
def clean_all(
    ctx: CliContext,
    pipeline: str | None,
    older_than: str | None,
    pattern: str | None,
    dry_run: bool,
    force: bool,
    yes: bool,
) -> None:
    """Clean every table of a pipeline (or of every pipeline)."""
    _clean(ctx, _specs(ctx, (), pipeline), older_than, pattern, dry_run, force, yes)
