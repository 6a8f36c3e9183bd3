"""The staging store: where parquet batches and their manifests live (S3 or a local directory)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO, Protocol


@dataclass(frozen=True)
class StoredObject:
    key: str  # relative to the store's root, '/'-separated
    size: int
    last_modified: dt.datetime  # timezone-aware UTC


class StagingStore(Protocol):
    """Minimal object-store interface the engine needs. Keys are relative to the store root."""

    name: str
    kind: str  # "s3" or "local"

    def put_file(self, key: str, path: str) -> None:
        """Upload a local file (multipart for large files). Visible only when complete."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write a small object (manifests) atomically."""

    def get_bytes(self, key: str) -> bytes: ...

    def open_read(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A seekable binary file with the object's content (pyarrow reads parquet from it)."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> Iterator[StoredObject]:
        """Every object under prefix, paginated to the end (never capped)."""

    def delete(self, keys: list[str]) -> None: ...

    def uri(self, key: str) -> str:
        """Absolute location: s3://bucket/root/key, or a filesystem path."""
