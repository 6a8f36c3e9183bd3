"""Before a sync reads anything: does every endpoint it needs answer?

A sync that starts with its warehouse down would read and stage the source, fail at the load, and
do it all again on every retry. The pre-flight check connects once to each endpoint the run needs
(the MySQL source, through its SSH bastion when it has one; the staging store; the warehouse), all
at the same time, each within its connect timeout, with no retries, and raises
:class:`EndpointUnreachable` naming every endpoint that did not answer and what to check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from sync_platform.configuration.project import TableSpec
from sync_platform.connections.health import CHECK_TIMEOUT, HealthReport, check
from sync_platform.connections.registry import ConnectionRegistry, Role
from sync_platform.errors import EndpointUnreachable

_SPACES = re.compile(r"\s+")


def needed_endpoints(specs: Sequence[TableSpec], *, stage: bool = True, load: bool = True) -> list[tuple[Role, str]]:
    """The (role, connection name) pairs a run of ``specs`` talks to, each once, sources first.

    Staging reads the source and writes the store; loading reads the store and writes the warehouse.
    """
    wanted: list[tuple[Role, str]] = []
    for spec in specs:
        for role, name, used in (
            ("source", spec.source, stage),
            ("staging", spec.staging, True),
            ("target", spec.target, load),
        ):
            if used and (role, name) not in wanted:
                wanted.append((role, name))
    return wanted


def check_endpoints(
    registry: ConnectionRegistry, endpoints: Sequence[tuple[Role, str]], *, timeout: float | None = None
) -> list[HealthReport]:
    """One health check per endpoint, all at once (so the slowest, not the sum, bounds the wait)."""
    if not endpoints:
        return []

    def one(endpoint: tuple[Role, str]) -> HealthReport:
        role, name = endpoint
        return check(registry, name, role=role, timeout=timeout or _connect_timeout(registry, role, name))

    with ThreadPoolExecutor(max_workers=len(endpoints), thread_name_prefix="preflight") as pool:
        return list(pool.map(one, endpoints))


def preflight(
    registry: ConnectionRegistry,
    specs: Sequence[TableSpec],
    *,
    stage: bool = True,
    load: bool = True,
    timeout: float | None = None,
) -> list[HealthReport]:
    """Check every endpoint a run of ``specs`` needs; raise :class:`EndpointUnreachable` if one is down."""
    reports = check_endpoints(registry, needed_endpoints(specs, stage=stage, load=load), timeout=timeout)
    down = [r for r in reports if not r.ok]
    if down:
        raise EndpointUnreachable(unreachable_message(down, len(reports)))
    return reports


def unreachable_message(down: Sequence[HealthReport], checked: int) -> str:
    """What did not answer, where, and the fix; nothing was read, so nothing needs cleaning up."""
    lines = [
        f"{len(down)} of {checked} endpoint(s) the sync needs did not answer, so it read nothing and stopped "
        "(no retries: fix the endpoint, then run again; `sync-platform connections health` checks them all):"
    ]
    for report in down:
        error = _SPACES.sub(" ", report.error or "no answer").strip()
        lines.append(f"  - {report.role} `{report.name}` ({report.kind}, {report.endpoint}): {error}")
    return "\n".join(lines)


def _connect_timeout(registry: ConnectionRegistry, role: Role, name: str) -> float:
    """The connection's own ``connect_timeout`` where it has one, else the health check's default."""
    groups = registry.connections.connections
    cfg = groups.sources.get(name) if role == "source" else groups.targets.get(name) if role == "target" else None
    value = getattr(cfg, "connect_timeout", None)
    return float(value) if value else CHECK_TIMEOUT
