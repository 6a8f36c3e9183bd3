"""The warehouse connection: Amazon Redshift, or PostgreSQL for local use and tests.

Only *connecting* lives here. SQL that differs between Redshift and PostgreSQL belongs to the
warehouse dialect layer (``sync_platform.warehouse``), which picks its dialect from ``dialect``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import Literal

import psycopg2
import psycopg2.extensions

from sync_platform.configuration.models import WarehouseTargetConfig
from sync_platform.connections.retry import ConnectionFailure, RetryPolicy, is_transient_db_error, mask_secrets
from sync_platform.connections.server import TunnelledServer

log = logging.getLogger(__name__)

APPLICATION_NAME = "sync_platform"


class Warehouse(TunnelledServer):
    """One configured target. Cheap to build; nothing is opened until ``endpoint()``/``connect()``."""

    cfg: WarehouseTargetConfig

    @property
    def dialect(self) -> Literal["redshift", "postgres"]:
        return self.cfg.dialect

    @property
    def schema(self) -> str:
        """The default target schema of this connection."""
        return self.cfg.schema_

    @property
    def port(self) -> int:
        return self.cfg.effective_port

    @contextmanager
    def connect(
        self, *, attempts: int | None = None, connect_timeout: float | None = None
    ) -> Iterator[psycopg2.extensions.connection]:
        """A psycopg2 connection in a transaction (autocommit off), closed on exit.

        Nothing is committed for the caller: uncommitted work is rolled back when the block ends.
        Every statement is bounded by ``statement_timeout_seconds`` (a COPY once hung five days on a
        dropped tunnel), and TCP keepalives detect a dead peer. Connecting is retried on transient
        errors; failures raise :class:`ConnectionFailure` naming the server.
        """
        policy = (
            self._retry if attempts is None else RetryPolicy(attempts, self._retry.base_delay, self._retry.max_delay)
        )
        timeout = connect_timeout or self.cfg.connect_timeout

        def attempt() -> tuple[ExitStack, psycopg2.extensions.connection]:
            stack = ExitStack()
            try:
                host, port = stack.enter_context(self.endpoint())
                conn = psycopg2.connect(**self._connect_args(host, port, timeout))
                stack.callback(_close_quietly, conn)
                self._prepare_session(conn)
            except BaseException:
                stack.close()  # closes the connection and releases the tunnel before the next attempt
                raise
            return stack, conn

        def on_retry(number: int, exc: BaseException, delay: float) -> None:
            log.warning(
                "warehouse %s (%s): attempt %d failed (%s); retrying in %.1fs",
                self.name,
                self.address,
                number,
                mask_secrets(str(exc).strip(), self.secrets()),
                delay,
            )

        try:
            stack, conn = policy.run(attempt, on_retry=on_retry)
        except ConnectionFailure as exc:  # the tunnel: its message already names the bastion
            raise ConnectionFailure(
                f"cannot connect to warehouse '{self.name}' ({self.dialect}) at {self.address}: "
                f"{mask_secrets(str(exc), self.secrets())}",
                transient=exc.transient,
            ) from None
        except psycopg2.Error as exc:
            raise self._failure(exc) from None
        with stack:
            try:
                yield conn
            except BaseException:
                _rollback_quietly(conn)
                raise

    def _connect_args(self, host: str, port: int, timeout: float) -> dict[str, object]:
        args: dict[str, object] = {
            "host": host,
            "port": port,
            "dbname": self.cfg.database,
            "user": self.cfg.username,
            "password": self.cfg.password.get_secret_value(),
            "connect_timeout": max(1, int(timeout)),
            "application_name": APPLICATION_NAME,
            "keepalives": 1,
            "keepalives_idle": 60,
            "keepalives_interval": 10,
            "keepalives_count": 5,
        }
        if self.cfg.sslmode:
            args["sslmode"] = self.cfg.sslmode
        return args

    def _prepare_session(self, conn: psycopg2.extensions.connection) -> None:
        # SET rather than the `options` startup parameter, which Redshift does not accept.
        timeout_ms = int(self.cfg.statement_timeout_seconds * 1000)
        with conn.cursor() as cur:
            cur.execute(f"SET statement_timeout TO {timeout_ms}")
        conn.commit()

    def _failure(self, exc: psycopg2.Error) -> ConnectionFailure:
        text = mask_secrets(" ".join(str(exc).split()), self.secrets())
        lowered = text.lower()
        if "password authentication failed" in lowered or "no pg_hba.conf entry" in lowered:
            hint = "check username and password"
        elif "does not exist" in lowered:
            hint = f"check that database {self.cfg.database!r} and user {self.cfg.username!r} exist"
        elif self.tunnelled:
            hint = "check that the bastion can reach the warehouse host and port"
        else:
            hint = "check that the warehouse is running and that host and port are right"
        return ConnectionFailure(
            f"cannot connect to warehouse '{self.name}' ({self.dialect}) at {self.address}: {text}; {hint}",
            transient=is_transient_db_error(exc),
        )


def _close_quietly(conn: psycopg2.extensions.connection) -> None:
    with suppress(psycopg2.Error):
        conn.close()


def _rollback_quietly(conn: psycopg2.extensions.connection) -> None:
    try:
        if not conn.closed:
            conn.rollback()
    except psycopg2.Error:  # the connection may be the reason we are here
        pass
