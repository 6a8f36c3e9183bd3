"""Run every benchmark in sequence, against the same seeded table, with figures from the same run.

    python -m bench                  # 2,000,000 rows (or $BENCH_ROWS)
    python -m bench --rows 50000     # a smoke run
    python -m bench --only raw_pipe,read_path --json-output bench-results.json
    python -m bench --scale-rows 20000000   # also the orders full load at 20 M rows (minutes; ~15 GB of disk)

Steps, in order: ``seed`` (skipped when the table is already seeded with N rows), ``raw_pipe`` (the
mariadb | psql baseline), ``read_path`` (readers and parquet staging), ``sync_full_and_incremental``
(the engine's full load and 1 % round), then ``user_path`` (``sync-platform sync`` end to end beside the
engine and the raw pipe, on two table shapes, with where the time goes, the run with nothing new and the
1 % round against a hand-written incremental), then ``reconcile`` (checksummed key ranges on an identical
table and with 300 scattered differences), then ``hash_cost`` (what hashing every row costs each server, piece
by piece: the floor under reconcile's time), then ``initial_load`` (the load in 8 key ranges read by 1 and by
2 workers, beside one plain full load). ``--scale-rows N`` then repeats the full load at N rows.
Every step is a module of this package exposing
``run(settings: BenchSettings, results: dict) -> dict``; ``results`` holds the figures of the
steps before it (e.g. ``results["raw_pipe"]["pipe_seconds"]``) so that each can print its ratio to
the baseline. Connection settings come from ``BENCH_*`` variables (see ``bench/common.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import os
import platform
import time
from typing import Any

from bench import seed
from bench.common import BenchSettings

STEPS = (
    "seed",
    "raw_pipe",
    "read_path",
    "sync_full_and_incremental",
    "user_path",
    "reconcile",
    "hash_cost",
    "initial_load",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, help="rows in the benchmark table (default: $BENCH_ROWS or 2,000,000)")
    parser.add_argument("--only", help=f"comma-separated steps to run (default: all of {', '.join(STEPS)})")
    parser.add_argument("--repeat", type=int, help="timed runs per measurement, fastest reported ($BENCH_REPEAT, 1)")
    parser.add_argument("--reseed", action="store_true", help="rebuild the benchmark table even if it exists")
    parser.add_argument("--json-output", metavar="FILE", help="also write every figure to FILE as JSON")
    parser.add_argument(
        "--scale-rows",
        type=int,
        metavar="N",
        help="after user_path, the full load again at N rows (e.g. 20000000): time and peak RSS against 2 M",
    )
    parser.add_argument(
        "--base-json",
        metavar="FILE",
        help="with --scale-rows and without user_path: compare with the user_path figures of an earlier run",
    )
    args = parser.parse_args(argv)
    settings = BenchSettings.from_env(args.rows)
    if args.repeat:
        settings = dataclasses.replace(settings, repeat=max(1, args.repeat))
    wanted = [s.strip() for s in args.only.split(",")] if args.only else list(STEPS)
    unknown = [s for s in wanted if s not in STEPS]
    if unknown:
        parser.error(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    results: dict[str, Any] = {
        "rows": settings.rows,
        "machine": {"cpus": _cpus(), "python": platform.python_version(), "platform": platform.platform()},
    }
    if args.base_json:
        with open(args.base_json) as handle:
            results["user_path"] = json.load(handle)["user_path"]
    started = time.perf_counter()
    print(f"bench: {settings.rows:,} rows in {settings.database}.{settings.table}, {_cpus()} CPUs")
    for step in STEPS:
        if step not in wanted:
            continue
        if step == "seed":
            seed.seed(settings, force=args.reseed)
            continue
        if importlib.util.find_spec(f"bench.{step}") is None:
            print(f"bench: {step} is not written yet; skipped")
            continue
        module = importlib.import_module(f"bench.{step}")
        print(f"\n== {step}")
        results.update(module.run(settings, results))
    if args.scale_rows:
        from bench import user_path

        print(f"\n== scale ({args.scale_rows:,} rows)")
        results["scale"] = user_path.run_scale(settings, args.scale_rows, results)
    print(f"\nbench: done in {time.perf_counter() - started:.0f} s")
    if args.json_output:
        with open(args.json_output, "w") as handle:
            json.dump(results, handle, indent=2, default=str)
        print(f"bench: figures written to {args.json_output}")


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
