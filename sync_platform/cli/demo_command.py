"""``demo``: seed a small shop in the local MariaDB and sync it into the local PostgreSQL through Dagster."""

from __future__ import annotations

import os

import click

from sync_platform.cli import output
from sync_platform.cli.context import CliContext, pass_cli
from sync_platform.cli.exit_codes import ExitCode
from sync_platform.cli.run_progress import RunProgress
from sync_platform.cli.sync_commands import SyncRequest, exit_code, summary
from sync_platform.demo import prepare_source, prepare_target
from sync_platform.orchestration.instance import cli_instance
from sync_platform.orchestration.launch import run_tables

DEMO_PIPELINE = "shop"
UI_PORT = 3000
UI_URL = f"http://127.0.0.1:{UI_PORT}"


def run_url(run_id: str) -> str:
    """Where the Dagster UI (``dagster dev`` on its default port) shows one run."""
    return f"{UI_URL}/runs/{run_id}"


@click.command("demo")
@click.option("--pipeline", default=DEMO_PIPELINE, show_default=True, help="The local pipeline to run.")
@pass_cli
def demo(ctx: CliContext, pipeline: str) -> None:
    """Create (first run) or change (later runs) the demo shop in MariaDB, then sync it to PostgreSQL.

    The sync is a Dagster run in the persistent instance (DAGSTER_HOME): it shows in the UI, and each
    run resumes from the watermarks the previous one stored, so a second run reads only what changed.
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
    specs = list(project.pipelines[pipeline].tables.values())
    instance = cli_instance()
    with RunProgress(specs, quiet=ctx.quiet) as progress:
        outcome = run_tables(project, specs, instance=instance, trigger="demo", progress=progress.update)
        progress.finish(outcome)
    summary(outcome, SyncRequest())
    target = conns.targets[settings.target]
    home = os.environ["DAGSTER_HOME"]
    click.echo(
        f"Target: {target.database} on {target.host}:{target.effective_port}, schema {target.schema_} "
        f"(psql -h {target.host} -U {target.username} {target.database})."
    )
    click.echo(
        f"The run is in the Dagster instance at {home}. See it in the UI:\n"
        f"  DAGSTER_HOME={home} SYNC_PLATFORM_CONFIG_DIR={project.config_dir.resolve()} "
        f"dagster dev -m sync_platform.definitions -p {UI_PORT}\n"
        f"  then open {run_url(outcome.run_id)} (this run), or {UI_URL}/asset-groups (the asset graph)"
    )
    click.echo("Run `sync-platform demo` again: the source changes a little and the sync is incremental.")
    if outcome.failed:
        output.fail("some tables failed; see above")
    raise SystemExit(exit_code(outcome))
