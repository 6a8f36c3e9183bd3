"""The stand-in does what only Redshift does: COPY parquet by manifest, SUPER/VARBYTE, GETDATE and
friends, DIST/SORT keys readable from pg_table_def / svv_table_info, TRUNCATE's commit, LOCK, failed
transactions, identifier folding — and it starts by hand from the command line."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import boto3
import psycopg2
import pyarrow as pa
import pytest

from sync_platform_tests.redshift_standin.fixtures import TEST_IAM_ROLE
from sync_platform_tests.redshift_standin.support import connect, put_manifest, put_parquet
from sync_platform_tests.stack import free_port, unique_name

REPO = Path(__file__).resolve().parents[2]
ROLE = f"IAM_ROLE '{TEST_IAM_ROLE}'"


@pytest.fixture(scope="module")
def s3(s3_server: str):
    client = boto3.client(
        "s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    bucket = unique_name("spt", "standin").replace("_", "-")
    client.create_bucket(Bucket=bucket)
    return client, bucket


@pytest.fixture
def conn(redshift_standin, pg_db):
    connection = connect(redshift_standin, pg_db.name)
    try:
        yield connection
    finally:
        connection.close()


def query(conn, sql: str, params=None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


# ------------------------------------------------------------------ by hand


def test_started_by_hand_it_listens_and_refuses_what_redshift_refuses(s3_server, pg_db) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sync_platform_tests.redshift_standin",
            "--port",
            str(port),
            "--postgres-dsn",
            "host=127.0.0.1 port=5432 user=postgres",
            "--s3-endpoint-url",
            s3_server,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline().strip()
        assert first_line == f"listening on 127.0.0.1:{port}", first_line or process.stderr.read()
        connection = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", password="x", dbname=pg_db.name)
        connection.autocommit = True
        try:
            with connection.cursor() as cur:
                cur.execute("CREATE TABLE by_hand (id INTEGER, name VARCHAR(10))")
                with pytest.raises(psycopg2.errors.UndefinedFunction, match="pg_advisory_lock"):
                    cur.execute("SELECT pg_advisory_lock(1)")
                connection.autocommit = False
                with pytest.raises(psycopg2.errors.UndefinedTable, match='relation "missing_table" does not exist'):
                    cur.execute("LOCK missing_table")
                connection.rollback()
                connection.autocommit = True
                with pytest.raises(psycopg2.errors.FeatureNotSupported, match="only for VARCHAR"):
                    cur.execute("ALTER TABLE by_hand ALTER COLUMN id TYPE BIGINT")
                cur.execute("ALTER TABLE by_hand ALTER COLUMN name TYPE VARCHAR(20)")
        finally:
            connection.close()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0


# ------------------------------------------------------------------ COPY


def test_copy_parquet_by_manifest_round_trips_every_type_the_product_stages(conn, s3) -> None:
    client, bucket = s3
    texts = ["tab\there", "new\nline\r\n", "back\\slash \\N", "4-byte 😀 utf-8 ü", "", "quote ' and \" ", None]
    n = len(texts)
    timestamps = [dt.datetime(2024, 2, 29, 23, 59, 59, 999999) + dt.timedelta(days=i) for i in range(n - 1)] + [None]
    table = pa.table(
        {
            "i8": pa.array([1, -128, 127, 0, 5, 6, None], pa.int8()),
            "i16": pa.array([1, -32768, 32767, 0, 5, 6, None], pa.int16()),
            "i32": pa.array([1, -(2**31), 2**31 - 1, 0, 5, 6, None], pa.int32()),
            "i64": pa.array([1, -(2**63), 2**63 - 1, 0, 5, 6, None], pa.int64()),
            "u64": pa.array([Decimal(2**64 - 1), Decimal(0), None, None, None, None, None], pa.decimal128(20, 0)),
            "dec": pa.array(
                [Decimal("12345678901234567890.1234567890"), Decimal("-0.0000000001")] + [None] * 5,
                pa.decimal128(38, 10),
            ),
            "f32": pa.array([1.5, -0.25, None, 3.0, 0.0, 1e10, None], pa.float32()),
            "f64": pa.array([0.1, float("inf"), float("-inf"), 1e-300, 2.5, None, None], pa.float64()),
            "d": pa.array([dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(2024, 2, 29), None, None, None, None]),
            "ts": pa.array(timestamps, pa.timestamp("us")),
            "tz": pa.array(timestamps, pa.timestamp("us", tz="UTC")),
            "s": pa.array(texts, pa.string()),
            "b": pa.array([b"\x00\x01\xff", b"", None, b"\\x", b"\t\n", b"z", None], pa.binary()),
            "j": pa.array(['{"a": [1, 2, {"b": null}]}', '"just a string"', "42", "[]", '{"u": "😀\\n"}', None, None]),
            "flag": pa.array([True, False, None, True, False, True, None]),
        }
    )
    files = [
        put_parquet(client, bucket, "types/part-00000.parquet", table.slice(0, 3)),
        put_parquet(client, bucket, "types/part-00001.parquet", table.slice(3)),
    ]
    manifest = put_manifest(client, bucket, "types/_manifest-copy.json", files)
    query(
        conn,
        "CREATE TABLE types_target (i8 SMALLINT, i16 SMALLINT, i32 INTEGER, i64 BIGINT, u64 DECIMAL(20,0), "
        "dec DECIMAL(38,10), f32 REAL, f64 DOUBLE PRECISION, d DATE, ts TIMESTAMP, tz TIMESTAMPTZ, "
        "s VARCHAR(65535), b VARBYTE(100), j SUPER, flag BOOLEAN)",
    )
    conn.autocommit = False
    query(
        conn,
        "CREATE TEMP TABLE types_stage (i8 SMALLINT, i16 SMALLINT, i32 INTEGER, i64 BIGINT, u64 DECIMAL(20,0), "
        "dec DECIMAL(38,10), f32 REAL, f64 DOUBLE PRECISION, d DATE, ts TIMESTAMP, tz TIMESTAMP, "
        "s VARCHAR(65535), b VARBYTE(100), j VARCHAR(65535), flag BOOLEAN)",
    )
    with conn.cursor() as cur:
        cur.execute(f"COPY types_stage FROM '{manifest}' {ROLE} FORMAT AS PARQUET MANIFEST")
        assert cur.rowcount == n
        assert any("7 record(s) loaded successfully" in notice for notice in conn.notices)
    query(
        conn,
        "INSERT INTO types_target SELECT i8, i16, i32, i64, u64, dec, f32, f64, d, ts, tz, s, b, JSON_PARSE(j), flag "
        "FROM types_stage",
    )
    conn.commit()
    rows = query(conn, "SELECT * FROM types_target ORDER BY i32 NULLS LAST, s")
    expected = table.to_pylist()
    got = [dict(zip(table.column_names, row, strict=True)) for row in rows]
    key = lambda r: (r["i32"] is None, r["i32"] if r["i32"] is not None else 0, r["s"] or "")  # noqa: E731
    for want, have in zip(sorted(expected, key=key), got, strict=True):
        for name in table.column_names:
            value = have[name]
            if name == "b" and value is not None:
                value = bytes(value)
            wanted = want[name]
            if name == "j" and wanted is not None:
                wanted = json.loads(wanted)
            if name == "tz" and value is not None:
                value = value.astimezone(dt.UTC)
            if name == "f32" and wanted is not None:
                assert value == pytest.approx(wanted), name
                continue
            assert value == wanted, f"{name}: {value!r} != {wanted!r}"


def test_copy_without_manifest_reads_every_file_under_the_prefix(conn, s3) -> None:
    client, bucket = s3
    for part in range(3):
        put_parquet(client, bucket, f"prefix/run/part-{part}.parquet", pa.table({"id": pa.array([part], pa.int64())}))
    query(conn, "CREATE TABLE prefixed (id BIGINT)")
    query(conn, f"COPY prefixed FROM 's3://{bucket}/prefix/run/' {ROLE} FORMAT AS PARQUET")
    assert query(conn, "SELECT id FROM prefixed ORDER BY id") == [(0,), (1,), (2,)]
    with pytest.raises(psycopg2.Error, match="The specified S3 prefix 'prefix/none/' does not exist"):
        query(conn, f"COPY prefixed FROM 's3://{bucket}/prefix/none/' {ROLE} FORMAT AS PARQUET")


def test_a_syntax_error_points_into_the_statement_as_redshift_does(conn) -> None:
    """libpq quotes the statement around the error position (with whatever credentials it holds), as on Redshift."""
    query(conn, "CREATE TABLE syntax_target (id INT)")
    sql = (
        "COPY syntax_target FROM 's3://b/k' CREDENTIALS 'aws_access_key_id=AKIA;aws_secret_access_key=SECRET' "
        "FORMAT AS PARQUET 42"
    )
    with pytest.raises(psycopg2.errors.SyntaxError) as raised:
        query(conn, sql)
    assert raised.value.diag.statement_position == str(sql.index("42") + 1)
    assert "LINE 1:" in raised.value.pgerror and "SECRET" in raised.value.pgerror
    with pytest.raises(psycopg2.errors.SyntaxError) as raised:
        query(conn, "INSERT INTO syntax_target VALUES (1) ON CONFLICT DO NOTHING")
    assert raised.value.diag.statement_position == "38"
    with pytest.raises(psycopg2.errors.SyntaxError) as raised:
        query(conn, "SELEC 1")  # PostgreSQL's own position, into the client's text
    assert raised.value.diag.statement_position == "1"


def test_a_failed_copy_leaves_nothing_and_fails_the_transaction(conn, s3) -> None:
    client, bucket = s3
    good = put_parquet(client, bucket, "partial/part-0.parquet", pa.table({"name": ["ok"] * 5}))
    bad = put_parquet(client, bucket, "partial/part-1.parquet", pa.table({"name": ["x" * 11]}))
    manifest = put_manifest(client, bucket, "partial/manifest.json", [good, bad])
    query(conn, "CREATE TABLE partial_copy (name VARCHAR(10))")
    conn.autocommit = False
    with pytest.raises(psycopg2.Error, match=r"longer than the length defined in the table\. Table: 10, Data: 11"):
        query(conn, f"COPY partial_copy FROM '{manifest}' {ROLE} FORMAT AS PARQUET MANIFEST")
    with pytest.raises(psycopg2.errors.InFailedSqlTransaction):
        query(conn, "SELECT 1")
    conn.rollback()
    assert query(conn, "SELECT count(*) FROM partial_copy") == [(0,)]


# ------------------------------------------------------------------ layout catalog


def test_layout_is_recorded_and_readable_from_pg_table_def_and_svv_table_info(conn) -> None:
    query(
        conn,
        'CREATE TABLE "Layout" ("ID" BIGINT NOT NULL ENCODE az64 DISTKEY, name VARCHAR(30) ENCODE zstd, '
        'doc SUPER, at TIMESTAMP, PRIMARY KEY ("ID")) COMPOUND SORTKEY (at, "ID")',
    )
    definition = query(
        conn,
        'SELECT "column", type, encoding, distkey, sortkey, "notnull" FROM pg_table_def '
        "WHERE schemaname = 'public' AND tablename = 'layout' ORDER BY \"column\"",
    )
    assert definition == [
        ("at", "timestamp without time zone", "none", False, 1, False),
        ("doc", "super", "none", False, 0, False),
        ("id", "bigint", "az64", True, 2, True),
        ("name", "character varying(30)", "zstd", False, 0, False),
    ]
    # SVV_TABLE_INFO lists only tables that have rows, as Redshift's does.
    assert query(conn, "SELECT diststyle FROM svv_table_info WHERE \"table\" = 'layout'") == []
    query(conn, "INSERT INTO layout VALUES (1, 'a', JSON_PARSE('{}'), GETDATE())")
    query(conn, "INSERT INTO layout VALUES (1, 'duplicate key: not enforced', NULL, NULL)")
    info = query(
        conn, "SELECT diststyle, sortkey1, sortkey_num, tbl_rows FROM svv_table_info WHERE \"table\" = 'layout'"
    )
    assert info == [("KEY(id)", "at", 2, Decimal(2))]

    query(conn, "ALTER TABLE layout RENAME TO layout_renamed")
    query(conn, "ALTER TABLE layout_renamed RENAME COLUMN at TO happened_at")
    assert query(
        conn,
        "SELECT \"column\", sortkey FROM pg_table_def WHERE tablename = 'layout_renamed' AND sortkey <> 0 "
        "ORDER BY sortkey",
    ) == [("happened_at", 1), ("id", 2)]
    query(conn, "CREATE TABLE layout_copy (LIKE layout_renamed)")
    assert query(
        conn,
        "SELECT \"column\", distkey, sortkey, encoding FROM pg_table_def WHERE tablename = 'layout_copy' "
        "AND \"column\" IN ('id', 'name') ORDER BY 1",
    ) == [("id", True, 2, "az64"), ("name", False, 0, "zstd")]
    query(conn, "DROP TABLE layout_renamed")
    assert query(conn, "SELECT count(*) FROM pg_table_def WHERE tablename = 'layout_renamed'") == [(0,)]
    query(conn, "CREATE TEMP TABLE layout_temp (k INT, v INT) DISTSTYLE EVEN SORTKEY AUTO")
    query(conn, "INSERT INTO layout_temp VALUES (1, 2)")
    assert query(conn, "SELECT diststyle, sortkey1 FROM svv_table_info WHERE \"table\" = 'layout_temp'") == [
        ("EVEN", "AUTO(SORTKEY)")
    ]
    query(conn, "ALTER TABLE layout_copy ALTER DISTSTYLE ALL")
    query(conn, "ALTER TABLE layout_copy ALTER SORTKEY (name)")
    query(conn, "INSERT INTO layout_copy VALUES (1, 'a', NULL, NULL)")
    assert query(conn, "SELECT diststyle, sortkey1 FROM svv_table_info WHERE \"table\" = 'layout_copy'") == [
        ("ALL", "name")
    ]


def test_information_schema_names_super_and_varbyte_and_counts_varchar_in_bytes(conn) -> None:
    query(conn, "CREATE TABLE typed (doc SUPER, b VARBYTE(12), s VARCHAR, t TEXT, m VARCHAR(MAX))")
    rows = query(
        conn,
        "SELECT column_name, data_type, character_maximum_length FROM information_schema.columns "
        "WHERE table_name = 'typed' ORDER BY ordinal_position",
    )
    assert rows == [
        ("doc", "super", None),
        ("b", "binary varying", 12),
        ("s", "character varying", 256),
        ("t", "character varying", 256),
        ("m", "character varying", 65535),
    ]


# ------------------------------------------------------------------ transactions, locks, names


def test_a_refused_statement_fails_the_open_transaction_until_rollback(conn) -> None:
    query(conn, "CREATE TABLE tx_state (id INT)")
    conn.autocommit = False
    query(conn, "INSERT INTO tx_state VALUES (1)")
    with pytest.raises(psycopg2.errors.FeatureNotSupported):
        query(conn, "SELECT DISTINCT ON (id) id FROM tx_state")
    with pytest.raises(psycopg2.errors.InFailedSqlTransaction):
        query(conn, "SELECT 1")
    conn.rollback()
    assert query(conn, "SELECT count(*) FROM tx_state") == [(0,)]


def test_a_multi_statement_query_is_one_transaction_that_a_refusal_undoes(conn) -> None:
    query(conn, "CREATE TABLE multi (id INT)")
    with pytest.raises(psycopg2.errors.UndefinedFunction):
        query(conn, "INSERT INTO multi VALUES (1); SELECT array_agg(id) FROM multi; INSERT INTO multi VALUES (2)")
    assert query(conn, "SELECT id FROM multi") == []
    query(conn, "INSERT INTO multi VALUES (1); INSERT INTO multi VALUES (2)")
    assert query(conn, "SELECT id FROM multi ORDER BY id") == [(1,), (2,)]


def test_truncate_commits_the_open_transaction(conn) -> None:
    query(conn, "CREATE TABLE trunc (id INT)")
    query(conn, "CREATE TABLE side (id INT)")
    query(conn, "INSERT INTO trunc VALUES (1), (2)")
    conn.autocommit = False
    query(conn, "INSERT INTO side VALUES (42)")
    query(conn, "TRUNCATE trunc")
    conn.rollback()  # too late: TRUNCATE committed the insert and itself
    assert query(conn, "SELECT count(*) FROM trunc") == [(0,)]
    assert query(conn, "SELECT id FROM side") == [(42,)]
    conn.rollback()


def test_lock_holds_access_exclusive_until_commit(conn, redshift_standin, pg_db) -> None:
    query(conn, "CREATE TABLE locked (id INT)")
    conn.autocommit = False
    query(conn, "LOCK locked")
    other = connect(redshift_standin, pg_db.name)
    try:
        query(other, "SET lock_timeout TO 300")
        with pytest.raises(psycopg2.errors.LockNotAvailable):
            query(other, "SELECT count(*) FROM locked")  # even readers wait
        conn.commit()
        assert query(other, "SELECT count(*) FROM locked") == [(0,)]
    finally:
        other.close()


def test_quoted_identifiers_fold_to_lower_case(conn) -> None:
    query(conn, 'CREATE TABLE "MixedCase" ("MyCol" INT, "Other Col" VARCHAR(5))')
    query(conn, 'INSERT INTO mixedcase ("MYCOL", "OTHER COL") VALUES (1, \'x\')')
    assert query(conn, 'SELECT "mycol", "other col" FROM "MIXEDCASE"') == [(1, "x")]
    with conn.cursor() as cur:
        cur.execute('SELECT "MyCol" FROM MixedCase')
        assert [d.name for d in cur.description] == ["mycol"]


def test_redshift_functions_work_as_on_redshift(conn) -> None:
    (getdate, sysdate, nvl, length, strtol, parsed) = query(
        conn,
        "SELECT GETDATE(), SYSDATE, NVL(NULL, 'd'), LEN('abc'), STRTOL('ff', 16), "
        "JSON_SERIALIZE(JSON_PARSE('{\"k\": [1, 2]}'))",
    )[0]
    assert getdate.tzinfo is None and getdate.microsecond == 0
    assert abs(getdate - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(seconds=30)
    assert sysdate.tzinfo is None
    assert (nvl, length, strtol, json.loads(parsed)) == ("d", 3, 255, {"k": [1, 2]})
    query(conn, "CREATE TABLE hashed (id INT, name VARCHAR(20))")
    query(conn, "INSERT INTO hashed VALUES (1, 'a'), (2, 'b\\\\c'), (3, NULL)")
    (total,) = query(
        conn,
        "SELECT SUM(STRTOL(SUBSTRING(MD5(COALESCE(name, '') || '|' || id), 18), 16)::DECIMAL(38,0)) FROM hashed",
    )[0]
    names = {1: "a", 2: "b\\c", 3: ""}
    expected = sum(int(hashlib.md5(f"{v}|{k}".encode()).hexdigest()[17:], 16) for k, v in names.items())
    assert total == Decimal(expected)
    digests = query(conn, "SELECT SHA2('Amazon Redshift', 256), SHA2('é|1', 0), SHA2('x', 512), SHA2('x', 100)")[0]
    assert digests == (
        hashlib.sha256(b"Amazon Redshift").hexdigest(),
        hashlib.sha256("é|1".encode()).hexdigest(),  # the UTF-8 bytes, as Redshift hashes a VARCHAR
        hashlib.sha512(b"x").hexdigest(),
        "",  # bits Redshift does not know: an empty string
    )


def test_concurrent_sessions_install_the_catalog_once_and_work(redshift_standin, pg_db) -> None:
    errors: list[BaseException] = []

    def session(n: int) -> None:
        try:
            with connect(redshift_standin, pg_db.name) as c, c.cursor() as cur:
                cur.execute(f"CREATE TABLE conc_{n} (v VARCHAR({100 + n}), doc SUPER) DISTKEY (v)")
                cur.execute(f"INSERT INTO conc_{n} VALUES ('x', JSON_PARSE('[{n}]'))")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with connect(redshift_standin, pg_db.name) as c, c.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_table_def WHERE tablename LIKE 'conc_%' AND distkey")
        assert cur.fetchone() == (6,)


def test_a_killed_client_releases_its_locks_at_once(conn, redshift_standin, pg_db) -> None:
    query(conn, "CREATE TABLE killed_holder (id INT)")
    script = (
        "import os, signal, sys, psycopg2\n"
        f"c = psycopg2.connect(host='{redshift_standin.host}', port={redshift_standin.port}, user='postgres', "
        f"dbname='{pg_db.name}')\n"
        "c.cursor().execute('LOCK killed_holder')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        query(conn, "SET lock_timeout TO 200")
        with pytest.raises(psycopg2.errors.LockNotAvailable):
            query(conn, "SELECT count(*) FROM killed_holder")
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        query(conn, "SET lock_timeout TO 5000")
        assert query(conn, "SELECT count(*) FROM killed_holder") == [(0,)]
    finally:
        if holder.poll() is None:
            holder.kill()
