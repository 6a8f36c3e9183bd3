"""Extract against the real MariaDB: exact rows in query order, bounded memory, clear errors."""

from __future__ import annotations

import datetime as dt
import os
import time
from decimal import Decimal
from pathlib import Path

import pytest

from sync_platform.engine.extract import BatchStream, ExtractError, read_batches, redact, table_of
from sync_platform_tests.stack import MySQLDatabase

BIG_ROWS = 500_000


def url_of(db: MySQLDatabase) -> str:
    return f"mysql://{db.user}@{db.host}:{db.port}/{db.name}"


@pytest.fixture(scope="module")
def mixed(mysql_db: MySQLDatabase) -> str:
    """3,000 rows of awkward values: NULLs, 4-byte UTF-8, DATETIME(6), DECIMAL, JSON, ties on the timestamp."""
    mysql_db.execute(
        "CREATE TABLE mixed (id BIGINT PRIMARY KEY, name VARCHAR(40), amount DECIMAL(12,2), "
        "updated_at DATETIME(6) NOT NULL, note TEXT NULL, doc JSON NULL, KEY (updated_at))"
    )
    mysql_db.execute(
        "INSERT INTO mixed SELECT seq, CONCAT('name ', seq, IF(seq % 7 = 0, ' 🦄', '')), seq * 1.25, "
        "TIMESTAMP('2025-01-01') + INTERVAL (seq DIV 3) SECOND + INTERVAL (seq % 3) MICROSECOND, "
        "IF(seq % 5 = 0, NULL, REPEAT('x', seq % 50)), IF(seq % 4 = 0, NULL, JSON_OBJECT('n', seq)) "
        "FROM seq_1_to_3000"
    )
    return "mixed"


@pytest.fixture(scope="module")
def big(mysql_db: MySQLDatabase) -> str:
    mysql_db.execute("CREATE TABLE big (id BIGINT PRIMARY KEY, label VARCHAR(64) NOT NULL, note TEXT)")
    mysql_db.execute(
        f"INSERT INTO big SELECT seq, CONCAT('row-', seq), REPEAT('n', seq % 100) FROM seq_1_to_{BIG_ROWS}"
    )
    return "big"


def test_batches_hold_exactly_the_rows_of_the_query_in_its_order(mysql_db: MySQLDatabase, mixed: str) -> None:
    sql = (
        "SELECT id, name, amount, updated_at, note, CAST(doc AS CHAR) AS doc FROM mixed "
        "WHERE (updated_at, id) > ('2025-01-01 00:01:00.000000', 0) ORDER BY updated_at DESC, id DESC LIMIT 2500"
    )
    batches = list(read_batches(url_of(mysql_db), sql, 400))
    got = [tuple(row.values()) for batch in batches for row in batch.to_pylist()]
    expected = mysql_db.query(sql)
    assert len(got) == len(expected) == 2500
    for mine, theirs in zip(got, expected, strict=True):
        assert mine[0] == theirs[0] and mine[1] == theirs[1]
        assert Decimal(mine[2]) == theirs[2]
        assert mine[3] == theirs[3], "DATETIME(6) keeps its microseconds"
        assert mine[4:] == theirs[4:]
    assert [b.num_rows for b in batches] == [400] * 6 + [100]


def test_a_query_without_rows_yields_no_batches_but_knows_its_schema(mysql_db: MySQLDatabase, mixed: str) -> None:
    with BatchStream(url_of(mysql_db), "SELECT id, name FROM mixed WHERE id < 0", 100) as stream:
        assert list(stream) == []
    assert stream.schema is not None and stream.schema.names == ["id", "name"]
    assert stream.stats.rows == 0


def test_the_session_reads_timestamps_in_utc(mysql_db: MySQLDatabase) -> None:
    sql = "SELECT @@session.time_zone AS tz, FROM_UNIXTIME(0) AS epoch"
    (batch,) = list(read_batches(url_of(mysql_db), sql, 10))
    assert batch.to_pylist() == [{"tz": "+00:00", "epoch": dt.datetime(1970, 1, 1)}]


def test_a_slow_consumer_gets_spilled_batches_instead_of_unbounded_memory(
    mysql_db: MySQLDatabase, big: str, tmp_path: Path
) -> None:
    """connectorx alone would hold every unread batch in memory; here at most ``buffer_batches`` are."""
    stream = BatchStream(
        url_of(mysql_db), "SELECT * FROM big ORDER BY id", 10_000, buffer_batches=2, spill_dir=tmp_path
    )
    with stream:
        first = next(stream)
        deadline = time.monotonic() + 60
        while stream.stats.spilled_batches < 20 and time.monotonic() < deadline:
            time.sleep(0.01)  # the consumer is "busy": the reader runs ahead
        assert stream.stats.spilled_batches >= 20, "a consumer that falls behind makes the reader spill"
        spill_dirs = [p for p in tmp_path.iterdir() if p.name.startswith("sync-platform-extract-")]
        assert spill_dirs and any(spill_dirs[0].iterdir())
        next_id = 1
        for batch in [first, *stream]:
            ids = batch.column("id").to_pylist()
            assert ids == list(range(next_id, next_id + len(ids))), "spilled batches come back in order"
            next_id += len(ids)
    assert next_id - 1 == BIG_ROWS == stream.stats.rows
    assert stream.stats.max_buffered_batches <= 2
    assert stream.stats.max_batch_rows == 10_000
    assert list(tmp_path.iterdir()) == [], "spill files are removed"


def test_reading_500k_rows_keeps_memory_bounded_by_the_batch_size(mysql_db: MySQLDatabase, big: str) -> None:
    """Bounded by rows held, not seconds: every batch is at most batch_rows, at most two wait in memory."""
    with BatchStream(url_of(mysql_db), "SELECT * FROM big", 25_000, buffer_batches=2) as stream:
        rows = 0
        for batch in stream:
            rows += batch.num_rows
            assert batch.num_rows <= 25_000
    assert rows == BIG_ROWS
    held = (stream.stats.max_buffered_batches + 1) * stream.stats.max_batch_rows
    assert held <= 3 * 25_000 < BIG_ROWS / 6


def test_closing_early_stops_the_reader_and_removes_spill_files(
    mysql_db: MySQLDatabase, big: str, tmp_path: Path
) -> None:
    stream = BatchStream(url_of(mysql_db), "SELECT * FROM big ORDER BY id", 5_000, buffer_batches=1, spill_dir=tmp_path)
    next(stream)
    deadline = time.monotonic() + 60
    while stream.stats.spilled_batches < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    stream.close()
    assert not stream._reader.thread.is_alive()
    assert list(tmp_path.iterdir()) == []
    assert list(stream) == []


def test_abandoning_the_generator_stops_its_reader(mysql_db: MySQLDatabase, big: str, tmp_path: Path) -> None:
    generator = read_batches(url_of(mysql_db), "SELECT * FROM big", 5_000, spill_dir=tmp_path)
    next(generator)
    generator.close()
    assert list(tmp_path.iterdir()) == []


def test_a_value_connectorx_cannot_convert_raises_an_error_naming_the_table(mysql_db: MySQLDatabase) -> None:
    mysql_db.execute("CREATE TABLE zero_dates (id INT PRIMARY KEY, d DATETIME)")
    with mysql_db.connect() as conn, conn.cursor() as cursor:
        cursor.execute("SET SESSION sql_mode = ''")
        cursor.execute("INSERT INTO zero_dates VALUES (1, '2024-01-01'), (2, '0000-00-00 00:00:00')")
    with pytest.raises(ExtractError) as caught:
        list(read_batches(url_of(mysql_db), f"SELECT id, d FROM `{mysql_db.name}`.`zero_dates`", 10))
    assert caught.value.table == f"{mysql_db.name}.zero_dates"
    assert f"{mysql_db.name}.zero_dates" in str(caught.value)
    assert "NULLIF" in str(caught.value) and not caught.value.retryable
    assert isinstance(caught.value, Exception), "a PanicException (BaseException) never escapes"


def test_an_sql_error_names_the_table(mysql_db: MySQLDatabase, mixed: str) -> None:
    with pytest.raises(ExtractError, match=r"reading mixed failed: .*no_such_column"):
        list(read_batches(url_of(mysql_db), "SELECT no_such_column FROM mixed", 10))


def test_a_killed_query_is_an_error_never_a_short_result(mysql_db: MySQLDatabase, big: str) -> None:
    marker = f"kill_me_{os.getpid()}"
    sql = f"SELECT id FROM big WHERE SLEEP(0.0005) = 0 LIMIT 20000 /* {marker} */"  # ~10 s unless killed
    stream = read_batches(url_of(mysql_db), sql, 1_000, buffer_batches=1)
    next(stream)
    with mysql_db.connect() as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM information_schema.processlist WHERE info LIKE %s AND info NOT LIKE '%%processlist%%'",
            (f"%{marker}%",),
        )
        for (thread_id,) in cursor.fetchall():
            cursor.execute(f"KILL CONNECTION {int(thread_id)}")
    with pytest.raises(ExtractError) as caught:
        rows = 1_000 + sum(b.num_rows for b in stream)
        assert rows < 20_000, "the query finished before it could be killed"
    assert caught.value.retryable


def test_table_of_and_redact() -> None:
    assert table_of("SELECT a FROM `shop`.`order``s` WHERE x") == "shop.order`s"
    assert table_of("select * from shop.orders o join x") == "shop.orders"
    assert table_of("SELECT 1") == "query"
    url = "mysql://reader:s3cr%40t@db:3306/shop"
    assert "s3cr" not in redact("could not connect to mysql://reader:s3cr%40t@db:3306/shop", url)
    assert "s3cr" not in redact("password s3cr%40t rejected", url)
    assert "s3cr" not in redact("password s3cr@t rejected", url), "the decoded password is hidden too"
