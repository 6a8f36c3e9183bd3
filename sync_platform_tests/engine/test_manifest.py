"""The staged-batch manifest: exact round trips, chronological ids, and Redshift's COPY manifest format."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa
import pytest

from sync_platform.engine.manifest import (
    Manifest,
    ManifestError,
    StagedFile,
    batch_id_for,
    batch_sort_key,
    copy_manifest,
    new_run_id,
    run_started_at,
)
from sync_platform.engine.watermark import Watermark

HUGE = 18_446_744_073_709_551_615  # BIGINT UNSIGNED max: more than a double holds exactly
SCHEMA = pa.schema(
    [
        pa.field("id", pa.decimal128(20, 0), nullable=False),
        pa.field("updated_at", pa.timestamp("us")),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
        pa.field("flag", pa.int8()),
        pa.field("note", pa.string()),
        pa.field("payload", pa.binary()),
        pa.field("amount", pa.decimal128(12, 2)),
    ],
    metadata={b"pandas": b"{}"},
)


def make_manifest(**overrides: object) -> Manifest:
    run_id = new_run_id(dt.datetime(2026, 11, 24, 15, 30, 0, 123456, tzinfo=dt.UTC))
    start = Watermark({"updated_at": dt.datetime(2024, 1, 1, 0, 0, 0, 1), "id": HUGE - 1})
    end = Watermark({"updated_at": dt.datetime(2024, 12, 31, 23, 59, 59, 999999), "id": HUGE})
    values: dict[str, object] = {
        "batch_id": batch_id_for(run_id, 3),
        "run_id": run_id,
        "sequence": 3,
        "table": "shop:shop.orders",
        "prefix": f"pipe/shop/orders/{batch_id_for(run_id, 3)}",
        "created_at": dt.datetime(2026, 11, 24, 15, 31, 2, 654321, tzinfo=dt.UTC),
        "files": (
            StagedFile(f"pipe/shop/orders/{batch_id_for(run_id, 3)}/part-00000.parquet", 1_000_000, 134_217_728),
            StagedFile(f"pipe/shop/orders/{batch_id_for(run_id, 3)}/part-00001.parquet", 7, 2_048),
        ),
        "schema": SCHEMA,
        "watermark_start": start.to_dict(),
        "watermark_end": end.to_dict(),
        "columns": ({"name": "id", "source": "id", "logical": {"kind": "decimal", "precision": 20, "scale": 0}},),
        "extra": {"zero_dates": {"shipped_at": 3}, "truncated": {}, "load": {"write_mode": "merge", "key": ["id"]}},
    }
    values.update(overrides)
    return Manifest(**values)  # type: ignore[arg-type]


def test_a_manifest_round_trips_exactly_through_json() -> None:
    manifest = make_manifest()
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest
    assert again.schema.equals(manifest.schema)
    assert again.rows == 1_000_007 and again.bytes == 134_219_776
    assert [f.key for f in again.files] == [f.key for f in manifest.files]


def test_watermark_microseconds_and_huge_ints_survive_the_round_trip() -> None:
    again = Manifest.from_json(make_manifest().to_json())
    start = Watermark.from_dict(again.watermark_start)
    end = Watermark.from_dict(again.watermark_end)
    assert start.position == {"updated_at": dt.datetime(2024, 1, 1, 0, 0, 0, 1), "id": HUGE - 1}
    assert end.position["updated_at"] == dt.datetime(2024, 12, 31, 23, 59, 59, 999999)
    assert end.position["id"] == HUGE and isinstance(end.position["id"], int)
    text = make_manifest().to_json()
    assert str(HUGE) in text, "integers are written as JSON integers, never as floats or strings"
    assert "2024-01-01T00:00:00.000001" in text


def test_plain_python_cursor_values_are_stored_as_json_and_read_back_equal() -> None:
    aware = dt.datetime(2024, 3, 1, 12, 0, 0, 500, tzinfo=dt.UTC)
    raw_start = {"ts": aware, "day": dt.date(2024, 2, 29), "price": Decimal("12345678901234567890.0000000001")}
    manifest = make_manifest(watermark_start=raw_start, watermark_end={"id": 10**30, "ratio": 0.1})
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest
    decoded = Watermark.from_dict({"position": again.watermark_start}).position
    assert decoded == raw_start
    assert again.watermark_end == {"id": 10**30, "ratio": 0.1}


def test_the_schema_is_stored_without_metadata_and_readably() -> None:
    manifest = make_manifest()
    assert manifest.schema.metadata is None
    fields = json.loads(manifest.to_json())["schema"]["fields"]
    assert fields[0] == {"name": "id", "type": "decimal128(20, 0)", "nullable": False}
    assert fields[2]["type"] == "timestamp[us, tz=UTC]"


def test_created_at_must_be_timezone_aware_and_is_kept_in_utc() -> None:
    with pytest.raises(ManifestError, match="timezone-aware"):
        make_manifest(created_at=dt.datetime(2026, 1, 1))
    eastern = dt.timezone(dt.timedelta(hours=-5))
    manifest = make_manifest(created_at=dt.datetime(2026, 1, 1, 7, 0, tzinfo=eastern))
    assert manifest.created_at == dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert manifest.created_at.utcoffset() == dt.timedelta(0)


def test_values_json_cannot_hold_are_refused_when_the_manifest_is_built() -> None:
    with pytest.raises(TypeError, match="watermark_end"):
        make_manifest(watermark_end={"position": {"id": {1, 2}}})


def test_a_manifest_from_a_newer_version_or_malformed_is_refused_clearly() -> None:
    data = json.loads(make_manifest().to_json())
    with pytest.raises(ManifestError, match="newer"):
        Manifest.from_dict({**data, "version": 99})
    with pytest.raises(ManifestError, match="malformed"):
        Manifest.from_dict({k: v for k, v in data.items() if k != "files"})
    with pytest.raises(ManifestError, match="rows"):
        Manifest.from_dict({**data, "rows": 5})
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_json("{truncated")


def test_copy_manifest_lists_every_part_as_mandatory_with_its_content_length() -> None:
    manifest = make_manifest()
    copy = copy_manifest(manifest.files, lambda key: f"s3://bucket/root/{key}")
    assert copy == {
        "entries": [
            {"url": f"s3://bucket/root/{f.key}", "mandatory": True, "meta": {"content_length": f.bytes}}
            for f in manifest.files
        ]
    }
    assert manifest.copy_manifest_key == f"{manifest.prefix}/_manifest-copy.json"
    assert manifest.manifest_key == f"{manifest.prefix}/_manifest.json"


def test_run_ids_sort_chronologically_down_to_the_microsecond() -> None:
    base = dt.datetime(2026, 11, 24, 23, 59, 59, 999998, tzinfo=dt.UTC)
    moments = [base + dt.timedelta(microseconds=i) for i in range(4)] + [base + dt.timedelta(days=400)]
    ids = [new_run_id(m) for m in moments]
    assert sorted(ids) == ids
    assert [run_started_at(i) for i in ids] == moments
    local = dt.datetime(2026, 11, 25, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert new_run_id(local) < new_run_id(dt.datetime(2026, 11, 24, 23, 0, 0, 1, tzinfo=dt.UTC))


def test_batch_ids_order_by_run_then_sequence_even_past_five_digits() -> None:
    run_a = new_run_id(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    run_b = new_run_id(dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    ids = [batch_id_for(run_b, 1), batch_id_for(run_a, 100_000), batch_id_for(run_a, 2), batch_id_for(run_a, 99_999)]
    assert sorted(ids, key=batch_sort_key) == [ids[2], ids[3], ids[1], ids[0]]
    with pytest.raises(ValueError, match="run id"):
        batch_id_for("run-1", 1)
