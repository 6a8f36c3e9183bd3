"""MySQL source and warehouse connections against the real MariaDB and PostgreSQL, without tunnels."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import connectorx
import psycopg2.errors
import pymysql
import pytest

from sync_platform.configuration.models import MySQLSourceConfig, WarehouseTargetConfig
from sync_platform.connections.mysql import MySQLSource
from sync_platform.connections.retry import ConnectionFailure, RetryPolicy
from sync_platform.connections.ssh_tunnel import TunnelPool
from sync_platform.connections.warehouse import Warehouse
from sync_platform_tests.connections.helpers import registry_for
from sync_platform_tests.stack import MySQLDatabase, free_port

# Characters that break naive URL building and shell quoting.
AWKWARD_PASSWORD = "p@ss:w/rd%&?#' \"x"


@pytest.fixture(scope="module")
def mysql_user(mysql_db: MySQLDatabase) -> Iterator[tuple[str, str]]:
    """A MariaDB user with an awkward password, granted everything on the test database."""
    user = f"spt_{uuid.uuid4().hex[:8]}"
    mysql_db.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (AWKWARD_PASSWORD,))
    mysql_db.execute(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY %s", (AWKWARD_PASSWORD,))
    mysql_db.execute(f"GRANT ALL ON `{mysql_db.name}`.* TO '{user}'@'%'")
    mysql_db.execute(f"GRANT ALL ON `{mysql_db.name}`.* TO '{user}'@'localhost'")
    try:
        yield user, AWKWARD_PASSWORD
    finally:
        mysql_db.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        mysql_db.execute(f"DROP USER IF EXISTS '{user}'@'localhost'")


def _source(mysql_db: MySQLDatabase, **overrides: object) -> MySQLSource:
    values: dict[str, object] = {
        "host": mysql_db.host,
        "port": mysql_db.port,
        "database": mysql_db.name,
        "username": mysql_db.user,
        "password": mysql_db.password,
    }
    values.update(overrides)
    return MySQLSource("src", MySQLSourceConfig.model_validate(values), TunnelPool(), retry=RetryPolicy(3, 0.05, 0.1))


def test_mysql_sessions_are_utc_utf8mb4_and_autocommit(make_config_dir, mysql_db):
    config = make_config_dir()
    with registry_for(config) as registry, registry.source(config.source).connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT @@session.time_zone, @@character_set_connection, @@autocommit, @@net_write_timeout")
        assert cur.fetchone() == ("+00:00", "utf8mb4", 1, 3600)
        cur.execute("SELECT CAST(%s AS CHAR CHARACTER SET utf8mb4)", ("emoji 🚀 ok",))
        assert cur.fetchone() == ("emoji 🚀 ok",)


def test_mysql_connection_is_closed_when_the_block_ends(mysql_db):
    source = _source(mysql_db)
    with source.connect() as conn:
        assert conn.open
    assert not conn.open


def test_mysql_password_with_url_characters_works_for_pymysql_and_connectorx(mysql_db, mysql_user):
    user, password = mysql_user
    mysql_db.execute("CREATE TABLE IF NOT EXISTS url_check (id INT PRIMARY KEY)")
    mysql_db.execute("REPLACE INTO url_check VALUES (7)")
    source = _source(mysql_db, username=user, password=password)
    with source.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone()[0].startswith(user)
    with source.endpoint() as (host, port):
        url = source.connection_url(host, port)
        assert password not in url  # quoted, never raw
        table = connectorx.read_sql(url, "SELECT id FROM url_check", return_type="arrow")
    assert table.column("id").to_pylist() == [7]


def test_mysql_wrong_password_fails_at_once_without_echoing_it(mysql_db, mysql_user):
    user, _ = mysql_user
    source = _source(mysql_db, username=user, password="Wr0ng-But-Secret!")
    started = time.monotonic()
    with pytest.raises(ConnectionFailure) as failure, source.connect():
        pass
    assert time.monotonic() - started < 2, "authentication errors are not retried"
    message = str(failure.value)
    assert "Wr0ng-But-Secret!" not in message
    assert f"{mysql_db.host}:{mysql_db.port}" in message
    assert "check username and password" in message
    assert not failure.value.transient


def test_mysql_unknown_database_is_named(mysql_db):
    source = _source(mysql_db, database="spt_no_such_database")
    with pytest.raises(ConnectionFailure, match="spt_no_such_database' exists"), source.connect():
        pass


def test_mysql_refused_port_is_retried_then_reported_with_its_address(mysql_db, caplog):
    port = free_port()
    source = _source(mysql_db, port=port, password="hunter2-secret")
    with pytest.raises(ConnectionFailure) as failure, source.connect():
        pass
    message = str(failure.value)
    assert f"127.0.0.1:{port}" in message
    assert "check that MySQL is running" in message
    assert failure.value.transient
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2  # three attempts in all
    assert all("hunter2-secret" not in r.getMessage() for r in caplog.records)


def test_mysql_connection_url_omits_an_empty_password(mysql_db):
    assert _source(mysql_db, password="").connection_url("h", 1) == f"mysql://root@h:1/{mysql_db.name}"


def test_mysql_does_not_connect_until_asked():
    cfg = MySQLSourceConfig(host="127.0.0.1", port=free_port(), database="x", username="u")
    source = MySQLSource("lazy", cfg, TunnelPool())
    assert source.address == f"127.0.0.1:{cfg.port}"
    assert source.tunnel_state() is None


# --------------------------------------------------------------------------- warehouse


def test_warehouse_sessions_have_a_statement_timeout_and_application_name(make_config_dir):
    config = make_config_dir()
    with registry_for(config) as registry:
        warehouse = registry.warehouse(config.target)
        assert warehouse.dialect == "postgres"
        with warehouse.connect() as conn, conn.cursor() as cur:
            assert conn.autocommit is False
            cur.execute("SHOW statement_timeout")
            assert cur.fetchone() == ("1h",)
            cur.execute("SELECT current_setting('application_name')")
            assert cur.fetchone() == ("sync_platform",)


def test_warehouse_work_is_rolled_back_unless_committed(make_config_dir, pg_db):
    pg_db.execute("CREATE TABLE IF NOT EXISTS tx_check (id int)")
    pg_db.execute("TRUNCATE tx_check")
    config = make_config_dir()
    with registry_for(config) as registry:
        warehouse = registry.warehouse(config.target)
        with warehouse.connect() as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO tx_check VALUES (1)")
        with pytest.raises(RuntimeError), warehouse.connect() as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO tx_check VALUES (2)")
            raise RuntimeError("boom")
        with warehouse.connect() as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO tx_check VALUES (3)")
            conn.commit()
    assert pg_db.query("SELECT id FROM tx_check") == [(3,)]


def test_warehouse_statement_timeout_comes_from_config(pg_db):
    cfg = WarehouseTargetConfig.model_validate(
        {
            "type": "postgres",
            "host": pg_db.host,
            "port": pg_db.port,
            "database": pg_db.name,
            "username": pg_db.user,
            "statement_timeout_seconds": 0.2,
        }
    )
    warehouse = Warehouse("dw", cfg, TunnelPool())
    with pytest.raises(psycopg2.errors.QueryCanceled), warehouse.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_sleep(2)")


def test_warehouse_refused_port_is_reported_with_its_address_and_no_password(pg_db):
    port = free_port()
    cfg = WarehouseTargetConfig.model_validate(
        {
            "type": "postgres",
            "host": "127.0.0.1",
            "port": port,
            "database": pg_db.name,
            "username": "postgres",
            "password": "redshift-Secret-99",
        }
    )
    warehouse = Warehouse("dw", cfg, TunnelPool(), retry=RetryPolicy(2, 0.05, 0.1))
    with pytest.raises(ConnectionFailure) as failure, warehouse.connect():
        pass
    message = str(failure.value)
    assert f"127.0.0.1:{port}" in message and "redshift-Secret-99" not in message
    assert "check that the warehouse is running" in message
    assert failure.value.transient


def test_warehouse_unknown_database_is_not_retried(pg_db):
    cfg = WarehouseTargetConfig.model_validate(
        {
            "type": "postgres",
            "host": pg_db.host,
            "port": pg_db.port,
            "database": "spt_missing_db",
            "username": "postgres",
        }
    )
    warehouse = Warehouse("dw", cfg, TunnelPool(), retry=RetryPolicy(5, 1.0, 1.0))
    started = time.monotonic()
    with pytest.raises(ConnectionFailure, match="spt_missing_db") as failure, warehouse.connect():
        pass
    assert time.monotonic() - started < 1
    assert not failure.value.transient


def test_redshift_targets_default_to_port_5439_and_the_redshift_dialect():
    cfg = WarehouseTargetConfig(host="cluster.example", database="dw", username="u")
    warehouse = Warehouse("rs", cfg, TunnelPool())
    assert warehouse.dialect == "redshift"
    assert warehouse.port == 5439
    assert warehouse.address == "cluster.example:5439"


def test_a_pymysql_error_after_connect_is_not_wrapped(mysql_db):
    """Only connecting is translated; query errors reach the caller as the driver raised them."""
    with pytest.raises(pymysql.err.ProgrammingError), _source(mysql_db).connect() as conn, conn.cursor() as cur:
        cur.execute("SELEC 1")
