"""The connection registry: every configured source, warehouse and staging store, built on demand.

Building the registry does no I/O; a connection is opened only when someone asks for it, and SSH
tunnels are shared through one :class:`TunnelPool` for the whole registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from sync_platform.configuration.models import ConnectionsFile
from sync_platform.connections.mysql import MySQLSource
from sync_platform.connections.retry import RetryPolicy, mask_secrets
from sync_platform.connections.ssh_tunnel import TunnelPool
from sync_platform.connections.staging import open_store
from sync_platform.connections.staging.store import StagingStore
from sync_platform.connections.warehouse import Warehouse
from sync_platform.errors import ConfigurationError

Role = Literal["source", "target", "staging"]

_SECTION: dict[Role, str] = {
    "source": "connections.sources",
    "target": "connections.targets",
    "staging": "s3_configs",
}


class UnknownConnection(ConfigurationError, KeyError):
    """A name that connections.yml does not define; the message lists the names it does define."""

    def __init__(self, role: Role | None, name: str, known: list[str]):
        self.role, self.name, self.known = role, name, known
        listed = ", ".join(sorted(known)) if known else "none"
        section = _SECTION[role] if role else "connections.sources, connections.targets and s3_configs"
        kind = f"{role} connection" if role else "connection"
        self.message = f"unknown {kind} {name!r}: connections.yml defines in {section}: {listed}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return self.message


class ConnectionRegistry:
    """Sources, warehouses and staging stores by name, as ``connections.yml`` defines them.

    ``base_dir`` is the directory a relative ``local_path`` is resolved against. Pass the config
    directory (where connections.yml lives): a path in a file then means the same place for
    every process that reads the file — the CLI, the Dagster webserver and the daemon all start
    in different working directories, and resolving against the current directory would give
    each its own staging area.
    """

    def __init__(self, connections: ConnectionsFile, base_dir: Path, *, tunnels: TunnelPool | None = None):
        self.connections = connections
        self.base_dir = Path(base_dir)
        settings = connections.connection_settings
        self.retry = RetryPolicy(attempts=max(1, settings.max_retries), base_delay=max(0.0, settings.retry_delay))
        self.read_timeout = settings.default_timeout or None
        self.tunnels = tunnels or TunnelPool(connect_timeout=settings.connection_timeout or 15.0)
        self._sources: dict[str, MySQLSource] = {}
        self._warehouses: dict[str, Warehouse] = {}
        self._stores: dict[str, StagingStore] = {}

    def source(self, name: str) -> MySQLSource:
        if name not in self._sources:
            cfg = self.connections.connections.sources.get(name)
            if cfg is None:
                raise UnknownConnection("source", name, list(self.connections.connections.sources))
            self._sources[name] = MySQLSource(name, cfg, self.tunnels, retry=self.retry, read_timeout=self.read_timeout)
        return self._sources[name]

    def warehouse(self, name: str) -> Warehouse:
        if name not in self._warehouses:
            cfg = self.connections.connections.targets.get(name)
            if cfg is None:
                raise UnknownConnection("target", name, list(self.connections.connections.targets))
            self._warehouses[name] = Warehouse(name, cfg, self.tunnels, retry=self.retry)
        return self._warehouses[name]

    def staging(self, name: str) -> StagingStore:
        if name not in self._stores:
            cfg = self.connections.s3_configs.get(name)
            if cfg is None:
                raise UnknownConnection("staging", name, list(self.connections.s3_configs))
            self._stores[name] = open_store(name, cfg, self.base_dir)
        return self._stores[name]

    def names(self) -> dict[Role, list[str]]:
        """Every configured name by role, in file order."""
        return {
            "source": list(self.connections.connections.sources),
            "target": list(self.connections.connections.targets),
            "staging": list(self.connections.s3_configs),
        }

    def roles_of(self, name: str) -> list[Role]:
        """The roles a name has (a name may be both a source and a target)."""
        return [role for role, names in self.names().items() if name in names]

    def secrets(self) -> list[str]:
        """Every password, key and passphrase in the configuration, for masking output."""
        found: list[str] = []
        groups = self.connections.connections
        for cfg in (*groups.sources.values(), *groups.targets.values()):
            found.append(cfg.password.get_secret_value())
            tunnel = cfg.ssh_tunnel
            if tunnel is not None:
                for secret in (tunnel.password, tunnel.private_key_passphrase):
                    if secret is not None:
                        found.append(secret.get_secret_value())
        for staging in self.connections.s3_configs.values():
            for secret in (staging.access_key_id, staging.secret_access_key, staging.session_token):
                if secret is not None:
                    found.append(secret.get_secret_value())
        return [s for s in found if s]

    def mask(self, text: str) -> str:
        """``text`` with every configured secret replaced by ``***``."""
        return mask_secrets(text, self.secrets())

    def close(self) -> None:
        """Close every SSH tunnel and S3 client (connections are closed by their ``connect()`` blocks)."""
        self.tunnels.close()
        for store in self._stores.values():
            close = getattr(store, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> ConnectionRegistry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
