"""The real engine: a full load of the benchmark table into PostgreSQL, then an incremental round.

    python -m bench.sync_full_and_incremental            # after bench.seed and bench.raw_pipe
    python -m bench --only raw_pipe,sync_full_and_incremental

Full: ``sync_table`` from an empty target (extract → parquet in a local staging directory → COPY).
Incremental: 1 % of the rows updated and 1 % inserted at the source, then ``sync_table`` again from
the full run's watermark. Each run happens in a child process, so the peak RSS printed is the sync's
own. The target is checked against the source (row count and key checksum) after each run, and the
inserted rows are removed from the source afterwards so the seeded table stays as it was.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import BenchSettings, peak_rss_mb, rate, run_child, work_dir, write_config_dir
from bench.raw_pipe import ensure_pg_database, pg_cursor
from bench.seed import connect

TARGET_SCHEMA = "bench_sync"
CHANGE_EVERY = 100  # 1 % of the rows are updated and 1 % inserted


def _config_dir(settings: BenchSettings, root: Path) -> Path:
    table = {"cdc_strategy": "hybrid", "cdc_timestamp_column": "updated_at", "cdc_id_column": "id"}
    return write_config_dir(settings, root, TARGET_SCHEMA, {f"{settings.database}.{settings.table}": table})


def child(config: str, watermark_file: str) -> None:
    """One sync in this process; prints a JSON line with its figures."""
    from sync_platform.configuration import load_project
    from sync_platform.connections.registry import ConnectionRegistry
    from sync_platform.engine.sync import sync_table
    from sync_platform.engine.watermark import Watermark

    project = load_project(config)
    spec = next(iter(project.pipelines["bench"].tables.values()))
    previous = Watermark.from_json(Path(watermark_file).read_text()) if Path(watermark_file).exists() else Watermark()
    started = time.perf_counter()
    with ConnectionRegistry(project.connections, project.config_dir) as registry:
        result = sync_table(registry, spec, previous)
    seconds = time.perf_counter() - started
    assert result.extract is not None and result.load is not None
    Path(watermark_file).write_text(result.extract.watermark.to_json())
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows_extracted": result.extract.rows,
                "rows_loaded": result.load.rows,
                "extract_seconds": result.extract.seconds,
                "load_seconds": result.load.seconds,
                "batches": len(result.extract.batches),
                "files": result.extract.files,
                "staged_mb": result.extract.bytes / 1e6,
                "target_rows": result.load.target_rows,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


def _source_check(settings: BenchSettings) -> tuple[int, int]:
    with connect(settings, settings.database) as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*), COALESCE(SUM(id), 0) FROM `{settings.table}`")
        count, total = cursor.fetchone()
    return int(count), int(total)


def _target_check(settings: BenchSettings) -> tuple[int, int]:
    with pg_cursor(settings) as cursor:
        cursor.execute(f'SELECT COUNT(*), COALESCE(SUM(id), 0) FROM "{TARGET_SCHEMA}"."{settings.table}"')
        count, total = cursor.fetchone()
    return int(count), int(total)


def _change_source(settings: BenchSettings) -> int:
    """Update 1 % and insert 1 % (timestamps a little in the past, inside the run's ceiling)."""
    with connect(settings, settings.database) as conn, conn.cursor() as cursor:
        cursor.execute(
            f"UPDATE `{settings.table}` SET amount = amount + 1, updated_at = NOW(6) - INTERVAL 10 SECOND "
            f"WHERE id % {CHANGE_EVERY} = 0"
        )
        updated = cursor.rowcount
        cursor.execute(f"SELECT MAX(id) FROM `{settings.table}`")
        (top,) = cursor.fetchone()
        cursor.execute(
            f"INSERT INTO `{settings.table}` SELECT id + {int(top)}, customer_id, status, sku, amount, quantity, "
            f"is_gift, created_at, NOW(6) - INTERVAL 10 SECOND, note, attributes FROM `{settings.table}` "
            f"WHERE id % {CHANGE_EVERY} = 1 AND id <= {int(top)}"
        )
        conn.commit()
        return updated + cursor.rowcount


def _restore_source(settings: BenchSettings) -> None:
    from bench.user_path import restore_source

    restore_source(settings)


def run(settings: BenchSettings, results: dict[str, Any] | None = None, *, say=print) -> dict[str, Any]:
    ensure_pg_database(settings)
    with pg_cursor(settings) as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{TARGET_SCHEMA}" CASCADE')
    baseline = ((results or {}).get("raw_pipe") or {}).get("pipe_seconds")
    figures: dict[str, Any] = {}
    with work_dir("bench-sync-") as tmp:
        config = _config_dir(settings, Path(tmp))
        watermark = str(Path(tmp) / "watermark.json")
        full = run_child("bench.sync_full_and_incremental", ["--child", str(config), watermark], settings)
        if _target_check(settings) != _source_check(settings):
            raise RuntimeError(f"full load: target {_target_check(settings)} != source {_source_check(settings)}")
        ratio = (settings.rows / full["seconds"]) / (settings.rows / baseline) if baseline else None
        say(
            f"sync full load: {full['seconds']:6.2f} s  {rate(settings.rows, full['seconds'])}  "
            f"peak RSS {full['peak_rss_mb']:.0f} MB  "
            + (f"{ratio:.2f}x the raw pipe ({baseline:.2f} s)" if ratio else "(no raw pipe baseline in this run)")
        )
        figures["full"] = {**full, "ratio_to_raw_pipe": ratio}
        try:
            changed = _change_source(settings)
            incremental = run_child("bench.sync_full_and_incremental", ["--child", str(config), watermark], settings)
            if _target_check(settings) != _source_check(settings):
                raise RuntimeError("incremental: target differs from source")
        finally:
            _restore_source(settings)
        say(
            f"sync incremental: {changed:,} changed rows, {incremental['rows_extracted']:,} read, "
            f"{incremental['seconds']:6.2f} s  {rate(changed, incremental['seconds'])}  "
            f"peak RSS {incremental['peak_rss_mb']:.0f} MB"
        )
        figures["incremental"] = {**incremental, "changed_rows": changed}
    return {"sync_full_and_incremental": figures}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=2, metavar=("CONFIG_DIR", "WATERMARK_FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help="rows in the seeded table (default: $BENCH_ROWS or 2,000,000)")
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return
    from bench import raw_pipe, seed

    settings = BenchSettings.from_env(args.rows)
    seed.seed(settings)
    results = raw_pipe.run(settings)
    run(settings, results)


if __name__ == "__main__":
    main(sys.argv[1:])
