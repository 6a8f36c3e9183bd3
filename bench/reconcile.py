"""Reconcile on the benchmark table: an identical table, then 300 scattered differences found and repaired.

    python -m bench --only seed,reconcile
    python -m bench.reconcile [--rows N]

1. A full load (``sync_table``) into PostgreSQL schema ``bench_reconcile``: the time to beat.
2. ``reconcile_table`` of the identical table; target: less than half the full load's time. Printed
   with each side's queries, seconds in them and the servers' CPU seconds for them (read from /proc:
   the benchmark's servers run on this machine), which a loaded machine inflates far less than
   wall times.
3. 100 rows deleted at the source, 100 changed at the source without their cursor moving, 100 lost
   from the target, scattered over the key space; ``reconcile_table`` with ``deletes: hard`` and
   ``repair: true``; target: all 300 found and repaired, fewer than 1 % of the rows transferred.
4. A last reconcile proves the target exact; the source is restored afterwards.

Every run happens in a child process (figures are its own).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import BenchSettings, peak_rss_mb, run_child, work_dir, write_config_dir
from bench.raw_pipe import ensure_pg_database, pg_cursor
from bench.seed import connect

TARGET_SCHEMA = "bench_reconcile"
DIFFERENCES = 100  # of each kind


def _config_dir(settings: BenchSettings, root: Path) -> Path:
    table = {
        "cdc_strategy": "hybrid",
        "cdc_timestamp_column": "updated_at",
        "cdc_id_column": "id",
        "deletes": "hard",
        "repair": True,
    }
    return write_config_dir(settings, root, TARGET_SCHEMA, {f"{settings.database}.{settings.table}": table})


def _server_clock(conn: Any, mysql: bool) -> Callable[[], float] | None:
    """CPU seconds so far of the server thread (MariaDB) or process (PostgreSQL) serving ``conn``.

    Read from /proc: the benchmark's servers run on this machine. None where that is not readable.
    """
    with conn.cursor() as cursor:
        if mysql:
            cursor.execute("SELECT TID FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()")
            (tid,) = cursor.fetchone()
            found = subprocess.run(["pgrep", "-x", "mariadbd|mysqld"], capture_output=True, text=True, check=False)
            pids = found.stdout.split()
            path = Path(f"/proc/{pids[0]}/task/{tid}/schedstat") if pids else None
        else:
            cursor.execute("SELECT pg_backend_pid()")
            (pid,) = cursor.fetchone()
            path = Path(f"/proc/{pid}/schedstat")
    if path is None or not path.exists():
        return None
    return lambda: int(path.read_text().split()[0]) / 1e9


def _count_server_cpu(totals: dict[str, float]) -> None:
    """Add each reconcile query's server CPU time to ``totals["source"]`` / ``totals["target"]``."""
    from sync_platform.engine.reconcile import sides

    for cls, name in ((sides.MySQLSide, "source"), (sides.WarehouseSide, "target")):
        original = cls._run

        def run(self: Any, sql: str, params: Any, _original: Any = original, _name: str = name) -> list[tuple]:
            if "_bench_clock" not in self.__dict__:
                self._bench_clock = _server_clock(self.conn, mysql=_name == "source")
            clock = self._bench_clock
            before = clock() if clock else 0.0
            try:
                return _original(self, sql, params)
            finally:
                if clock:
                    totals[_name] += clock() - before

        cls._run = run  # type: ignore[method-assign]


def child(config: str, action: str) -> None:
    """``sync`` or ``reconcile`` in this process; prints a JSON line with its figures."""
    from sync_platform.configuration import load_project
    from sync_platform.connections.registry import ConnectionRegistry
    from sync_platform.engine.reconcile import reconcile_table
    from sync_platform.engine.sync import sync_table
    from sync_platform.engine.watermark import Watermark

    project = load_project(config)
    spec = next(iter(project.pipelines["bench"].tables.values()))
    started = time.perf_counter()
    with ConnectionRegistry(project.connections, project.config_dir) as registry:
        if action == "sync":
            run = sync_table(registry, spec, Watermark())
            assert run.load is not None
            figures: dict[str, Any] = {"rows": run.load.rows}
        else:
            cpu = {"source": 0.0, "target": 0.0}
            _count_server_cpu(cpu)
            result = reconcile_table(registry, spec)
            figures = result.as_dict()
            figures.update(source_server_cpu=cpu["source"], target_server_cpu=cpu["target"])
    figures.update(seconds=time.perf_counter() - started, peak_rss_mb=peak_rss_mb())
    print(json.dumps(figures, default=str))


def _scattered(settings: BenchSettings, offset: int) -> list[int]:
    """``DIFFERENCES`` ids spread evenly over the key space (distinct per ``offset``)."""
    step = settings.rows // DIFFERENCES
    return [1 + i * step + offset for i in range(DIFFERENCES)]


def _break(settings: BenchSettings) -> tuple[list[tuple], list[tuple]]:
    """Delete, change (cursor untouched) and lose rows; returns what restores the source."""
    deleted, changed = _scattered(settings, 11), _scattered(settings, 37)
    lost = _scattered(settings, 73)
    with connect(settings, settings.database) as conn, conn.cursor() as cursor:
        table = f"`{settings.table}`"
        cursor.execute(f"SELECT * FROM {table} WHERE id IN ({','.join(map(str, deleted))})")
        saved_rows = list(cursor.fetchall())
        cursor.execute(f"SELECT id, status FROM {table} WHERE id IN ({','.join(map(str, changed))})")
        saved_status = list(cursor.fetchall())
        cursor.execute(f"DELETE FROM {table} WHERE id IN ({','.join(map(str, deleted))})")
        cursor.execute(f"UPDATE {table} SET status = 'drifted' WHERE id IN ({','.join(map(str, changed))})")
        conn.commit()
    with pg_cursor(settings) as cursor:
        cursor.execute(f'DELETE FROM "{TARGET_SCHEMA}"."{settings.table}" WHERE id IN ({",".join(map(str, lost))})')
    return saved_rows, saved_status


def _restore(settings: BenchSettings, saved_rows: list[tuple], saved_status: list[tuple]) -> None:
    with connect(settings, settings.database) as conn, conn.cursor() as cursor:
        if saved_rows:
            marks = ", ".join(["%s"] * len(saved_rows[0]))
            cursor.executemany(f"INSERT IGNORE INTO `{settings.table}` VALUES ({marks})", saved_rows)
        cursor.executemany(
            f"UPDATE `{settings.table}` SET status = %s WHERE id = %s", [(s, i) for i, s in saved_status]
        )
        conn.commit()


def run(settings: BenchSettings, results: dict[str, Any] | None = None, *, say=print) -> dict[str, Any]:
    ensure_pg_database(settings)
    with pg_cursor(settings) as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{TARGET_SCHEMA}" CASCADE')
    figures: dict[str, Any] = {}
    with work_dir("bench-reconcile-") as tmp:
        config = str(_config_dir(settings, Path(tmp)))
        full = run_child("bench.reconcile", ["--child", config, "sync"], settings)
        say(f"full load:                  {full['seconds']:6.2f} s  ({full['rows']:,} rows)")
        same = run_child("bench.reconcile", ["--child", config, "reconcile"], settings)
        ratio = same["seconds"] / full["seconds"]
        say(
            f"reconcile, identical table: {same['seconds']:6.2f} s  = {ratio:.2f}x the full load (target < 0.5x); "
            f"{same['differences']} differences, {same['ranges_scanned']:,} ranges, "
            f"{same['rows_transferred']:,} rows transferred"
        )
        say(
            f"  source: {same['source_queries']:,} queries, {same['source_seconds']:.2f} s, "
            f"server CPU {same['source_server_cpu']:.2f} s; target: {same['target_queries']:,} queries, "
            f"{same['target_seconds']:.2f} s, server CPU {same['target_server_cpu']:.2f} s; "
            f"peak RSS {same['peak_rss_mb']:.0f} MB"
        )
        saved_rows, saved_status = _break(settings)
        try:
            fixed = run_child("bench.reconcile", ["--child", config, "reconcile"], settings)
            share = fixed["rows_transferred"] / settings.rows
            say(
                f"reconcile + repair:         {fixed['seconds']:6.2f} s  found {fixed['extra']} deleted, "
                f"{fixed['changed']} changed, {fixed['missing']} lost (of {DIFFERENCES} each); repaired "
                f"{fixed['rows_deleted']} deleted + {fixed['rows_merged']} re-loaded; "
                f"{fixed['rows_transferred']:,} rows transferred = {share:.3%} of the table (target < 1 %)"
            )
            after = run_child("bench.reconcile", ["--child", config, "reconcile"], settings)
            say(f"reconcile after repair:     {after['seconds']:6.2f} s  {after['differences']} differences")
        finally:
            _restore(settings, saved_rows, saved_status)
        found_all = (fixed["extra"], fixed["changed"], fixed["missing"]) == (DIFFERENCES,) * 3
        figures = {
            "full_load_seconds": full["seconds"],
            "identical": same,
            "identical_ratio_to_full_load": ratio,
            "repair": fixed,
            "repair_transferred_share": share,
            "after_repair": after,
            "targets_met": ratio < 0.5 and found_all and share < 0.01 and after["differences"] == 0,
        }
        say(f"targets met: {figures['targets_met']}")
    return {"reconcile": figures}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=2, metavar=("CONFIG_DIR", "ACTION"), help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help="rows in the seeded table (default: $BENCH_ROWS or 2,000,000)")
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return
    from bench import seed

    settings = BenchSettings.from_env(args.rows)
    seed.seed(settings)
    run(settings)


if __name__ == "__main__":
    main(sys.argv[1:])
