"""The demo data set: a small shop in the local MariaDB, synced to the local PostgreSQL.

Used by ``sync-platform demo`` (the README's first command). Creating the databases needs the
administrator logins of the local services (MariaDB root, PostgreSQL postgres), as configured in
``config/connections.yml``.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable

import psycopg2
import pymysql

from sync_platform.configuration.models import MySQLSourceConfig, WarehouseTargetConfig

ORDERS_DDL = """
CREATE TABLE IF NOT EXISTS orders (
  id BIGINT PRIMARY KEY,
  customer_id INT NOT NULL,
  status VARCHAR(16) NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  note TEXT NULL,
  attributes JSON NULL,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NULL,
  KEY idx_updated_at (updated_at)
)"""
CUSTOMERS_DDL = """
CREATE TABLE IF NOT EXISTS customers (
  id INT PRIMARY KEY,
  name VARCHAR(64) NOT NULL,
  country CHAR(2) NOT NULL,
  balance BIGINT UNSIGNED NOT NULL
)"""
STATUSES = ("new", "paid", "shipped", "delivered", "returned")


def prepare_source(cfg: MySQLSourceConfig, *, orders: int = 5000, say: Callable[[str], None] = print) -> int:
    """Create the demo database and tables if missing; the first time, fill them. Returns new rows."""
    conn = pymysql.connect(
        host=cfg.host,
        port=cfg.port,
        user=cfg.username,
        password=cfg.password.get_secret_value(),
        charset="utf8mb4",
        autocommit=True,
    )
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{cfg.database}` CHARACTER SET utf8mb4")
            cur.execute(f"USE `{cfg.database}`")
            cur.execute(ORDERS_DDL)
            cur.execute(CUSTOMERS_DDL)
            cur.execute("SELECT COUNT(*) FROM orders")
            (existing,) = cur.fetchone()
            if existing:
                return _change_some(cur, existing, say)
            rng = random.Random(7)
            now = dt.datetime.now().replace(microsecond=0)
            customers = [
                (
                    i,
                    f"Customer {i} {'Ünïcødé' if i % 50 == 0 else ''}".strip(),
                    rng.choice(["DE", "US", "JP"]),
                    18446744073709551615 if i == 1 else rng.randrange(10**9),
                )
                for i in range(1, 201)
            ]
            cur.executemany("INSERT INTO customers VALUES (%s, %s, %s, %s)", customers)
            rows = []
            for i in range(1, orders + 1):
                created = now - dt.timedelta(days=30) + dt.timedelta(seconds=i * 450)
                attributes = json.dumps({"channel": rng.choice(["web", "app"]), "items": rng.randrange(1, 5)})
                updated = None if i % 997 == 0 else min(created + dt.timedelta(minutes=5), now - dt.timedelta(hours=1))
                amount = f"{rng.randrange(100, 99999) / 100:.2f}"
                note = None if i % 4 else f"gift wrap please ({i})"
                rows.append(
                    (i, rng.randrange(1, 201), rng.choice(STATUSES), amount, note, attributes, created, updated)
                )
            cur.executemany("INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)
            say(f"demo: created {cfg.database}.orders ({orders:,} rows) and {cfg.database}.customers (200 rows)")
            return orders + len(customers)
    finally:
        conn.close()


def _change_some(cur: pymysql.cursors.Cursor, existing: int, say: Callable[[str], None]) -> int:
    """On later runs, change a few rows so the next sync has something incremental to do."""
    cur.execute(
        "UPDATE orders SET status = 'delivered', updated_at = NOW(6) - INTERVAL 10 SECOND "
        "WHERE status = 'shipped' ORDER BY id LIMIT 25"
    )
    updated = cur.rowcount
    cur.execute("SELECT MAX(id) FROM orders")
    (top,) = cur.fetchone()
    cur.executemany(
        "INSERT INTO orders VALUES (%s, 1, 'new', '10.00', NULL, NULL, NOW(6), NOW(6) - INTERVAL 10 SECOND)",
        [(top + i,) for i in range(1, 11)],
    )
    say(f"demo: {existing:,} orders exist; updated {updated} and added 10 for an incremental sync")
    return updated + 10


def prepare_target(cfg: WarehouseTargetConfig) -> None:
    """Create the demo warehouse database when it is missing (PostgreSQL only)."""
    admin = psycopg2.connect(
        host=cfg.host,
        port=cfg.effective_port,
        user=cfg.username,
        password=cfg.password.get_secret_value(),
        dbname="postgres",
    )
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (cfg.database,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{cfg.database}"')
    finally:
        admin.close()
