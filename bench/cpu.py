"""CPU seconds of a full load, per process, against the raw pipe in the same run.

On a shared, loaded machine wall time mostly measures the neighbours; CPU seconds do not. For the
raw pipe (``mariadb | psql COPY``) and for the engine alone (``sync_table`` in a child process,
from an empty target) this prints: wall seconds, the client's CPU (the mariadb and psql processes,
or the Python process), the PostgreSQL backends' CPU (every backend connected to the benchmark
database during the run, sampled from ``/proc/<pid>/stat``) and the MariaDB server's CPU (the
growth of its busiest thread, and of the whole server, which includes other people's work).

    python -m bench.cpu [--rows N] [--repeat K] [--only raw,engine]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg2

from bench.common import BenchSettings, rate
from bench.raw_pipe import ensure_pg_database, pg_cursor, time_pipe
from bench.seed import ORDERS, seed
from bench.user_path import ENGINE_SCHEMA, run_measured, write_config

TICK = os.sysconf("SC_CLK_TCK")


def _task_cpu(path: str) -> float | None:
    try:
        with open(path) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def _mysqld_pid() -> int | None:
    for name in ("mariadbd", "mysqld"):
        found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True, check=False).stdout.split()
        if found:
            return int(found[0])
    return None


def _mysqld_threads(pid: int | None) -> dict[str, float]:
    if pid is None:
        return {}
    out: dict[str, float] = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        cpu = _task_cpu(f"/proc/{pid}/task/{task}/stat")
        if cpu is not None:
            out[task] = cpu
    return out


class BackendSampler:
    """The CPU seconds of every PostgreSQL backend connected to ``database`` while it runs."""

    def __init__(self, settings: BenchSettings):
        self.settings = settings
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._conn = psycopg2.connect(
            host=settings.pg_host, port=settings.pg_port, user=settings.pg_user, dbname=settings.pg_database
        )
        self._conn.autocommit = True
        with self._conn.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self._own = cursor.fetchone()[0]
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        with self._conn.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.settings.pg_database,))
            pids = [row[0] for row in cursor.fetchall() if row[0] != self._own]
        for pid in pids:
            cpu = _task_cpu(f"/proc/{pid}/stat")
            if cpu is None:
                continue
            self.first.setdefault(pid, cpu)  # a backend first seen mid-run: its start-up CPU is tiny
            self.last[pid] = cpu

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.05)

    def __enter__(self) -> BackendSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()

    @property
    def cpu_seconds(self) -> float:
        # Every backend of the database is the run's (the sampler's own excluded), from its start.
        return sum(self.last.values())


class Measured:
    """Wall, client, PostgreSQL backends and MariaDB server CPU around one run."""

    def __init__(self, settings: BenchSettings):
        self.settings = settings
        self.mysqld = _mysqld_pid()

    def __enter__(self) -> Measured:
        self.sampler = BackendSampler(self.settings)
        self.mysql_before = _mysqld_threads(self.mysqld)
        self.children_before = os.times()
        self.sampler.__enter__()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
        self.sampler.__exit__()
        after = _mysqld_threads(self.mysqld)
        deltas = {t: cpu - self.mysql_before.get(t, 0.0) for t, cpu in after.items()}
        self.mysql_busiest = max(deltas.values(), default=0.0)
        self.mysql_total = sum(deltas.values())
        times = os.times()
        self.children_cpu = (times.children_user - self.children_before.children_user) + (
            times.children_system - self.children_before.children_system
        )

    def figures(self, client_cpu: float | None = None) -> dict[str, float]:
        client = self.children_cpu if client_cpu is None else client_cpu
        return {
            "seconds": self.seconds,
            "client_cpu": client,
            "pg_cpu": self.sampler.cpu_seconds,
            "mysqld_thread_cpu": self.mysql_busiest,
            "mysqld_total_cpu": self.mysql_total,
            "total_cpu": client + self.sampler.cpu_seconds + self.mysql_busiest,
        }


def measure_raw(settings: BenchSettings) -> dict[str, float]:
    with Measured(settings) as m:
        time_pipe(settings, ORDERS)
    return m.figures()


def measure_engine(settings: BenchSettings, config: Path, work: Path, code: str | None = None) -> dict[str, Any]:
    with pg_cursor(settings) as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{ENGINE_SCHEMA}" CASCADE')
    staging = config.parent / "staging"
    subprocess.run(["rm", "-rf", str(staging)], check=True)
    env = {**os.environ, **settings.as_env()}
    if code:  # another checkout's engine (e.g. the main branch), measured in the same run
        env["PYTHONPATH"] = code
    table = f"{settings.database}.{settings.table}"
    command = [sys.executable, "-m", "bench.user_path", "--engine-child", str(config), table]
    here = os.getcwd()
    os.chdir(code or here)  # ``python -m`` puts the working directory first on sys.path
    try:
        with Measured(settings) as m:
            done = run_measured(command, env, work / "engine.log")
    finally:
        os.chdir(here)
    if done["exit_code"] != 0:
        raise RuntimeError(done["output"])
    inner = json.loads([line for line in done["output"].splitlines() if line.startswith("{")][-1])
    with pg_cursor(settings) as cursor:
        cursor.execute(f'SELECT COUNT(*) FROM "{ENGINE_SCHEMA}"."{settings.table}"')
        if cursor.fetchone()[0] != settings.rows:
            raise RuntimeError("engine loaded a different row count")
    return {
        **m.figures(done["cpu_seconds"]),
        "sync_table_seconds": inner["seconds"],
        "extract_seconds": inner["extract_seconds"],
        "load_seconds": inner["load_seconds"],
        "peak_rss_mb": inner["peak_rss_mb"],
    }


def _line(label: str, f: dict[str, float], raw: dict[str, float] | None, rows: int) -> str:
    ratio = f"  {raw['seconds'] / f['seconds']:.2f}x wall, {raw['total_cpu'] / f['total_cpu']:.2f}x cpu" if raw else ""
    return (
        f"{label:7s} {f['seconds']:7.2f} s {rate(rows, f['seconds']):>18s}  client {f['client_cpu']:6.2f}  "
        f"pg {f['pg_cpu']:6.2f}  mysqld {f['mysqld_thread_cpu']:6.2f} (all {f['mysqld_total_cpu']:6.2f})  "
        f"total {f['total_cpu']:6.2f} cpu-s{ratio}"
    )


def _engine_line(engine: dict[str, Any], raw: dict[str, float]) -> str:
    seconds = engine["sync_table_seconds"]
    return (
        f"        sync_table {seconds:.2f} s ({raw['seconds'] / seconds:.2f}x the raw pipe) = extract "
        f"{engine['extract_seconds']:.2f} ‖ load {engine['load_seconds']:.2f}, peak RSS {engine['peak_rss_mb']:.0f} MB"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json-output")
    parser.add_argument("--compare", metavar="CHECKOUT", help="also run the engine of this checkout (its root)")
    parser.add_argument("--no-seed", action="store_true", help="use the source table as it is (a shared one)")
    args = parser.parse_args(argv)
    settings = BenchSettings.from_env(args.rows)
    if not args.no_seed:
        seed(settings)
    ensure_pg_database(settings)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp:
        config = write_config(Path(tmp), settings, ENGINE_SCHEMA, [ORDERS])
        for _ in range(args.repeat):
            raw = measure_raw(settings)
            print(_line("raw", raw, None, settings.rows), flush=True)
            engine = measure_engine(settings, config, Path(tmp))
            print(_line("engine", engine, raw, settings.rows), flush=True)
            print(_engine_line(engine, raw), flush=True)
            entry = {"raw": raw, "engine": engine}
            if args.compare:
                other = measure_engine(settings, config, Path(tmp), args.compare)
                print(_line("compare", other, raw, settings.rows), flush=True)
                print(_engine_line(other, raw), flush=True)
                entry["compare"] = other
            results.append(entry)
    if args.json_output:
        Path(args.json_output).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
