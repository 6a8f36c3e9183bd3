"""Transactions longer than the lookback, and a new warehouse without the load ledger (issue 11, cases 2 and 6).

A row stamped by a transaction that commits later than ``lookback`` after the stamp must still
arrive: the run's ceiling stays below the start of the oldest open writing transaction on the source
(``information_schema.INNODB_TRX``), and the run names the transaction that held it back. Other
sessions on the shared MariaDB may hold the ceiling back too: the tests assert on their own
transaction being named and on the rows that arrive, never on being the only holder.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pymysql
import pytest
from dagster._core.instance.ref import InstanceRef

from sync_platform.engine.sync import LostTargetError
from sync_platform.orchestration.keys import staging_key
from sync_platform_tests.cli.test_config_and_connections_cli import run
from sync_platform_tests.engine.harness import PIPELINE, Harness, assert_same
from sync_platform_tests.stack import MySQLDatabase

COLUMNS = ["id", "name", "updated_at"]
SETTLE_SECONDS = 10.0  # how long a test waits for other sessions' transactions to stop holding its ceiling


@pytest.fixture
def harness(mysql_db, warehouse_db, make_config_dir) -> Harness:
    return Harness(make_config_dir(postgres=warehouse_db), mysql_db, warehouse_db)


def _table(h: Harness, table: str, cursor_type: str, rows: int = 5) -> None:
    h.mysql.execute(f"DROP TABLE IF EXISTS `{table}`")
    h.mysql.execute(
        f"CREATE TABLE `{table}` (id INT PRIMARY KEY, name VARCHAR(32), updated_at {cursor_type} NOT NULL, "
        "KEY (updated_at))"
    )
    h.mysql.executemany(
        f"INSERT INTO `{table}` VALUES (%s, %s, NOW(6) - INTERVAL 1 HOUR)", [(i, f"row {i}") for i in range(rows)]
    )


def _fast(h: Harness, table: str) -> None:
    """Seconds, not minutes: a 1 s lookback and a 0.5 s safety lag."""
    h.set_tables(
        {
            f"{h.mysql.name}.{table}": {
                "cdc_strategy": "hybrid",
                "cdc_timestamp_column": "updated_at",
                "lookback": "1s",
                "safety_lag": "0.5s",
            }
        }
    )


@pytest.fixture
def writer(mysql_db: MySQLDatabase) -> Iterator[pymysql.connections.Connection]:
    """A session of its own with an explicit transaction, as an application holds one open."""
    conn = mysql_db.connect()
    conn.autocommit(False)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


def _thread_id(conn: pymysql.connections.Connection) -> int:
    with conn.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        return int(cursor.fetchone()[0])


@pytest.mark.parametrize("cursor_type", ["DATETIME(6)", "TIMESTAMP(6)"])
def test_a_row_committed_long_after_its_stamp_arrives_and_the_holding_transaction_is_named(
    harness: Harness, writer: pymysql.connections.Connection, cursor_type: str
) -> None:
    table = f"late_{cursor_type[:4].lower()}"
    _table(harness, table, cursor_type)
    _fast(harness, table)
    assert harness.sync(table).extract.rows == 5

    # The transaction stamps an update and an insert now, and commits only after two runs.
    with writer.cursor() as cursor:
        cursor.execute(f"UPDATE `{table}` SET name = 'late update', updated_at = NOW(6) WHERE id = 3")
        cursor.execute(f"INSERT INTO `{table}` VALUES (100, 'late insert', NOW(6))")
    thread = _thread_id(writer)
    time.sleep(2.0)  # past lookback + safety lag
    harness.mysql.execute(f"UPDATE `{table}` SET name = 'quick', updated_at = NOW(6) WHERE id = 1")
    time.sleep(1.0)  # the quick update is past the safety lag too

    held = harness.sync(table)
    holders = held.extract.ceiling_held_by
    assert thread in [h["thread_id"] for h in holders], holders
    ours = next(h for h in holders if h["thread_id"] == thread)
    assert ours["rows_modified"] == 2 and ours["open_seconds"] >= 2
    report = " ".join(held.extract.warnings)
    assert "ceiling held back to" in report and f"of MySQL thread {thread} (" in report
    assert "The rows they write arrive in the first run after they commit" in report
    # Nothing stamped after the transaction's start was read: the quick update waits for it.
    before = dict(harness.pg.query(f"SELECT id, name FROM {harness.target(table)}"))
    assert before[1] == "row 1" and 100 not in before

    writer.commit()
    time.sleep(1.0)
    _sync_until_free(harness, table)
    assert assert_same(harness, table, COLUMNS, "id") == 6
    names = dict(harness.pg.query(f"SELECT id, name FROM {harness.target(table)}"))
    assert names[3] == "late update" and names[100] == "late insert" and names[1] == "quick"


def test_the_cli_summary_json_and_dagster_metadata_name_the_holding_transaction(
    harness: Harness, writer: pymysql.connections.Connection, tmp_path: Path
) -> None:
    _table(harness, "shown", "DATETIME(6)")
    _fast(harness, "shown")
    table = f"{harness.mysql.name}.shown"
    home = tmp_path / "dagster_home"
    home.mkdir()
    report = tmp_path / "result.json"

    def sync():
        return run("--config-dir", str(harness.config.path), "sync", "pipeline", "-p", PIPELINE, "-t", table,
                   "--json-output", str(report), env={"DAGSTER_HOME": str(home)})  # fmt: skip

    assert sync().returncode == 0
    with writer.cursor() as cursor:
        cursor.execute("UPDATE shown SET name = 'late', updated_at = NOW(6) WHERE id = 2")
    thread = _thread_id(writer)
    time.sleep(1.5)
    harness.mysql.execute("UPDATE shown SET name = 'quick', updated_at = NOW(6) WHERE id = 1")
    time.sleep(1.0)
    held = sync()
    assert held.returncode == 0, held.stdout + held.stderr
    line = f"warning: src:{table}: ceiling held back to"
    assert line in held.stderr and f"of MySQL thread {thread} (" in held.stderr, held.stdout + held.stderr
    warnings = json.loads(report.read_text())["table_results"][table]["warnings"]
    assert any(f"of MySQL thread {thread} (" in w for w in warnings)
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    try:
        event = instance.get_latest_materialization_event(staging_key(harness.spec("shown")))
        assert event is not None and event.asset_materialization is not None
        holders = event.asset_materialization.metadata["ceiling_held_by"].value
        assert thread in [h["thread_id"] for h in holders]  # type: ignore[union-attr]
    finally:
        instance.dispose()
    writer.commit()
    time.sleep(1.0)
    deadline = time.monotonic() + SETTLE_SECONDS
    while sync().returncode == 0 and "ceiling held back" in json.dumps(json.loads(report.read_text())):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert assert_same(harness, "shown", COLUMNS, "id") == 5


def _sync_until_free(h: Harness, table: str) -> None:
    """Sync until no other session's transaction holds the ceiling below this test's rows."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        result = h.sync(table)
        if not result.extract.ceiling_held_by or time.monotonic() > deadline:
            return
        time.sleep(0.5)


def test_without_the_process_privilege_the_run_says_so_once_and_falls_back_to_the_lookback(
    harness: Harness, make_config_dir, warehouse_db
) -> None:
    user = f"spt_noproc_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    root = harness.mysql
    root.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (user, password))
    try:
        root.execute(f"GRANT ALL PRIVILEGES ON `{root.name}`.* TO %s@'127.0.0.1'", (user,))
        limited = Harness(make_config_dir(mysql=replace(root, user=user, password=password), postgres=warehouse_db),
                          root, warehouse_db)  # fmt: skip
        _table(limited, "noproc", "DATETIME(6)")
        _fast(limited, "noproc")
        first = limited.sync("noproc")
        grant = f"GRANT PROCESS ON *.* TO '{user}'@'127.0.0.1'"
        said = [w for w in first.extract.warnings if "PROCESS privilege" in w]
        assert len(said) == 1, first.extract.warnings
        assert "cannot read information_schema.INNODB_TRX" in said[0] and grant in said[0]
        assert "lookback (1 s)" in said[0]
        assert first.extract.ceiling_held_by == []
        assert assert_same(limited, "noproc", COLUMNS, "id") == 5
        limited.mysql.execute("UPDATE noproc SET name = 'changed', updated_at = NOW(6) WHERE id = 2")
        time.sleep(1.0)
        second = limited.sync("noproc")  # the lookback alone: rows committed promptly still arrive
        assert second.extract.rows >= 1
        assert assert_same(limited, "noproc", COLUMNS, "id") == 5
    finally:
        root.execute("DROP USER IF EXISTS %s@'127.0.0.1'", (user,))


def test_an_append_table_with_an_epoch_cursor_is_held_back_by_an_open_transaction(
    harness: Harness, writer: pymysql.connections.Connection
) -> None:
    """No lookback at all (append): only the transaction bound keeps the late row."""
    harness.mysql.execute("DROP TABLE IF EXISTS events")
    harness.mysql.execute("CREATE TABLE events (seq INT, name VARCHAR(32), at_ms BIGINT NOT NULL, KEY (at_ms))")
    now_ms = "CAST(UNIX_TIMESTAMP(NOW(6)) * 1000 AS UNSIGNED)"
    harness.mysql.execute(f"INSERT INTO events SELECT seq, 'old', {now_ms} - 3600000 FROM "
                          "(SELECT 1 AS seq UNION SELECT 2 UNION SELECT 3) AS s")  # fmt: skip
    harness.set_tables(
        {f"{harness.mysql.name}.events": {"cdc_strategy": "timestamp_only", "cdc_timestamp_column": "at_ms",
                                          "safety_lag": "0.5s"}}
    )  # fmt: skip
    assert harness.sync("events").extract.rows == 3
    with writer.cursor() as cursor:
        cursor.execute(f"INSERT INTO events VALUES (4, 'late', {now_ms})")
    thread = _thread_id(writer)
    time.sleep(1.5)
    harness.mysql.execute(f"INSERT INTO events VALUES (5, 'quick', {now_ms})")
    time.sleep(1.0)
    held = harness.sync("events")
    assert thread in [h["thread_id"] for h in held.extract.ceiling_held_by]
    writer.commit()
    time.sleep(1.0)
    _sync_until_free(harness, "events")
    rows = harness.pg.query(f"SELECT seq, name FROM {harness.target('events')} ORDER BY seq")
    assert rows == [(1, "old"), (2, "old"), (3, "old"), (4, "late"), (5, "quick")]


def test_an_id_committed_after_a_higher_one_still_arrives_in_an_append_table(
    harness: Harness, writer: pymysql.connections.Connection
) -> None:
    """Auto-increment ids commit out of order: the id ceiling stays below the first one not committed yet."""
    harness.mysql.execute("DROP TABLE IF EXISTS appended")
    harness.mysql.execute("CREATE TABLE appended (id INT NOT NULL AUTO_INCREMENT, name VARCHAR(32), KEY (id))")
    harness.mysql.execute("INSERT INTO appended (name) VALUES ('a'), ('b'), ('c')")
    harness.set_tables({f"{harness.mysql.name}.appended": {"cdc_strategy": "id_only", "cdc_id_column": "id"}})
    assert harness.sync("appended").extract.rows == 3
    with writer.cursor() as cursor:
        cursor.execute("INSERT INTO appended (name) VALUES ('late')")  # id 4, not committed
    thread = _thread_id(writer)
    harness.mysql.execute("INSERT INTO appended (name) VALUES ('quick')")  # id 5, committed
    held = harness.sync("appended")
    assert held.extract.rows == 0, "id 5 must wait for id 4"
    report = " ".join(held.extract.warnings)
    assert "ceiling held back to id 3 (from 5): id 4 is inserted by a transaction that has not committed" in report
    assert thread in [h["thread_id"] for h in held.extract.ceiling_held_by]
    writer.commit()
    assert harness.sync("appended").extract.rows == 2
    rows = harness.pg.query(f"SELECT id, name FROM {harness.target('appended')} ORDER BY id")
    assert rows == [(1, "a"), (2, "b"), (3, "c"), (4, "late"), (5, "quick")]
    assert harness.sync("appended").extract.rows == 0


# --------------------------------------------------------------------------- case 6: a new warehouse


def test_a_new_warehouse_without_the_ledger_is_filled_from_the_beginning_by_the_cli(
    harness: Harness, tmp_path: Path
) -> None:
    table = f"{harness.mysql.name}.fresh"
    harness.mysql.execute("DROP TABLE IF EXISTS fresh")
    harness.mysql.execute(
        "CREATE TABLE fresh (id INT PRIMARY KEY, name VARCHAR(32), updated_at DATETIME(6) NOT NULL, KEY (updated_at))"
    )
    base = dt.datetime(2025, 1, 1)
    harness.mysql.executemany(
        "INSERT INTO fresh VALUES (%s, %s, %s)", [(i, f"row {i}", base + dt.timedelta(minutes=i)) for i in range(20)]
    )
    harness.set_tables({table: {"cdc_strategy": "hybrid", "cdc_timestamp_column": "updated_at", "lookback": 0}})
    home = tmp_path / "dagster_home"
    home.mkdir()

    def cli(*args: str):
        return run("--config-dir", str(harness.config.path), *args, env={"DAGSTER_HOME": str(home)})

    first = cli("sync", "pipeline", "-p", PIPELINE, "-t", table)
    assert first.returncode == 0, first.stdout + first.stderr
    # Loaded batches past their retention go (s3clean); then the warehouse is replaced: no target, no ledger.
    cleaned = cli("s3clean", "clean", "-t", table, "-p", PIPELINE, "--older-than", "0d", "-y")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    harness.pg.execute(f"DROP TABLE {harness.target('fresh')}")
    harness.pg.execute(f'DROP TABLE "{harness.config.target_schema}"."_sync_load_ledger"')
    harness.mysql.execute("UPDATE fresh SET name = 'changed', updated_at = '2025-06-01' WHERE id IN (4, 5)")

    again = cli("sync", "pipeline", "-p", PIPELINE, "-t", table)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output
    assert "_sync_load_ledger has no row for it" in output and "reading" in output and "from the beginning" in output
    assert assert_same(harness, "fresh", COLUMNS, "id") == 20
    checksum = "SELECT COUNT(*), SUM(id), SUM(LENGTH(name)) FROM {}"
    assert harness.mysql.query(checksum.format("fresh")) == harness.pg.query(checksum.format(harness.target("fresh")))

    # With the target in place, the next run resumes: it reads only what changed.
    harness.mysql.execute("UPDATE fresh SET name = 'later', updated_at = '2025-07-01' WHERE id = 7")
    resumed = cli("sync", "pipeline", "-p", PIPELINE, "-t", table, "--json-output", str(tmp_path / "r.json"))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "from the beginning" not in resumed.stdout + resumed.stderr
    assert json.loads((tmp_path / "r.json").read_text())["table_results"][table]["rows_extracted"] == 1
    assert assert_same(harness, "fresh", COLUMNS, "id") == 20


def test_an_append_table_without_target_and_ledger_stops_while_old_batches_would_load_twice(
    harness: Harness, tmp_path: Path
) -> None:
    harness.mysql.execute("DROP TABLE IF EXISTS journal")
    harness.mysql.execute("CREATE TABLE journal (id INT NOT NULL, name VARCHAR(32), KEY (id))")
    harness.mysql.executemany("INSERT INTO journal VALUES (%s, %s)", [(i, f"entry {i}") for i in range(1, 31)])
    table = f"{harness.mysql.name}.journal"
    harness.set_tables({table: {"cdc_strategy": "id_only", "cdc_id_column": "id"}})
    assert harness.sync("journal").extract.rows == 30
    harness.mysql.executemany("INSERT INTO journal VALUES (%s, %s)", [(i, f"entry {i}") for i in range(31, 36)])
    harness.pg.execute(f"DROP TABLE {harness.target('journal')}")
    harness.pg.execute(f'DROP TABLE "{harness.config.target_schema}"."_sync_load_ledger"')

    with pytest.raises(LostTargetError) as stopped:
        harness.sync("journal", target_loaded=True)
    message = str(stopped.value)
    assert "_sync_load_ledger has no row for it" in message and "rows would arrive twice" in message
    assert harness.pg.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'journal' AND table_schema = %s",
        (harness.config.target_schema,),
    ) == [(0,)], "nothing was loaded"
    command = message.split("sync again: ")[1]
    assert command.startswith("sync-platform s3clean clean -t ")
    cleaned = run("--config-dir", str(harness.config.path), *command.split()[1:],
                  env={"DAGSTER_HOME": str(tmp_path)})  # fmt: skip
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr

    again = harness.sync("journal", target_loaded=True)
    assert any("reading" in w and "from the beginning" in w for w in again.extract.warnings)
    rows = harness.pg.query(f"SELECT id, name FROM {harness.target('journal')} ORDER BY id")
    assert rows == [(i, f"entry {i}") for i in range(1, 36)]
