"""v1.0.0 mode: the older tool's ``.env`` variables define ``default`` connections and pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Dotted key in connections.yml form -> environment variable of the older tool (or a new one, marked).
SOURCE_VARS = {
    "host": "DB_HOST",
    "port": "DB_PORT",
    "database": "DB_DATABASE",
    "username": "DB_USER",
    "password": "DB_PASSWORD",
}
SOURCE_TUNNEL_VARS = {
    "host": "SSH_BASTION_HOST",
    "port": "SSH_BASTION_PORT",
    "username": "SSH_BASTION_USER",
    "private_key_path": "SSH_BASTION_KEY_PATH",
    "local_port": "SSH_LOCAL_PORT",
}
TARGET_VARS = {
    "type": "REDSHIFT_TYPE",  # new: "postgres" for a local warehouse
    "host": "REDSHIFT_HOST",
    "port": "REDSHIFT_PORT",
    "database": "REDSHIFT_DATABASE",
    "schema": "REDSHIFT_SCHEMA",
    "username": "REDSHIFT_USER",
    "password": "REDSHIFT_PASSWORD",
    "iam_role": "REDSHIFT_IAM_ROLE",  # new
}
TARGET_TUNNEL_VARS = {
    "host": "REDSHIFT_SSH_BASTION_HOST",
    "port": "REDSHIFT_SSH_BASTION_PORT",
    "username": "REDSHIFT_SSH_BASTION_USER",
    "private_key_path": "REDSHIFT_SSH_BASTION_KEY_PATH",
    "local_port": "REDSHIFT_SSH_LOCAL_PORT",
}
STAGING_VARS = {
    "bucket_name": "S3_BUCKET_NAME",
    "region": "S3_REGION",
    "access_key_id": "S3_ACCESS_KEY",
    "secret_access_key": "S3_SECRET_KEY",
    "incremental_path": "S3_INCREMENTAL_PATH",
    "endpoint_url": "S3_ENDPOINT_URL",  # new
    "local_path": "S3_LOCAL_PATH",  # new: a local staging directory
}
BACKUP_VARS = {"batch_size": "BACKUP_BATCH_SIZE"}

LEGACY_MARKER = "DB_HOST"


def is_legacy_environment(env: Mapping[str, str]) -> bool:
    return bool(env.get(LEGACY_MARKER))


def _pick(env: Mapping[str, str], names: Mapping[str, str]) -> dict[str, Any]:
    return {key: env[var] for key, var in names.items() if env.get(var) not in (None, "")}


def connections_document(env: Mapping[str, str]) -> dict[str, Any]:
    """The connections.yml equivalent of the older tool's environment variables."""
    source = _pick(env, SOURCE_VARS)
    if env.get("SSH_BASTION_HOST"):
        source["ssh_tunnel"] = {"enabled": True, **_pick(env, SOURCE_TUNNEL_VARS)}
    target = _pick(env, TARGET_VARS)
    if env.get("REDSHIFT_SSH_BASTION_HOST"):
        target["ssh_tunnel"] = {"enabled": True, **_pick(env, TARGET_TUNNEL_VARS)}
    document: dict[str, Any] = {
        "connections": {"sources": {"default": source}, "targets": {"default": target}},
        "s3_configs": {"default": _pick(env, STAGING_VARS)},
    }
    backup = _pick(env, BACKUP_VARS)
    if backup:
        document["backup"] = backup
    return document


def variable_for(loc: tuple[str | int, ...]) -> str | None:
    """The environment variable behind a key path of the generated document (for error messages)."""
    tables: dict[tuple[str, ...], Mapping[str, str]] = {
        ("connections", "sources", "default"): SOURCE_VARS,
        ("connections", "sources", "default", "ssh_tunnel"): SOURCE_TUNNEL_VARS,
        ("connections", "targets", "default"): TARGET_VARS,
        ("connections", "targets", "default", "ssh_tunnel"): TARGET_TUNNEL_VARS,
        ("s3_configs", "default"): STAGING_VARS,
        ("backup",): BACKUP_VARS,
    }
    parts = tuple(str(p) for p in loc)
    for length in range(len(parts), 0, -1):
        names = tables.get(parts[:length])
        if names is not None:
            rest = parts[length:]
            return names.get(rest[0]) if rest else None
    return None


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (optional ``export``, quotes stripped); comments and blanks ignored."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values
