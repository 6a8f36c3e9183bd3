"""Create and fill the benchmark tables (default ``bench.orders``, 2,000,000 rows, 11 columns).

Rows are generated inside MariaDB from its SEQUENCE engine (``INSERT … SELECT … FROM
seq_1_to_N``), in chunks, so seeding 2 M rows takes seconds and no data crosses the wire. Values
are deterministic functions of the id, so every run measures the same bytes. The table mixes the
types that cost the most to move: DECIMAL, DATETIME(6), nullable TEXT, JSON.

A second shape, ``events`` (``bench.events``), has a composite primary key ``(account_id,
event_id)``, DATETIMEs without fractions (the cursor among them), a JSON payload and a nullable
TEXT: the kind of table where the older tool's users saw the CLI slowest.

    python -m bench.seed [--rows N] [--force] [--shape orders|events]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

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

# Every value derives from seq; 2 M rows cover ~300 days of created_at. Larger tables pack their rows
# closer (``spread``): a cursor value in the future stays above every run's ceiling and is never read.
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
  TIMESTAMP('2024-01-01') + INTERVAL (seq * 13 DIV {spread}) SECOND,
  TIMESTAMP('2024-01-01') + INTERVAL (seq * 13 DIV {spread} + seq % 86400) SECOND
    + INTERVAL (seq % 1000000) MICROSECOND,
  IF(seq % 3 = 0, NULL, CONCAT('note for order ', seq, ': ', REPEAT('lorem ipsum ', seq % 8))),
  JSON_OBJECT('channel', ELT(1 + seq % 3, 'web', 'app', 'store'), 'items', 1 + seq % 5,
              'coupon', IF(seq % 7 = 0, 'SAVE10', NULL), 'tags', JSON_ARRAY('a', seq % 11))
FROM seq_{first}_to_{last}
"""


EVENTS_SCHEMA_VERSION = "events-v1"

EVENTS_DDL = """
CREATE TABLE {table} (
  account_id INT NOT NULL,
  event_id BIGINT NOT NULL,
  kind VARCHAR(32) NOT NULL,
  occurred_at DATETIME NOT NULL,
  updated_at DATETIME NOT NULL,
  payload JSON NULL,
  comment TEXT NULL,
  PRIMARY KEY (account_id, event_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='{version}'
"""

# 1,000 accounts; event ids rise within each account; a third of the comments are NULL.
EVENTS_INSERT = """
INSERT INTO {table}
SELECT
  seq % 1000 + 1,
  seq,
  ELT(1 + seq % 6, 'page_view', 'click', 'signup', 'purchase', 'refund', 'logout'),
  TIMESTAMP('2024-01-01') + INTERVAL (seq * 13 DIV {spread}) SECOND,
  TIMESTAMP('2024-01-01') + INTERVAL (seq * 13 DIV {spread} + seq % 3600) SECOND,
  JSON_OBJECT('path', CONCAT('/p/', seq % 977), 'ms', seq % 5000, 'ok', seq % 9 <> 0,
              'ua', ELT(1 + seq % 3, 'firefox', 'chrome', 'safari'), 'ids', JSON_ARRAY(seq % 13, seq % 17)),
  IF(seq % 3 = 0, NULL, CONCAT('event ', seq, ' ', REPEAT('dolor sit amet ', seq % 6)))
FROM seq_{first}_to_{last}
"""


@dataclass(frozen=True)
class Shape:
    """A benchmark table: how to create and fill it, and how the raw pipe and the syncs read it."""

    name: str
    ddl: str
    insert: str
    version: str
    columns: str  # the columns in source order (the raw pipe's SELECT and COPY list)
    key: tuple[str, ...]
    pg_ddl: str  # the raw pipe's target table: the PostgreSQL types the engine creates
    table_config: dict[str, Any]  # the pipeline entry of the table (CLI and engine runs)
    indexes: tuple[str, ...] = ()  # added after the load (building once beats maintaining row by row)

    def table(self, settings: BenchSettings) -> str:
        """The table's name: ``settings.table`` for orders, the same with ``events`` for the other."""
        if self.name == "orders":
            return settings.table
        return settings.table.replace("orders", self.name) if "orders" in settings.table else f"{self.name}"

    def settings(self, settings: BenchSettings) -> BenchSettings:
        return dataclasses.replace(settings, table=self.table(settings))

    def version_for(self, rows: int) -> str:
        """The table comment that says the table was seeded by this code for ``rows`` rows."""
        spread = time_spread(rows)
        return self.version if spread == 1 else f"{self.version}-spread{spread}"


def time_spread(rows: int) -> int:
    """Rows per 13 s of cursor time: 1 up to 2 M rows (~300 days), more beyond, so all stay in the past."""
    return max(1, -(-rows // 2_000_000))


ORDERS = Shape(
    name="orders",
    ddl=DDL,
    insert=INSERT,
    version=SCHEMA_VERSION,
    columns="id, customer_id, status, sku, amount, quantity, is_gift, created_at, updated_at, note, attributes",
    key=("id",),
    pg_ddl="""
CREATE TABLE {table} (
  id BIGINT PRIMARY KEY,
  customer_id INTEGER NOT NULL,
  status VARCHAR(16) NOT NULL,
  sku VARCHAR(64) NOT NULL,
  amount NUMERIC(12,2) NOT NULL,
  quantity SMALLINT NOT NULL,
  is_gift SMALLINT NOT NULL,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL,
  note TEXT,
  attributes JSONB
)
""",
    table_config={"cdc_strategy": "hybrid", "cdc_timestamp_column": "updated_at", "cdc_id_column": "id"},
    indexes=("ADD INDEX idx_updated_at (updated_at)",),
)

EVENTS = Shape(
    name="events",
    ddl=EVENTS_DDL,
    insert=EVENTS_INSERT,
    version=EVENTS_SCHEMA_VERSION,
    columns="account_id, event_id, kind, occurred_at, updated_at, payload, comment",
    key=("account_id", "event_id"),
    pg_ddl="""
CREATE TABLE {table} (
  account_id INTEGER NOT NULL,
  event_id BIGINT NOT NULL,
  kind VARCHAR(32) NOT NULL,
  occurred_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL,
  payload JSONB,
  comment TEXT,
  PRIMARY KEY (account_id, event_id)
)
""",
    # The cursor is second-precision; the composite key orders rows within one second.
    table_config={"cdc_strategy": "timestamp_only", "cdc_timestamp_column": "updated_at"},
    indexes=("ADD INDEX idx_updated_at (updated_at)",),
)

SHAPES = {shape.name: shape for shape in (ORDERS, EVENTS)}


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


def current_rows(settings: BenchSettings, shape: Shape | None = None) -> int | None:
    """Rows of an existing, up-to-date benchmark table, or None when it must be (re)built."""
    shape = shape or ORDERS
    settings = shape.settings(settings)
    with connect(settings) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT table_comment FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (settings.database, settings.table),
        )
        row = cursor.fetchone()
        if row is None or row[0] != shape.version_for(settings.rows):
            return None
        cursor.execute(f"SELECT COUNT(*) FROM {settings.qualified_table}")
        return int(cursor.fetchone()[0])


def seed(settings: BenchSettings, *, force: bool = False, say=print, shape: Shape | None = None) -> int:
    """Make the shape's table (default: orders, ``settings.qualified_table``) hold exactly
    ``settings.rows`` rows; returns the row count."""
    shape = shape or ORDERS
    settings = shape.settings(settings)
    if not force and current_rows(settings, shape) == settings.rows:
        say(f"seed: {settings.database}.{settings.table} already has {settings.rows:,} rows")
        return settings.rows
    started = time.perf_counter()
    table = settings.qualified_table
    with connect(settings) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{settings.database}`")
        cursor.execute(f"USE `{settings.database}`")
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(shape.ddl.format(table=table, version=shape.version_for(settings.rows)))
        cursor.execute("SET SESSION unique_checks = 0, foreign_key_checks = 0")
        for first in range(1, settings.rows + 1, CHUNK_ROWS):
            last = min(first + CHUNK_ROWS - 1, settings.rows)
            cursor.execute(shape.insert.format(table=table, first=first, last=last, spread=time_spread(settings.rows)))
            say(f"seed: {last:,} / {settings.rows:,} rows")
        for index in shape.indexes:
            cursor.execute(f"ALTER TABLE {table} {index}")
        cursor.execute(f"ANALYZE TABLE {table}")
        cursor.fetchall()
    say(f"seed: {settings.rows:,} rows in {time.perf_counter() - started:.1f} s")
    return settings.rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, help="rows to generate (default: $BENCH_ROWS or 2,000,000)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the table is already seeded")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="orders", help="which table (default: orders)")
    args = parser.parse_args(argv)
    seed(BenchSettings.from_env(args.rows), force=args.force, shape=SHAPES[args.shape])


if __name__ == "__main__":
    main()
