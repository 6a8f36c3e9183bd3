"""Real servers broken under a running sync: the run fails clearly or retries; the next run is exact.

Each sync runs in a child process paused at a checkpoint (``SYNC_PLATFORM_PAUSE_AT``) while the
test breaks a server — the SSH bastion, MariaDB itself, the loader's PostgreSQL backend, the S3
server — and then lets it continue. The rerun must leave target == source with nothing doubled.
"""

from __future__ import annotations

import subprocess

import pytest

from sync_platform_tests.engine.harness import Harness
from sync_platform_tests.reliability.support import (
    APPEND_COLUMNS,
    KEYED_COLUMNS,
    ChildSync,
    assert_exact,
    make_append,
    make_keyed,
    wait_until,
)
from sync_platform_tests.stack import (
    DUMMY_AWS_ENV,
    MotoS3,
    connections_document,
    ensure_mariadb,
    environment,
    port_open,
)

ROWS = 600


@pytest.fixture
def harness(mysql_db, pg_db, make_config_dir) -> Harness:
    """PostgreSQL only, unlike the rest of the suite: these tests find the loader's COPY backend in
    pg_stat_activity while it streams (a Redshift COPY from S3 is one statement after the checkpoint),
    and stopping the local servers would take the stand-in's backing database down with them anyway."""
    return Harness(make_config_dir(), mysql_db, pg_db)


def _first_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("ERROR ")]
    return lines[-1] if lines else err.strip().splitlines()[-1]


def test_sshd_stopped_mid_extract(mysql_db, pg_db, make_config_dir, sshd, tmp_path, fault_report) -> None:
    h = Harness(make_config_dir(tunnel="source"), mysql_db, pg_db)
    make_append(h, "t_sshd", ROWS)
    child = ChildSync(h, "t_sshd", tmp_path / "child").start(pause_at="extract.page:3")
    child.wait_reached("extract.page")
    sshd.stop()  # the bastion goes away, and with it every session (the tunnel) it carried
    child.release("extract.page")
    code, _, err = child.wait()
    assert code == 1, f"the run must fail once its tunnel is gone (exit {code}): {err[-1500:]}"
    message = _first_line(err)
    assert "Traceback" not in err, err[-3000:]
    assert "Lost connection" in message, message

    code, _, err = child.run()  # the bastion is still down: a clear "cannot reach" error
    assert code == 1
    down_message = _first_line(err)
    assert "bastion" in down_message.lower() and str(sshd.port) in down_message, down_message

    sshd.start()
    code, _, err = child.run()
    assert code == 0, err[-2000:]
    rows = assert_exact(h, "t_sshd", APPEND_COLUMNS)
    fault_report(
        "SSH bastion (sshd) stopped mid-extract, sessions killed — append table",
        f"run failed: {message[:200]!r}; rerun with the bastion down failed: {down_message[:200]!r}; "
        f"after sshd restart the next run completed, target == source ({rows} rows, no duplicates)",
    )


def _mariadb_shutdown() -> None:
    subprocess.run(
        ["mariadb-admin", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "shutdown"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert wait_until(lambda: not port_open("127.0.0.1", 3306), 60), "MariaDB did not stop"
    # The port closes before the process exits: starting again too early would be a no-op.
    assert wait_until(lambda: not _mariadbd_running(), 120), "mariadbd did not exit"


def _mariadbd_running() -> bool:
    status = ["start-stop-daemon", "--status", "--exec", "/usr/sbin/mariadbd"]
    return subprocess.run(status, capture_output=True, check=False).returncode == 0


@pytest.mark.reliability_slow
def test_mariadb_restarted_mid_run(harness: Harness, tmp_path, fault_report) -> None:
    make_append(harness, "t_mariadb", ROWS)
    child = ChildSync(harness, "t_mariadb", tmp_path / "child").start(pause_at="extract.page:3")
    child.wait_reached("extract.page")
    try:
        _mariadb_shutdown()
        child.release("extract.page")  # the sync goes on while the server is down
        code, _, err = child.wait()
    finally:
        ensure_mariadb()  # DESIGN §7's start command; waits until the server answers
    assert code == 1, f"the run cannot succeed with its source down (exit {code}): {err[-1500:]}"
    message = _first_line(err)
    assert "Traceback" not in err, err[-3000:]
    # The real cause, not the failed RELEASE_LOCK on the dead connection that used to replace it.
    assert "Lost connection" in message, message

    code, _, err = child.run()
    assert code == 0, err[-2000:]
    rows = assert_exact(harness, "t_mariadb", APPEND_COLUMNS)
    fault_report(
        "MariaDB shut down mid-extract (mariadb-admin shutdown), restarted after the run gave up — append table",
        f"run failed after its retries: {message[:200]!r}; after the restart the next run completed, "
        f"target == source ({rows} rows, no duplicates)",
    )


def test_postgres_backend_terminated_mid_load(harness: Harness, tmp_path, fault_report) -> None:
    make_append(harness, "t_pgterm", ROWS)
    child = ChildSync(harness, "t_pgterm", tmp_path / "child").start(pause_at="load.copy:2")
    child.wait_reached("load.copy")
    copy_backends = harness.pg.query(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'sync_platform' "
        "AND query ILIKE 'COPY%%'",
        (harness.pg.name,),
    )
    assert len(copy_backends) == 1, f"the loader's COPY is running: {copy_backends}"
    harness.pg.query("SELECT pg_terminate_backend(%s)", (copy_backends[0][0],))
    child.release("load.copy")
    code, _, err = child.wait()
    assert code == 1, f"the load must fail when its backend is killed (exit {code}): {err[-1500:]}"
    message = _first_line(err)
    assert "Traceback" not in err, err[-3000:]
    # The LoadError naming table and batch, not the failed rollback on the dead connection.
    assert "LoadError" in message and "t_pgterm" in message and "failed" in message, message
    code, _, err = child.run()
    assert code == 0, err[-2000:]
    rows = assert_exact(harness, "t_pgterm", APPEND_COLUMNS)
    fault_report(
        "PostgreSQL backend terminated during COPY (pg_terminate_backend) — append table",
        f"run failed: {message[:200]!r}; the next run completed, target == source ({rows} rows, no duplicates)",
    )


# "append, lost": the loaded batches vanish from staging before the watermark is stored; the extract
# resume point must come from the warehouse ledger, or their rows are appended again.
@pytest.mark.parametrize(
    ("kind", "staged_data"), [("keyed", "kept"), ("append", "kept"), ("keyed", "lost"), ("append", "lost")]
)
def test_s3_server_stopped_and_restarted(
    mysql_db, pg_db, make_config_dir, tmp_path, kind, staged_data, fault_report
) -> None:
    with environment(DUMMY_AWS_ENV):
        server = MotoS3()
        server.start()
        try:
            _s3_stop_restart(mysql_db, pg_db, make_config_dir, tmp_path, kind, staged_data, server, fault_report)
        finally:
            server.stop()


def _s3_stop_restart(mysql_db, pg_db, make_config_dir, tmp_path, kind, staged_data, server, fault_report) -> None:
    config = make_config_dir()
    bucket = server.create_bucket("reliability")
    staging = {
        "bucket_name": bucket,
        "region": "us-east-1",
        "endpoint_url": server.endpoint_url,
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "performance": {"retry_max_attempts": 2},
    }
    config.write(
        "connections.yml",
        connections_document(mysql=mysql_db, postgres=pg_db, staging=staging, connection_settings={"retry_delay": 0.1}),
    )
    h = Harness(config, mysql_db, pg_db)
    table = f"t_s3_{kind}_{staged_data}"
    (make_keyed if kind == "keyed" else make_append)(h, table, ROWS)
    columns, key = (KEYED_COLUMNS, "id") if kind == "keyed" else (APPEND_COLUMNS, None)
    child = ChildSync(h, table, tmp_path / "child").start(pause_at="stage.before_manifest:3")
    child.wait_reached("stage.before_manifest")  # two batches staged (and loaded) already
    server.stop()
    child.release("stage.before_manifest")
    code, _, err = child.wait()
    assert code == 1, f"the run must fail with its staging store gone (exit {code}): {err[-1500:]}"
    message = _first_line(err)
    assert "Traceback" not in err, err[-3000:]
    assert server.endpoint_url in message or bucket in message, message

    server.start()  # same port; moto keeps its objects in this process, so the batches are still there
    if staged_data == "lost":  # as when a server restarts empty or a lifecycle rule removed the batches
        client = server.client()
        objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": o["Key"]} for o in objects]})
    code, _, err = child.run()
    assert code == 0, err[-2000:]
    rows = assert_exact(h, table, columns, key=key)
    fault_report(
        f"S3 server stopped mid-run (2 batches staged and loaded), restarted with its data {staged_data} "
        f"— {kind} table",
        f"run failed: {message[:160]!r}; the next run completed, target == source ({rows} rows, no duplicates)",
    )
