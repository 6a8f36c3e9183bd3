"""Redshift's COPY step, exercised against PostgreSQL with the staged files on the S3 server.

Redshift cannot run here. This harness does what Redshift would do with the COPY statement the
engine generates: read the manifest from S3, fetch every listed parquet file, check its length
against the manifest's ``content_length`` and map its columns by position onto the statement's
column list. So the manifest, the paths and the column order are checked for real.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from decimal import Decimal

import pyarrow.parquet as pq
import pytest

from sync_platform.configuration import load_project, table_spec
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.load import columns_of
from sync_platform.engine.stage import list_batches
from sync_platform.engine.sync import RunOptions, extract_table, table_prefix
from sync_platform.engine.watermark import Watermark
from sync_platform.warehouse import RedshiftDialect, S3Authorization, copy_text
from sync_platform.warehouse.postgres import PostgresDialect

_COPY = re.compile(
    r'^COPY (?P<stage>"[^"]+") FROM \'(?P<url>s3://[^\']+)\' '
    r"IAM_ROLE (?:default|'[^']+') FORMAT AS PARQUET MANIFEST$"
)


def emulate_redshift_copy(sql: str, s3_client, pg_cursor) -> int:
    """Run a Redshift ``COPY … FROM 's3://…manifest' MANIFEST FORMAT AS PARQUET`` on PostgreSQL."""
    match = _COPY.match(sql)
    assert match, f"not the COPY form Redshift expects: {sql}"
    # Columnar COPY has no column list: it fills the stage's columns by position.
    pg_cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum",
        (match["stage"],),
    )
    columns = [name for (name,) in pg_cursor.fetchall()]
    bucket, key = match["url"].removeprefix("s3://").split("/", 1)
    manifest = json.loads(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())
    loaded = 0
    for entry in manifest["entries"]:
        assert entry["mandatory"] is True
        entry_bucket, entry_key = entry["url"].removeprefix("s3://").split("/", 1)
        head = s3_client.head_object(Bucket=entry_bucket, Key=entry_key)
        assert head["ContentLength"] == entry["meta"]["content_length"], entry["url"]
        body = s3_client.get_object(Bucket=entry_bucket, Key=entry_key)["Body"].read()
        table = pq.read_table(io.BytesIO(body))
        assert len(table.column_names) == len(columns), "COPY from parquet maps columns by position"
        assert table.column_names == columns, "staged column order must match the stage table's"
        for batch in table.to_batches():
            pg_cursor.copy_expert(
                PostgresDialect().copy_from_stdin(match["stage"].strip('"'), columns),
                io.BytesIO(bytes(copy_text(batch))),
            )
            loaded += batch.num_rows
    return loaded


@pytest.fixture
def staged(mysql_db, pg_db, make_config_dir):
    config = make_config_dir(staging="s3")
    mysql_db.execute("DROP TABLE IF EXISTS rs_orders")
    mysql_db.execute(
        "CREATE TABLE rs_orders (id BIGINT PRIMARY KEY, `Customer Name` VARCHAR(40), amount DECIMAL(14,4), "
        "updated_at DATETIME(6), payload JSON)"
    )
    rows = [
        (
            i,
            f"customer {i} ü",
            Decimal(f"{i}.1250"),
            dt.datetime(2025, 1, 1) + dt.timedelta(minutes=i),
            json.dumps({"n": i}),
        )
        for i in range(1, 301)
    ]
    mysql_db.executemany("INSERT INTO rs_orders VALUES (%s, %s, %s, %s, %s)", rows)
    config.write(
        "pipelines/p.yml",
        {
            "pipeline": {
                "name": "p",
                "source": config.source,
                "target": config.target,
                "s3_config": config.staging,
                "processing": {"file_max_rows": 120},
            },
            "tables": {
                f"{mysql_db.name}.rs_orders": {
                    "cdc_strategy": "hybrid",
                    "cdc_timestamp_column": "updated_at",
                    "cdc_id_column": "id",
                }
            },
        },
    )
    project = load_project(config.path, env={})
    spec = table_spec(project, "p", f"{mysql_db.name}.rs_orders")
    with ConnectionRegistry(project.connections, project.config_dir) as registry:
        extract_table(registry, spec, Watermark(), RunOptions())
        store = registry.staging(spec.staging)
        (manifest,) = list_batches(store, table_prefix(spec))
        yield store, manifest, rows


def test_redshift_copy_of_the_staged_manifest_loads_every_row_in_column_order(staged, pg_db, s3_client) -> None:
    store, manifest, rows = staged
    assert len(manifest.files) == 3  # 300 rows rolled at 120 per file: the manifest lists every part
    columns = columns_of(manifest)
    dialect = RedshiftDialect()
    copy = dialect.copy_from_s3(
        "rs_stage",
        columns,
        store.uri(manifest.copy_manifest_key),
        S3Authorization(iam_role="arn:aws:iam::123456789012:role/copy"),
    )
    assert "CREDENTIALS" not in copy.sql and "IAM_ROLE 'arn:aws:iam::123456789012:role/copy'" in copy.sql
    conn = pg_db.connect()
    try:
        with conn.cursor() as cur:
            # The Redshift stage table's types, rendered for PostgreSQL (JSON is staged as text on Redshift).
            body = ", ".join(f'"{c.name}" {PostgresDialect().stage_type(c.logical)}' for c in columns)
            cur.execute(f'CREATE TEMP TABLE "rs_stage" ({body})')
            assert emulate_redshift_copy(copy.sql, s3_client, cur) == 300
            cur.execute('SELECT id, "customer name", amount, updated_at, payload FROM "rs_stage" ORDER BY id')
            loaded = cur.fetchall()
    finally:
        conn.close()
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in loaded] == [
        (i, name, amount, ts, json.loads(doc)) for i, name, amount, ts, doc in rows
    ]


def test_the_manifest_names_only_objects_that_exist_with_their_exact_length(staged, s3_client) -> None:
    store, manifest, _ = staged
    bucket, key = store.uri(manifest.copy_manifest_key).removeprefix("s3://").split("/", 1)
    document = json.loads(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert [e["url"] for e in document["entries"]] == [store.uri(f.key) for f in manifest.files]
    assert [e["meta"]["content_length"] for e in document["entries"]] == [f.bytes for f in manifest.files]
