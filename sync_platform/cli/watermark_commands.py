"""``watermark`` and ``watermark-count``: where each table's sync stands, read and moved in the Dagster instance.

The older tool kept a JSON document per table in S3; here the positions are the metadata of the
table's assets in the persistent Dagster instance (``DAGSTER_HOME``), read and written only through
:mod:`sync_platform.orchestration.watermarks`, so the UI, schedules and these commands agree. Row
counts are not stored at all: ``validate-counts`` computes them with the asset checks' queries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click

from sync_platform.cli import output
from sync_platform.cli.context import CliContext, pass_cli
from sync_platform.cli.exit_codes import ExitCode, exit_code_for
from sync_platform.cli.tables import resolve_table
from sync_platform.configuration import ConfigError, TableSpec
from sync_platform.connections.registry import ConnectionRegistry, UnknownConnection
from sync_platform.engine.cleanup import inventory
from sync_platform.engine.reconcile.counts import NotComparable, compare_row_counts, duplicate_keys
from sync_platform.engine.recovery import null_cursor_counts
from sync_platform.engine.shape import TableShape, read_table_shape
from sync_platform.engine.watermark import (
    TIMESTAMP_FORMAT,
    ManualPositionError,
    Watermark,
    manual_position,
    moves_back,
    parse_timestamp,
)
from sync_platform.orchestration import watermarks
from sync_platform.orchestration.instance import cli_instance
from sync_platform.orchestration.keys import staging_key, warehouse_key


def _fail(message: str, code: ExitCode = ExitCode.CONFIG) -> NoReturn:
    click.echo(message, err=True)
    raise SystemExit(code)


def _exit_code(exc: BaseException) -> ExitCode:
    if isinstance(exc, UnknownConnection):  # a name connections.yml does not define
        return ExitCode.CONFIG
    return exit_code_for(exc)


@contextmanager
def _reported(spec: TableSpec, registry: ConnectionRegistry) -> Iterator[None]:
    """Errors of the work inside become one masked line naming the table, and the matching exit code."""
    try:
        yield
    except (SystemExit, click.ClickException, click.Abort):
        raise
    except Exception as exc:
        _fail(output.failure_line(spec, registry.mask(str(exc)) or type(exc).__name__), _exit_code(exc))


# --------------------------------------------------------------------------- which table


def _table_options(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option(
        "-c", "--connection", help="The table's source connection (as in CONN:schema.table); not with -p."
    )(function)
    function = click.option("-p", "--pipeline", help="The pipeline the table belongs to (auto-detected when unique).")(
        function
    )
    return click.option(
        "-t", "--table", "table", required=True, help="schema.table (or CONN:schema.table), as configured."
    )(function)


def _spec(ctx: CliContext, table: str, pipeline: str | None, connection: str | None) -> TableSpec:
    if pipeline and connection:
        _fail("-p and -c both given: name the table's pipeline (-p) or its source connection (-c), not both")
    name = table
    if connection:
        source, sep, bare = table.rpartition(":")
        if sep and source != connection:
            _fail(f"-t {table} names source `{source}` but -c says `{connection}`: give one of them")
        name = f"{connection}:{bare if sep else table}"
    try:
        return resolve_table(ctx.project(), name, pipeline)
    except ConfigError as exc:
        _fail(str(exc))


def _registry(ctx: CliContext) -> ConnectionRegistry:
    project = ctx.project()
    return ConnectionRegistry(project.connections, project.config_dir)


# --------------------------------------------------------------------------- describing watermarks


def _when(record: watermarks.WatermarkRecord) -> str:
    recorded = record.recorded_at
    return recorded.strftime("%Y-%m-%d %H:%M:%S UTC") if recorded else ""


def _provenance(record: watermarks.WatermarkRecord) -> str:
    """Where a watermark came from, in words: a run, a manual set (with its note) or the warehouse."""
    if record.origin == watermarks.Origin.MANUAL:
        return "manual" + (f' ("{record.detail}")' if record.detail else "")
    if record.origin == watermarks.Origin.MATERIALIZATION:
        text = f"run {record.run_id[:8]}" if record.run_id else "materialization"
        manual_at = record.watermark.manual_at
        if manual_at:
            text += f", continuing from a manual set at {manual_at.strftime('%Y-%m-%d %H:%M:%S UTC')}"
        return text
    return f"{record.origin}: {record.detail}" if record.detail else record.origin


def _ordered(watermark: Watermark, spec: TableSpec) -> Watermark:
    """The position with the cursor column first (instance metadata comes back with its JSON keys sorted)."""
    first = (spec.config.cdc_timestamp_column or "").lower()
    position = dict(sorted(watermark.position.items(), key=lambda item: item[0].lower() != first))
    return Watermark(position, watermark.manual_at, watermark.note)


def describe(watermark: Watermark, spec: TableSpec) -> str:
    return _ordered(watermark, spec).describe()


def _strategy_text(spec: TableSpec) -> str:
    """The configured strategy (the engine may still detect columns for an unconfigured table)."""
    cfg = spec.config
    columns = [c for c in (cfg.cdc_timestamp_column, cfg.cdc_id_column) if c]
    text = cfg.cdc_strategy + (f" on {', '.join(columns)}" if columns else "")
    if cfg.cdc_strategy == "full_sync":
        text += f" ({cfg.full_sync_mode or 'replace'})"
    return text


# --------------------------------------------------------------------------- mapping --timestamp / --id


def _refuse_while_a_run_extracts(instance: Any, spec: TableSpec, yes: bool) -> None:
    """A run already extracting the table stores its own watermark when it ends, replacing a set made now."""
    if yes:
        return
    run = watermarks.run_extracting(instance, spec)
    if run is not None:
        _fail(
            f"{spec.identity}: run {run.run_id} is extracting this table ({run.status.value}); the watermark it "
            "stores when it ends would replace this one. Wait for it to finish, or cancel it in the UI; "
            "pass --yes if that run is dead (its process gone)."
        )


def _appends(shape: TableShape) -> bool:
    """Rows are appended, not merged by key: reading them again duplicates them (full syncs re-read anyway)."""
    return shape.choice.write_mode == "append" and shape.choice.strategy != "full_sync"


# --------------------------------------------------------------------------- watermark


@click.group("watermark")
def watermark_group() -> None:
    """Show, set and reset where each table's next sync starts.

    Watermarks live in the Dagster instance (DAGSTER_HOME, default ~/.sync_platform/dagster), in the
    metadata of the table's assets: the extract watermark (where the next read from MySQL starts) on the
    staging asset, the load watermark (the end of the last batch loaded) on the warehouse asset.
    """


@watermark_group.command("get")
@_table_options
@click.option("--show-files", is_flag=True, help="Also list the table's staged batches: loaded or pending.")
@pass_cli
def get_watermark(ctx: CliContext, table: str, pipeline: str | None, connection: str | None, show_files: bool) -> None:
    """The table's extract and load watermarks, where they came from and when they were recorded.

    With nothing recorded in the instance, the position the next run would recover from the warehouse
    (its load ledger, else MAX of the cursor in the target) is shown instead.
    """
    spec = _spec(ctx, table, pipeline, connection)
    code = ExitCode.OK
    with _registry(ctx) as registry, cli_instance() as instance:
        click.echo(f"table             {spec.identity} (pipeline {spec.pipeline})")
        click.echo(f"strategy          {_strategy_text(spec)}")
        click.echo(f"target            {spec.target}: {spec.target_schema}.{spec.target_table}")
        resolvers = (
            ("extract", watermarks.read_extract_watermark, watermarks.resolve_extract_watermark),
            ("load", watermarks.read_load_watermark, watermarks.resolve_load_watermark),
        )
        for label, read, resolve in resolvers:
            record = read(instance, spec)
            if record is None:
                try:
                    record = resolve(instance, registry, spec)  # what the next run would start from
                except Exception as exc:
                    click.echo(f"{label + ' watermark':<18}not recorded in the instance")
                    click.echo(f"  {registry.mask(str(exc))}", err=True)
                    code = max(code, _exit_code(exc))
                    continue
            click.echo(f"{label + ' watermark':<18}{describe(record.watermark, spec)}")
            click.echo(f"  {'from':<16}{_provenance(record)}")
            if record.recorded_at:
                click.echo(f"  {'recorded':<16}{_when(record)}")
        if show_files:
            with _reported(spec, registry):
                batches = inventory(registry, spec)
            rows = [
                (
                    b.batch_id,
                    b.state,
                    "" if b.rows is None else f"{b.rows:,}",
                    b.files,
                    f"{b.bytes / 1e6:.1f}",
                    b.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                )
                for b in batches
            ]
            click.echo("")
            if rows:
                output.table("Staged batches", ["batch", "state", "rows", "files", "MB", "created (UTC)"], rows)
            else:
                click.echo("no staged batches")
    if code:
        raise SystemExit(code)


@watermark_group.command("set")
@_table_options
@click.option("--timestamp", "timestamp_text", help=f"'{TIMESTAMP_FORMAT}': the cursor value of the last row synced.")
@click.option("--id", "ident", type=int, help="The id of the last row synced (id_only), or the tie-breaker (hybrid).")
@click.option(
    "-y",
    "--yes",
    is_flag=True,
    help="Move an append-only table's watermark back anyway (re-appends rows), or set it while a run is in progress.",
)
@pass_cli
def set_watermark(
    ctx: CliContext,
    table: str,
    pipeline: str | None,
    connection: str | None,
    timestamp_text: str | None,
    ident: int | None,
    yes: bool,
) -> None:
    """Set the extract watermark by hand: the next run reads the rows after this position.

    hybrid: --timestamp (required) and --id (the tie-breaker among rows sharing that timestamp);
    timestamp_only: --timestamp, and --id only when the table has a one-column key; id_only: --id.
    DATETIME values are compared as stored, TIMESTAMP values are taken as UTC. A table's lookback
    (default 60 s for keyed tables) still re-reads that much before the position. Batches staged
    before the set no longer move the resume point.
    """
    spec = _spec(ctx, table, pipeline, connection)
    if timestamp_text is None and ident is None:
        _fail(f"{spec.identity}: give --timestamp '{TIMESTAMP_FORMAT}' and/or --id N")
    try:
        timestamp = parse_timestamp(timestamp_text) if timestamp_text is not None else None
    except ManualPositionError as exc:
        _fail(str(exc))
    with _registry(ctx) as registry, cli_instance() as instance:
        with _reported(spec, registry):
            shape = read_table_shape(registry, spec)
        try:
            wanted = Watermark(manual_position(spec.identity, shape, timestamp, ident))
        except ManualPositionError as exc:
            _fail(str(exc))
        _refuse_while_a_run_extracts(instance, spec, yes)
        with _reported(spec, registry):
            current = watermarks.resolve_extract_watermark(instance, registry, spec)
        if (
            _appends(shape)
            and moves_back(wanted, current.watermark, shape.keyset_names, shape.position_order)
            and not yes
        ):
            _fail(
                f"{spec.identity} appends rows (write_mode append: rows are added, not merged by key): moving its "
                f"watermark back from {describe(current.watermark, spec)} to {describe(wanted, spec)} appends every "
                "row in between again, as duplicates. Pass --yes if that is intended (e.g. after deleting those rows "
                "from the target)."
            )
        stored = watermarks.record_manual_watermark(instance, spec, wanted, note="set from the command line")
    click.echo(
        f"{spec.identity}: extract watermark set to {describe(stored, spec)} (was {describe(current.watermark, spec)})"
    )
    lookback = shape.choice.lookback_seconds
    click.echo(
        "The next run reads the rows after it"
        + (f", re-reading {lookback:g}s before it (lookback; rows merge by key)" if lookback else "")
        + ". The load watermark moves when that run loads."
    )


def _reset(ctx: CliContext, table: str, pipeline: str | None, connection: str | None, yes: bool, *, note: str) -> None:
    spec = _spec(ctx, table, pipeline, connection)
    with _registry(ctx) as registry, cli_instance() as instance:
        _refuse_while_a_run_extracts(instance, spec, yes)
        try:
            appends = _appends(read_table_shape(registry, spec))
        except Exception as exc:
            if not yes:
                _fail(
                    f"{spec.identity}: cannot tell whether the table appends or merges "
                    f"({registry.mask(str(exc))}); pass --yes to reset without checking",
                    _exit_code(exc),
                )
            appends = False  # told to go ahead without the check
        if appends and not yes:
            _fail(
                f"{spec.identity} appends rows (write_mode append: rows are added, not merged by key): a reset "
                "reads every row again and appends it a second time. Refused without --yes. To re-read from a known "
                "point, use `watermark set` (--id / --timestamp); to rebuild the table, empty the target table "
                "first, then reset with --yes."
            )
        before = watermarks.read_extract_watermark(instance, spec)
        watermarks.reset_watermark(instance, spec, note=note)
    was = describe(before.watermark, spec) if before else "nothing recorded"
    click.echo(f"{spec.identity}: extract watermark reset (was {was}); the next run reads from the beginning.")
    if appends:
        click.echo(
            "warning: the table appends: every row the next run reads is added again unless the target was emptied."
        )
    if spec.config.cdc_strategy == "full_sync":
        click.echo("full_sync reads the whole table on every run anyway; a reset restarts a paginate pass.")
    click.echo("Staged batches are kept; any not loaded yet are still loaded by the next run.")


_RESET_YES = "No question; reset an append-only table too (its rows are appended again) or during a run."
_PRESERVE = "Accepted for compatibility: a reset never deletes staged batches here (use s3clean)."


@watermark_group.command("reset")
@_table_options
@click.option("-y", "--yes", is_flag=True, help=_RESET_YES)
@click.option("--preserve-files", is_flag=True, help=_PRESERVE)
@pass_cli
def reset(
    ctx: CliContext, table: str, pipeline: str | None, connection: str | None, yes: bool, preserve_files: bool
) -> None:
    """Start the table over: the next run reads every row again (keyed tables merge, nothing duplicates).

    A keyed table is reset at once (its rows merge, so reading them again changes nothing). Refused without
    --yes for tables that append (no key): every row would arrive twice.
    """
    _reset(ctx, table, pipeline, connection, yes, note="reset")


@watermark_group.command("force-reset")
@_table_options
@click.option("-y", "--yes", is_flag=True, help=_RESET_YES)
@click.option("--preserve-files", is_flag=True, help=_PRESERVE)
@pass_cli
def force_reset(
    ctx: CliContext, table: str, pipeline: str | None, connection: str | None, yes: bool, preserve_files: bool
) -> None:
    """The same reset (append-only tables still need --yes).

    The older tool needed force-reset because its reset could be undone by backup copies of the
    watermark; here there are none, and both commands record the same reset in the instance.
    """
    _reset(ctx, table, pipeline, connection, yes, note="force-reset")


@watermark_group.command("list")
@click.option("-p", "--pipeline", help="Only this pipeline's tables.")
@pass_cli
def list_watermarks(ctx: CliContext, pipeline: str | None) -> None:
    """Every configured table's extract and load watermark, as recorded in the instance (no connections)."""
    project = ctx.project()
    pipeline = project.pipeline_name(pipeline) or pipeline if pipeline else None
    if pipeline and pipeline not in project.pipelines:
        _fail(f"pipeline `{pipeline}` not found (pipelines: {', '.join(sorted(project.pipelines)) or 'none'})")
    names = [pipeline] if pipeline else sorted(project.pipelines)
    rows: list[tuple[object, ...]] = []
    with cli_instance() as instance:
        for name in names:
            for table_name, spec in project.pipelines[name].tables.items():
                extract = watermarks.read_extract_watermark(instance, spec)
                load = watermarks.read_load_watermark(instance, spec)
                rows.append(
                    (
                        name,
                        table_name,  # the configured name, never decoded from a storage key
                        spec.config.cdc_strategy,
                        describe(extract.watermark, spec) if extract else "not recorded",
                        (_when(extract) + (" (manual)" if extract.origin == watermarks.Origin.MANUAL else ""))
                        if extract
                        else "",
                        describe(load.watermark, spec) if load else "not recorded",
                        _when(load) if load else "",
                    )
                )
    if not rows:
        click.echo("no tables configured" + (f" in pipeline {pipeline}" if pipeline else ""))
        return
    output.table(
        "Watermarks",
        ["pipeline", "table", "strategy", "extract watermark", "recorded", "load watermark", "recorded"],
        rows,
    )


# --------------------------------------------------------------------------- watermark-count


@click.group("watermark-count")
def watermark_count_group() -> None:
    """Row counts of a table: computed from the source, the warehouse and the run history (never stored)."""


@watermark_count_group.command("validate-counts")
@_table_options
@pass_cli
def validate_counts(ctx: CliContext, table: str, pipeline: str | None, connection: str | None) -> None:
    """Compare source and target rows within the synced window, check key uniqueness, sum the runs' rows.

    The window is every row at or below the load watermark (the whole table for full syncs), as the
    `row_count_matches_source_full` asset check of the reconcile job counts it (a sync's own check
    counts only the rows the run loaded). Exits 4 when the target has fewer rows than the
    source there, or duplicate keys; more rows in the target (deletes are not propagated) is a warning.
    """
    spec = _spec(ctx, table, pipeline, connection)
    with _registry(ctx) as registry, cli_instance() as instance, _reported(spec, registry):
        shape = read_table_shape(registry, spec)
        load = watermarks.resolve_load_watermark(instance, registry, spec)
        counts = compare_row_counts(registry, spec, shape, _ordered(load.watermark, spec))
        duplicates = duplicate_keys(registry, spec, shape)
        nulls = null_cursor_counts(registry, spec, shape)
        extracted, extract_runs = watermarks.materialized_rows(instance, staging_key(spec))
        loaded, load_runs = watermarks.materialized_rows(instance, warehouse_key(spec))
    problems: list[str] = []
    click.echo(f"table             {spec.identity} → {spec.target_schema}.{spec.target_table}")
    click.echo(f"load watermark    {describe(load.watermark, spec)} ({_provenance(load)})")
    if isinstance(counts, NotComparable):
        click.echo(f"row counts        not compared: {counts.reason}")
    else:
        click.echo(f"window            {counts.window}")
        click.echo(f"source rows       {counts.source_rows:,}")
        click.echo(f"target rows       {counts.target_rows:,}")
        click.echo(f"difference        {counts.difference:+,}")
        click.echo(f"counted in        {counts.source_seconds:.2f} s (source), {counts.target_seconds:.2f} s (target)")
        if counts.difference < 0:
            problems.append(f"{-counts.difference:,} rows of the window are missing from the target")
        elif counts.difference > 0:
            click.echo(
                f"warning: the target has {counts.difference:,} rows more than the source "
                "(rows deleted at the source stay in the target until a full sync)"
            )
    if isinstance(duplicates, NotComparable):
        click.echo(f"duplicate keys    not checked: {duplicates.reason}")
    else:
        key = ", ".join(duplicates.key)
        click.echo(
            f"duplicate keys    {duplicates.duplicated_keys:,} on ({key}), every key ({duplicates.seconds:.2f} s)"
        )
        if duplicates.duplicated_keys:
            problems.append(f"{duplicates.duplicated_keys:,} values of ({key}) occur more than once")
    if nulls is not None:
        click.echo(
            f"NULL {nulls.column:<12} {nulls.source_rows:,} at the source, {nulls.target_rows:,} in the target "
            f"(null_cursor: {nulls.policy}; outside the window above)"
        )
        if nulls.policy == "load" and nulls.target_rows < nulls.source_rows:
            problems.append(f"{nulls.source_rows - nulls.target_rows:,} rows with a NULL {nulls.column} are missing")
        elif nulls.policy != "load" and nulls.source_rows:
            problems.append(
                f"{nulls.source_rows:,} rows with a NULL {nulls.column} are not loaded (null_cursor: {nulls.policy})"
            )
    click.echo(f"rows extracted    {extracted:,} in {extract_runs} recorded run(s) (re-reads included)")
    click.echo(f"rows loaded       {loaded:,} in {load_runs} recorded run(s) (rows loaded again included)")
    if problems:
        output.fail(f"{spec.identity}: " + "; ".join(problems))
        raise SystemExit(ExitCode.DATA)
    output.ok(f"{spec.identity}: counts reconcile")


@watermark_count_group.command("set-count")
@click.option("-t", "--table", "table", help="schema.table (accepted for compatibility).")
@click.option("--count", type=int, help="Accepted for compatibility; nothing stores it.")
@click.option("-p", "--pipeline", hidden=True)
@click.option("-c", "--connection", hidden=True)
def set_count(table: str | None, count: int | None, pipeline: str | None, connection: str | None) -> None:
    """Not needed any more: counts are computed, not stored (see validate-counts). Exits 1."""
    _fail(
        "watermark-count set-count: row counts are not stored state in sync_platform, so there is nothing to "
        "overwrite. They are computed when asked: `watermark-count validate-counts -t "
        f"{table or 'schema.table'}` counts the source and the target and sums the rows of the recorded runs. "
        "If the target is missing rows, `watermark set` or `watermark reset` makes the next run read them again."
    )
