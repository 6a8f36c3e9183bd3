"""Health of each configured connection: reachable or not, how fast, which server, which tunnel.

A check makes one attempt (no retries) with a short timeout: it answers "is it up now?", quickly.
Every text in a report has been through the registry's secret masking.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from sync_platform.connections.registry import ConnectionRegistry, Role, UnknownConnection
from sync_platform.connections.retry import ConnectionFailure
from sync_platform.connections.staging.local import LocalStore
from sync_platform.connections.staging.s3 import S3Store

CHECK_TIMEOUT = 10.0


@dataclass(frozen=True)
class HealthReport:
    name: str
    kind: str  # "mysql", "redshift", "postgres", "s3" or "local"
    ok: bool
    latency_ms: float | None  # one round trip (SELECT 1, HEAD bucket, or a probe file)
    server_version: str | None
    tunnel: str | None  # "user@bastion:22: open (1 user)" when a tunnel is configured
    error: str | None  # what failed, where, and what to check
    endpoint: str = ""  # host:port (and bastion) or bucket/directory; no secrets
    role: str = ""  # "source", "target" or "staging"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check(
    registry: ConnectionRegistry, name: str, *, role: Role | None = None, timeout: float = CHECK_TIMEOUT
) -> HealthReport:
    """Check one connection. ``role`` picks which one when a name is both a source and a target."""
    roles = registry.roles_of(name)
    if role is None:
        if not roles:
            known = sorted({n for names in registry.names().values() for n in names})
            raise UnknownConnection(None, name, known)
        role = roles[0]
    if role == "source":
        return _check_source(registry, name, timeout)
    if role == "target":
        return _check_warehouse(registry, name, timeout)
    return _check_staging(registry, name, timeout)


def check_all(registry: ConnectionRegistry, *, timeout: float = CHECK_TIMEOUT) -> list[HealthReport]:
    """Every configured connection, sources first, then targets, then staging stores."""
    return [
        check(registry, name, role=role, timeout=timeout) for role, names in registry.names().items() for name in names
    ]


def _check_source(registry: ConnectionRegistry, name: str, timeout: float) -> HealthReport:
    source = registry.source(name)
    version: str | None = None
    latency: float | None = None
    error: str | None = None
    tunnel_during: str | None = None
    try:
        with source.connect(attempts=1, connect_timeout=timeout) as conn, conn.cursor() as cur:
            tunnel_during = source.tunnel_state()
            started = time.perf_counter()
            cur.execute("SELECT 1")
            cur.fetchall()
            latency = (time.perf_counter() - started) * 1000
            cur.execute("SELECT VERSION()")
            row = cur.fetchone()
            version = str(row[0]) if row else None
    except ConnectionFailure as exc:
        error = str(exc)
    except Exception as exc:  # a query failed on a live connection
        error = f"MySQL source '{name}' at {source.address}: {type(exc).__name__}: {exc}"
    return HealthReport(
        name=name,
        kind=source.cfg.type,
        ok=error is None,
        latency_ms=latency,
        server_version=version,
        tunnel=registry.mask(tunnel_during or source.tunnel_state() or "") or None,
        error=registry.mask(error) if error else None,
        endpoint=source.address,
        role="source",
    )


def _check_warehouse(registry: ConnectionRegistry, name: str, timeout: float) -> HealthReport:
    warehouse = registry.warehouse(name)
    version: str | None = None
    latency: float | None = None
    error: str | None = None
    tunnel_during: str | None = None
    try:
        with warehouse.connect(attempts=1, connect_timeout=timeout) as conn, conn.cursor() as cur:
            tunnel_during = warehouse.tunnel_state()
            started = time.perf_counter()
            cur.execute("SELECT 1")
            cur.fetchall()
            latency = (time.perf_counter() - started) * 1000
            cur.execute("SELECT version()")
            row = cur.fetchone()
            version = str(row[0]) if row else None
    except ConnectionFailure as exc:
        error = str(exc)
    except Exception as exc:
        error = f"warehouse '{name}' at {warehouse.address}: {type(exc).__name__}: {exc}"
    return HealthReport(
        name=name,
        kind=warehouse.dialect,
        ok=error is None,
        latency_ms=latency,
        server_version=version,
        tunnel=registry.mask(tunnel_during or warehouse.tunnel_state() or "") or None,
        error=registry.mask(error) if error else None,
        endpoint=warehouse.address,
        role="target",
    )


def _check_staging(registry: ConnectionRegistry, name: str, timeout: float) -> HealthReport:
    store = registry.staging(name)
    latency: float | None = None
    error: str | None = None
    endpoint = ""
    if isinstance(store, S3Store):
        endpoint = store.describe()
        try:
            latency = store.ping(timeout)
        except ConnectionFailure as exc:
            error = f"staging '{name}': {exc}"
    elif isinstance(store, LocalStore):
        endpoint = str(store.root)
        started = time.perf_counter()
        try:
            store.ping()
            latency = (time.perf_counter() - started) * 1000
        except OSError as exc:
            error = (
                f"staging '{name}': directory {store.root} is not writable ({exc.strerror or exc}); "
                "check local_path and its permissions"
            )
    else:  # pragma: no cover - a store type this module does not know yet
        endpoint = getattr(store, "name", name)
    return HealthReport(
        name=name,
        kind=store.kind,
        ok=error is None,
        latency_ms=latency,
        server_version=None,
        tunnel=None,
        error=registry.mask(error) if error else None,
        endpoint=endpoint,
        role="staging",
    )
