"""The staging stores, S3 (against moto) and a local directory, behave the same through the protocol."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sync_platform.configuration.models import StagingConfig
from sync_platform.connections.staging import LocalStore, S3Store, StagingStore, local_root, open_store

DUMMY_KEYS = {"access_key_id": "testing", "secret_access_key": "testing"}


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StagingStore]:
    if request.param == "local":
        yield open_store("stage", StagingConfig(local_path=str(tmp_path / "staging")), tmp_path)
    else:
        bucket = request.getfixturevalue("s3_bucket")
        cfg = StagingConfig.model_validate(
            {
                "bucket_name": bucket,
                "endpoint_url": request.getfixturevalue("s3_server"),
                "region": "us-east-1",
                "prefix": "/backups/",
                **DUMMY_KEYS,
            }
        )
        s3_store = open_store("stage", cfg, tmp_path)
        assert isinstance(s3_store, S3Store)
        yield s3_store
        s3_store.close()


def test_bytes_round_trip_and_exist(store: StagingStore):
    store.put_bytes("p/s/t/run-1/_manifest.json", b'{"files": []}')
    assert store.exists("p/s/t/run-1/_manifest.json")
    assert not store.exists("p/s/t/run-1/missing.json")
    assert store.get_bytes("p/s/t/run-1/_manifest.json") == b'{"files": []}'


def test_reading_a_missing_object_raises_file_not_found(store: StagingStore):
    with pytest.raises(FileNotFoundError):
        store.get_bytes("nothing/here")
    with pytest.raises(FileNotFoundError), store.open_read("nothing/here"):
        pass


def test_an_object_is_replaced_whole(store: StagingStore):
    store.put_bytes("k", b"first version, longer")
    store.put_bytes("k", b"second")
    assert store.get_bytes("k") == b"second"


def test_files_upload_and_read_back_seekable(store: StagingStore, tmp_path: Path):
    source = tmp_path / "part-00000.parquet"
    payload = os.urandom(300_000)
    source.write_bytes(payload)
    store.put_file("p/s/t/run-1/part-00000.parquet", str(source))
    with store.open_read("p/s/t/run-1/part-00000.parquet") as handle:
        handle.seek(-10, os.SEEK_END)  # parquet readers start at the footer
        assert handle.read() == payload[-10:]
        handle.seek(0)
        assert handle.read() == payload


def test_parquet_is_read_straight_from_open_read(store: StagingStore, tmp_path: Path):
    table = pa.table({"id": list(range(1000)), "label": [f"row {i}" for i in range(1000)]})
    local = tmp_path / "batch.parquet"
    pq.write_table(table, local, compression="zstd")
    store.put_file("p/s/t/run-1/part-00000.parquet", str(local))
    with store.open_read("p/s/t/run-1/part-00000.parquet") as handle:
        assert pq.read_table(handle).equals(table)


def test_listing_matches_a_key_prefix_in_key_order(store: StagingStore):
    for key in ("a/run-10/x", "a/run-1/y", "a/run-1/x", "b/run-1/x", "a/run-2/z"):
        store.put_bytes(key, key.encode())
    assert [o.key for o in store.list("a/run-1/")] == ["a/run-1/x", "a/run-1/y"]
    assert [o.key for o in store.list("a/run-1")] == ["a/run-1/x", "a/run-1/y", "a/run-10/x"]
    everything = list(store.list(""))
    assert [o.key for o in everything] == sorted(["a/run-10/x", "a/run-1/y", "a/run-1/x", "b/run-1/x", "a/run-2/z"])
    first = everything[0]
    assert first.size == len(first.key)
    assert first.last_modified.tzinfo is not None
    assert abs(first.last_modified - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    assert list(store.list("nothing/")) == []


def test_more_than_a_thousand_objects_are_listed_and_deleted(store: StagingStore):
    keys = [f"many/run-1/part-{i:05d}.parquet" for i in range(1105)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: store.put_bytes(key, b"x"), keys))
    store.put_bytes("other/keep", b"keep")
    assert [o.key for o in store.list("many/")] == keys
    store.delete(keys)
    assert list(store.list("many/")) == []
    assert store.exists("other/keep")


def test_deleting_missing_objects_is_fine(store: StagingStore):
    store.put_bytes("d/one", b"1")
    store.delete(["d/one", "d/never-existed"])
    assert not store.exists("d/one")


def test_s3_store_keeps_objects_under_its_prefix(s3_server: str, s3_bucket: str, s3_client, tmp_path: Path):
    cfg = StagingConfig(bucket_name=s3_bucket, endpoint_url=s3_server, prefix="backups", incremental_path="v2/")
    store = open_store("stage", cfg, tmp_path)
    store.put_bytes("p/t/run-1/_manifest.json", b"{}")
    raw = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert raw == ["backups/v2/p/t/run-1/_manifest.json"]
    assert store.uri("p/t/run-1/_manifest.json") == f"s3://{s3_bucket}/backups/v2/p/t/run-1/_manifest.json"
    assert [o.key for o in store.list("p/")] == ["p/t/run-1/_manifest.json"]


def test_s3_large_files_are_uploaded_in_parts(s3_server: str, s3_bucket: str, s3_client, tmp_path: Path):
    cfg = StagingConfig.model_validate(
        {
            "bucket_name": s3_bucket,
            "endpoint_url": s3_server,
            "performance": {"multipart_threshold": 5 * 1024 * 1024, "multipart_chunksize": 5 * 1024 * 1024},
        }
    )
    store = open_store("stage", cfg, tmp_path)
    big = tmp_path / "big.parquet"
    payload = os.urandom(6 * 1024 * 1024)
    big.write_bytes(payload)
    store.put_file("big.parquet", str(big))
    head = s3_client.head_object(Bucket=s3_bucket, Key="big.parquet")
    assert head["ETag"].strip('"').endswith("-2")  # a multipart upload of two parts
    assert store.get_bytes("big.parquet") == payload


def test_s3_uses_the_default_credential_chain_without_keys(s3_server: str, s3_bucket: str, tmp_path: Path):
    store = open_store("stage", StagingConfig(bucket_name=s3_bucket, endpoint_url=s3_server), tmp_path)
    store.put_bytes("k", b"v")  # dummy credentials come from the environment the fixture set
    assert store.get_bytes("k") == b"v"


def test_local_store_writes_atomically_and_ignores_partial_files(tmp_path: Path):
    store = LocalStore("stage", tmp_path / "staging")
    store.put_bytes("p/run-1/_manifest.json", b"{}")
    (store.root / "p" / "run-1" / ".part-00001.parquet.1234abcd.partial").write_bytes(b"half")
    assert [o.key for o in store.list("p/")] == ["p/run-1/_manifest.json"]
    assert store.uri("p/run-1/_manifest.json") == str(tmp_path / "staging" / "p" / "run-1" / "_manifest.json")


def test_local_store_leaves_no_temporary_file_when_a_write_fails(tmp_path: Path):
    store = LocalStore("stage", tmp_path / "staging")
    with pytest.raises(FileNotFoundError):
        store.put_file("p/x.parquet", str(tmp_path / "does-not-exist"))
    assert not store.exists("p/x.parquet")
    assert [p.name for p in (store.root / "p").iterdir()] == []


def test_local_store_removes_emptied_directories(tmp_path: Path):
    store = LocalStore("stage", tmp_path / "staging")
    store.put_bytes("p/s/t/run-1/part-0.parquet", b"x")
    store.delete(["p/s/t/run-1/part-0.parquet"])
    assert list(store.root.iterdir()) == []


@pytest.mark.parametrize("key", ["../escape", "/absolute", "a/../../b", ""])
def test_local_store_refuses_keys_outside_its_root(tmp_path: Path, key: str):
    store = LocalStore("stage", tmp_path / "staging")
    with pytest.raises(ValueError, match="invalid staging key"):
        store.put_bytes(key, b"x")


def test_relative_local_paths_resolve_against_the_base_dir_not_the_working_dir(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = tmp_path / "project" / "config"
    cfg = StagingConfig(local_path="./.staging", prefix="team")
    assert local_root(cfg, base) == base / ".staging" / "team"
    store = open_store("stage", cfg, base)
    assert isinstance(store, LocalStore) and store.root == base / ".staging" / "team"
    assert open_store("abs", StagingConfig(local_path=str(tmp_path / "abs")), base).uri("k") == str(
        tmp_path / "abs" / "k"
    )


def test_building_an_s3_store_does_no_network_io(tmp_path: Path):
    store = open_store("stage", StagingConfig(bucket_name="b", endpoint_url="http://127.0.0.1:9"), tmp_path)
    assert isinstance(store, S3Store)
    assert store.describe() == "s3://b at http://127.0.0.1:9"
