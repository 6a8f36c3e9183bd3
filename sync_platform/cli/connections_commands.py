"""``connections``: list, test, inspect and check the health of configured connections."""

from __future__ import annotations

import click

from sync_platform.cli import output
from sync_platform.cli.context import CliContext, pass_cli
from sync_platform.cli.exit_codes import ExitCode
from sync_platform.configuration.models import MySQLSourceConfig, StagingConfig, WarehouseTargetConfig
from sync_platform.connections.health import HealthReport, check, check_all
from sync_platform.connections.registry import ConnectionRegistry, UnknownConnection

TYPES = ("mysql", "redshift", "postgres", "s3", "local", "all")


def _registry(ctx: CliContext) -> ConnectionRegistry:
    project = ctx.project()
    return ConnectionRegistry(project.connections, project.config_dir)


def _kind(cfg: object) -> str:
    if isinstance(cfg, MySQLSourceConfig):
        return "mysql"
    if isinstance(cfg, WarehouseTargetConfig):
        return cfg.dialect
    assert isinstance(cfg, StagingConfig)
    return cfg.kind


def _entries(ctx: CliContext) -> list[tuple[str, str, object]]:
    conns = ctx.project().connections
    return [
        *(("source", name, cfg) for name, cfg in conns.connections.sources.items()),
        *(("target", name, cfg) for name, cfg in conns.connections.targets.items()),
        *(("staging", name, cfg) for name, cfg in conns.s3_configs.items()),
    ]


def _where(cfg: object) -> str:
    if isinstance(cfg, StagingConfig):
        return f"s3://{cfg.bucket_name}/{cfg.prefix}" if cfg.bucket_name else str(cfg.local_path)
    host, port = getattr(cfg, "host", ""), getattr(cfg, "port", None)
    if isinstance(cfg, WarehouseTargetConfig):
        port = cfg.effective_port
    return f"{host}:{port}/{getattr(cfg, 'database', '')}"


@click.group("connections")
def connections_group() -> None:
    """List, test and inspect configured connections."""


@connections_group.command("list")
@click.option("--type", "kind", type=click.Choice(TYPES), default="all", show_default=True)
@pass_cli
def list_connections(ctx: CliContext, kind: str) -> None:
    """Every configured connection (secrets masked)."""
    rows = []
    for role, name, cfg in _entries(ctx):
        if kind not in ("all", _kind(cfg)):
            continue
        tunnel = getattr(cfg, "ssh_tunnel", None)
        via = f"{tunnel.username}@{tunnel.host}:{tunnel.port}" if tunnel and tunnel.enabled else ""
        rows.append((name, role, _kind(cfg), _where(cfg), via))
    output.table("Connections", ["name", "role", "type", "where", "ssh tunnel"], rows)


def print_health_reports(reports: list[HealthReport]) -> None:
    """One line per connection: OK with latency, version and tunnel, or FAIL with what failed (masked)."""
    for report in reports:
        label = f"{report.role} {report.name} ({report.kind}, {report.endpoint})"
        if report.ok:
            latency = f"{report.latency_ms:.0f} ms" if report.latency_ms is not None else ""
            version = f", {report.server_version}" if report.server_version else ""
            tunnel = f", tunnel {report.tunnel}" if report.tunnel else ""
            output.ok(f"{label}: {latency}{version}{tunnel}")
        else:
            output.fail(f"{label}: {report.error}")


@connections_group.command("test")
@click.argument("name", required=False)
@click.option("--all", "test_all", is_flag=True, help="Test every configured connection.")
@pass_cli
def test(ctx: CliContext, name: str | None, test_all: bool) -> None:
    """Connect for real (through SSH tunnels where configured); exit 2 if any fails."""
    if not name and not test_all:
        raise click.UsageError("name a connection or pass --all")
    with _registry(ctx) as registry:
        try:
            if test_all:
                reports = check_all(registry)
            else:
                assert name is not None
                reports = [check(registry, name, role=role) for role in registry.roles_of(name)] or [
                    check(registry, name)
                ]
        except UnknownConnection as exc:
            click.echo(str(exc), err=True)
            raise SystemExit(ExitCode.CONFIG) from None
        print_health_reports(reports)
    failed = [r for r in reports if not r.ok]
    if failed:
        click.echo(f"{len(failed)} of {len(reports)} connection(s) failed", err=True)
        raise SystemExit(ExitCode.CONNECTION)
    click.echo(f"{len(reports)} connection(s) OK")


@connections_group.command("info")
@click.argument("name")
@pass_cli
def info(ctx: CliContext, name: str) -> None:
    """Settings of one connection, with every secret masked."""
    found = [(role, cfg) for role, n, cfg in _entries(ctx) if n == name]
    if not found:
        known = ", ".join(sorted({n for _, n, _ in _entries(ctx)}))
        click.echo(f"unknown connection {name!r}; connections.yml defines: {known}", err=True)
        raise SystemExit(ExitCode.CONFIG)
    for role, cfg in found:
        click.echo(f"{name} ({role}, {_kind(cfg)})")
        data = cfg.model_dump(mode="python", by_alias=True, exclude_none=True)  # type: ignore[attr-defined]
        for line in _render(
            data,
            secret_keys={"password", "secret_access_key", "access_key_id", "session_token", "private_key_passphrase"},
        ):
            click.echo(f"  {line}")


def _render(data: dict, secret_keys: set[str], indent: str = "") -> list[str]:
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines.extend(_render(value, secret_keys, indent + "  "))
        elif key in secret_keys or hasattr(value, "get_secret_value"):
            secret = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            lines.append(f"{indent}{key}: {output.mask(secret)}")
        else:
            lines.append(f"{indent}{key}: {value}")
    return lines


@connections_group.command("health")
@pass_cli
def health(ctx: CliContext) -> None:
    """Reachability, latency, server version and tunnel state of every connection."""
    with _registry(ctx) as registry:
        reports = check_all(registry)
    output.table(
        "Connection health",
        ["name", "role", "type", "ok", "latency ms", "version", "tunnel", "error"],
        [
            (
                r.name,
                r.role,
                r.kind,
                "yes" if r.ok else "NO",
                f"{r.latency_ms:.0f}" if r.latency_ms is not None else "",
                r.server_version,
                r.tunnel,
                r.error,
            )
            for r in reports
        ],
    )
    if any(not r.ok for r in reports):
        raise SystemExit(ExitCode.CONNECTION)
