"""SSH bastion host keys against the real sshd: remembered on first use, a changed key refused."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from sync_platform.configuration.models import SSHTunnelConfig
from sync_platform.connections.host_keys import HostKeyError, known_hosts_path
from sync_platform.connections.ssh_tunnel import TunnelPool
from sync_platform_tests.stack import MYSQL_PORT, SSHServer


def _spec(sshd: SSHServer, check: str | None = None) -> SSHTunnelConfig:
    values: dict[str, object] = {
        "enabled": True,
        "host": sshd.host,
        "port": sshd.port,
        "username": sshd.username,
        "private_key_path": str(sshd.private_key_path),
    }
    if check is not None:
        values["host_key_check"] = check
    return SSHTunnelConfig.model_validate(values)


def _open(spec: SSHTunnelConfig) -> None:
    """Open a tunnel to MariaDB through the bastion and use it once."""
    pool = TunnelPool(connect_timeout=5)
    try:
        with pool.open(spec, "127.0.0.1", MYSQL_PORT) as (host, port):
            pymysql.connect(host=host, port=port, user="root", password="", connect_timeout=5).close()
    finally:
        pool.close()


def _fingerprint(public_key: Path) -> str:
    """What ``ssh-keygen -lf`` says: the fingerprint an administrator would compare."""
    return subprocess.run(
        ["ssh-keygen", "-lf", str(public_key)], check=True, capture_output=True, text=True
    ).stdout.split()[1]


@pytest.fixture
def own_known_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own instance directory, so the keys it remembers are its own."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "instance"))
    return known_hosts_path()


@pytest.fixture
def rekeyable(sshd: SSHServer, tmp_path: Path) -> Iterator[SSHServer]:
    """The bastion; whatever the test does to its host key is undone afterwards (other tests share it)."""
    saved = tmp_path / "saved_host_key"
    shutil.copy(sshd.host_key_path, saved)
    shutil.copy(f"{sshd.host_key_path}.pub", f"{saved}.pub")
    try:
        yield sshd
    finally:
        sshd.stop()
        shutil.copy(saved, sshd.host_key_path)
        shutil.copy(f"{saved}.pub", f"{sshd.host_key_path}.pub")
        sshd.start()


def _new_host_key(sshd: SSHServer) -> None:
    """Reinstall the bastion: a new host key, the same address."""
    sshd.stop()
    for path in (sshd.host_key_path, Path(f"{sshd.host_key_path}.pub")):
        path.unlink()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(sshd.host_key_path)], check=True)
    sshd.start()


def test_accept_new_remembers_the_key_and_refuses_a_changed_one(rekeyable: SSHServer, own_known_hosts: Path) -> None:
    sshd = rekeyable
    original = _fingerprint(Path(f"{sshd.host_key_path}.pub"))
    _open(_spec(sshd))  # default: accept-new
    remembered = own_known_hosts.read_text()
    assert f"[{sshd.host}]:{sshd.port} ssh-ed25519 " in remembered
    _open(_spec(sshd))  # the same key again: fine

    _new_host_key(sshd)
    changed = _fingerprint(Path(f"{sshd.host_key_path}.pub"))
    before = len(sshd.forwards())
    with pytest.raises(HostKeyError) as refused:
        _open(_spec(sshd))
    message = str(refused.value)
    assert original in message and changed in message, message
    assert f"ssh-keygen -R '[{sshd.host}]:{sshd.port}' -f {own_known_hosts}" in message
    assert refused.value.transient is False  # never retried: a retry would not make the key right
    assert sshd.forwards()[before:] == []  # nothing went through the impostor
    assert own_known_hosts.read_text() == remembered  # the remembered key is kept

    # The fix the message gives: forget the old key; the next run remembers the new one.
    subprocess.run(["ssh-keygen", "-R", f"[{sshd.host}]:{sshd.port}", "-f", str(own_known_hosts)], check=True)
    _open(_spec(sshd))
    assert own_known_hosts.read_text() != remembered


def test_strict_refuses_an_unknown_bastion_and_off_checks_nothing(sshd: SSHServer, own_known_hosts: Path) -> None:
    with pytest.raises(HostKeyError) as refused:
        _open(_spec(sshd, "strict"))
    assert "ssh-keyscan" in str(refused.value) and not own_known_hosts.exists()
    _open(_spec(sshd, "off"))
    assert not own_known_hosts.exists()
    _open(_spec(sshd, "accept-new"))
    _open(_spec(sshd, "strict"))  # known now
