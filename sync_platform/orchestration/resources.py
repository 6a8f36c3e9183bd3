"""Dagster resources: one per connection of ``connections.yml``, and the registry built from them.

Each resource shows the connection's non-secret settings in the UI and can override them per
deployment. A secret appears only as an ``EnvVar`` reference, and only when connections.yml reads it
from one (``password: ${SHOP_MYSQL_PASSWORD}``) and the variable is set; otherwise the resource holds
no secret and the value the config loader resolved is used. Secrets never reach metadata or logs.

No resource opens anything: an op builds a :class:`ConnectionRegistry` from them, the engine opens
connections (and SSH tunnels) inside ``connect()`` blocks around the work that needs them, and the
registry is closed when the op ends.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from pydantic import Field, SecretStr

from sync_platform.configuration.legacy_env import SOURCE_VARS, STAGING_VARS, TARGET_VARS
from sync_platform.configuration.models import ConnectionsFile
from sync_platform.configuration.project import Project
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.orchestration.keys import Role, resource_key

_REFERENCE = re.compile(r"^\s*\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-.*)?\}\s*$")
_SECRET_FIELDS: dict[Role, tuple[str, ...]] = {
    "source": ("password",),
    "target": ("password",),
    "staging": ("access_key_id", "secret_access_key", "session_token"),
}
_LEGACY_VARS: dict[Role, Mapping[str, str]] = {"source": SOURCE_VARS, "target": TARGET_VARS, "staging": STAGING_VARS}


class MySQLSourceResource(dg.ConfigurableResource):
    """A MySQL / MariaDB source of connections.yml (``connections.sources.<connection>``)."""

    connection: str = Field(description="name in connections.yml")
    host: str
    port: int
    database: str
    username: str
    ssh_bastion: str | None = Field(None, description="user@host:port of the SSH bastion, when tunnelled")
    password: str | None = Field(None, description="an EnvVar; unset: as connections.yml resolves it")


class WarehouseResource(dg.ConfigurableResource):
    """A Redshift or PostgreSQL target of connections.yml (``connections.targets.<connection>``)."""

    connection: str = Field(description="name in connections.yml")
    type: str
    host: str
    port: int
    database: str
    schema_name: str = Field(description="default target schema")
    username: str
    ssh_bastion: str | None = None
    password: str | None = Field(None, description="an EnvVar; unset: as connections.yml resolves it")


class StagingResource(dg.ConfigurableResource):
    """A staging store of connections.yml (``s3_configs.<connection>``): an S3 bucket or a local directory."""

    connection: str = Field(description="name in connections.yml")
    location: str = Field(description="s3://bucket/prefix or a local directory (display only)")
    access_key_id: str | None = Field(None, description="an EnvVar; unset: connections.yml or the default chain")
    secret_access_key: str | None = None
    session_token: str | None = None


def _bastion(tunnel: Any) -> str | None:
    if tunnel is None or not tunnel.enabled:
        return None
    return f"{tunnel.username}@{tunnel.host}:{tunnel.port}"


def secret_variables(project: Project) -> dict[tuple[Role, str, str], str]:
    """``{(role, connection, field): VARIABLE}`` for every secret connections.yml reads from a variable."""
    found: dict[tuple[Role, str, str], str] = {}
    if project.mode == "env":  # v1.0.0: the older tool's variables define the `default` connections
        for role, variables in _LEGACY_VARS.items():
            for field in _SECRET_FIELDS[role]:
                variable = variables.get(field)
                if variable:
                    found[(role, "default", field)] = variable
        return found
    path = next((p for p in project.files_read if p.name in ("connections.yml", "connections.yaml")), None)
    path = path or Path(project.config_dir) / "connections.yml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return found
    groups = raw.get("connections") or {}
    sections: dict[Role, Any] = {
        "source": groups.get("sources") or {},
        "target": groups.get("targets") or {},
        "staging": raw.get("s3_configs") or {},
    }
    for role, entries in sections.items():
        for name, entry in entries.items() if isinstance(entries, dict) else ():
            for field in _SECRET_FIELDS[role]:
                value = entry.get(field) if isinstance(entry, dict) else None
                match = _REFERENCE.match(value) if isinstance(value, str) else None
                if match:
                    found[(role, str(name), field)] = match.group(1)
    return found


def _secret(variables: Mapping[tuple[Role, str, str], str], role: Role, name: str, field: str) -> Any:
    """An EnvVar for a secret read from a variable that is set (an unset one keeps its default from YAML)."""
    variable = variables.get((role, name, field))
    if variable and os.environ.get(variable):
        return dg.EnvVar(variable)
    return None


def connection_resources(project: Project) -> dict[str, dg.ConfigurableResource]:
    """One resource per connection, keyed ``mysql_<name>``, ``warehouse_<name>``, ``staging_<name>``."""
    connections = project.connections
    variables = secret_variables(project)
    resources: dict[str, dg.ConfigurableResource] = {}
    for name, source in connections.connections.sources.items():
        resources[resource_key("source", name)] = MySQLSourceResource(
            connection=name,
            host=source.host,
            port=source.port,
            database=source.database,
            username=source.username,
            ssh_bastion=_bastion(source.ssh_tunnel),
            password=_secret(variables, "source", name, "password"),
        )
    for name, target in connections.connections.targets.items():
        resources[resource_key("target", name)] = WarehouseResource(
            connection=name,
            type=target.dialect,
            host=target.host,
            port=target.effective_port,
            database=target.database,
            schema_name=target.schema_,
            username=target.username,
            ssh_bastion=_bastion(target.ssh_tunnel),
            password=_secret(variables, "target", name, "password"),
        )
    for name in connections.s3_configs:
        resources[resource_key("staging", name)] = StagingResource(
            connection=name,
            location=staging_location(project, name),
            access_key_id=_secret(variables, "staging", name, "access_key_id"),
            secret_access_key=_secret(variables, "staging", name, "secret_access_key"),
            session_token=_secret(variables, "staging", name, "session_token"),
        )
    return resources


def staging_location(project: Project, name: str) -> str:
    """Where a staging store keeps its batches, for display (no I/O)."""
    cfg = project.connections.s3_configs[name]
    prefix = "/".join(p.strip("/") for p in (cfg.prefix, cfg.incremental_path or "") if p and p.strip("/"))
    if cfg.kind == "s3":
        return f"s3://{cfg.bucket_name}/{prefix}".rstrip("/")
    path = Path(cfg.local_path or ".").expanduser()
    path = path if path.is_absolute() else Path(project.config_dir) / path
    return str((path / prefix) if prefix else path)


def _secret_value(value: str | None) -> SecretStr | None:
    return SecretStr(value) if value is not None else None


def apply_resources(connections: ConnectionsFile, resources: Mapping[str, Any]) -> ConnectionsFile:
    """``connections`` with the values the resources carry (a deployment's overrides and secrets)."""
    groups = connections.connections
    sources = dict(groups.sources)
    for name, cfg in groups.sources.items():
        res = resources.get(resource_key("source", name))
        if isinstance(res, MySQLSourceResource):
            update: dict[str, Any] = {"host": res.host, "port": res.port, "database": res.database}
            update["username"] = res.username
            if res.password is not None:
                update["password"] = SecretStr(res.password)
            sources[name] = cfg.model_copy(update=update)
    targets = dict(groups.targets)
    for name, cfg in groups.targets.items():
        res = resources.get(resource_key("target", name))
        if isinstance(res, WarehouseResource):
            update = {"host": res.host, "port": res.port, "database": res.database, "username": res.username}
            update["schema_"] = res.schema_name
            if res.password is not None:
                update["password"] = SecretStr(res.password)
            targets[name] = cfg.model_copy(update=update)
    stores = dict(connections.s3_configs)
    for name, cfg in connections.s3_configs.items():
        res = resources.get(resource_key("staging", name))
        if isinstance(res, StagingResource):
            update = {
                field: _secret_value(getattr(res, field))
                for field in _SECRET_FIELDS["staging"]
                if getattr(res, field) is not None
            }
            stores[name] = cfg.model_copy(update=update)
    new_groups = groups.model_copy(update={"sources": sources, "targets": targets})
    return connections.model_copy(update={"connections": new_groups, "s3_configs": stores})


def build_registry(project: Project, resources: Mapping[str, Any]) -> ConnectionRegistry:
    """A fresh registry over the resources' connections; close it when the work is done (closes tunnels)."""
    return ConnectionRegistry(apply_resources(project.connections, resources), project.config_dir)
