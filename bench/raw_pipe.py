"""The baseline every figure is compared with: the mariadb C client piped straight into psql COPY.

    mariadb --quick --batch --skip-column-names -e 'SELECT …' | psql -c "COPY … FROM STDIN"

No Arrow, no parquet, no staging: the floor a MySQL → PostgreSQL copy can reach with stock tools on
this machine. ``--batch`` output is PostgreSQL's text COPY format already (tab-separated, ``\\t``
``\\n`` ``\\\\`` escaped) except that NULL is the word ``NULL``, hence ``NULL 'NULL'`` (the seeded
data never holds that word). Also timed: the mariadb client alone, writing to /dev/null.

    python -m bench.raw_pipe [--rows N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2

from bench.common import BenchSettings, rate
from bench.seed import ORDERS, Shape

TARGET_SCHEMA = "raw_pipe"

# The same columns and PostgreSQL types the engine creates for bench.orders (JSON → JSONB).
TARGET_DDL = ORDERS.pg_ddl
COLUMNS = ORDERS.columns


def ensure_pg_database(settings: BenchSettings) -> None:
    conn = psycopg2.connect(host=settings.pg_host, port=settings.pg_port, user=settings.pg_user, dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (settings.pg_database,))
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{settings.pg_database}"')
    finally:
        conn.close()


@contextmanager
def pg_cursor(settings: BenchSettings) -> Iterator[Any]:
    """An autocommit cursor on the benchmark database (psycopg2's ``with conn`` would open a transaction)."""
    conn = psycopg2.connect(
        host=settings.pg_host, port=settings.pg_port, user=settings.pg_user, dbname=settings.pg_database
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            yield cursor
    finally:
        conn.close()


def _mariadb_command(settings: BenchSettings, sql: str | None = None) -> list[str]:
    sql = sql or f"SELECT {COLUMNS} FROM {settings.qualified_table}"
    return [
        "mariadb",
        f"--host={settings.mysql_host}",
        f"--port={settings.mysql_port}",
        f"--user={settings.mysql_user}",
        "--quick",
        "--batch",
        "--skip-column-names",
        "--default-character-set=utf8mb4",
        "-e",
        # psql may stall for a while (a checkpoint, a loaded machine): the server must keep waiting
        # for its client rather than drop the connection after its default 60 s.
        f"SET SESSION net_write_timeout = 3600; {sql}",
    ]


def _env(settings: BenchSettings) -> dict[str, str]:
    env = dict(os.environ)
    if settings.mysql_password:
        env["MYSQL_PWD"] = settings.mysql_password  # kept off the command line
    return env


def time_client_read(settings: BenchSettings) -> float:
    """The mariadb C client reading the whole table to /dev/null: MySQL's side of the pipe alone."""
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        subprocess.run(_mariadb_command(settings), stdout=sink, env=_env(settings), check=True)
    return time.perf_counter() - started


def psql_command(settings: BenchSettings, *args: str) -> list[str]:
    return [
        "psql",
        f"--host={settings.pg_host}",
        f"--port={settings.pg_port}",
        f"--username={settings.pg_user}",
        f"--dbname={settings.pg_database}",
        "--no-psqlrc",
        "--quiet",
        "-v",
        "ON_ERROR_STOP=1",
        *args,
    ]


def pipe(settings: BenchSettings, select_sql: str, psql_args: list[str]) -> float:
    """``mariadb -e select_sql | psql psql_args``; returns wall seconds (both processes done)."""
    started = time.perf_counter()
    reader = subprocess.Popen(_mariadb_command(settings, select_sql), stdout=subprocess.PIPE, env=_env(settings))
    writer = subprocess.Popen(psql_command(settings, *psql_args), stdin=reader.stdout, stdout=subprocess.DEVNULL)
    assert reader.stdout is not None
    reader.stdout.close()  # psql owns the read end now; mariadb sees SIGPIPE if psql dies
    if writer.wait() != 0 or reader.wait() != 0:
        raise RuntimeError(f"raw pipe failed: mariadb exit {reader.returncode}, psql exit {writer.returncode}")
    return time.perf_counter() - started


def time_pipe(settings: BenchSettings, shape: Shape = ORDERS) -> float:
    """mariadb | psql COPY into a fresh table; returns wall seconds (both processes done).

    ``settings.table`` names the source table (of ``shape``); the target is ``raw_pipe.<table>``.
    """
    table = f"{TARGET_SCHEMA}.{settings.table}"
    with pg_cursor(settings) as cursor:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {TARGET_SCHEMA}")
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(shape.pg_ddl.format(table=table))
    seconds = pipe(
        settings,
        f"SELECT {shape.columns} FROM {settings.qualified_table}",
        ["-c", f"COPY {table} ({shape.columns}) FROM STDIN WITH (FORMAT text, NULL 'NULL')"],
    )
    with pg_cursor(settings) as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        loaded = cursor.fetchone()[0]
    if loaded != settings.rows:
        raise RuntimeError(f"raw pipe loaded {loaded:,} rows, expected {settings.rows:,}")
    return seconds


def run(settings: BenchSettings, results: dict[str, Any] | None = None, *, say=print) -> dict[str, Any]:
    """Measure the baseline; returns ``{"raw_pipe": {...}}`` for the other benchmarks' ratios."""
    ensure_pg_database(settings)
    client_seconds = min(time_client_read(settings) for _ in range(settings.repeat))
    pipe_seconds = min(time_pipe(settings) for _ in range(settings.repeat))
    children_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figures = {
        "rows": settings.rows,
        "client_read_seconds": client_seconds,
        "client_read_rows_per_s": settings.rows / client_seconds,
        "pipe_seconds": pipe_seconds,
        "pipe_rows_per_s": settings.rows / pipe_seconds,
        "children_peak_rss_mb": children_peak_mb,
    }
    say(f"raw pipe: mariadb client → /dev/null   {client_seconds:6.2f} s  {rate(settings.rows, client_seconds)}")
    say(f"raw pipe: mariadb | psql COPY          {pipe_seconds:6.2f} s  {rate(settings.rows, pipe_seconds)}")
    return {"raw_pipe": figures}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, help="rows in the seeded table (default: $BENCH_ROWS or 2,000,000)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line at the end")
    args = parser.parse_args(argv)
    figures = run(BenchSettings.from_env(args.rows))
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
