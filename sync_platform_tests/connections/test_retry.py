"""Retry with backoff, and which database errors count as transient (errors made by real servers)."""

from __future__ import annotations

import threading

import psycopg2
import pymysql
import pytest

from sync_platform.connections.retry import (
    ConnectionFailure,
    backoff_delay,
    is_transient_db_error,
    mask_secrets,
    retry,
)
from sync_platform_tests.stack import MySQLDatabase, PostgresDatabase, free_port


def _raised(fn) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError("expected an error")


def test_transient_failures_are_retried_until_success():
    calls: list[int] = []
    waits: list[float] = []
    seen: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("reset")
        return "ok"

    result = retry(
        flaky,
        attempts=5,
        base_delay=0.1,
        max_delay=1.0,
        sleep=waits.append,
        on_retry=lambda attempt, exc, delay: seen.append(attempt),
    )
    assert result == "ok"
    assert len(calls) == 3 and seen == [1, 2]
    assert 0.05 <= waits[0] <= 0.1 and 0.1 <= waits[1] <= 0.2  # exponential, with jitter


def test_permanent_failures_are_raised_at_once():
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        retry(broken, attempts=5, base_delay=0.1, max_delay=1.0, sleep=lambda _: None)
    assert len(calls) == 1


def test_the_last_transient_error_propagates_after_the_last_attempt():
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise ConnectionRefusedError(f"refused {len(calls)}")

    with pytest.raises(ConnectionRefusedError, match="refused 3"):
        retry(down, attempts=3, base_delay=0.01, max_delay=0.01, sleep=lambda _: None)


def test_backoff_is_capped_and_never_zero():
    for attempt in range(1, 20):
        delay = backoff_delay(attempt, base_delay=1.0, max_delay=8.0)
        assert min(8.0, 2 ** (attempt - 1)) / 2 <= delay <= 8.0


def test_mysql_refused_connection_is_transient():
    exc = _raised(lambda: pymysql.connect(host="127.0.0.1", port=free_port(), connect_timeout=2))
    assert is_transient_db_error(exc)


def test_mysql_syntax_error_is_not_transient(mysql_db: MySQLDatabase):
    assert not is_transient_db_error(_raised(lambda: mysql_db.execute("SELEC 1")))


def test_mysql_unknown_table_is_not_transient(mysql_db: MySQLDatabase):
    assert not is_transient_db_error(_raised(lambda: mysql_db.query("SELECT * FROM no_such_table")))


def test_mysql_killed_connection_is_transient(mysql_db: MySQLDatabase):
    conn = mysql_db.connect()
    mysql_db.execute(f"KILL {conn.thread_id()}")

    def use() -> None:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")

    assert is_transient_db_error(_raised(use))


def test_mysql_deadlock_and_lock_wait_codes_are_transient():
    assert is_transient_db_error(pymysql.err.OperationalError(1213, "Deadlock found"))
    assert is_transient_db_error(pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"))
    assert not is_transient_db_error(pymysql.err.OperationalError(1045, "Access denied"))


def test_postgres_refused_connection_is_transient():
    exc = _raised(lambda: psycopg2.connect(host="127.0.0.1", port=free_port(), user="postgres", connect_timeout=2))
    assert is_transient_db_error(exc)


def test_postgres_syntax_error_and_missing_database_are_not_transient(pg_db: PostgresDatabase):
    assert not is_transient_db_error(_raised(lambda: pg_db.execute("SELEC 1")))
    missing = PostgresDatabase("spt_no_such_database")
    assert not is_transient_db_error(_raised(missing.connect))


def test_postgres_terminated_backend_is_transient(pg_db: PostgresDatabase):
    conn = pg_db.connect()
    pid = conn.get_backend_pid()
    pg_db.execute("SELECT pg_terminate_backend(%s)", (pid,))

    def use() -> None:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")

    assert is_transient_db_error(_raised(use))


def test_postgres_deadlock_is_transient(pg_db: PostgresDatabase):
    pg_db.execute("CREATE TABLE IF NOT EXISTS deadlock_check (id int PRIMARY KEY, v int)")
    pg_db.execute("INSERT INTO deadlock_check VALUES (1, 0), (2, 0) ON CONFLICT DO NOTHING")
    first, second = pg_db.connect(), pg_db.connect()
    for conn in (first, second):
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute("SET deadlock_timeout = '50ms'")
    errors: list[BaseException] = []
    both_locked = threading.Barrier(2)

    def worker(conn, own: int, other: int) -> None:  # type: ignore[no-untyped-def]
        try:
            with conn.cursor() as cur:
                cur.execute("UPDATE deadlock_check SET v = v + 1 WHERE id = %s", (own,))
                both_locked.wait(10)
                cur.execute("UPDATE deadlock_check SET v = v + 1 WHERE id = %s", (other,))
            conn.commit()
        except psycopg2.Error as exc:
            errors.append(exc)
            conn.rollback()

    threads = [
        threading.Thread(target=worker, args=(first, 1, 2)),
        threading.Thread(target=worker, args=(second, 2, 1)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    first.close()
    second.close()
    assert len(errors) == 1
    assert isinstance(errors[0], psycopg2.errors.DeadlockDetected)
    assert is_transient_db_error(errors[0])


def test_connection_failures_carry_their_own_verdict():
    assert is_transient_db_error(ConnectionFailure("bastion down", transient=True))
    assert not is_transient_db_error(ConnectionFailure("bad key"))


def test_secrets_are_masked_raw_and_url_quoted():
    secret = "p@ss/w rd"
    text = f"mysql://u:{secret}@h/db mysql://u:p%40ss%2Fw%20rd@h/db mysql://u:p%40ss%2Fw+rd@h/db"
    masked = mask_secrets(text, [secret, None, ""])
    assert "p@ss" not in masked and "p%40ss" not in masked
    assert masked.count("***") == 3
