"""SSH tunnels through a bastion, opened lazily and shared while they are in use.

A tunnel is keyed by (bastion host, port, user, remote host, remote port). Everyone who needs the
same remote through the same bastion shares one SSH session and one local port; the tunnel is
closed when its last user leaves, so none stays open through staging and loading (DESIGN §5).
The local port is always chosen by the OS: a fixed ``local_port`` cannot be shared safely and is
ignored (the older tool ignored it too).

Built on ``sshtunnel`` (0.5.1, checked with paramiko 5.1). Two of its habits are worked around:
it connects to the bastion with no timeout, so a TCP probe with a timeout runs first and also
yields a clear "cannot reach" error; and it only *logs* why a session failed, so its log is
captured and quoted in the error raised here.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sync_platform.configuration.models import SSHTunnelConfig
from sync_platform.connections import host_keys
from sync_platform.connections.retry import ConnectionFailure, mask_secrets

if TYPE_CHECKING:  # imported where a tunnel is opened: most runs never need an SSH stack in memory
    import paramiko
    import sshtunnel

log = logging.getLogger(__name__)

LOCAL_HOST = "127.0.0.1"


class TunnelError(ConnectionFailure):
    """The bastion could not be reached or refused the session; the message names the bastion."""


@dataclass(frozen=True)
class TunnelKey:
    bastion_host: str
    bastion_port: int
    username: str
    remote_host: str
    remote_port: int

    @property
    def bastion(self) -> str:
        return f"{self.username}@{self.bastion_host}:{self.bastion_port}"

    def __str__(self) -> str:
        return f"{self.remote_host}:{self.remote_port} via SSH bastion {self.bastion}"


@dataclass(frozen=True)
class TunnelInfo:
    """What is open right now (for health output and tests)."""

    key: TunnelKey
    local_port: int
    users: int
    opened_at: float
    active: bool


@dataclass
class _Tunnel:
    key: TunnelKey
    forwarder: sshtunnel.SSHTunnelForwarder
    opened_at: float = field(default_factory=time.time)
    users: int = 0

    @property
    def local_port(self) -> int:
        return int(self.forwarder.local_bind_port)

    @property
    def active(self) -> bool:
        """The SSH session is up and the local listener serves (a dead session is not reused)."""
        try:
            return bool(self.forwarder.is_alive and self.forwarder.is_active)
        except Exception:
            return False

    def stop(self) -> None:
        # force=True: a graceful stop waits for client sockets and was seen to hang (original tool §7).
        try:
            self.forwarder.stop(force=True)
        except Exception as exc:  # a tunnel that is already broken may complain while closing
            log.debug("closing tunnel %s: %s", self.key, exc)
        _close_transport(self.forwarder)


class _CapturedLog(logging.Handler):
    """Collects sshtunnel's error messages (it logs the reason for a failure instead of raising it)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            self.errors.append(message)
        log.debug("sshtunnel: %s", message)


def tunnel_key(spec: SSHTunnelConfig, remote_host: str, remote_port: int) -> TunnelKey:
    if not spec.host or not spec.username:
        raise TunnelError("ssh_tunnel is enabled but host or username is not set")
    return TunnelKey(spec.host, int(spec.port), spec.username, remote_host, int(remote_port))


def describe(spec: SSHTunnelConfig) -> str:
    """``user@host:port`` of the bastion: safe to print (no key, no password)."""
    return f"{spec.username}@{spec.host}:{spec.port}"


class TunnelPool:
    """Shared, reference-counted SSH tunnels. Thread-safe; one pool per process is enough."""

    def __init__(self, *, connect_timeout: float = 15.0):
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._tunnels: dict[TunnelKey, _Tunnel] = {}
        self._opening: dict[TunnelKey, threading.Lock] = {}

    @contextmanager
    def open(self, spec: SSHTunnelConfig, remote_host: str, remote_port: int) -> Iterator[tuple[str, int]]:
        """Yield the local ``(host, port)`` that reaches ``remote_host:remote_port`` through the bastion.

        ``remote_host`` is resolved by the bastion, so ``127.0.0.1`` there means the bastion itself.
        """
        key = tunnel_key(spec, remote_host, remote_port)
        tunnel = self._acquire(spec, key)
        try:
            yield LOCAL_HOST, tunnel.local_port
        finally:
            self._release(tunnel)

    def active(self) -> list[TunnelInfo]:
        with self._lock:
            return [TunnelInfo(t.key, t.local_port, t.users, t.opened_at, t.active) for t in self._tunnels.values()]

    def state(self, spec: SSHTunnelConfig, remote_host: str, remote_port: int) -> str:
        """``open (N users)`` or ``closed`` for the tunnel this spec and remote would use."""
        key = tunnel_key(spec, remote_host, remote_port)
        with self._lock:
            tunnel = self._tunnels.get(key)
            if tunnel is None:
                return "closed"
            return f"{'open' if tunnel.active else 'broken'} ({tunnel.users} user{'s' if tunnel.users != 1 else ''})"

    def close(self) -> None:
        """Stop every tunnel, in use or not (end of the process or of a registry)."""
        with self._lock:
            tunnels, self._tunnels = list(self._tunnels.values()), {}
        for tunnel in tunnels:
            tunnel.stop()

    # ------------------------------------------------------------------ internals

    def _acquire(self, spec: SSHTunnelConfig, key: TunnelKey) -> _Tunnel:
        with self._lock:
            opening = self._opening.setdefault(key, threading.Lock())
        # One opener per key at a time; other keys (other bastions) are not held up.
        with opening:
            with self._lock:
                tunnel = self._tunnels.get(key)
                if tunnel is not None and tunnel.active:
                    tunnel.users += 1
                    return tunnel
                if tunnel is not None:  # the session died: its users keep their broken handle
                    log.warning("SSH tunnel to %s is down; opening a new one", key)
                    del self._tunnels[key]
                    if tunnel.users == 0:
                        tunnel.stop()
            fresh = self._start(spec, key)
            with self._lock:
                fresh.users += 1
                self._tunnels[key] = fresh
            return fresh

    def _release(self, tunnel: _Tunnel) -> None:
        with self._lock:
            tunnel.users -= 1
            if tunnel.users > 0:
                return
            if self._tunnels.get(tunnel.key) is tunnel:
                del self._tunnels[tunnel.key]
        log.debug("closing SSH tunnel %s (last user left)", tunnel.key)
        tunnel.stop()

    def _start(self, spec: SSHTunnelConfig, key: TunnelKey) -> _Tunnel:
        secrets = [
            spec.password.get_secret_value() if spec.password else None,
            spec.private_key_passphrase.get_secret_value() if spec.private_key_passphrase else None,
        ]
        self._probe(key)
        server_key = self._checked_host_key(spec, key)
        pkey = _load_key(spec, key) if spec.private_key_path else None
        capture = _CapturedLog()
        tunnel_log = logging.Logger(f"sshtunnel[{key.bastion}]", logging.INFO)
        tunnel_log.addHandler(capture)
        import sshtunnel

        forwarder: sshtunnel.SSHTunnelForwarder | None = None
        try:
            forwarder = sshtunnel.SSHTunnelForwarder(
                (key.bastion_host, key.bastion_port),
                ssh_username=key.username,
                ssh_pkey=pkey,
                ssh_password=spec.password.get_secret_value() if spec.password else None,
                remote_bind_address=(key.remote_host, key.remote_port),
                local_bind_address=(LOCAL_HOST, 0),
                set_keepalive=float(spec.keepalive_seconds),
                allow_agent=False,
                host_pkey_directories=[],
                ssh_config_file=None,
                logger=tunnel_log,
            )
            forwarder.start()
        except Exception as exc:
            if forwarder is not None:
                _discard(forwarder)
            detail = "; ".join(capture.errors) or str(exc)
            reachable = _reachable(key, self._connect_timeout)
            if reachable:
                hint = "check ssh_tunnel.username and private_key_path (or password), and AllowTcpForwarding"
            else:
                hint = "the bastion went away while the session was opening; check that it is up"
            raise TunnelError(
                mask_secrets(
                    f"SSH bastion {key.bastion} refused the tunnel to {key.remote_host}:"
                    f"{key.remote_port}: {detail}; {hint}",
                    secrets,
                ),
                transient=not reachable,
            ) from None
        if server_key is not None and _session_key(forwarder) != server_key:  # swapped since the check
            _discard(forwarder)
            raise host_keys.HostKeyError(
                f"SSH bastion {key.bastion} presented a different host key to the tunnel than to the check just "
                "before it; refused (someone may be intercepting the connection)"
            )
        log.debug("opened SSH tunnel %s on local port %s", key, forwarder.local_bind_port)
        return _Tunnel(key, forwarder)

    def _checked_host_key(self, spec: SSHTunnelConfig, key: TunnelKey) -> paramiko.PKey | None:
        """The bastion's host key, verified against the known hosts before any credential is sent."""
        if spec.host_key_check == "off":
            return None
        import paramiko

        try:
            server_key = host_keys.presented_key(key.bastion_host, key.bastion_port, self._connect_timeout)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise TunnelError(
                f"SSH bastion {key.bastion}: no SSH handshake ({exc or type(exc).__name__}); check that "
                "ssh_tunnel.host and ssh_tunnel.port point at an SSH server",
                transient=True,
            ) from None
        host_keys.verify(key.bastion_host, key.bastion_port, server_key, spec.host_key_check, bastion=key.bastion)
        return server_key

    def _probe(self, key: TunnelKey) -> None:
        """Fail fast, within the connect timeout, when nothing answers at the bastion's address."""
        try:
            with socket.create_connection((key.bastion_host, key.bastion_port), timeout=self._connect_timeout):
                pass
        except socket.gaierror as exc:
            raise TunnelError(
                f"cannot resolve SSH bastion host {key.bastion_host!r} ({exc.strerror}); check ssh_tunnel.host",
                transient=False,
            ) from None
        except OSError as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            raise TunnelError(
                f"cannot reach SSH bastion {key.bastion_host}:{key.bastion_port} ({reason}); check that the "
                "bastion is up and that ssh_tunnel.host and ssh_tunnel.port are right",
                transient=True,
            ) from None


def _discard(forwarder: sshtunnel.SSHTunnelForwarder) -> None:
    """Release what a failed ``start()`` left behind, without ``stop()``.

    After a refused session sshtunnel has already bound its local listeners but never served
    them, and ``stop()`` then waits forever in ``socketserver.shutdown()``; it also leaves the
    SSH socket open. Close both directly.
    """
    for server in getattr(forwarder, "_server_list", []):
        with suppress(Exception):
            server.server_close()
    _close_transport(forwarder)


def _session_key(forwarder: sshtunnel.SSHTunnelForwarder) -> paramiko.PKey | None:
    transport = getattr(forwarder, "_transport", None)
    try:
        return transport.get_remote_server_key() if transport is not None else None
    except Exception:
        return None


def _close_transport(forwarder: sshtunnel.SSHTunnelForwarder) -> None:
    transport = getattr(forwarder, "_transport", None)
    if transport is None:
        return
    with suppress(Exception):
        transport.close()
    with suppress(Exception):
        transport.sock.close()  # close() skips this once the session is no longer active


def _reachable(key: TunnelKey, timeout: float) -> bool:
    try:
        with socket.create_connection((key.bastion_host, key.bastion_port), timeout=timeout):
            return True
    except OSError:
        return False


def _load_key(spec: SSHTunnelConfig, key: TunnelKey) -> paramiko.PKey:
    import paramiko

    path = Path(spec.private_key_path or "").expanduser()
    passphrase = spec.private_key_passphrase.get_secret_value() if spec.private_key_passphrase else None
    if not path.is_file():
        raise TunnelError(
            f"ssh_tunnel.private_key_path {path} for bastion {key.bastion} does not exist or is not a file"
        )
    try:
        return paramiko.PKey.from_path(path, passphrase)
    except paramiko.PasswordRequiredException:
        raise TunnelError(
            f"the private key {path} for bastion {key.bastion} is encrypted; set ssh_tunnel.private_key_passphrase"
        ) from None
    except (paramiko.SSHException, ValueError, OSError) as exc:
        detail = mask_secrets(str(exc), [passphrase])
        raise TunnelError(
            f"cannot read the private key {path} for bastion {key.bastion}: {detail}; check the file and its "
            "passphrase (RSA, ECDSA and Ed25519 keys are supported)"
        ) from None
