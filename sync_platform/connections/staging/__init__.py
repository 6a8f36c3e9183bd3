"""Staging stores: an S3 bucket (or S3-compatible server) or a local directory, behind one protocol."""

from __future__ import annotations

from pathlib import Path

from sync_platform.configuration.models import StagingConfig
from sync_platform.connections.staging.local import LocalStore
from sync_platform.connections.staging.s3 import S3Store, root_prefix
from sync_platform.connections.staging.store import StagingStore, StoredObject

__all__ = ["LocalStore", "S3Store", "StagingStore", "StoredObject", "local_root", "open_store"]


def local_root(cfg: StagingConfig, base_dir: Path) -> Path:
    """The directory of a ``local_path`` store: relative paths are resolved against ``base_dir``.

    ``~`` is expanded; the configured ``prefix`` (if any) is a subdirectory, as it is a key prefix on S3.
    """
    if not cfg.local_path:
        raise ValueError("not a local staging config (no local_path)")
    path = Path(cfg.local_path).expanduser()
    if not path.is_absolute():
        path = Path(base_dir) / path
    prefix = root_prefix(cfg)
    return (path / prefix if prefix else path).resolve()


def open_store(name: str, cfg: StagingConfig, base_dir: Path) -> StagingStore:
    """Build the store an ``s3_configs`` entry describes. Does no I/O (clients are created lazily)."""
    if cfg.kind == "s3":
        return S3Store(name, cfg)
    return LocalStore(name, local_root(cfg, base_dir))
