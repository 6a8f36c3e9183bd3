"""The read path: MySQL → Arrow (→ parquet), rows/s and peak memory, next to the raw pipe of the same run.

Each mode runs in its own child process, so its peak RSS is its own (``ru_maxrss``); "import" is
the RSS after imports, before the query, so ``peak - import`` is what reading cost.

Modes:
- ``cx-stream``          connectorx ``arrow_stream`` iterated directly (its Rust channel is unbounded)
- ``read-batches``       ``sync_platform.engine.extract.read_batches`` (spills past 2 buffered batches)
- ``read-parquet``       ``read_batches`` → ``BatchStager`` (zstd parts, local staging store, manifest)
- ``read-parquet-snappy`` the same with snappy
- ``cx-stream-parquet``  connectorx directly → parquet writer: what memory does without the spill
- ``cx-whole``           ``return_type="arrow"``: the whole table in memory (the unbounded reference)
- ``pymysql``            pymysql unbuffered cursor, rows as tuples (only with ``--all-readers``)
- ``cx-stream-slow`` / ``read-batches-slow``: the same two readers feeding a consumer that takes
  rows at ``SLOW_ROWS_PER_S`` (about what PostgreSQL COPY absorbs here): the case of an extract
  overlapping a load, where connectorx alone piles the whole result up in memory.

    python -m bench.read_path [--rows N] [--modes a,b] [--all-readers] [--raw-seconds S]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import BenchSettings, current_rss_mb, peak_rss_mb, run_child

DEFAULT_MODES = (
    "cx-stream",
    "read-batches",
    "read-parquet",
    "read-parquet-snappy",
    "cx-stream-parquet",
    "cx-whole",
    "cx-stream-slow",
    "read-batches-slow",
)
SLOW_MODES = ("pymysql",)
SLOW_ROWS_PER_S = 300_000
FILE_MAX_MB = 128


def _select(settings: BenchSettings) -> str:
    return f"SELECT * FROM {settings.qualified_table}"


def measure(mode: str, settings: BenchSettings) -> dict[str, Any]:
    """Run one mode in this process (a child of the benchmark) and return its figures."""
    import connectorx as cx
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sync_platform.connections.staging.local import LocalStore
    from sync_platform.engine.extract import BatchStream
    from sync_platform.engine.stage import BatchStager, new_run_id

    work = Path(tempfile.mkdtemp(prefix="bench-read-path-"))
    extra: dict[str, Any] = {}
    import_mb = current_rss_mb()
    started = time.perf_counter()
    rows = 0
    try:
        if mode == "cx-stream":
            reader = cx.read_sql(
                settings.mysql_url, _select(settings), return_type="arrow_stream", batch_size=settings.batch_rows
            )
            for batch in reader:
                rows += batch.num_rows
        elif mode == "cx-whole":
            table = cx.read_sql(settings.mysql_url, _select(settings), return_type="arrow")
            rows = table.num_rows
        elif mode == "cx-stream-parquet":
            reader = cx.read_sql(
                settings.mysql_url, _select(settings), return_type="arrow_stream", batch_size=settings.batch_rows
            )
            with pq.ParquetWriter(
                work / "all.parquet", reader.schema, compression="zstd", coerce_timestamps="us"
            ) as writer:
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows
        elif mode == "cx-stream-slow":
            reader = cx.read_sql(
                settings.mysql_url, _select(settings), return_type="arrow_stream", batch_size=settings.batch_rows
            )
            for batch in reader:
                rows += batch.num_rows
                time.sleep(batch.num_rows / SLOW_ROWS_PER_S)
        elif mode == "read-batches-slow":
            with BatchStream(settings.mysql_url, _select(settings), settings.batch_rows) as stream:
                for batch in stream:
                    rows += batch.num_rows
                    time.sleep(batch.num_rows / SLOW_ROWS_PER_S)
            extra = {"spilled_batches": stream.stats.spilled_batches, "spilled_mb": stream.stats.spilled_bytes / 2**20}
        elif mode == "read-batches":
            with BatchStream(settings.mysql_url, _select(settings), settings.batch_rows) as stream:
                for batch in stream:
                    rows += batch.num_rows
            extra = {"spilled_batches": stream.stats.spilled_batches, "spilled_mb": stream.stats.spilled_bytes / 2**20}
        elif mode in ("read-parquet", "read-parquet-snappy"):
            store = LocalStore("bench", work / "staging")
            compression = "snappy" if mode.endswith("snappy") else "zstd"
            with BatchStream(settings.mysql_url, _select(settings), settings.batch_rows) as stream:
                stager: BatchStager | None = None
                for batch in stream:
                    if stager is None:
                        stager = BatchStager(
                            store,
                            f"bench/{settings.database}/{settings.table}",
                            run_id=new_run_id(),
                            table_identity="bench",
                            schema=batch.schema,
                            max_mb=FILE_MAX_MB,
                            compression=compression,
                        )
                    stager.write(batch)
                    rows += batch.num_rows
            assert stager is not None, "the benchmark table is empty"
            manifest = stager.finish()
            extra = {
                "files": len(manifest.files),
                "staged_mb": manifest.bytes / 2**20,
                "spilled_batches": stream.stats.spilled_batches,
            }
        elif mode == "pymysql":
            import pymysql
            import pymysql.cursors

            conn = pymysql.connect(
                host=settings.mysql_host,
                port=settings.mysql_port,
                user=settings.mysql_user,
                password=settings.mysql_password,
                database=settings.database,
                cursorclass=pymysql.cursors.SSCursor,
            )
            with conn, conn.cursor() as cursor:
                cursor.execute(_select(settings))
                while chunk := cursor.fetchmany(10_000):
                    rows += len(chunk)
        else:
            raise SystemExit(f"unknown mode {mode!r}")
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    del pa
    return {
        "mode": mode,
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "import_rss_mb": import_mb,
        "peak_rss_mb": peak_rss_mb(),
        **extra,
    }


def _best_runs(modes: tuple[str, ...], settings: BenchSettings) -> list[dict[str, Any]]:
    """For each mode, the fastest of ``settings.repeat`` runs with the highest peak RSS seen in any.

    Repeats go round-robin over the modes, so a busy spell on a shared machine slows one run of
    several modes rather than every run of one mode.
    """
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for _ in range(settings.repeat):
        for mode in modes:
            runs[mode].append(run_child("bench.read_path", ["--child", mode], settings))
    best = []
    for mode in modes:
        fastest = min(runs[mode], key=lambda f: f["seconds"])
        best.append({**fastest, "peak_rss_mb": max(f["peak_rss_mb"] for f in runs[mode])})
    return best


def run(
    settings: BenchSettings, results: dict[str, Any] | None = None, *, modes: tuple[str, ...] = DEFAULT_MODES, say=print
) -> dict[str, Any]:
    """Measure every mode in a child process; ratios use ``results["raw_pipe"]`` when given."""
    raw = (results or {}).get("raw_pipe")
    figures = _best_runs(modes, settings)
    for f in figures:
        if f["rows"] != settings.rows:
            raise RuntimeError(f"{f['mode']} read {f['rows']:,} rows, expected {settings.rows:,}")
    say(
        f"read path: {settings.rows:,} rows of {settings.database}.{settings.table}, "
        f"{settings.batch_rows:,}-row batches, best of {settings.repeat}"
    )
    say(f"  {'mode':<22}{'seconds':>8}  {'rows/s':>11}  {'peak MB':>8}  {'(read)':>7}  {'× raw pipe':>10}")
    for f in figures:
        ratio = f"{raw['pipe_seconds'] / f['seconds']:.2f}" if raw else "-"
        notes = ", ".join(
            f"{k}={v:.0f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in f.items()
            if k not in ("mode", "rows", "seconds", "rows_per_s", "import_rss_mb", "peak_rss_mb")
        )
        say(
            f"  {f['mode']:<22}{f['seconds']:8.2f}  {f['rows_per_s']:11,.0f}  {f['peak_rss_mb']:8.0f}  "
            f"{f['peak_rss_mb'] - f['import_rss_mb']:7.0f}  {ratio:>10}  {notes}"
        )
    if raw:
        say(
            f"  {'raw pipe (mariadb|psql)':<22}{raw['pipe_seconds']:8.2f}  {raw['pipe_rows_per_s']:11,.0f}  "
            f"(× raw pipe = raw pipe seconds / mode seconds)"
        )
    return {"read_path": {f["mode"]: f for f in figures}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, help="rows in the seeded table (default: $BENCH_ROWS or 2,000,000)")
    parser.add_argument("--modes", help=f"comma-separated subset of {', '.join(DEFAULT_MODES + SLOW_MODES)}")
    parser.add_argument("--all-readers", action="store_true", help="also time pymysql (slow)")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw pipe (no ratios)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line at the end")
    parser.add_argument("--child", metavar="MODE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = BenchSettings.from_env(args.rows)
    if args.child:
        print(json.dumps(measure(args.child, settings)))
        return
    modes = tuple(args.modes.split(",")) if args.modes else DEFAULT_MODES + (SLOW_MODES if args.all_readers else ())
    results: dict[str, Any] = {}
    if not args.no_raw:
        from bench import raw_pipe

        results.update(raw_pipe.run(settings))
    results.update(run(settings, results, modes=modes))
    if args.json:
        print(json.dumps(results))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
