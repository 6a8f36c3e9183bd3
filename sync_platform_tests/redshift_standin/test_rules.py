"""Every rule of the stand-in's rule table: a statement Redshift refuses is refused with Redshift's
SQLSTATE and text, and a neighbouring statement Redshift accepts is accepted."""

from __future__ import annotations

from dataclasses import dataclass

import boto3
import psycopg2
import pyarrow as pa
import pytest

from sync_platform_tests.redshift_standin.fixtures import TEST_IAM_ROLE
from sync_platform_tests.redshift_standin.rules import RULES, RULES_BY_ID
from sync_platform_tests.redshift_standin.support import connect, put_manifest, put_parquet
from sync_platform_tests.stack import unique_name

COPY = "COPY {table} FROM '{url}' IAM_ROLE '" + TEST_IAM_ROLE + "' FORMAT AS PARQUET MANIFEST"
LONG_NAME = "x" * 128
SETUP = (
    "CREATE TABLE t (id INT, name VARCHAR(20))",
    "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
    "CREATE TABLE v (id INTEGER, name VARCHAR(10))",
    "CREATE TABLE v2 (id INTEGER, name VARCHAR(10))",
    "CREATE TABLE k (id INT, d INT, s INT, other INT) DISTKEY (d) SORTKEY (s)",
    "CREATE TABLE short (id INT, name VARCHAR(5))",
    "INSERT INTO short VALUES (0, 'abc')",
    "CREATE TABLE vb (b VARBYTE(4))",
    "CREATE TABLE c2 (id INT, name VARCHAR(20))",
    "CREATE TABLE big (id INT, b VARBYTE(16000000))",
    "CREATE TABLE tsp (ts TIMESTAMP)",
    "CREATE TABLE tstz (ts TIMESTAMPTZ)",
    "CREATE TABLE six (id INT, name VARCHAR(6))",
    "CREATE TABLE wide (id BIGINT, name VARCHAR(6))",
)


@dataclass(frozen=True)
class Case:
    rule: str
    refused: str
    accepted: str
    text: str  # part of the error message Redshift gives
    in_transaction: bool = False


CASES = [
    Case("advisory_locks", "SELECT pg_advisory_lock(1)", "SELECT abs(1)", "function pg_advisory_lock does not exist"),
    Case("advisory_locks", "SELECT pg_try_advisory_xact_lock(7)", "SELECT abs(7)", "pg_try_advisory_xact_lock"),
    Case("absent_functions", "SELECT array_agg(id) FROM t", "SELECT count(id) FROM t", "function array_agg"),
    Case("absent_functions", "SELECT string_agg(name, ',') FROM t", "SELECT max(name) FROM t", "string_agg"),
    Case("absent_functions", "SELECT jsonb_build_object('a', 1)", "SELECT JSON_PARSE('{\"a\": 1}')", "jsonb_build"),
    Case("absent_functions", "SELECT to_jsonb(name) FROM t", "SELECT JSON_SERIALIZE(JSON_PARSE('[1]'))", "to_jsonb"),
    Case("absent_functions", "SELECT gen_random_uuid()", "SELECT MD5('x')", "gen_random_uuid"),
    Case("absent_functions", "SELECT unnest(x) FROM t", "SELECT name FROM t", "function unnest"),
    Case("absent_functions", "SELECT transaction_timestamp()", "SELECT SYSDATE", "transaction_timestamp"),
    Case(
        "leader_node_only_functions",
        "SELECT generate_series(1, 3), id FROM t",
        "SELECT generate_series(1, 3)",
        "not supported on Redshift tables",
    ),
    Case("distinct_on", "SELECT DISTINCT ON (id) id FROM t", "SELECT DISTINCT id FROM t", "DISTINCT ON"),
    Case(
        "on_conflict",
        "INSERT INTO t VALUES (1, 'a') ON CONFLICT DO NOTHING",
        "INSERT INTO t VALUES (1, 'a')",
        'syntax error at or near "ON"',
    ),
    Case("returning", "INSERT INTO t VALUES (5, 'e') RETURNING id", "INSERT INTO t VALUES (5, 'e')", "RETURNING"),
    Case("copy_stdin_stdout", "COPY t FROM STDIN", COPY.format(table="c2", url="{good}"), "COPY FROM STDIN"),
    Case("copy_stdin_stdout", "COPY t TO STDOUT", "SELECT count(*) FROM t", "COPY TO STDOUT"),
    Case(
        "create_index",
        "CREATE INDEX t_id ON t (id)",
        "CREATE TABLE ci (id INT) SORTKEY (id)",
        "CREATE INDEX is not supported",
    ),
    Case("savepoints", "SAVEPOINT a", "SELECT 1", "SAVEPOINT is not supported", in_transaction=True),
    Case("savepoints", "RELEASE SAVEPOINT a", "SELECT 2", "RELEASE is not supported", in_transaction=True),
    Case("savepoints", "ROLLBACK TO SAVEPOINT a", "SELECT 3", "ROLLBACK TO SAVEPOINT", in_transaction=True),
    Case("object_identifier_types", "SELECT 't'::regclass", "SELECT 't'::varchar", 'type "regclass"'),
    Case("is_distinct_from", "SELECT id FROM t WHERE id IS DISTINCT FROM 2", "SELECT id FROM t WHERE id <> 2", "near"),
    Case("array_constructor", "SELECT ARRAY[1, 2]", "SELECT SPLIT_PART('a,b', ',', 1)", "array constructors"),
    Case(
        "values_as_table",
        "SELECT * FROM (VALUES (1), (2)) AS vals (x)",
        "INSERT INTO t VALUES (3, 'c'), (4, 'd')",
        "VALUES lists",
    ),
    Case(
        "create_table_clauses",
        "CREATE TABLE part (id INT) PARTITION BY RANGE (id)",
        "CREATE TABLE part (id INT) DISTSTYLE EVEN",
        "PARTITION BY is not supported",
    ),
    Case("lock_mode", "LOCK t IN SHARE MODE", "LOCK t", 'syntax error at or near "IN"', in_transaction=True),
    Case("lock_missing_table", "LOCK nothere", "LOCK t", 'relation "nothere" does not exist', in_transaction=True),
    Case(
        "alter_column_type_in_transaction",
        "ALTER TABLE v ALTER COLUMN name TYPE VARCHAR(100)",
        "SELECT 1",
        "ALTER TABLE ALTER COLUMN cannot run inside a transaction block",
        in_transaction=True,
    ),
    Case(
        "alter_column_type_varchar_only",
        "ALTER TABLE v2 ALTER COLUMN id TYPE BIGINT",
        "ALTER TABLE v2 ALTER COLUMN name TYPE VARCHAR(50)",
        'cannot change column "id" from integer to bigint',
    ),
    Case("drop_key_column", "ALTER TABLE k DROP COLUMN d", "ALTER TABLE k DROP COLUMN other", "cannot drop distkey"),
    Case("drop_key_column", "ALTER TABLE k DROP COLUMN s", "SELECT s FROM k", 'cannot drop sortkey column "s"'),
    Case(
        "add_key_column",
        "ALTER TABLE t ADD COLUMN extra_key INT SORTKEY",
        "ALTER TABLE t ADD COLUMN extra_plain INT ENCODE az64",
        "cannot add a DISTKEY or SORTKEY column",
    ),
    Case(
        "add_one_column",
        "ALTER TABLE t ADD COLUMN a1 INT, ADD COLUMN a2 INT",
        "ALTER TABLE t ADD COLUMN a1 VARCHAR(3) DEFAULT 'x'",
        'syntax error at or near ","',
    ),
    Case(
        "identifier_length",
        f'CREATE TABLE "{LONG_NAME}" (id INT)',
        f'CREATE TABLE "{"y" * 60}" (id INT)',
        "identifiers are at most 127 bytes",
    ),
    Case(
        "unsupported_column_types",
        "CREATE TABLE uc1 (doc JSONB)",
        "CREATE TABLE uc1 (doc SUPER)",
        'Column "doc" has unsupported type "jsonb"',
    ),
    Case(
        "unsupported_column_types",
        "CREATE TABLE uc2 (id SERIAL)",
        "CREATE TABLE uc2 (id INT IDENTITY(1, 1))",
        'unsupported type "serial"',
    ),
    Case(
        "unsupported_column_types",
        "CREATE TABLE uc3 (tags TEXT[])",
        "CREATE TABLE uc3 (tags VARCHAR(MAX))",
        'unsupported type "text[]"',
    ),
    Case(
        "super_key",
        "CREATE TABLE sk1 (id INT, doc SUPER) SORTKEY (doc)",
        "CREATE TABLE sk1 (id INT, doc SUPER) SORTKEY (id)",
        'column "doc" has type SUPER, which cannot be a sort key',
    ),
    Case(
        "varbyte_key",
        "CREATE TABLE vk1 (id INT, b VARBYTE(10)) DISTKEY (b)",
        "CREATE TABLE vk1 (id INT, b VARBYTE(10)) DISTKEY (id)",
        'column "b" has type VARBYTE, which cannot be a distribution key',
    ),
    Case(
        "varbyte_key",
        "CREATE TABLE vk2 (id INT, b VARBYTE(10) SORTKEY)",
        "CREATE TABLE vk2 (id INT SORTKEY, b VARBYTE(10))",
        "which cannot be a sort key",
    ),
    Case(
        "key_column_exists",
        "CREATE TABLE ke1 (id INT) DISTKEY (nope)",
        "CREATE TABLE ke1 (id INT) DISTKEY (id)",
        'column "nope" named in DISTKEY does not exist',
    ),
    Case(
        "distkey_with_diststyle",
        "CREATE TABLE dd1 (id INT) DISTSTYLE EVEN DISTKEY (id)",
        "CREATE TABLE dd1 (id INT) DISTSTYLE KEY DISTKEY (id)",
        "DISTSTYLE EVEN cannot be used with a DISTKEY",
    ),
    Case(
        "interleaved_sortkey_columns",
        "CREATE TABLE il1 (a INT, b INT, c INT, d INT, e INT, f INT, g INT, h INT, i INT) "
        "INTERLEAVED SORTKEY (a, b, c, d, e, f, g, h, i)",
        "CREATE TABLE il1 (a INT, b INT, c INT, d INT, e INT, f INT, g INT, h INT, i INT) "
        "INTERLEAVED SORTKEY (a, b, c, d, e, f, g, h)",
        "at most 8 columns",
    ),
    Case(
        "varchar_max_length",
        "CREATE TABLE vm1 (s VARCHAR(65536))",
        "CREATE TABLE vm1 (s VARCHAR(65535))",
        "length for type varchar cannot exceed 65535",
    ),
    Case(
        "varbyte_max_length",
        "CREATE TABLE bm1 (b VARBYTE(16777217))",
        "CREATE TABLE bm1 (b VARBYTE(16777216))",
        "length for type varbyte cannot exceed 16777216",
    ),
    Case(
        "numeric_precision",
        "CREATE TABLE np1 (n DECIMAL(39, 0))",
        "CREATE TABLE np1 (n DECIMAL(38, 0))",
        "NUMERIC precision 39 must be between 1 and 38",
    ),
    Case(
        "varchar_bytes",
        "INSERT INTO short VALUES (1, 'ééé')",
        "INSERT INTO short VALUES (1, 'éé')",
        "value too long for type character varying(5)",
    ),
    Case(
        "varchar_bytes",
        "UPDATE short SET name = '😀😀' WHERE id = 0",
        "UPDATE short SET name = 'abcde' WHERE id = 0",
        "value too long for type character varying(5)",
    ),
    Case(
        "varbyte_bytes",
        "INSERT INTO vb VALUES ('abcde'::varbyte)",
        "INSERT INTO vb VALUES ('abcd'::varbyte)",
        "value too long for type varbyte(4)",
    ),
    Case("copy_row_4mb", COPY.format(table="big", url="{big}"), COPY.format(table="big", url="{small_bin}"), "4 MB"),
    Case(
        "copy_parquet_parameters",
        COPY.format(table="c2", url="{good}") + " REGION 'us-east-1'",
        COPY.format(table="c2", url="{good}"),
        "REGION argument is not supported for PARQUET based COPY",
    ),
    Case(
        "copy_parquet_parameters",
        "COPY c2 FROM '{good}' ACCESS_KEY_ID 'AKIA' SECRET_ACCESS_KEY 'x' FORMAT AS PARQUET MANIFEST",
        "COPY c2 FROM '{good}' CREDENTIALS 'aws_access_key_id=AKIA;aws_secret_access_key=x' FORMAT AS PARQUET MANIFEST",
        "ACCESS_KEY_ID argument is not supported for PARQUET based COPY",
    ),
    Case(
        "copy_parquet_column_list",
        "COPY c2 (id, name) FROM '{good}' IAM_ROLE default FORMAT AS PARQUET MANIFEST",
        "COPY c2 FROM '{good}' IAM_ROLE default FORMAT AS PARQUET MANIFEST",
        "Column mapping option argument is not supported for PARQUET based COPY",
    ),
    Case(
        "copy_authorization",
        "COPY c2 FROM '{good}' FORMAT AS PARQUET MANIFEST",
        "COPY c2 FROM '{good}' CREDENTIALS 'aws_iam_role=" + TEST_IAM_ROLE + "' FORMAT AS PARQUET MANIFEST",
        "Invalid credentials",
    ),
    Case(
        "copy_parquet_column_count",
        COPY.format(table="c2", url="{extra}"),
        COPY.format(table="c2", url="{good}"),
        "Unmatched number of columns between table and file. Table columns: 2, Data columns: 3",
    ),
    Case(
        "copy_parquet_types",
        COPY.format(table="c2", url="{text_id}"),
        COPY.format(table="c2", url="{good}"),
        "incompatible Parquet schema for column",
    ),
    Case(
        "copy_parquet_types",
        COPY.format(table="tstz", url="{ts}"),
        COPY.format(table="tsp", url="{ts}"),
        "Column type: TIMESTAMP WITH TIME ZONE",
    ),
    Case(
        "copy_value_length",
        COPY.format(table="c2", url="{long_name}"),
        COPY.format(table="six", url="{six_bytes}"),
        "The length of the data column name is longer than the length defined in the table. Table: 20, Data: 21",
    ),
    Case(
        "copy_value_overflow",
        COPY.format(table="c2", url="{wide_id}"),
        COPY.format(table="wide", url="{wide_id}"),
        "Overflow in column id: value 3000000000 does not fit INTEGER",
    ),
    Case(
        "copy_manifest_content_length",
        COPY.format(table="c2", url="{no_length}"),
        COPY.format(table="c2", url="{good}"),
        "has no meta.content_length",
    ),
]


@pytest.fixture(scope="module")
def staged(s3_server: str) -> dict[str, str]:
    """Manifests on the S3 server, by name, for the COPY rules."""
    s3 = boto3.client(
        "s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    bucket = unique_name("spt", "rules").replace("_", "-")
    s3.create_bucket(Bucket=bucket)
    tables = {
        "good": pa.table({"id": pa.array([1, 2], pa.int32()), "name": ["a", "b"]}),
        "extra": pa.table({"id": pa.array([1], pa.int32()), "name": ["a"], "more": ["x"]}),
        "text_id": pa.table({"id": ["1"], "name": ["a"]}),
        "ts": pa.table({"ts": pa.array([1_700_000_000_000_000], pa.timestamp("us"))}),
        "long_name": pa.table({"id": pa.array([1], pa.int32()), "name": ["é" * 10 + "x"]}),  # 21 bytes, 11 chars
        "wide_id": pa.table({"id": pa.array([3_000_000_000], pa.int64()), "name": ["a"]}),
        "six_bytes": pa.table({"id": pa.array([1], pa.int32()), "name": ["ééé"]}),
        "big": pa.table({"id": pa.array([1], pa.int32()), "b": pa.array([b"\x01" * 4_500_000], pa.binary())}),
        "small_bin": pa.table({"id": pa.array([1], pa.int32()), "b": pa.array([b"\x01" * 1_000_000], pa.binary())}),
    }
    urls = {}
    for name, table in tables.items():
        file = put_parquet(s3, bucket, f"{name}/part-0.parquet", table)
        urls[name] = put_manifest(s3, bucket, f"{name}/manifest.json", [file])
    urls["no_length"] = put_manifest(
        s3,
        bucket,
        "good/manifest-without-length.json",
        [(f"s3://{bucket}/good/part-0.parquet", 0)],
        content_length=False,
    )
    return urls


@pytest.fixture(scope="module")
def database(redshift_standin, pg_db, staged) -> str:
    with connect(redshift_standin, pg_db.name) as conn, conn.cursor() as cur:
        for statement in SETUP:
            cur.execute(statement)
    return pg_db.name


def _fill(sql: str, staged: dict[str, str]) -> str:
    for name, url in staged.items():
        sql = sql.replace("{" + name + "}", url)
    return sql


def _run(redshift_standin, database: str, sql: str, in_transaction: bool) -> None:
    conn = connect(redshift_standin, database, autocommit=not in_transaction)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        if in_transaction:
            conn.rollback()
    finally:
        conn.close()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.rule}-{i}" for i, c in enumerate(CASES)])
def test_redshift_refuses_and_accepts_its_neighbour(case: Case, redshift_standin, database, staged) -> None:
    rule = RULES_BY_ID[case.rule]
    refused = _fill(case.refused, staged)
    with pytest.raises(psycopg2.Error) as raised:
        _run(redshift_standin, database, refused, case.in_transaction)
    assert raised.value.pgcode == rule.sqlstate, raised.value.pgerror
    assert case.text in raised.value.pgerror
    _run(redshift_standin, database, _fill(case.accepted, staged), case.in_transaction)


def test_every_rule_has_a_case_and_cites_the_aws_documentation() -> None:
    assert {c.rule for c in CASES} == {r.id for r in RULES}
    for rule in RULES:
        assert rule.doc.startswith("https://docs.aws.amazon.com/redshift/latest/dg/"), rule.id
        assert rule.check is not None or rule.enforced_by != "statement check", rule.id
