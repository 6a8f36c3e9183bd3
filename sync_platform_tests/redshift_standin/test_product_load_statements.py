"""The product's own Redshift statements, run through the stand-in over the product's own connection.

The engine's stage code writes parquet and the Redshift manifest to the S3 server; the Redshift
dialect's CREATE TABLE / stage / COPY / merge / ledger statements then run through
``type: redshift`` against the stand-in, and the target is read back and compared with the source.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from sync_platform.configuration import load_project, table_spec
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.load import columns_of
from sync_platform.engine.stage import list_batches
from sync_platform.engine.sync import RunOptions, extract_table, table_prefix
from sync_platform.engine.watermark import Watermark
from sync_platform.warehouse import LedgerEntry, RedshiftDialect, S3Authorization, TableLayout, TableRef
from sync_platform_tests.redshift_standin.fixtures import TEST_IAM_ROLE

ROWS = 300


@pytest.fixture
def staged(mysql_db, pg_db, make_config_dir):
    """A batch of 300 rows staged by the engine on S3 (3 parquet files), and the registry that reaches the stand-in."""
    config = make_config_dir(warehouse="redshift")
    mysql_db.execute("DROP TABLE IF EXISTS rs_orders")
    mysql_db.execute(
        "CREATE TABLE rs_orders (id BIGINT PRIMARY KEY, `Customer Name` VARCHAR(40), amount DECIMAL(14,4), "
        "updated_at DATETIME(6), payload JSON, blob_col VARBINARY(16))"
    )
    rows = [
        (
            i,
            f"customer {i} ü\t😀 \\ end",
            Decimal(f"{i}.1250"),
            dt.datetime(2025, 1, 1) + dt.timedelta(minutes=i, microseconds=i),
            json.dumps({"n": i, "s": "x\ny"}),
            bytes([i % 256, 0, 255]),
        )
        for i in range(1, ROWS + 1)
    ]
    mysql_db.executemany("INSERT INTO rs_orders VALUES (%s, %s, %s, %s, %s, %s)", rows)
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
        yield registry.warehouse(spec.target), store, manifest, rows


def test_the_product_stage_copy_merge_and_ledger_run_on_the_standin(staged, pg_db) -> None:
    warehouse, store, manifest, rows = staged
    assert warehouse.dialect == "redshift"
    assert len(manifest.files) == 3
    columns = columns_of(manifest)
    d = RedshiftDialect()
    target = TableRef("public", "rs_orders")
    layout = TableLayout(distkey="id", sortkey=("updated_at", "id"))
    auth = S3Authorization(iam_role=TEST_IAM_ROLE)
    manifest_url = store.uri(manifest.copy_manifest_key)
    with warehouse.connect() as conn, conn.cursor() as cur:
        cur.execute(d.create_schema("public"))
        cur.execute(d.create_ledger("public"))
        cur.execute(d.create_table(target, columns, primary_key=("id",), layout=layout))
        conn.commit()
        stage = d.stage_name(target)
        cur.execute(d.create_stage(stage, columns, layout=layout))
        # Columnar COPY takes no column list; the product's COPY has none and fills the stage by position.
        cur.execute(d.copy_from_s3(stage, columns, manifest_url, auth).sql)
        assert cur.rowcount == ROWS
        for statement in d.merge_statements(target, stage, columns, key=("id",), order_by=("updated_at", "id")):
            cur.execute(statement)
        stamp = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
        entry = LedgerEntry("rs_orders", manifest.batch_id, manifest.run_id, ROWS, loaded_at=stamp)
        ledger = d.record_batch("public", entry)
        cur.execute(ledger.sql, ledger.params)
        conn.commit()
        cur.execute('SELECT "column", distkey, sortkey FROM pg_table_def WHERE tablename = %s', ("rs_orders",))
        keys = {name: (distkey, sortkey) for name, distkey, sortkey in cur.fetchall()}
        conn.commit()
    assert keys["id"] == (True, 2) and keys["updated_at"] == (False, 1)
    assert keys["amount"] == (False, 0)

    loaded = pg_db.query(
        'SELECT id, "customer name", amount, updated_at, payload, blob_col FROM public.rs_orders ORDER BY id'
    )
    assert [(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) for r in loaded] == [
        (i, name, amount, ts, json.loads(doc), blob) for i, name, amount, ts, doc, blob in rows
    ]
    (loaded_at,) = pg_db.query(
        "SELECT loaded_at FROM public._sync_load_ledger WHERE batch_id = %s", (manifest.batch_id,)
    )[0]
    # The ledger row carries the client's clock at microseconds (GETDATE() would have whole seconds).
    assert loaded_at == stamp
