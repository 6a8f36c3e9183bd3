"""The parquet stager: parts rolled by rows and size, manifests written last, crash leftovers told apart."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sync_platform.configuration.models import StagingConfig
from sync_platform.connections.staging import LocalStore, S3Store, StagingStore, open_store
from sync_platform.engine.extract import BatchStream
from sync_platform.engine.manifest import Manifest
from sync_platform.engine.stage import (
    BatchStager,
    StagingError,
    list_batches,
    new_run_id,
    read_staged,
    remove_unmanifested,
    unmanifested_batches,
    unmanifested_prefixes,
)
from sync_platform.engine.watermark import Watermark
from sync_platform_tests.stack import MySQLDatabase

TABLE = "pipe/shop/orders"
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("amount", pa.decimal128(12, 2)),
        pa.field("updated_at", pa.timestamp("us")),
        pa.field("paid_at", pa.timestamp("us", tz="UTC")),
        pa.field("flag", pa.int8()),
        pa.field("blob", pa.binary()),
    ]
)


def rows(start: int, count: int) -> pa.RecordBatch:
    ids = list(range(start, start + count))
    base = dt.datetime(2025, 1, 1)
    return pa.RecordBatch.from_pydict(
        {
            "id": ids,
            "name": [None if i % 9 == 0 else f"name {i} 🦄" for i in ids],
            "amount": [Decimal(i) / 4 for i in ids],
            "updated_at": [base + dt.timedelta(seconds=i, microseconds=i % 1_000_000) for i in ids],
            "paid_at": [
                None if i % 4 else (base + dt.timedelta(days=1, microseconds=i)).replace(tzinfo=dt.UTC) for i in ids
            ],
            "flag": [i % 3 for i in ids],
            "blob": [bytes([i % 256]) * 3 for i in ids],
        },
        schema=SCHEMA,
    )


class RecordingStore:
    """A LocalStore that remembers the order in which objects were written."""

    def __init__(self, inner: LocalStore):
        self.inner = inner
        self.name, self.kind = inner.name, inner.kind
        self.writes: list[str] = []

    def put_file(self, key: str, path: str) -> None:
        self.inner.put_file(key, path)
        self.writes.append(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.inner.put_bytes(key, data)
        self.writes.append(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore("stage", tmp_path / "staging")


def stager(store: StagingStore, table: str = TABLE, *, run_id: str | None = None, **options: Any) -> BatchStager:
    return BatchStager(
        store, table, run_id=run_id or new_run_id(), table_identity="src:shop.orders", schema=SCHEMA, **options
    )


def test_parts_roll_at_max_rows_and_read_back_exactly(store: LocalStore) -> None:
    writer = stager(store, max_rows=1_000)
    for start in range(0, 2_500, 300):  # batches that straddle the part boundaries
        writer.write(rows(start, min(300, 2_500 - start)))
    manifest = writer.finish()
    assert [f.rows for f in manifest.files] == [1_000, 1_000, 500]
    assert [f.key.rsplit("/", 1)[1] for f in manifest.files] == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    assert all(f.bytes == os.path.getsize(store.path(f.key)) for f in manifest.files)
    back = pa.Table.from_batches(list(read_staged(store, manifest, batch_rows=700)))
    assert back.schema.equals(SCHEMA)
    assert back.equals(pa.Table.from_batches([rows(0, 2_500)]))


def test_parts_roll_at_max_mb(store: LocalStore) -> None:
    noise = pa.RecordBatch.from_pydict(
        {"id": range(4_000), "payload": [os.urandom(256).hex() for _ in range(4_000)]},
        schema=pa.schema([pa.field("id", pa.int64()), pa.field("payload", pa.string())]),
    )
    writer = BatchStager(
        store, TABLE, run_id=new_run_id(), table_identity="t", schema=noise.schema, max_mb=0.25, compression="snappy"
    )
    for offset in range(0, 4_000, 200):
        writer.write(noise.slice(offset, 200))
    manifest = writer.finish()
    assert len(manifest.files) >= 4, "2 MB of incompressible text in parts of about 0.25 MB"
    assert manifest.rows == 4_000
    assert all(f.bytes < 0.25 * 1024 * 1024 + 200 * 600 for f in manifest.files), (
        "a part closes once it passes the size"
    )


def test_the_manifest_is_written_last_after_every_part(store: LocalStore) -> None:
    recording = RecordingStore(store)
    writer = stager(recording, max_rows=100)  # type: ignore[arg-type]
    writer.write(rows(0, 250))
    manifest = writer.finish(watermark_end=Watermark({"id": 249}).to_dict())
    assert recording.writes[-1] == manifest.manifest_key
    assert recording.writes[-2] == manifest.copy_manifest_key
    assert recording.writes[0].endswith("/_batch-started.json")
    assert set(recording.writes[1:-2]) == {f.key for f in manifest.files}


def test_the_manifest_describes_the_batch(store: LocalStore) -> None:
    run_id = new_run_id()
    writer = stager(store, run_id=run_id, sequence=2, columns=[{"name": "id", "source": "ID", "logical": {}}])
    writer.write(rows(0, 10))
    start, end = Watermark({"id": 0}), Watermark({"updated_at": dt.datetime(2025, 1, 1, 0, 0, 9, 9), "id": 9})
    manifest = writer.finish(
        watermark_start=start.to_dict(), watermark_end=end.to_dict(), extra={"zero_dates": {"d": 2}}
    )
    stored = Manifest.from_json(store.get_bytes(manifest.manifest_key))
    assert stored == manifest
    assert (stored.batch_id, stored.run_id, stored.sequence) == (f"{run_id}-00002", run_id, 2)
    assert stored.prefix == f"{TABLE}/{run_id}-00002" and stored.table == "src:shop.orders"
    assert stored.rows == 10 and stored.bytes == sum(f.bytes for f in stored.files)
    assert Watermark.from_dict(stored.watermark_end) == end
    assert stored.extra == {"zero_dates": {"d": 2}}
    assert stored.columns == ({"name": "id", "source": "ID", "logical": {}},)
    assert stored.created_at.tzinfo is not None
    copy = json.loads(store.get_bytes(stored.copy_manifest_key))
    assert copy == {
        "entries": [
            {"url": store.uri(f.key), "mandatory": True, "meta": {"content_length": f.bytes}} for f in stored.files
        ]
    }


def test_parquet_is_microsecond_and_carries_no_arrow_metadata(store: LocalStore) -> None:
    writer = stager(store)
    writer.write(rows(0, 5).replace_schema_metadata({"pandas": "{}"}))
    manifest = writer.finish()
    metadata = pq.read_metadata(store.path(manifest.files[0].key))
    assert metadata.metadata is None or b"ARROW:schema" not in metadata.metadata
    assert metadata.metadata is None or b"pandas" not in metadata.metadata
    schema = metadata.schema.to_arrow_schema()
    assert schema.field("updated_at").type == pa.timestamp("us")
    assert schema.field("paid_at").type == pa.timestamp("us", tz="UTC")


def test_nanoseconds_that_would_be_truncated_are_refused(store: LocalStore) -> None:
    nano_schema = pa.schema([pa.field("t", pa.timestamp("ns"))])
    writer = BatchStager(store, TABLE, run_id=new_run_id(), table_identity="t", schema=nano_schema)
    with pytest.raises(StagingError, match="would lose data"):
        writer.write(pa.RecordBatch.from_pydict({"t": pa.array([1_000_000_001], pa.timestamp("ns"))}))
    writer.abort()


def test_batches_of_another_shape_are_refused(store: LocalStore) -> None:
    writer = stager(store)
    with pytest.raises(StagingError, match="columns"):
        writer.write(pa.RecordBatch.from_pydict({"id": [1]}))
    writer.abort()


def test_a_crash_before_the_manifest_leaves_a_prefix_list_batches_ignores(store: LocalStore) -> None:
    done = stager(store, max_rows=100)
    done.write(rows(0, 150))
    committed = done.finish()

    crashed = stager(store, max_rows=100)
    crashed.write(rows(150, 250))  # two parts uploaded, the third still local …
    crashed._wait_upload()
    del crashed  # … and the process dies: no manifest

    assert list_batches(store, TABLE) == [committed]
    leftovers = unmanifested_batches(store, TABLE)
    assert len(leftovers) == 1 and leftovers[0].prefix != committed.prefix
    assert unmanifested_prefixes(store, TABLE) == [leftovers[0].prefix]
    assert len([k for k in leftovers[0].keys if k.endswith(".parquet")]) == 2
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert unmanifested_prefixes(store, TABLE, min_age=dt.timedelta(hours=1), now=later) == []

    assert remove_unmanifested(store, TABLE, min_age=dt.timedelta(0)) == [leftovers[0].prefix]
    assert unmanifested_prefixes(store, TABLE) == []
    assert list_batches(store, TABLE) == [committed]
    assert sum(b.num_rows for b in read_staged(store, committed)) == 150


def test_a_crash_before_any_part_is_uploaded_is_still_reported(store: LocalStore) -> None:
    crashed = stager(store)
    crashed.write(rows(0, 10))  # the only part is still a local temporary file
    assert list_batches(store, TABLE) == []
    assert unmanifested_prefixes(store, TABLE) == [crashed.prefix]


def test_abort_removes_what_was_uploaded(store: LocalStore) -> None:
    with pytest.raises(RuntimeError, match="boom"), stager(store, max_rows=10) as writer:
        writer.write(rows(0, 35))
        raise RuntimeError("boom")
    assert list(store.list(TABLE + "/")) == []


def test_list_batches_returns_committed_batches_in_order_for_exactly_this_table(store: LocalStore) -> None:
    made = []
    for day in (3, 1, 2):  # written out of order
        run_id = new_run_id(dt.datetime(2026, 1, day, tzinfo=dt.UTC))
        for sequence in (2, 1):
            writer = stager(store, run_id=run_id, sequence=sequence)
            writer.write(rows(day * 10 + sequence, 1))
            made.append(writer.finish())
    other = stager(store, "pipe/shop/orders_archive")
    other.write(rows(0, 1))
    other.finish()
    store.put_bytes(f"{TABLE}/table=orders/year=2024/old_tool.parquet", b"not ours")

    listed = list_batches(store, TABLE)
    assert [m.batch_id for m in listed] == sorted(m.batch_id for m in made)
    assert [m.batch_id[:8] for m in listed] == ["20260101"] * 2 + ["20260102"] * 2 + ["20260103"] * 2
    assert [m.sequence for m in listed] == [1, 2] * 3
    assert all(m.table == "src:shop.orders" and m.prefix.startswith(TABLE + "/") for m in listed)
    assert list_batches(store, TABLE, after=listed[3].batch_id) == listed[4:]
    assert unmanifested_prefixes(store, TABLE) == [], "directories that are not batch ids are not ours to clean"


def test_a_manifest_moved_from_elsewhere_is_refused(store: LocalStore) -> None:
    writer = stager(store)
    writer.write(rows(0, 1))
    manifest = writer.finish()
    elsewhere = f"pipe/shop/copy/{manifest.batch_id}/_manifest.json"
    store.put_bytes(elsewhere, store.get_bytes(manifest.manifest_key))
    with pytest.raises(ValueError, match="moved or copied"):
        list_batches(store, "pipe/shop/copy")


@pytest.fixture
def s3_store(s3_server: str, s3_bucket: str, tmp_path: Path) -> Iterator[S3Store]:
    cfg = StagingConfig.model_validate(
        {
            "bucket_name": s3_bucket,
            "endpoint_url": s3_server,
            "region": "us-east-1",
            "prefix": "backups",
            "access_key_id": "testing",
            "secret_access_key": "testing",
        }
    )
    store = open_store("stage", cfg, tmp_path)
    assert isinstance(store, S3Store)
    yield store
    store.close()


def test_staging_to_s3_writes_a_copy_manifest_redshift_accepts(s3_store: S3Store, s3_bucket: str, s3_client) -> None:
    writer = stager(s3_store, max_rows=400)
    writer.write(rows(0, 1_000))
    manifest = writer.finish()
    copy = json.loads(s3_store.get_bytes(manifest.copy_manifest_key))
    assert len(copy["entries"]) == 3
    for entry, part in zip(copy["entries"], manifest.files, strict=True):
        key = f"backups/{part.key}"
        assert entry["url"] == f"s3://{s3_bucket}/{key}"
        assert entry["mandatory"] is True
        assert entry["meta"]["content_length"] == s3_client.head_object(Bucket=s3_bucket, Key=key)["ContentLength"]
    assert list_batches(s3_store, TABLE) == [manifest]
    back = pa.Table.from_batches(list(read_staged(s3_store, manifest)))
    assert back.equals(pa.Table.from_batches([rows(0, 1_000)]))


def test_500k_rows_from_mariadb_stream_into_rolled_parts_with_bounded_batches(
    mysql_db: MySQLDatabase, store: LocalStore
) -> None:
    mysql_db.execute(
        "CREATE TABLE IF NOT EXISTS staged_src (id BIGINT PRIMARY KEY, updated_at DATETIME(6) NOT NULL, note TEXT)"
    )
    mysql_db.execute(
        "INSERT INTO staged_src SELECT seq, TIMESTAMP('2025-01-01') + INTERVAL seq MICROSECOND, "
        "IF(seq % 3 = 0, NULL, CONCAT('n', seq)) FROM seq_1_to_500000"
    )
    url = f"mysql://{mysql_db.user}@{mysql_db.host}:{mysql_db.port}/{mysql_db.name}"
    with BatchStream(url, "SELECT * FROM staged_src ORDER BY id", 20_000) as stream:
        first = next(stream)
        writer = BatchStager(
            store, TABLE, run_id=new_run_id(), table_identity="src:t", schema=first.schema, max_rows=200_000
        )
        writer.write(first)
        for batch in stream:
            writer.write(batch)
    manifest = writer.finish(watermark_end=Watermark({"id": 500_000}).to_dict())
    assert stream.stats.max_batch_rows == 20_000 and stream.stats.max_buffered_batches <= 2
    assert [f.rows for f in manifest.files] == [200_000, 200_000, 100_000]
    seen, expected_id = 0, 1
    for batch in read_staged(store, manifest, batch_rows=50_000):
        ids = batch.column("id").to_pylist()
        assert ids == list(range(expected_id, expected_id + len(ids)))
        expected_id += len(ids)
        seen += batch.num_rows
        assert batch.num_rows <= 50_000
    assert seen == 500_000
    last = list(read_staged(store, manifest))[-1].to_pylist()[-1]
    assert last["updated_at"] == dt.datetime(2025, 1, 1, 0, 0, 0, 500_000)
