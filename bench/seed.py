"""Create and fill the benchmark table (default ``bench.orders``, 2,000,000 rows, 11 columns).

Rows are generated inside MariaDB from its SEQUENCE engine (``INSERT … SELECT … FROM
seq_1_to_N``), in chunks, so seeding 2 M rows takes seconds and no data crosses the wire. Values
are deterministic functions of the id, so every run measures the same bytes. The table mixes the
types that cost the most to move: DECIMAL, DATETIME(6), nullable TEXT, JSON.

    python -m bench.seed [--rows N] [--force]
"""

from __future__ import annotations

import argparse
import time

import pymysql

from bench.common import BenchSettings

CHUNK_ROWS = 250_000
SCHEMA_VERSION = "orders-v1"  # bump when the DDL or the generators change: forces a reseed

DDL = """
CREATE TABLE {table} (
  id BIGINT NOT NULL PRIMARY KEY,
  customer_id INT NOT NULL,
  status VARCHAR(16) NOT NULL,
  sku VARCHAR(64) NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  quantity SMALLINT NOT NULL,
  is_gift TINYINT(1) NOT NULL,
  created_at DATETIME NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  note TEXT NULL,
  attributes JSON NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='{version}'
"""

# Every value derives from seq; 2 M rows cover ~300 days of created_at.
INSERT = """
INSERT INTO {table}
SELECT
  seq,
  (seq * 7919) % 100000 + 1,
  ELT(1 + seq % 5, 'new', 'paid', 'shipped', 'delivered', 'cancelled'),
  CONCAT('SKU-', LPAD(seq % 50000, 6, '0'), '-', HEX(seq % 4093)),
  ROUND(((seq * 37) % 10000000) / 100, 2),
  1 + seq % 20,
  seq % 10 = 0,
  TIMESTAMP('2024-01-01') + INTERVAL (seq * 13) SECOND,
  TIMESTAMP('2024-01-01') + INTERVAL (seq * 13 + seq % 86400) SECOND + INTERVAL (seq % 1000000) MICROSECOND,
  IF(seq % 3 = 0, NULL, CONCAT('note for order ', seq, ': ', REPEAT('lorem ipsum ', seq % 8))),
  JSON_OBJECT('channel', ELT(1 + seq % 3, 'web', 'app', 'store'), 'items', 1 + seq % 5,
              'coupon', IF(seq % 7 = 0, 'SAVE10', NULL), 'tags', JSON_ARRAY('a', seq % 11))
FROM seq_{first}_to_{last}
"""


def connect(settings: BenchSettings, database: str | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(
        host=settings.mysql_host,
        port=settings.mysql_port,
        user=settings.mysql_user,
        password=settings.mysql_password,
        database=database,
        autocommit=True,
        charset="utf8mb4",
    )


def current_rows(settings: BenchSettings) -> int | None:
    """Rows of an existing, up-to-date benchmark table, or None when it must be (re)built."""
    with connect(settings) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT table_comment FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (settings.database, settings.table),
        )
        row = cursor.fetchone()
        if row is None or row[0] != SCHEMA_VERSION:
            return None
        cursor.execute(f"SELECT COUNT(*) FROM {settings.qualified_table}")
        return int(cursor.fetchone()[0])


def seed(settings: BenchSettings, *, force: bool = False, say=print) -> int:
    """Make ``settings.qualified_table`` hold exactly ``settings.rows`` rows; returns the row count."""
    if not force and current_rows(settings) == settings.rows:
        say(f"seed: {settings.database}.{settings.table} already has {settings.rows:,} rows")
        return settings.rows
    started = time.perf_counter()
    table = settings.qualified_table
    with connect(settings) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{settings.database}`")
        cursor.execute(f"USE `{settings.database}`")
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(DDL.format(table=table, version=SCHEMA_VERSION))
        cursor.execute("SET SESSION unique_checks = 0, foreign_key_checks = 0")
        for first in range(1, settings.rows + 1, CHUNK_ROWS):
            last = min(first + CHUNK_ROWS - 1, settings.rows)
            cursor.execute(INSERT.format(table=table, first=first, last=last))
            say(f"seed: {last:,} / {settings.rows:,} rows")
        # Indexed after the load: building it once is faster than maintaining it row by row.
        cursor.execute(f"ALTER TABLE {table} ADD INDEX idx_updated_at (updated_at)")
        cursor.execute(f"ANALYZE TABLE {table}")
        cursor.fetchall()
    say(f"seed: {settings.rows:,} rows in {time.perf_counter() - started:.1f} s")
    return settings.rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, help="rows to generate (default: $BENCH_ROWS or 2,000,000)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the table is already seeded")
    args = parser.parse_args(argv)
    seed(BenchSettings.from_env(args.rows), force=args.force)


if __name__ == "__main__":
    main()
