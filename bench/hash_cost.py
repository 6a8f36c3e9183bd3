"""What hashing every row costs each server: the floor under reconcile's time on an identical table.

    python -m bench.hash_cost [--rows N]

Reconcile checksums every row on both servers (a change that did not move the cursor can be
anywhere). This times, single-threaded on one connection per server, one ``SUM`` over the benchmark
table of each piece of the per-row work: the scan alone, the canonical row text reconcile builds,
the whole row hash it sums today, and the cheaper pieces a different canonical form could use (SHA-2
instead of MD5 on MariaDB, temporals as integers, arithmetic in place of text). It prints seconds
and microseconds per row for each, so the gap between the full load and the comparison can be
weighed against what no canonical form can avoid.

The PostgreSQL side reads the raw pipe's copy (``raw_pipe.<table>``), loaded first when missing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from bench.common import BenchSettings
from bench.raw_pipe import TARGET_SCHEMA, ensure_pg_database, pg_cursor, time_pipe
from bench.seed import connect, seed

SCAN = "scan (SUM of the key)"


def _expressions(settings: BenchSettings) -> tuple[dict[str, str], dict[str, str]]:
    """(MariaDB, PostgreSQL) expressions to sum, named; built with reconcile's own canonical form."""
    from sync_platform.engine.reconcile.canonical import row_hash, row_text
    from sync_platform.engine.shape import read_source_table
    from sync_platform.engine.typemap import map_table
    from sync_platform.warehouse import dialect_for

    with connect(settings, settings.database) as conn:
        mapping = map_table(read_source_table(conn, settings.database, settings.table))
    pg = dialect_for("postgres")
    pg_columns = [(pg.quote(c.name), c.logical) for c in mapping.columns]
    my_text = row_text(mapping.columns, timestamp_as_text=True)
    my_hash = row_hash(mapping.columns, timestamp_as_text=True)
    epoch_micros = "(TO_SECONDS(updated_at) - 62167219200) * 1000000 + MICROSECOND(updated_at)"
    pg_text = pg.row_text(pg_columns)
    mysql = {
        SCAN: "SUM(id)",
        "canonical row text (its length)": f"SUM(LENGTH({my_text}))",
        "row hash as reconcile sums it (text, SHA-256, hex fold)": f"SUM({my_hash})",
        "MD5 of one short column": "SUM(LENGTH(MD5(sku)))",
        "SHA-2 (256) of one short column": "SUM(LENGTH(SHA2(sku, 256)))",
        "CRC32 of one short column": "SUM(CRC32(sku))",
        "hex fold of 15 digits (CONV)": "SUM(CONV(LEFT(sku, 15), 16, 10))",
        "DATETIME(6) as its text": "SUM(LENGTH(CAST(DATE_ADD(updated_at, INTERVAL 0 DAY) AS CHAR)))",
        "DATETIME(6) as epoch microseconds": f"SUM({epoch_micros})",
        "nullable TEXT read (its length)": "SUM(LENGTH(note))",
        "JSON read for presence": "SUM(attributes IS NULL)",
        "five integers, weighted sum": "SUM(id * 31 + customer_id * 17 + quantity * 7 + is_gift * 3 + amount * 100)",
    }
    postgres = {
        SCAN: "SUM(id)",
        "canonical row text (its length)": f"SUM(LENGTH({pg_text}))",
        "row hash as reconcile sums it (text, SHA-256, hex fold)": f"SUM({pg.row_hash(pg_text)})",
        "MD5 of one short column": "SUM(LENGTH(MD5(sku)))",
        "SHA-256 of one short column": "SUM(LENGTH(sha256(convert_to(sku, 'UTF8'))))",
        "timestamp as its text": "SUM(LENGTH(CAST(updated_at AS TEXT)))",
        "timestamp as epoch microseconds": "SUM(CAST(EXTRACT(EPOCH FROM updated_at) * 1000000 AS BIGINT))",
        "five integers, weighted sum": "SUM(id * 31 + customer_id * 17 + quantity * 7 + CAST(is_gift AS INT) * 3)",
    }
    return mysql, postgres


def _say_cost(say: Any, server: str, name: str, seconds: float, so_far: dict[str, float], rows: int) -> None:
    scan = so_far[SCAN]
    extra = "" if name == SCAN else f"  (+{(seconds - scan) / rows * 1e6:4.2f} over the scan)"
    say(f"{server:11s} {name:55s} {seconds:6.2f} s  {seconds / rows * 1e6:4.2f} µs/row{extra}")


def _time(run: Callable[[str], Any], sql: str) -> float:
    started = time.perf_counter()
    run(sql)
    return time.perf_counter() - started


def run(settings: BenchSettings, results: dict[str, Any] | None = None, *, say: Any = print) -> dict[str, Any]:
    ensure_pg_database(settings)
    seed(settings, say=lambda message: None)
    with pg_cursor(settings) as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (TARGET_SCHEMA, settings.table),
        )
        (present,) = cursor.fetchone()
    if not present:
        time_pipe(settings)  # the PostgreSQL copy to hash
    mysql, postgres = _expressions(settings)
    rows = settings.rows
    figures: dict[str, dict[str, float]] = {"mariadb": {}, "postgresql": {}}
    with connect(settings, settings.database) as conn, conn.cursor() as cursor:

        def on_mariadb(sql: str) -> None:
            cursor.execute(sql)
            cursor.fetchall()

        on_mariadb(f"SELECT SUM(id) FROM `{settings.table}`")  # warm the buffer pool first
        for name, expression in mysql.items():
            seconds = _time(on_mariadb, f"SELECT {expression} FROM `{settings.table}` WHERE id <= {rows}")
            figures["mariadb"][name] = seconds
            _say_cost(say, "mariadb", name, seconds, figures["mariadb"], rows)
    with pg_cursor(settings) as cursor:
        cursor.execute("SET max_parallel_workers_per_gather = 0")  # one backend, as each reconcile query
        cursor.execute("SET datestyle = 'ISO, MDY'")

        def on_postgresql(sql: str) -> None:
            cursor.execute(sql)
            cursor.fetchall()

        on_postgresql(f'SELECT SUM(id) FROM "{TARGET_SCHEMA}"."{settings.table}"')  # warm the cache first
        for name, expression in postgres.items():
            seconds = _time(
                on_postgresql, f'SELECT {expression} FROM "{TARGET_SCHEMA}"."{settings.table}" WHERE id <= {rows}'
            )
            figures["postgresql"][name] = seconds
            _say_cost(say, "postgresql", name, seconds, figures["postgresql"], rows)
    return {"hash_cost": figures}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, help="rows in the seeded table (default: $BENCH_ROWS or 2,000,000)")
    args = parser.parse_args(argv)
    run(BenchSettings.from_env(args.rows))


if __name__ == "__main__":
    main()
