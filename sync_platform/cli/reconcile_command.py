"""``sync-platform reconcile -t T [-p P] [--repair]``: prove the target equals the source, and repair it.

A thin adapter over :func:`sync_platform.engine.reconcile.reconcile_table`. Exit 0 when the target
is exact (or was made exact), 4 when differences remain (e.g. deletes in ``report`` mode, or lost
rows without ``--repair``).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from sync_platform.cli import output
from sync_platform.cli.context import CliContext, pass_cli
from sync_platform.cli.exit_codes import ExitCode, exit_code_for
from sync_platform.cli.tables import resolve_table
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.reconcile import ReconcileError, ReconcileOptions, reconcile_table


@click.command("reconcile")
@click.option("-t", "--table", "table", required=True, help="schema.table (or CONN:schema.table), as configured.")
@click.option("-p", "--pipeline", help="The pipeline the table belongs to (auto-detected when unique).")
@click.option(
    "--repair/--no-repair",
    default=None,
    help="Re-load lost and changed rows (default: the table's `repair`). Deleted rows follow `deletes` / --deletes.",
)
@click.option(
    "--deletes",
    type=click.Choice(["hard", "soft", "report"]),
    help="What to do with rows deleted at the source (default: the table's `deletes`, else report).",
)
@click.option("--rows-per-second", type=float, help="Pace source reads (default: the pipeline's reconcile setting).")
@click.option("--json-output", type=click.Path(dir_okay=False, path_type=Path), help="Write the result as JSON.")
@pass_cli
def reconcile(
    ctx: CliContext,
    table: str,
    pipeline: str | None,
    repair: bool | None,
    deletes: str | None,
    rows_per_second: float | None,
    json_output: Path | None,
) -> None:
    """Compare a table with its source by checksummed key ranges; report (and repair) what differs.

    Exits 0 when the target equals the source (after any repair), 4 when differences remain.
    """
    project = ctx.project()
    spec = resolve_table(project, table, pipeline)
    settings = project.pipelines[spec.pipeline].settings.reconcile if spec.pipeline in project.pipelines else None
    options = ReconcileOptions(
        repair=repair,
        deletes=deletes,  # type: ignore[arg-type]
        range_rows=settings.range_rows if settings else ReconcileOptions.range_rows,
        rows_per_second=rows_per_second or (settings.rows_per_second if settings else None),
        sleep_seconds=settings.sleep_seconds if settings else 0.0,
    )
    with ConnectionRegistry(project.connections, project.config_dir) as registry:
        try:
            result = reconcile_table(registry, spec, options, progress=None if ctx.quiet else click.echo)
        except ReconcileError as exc:
            _write(json_output, {"table": spec.identity, "status": "failed", "error": str(exc)})
            output.fail(str(exc))
            raise SystemExit(ExitCode.CONFIG) from None
        except Exception as exc:
            message = registry.mask(str(exc)) or type(exc).__name__
            _write(json_output, {"table": spec.identity, "status": "failed", "error": message})
            output.fail(f"{spec.identity}: {message}")
            raise SystemExit(exit_code_for(exc)) from None
    data = {**result.as_dict(), "status": "success" if result.exact else "differences"}
    _write(json_output, data)
    for kind, keys in result.samples.items():
        click.echo(f"  {kind}: {', '.join(keys)}" + (" …" if len(keys) >= 10 else ""))
    if result.exact:
        output.ok(f"{spec.identity}: the target equals the source")
        return
    hint = []
    if not result.repair and (result.missing or result.changed):
        hint.append("--repair re-loads lost and changed rows")
    if result.deletes == "report" and result.extra:
        hint.append("`deletes: hard | soft` (or --deletes) removes rows deleted at the source")
    output.fail(f"{spec.identity}: {result.remaining:,} differences remain" + (f" ({'; '.join(hint)})" if hint else ""))
    raise SystemExit(ExitCode.DATA)


def _write(path: Path | None, data: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(data, indent=2, default=str))
