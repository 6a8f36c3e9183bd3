"""The staged-batch manifest: what a batch holds, written last so that its existence commits the batch.

A batch lives under ``<table prefix>/<batch id>/``: parquet parts, then ``_manifest-copy.json``
(the file list Redshift's ``COPY … MANIFEST`` reads) and finally ``_manifest.json`` (this module's
:class:`Manifest`). The loader trusts only batches whose ``_manifest.json`` exists (DESIGN §4,
invariant 3), so everything a later step needs is in it: files with row counts and sizes, the
watermark range the batch covers, the Arrow schema, and the warehouse columns.

Batch ids sort chronologically as plain strings: ``<run id>-<sequence>``, where a run id is
``20261124T153000123456Z-1a2b3c4d`` (UTC start time with microseconds, then 8 random hex digits).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa

from sync_platform.engine.watermark import encode_value
from sync_platform.errors import StagingStoreError

MANIFEST_NAME = "_manifest.json"
COPY_MANIFEST_NAME = "_manifest-copy.json"
PART_NAME = "part-{index:05d}.parquet"
FORMAT_VERSION = 1

_RUN_ID = re.compile(r"^(\d{8}T\d{12}Z)-([0-9a-f]{8})$")
_BATCH_ID = re.compile(r"^(\d{8}T\d{12}Z)-([0-9a-f]{8})-(\d{5,})$")


class ManifestError(StagingStoreError, ValueError):
    """A manifest that cannot be read or does not describe a valid batch."""


# --------------------------------------------------------------------------- ids


def new_run_id(now: dt.datetime | None = None) -> str:
    """A run id that sorts after every id made earlier (``20261124T153000123456Z-1a2b3c4d``)."""
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{moment:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(4)}"


def batch_id_for(run_id: str, sequence: int) -> str:
    """The id of the ``sequence``-th batch (from 1) of a run; also the name of its directory."""
    if not _RUN_ID.match(run_id):
        raise ValueError(f"run id {run_id!r} is not of the form 20261124T153000123456Z-1a2b3c4d (see new_run_id)")
    if sequence < 1:
        raise ValueError(f"batch sequence numbers start at 1, got {sequence}")
    return f"{run_id}-{sequence:05d}"


def is_batch_id(name: str) -> bool:
    return _BATCH_ID.match(name) is not None


def batch_sort_key(batch_id: str) -> tuple[str, str, int]:
    """Chronological order of batch ids (start time, run, sequence), valid past 99,999 batches a run."""
    match = _BATCH_ID.match(batch_id)
    if not match:
        raise ValueError(f"{batch_id!r} is not a batch id")
    return match.group(1), match.group(2), int(match.group(3))


def run_started_at(run_id: str) -> dt.datetime:
    """When a run (or the run of a batch id) started, from its id."""
    match = _RUN_ID.match(run_id) or _BATCH_ID.match(run_id)
    if not match:
        raise ValueError(f"{run_id!r} is not a run or batch id")
    return dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.UTC)


# --------------------------------------------------------------------------- JSON values


def json_value(value: Any, where: str = "value") -> Any:
    """``value`` as plain JSON data that reads back equal (the form stored in a manifest).

    JSON-native values pass unchanged (ints of any size stay exact). Datetimes, dates, decimals and
    bytes become the tagged objects of :func:`sync_platform.engine.watermark.encode_value`
    (``{"datetime": "2024-01-01T00:00:00.000001"}``), which ``Watermark.from_dict`` decodes.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else encode_value(value)
    if isinstance(value, dt.date | Decimal | bytes):
        return encode_value(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: JSON object keys must be strings, got {key!r}")
            out[key] = json_value(item, f"{where}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"{where}: cannot store a {type(value).__name__} in a manifest; encode it as JSON data")


# --------------------------------------------------------------------------- schema


def schema_to_json(schema: pa.Schema) -> dict[str, Any]:
    """A readable field list plus the exact Arrow schema (IPC, base64) to rebuild it."""
    return {
        "fields": [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema],
        "arrow": base64.b64encode(schema.serialize().to_pybytes()).decode("ascii"),
    }


def schema_from_json(data: Mapping[str, Any]) -> pa.Schema:
    try:
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(data["arrow"])))
    except (KeyError, TypeError, ValueError, pa.ArrowException) as exc:
        raise ManifestError(f"manifest schema is unreadable: {exc}") from exc


def bare_schema(schema: pa.Schema) -> pa.Schema:
    """The schema without schema- or field-level metadata (Redshift COPY chokes on foreign metadata)."""
    return pa.schema([pa.field(f.name, f.type, f.nullable) for f in schema])


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class StagedFile:
    """One parquet part of a batch; ``key`` is relative to the staging store's root."""

    key: str
    rows: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "rows": self.rows, "bytes": self.bytes}


@dataclass(frozen=True)
class Manifest:
    """A staged batch, self-described. ``Manifest.from_json(m.to_json()) == m`` holds exactly."""

    batch_id: str
    run_id: str
    sequence: int
    table: str  # the table's identity, SOURCE:schema.table
    prefix: str  # the batch's directory: <table prefix>/<batch id>
    created_at: dt.datetime  # UTC, when the manifest was written
    files: tuple[StagedFile, ...]
    schema: pa.Schema  # of every part, without metadata
    watermark_start: dict[str, Any] = field(default_factory=dict)  # JSON data (see json_value)
    watermark_end: dict[str, Any] = field(default_factory=dict)
    columns: tuple[dict[str, Any], ...] = ()  # warehouse columns as the sync step describes them
    extra: dict[str, Any] = field(default_factory=dict)  # counts and load settings (JSON data)
    compression: str = "zstd"
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise ManifestError(f"batch {self.batch_id}: created_at must be timezone-aware (UTC)")
        if not is_batch_id(self.batch_id):
            raise ManifestError(f"{self.batch_id!r} is not a batch id (<run id>-<sequence>)")
        object.__setattr__(self, "created_at", self.created_at.astimezone(dt.UTC))
        object.__setattr__(self, "files", tuple(self.files))
        object.__setattr__(self, "schema", bare_schema(self.schema))
        object.__setattr__(self, "watermark_start", json_value(self.watermark_start, "watermark_start"))
        object.__setattr__(self, "watermark_end", json_value(self.watermark_end, "watermark_end"))
        object.__setattr__(self, "columns", tuple(json_value(dict(c), "columns") for c in self.columns))
        object.__setattr__(self, "extra", json_value(self.extra, "extra"))

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def manifest_key(self) -> str:
        return f"{self.prefix}/{MANIFEST_NAME}"

    @property
    def copy_manifest_key(self) -> str:
        """The Redshift COPY manifest: ``COPY … FROM '<store uri of this key>' MANIFEST FORMAT AS PARQUET``."""
        return f"{self.prefix}/{COPY_MANIFEST_NAME}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "batch_id": self.batch_id,
            "run_id": self.run_id,
            "sequence": self.sequence,
            "table": self.table,
            "prefix": self.prefix,
            "created_at": self.created_at.isoformat(timespec="microseconds"),
            "rows": self.rows,
            "bytes": self.bytes,
            "compression": self.compression,
            "files": [f.to_dict() for f in self.files],
            "watermark": {"start": self.watermark_start, "end": self.watermark_end},
            "schema": schema_to_json(self.schema),
            "columns": list(self.columns),
            "extra": self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False, allow_nan=False, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        try:
            version = int(data["version"])
            if version > FORMAT_VERSION:
                raise ManifestError(
                    f"batch {data.get('batch_id')}: manifest version {version} is newer than this "
                    f"sync_platform understands ({FORMAT_VERSION}); upgrade sync_platform"
                )
            files = tuple(StagedFile(str(f["key"]), int(f["rows"]), int(f["bytes"])) for f in data["files"])
            manifest = cls(
                batch_id=data["batch_id"],
                run_id=data["run_id"],
                sequence=int(data["sequence"]),
                table=data["table"],
                prefix=data["prefix"],
                created_at=dt.datetime.fromisoformat(data["created_at"]),
                files=files,
                schema=schema_from_json(data["schema"]),
                watermark_start=data["watermark"]["start"],
                watermark_end=data["watermark"]["end"],
                columns=tuple(data.get("columns", ())),
                extra=data.get("extra", {}),
                compression=data.get("compression", "zstd"),
                version=version,
            )
        except ManifestError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"batch {data.get('batch_id', '?')}: malformed manifest ({exc!r})") from exc
        if "rows" in data and int(data["rows"]) != manifest.rows:
            raise ManifestError(
                f"batch {manifest.batch_id}: manifest says {data['rows']} rows, its files {manifest.rows}"
            )
        return manifest

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ManifestError(f"manifest is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ManifestError("manifest is not a JSON object")
        return cls.from_dict(data)


def copy_manifest(files: tuple[StagedFile, ...] | list[StagedFile], uri: Callable[[str], str]) -> dict[str, Any]:
    """Redshift's COPY manifest for the parts: every entry mandatory, with its exact byte size.

    ``meta.content_length`` is required when a manifest lists Parquet or ORC files ("Using a manifest
    to specify data files", Amazon Redshift Database Developer Guide).
    """
    return {"entries": [{"url": uri(f.key), "mandatory": True, "meta": {"content_length": f.bytes}} for f in files]}
