"""``cdc`` (strategies, test-strategy, validate, validate-pipeline) and ``column-mappings`` (list, show, clear).

Both read the real source table and change nothing: the SQL shown is the engine's own plan
(``engine.explain``), the checks are ``engine.cdc_readiness``, and column mappings are the type
map's renames (``engine.typemap``), derived from the source schema on every run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import click
import pydantic

from sync_platform.cli import output
from sync_platform.cli.context import CliContext, pass_cli
from sync_platform.cli.exit_codes import ExitCode, exit_code_for
from sync_platform.cli.strategy_guide import echo_guides
from sync_platform.cli.tables import resolve_table
from sync_platform.configuration import ConfigError, TableSpec
from sync_platform.configuration.models import CDC_STRATEGIES, TableConfig
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.cdc_readiness import CdcReport, check_table
from sync_platform.engine.explain import ColumnExplanation, column_explanations, explain_table
from sync_platform.engine.shape import read_table_shape
from sync_platform.engine.source_schema import SourceTableNotFound
from sync_platform.engine.sync import RunOptions
from sync_platform.engine.watermark import Watermark
from sync_platform.warehouse import dialect_for

NOTHING_STORED = (
    "nothing is stored: column mappings are derived from the source schema on every run "
    "(sync_platform/engine/typemap.py), so there is nothing to clear"
)


def _exit(message: str, code: ExitCode) -> NoReturn:
    click.echo(message, err=True)
    raise SystemExit(code)


def _exit_for(error: BaseException, registry: ConnectionRegistry, table: str) -> NoReturn:
    """Report a planning error (masked) and exit with its class's code."""
    code = ExitCode.CONFIG if isinstance(error, SourceTableNotFound) else exit_code_for(error)
    text = registry.mask(str(error))
    _exit(text if table.rpartition(":")[2] in text else f"{table}: {text}", code)


@contextmanager
def _registry(ctx: CliContext) -> Iterator[ConnectionRegistry]:
    project = ctx.project()
    with ConnectionRegistry(project.connections, project.config_dir) as registry:
        yield registry


def _unknown_pipeline(ctx: CliContext, pipeline: str) -> NoReturn:
    known = ", ".join(sorted(ctx.project().pipelines)) or "none"
    _exit(f"pipeline `{pipeline}` not found (pipelines: {known})", ExitCode.CONFIG)


def _spec(ctx: CliContext, table: str, pipeline: str | None) -> TableSpec:
    try:
        return resolve_table(ctx.project(), table, pipeline)
    except ConfigError as exc:
        _exit(str(exc), ExitCode.CONFIG)


def with_cdc_settings(
    spec: TableSpec,
    *,
    strategy: str | None = None,
    timestamp_column: str | None = None,
    id_column: str | None = None,
    custom_query: str | None = None,
    batch_size: int | None = None,
) -> TableSpec:
    """``spec`` with CDC settings from the command line, validated like the YAML (ValueError if invalid)."""
    updates: dict[str, object] = {}
    if strategy is not None:
        if strategy not in CDC_STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose one of: {', '.join(CDC_STRATEGIES)}")
        updates["cdc_strategy"] = strategy
        # Settings that belong to another strategy would make the combination invalid.
        if strategy != "custom_sql":
            updates["custom_query"] = None
        if strategy != "full_sync":
            updates["full_sync_mode"] = None
    for key, value in (
        ("cdc_timestamp_column", timestamp_column),
        ("cdc_id_column", id_column),
        ("custom_query", custom_query),
    ):
        if value is not None:
            updates[key] = value
    try:
        config = TableConfig.model_validate({**spec.config.model_dump(), **updates})
    except pydantic.ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ValueError(problems) from None
    return dataclasses.replace(spec, config=config, page_rows=batch_size or spec.page_rows)


def _overridden(ctx: CliContext, table: str, pipeline: str | None, **settings: object) -> TableSpec:
    try:
        return with_cdc_settings(_spec(ctx, table, pipeline), **settings)  # type: ignore[arg-type]
    except ValueError as exc:
        _exit(f"{table}: {exc}", ExitCode.CONFIG)


# --------------------------------------------------------------------------- cdc


@click.group("cdc")
def cdc_group() -> None:
    """CDC strategies: explain them, try one on a table, validate a table's or pipeline's settings."""


@cdc_group.command("strategies")
def strategies() -> None:
    """Each strategy: what it reads, what it needs, when to use it."""
    echo_guides()


@cdc_group.command("test-strategy")
@click.option("-t", "--table", "table", required=True, help="schema.table (or CONN:schema.table).")
@click.option("-s", "--strategy", required=True, help=f"One of: {', '.join(CDC_STRATEGIES)}.")
@click.option("--timestamp-column", help="cdc_timestamp_column to try.")
@click.option("--id-column", help="cdc_id_column to try.")
@click.option("--custom-query", help="custom_query to try (custom_sql; a single SELECT).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Rows per page (default: the table's batch_size).")
@click.option("--dry-run", is_flag=True, help="Only print the SQL; do not run the page queries to count rows.")
@click.option("-p", "--pipeline", help="The pipeline the table belongs to (auto-detected when unique).")
@pass_cli
def test_strategy(
    ctx: CliContext,
    table: str,
    strategy: str,
    timestamp_column: str | None,
    id_column: str | None,
    custom_query: str | None,
    batch_size: int | None,
    dry_run: bool,
    pipeline: str | None,
) -> None:
    """Print the first-run and incremental SQL a strategy would send for the table (nothing is changed)."""
    spec = _overridden(
        ctx,
        table,
        pipeline,
        strategy=strategy,
        timestamp_column=timestamp_column,
        id_column=id_column,
        custom_query=custom_query,
        batch_size=batch_size,
    )
    with _registry(ctx) as registry:
        try:
            explanation = explain_table(registry, spec, Watermark(), RunOptions())
        except Exception as exc:
            _exit_for(exc, registry, spec.identity)
        for line in explanation.lines():
            click.echo(line)
        if dry_run:
            return
        # Running each page as a COUNT proves the SQL is valid on this server, still reading only.
        pages = {
            "first run, first page": explanation.first_run_sql,
            "incremental, first page": explanation.incremental_sql,
        }
        with registry.source(spec.source).connect() as conn, conn.cursor() as cursor:
            for label, statements in pages.items():
                try:
                    cursor.execute(f"SELECT COUNT(*) FROM ({statements[-1]}) AS page")
                    (rows,) = cursor.fetchone()
                except Exception as exc:
                    _exit_for(exc, registry, f"{spec.identity} ({label})")
                output.ok(f"{label}: {rows:,} row(s) now")


def _print_report(report: CdcReport) -> None:
    for finding in report.findings:
        if finding.level == "ok":
            output.ok(f"{report.table}: {finding.message}")
        elif finding.level == "warning":
            click.echo(f"WARNING {report.table}: {finding.message}")
        else:
            output.fail(f"{report.table}: {finding.message}")


def _check(registry: ConnectionRegistry, spec: TableSpec) -> tuple[CdcReport, ExitCode]:
    """The table's report and the exit code it calls for (a source that cannot be reached is not a config error)."""
    try:
        report = check_table(registry, spec)
    except Exception as exc:
        report = CdcReport(spec.identity, spec.config.cdc_strategy)
        report.add("error", registry.mask(str(exc)))
        return report, exit_code_for(exc)
    return report, ExitCode.OK if report.ok else ExitCode.CONFIG


@cdc_group.command("validate")
@click.option("-t", "--table", "table", required=True, help="schema.table (or CONN:schema.table).")
@click.option("-p", "--pipeline", help="The pipeline the table belongs to (auto-detected when unique).")
@click.option("-s", "--strategy", help="Validate this strategy instead of the configured one.")
@click.option("--timestamp-column", help="Validate this cdc_timestamp_column instead.")
@click.option("--id-column", help="Validate this cdc_id_column instead.")
@click.option("--dry-run", is_flag=True, hidden=True, help="Accepted for compatibility: validation only reads.")
@pass_cli
def validate(
    ctx: CliContext,
    table: str,
    pipeline: str | None,
    strategy: str | None,
    timestamp_column: str | None,
    id_column: str | None,
    dry_run: bool,
) -> None:
    """Check that the table's CDC columns exist, are indexed (warning if not) and have usable types."""
    spec = _overridden(ctx, table, pipeline, strategy=strategy, timestamp_column=timestamp_column, id_column=id_column)
    with _registry(ctx) as registry:
        report, code = _check(registry, spec)
    _print_report(report)
    if code != ExitCode.OK:
        raise SystemExit(code)
    click.echo(f"{report.table}: valid ({len(report.warnings)} warning(s))")


@cdc_group.command("validate-pipeline")
@click.option("-p", "--pipeline", required=True, help="The pipeline to validate.")
@click.option("-o", "--output", "output_file", type=click.Path(dir_okay=False, path_type=Path), help="Write JSON.")
@pass_cli
def validate_pipeline(ctx: CliContext, pipeline: str, output_file: Path | None) -> None:
    """Validate the CDC settings of every enabled table of a pipeline against its source tables."""
    project = ctx.project(pipeline=pipeline)
    pipeline = project.pipeline_name(pipeline) or pipeline  # a file name, as the older tool took it
    if pipeline not in project.pipelines:
        _unknown_pipeline(ctx, pipeline)
    specs = [s for s in project.pipelines[pipeline].tables.values() if s.config.enabled]
    reports, codes = [], []
    with _registry(ctx) as registry:
        for spec in specs:
            report, code = _check(registry, spec)
            _print_report(report)
            reports.append(report)
            codes.append(code)
    if output_file is not None:
        output_file.write_text(json.dumps({"pipeline": pipeline, "tables": [r.as_dict() for r in reports]}, indent=2))
    failed = [r for r in reports if not r.ok]
    click.echo(f"pipeline {pipeline}: {len(reports) - len(failed)} of {len(reports)} table(s) valid")
    if failed:
        # A source that cannot be reached says more than "invalid": report that class first.
        raise SystemExit(ExitCode.CONNECTION if ExitCode.CONNECTION in codes else max(codes))


# --------------------------------------------------------------------------- column-mappings


def _column_mappings(registry: ConnectionRegistry, spec: TableSpec) -> tuple[ColumnExplanation, ...]:
    """The table's columns as the next run maps them (source schema → warehouse names and types)."""
    shape = read_table_shape(registry, spec)
    return column_explanations(shape.mapping, dialect_for(registry.warehouse(spec.target).dialect))


@click.group("column-mappings")
def column_mappings_group() -> None:
    """Source column -> warehouse column names and types (derived from the schema on every run)."""


@column_mappings_group.command("list")
@click.option("-p", "--pipeline", help="Only this pipeline (default: every pipeline).")
@pass_cli
def list_mappings(ctx: CliContext, pipeline: str | None) -> None:
    """Every renamed column of every table (names the warehouse cannot take as they are)."""
    project = ctx.project()
    pipeline = project.pipeline_name(pipeline) or pipeline if pipeline else None
    if pipeline is not None and pipeline not in project.pipelines:
        _unknown_pipeline(ctx, pipeline)
    names = [pipeline] if pipeline else sorted(project.pipelines)
    rows: list[tuple[object, ...]] = []
    unchanged, failed = 0, ExitCode.OK
    with _registry(ctx) as registry:
        for spec in (s for name in names for s in project.pipelines[name].tables.values()):
            try:
                columns = _column_mappings(registry, spec)
            except Exception as exc:
                output.fail(f"{spec.identity}: {registry.mask(str(exc))}")
                failed = max(failed, exit_code_for(exc))
                continue
            renamed = [c for c in columns if c.renamed]
            unchanged += not renamed
            rows += [(spec.identity, c.source, c.warehouse, c.warehouse_type, c.note) for c in renamed]
    output.table("Renamed columns", ["table", "source column", "warehouse column", "type", "why"], rows)
    click.echo(f"{unchanged} table(s) keep every column name")
    if failed:
        raise SystemExit(failed)


@column_mappings_group.command("show")
@click.option("-t", "--table", "table", required=True, help="schema.table (or CONN:schema.table).")
@click.option("-p", "--pipeline", help="The pipeline the table belongs to (auto-detected when unique).")
@pass_cli
def show_mappings(ctx: CliContext, table: str, pipeline: str | None) -> None:
    """Every column of the table: MySQL name and type -> warehouse name and type."""
    spec = _spec(ctx, table, pipeline)
    with _registry(ctx) as registry:
        try:
            columns = _column_mappings(registry, spec)
        except Exception as exc:
            _exit_for(exc, registry, spec.identity)
    output.table(
        f"{spec.identity} -> {spec.target}.{spec.target_schema}.{spec.target_table}",
        ["source column", "MySQL type", "warehouse column", "warehouse type", "renamed"],
        [(c.source, c.mysql_type, c.warehouse, c.warehouse_type, c.note) for c in columns],
    )


@column_mappings_group.command("clear")
@click.option("-t", "--table", "table", required=True, help="schema.table (accepted; nothing is stored).")
@click.option("-p", "--pipeline", help="Accepted for compatibility.")
@click.option("--force", is_flag=True, help="Accepted for compatibility.")
def clear_mappings(table: str, pipeline: str | None, force: bool) -> None:
    """Accepted for compatibility: there are no stored mappings to clear."""
    click.echo(f"{table}: {NOTHING_STORED}")


@column_mappings_group.command("clear-all")
@click.option("--force", is_flag=True, help="Accepted for compatibility.")
def clear_all_mappings(force: bool) -> None:
    """Accepted for compatibility: there are no stored mappings to clear."""
    click.echo(NOTHING_STORED[0].upper() + NOTHING_STORED[1:])
