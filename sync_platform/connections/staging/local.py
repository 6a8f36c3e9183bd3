"""A local directory as the staging store: the embedded default, and handy for demos and tests.

It behaves like the S3 store where the engine can tell: keys are '/'-separated and relative,
``list`` matches a plain string prefix in key order, and an object appears only when complete
(written to a temporary file in the same directory, then renamed).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from sync_platform.connections.staging.store import StoredObject

_TEMP_SUFFIX = ".partial"


class LocalStore:
    """Objects are files under ``root``; a key ``a/b/c.parquet`` is the file ``root/a/b/c.parquet``."""

    kind = "local"

    def __init__(self, name: str, root: Path):
        self.name = name
        self.root = root.expanduser().resolve()

    def path(self, key: str) -> Path:
        """The file for ``key``; keys that would escape the root are refused."""
        parts = PurePosixPath(key).parts
        if not key or key.startswith("/") or ".." in parts or "\\" in key:
            raise ValueError(f"invalid staging key {key!r}: use a relative '/'-separated path without '..'")
        return self.root.joinpath(*parts)

    def put_file(self, key: str, path: str) -> None:
        target = self.path(key)
        with self._atomic(target) as out, open(path, "rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._atomic(self.path(key)) as out:
            out.write(data)

    def get_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        with open(self.path(key), "rb") as handle:
            yield handle

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str) -> Iterator[StoredObject]:
        """Every complete file whose key starts with ``prefix``, in key order (like S3)."""
        directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.path(directory) if directory else self.root
        if not start.is_dir():
            return
        found: list[tuple[str, os.stat_result]] = []
        for dirpath, _dirnames, filenames in os.walk(start):
            for filename in filenames:
                if filename.endswith(_TEMP_SUFFIX):
                    continue
                full = Path(dirpath, filename)
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    try:
                        found.append((key, full.stat()))
                    except FileNotFoundError:  # deleted while listing
                        continue
        for key, stat in sorted(found, key=lambda item: item[0]):
            modified = dt.datetime.fromtimestamp(stat.st_mtime, tz=dt.UTC)
            yield StoredObject(key=key, size=stat.st_size, last_modified=modified)

    def delete(self, keys: list[str]) -> None:
        """Remove the files (missing ones are fine) and any directories left empty."""
        for key in keys:
            target = self.path(key)
            target.unlink(missing_ok=True)
            parent = target.parent
            while parent != self.root and parent.is_relative_to(self.root):
                try:
                    parent.rmdir()
                except OSError:  # not empty (or already gone)
                    break
                parent = parent.parent

    def uri(self, key: str) -> str:
        return str(self.path(key))

    def ping(self) -> None:
        """Prove the root exists (creating it) and is writable; raises OSError if not."""
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-", suffix=_TEMP_SUFFIX):
            pass

    @contextmanager
    def _atomic(self, target: Path) -> Iterator[BinaryIO]:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}{_TEMP_SUFFIX}")
        try:
            with open(temp, "wb") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
