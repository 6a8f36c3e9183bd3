"""SSH tunnels through a real OpenSSH bastion: really used, shared, closed, and failing clearly."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import connectorx
import pymysql
import pytest

from sync_platform.configuration.models import SSHTunnelConfig
from sync_platform.connections.retry import ConnectionFailure
from sync_platform.connections.ssh_tunnel import TunnelError, TunnelPool
from sync_platform_tests.connections.helpers import registry_for
from sync_platform_tests.stack import MYSQL_PORT, POSTGRES_PORT, SSHServer, free_port, port_open


def _spec(sshd: SSHServer, **overrides: object) -> SSHTunnelConfig:
    values: dict[str, object] = {
        "enabled": True,
        "host": sshd.host,
        "port": sshd.port,
        "username": sshd.username,
        "private_key_path": str(sshd.private_key_path),
    }
    values.update(overrides)
    return SSHTunnelConfig.model_validate(values)


def _wait_for_forward(sshd: SSHServer, target: tuple[str, int], before: int, timeout: float = 5.0) -> None:
    """sshd writes its log asynchronously; wait for a new direct-tcpip line to the target."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sshd.forwards()[before:].count(target):
            return
        time.sleep(0.05)
    raise AssertionError(f"no direct-tcpip forward to {target} in {sshd.log_path}: {sshd.forwards()[before:]}")


def test_mysql_through_the_bastion_is_forwarded_by_sshd(make_config_dir, sshd):
    config = make_config_dir(tunnel="source")
    before = len(sshd.forwards())
    with registry_for(config) as registry:
        source = registry.source(config.source)
        with source.endpoint() as (host, port):
            assert (host, port) != ("127.0.0.1", MYSQL_PORT)  # the client only ever sees the tunnel
        with source.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT DATABASE()")
            assert cur.fetchone() == (source.database,)
    _wait_for_forward(sshd, ("127.0.0.1", MYSQL_PORT), before)


def test_connectorx_reads_through_the_tunnel_with_the_sources_url(make_config_dir, mysql_db, sshd):
    mysql_db.execute("CREATE TABLE IF NOT EXISTS cx_tunnel (id INT PRIMARY KEY, label VARCHAR(10))")
    mysql_db.execute("REPLACE INTO cx_tunnel VALUES (1, 'one'), (2, 'two')")
    config = make_config_dir(tunnel="source")
    before = len(sshd.forwards())
    with registry_for(config) as registry:
        source = registry.source(config.source)
        with source.endpoint() as (host, port):
            table = connectorx.read_sql(
                source.connection_url(host, port), "SELECT id, label FROM cx_tunnel ORDER BY id", return_type="arrow"
            )
    assert table.column("label").to_pylist() == ["one", "two"]
    _wait_for_forward(sshd, ("127.0.0.1", MYSQL_PORT), before)


def test_postgres_through_the_bastion_is_forwarded_by_sshd(make_config_dir, sshd):
    config = make_config_dir(tunnel="target")
    before = len(sshd.forwards())
    with registry_for(config) as registry:
        warehouse = registry.warehouse(config.target)
        with warehouse.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT current_database(), inet_server_port()")
            database, server_port = cur.fetchone()
        assert database == warehouse.cfg.database
        assert server_port == POSTGRES_PORT
    _wait_for_forward(sshd, ("127.0.0.1", POSTGRES_PORT), before)


def test_a_database_reachable_only_from_the_bastion_is_reached_through_it(sshd):
    """The remote address is resolved on the bastion: the client is given the bastion's address only."""
    pool = TunnelPool()
    spec = _spec(sshd)
    before = len(sshd.forwards())
    # "localhost" as the remote name: resolved by sshd, never by this client.
    with pool.open(spec, "localhost", MYSQL_PORT) as (host, port):
        assert host == "127.0.0.1" and port not in (MYSQL_PORT, sshd.port)
        with pymysql.connect(host=host, port=port, user="root", password="") as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    _wait_for_forward(sshd, ("localhost", MYSQL_PORT), before)
    pool.close()


def test_two_users_of_the_same_bastion_and_remote_share_one_tunnel(sshd):
    pool = TunnelPool()
    spec = _spec(sshd)
    sessions_before = sshd.count_sessions_accepted()
    with pool.open(spec, "127.0.0.1", MYSQL_PORT) as first, pool.open(spec, "127.0.0.1", MYSQL_PORT) as second:
        assert first == second
        [info] = pool.active()
        assert info.users == 2 and info.active
        assert pool.state(spec, "127.0.0.1", MYSQL_PORT) == "open (2 users)"
    time.sleep(0.2)
    assert sshd.count_sessions_accepted() == sessions_before + 1
    pool.close()


def test_tunnels_to_different_remotes_are_separate(sshd):
    pool = TunnelPool()
    spec = _spec(sshd)
    with pool.open(spec, "127.0.0.1", MYSQL_PORT) as mysql_end, pool.open(spec, "127.0.0.1", POSTGRES_PORT) as pg_end:
        assert mysql_end != pg_end
        assert len(pool.active()) == 2
    assert pool.active() == []


def test_the_tunnel_closes_when_its_last_user_leaves(sshd):
    pool = TunnelPool()
    spec = _spec(sshd)
    with pool.open(spec, "127.0.0.1", MYSQL_PORT) as (host, port):
        with pool.open(spec, "127.0.0.1", MYSQL_PORT):
            pass
        assert port_open(host, port), "the first user still holds the tunnel"
    assert pool.active() == []
    assert pool.state(spec, "127.0.0.1", MYSQL_PORT) == "closed"
    assert not port_open(host, port)


def test_concurrent_users_open_a_single_tunnel(sshd):
    pool = TunnelPool()
    spec = _spec(sshd)
    ports: list[int] = []
    errors: list[BaseException] = []
    inside = threading.Barrier(4)

    def user() -> None:
        try:
            with pool.open(spec, "127.0.0.1", MYSQL_PORT) as (_host, port):
                ports.append(port)
                inside.wait(timeout=20)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=user) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(set(ports)) == 1
    assert pool.active() == []


def test_connections_through_a_stopped_bastion_fail_naming_the_bastion(make_config_dir, sshd):
    config = make_config_dir(tunnel=True)
    with registry_for(config) as registry:
        sshd.stop()
        try:
            with pytest.raises(ConnectionFailure) as mysql_failure, registry.source(config.source).connect():
                pass
            with pytest.raises(ConnectionFailure) as pg_failure, registry.warehouse(config.target).connect():
                pass
        finally:
            sshd.start()
    for failure in (mysql_failure, pg_failure):
        message = str(failure.value)
        assert f"{sshd.host}:{sshd.port}" in message
        assert "bastion" in message
        assert failure.value.transient


def test_a_tunnel_is_reopened_after_the_bastion_restarts(make_config_dir, sshd):
    config = make_config_dir(tunnel="source")
    with registry_for(config) as registry:
        source = registry.source(config.source)
        with source.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
        sshd.stop()
        sshd.start()
        with source.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT 2")
            assert cur.fetchone() == (2,)


def test_an_open_tunnel_dies_with_its_bastion_and_the_next_connect_heals(make_config_dir, sshd):
    config = make_config_dir(tunnel="source")
    with registry_for(config) as registry:
        source = registry.source(config.source)
        with source.connect() as conn:
            sshd.stop()  # kills the live SSH session under the open connection
            with pytest.raises(pymysql.err.OperationalError, match="Lost connection"), conn.cursor() as cur:
                cur.execute("SELECT SLEEP(0.1)")
                cur.fetchall()
            sshd.start()
        with source.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT 3")
            assert cur.fetchone() == (3,)


def test_a_wrong_key_is_refused_with_a_hint(sshd, tmp_path: Path):
    import subprocess

    other_key = tmp_path / "other_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    pool = TunnelPool()
    with (
        pytest.raises(TunnelError) as failure,
        pool.open(_spec(sshd, private_key_path=str(other_key)), "127.0.0.1", 3306),
    ):
        pass
    message = str(failure.value)
    assert f"{sshd.host}:{sshd.port}" in message
    assert "private_key_path" in message
    assert not failure.value.transient


def test_a_missing_key_file_is_named(sshd, tmp_path: Path):
    pool = TunnelPool()
    missing = tmp_path / "no_such_key"
    with pytest.raises(TunnelError, match="no_such_key"), pool.open(_spec(sshd, private_key_path=str(missing)), "h", 1):
        pass


def test_a_bastion_nobody_listens_on_fails_fast():
    pool = TunnelPool(connect_timeout=2)
    port = free_port()
    spec = SSHTunnelConfig(enabled=True, host="127.0.0.1", port=port, username="root", private_key_path="/nope")
    started = time.monotonic()
    with pytest.raises(TunnelError) as failure, pool.open(spec, "127.0.0.1", 3306):
        pass
    assert time.monotonic() - started < 2
    assert f"127.0.0.1:{port}" in str(failure.value)
    assert "Connection refused" in str(failure.value)
