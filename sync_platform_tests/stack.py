"""The real local services the tests run against (DESIGN §7): MariaDB, PostgreSQL, S3 (moto), sshd.

Plain helpers with no pytest in them, so that benchmarks and demo scripts can reuse them; the
fixtures in ``conftest.py`` wire them into test scopes. Nothing here ever leaves loopback.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import pymysql
import pymysql.cursors
import yaml

LOOPBACK = "127.0.0.1"
MYSQL_PORT = 3306
POSTGRES_PORT = 5432
SERVICE_START_TIMEOUT = 60.0


class StackError(RuntimeError):
    """A local service could not be brought up; the message says what to run by hand."""


# --------------------------------------------------------------------------- ports


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float, *, open_: bool = True) -> bool:
    """Poll until the port is open (or closed with ``open_=False``); False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if port_open(host, port) is open_:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


# --------------------------------------------------------------------------- database servers


def _mysql_ready() -> bool:
    try:
        pymysql.connect(host=LOOPBACK, port=MYSQL_PORT, user="root", password="", connect_timeout=2).close()
        return True
    except pymysql.MySQLError:
        return False


def _postgres_ready() -> bool:
    try:
        psycopg2.connect(
            host=LOOPBACK, port=POSTGRES_PORT, user="postgres", dbname="postgres", connect_timeout=2
        ).close()
        return True
    except psycopg2.Error:
        return False


def _wait(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.3)
    return True


def ensure_mariadb(timeout: float = SERVICE_START_TIMEOUT) -> None:
    """Make sure MariaDB answers on 127.0.0.1:3306, starting it if needed; raise StackError if not."""
    if _mysql_ready():
        return
    command = ["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", "/usr/sbin/mariadbd"]
    Path("/run/mysqld").mkdir(parents=True, exist_ok=True)
    if _user_exists("mysql"):
        shutil.chown("/run/mysqld", "mysql", "mysql")
    started = subprocess.run(command, capture_output=True, text=True, check=False)
    if _wait(_mysql_ready, timeout):
        return
    raise StackError(
        f"MariaDB is not reachable on {LOOPBACK}:{MYSQL_PORT} as root (no password), even after "
        f"`{' '.join(command)}` (exit {started.returncode}: {started.stderr.strip() or started.stdout.strip()}). "
        "Start it by hand and check /var/log/mysql or `journalctl`."
    )


def ensure_postgres(timeout: float = SERVICE_START_TIMEOUT) -> None:
    """Make sure PostgreSQL answers on 127.0.0.1:5432 (trust, user postgres), starting it if needed."""
    if _postgres_ready():
        return
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir()) if Path("/etc/postgresql").is_dir() else []
    if not versions:
        raise StackError("PostgreSQL is not reachable on 127.0.0.1:5432 and no cluster exists in /etc/postgresql")
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"]
    started = subprocess.run(command, capture_output=True, text=True, check=False)
    if _wait(_postgres_ready, timeout):
        return
    raise StackError(
        f"PostgreSQL is not reachable on {LOOPBACK}:{POSTGRES_PORT} as postgres (trust), even after "
        f"`{' '.join(command)}` (exit {started.returncode}: {started.stderr.strip() or started.stdout.strip()}). "
        f"Check /var/log/postgresql/postgresql-{versions[-1]}-main.log."
    )


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def unique_name(prefix: str, hint: str = "") -> str:
    """``<prefix>_<hint>_<6 hex>``: lower-case, identifier-safe, at most 63 characters."""
    cleaned = re.sub(r"[^a-z0-9_]+", "_", hint.lower()).strip("_")
    suffix = uuid.uuid4().hex[:6]
    stem = f"{prefix}_{cleaned}" if cleaned else prefix
    return f"{stem[: 63 - len(suffix) - 1]}_{suffix}"


@dataclass
class MySQLDatabase:
    """A MariaDB database of the test stack, with small conveniences for setting up data."""

    name: str
    host: str = LOOPBACK
    port: int = MYSQL_PORT
    user: str = "root"
    password: str = ""

    def connect(self, database: str | None = None) -> pymysql.connections.Connection:
        """A new autocommit pymysql connection to this database (session time zone UTC)."""
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=self.name if database is None else (database or None),
            charset="utf8mb4",
            autocommit=True,
            init_command="SET time_zone = '+00:00'",
        )

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> int:
        """Run one statement; returns the affected row count."""
        with self.connect() as conn, conn.cursor() as cur:
            return int(cur.execute(sql, params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        with self.connect() as conn, conn.cursor() as cur:
            return int(cur.executemany(sql, rows) or 0)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of one SELECT as tuples."""
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def create(self) -> None:
        with self.connect(database="") as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")

    def drop(self) -> None:
        with self.connect(database="") as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.name}`")


@dataclass
class PostgresDatabase:
    """A PostgreSQL database of the test stack (the warehouse stand-in), with conveniences."""

    name: str
    host: str = LOOPBACK
    port: int = POSTGRES_PORT
    user: str = "postgres"
    password: str = ""

    def connect(self, database: str | None = None) -> psycopg2.extensions.connection:
        """A new autocommit psycopg2 connection to this database."""
        conn = psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database or self.name,
            application_name="sync_platform_tests",
        )
        conn.autocommit = True
        return conn

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> int:
        """Run one statement; returns the affected row count."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return int(cur.rowcount)
        finally:
            conn.close()

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of one SELECT as tuples."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall())
        finally:
            conn.close()

    def create(self) -> None:
        conn = self.connect(database="postgres")
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            conn.close()

    def drop(self) -> None:
        conn = self.connect(database="postgres")
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (self.name,),
                )
                cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            conn.close()


# --------------------------------------------------------------------------- S3 (moto)


DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Anything that could make boto3 reach for real credentials or real endpoints is removed.
AWS_ENV_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ENDPOINT_URL",
)


@dataclass
class MotoS3:
    """moto's threaded S3 server on a loopback port."""

    port: int = field(default_factory=free_port)
    host: str = LOOPBACK
    _server: Any = None
    _client: Any = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        if not wait_for_port(self.host, self.port, 15.0):
            raise StackError(f"moto S3 server did not start on {self.endpoint_url}")

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self) -> Any:
        """A boto3 S3 client for the server (one, reused: clients are slow to build)."""
        import boto3

        if self._client is None:
            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return self._client

    def create_bucket(self, hint: str = "") -> str:
        name = unique_name("spt", hint).replace("_", "-")
        self.client().create_bucket(Bucket=name)
        return name

    def delete_bucket(self, name: str) -> None:
        """Empty and remove a bucket (moto keeps everything in memory; a long session adds up)."""
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=name)


# --------------------------------------------------------------------------- OpenSSH bastion


@dataclass
class SSHServer:
    """A real OpenSSH server on a loopback port: the bastion for tunnel tests.

    Keys are generated at start-up in ``workdir``; the client key is authorized for the current
    user. The log (LogLevel DEBUG1) records every ``direct-tcpip`` forward, which is how tests
    prove that a connection really went through the bastion.
    """

    workdir: Path
    port: int = field(default_factory=free_port)
    host: str = LOOPBACK
    username: str = field(default_factory=lambda: _current_user())
    _process: subprocess.Popen[bytes] | None = None

    @property
    def private_key_path(self) -> Path:
        return self.workdir / "client_ed25519"

    @property
    def host_key_path(self) -> Path:
        return self.workdir / "ssh_host_ed25519_key"

    @property
    def config_path(self) -> Path:
        return self.workdir / "sshd_config"

    @property
    def log_path(self) -> Path:
        return self.workdir / "sshd.log"

    @property
    def pid_path(self) -> Path:
        return self.workdir / "sshd.pid"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def prepare(self) -> None:
        """Generate keys and the sshd config (once)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for key in (self.host_key_path, self.private_key_path):
            if not key.exists():
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sync_platform_tests", "-f", str(key)],
                    check=True,
                    capture_output=True,
                )
        authorized = self.workdir / "authorized_keys"
        authorized.write_text(Path(f"{self.private_key_path}.pub").read_text())
        authorized.chmod(0o600)
        self.config_path.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.host}:{self.port}",
                    f"HostKey {self.host_key_path}",
                    f"PidFile {self.pid_path}",
                    f"AuthorizedKeysFile {authorized}",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "AllowTcpForwarding yes",
                    "PermitOpen any",
                    "GatewayPorts no",
                    "X11Forwarding no",
                    "PrintMotd no",
                    # The workdir lives under /tmp (mode 1777), which StrictModes would reject.
                    "StrictModes no",
                    "ClientAliveInterval 0",
                    "MaxStartups 100:30:200",
                    "MaxSessions 100",
                    "LogLevel DEBUG1",
                    "",
                ]
            )
        )
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        self.check_config()

    def check_config(self) -> None:
        test = subprocess.run(["/usr/sbin/sshd", "-t", "-f", str(self.config_path)], capture_output=True, text=True)
        if test.returncode != 0:
            raise StackError(f"sshd rejected its test config {self.config_path}: {test.stderr.strip()}")

    def start(self, timeout: float = 15.0) -> None:
        """Start sshd in the foreground (as a child of this process) and wait until it listens."""
        if self.running:
            return
        if not self.config_path.exists():
            self.prepare()
        self._process = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(self.config_path), "-E", str(self.log_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_for_port(self.host, self.port, timeout):
            self.stop()
            raise StackError(f"sshd did not listen on {self.host}:{self.port}; see {self.log_path}")

    def stop(self, timeout: float = 10.0, *, kill_sessions: bool = True) -> None:
        """Stop the listener and (by default) every session it forked, so open tunnels really die.

        With ``kill_sessions=False`` established sessions live on and only new logins fail, as
        when a bastion's sshd is restarted for maintenance.
        """
        process, self._process = self._process, None
        if process is None:
            return
        sessions = _descendants(process.pid) if kill_sessions else []
        if process.poll() is None:
            process.terminate()
        for pid in sessions:
            _signal(pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
        deadline = time.monotonic() + timeout
        for pid in sessions:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                _signal(pid, signal.SIGKILL)
        wait_for_port(self.host, self.port, timeout, open_=False)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def forwards(self) -> list[tuple[str, int]]:
        """Every (host, port) a client asked the bastion to forward to (``direct-tcpip``), oldest first."""
        found = re.findall(
            r"server_request_direct_tcpip: originator \S+ port \d+, target (\S+) port (\d+)", self.log_text()
        )
        return [(host, int(port)) for host, port in found]

    def count_sessions_accepted(self) -> int:
        return len(re.findall(r"Accepted publickey for", self.log_text()))


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces; the ppid follows it.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _descendants(pid: int) -> list[int]:
    tree = _children_map()
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is as good as dead
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


def _signal(pid: int, sig: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, sig)


# --------------------------------------------------------------------------- config directories


@dataclass(frozen=True)
class ConfigDir:
    """A config directory written for a test: where it is and the connection names inside it."""

    path: Path
    source: str
    target: str
    staging: str
    target_schema: str
    staging_location: str  # local directory or bucket name
    warehouse: str = "postgres"  # postgres | redshift (the stand-in)

    @property
    def connections_file(self) -> Path:
        return self.path / "connections.yml"

    def write(self, relative: str, content: dict[str, Any] | str) -> Path:
        """Write another file of the config dir (e.g. ``pipelines/shop.yml``) from a dict or text."""
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
        return target


def tunnel_block(ssh: SSHServer) -> dict[str, Any]:
    """An ``ssh_tunnel`` config block that routes through the test bastion."""
    return {
        "enabled": True,
        "host": ssh.host,
        "port": ssh.port,
        "username": ssh.username,
        "private_key_path": str(ssh.private_key_path),
    }


def connections_document(
    *,
    mysql: MySQLDatabase | None,
    postgres: PostgresDatabase | None,
    staging: dict[str, Any],
    source_name: str = "src",
    target_name: str = "dw",
    staging_name: str = "stage",
    target_schema: str = "public",
    source_tunnel: SSHServer | None = None,
    target_tunnel: SSHServer | None = None,
    connection_settings: dict[str, Any] | None = None,
    target_override: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of a connections.yml for the given test databases.

    ``target_override`` replaces the PostgreSQL target entry (e.g. the Redshift stand-in's).
    """
    sources: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    if mysql is not None:
        sources[source_name] = {
            "host": mysql.host,
            "port": mysql.port,
            "database": mysql.name,
            "username": mysql.user,
            "password": mysql.password,
        }
        if source_tunnel is not None:
            sources[source_name]["ssh_tunnel"] = tunnel_block(source_tunnel)
    if postgres is not None:
        targets[target_name] = {
            "type": "postgres",
            "host": postgres.host,
            "port": postgres.port,
            "database": postgres.name,
            "schema": target_schema,
            "username": postgres.user,
            "password": postgres.password,
        }
        if target_override is not None:
            targets[target_name] = dict(target_override)
        if target_tunnel is not None:
            targets[target_name]["ssh_tunnel"] = tunnel_block(target_tunnel)
    document: dict[str, Any] = {
        "connections": {"sources": sources, "targets": targets},
        "s3_configs": {staging_name: staging},
    }
    if connection_settings:
        document["connection_settings"] = connection_settings
    return document


@contextmanager
def environment(values: dict[str, str], clear: Sequence[str] = ()) -> Iterator[None]:
    """Set (and clear) environment variables for the duration of the block."""
    saved = {k: os.environ.get(k) for k in (*values, *clear)}
    try:
        for key in clear:
            os.environ.pop(key, None)
        os.environ.update(values)
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
