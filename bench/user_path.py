"""The path users run: ``sync-platform sync`` end to end, beside the engine alone and the raw pipe.

For each table shape (``orders``: today's; ``events``: composite key, DATETIMEs without fractions,
JSON, nullable TEXT), in the same run and one right after the other:

- **raw pipe**: ``mariadb | psql COPY`` of the whole table (the baseline; see ``bench/raw_pipe.py``);
- **engine**: ``sync_table`` alone in a child process (extract → parquet → COPY, no Dagster);
- **CLI**: ``sync-platform sync -t db.table -p bench`` as a user runs it: its own process (timed
  from spawn to exit), its own ``DAGSTER_HOME`` and configuration directory; peak RSS is the
  process's and its children's (``wait4``). Where the time goes comes from the run itself: the CLI's
  phase marks (``SYNC_PLATFORM_TIMINGS``) and the Dagster run's events (step start, the engine's
  log lines, the materializations and check evaluations, with their timestamps);
- **nothing new**: the CLI again right after the full load;
- **1 % round** (orders only): 1 % of the rows updated and 1 % inserted (40,000 at 2 M), synced by
  the CLI, against a hand-written incremental: ``mariadb -e 'SELECT … WHERE updated_at > last' |
  psql`` into a temporary stage table, then ``DELETE … USING stage`` + ``INSERT`` in one
  transaction, plus the CLI's fixed start-up (spawn → the step starts, from the nothing-new run).

Every target is checked against its source (row count and key sum) after each run.

    python -m bench --only user_path           # after seed; both shapes
    BENCH_SHAPES=orders python -m bench --only user_path   # one shape
    python -m bench --scale-rows 20000000      # also the full load at 20 M rows (minutes)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import BenchSettings, peak_rss_mb, rate, work_dir, write_config_dir
from bench.raw_pipe import TARGET_SCHEMA as RAW_SCHEMA
from bench.raw_pipe import ensure_pg_database, pg_cursor, pipe, time_pipe
from bench.seed import ORDERS, SHAPES, Shape, connect, seed, time_spread

PIPELINE = "bench"
CLI_SCHEMA = "bench_cli"  # + the shape's name: each shape keeps its own target until the run ends
ENGINE_SCHEMA = "bench_engine"
CHANGE_EVERY = 100  # 1 % of the rows updated and 1 % inserted

# The targets (2,000,000 rows, 2 cores).
TARGET_CLI_RATIO = 0.70
TARGET_ENGINE_RATIO = 0.85
TARGET_RSS_MB = 300.0
TARGET_NOTHING_NEW_SECONDS = 2.0
TARGET_ROUND_FACTOR = 1.3
TARGET_SCALE_TIME = 11.0  # 10× the rows in at most 11× the time
TARGET_SCALE_RSS = 0.10  # peak RSS within ±10 %


# --------------------------------------------------------------------------- configuration


def write_config(root: Path, settings: BenchSettings, schema: str, shapes: list[Shape]) -> Path:
    """A configuration directory with one pipeline, ``bench``, holding the shapes' tables."""
    tables = {f"{settings.database}.{s.table(settings)}": dict(s.table_config) for s in shapes}
    return write_config_dir(settings, root, schema, tables, PIPELINE)


# --------------------------------------------------------------------------- processes


def run_measured(command: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run ``command`` to its exit; wall seconds from spawn to exit and the peak RSS of it and its children."""
    with open(log, "wb") as out:
        spawned_at = time.time()
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        exited_at = time.time()
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    return {
        "seconds": seconds,
        "spawned_at": spawned_at,
        "exited_at": exited_at,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux: KiB; includes waited-for descendants
        # CPU the process and its children used: on a shared machine, what the run costs whatever the wait
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "exit_code": process.returncode,
        "output": log.read_text(errors="replace")[-4000:],
    }


def engine_child(config: str, table: str) -> None:
    """``sync_table`` alone, from no watermark; prints one JSON line."""
    from sync_platform.configuration import load_project
    from sync_platform.connections.registry import ConnectionRegistry
    from sync_platform.engine.sync import sync_table
    from sync_platform.engine.watermark import Watermark

    project = load_project(config)
    spec = project.pipelines[PIPELINE].tables[table]
    started = time.perf_counter()
    with ConnectionRegistry(project.connections, project.config_dir) as registry:
        result = sync_table(registry, spec, Watermark())
    seconds = time.perf_counter() - started
    assert result.extract is not None and result.load is not None
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": result.load.rows,
                "extract_seconds": result.extract.seconds,
                "load_seconds": result.load.seconds,
                "staged_mb": result.extract.bytes / 1e6,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


def run_engine(settings: BenchSettings, config: Path, table: str, work: Path) -> dict[str, Any]:
    env = {**os.environ, **settings.as_env()}
    command = [sys.executable, "-m", "bench.user_path", "--engine-child", str(config), table]
    done = run_measured(command, env, work / f"engine-{table}.log")
    if done["exit_code"] != 0:
        raise RuntimeError(f"engine run of {table} failed ({done['exit_code']}):\n{done['output']}")
    figures = json.loads([line for line in done["output"].splitlines() if line.startswith("{")][-1])
    return {
        **figures,
        "process_seconds": done["seconds"],
        "process_peak_rss_mb": done["peak_rss_mb"],
        "cpu_seconds": done["cpu_seconds"],
    }


def sync_platform_executable() -> str:
    beside = Path(sys.executable).parent / "sync-platform"
    return str(beside) if beside.exists() else "sync-platform"


def run_cli(settings: BenchSettings, config: Path, home: Path, table: str, work: Path, label: str) -> dict[str, Any]:
    """``sync-platform sync -t db.table -p bench`` end to end, with its phases."""
    home.mkdir(parents=True, exist_ok=True)
    timings = work / f"timings-{label}.json"
    result_file = work / f"result-{label}.json"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SYNC_PLATFORM_TIMINGS": str(timings),
        "BENCH_MYSQL_PASSWORD": settings.mysql_password,
    }
    command = [
        sync_platform_executable(),
        "--config-dir",
        str(config),
        "sync",
        "-t",
        table,
        "-p",
        PIPELINE,
        "--json-output",
        str(result_file),
    ]
    done = run_measured(command, env, work / f"cli-{label}.log")
    if done["exit_code"] != 0:
        raise RuntimeError(f"sync-platform sync -t {table} failed ({done['exit_code']}):\n{done['output']}")
    document = json.loads(result_file.read_text())
    (outcome,) = document["table_results"].values()
    marks = json.loads(timings.read_text())
    phases = run_phases(home, document["dagster_run_id"], done, marks)
    return {
        "seconds": done["seconds"],
        "peak_rss_mb": done["peak_rss_mb"],
        "cpu_seconds": done["cpu_seconds"],
        "rows_extracted": outcome["rows_extracted"],
        "rows_loaded": outcome["rows_loaded"],
        "phases": phases,
    }


# --------------------------------------------------------------------------- where the time goes


def run_phases(home: Path, run_id: str, done: dict[str, Any], marks: dict[str, float]) -> dict[str, float]:
    """Seconds per phase of one CLI run, from its marks and its Dagster run's events (in order, summing
    to the end-to-end time). ``extract_seconds`` / ``load_seconds`` (overlapped, inside ``extract_load``)
    are the engine's own figures from the materializations' metadata."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        events = instance.all_logs(run_id)
    finally:
        instance.dispose()
    step_start = _first(
        events, lambda e: e.dagster_event is not None and e.dagster_event.event_type_value == "STEP_START"
    )
    extract_start = _first(events, lambda e: "extract starts from" in (e.user_message or ""))
    materializations = [
        e for e in events if e.dagster_event is not None and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
    ]
    evaluations = [
        e
        for e in events
        if e.dagster_event is not None and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    restarts = [
        e for e in events if e.dagster_event is not None and e.dagster_event.event_type_value == "STEP_RESTARTED"
    ]
    staging, warehouse = materializations[0], materializations[-1]
    checks_end = evaluations[-1].timestamp if evaluations else warehouse.timestamp
    points = [
        ("startup_imports", marks["command"]),  # interpreter, imports, click
        ("configuration", marks["configuration"]),  # config files read and validated, tables resolved
        ("instance", marks["instance"]),  # DAGSTER_HOME opened (storage migrations checked)
        ("definitions", marks["definitions"]),  # assets, checks, job built and resolved
        ("stale_runs", marks["stale_runs"]),  # runs of dead CLI processes ended
        ("run_launch", step_start.timestamp),  # run created, plan, RUN_START … STEP_START
        ("watermark", extract_start.timestamp),  # the extract watermark read (instance, staged batches)
        ("extract_load", staging.timestamp),  # the engine: extract ‖ load, overlapped
        ("metadata", warehouse.timestamp),  # materializations written (target columns read)
        ("checks", checks_end),  # the row-count and unique-key checks
        ("run_end", marks["run"]),  # step and run ends recorded, watchdog stopped
        ("exit", done["exited_at"]),  # summary, JSON output, interpreter teardown
    ]
    phases: dict[str, float] = {}
    previous = done["spawned_at"]
    for name, at in points:
        phases[name] = max(0.0, at - previous)
        previous = max(previous, at)
    staging_meta = staging.dagster_event.event_specific_data.materialization.metadata
    warehouse_meta = warehouse.dagster_event.event_specific_data.materialization.metadata
    phases["extract_seconds"] = float(staging_meta["duration_seconds"].value)
    phases["load_seconds"] = float(warehouse_meta["duration_seconds"].value)
    # A transient error (a lost connection) retries the step after its back-off: the figures then
    # include the wait, and extract/load are the last attempt's.
    phases["retries"] = len(restarts)
    return phases


def _first(events: Any, wanted: Any) -> Any:
    for event in events:
        if wanted(event):
            return event
    raise RuntimeError("the run's events lack a phase boundary; see the run in the instance")


PHASE_LABELS = {
    "startup_imports": "start-up (interpreter, imports)",
    "configuration": "configuration",
    "instance": "instance (DAGSTER_HOME)",
    "definitions": "definitions",
    "stale_runs": "stale-run sweep",
    "run_launch": "run launch (to STEP_START)",
    "watermark": "watermark read",
    "extract_load": "extract ‖ load",
    "metadata": "metadata (materializations)",
    "checks": "checks",
    "run_end": "step/run end",
    "exit": "exit (summary, teardown)",
}


def format_phases(phases: dict[str, float]) -> str:
    parts = [f"{PHASE_LABELS[name]} {phases[name]:.2f}" for name in PHASE_LABELS]
    detail = f"(extract {phases['extract_seconds']:.2f} s, load {phases['load_seconds']:.2f} s, overlapped)"
    if phases.get("retries"):
        detail += f" — RETRIED {phases['retries']}x after a transient error: not a clean measurement"
    return "; ".join(parts) + f" {detail}"


# --------------------------------------------------------------------------- checks of the targets


def source_check(settings: BenchSettings, shape: Shape) -> tuple[int, int]:
    key = shape.key[-1]
    with connect(settings, settings.database) as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*), COALESCE(SUM({key}), 0) FROM `{shape.table(settings)}`")
        count, total = cursor.fetchone()
    return int(count), int(total)


def target_check(settings: BenchSettings, shape: Shape, schema: str) -> tuple[int, int]:
    key = shape.key[-1]
    with pg_cursor(settings) as cursor:
        cursor.execute(f'SELECT COUNT(*), COALESCE(SUM({key}), 0) FROM "{schema}"."{shape.table(settings)}"')
        count, total = cursor.fetchone()
    return int(count), int(total)


def assert_same(settings: BenchSettings, shape: Shape, schema: str, what: str) -> None:
    source, target = source_check(settings, shape), target_check(settings, shape, schema)
    if source != target:
        raise RuntimeError(f"{what}: target {schema} (rows, key sum) {target} != source {source}")


def cli_schema(shape: Shape) -> str:
    """The CLI's target schema for one shape. Not shared: measuring the next shape must not drop the
    target that the 1 % round then syncs into (a dropped target is read again from the beginning)."""
    return f"{CLI_SCHEMA}_{shape.name}"


def drop_schemas(settings: BenchSettings, *schemas: str) -> None:
    with pg_cursor(settings) as cursor:
        for schema in schemas:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# --------------------------------------------------------------------------- the 1 % round


def seeded_changed_columns(rows: int) -> str:
    """The seed's formulas (bench/seed.py) for the columns change_source() touches."""
    return (
        "amount = ROUND(((id * 37) % 10000000) / 100, 2), "
        f"updated_at = TIMESTAMP('2024-01-01') + INTERVAL (id * 13 DIV {time_spread(rows)} + id % 86400) SECOND"
        " + INTERVAL (id % 1000000) MICROSECOND"
    )


def change_source(settings: BenchSettings) -> int:
    """Update 1 % and insert 1 % of orders (timestamps a little in the past, inside the run's ceiling)."""
    table = ORDERS.table(settings)
    with connect(settings, settings.database) as conn, conn.cursor() as cursor:
        cursor.execute(
            f"UPDATE `{table}` SET amount = amount + 1, updated_at = NOW(6) - INTERVAL 10 SECOND "
            f"WHERE id % {CHANGE_EVERY} = 0"
        )
        updated = cursor.rowcount
        cursor.execute(f"SELECT MAX(id) FROM `{table}`")
        (top,) = cursor.fetchone()
        cursor.execute(
            f"INSERT INTO `{table}` SELECT id + {int(top)}, customer_id, status, sku, amount, quantity, "
            f"is_gift, created_at, NOW(6) - INTERVAL 10 SECOND, note, attributes FROM `{table}` "
            f"WHERE id % {CHANGE_EVERY} = 1 AND id <= {int(top)}"
        )
        conn.commit()
        return updated + cursor.rowcount


def restore_source(settings: BenchSettings) -> None:
    """The seeded rows back: inserted ones deleted, updated ones given their seeded values again (their
    ``updated_at`` would otherwise sit at the top of the cursor, re-read by every later run's lookback)."""
    table = ORDERS.table(settings)
    with connect(settings, settings.database) as conn, conn.cursor() as cursor:
        cursor.execute(f"DELETE FROM `{table}` WHERE id > {settings.rows}")
        cursor.execute(f"UPDATE `{table}` SET {seeded_changed_columns(settings.rows)} WHERE id % {CHANGE_EVERY} = 0")
        conn.commit()


def max_cursor(settings: BenchSettings) -> str:
    with connect(settings, settings.database) as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT DATE_FORMAT(MAX(updated_at), '%Y-%m-%d %H:%i:%s.%f') FROM `{ORDERS.table(settings)}`")
        (value,) = cursor.fetchone()
    return str(value)


def hand_written_round(settings: BenchSettings, since: str, work: Path) -> float:
    """SELECT the changed rows | COPY into a stage table, then DELETE/INSERT in one transaction."""
    table = f"{RAW_SCHEMA}.{ORDERS.table(settings)}"
    script = work / "hand_written_incremental.sql"
    script.write_text(
        "BEGIN;\n"
        f"CREATE TEMP TABLE stage (LIKE {table}) ON COMMIT DROP;\n"
        f"\\copy stage ({ORDERS.columns}) FROM pstdin WITH (FORMAT text, NULL 'NULL')\n"
        f"DELETE FROM {table} t USING stage s WHERE t.id = s.id;\n"
        f"INSERT INTO {table} SELECT * FROM stage;\n"
        "COMMIT;\n"
    )
    select = f"SELECT {ORDERS.columns} FROM {settings.qualified_table} WHERE updated_at > '{since}'"
    return pipe(settings, select, ["-f", str(script)])


# --------------------------------------------------------------------------- the measurements


def measure_full(
    settings: BenchSettings, shape: Shape, work: Path, say: Any, *, keep_cli: bool = False
) -> dict[str, Any]:
    """Raw pipe, engine alone and CLI full loads of one shape, one after the other."""
    table = shape.table(settings)
    qualified = f"{settings.database}.{table}"
    shaped = shape.settings(settings)
    drop_schemas(settings, cli_schema(shape), ENGINE_SCHEMA)
    raw = min(time_pipe(shaped, shape) for _ in range(settings.repeat))
    say(f"{shape.name}: raw pipe (mariadb | psql COPY)   {raw:7.2f} s  {rate(settings.rows, raw)}")

    engine_root = work / f"engine-{shape.name}"
    engine_config = write_config(engine_root, settings, ENGINE_SCHEMA, [shape])
    engine = run_engine(settings, engine_config, qualified, work)
    assert_same(settings, shape, ENGINE_SCHEMA, f"{shape.name} engine full load")
    engine_ratio = raw / engine["seconds"]
    say(
        f"{shape.name}: engine alone (sync_table)       {engine['seconds']:7.2f} s  "
        f"{rate(settings.rows, engine['seconds'])}"
        f"  {engine_ratio:.2f}x raw  peak RSS {engine['peak_rss_mb']:.0f} MB  CPU {engine['cpu_seconds']:.1f} s"
        f"  (extract {engine['extract_seconds']:.2f} s, load {engine['load_seconds']:.2f} s, overlapped)"
    )
    drop_schemas(settings, ENGINE_SCHEMA)  # frees its space before the CLI writes its copy

    cli_root = work / f"cli-{shape.name}"
    cli_config = write_config(cli_root, settings, cli_schema(shape), [shape])
    home = cli_root / "dagster_home"
    cli = run_cli(settings, cli_config, home, qualified, work, f"{shape.name}-full")
    assert_same(settings, shape, cli_schema(shape), f"{shape.name} CLI full load")
    cli_ratio = raw / cli["seconds"]
    say(
        f"{shape.name}: CLI sync, end to end            {cli['seconds']:7.2f} s  {rate(settings.rows, cli['seconds'])}"
        f"  {cli_ratio:.2f}x raw  peak RSS {cli['peak_rss_mb']:.0f} MB  CPU {cli['cpu_seconds']:.1f} s"
    )
    say(f"{shape.name}:   phases (s): {format_phases(cli['phases'])}")
    figures = {
        "table": qualified,
        "rows": settings.rows,
        "raw_pipe_seconds": raw,
        "engine": {**engine, "ratio_to_raw_pipe": engine_ratio},
        "cli": {**cli, "ratio_to_raw_pipe": cli_ratio},
        "config": str(cli_config),
        "home": str(home),
    }
    if not keep_cli:
        figures["nothing_new"] = nothing_new(settings, shape, cli_config, home, work, say)
    return figures


def nothing_new(
    settings: BenchSettings, shape: Shape, config: Path, home: Path, work: Path, say: Any
) -> dict[str, Any]:
    qualified = f"{settings.database}.{shape.table(settings)}"
    run = run_cli(settings, config, home, qualified, work, f"{shape.name}-nothing-new")
    assert_same(settings, shape, cli_schema(shape), f"{shape.name} CLI run with nothing new")
    say(
        f"{shape.name}: CLI sync, nothing new           {run['seconds']:7.2f} s  "
        f"({run['rows_extracted']:,} rows re-read in the lookback)  peak RSS {run['peak_rss_mb']:.0f} MB  "
        f"CPU {run['cpu_seconds']:.1f} s"
    )
    say(f"{shape.name}:   phases (s): {format_phases(run['phases'])}")
    return run


def one_percent_round(
    settings: BenchSettings, full: dict[str, Any], fixed_startup: float, work: Path, say: Any
) -> dict[str, Any]:
    config, home = Path(full["config"]), Path(full["home"])
    since = max_cursor(settings)  # where the hand-written incremental's last run ended
    try:
        changed = change_source(settings)
        cli = run_cli(settings, config, home, full["table"], work, "orders-1pct")
        assert_same(settings, ORDERS, cli_schema(ORDERS), "CLI 1 % round")
        hand = hand_written_round(settings, since, work)
        assert_same(settings, ORDERS, RAW_SCHEMA, "hand-written 1 % round")
    finally:
        restore_source(settings)
    budget = hand + fixed_startup
    factor = cli["seconds"] / budget
    say(
        f"orders: 1 % round ({changed:,} changed rows): CLI {cli['seconds']:.2f} s (CPU {cli['cpu_seconds']:.1f} s); "
        "hand-written SELECT | COPY "
        f"+ DELETE/INSERT {hand:.2f} s + fixed start-up {fixed_startup:.2f} s = {budget:.2f} s  → {factor:.2f}x"
    )
    say(f"orders:   phases (s): {format_phases(cli['phases'])}")
    return {
        "changed_rows": changed,
        "cli": cli,
        "hand_written_seconds": hand,
        "fixed_startup_seconds": fixed_startup,
        "factor": factor,
    }


def fixed_startup(run: dict[str, Any]) -> float:
    """Spawn → the step starts: what every CLI run pays before the engine does anything."""
    phases = run["phases"]
    return sum(
        phases[name]
        for name in ("startup_imports", "configuration", "instance", "definitions", "stale_runs", "run_launch")
    )


def run(settings: BenchSettings, results: dict[str, Any] | None = None, *, say: Any = print) -> dict[str, Any]:
    ensure_pg_database(settings)
    figures: dict[str, Any] = {}
    with work_dir("bench-user-path-") as tmp:
        work = Path(tmp)
        shapes = [SHAPES[name.strip()] for name in os.environ.get("BENCH_SHAPES", "orders,events").split(",")]
        for shape in shapes:
            seed(settings, shape=shape, say=lambda message: None)
            figures[shape.name] = measure_full(settings, shape, work, say)
        orders = figures.get("orders")
        if orders is not None:
            startup = fixed_startup(orders["nothing_new"])
            orders["one_percent"] = one_percent_round(settings, orders, startup, work, say)
    drop_schemas(settings, *(cli_schema(shape) for shape in SHAPES.values()), ENGINE_SCHEMA)
    figures["verdicts"] = verdicts(figures)
    for line in figures["verdicts"]:
        say(line)
    return {"user_path": figures}


def verdicts(figures: dict[str, Any]) -> list[str]:
    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines = []
    for name in [name for name in ("orders", "events") if name in figures]:
        shape = figures[name]
        cli, engine = shape["cli"], shape["engine"]
        lines += [
            f"target {name}: CLI ≥ {TARGET_CLI_RATIO:.2f}x raw pipe: {cli['ratio_to_raw_pipe']:.2f}x "
            f"{mark(cli['ratio_to_raw_pipe'] >= TARGET_CLI_RATIO)}",
            f"target {name}: engine ≥ {TARGET_ENGINE_RATIO:.2f}x raw pipe: {engine['ratio_to_raw_pipe']:.2f}x "
            f"{mark(engine['ratio_to_raw_pipe'] >= TARGET_ENGINE_RATIO)}",
            f"target {name}: CLI peak RSS ≤ {TARGET_RSS_MB:.0f} MB: {cli['peak_rss_mb']:.0f} MB "
            f"{mark(cli['peak_rss_mb'] <= TARGET_RSS_MB)}",
            f"target {name}: nothing new ≤ {TARGET_NOTHING_NEW_SECONDS:.0f} s: {shape['nothing_new']['seconds']:.2f} s "
            f"{mark(shape['nothing_new']['seconds'] <= TARGET_NOTHING_NEW_SECONDS)}",
        ]
    if "orders" not in figures:
        return lines
    factor = figures["orders"]["one_percent"]["factor"]
    lines.append(
        f"target orders: 1 % round ≤ {TARGET_ROUND_FACTOR}x (hand-written + start-up): {factor:.2f}x "
        f"{mark(factor <= TARGET_ROUND_FACTOR)}"
    )
    return lines


# --------------------------------------------------------------------------- 10× the rows


def run_scale(settings: BenchSettings, rows: int, results: dict[str, Any], *, say: Any = print) -> dict[str, Any]:
    """The orders full load at ``rows`` (its own table, ``orders_<N>m``) against this run's 2 M figures."""
    base = (results.get("user_path") or {}).get("orders")
    large = dataclasses.replace(settings, rows=rows, table=f"{settings.table}_{rows // 1_000_000}m")
    ensure_pg_database(large)
    say(f"scale: seeding {large.database}.{large.table} with {rows:,} rows (skipped when already there)")
    seed(large, shape=ORDERS, say=lambda message: None)
    with work_dir("bench-scale-") as tmp:
        try:
            figures = measure_full(large, ORDERS, Path(tmp), say, keep_cli=True)
        finally:
            drop_schemas(large, cli_schema(ORDERS), ENGINE_SCHEMA)
            with pg_cursor(large) as cursor:
                cursor.execute(f'DROP TABLE IF EXISTS "{RAW_SCHEMA}"."{large.table}"')
    out: dict[str, Any] = {"rows": rows, "full": figures}
    if base is None:
        say("scale: no 2 M figures to compare with (run with user_path, or give --base-json)")
        return out
    factor = rows / base["rows"]
    out["factor"] = factor
    for part in ("engine", "cli"):
        time_ratio = figures[part]["seconds"] / base[part]["seconds"]
        rss_ratio = figures[part]["peak_rss_mb"] / base[part]["peak_rss_mb"]
        out[part] = {"time_ratio": time_ratio, "rss_ratio": rss_ratio}
        say(
            f"scale {part}: {rows:,} rows in {figures[part]['seconds']:.1f} s = {time_ratio:.2f}x the "
            f"{base['rows']:,}-row time (target ≤ {TARGET_SCALE_TIME:.0f}x: "
            f"{'met' if time_ratio <= TARGET_SCALE_TIME * factor / 10 else 'NOT met'}); peak RSS "
            f"{figures[part]['peak_rss_mb']:.0f} MB = {rss_ratio:.2f}x (target ±{TARGET_SCALE_RSS:.0%}: "
            f"{'met' if abs(rss_ratio - 1) <= TARGET_SCALE_RSS else 'NOT met'})"
        )
    raw_ratio = figures["raw_pipe_seconds"] / base["raw_pipe_seconds"]
    say(f"scale raw pipe: {figures['raw_pipe_seconds']:.1f} s = {raw_ratio:.2f}x the {base['rows']:,}-row time")
    out["raw_pipe_time_ratio"] = raw_ratio
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine-child", nargs=2, metavar=("CONFIG_DIR", "TABLE"), help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help="rows in the seeded tables (default: $BENCH_ROWS or 2,000,000)")
    args = parser.parse_args(argv)
    if args.engine_child:
        engine_child(*args.engine_child)
        return
    settings = BenchSettings.from_env(args.rows)
    for shape in SHAPES.values():
        seed(settings, shape=shape)
    run(settings)


if __name__ == "__main__":
    main(sys.argv[1:])
