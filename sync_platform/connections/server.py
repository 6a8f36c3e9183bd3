"""What every database connection shares: its name, settings, SSH tunnel and masked secrets."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sync_platform.configuration.models import MySQLSourceConfig, WarehouseTargetConfig
from sync_platform.connections.retry import RetryPolicy
from sync_platform.connections.ssh_tunnel import TunnelPool, describe


class TunnelledServer:
    """A configured database server, reached directly or through an SSH bastion.

    Cheap to build; nothing is opened until ``endpoint()`` (or a subclass's ``connect()``).
    """

    def __init__(
        self,
        name: str,
        cfg: MySQLSourceConfig | WarehouseTargetConfig,
        tunnels: TunnelPool,
        *,
        retry: RetryPolicy | None = None,
    ):
        self.name = name
        self.cfg = cfg
        self._tunnels = tunnels
        self._retry = retry or RetryPolicy()

    @property
    def port(self) -> int:
        return int(self.cfg.port or 0)

    @property
    def tunnelled(self) -> bool:
        return bool(self.cfg.ssh_tunnel and self.cfg.ssh_tunnel.enabled)

    @property
    def address(self) -> str:
        """``host:port`` as configured (seen from the bastion when tunnelled); safe to print."""
        via = f" via SSH bastion {describe(self.cfg.ssh_tunnel)}" if self.tunnelled and self.cfg.ssh_tunnel else ""
        return f"{self.cfg.host}:{self.port}{via}"

    def secrets(self) -> list[str]:
        """Every secret this connection knows, for masking error text."""
        found = [self.cfg.password.get_secret_value()]
        tunnel = self.cfg.ssh_tunnel
        if tunnel is not None:
            for secret in (tunnel.password, tunnel.private_key_passphrase):
                if secret is not None:
                    found.append(secret.get_secret_value())
        return [s for s in found if s]

    def tunnel_state(self) -> str | None:
        """None without a tunnel, else the bastion and whether the tunnel is open now."""
        tunnel = self.cfg.ssh_tunnel
        if not self.tunnelled or tunnel is None:
            return None
        return f"{describe(tunnel)}: {self._tunnels.state(tunnel, self.cfg.host, self.port)}"

    @contextmanager
    def endpoint(self) -> Iterator[tuple[str, int]]:
        """The ``(host, port)`` a client should dial: the local end of the tunnel, or the server itself."""
        tunnel = self.cfg.ssh_tunnel
        if self.tunnelled and tunnel is not None:
            with self._tunnels.open(tunnel, self.cfg.host, self.port) as local:
                yield local
        else:
            yield self.cfg.host, self.port
