"""``demo``: seed a small shop in the local MariaDB and sync it into the local PostgreSQL."""

from __future__ import annotations

import click

from sync_platform.cli import output
from sync_platform.cli.context import CliContext, pass_cli
from sync_platform.cli.exit_codes import ExitCode, exit_code_for
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.demo import prepare_source, prepare_target
from sync_platform.engine.sync import sync_table
from sync_platform.engine.watermark import Watermark

DEMO_PIPELINE = "shop"


@click.command("demo")
@click.option("--pipeline", default=DEMO_PIPELINE, show_default=True, help="The local pipeline to run.")
@pass_cli
def demo(ctx: CliContext, pipeline: str) -> None:
    """Create (first run) or change (later runs) the demo shop in MariaDB, then sync it to PostgreSQL.

    Each run resumes where the previous one ended (from the staged manifests), so a second run is
    incremental: it reads only the rows changed since.
    """
    project = ctx.project()
    if pipeline not in project.pipelines:
        click.echo(f"pipeline `{pipeline}` is not in {ctx.config_dir / 'pipelines'}; the demo uses config/", err=True)
        raise SystemExit(ExitCode.CONFIG)
    settings = project.pipelines[pipeline].settings
    conns = project.connections.connections
    try:
        prepare_source(conns.sources[settings.source], say=click.echo)
        prepare_target(conns.targets[settings.target])
    except Exception as exc:
        click.echo(f"demo: cannot prepare the local databases: {exc}", err=True)
        raise SystemExit(ExitCode.CONNECTION) from None
    rows, failures = [], 0
    last_error: BaseException | None = None

    def progress(message: str) -> None:
        if not ctx.quiet:
            click.echo(message)

    with ConnectionRegistry(project.connections, project.config_dir) as registry:
        for name, spec in project.pipelines[pipeline].tables.items():
            try:
                result = sync_table(registry, spec, Watermark(), progress=progress)
            except Exception as exc:
                failures += 1
                click.echo(f"FAILED {name}: {registry.mask(str(exc))}", err=True)
                last_error = exc
                continue
            assert result.extract is not None and result.load is not None
            e, loaded = result.extract, result.load
            rows.append(
                (
                    name,
                    e.strategy,
                    f"{e.rows:,}",
                    f"{loaded.rows:,}",
                    f"{loaded.target_rows or 0:,}",
                    e.null_cursor_rows,
                    sum(e.zero_dates.values()),
                    f"{e.seconds + loaded.seconds:.1f}",
                )
            )
    output.table(
        f"Pipeline {pipeline}: {settings.source} -> {settings.target}",
        ["table", "strategy", "read", "loaded", "rows in target", "NULL cursor", "zero dates", "seconds"],
        rows,
    )
    target = conns.targets[settings.target]
    click.echo(
        f"Target: {target.database} on {target.host}:{target.effective_port}, schema {target.schema_} "
        f"(psql -h {target.host} -U {target.username} {target.database})."
    )
    click.echo("Run `sync-platform demo` again: the source changes a little and the sync is incremental.")
    if failures:
        raise SystemExit(ExitCode.PARTIAL if rows or last_error is None else exit_code_for(last_error))
