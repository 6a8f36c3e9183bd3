"""A first load in primary-key ranges against one plain full load: does reading ranges concurrently pay here?

    BENCH_DATABASE=bench_ranges BENCH_PG_DATABASE=bench_ranges python -m bench.initial_load --rows 500000

Each measurement runs in a child process from an empty target schema and an empty staging
directory: ``sync_table`` (one read in key order, loads overlapping the read), then
``run_initial_load`` with ``--ranges`` ranges read by 1 worker, then by ``--workers`` workers
(threads of one process; connectorx and the COPY release the GIL). Target == source is checked
after each (row count and SUM(id)). The fastest of ``--repeat`` runs is reported.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import BenchSettings, peak_rss_mb, rate, run_child, work_dir, write_config_dir
from bench.raw_pipe import ensure_pg_database, pg_cursor
from bench.seed import connect, seed

TARGET_SCHEMA = "bench_initial_load"


def _config_dir(settings: BenchSettings, root: Path) -> Path:
    table = {"cdc_strategy": "hybrid", "cdc_timestamp_column": "updated_at", "cdc_id_column": "id"}
    return write_config_dir(settings, root, TARGET_SCHEMA, {f"{settings.database}.{settings.table}": table})


def child(config: str, mode: str, ranges: int, workers: int) -> None:
    """One load in this process; prints a JSON line with its figures."""
    from sync_platform.configuration import load_project
    from sync_platform.connections.registry import ConnectionRegistry
    from sync_platform.engine.initial_load import run_initial_load
    from sync_platform.engine.sync import sync_table
    from sync_platform.engine.watermark import Watermark

    project = load_project(config)
    spec = next(iter(project.pipelines["bench"].tables.values()))
    started = time.perf_counter()
    with ConnectionRegistry(project.connections, project.config_dir) as registry:
        if mode == "sync":
            result = sync_table(registry, spec, Watermark())
            assert result.extract is not None
            rows = result.extract.rows
        else:
            _plan, results = run_initial_load(registry, spec, ranges, workers=workers, new=True)
            rows = sum(r.rows_extracted for r in results)
    print(json.dumps({"seconds": time.perf_counter() - started, "rows": rows, "peak_rss_mb": peak_rss_mb()}))


def _check(settings: BenchSettings) -> None:
    with connect(settings, settings.database) as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*), COALESCE(SUM(id), 0) FROM `{settings.table}`")
        source = tuple(int(v) for v in cursor.fetchone())
    with pg_cursor(settings) as cursor:
        cursor.execute(f'SELECT COUNT(*), COALESCE(SUM(id), 0) FROM "{TARGET_SCHEMA}"."{settings.table}"')
        target = tuple(int(v) for v in cursor.fetchone())
    if source != target:
        raise SystemExit(f"target {target} != source {source} (rows, SUM(id))")


def _fresh(settings: BenchSettings, root: Path) -> Path:
    with pg_cursor(settings) as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{TARGET_SCHEMA}" CASCADE')
    shutil.rmtree(root / "staging", ignore_errors=True)
    return _config_dir(settings, root)


def run(
    settings: BenchSettings, results: dict[str, Any] | None = None, *, ranges: int = 8, workers: int = 2, say=print
) -> dict[str, Any]:
    """The step of ``python -m bench``: ``{"initial_load": {label: figures}}``."""
    seed(settings, say=say)
    ensure_pg_database(settings)
    figures_by_run: dict[str, Any] = {}
    with work_dir("bench-initial-load-") as tmp:
        root = Path(tmp)
        for label, mode, count in (
            ("sync_table", "sync", 1),
            (f"{ranges} ranges, 1 worker", "ranges", 1),
            (f"{ranges} ranges, {workers} workers", "ranges", workers),
        ):
            best: dict[str, Any] | None = None
            for _ in range(settings.repeat):
                config = _fresh(settings, root)
                figures = run_child(
                    "bench.initial_load", ["child", str(config), mode, str(ranges), str(count)], settings
                )
                _check(settings)
                if best is None or figures["seconds"] < best["seconds"]:
                    best = figures
            assert best is not None
            figures_by_run[label] = best
            say(
                f"{label:>24}: {best['seconds']:6.2f} s  {rate(settings.rows, best['seconds'])}  "
                f"peak RSS {best['peak_rss_mb']:.0f} MB"
            )
        with pg_cursor(settings) as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{TARGET_SCHEMA}" CASCADE')
    return {"initial_load": figures_by_run}


def main(argv: list[str] | None = None) -> None:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000, help="rows of the table (default 500,000)")
    parser.add_argument("--ranges", type=int, default=8, help="key ranges (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="concurrent ranges in the last run (default 2)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the fastest is reported")
    args = parser.parse_args(argv)
    settings = BenchSettings.from_env(args.rows)
    settings = dataclasses.replace(settings, repeat=args.repeat)
    print(json.dumps(run(settings, ranges=args.ranges, workers=args.workers)))


if __name__ == "__main__":
    main()
