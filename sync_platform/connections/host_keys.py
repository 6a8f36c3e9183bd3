"""SSH bastion host keys: remembered on first use, checked on every tunnel, a changed key refused.

Without a check, anyone who can answer on the bastion's address (a hijacked DNS name, a spoofed IP)
receives the tunnel's login and every row read through it. ``ssh_tunnel.host_key_check`` chooses:

- ``accept-new`` (default): a bastion seen for the first time has its key remembered (trust on first
  use); a remembered bastion must present the same key, else the tunnel is refused;
- ``strict``: the key must already be in the file (put it there with ``ssh-keyscan``);
- ``off``: no check (not recommended).

Keys are kept in OpenSSH ``known_hosts`` format in ``ssh_known_hosts`` beside the Dagster instance
(``$DAGSTER_HOME``, else ``~/.sync_platform/dagster``), so the CLI, the webserver and the daemon share them.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from sync_platform.connections.retry import ConnectionFailure

if TYPE_CHECKING:
    import paramiko

log = logging.getLogger(__name__)

KNOWN_HOSTS_FILE = "ssh_known_hosts"
DEFAULT_INSTANCE_DIR = Path("~/.sync_platform/dagster")  # the CLI's default DAGSTER_HOME
_LOCK = threading.Lock()


class HostKeyError(ConnectionFailure):
    """The bastion's host key is unknown (strict) or not the one remembered: the tunnel is refused.

    Never transient: retrying cannot make a wrong key right, and must not hand the login to an impostor.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


def known_hosts_path() -> Path:
    """``ssh_known_hosts`` beside the Dagster instance."""
    home = os.environ.get("DAGSTER_HOME")
    return (Path(home) if home else DEFAULT_INSTANCE_DIR).expanduser() / KNOWN_HOSTS_FILE


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:…`` as ``ssh-keygen -lf`` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_entry(host: str, port: int) -> str:
    """The host's name in known_hosts (``[host]:port`` unless the port is 22)."""
    return host if port == 22 else f"[{host}]:{port}"


def presented_key(host: str, port: int, timeout: float) -> paramiko.PKey:
    """The host key the SSH server at ``host:port`` presents (a handshake only: nothing is sent to log in)."""
    import paramiko

    sock = socket.create_connection((host, port), timeout=timeout)
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    finally:
        transport.close()
        sock.close()


def verify(
    host: str, port: int, key: paramiko.PKey, mode: str, *, path: Path | None = None, bastion: str | None = None
) -> None:
    """Check ``key`` for the bastion at ``host:port`` under ``mode``; raise :class:`HostKeyError` if refused."""
    if mode == "off":
        return
    import paramiko

    path = path or known_hosts_path()
    entry = host_entry(host, port)
    name = bastion or f"{host}:{port}"
    with _LOCK:
        known = paramiko.HostKeys()
        if path.is_file():
            known.load(str(path))
        remembered = known.lookup(entry) or {}
        same_type = remembered.get(key.get_name())
        if same_type is not None and same_type == key:
            return
        if remembered:
            old = same_type or next(iter(remembered.values()))
            raise HostKeyError(
                f"SSH bastion {name} presented host key {fingerprint(key)} ({key.get_name()}), but {path} remembers "
                f"{fingerprint(old)} ({old.get_name()}) for it: the tunnel is refused, because someone may be "
                "intercepting the connection. If the bastion was reinstalled or its key rotated on purpose, check the "
                f"new fingerprint with its administrator, then forget the old key: ssh-keygen -R '{entry}' -f {path} "
                "(the next run remembers the new one)"
            )
        if mode == "strict":
            raise HostKeyError(
                f"SSH bastion {name} is not in {path} and ssh_tunnel.host_key_check is strict: the tunnel is refused. "
                f"It presents {fingerprint(key)} ({key.get_name()}); if that is right, add it: "
                f"ssh-keyscan -p {port} {host} >> {path} (or set host_key_check: accept-new)"
            )
        known.add(entry, key.get_name(), key)
        path.parent.mkdir(parents=True, exist_ok=True)
        known.save(str(path))
    log.warning(
        "SSH bastion %s seen for the first time: remembered its host key %s in %s", name, fingerprint(key), path
    )
