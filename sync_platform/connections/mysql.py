"""The MySQL / MariaDB source: where it is (through a tunnel when configured) and how to connect."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from urllib.parse import quote

import pymysql
import pymysql.connections

from sync_platform.configuration.models import MySQLSourceConfig
from sync_platform.connections.retry import ConnectionFailure, RetryPolicy, is_transient_db_error, mask_secrets
from sync_platform.connections.server import TunnelledServer
from sync_platform.connections.ssh_tunnel import TunnelPool

log = logging.getLogger(__name__)

# TIMESTAMP values are read as UTC. net_write_timeout: a streaming (unbuffered) read whose consumer
# pauses longer than the server default of 60 s, e.g. while a batch is written, would be cut off.
SESSION_SETUP = "SET time_zone = '+00:00', net_write_timeout = 3600"


class MySQLSource(TunnelledServer):
    """One configured source. Cheap to build; nothing is opened until ``endpoint()``/``connect()``."""

    cfg: MySQLSourceConfig

    def __init__(
        self,
        name: str,
        cfg: MySQLSourceConfig,
        tunnels: TunnelPool,
        *,
        retry: RetryPolicy | None = None,
        read_timeout: float | None = None,
    ):
        super().__init__(name, cfg, tunnels, retry=retry)
        self._read_timeout = read_timeout

    @property
    def database(self) -> str:
        return self.cfg.database

    def connection_url(self, host: str, port: int) -> str:
        """``mysql://user:pass@host:port/db`` for connectorx. Holds the password: never log it."""
        user = quote(self.cfg.username, safe="")
        password = quote(self.cfg.password.get_secret_value(), safe="")
        credentials = f"{user}:{password}" if password else user
        return f"mysql://{credentials}@{host}:{port}/{quote(self.cfg.database, safe='')}"

    @contextmanager
    def connect(
        self, *, attempts: int | None = None, connect_timeout: float | None = None
    ) -> Iterator[pymysql.connections.Connection]:
        """An autocommit pymysql connection (utf8mb4, session time zone UTC, see SESSION_SETUP), closed on exit.

        Connecting is retried on transient errors (the tunnel is re-opened for each attempt, so a
        dropped bastion session heals); failures raise :class:`ConnectionFailure` naming the server.
        """
        policy = (
            self._retry if attempts is None else RetryPolicy(attempts, self._retry.base_delay, self._retry.max_delay)
        )
        timeout = connect_timeout or self.cfg.connect_timeout

        def attempt() -> tuple[ExitStack, pymysql.connections.Connection]:
            stack = ExitStack()
            try:
                host, port = stack.enter_context(self.endpoint())
                conn = pymysql.connect(
                    host=host,
                    port=port,
                    user=self.cfg.username,
                    password=self.cfg.password.get_secret_value(),
                    database=self.cfg.database,
                    charset=self.cfg.charset,
                    autocommit=True,
                    connect_timeout=max(1, int(timeout)),
                    read_timeout=self._read_timeout,
                    write_timeout=self._read_timeout,
                    init_command=SESSION_SETUP,
                    program_name="sync_platform",
                    local_infile=False,
                )
            except BaseException:
                stack.close()  # releases the tunnel before the next attempt
                raise
            stack.callback(_close_quietly, conn)
            return stack, conn

        def on_retry(number: int, exc: BaseException, delay: float) -> None:
            log.warning(
                "MySQL source %s (%s): attempt %d failed (%s); retrying in %.1fs",
                self.name,
                self.address,
                number,
                mask_secrets(str(exc), self.secrets()),
                delay,
            )

        try:
            stack, conn = policy.run(attempt, on_retry=on_retry)
        except ConnectionFailure as exc:  # the tunnel: its message already names the bastion
            raise ConnectionFailure(
                f"cannot connect to MySQL source '{self.name}' at {self.address}: "
                f"{mask_secrets(str(exc), self.secrets())}",
                transient=exc.transient,
            ) from None
        except pymysql.MySQLError as exc:
            raise self._failure(exc) from None
        with stack:
            yield conn

    def _failure(self, exc: pymysql.MySQLError) -> ConnectionFailure:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        if code == 1045:
            hint = "check username and password"
        elif code == 1049:
            hint = f"check that database {self.cfg.database!r} exists"
        elif code in (1044, 1142):
            hint = "the user lacks a privilege on this database"
        elif self.tunnelled:
            hint = "check that the bastion can reach the MySQL host and port"
        else:
            hint = "check that MySQL is running and that host and port are right"
        detail = mask_secrets(str(exc), self.secrets())
        return ConnectionFailure(
            f"cannot connect to MySQL source '{self.name}' at {self.address}: {detail}; {hint}",
            transient=is_transient_db_error(exc),
        )


def _close_quietly(conn: pymysql.connections.Connection) -> None:
    with suppress(pymysql.MySQLError):  # already closed by the server or a dropped tunnel
        conn.close()
