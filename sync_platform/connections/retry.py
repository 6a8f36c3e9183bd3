"""Retrying transient connection failures, and the error raised when a connection cannot be made.

A sync that dies because MySQL blinked, a bastion dropped a session or Redshift restarted a node
should try again a few times with backoff; a sync that fails on bad SQL, a wrong password or a
missing permission should fail at once, because retrying cannot help.
"""

from __future__ import annotations

import errno
import random
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote, quote_plus

import psycopg2
import psycopg2.errors
import pymysql

from sync_platform.errors import Classification, EndpointError, ExitCode

T = TypeVar("T")

MASK = "***"


class ConnectionFailure(EndpointError):
    """A connection could not be made or was lost; the message says where and what to check.

    ``transient`` tells callers (and :func:`retry`) whether trying again may help. The message never
    holds a password: every text that goes into it passes through :func:`mask_secrets`.
    """

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.transient = transient


def mask_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each secret (raw and URL-quoted) with ``***``.

    Driver errors sometimes echo a DSN or URL; masking at the boundary keeps passwords out of
    logs, CLI output and Dagster metadata whatever the driver decides to print.
    """
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms.update({secret, quote(secret, safe=""), quote_plus(secret)})
    # Longest first, so a secret that contains another is masked whole.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


# --------------------------------------------------------------------------- classification

# pymysql error codes worth retrying: connect failures, lost/killed connections, server shutdown,
# too many connections, lock wait timeout and deadlock.
_MYSQL_TRANSIENT_CODES = frozenset({1040, 1053, 1205, 1213, 1927, 2003, 2006, 2013, 2014, 2055, 4031})

# PostgreSQL SQLSTATEs worth retrying: connection exceptions (class 08), serialization failure,
# deadlock, too many connections, admin/crash shutdown, cannot connect now.
_PG_TRANSIENT_STATES = frozenset({"40001", "40P01", "53300", "57P01", "57P02", "57P03"})
_PG_TRANSIENT_TEXT = (
    "could not connect to server",
    "connection refused",
    "server closed the connection unexpectedly",
    "terminating connection",
    "connection timed out",
    "timeout expired",
    "could not receive data",
    "could not send data",
    "ssl syscall error",
    "ssl connection has been closed",
    "connection reset by peer",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "no connection to the server",
    "eof detected",
)
_PG_PERMANENT_TEXT = (
    "password authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "permission denied",
    "authentication failed",
)
_TRANSIENT_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT, errno.EHOSTUNREACH}
)


def classify_driver_error(exc: BaseException) -> Classification:
    """Kind, exit code and retry decision for an error raised by a driver rather than by the platform.

    Lost or refused connections are ``connection`` errors (transient when :func:`is_transient_db_error`
    says so); another PostgreSQL error is the warehouse refusing a statement; other OS errors are the
    staging store (local directory) failing.
    """
    transient = is_transient_db_error(exc)
    if isinstance(exc, pymysql.err.OperationalError | pymysql.err.InterfaceError):
        return Classification("connection", ExitCode.CONNECTION, transient)
    if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        return Classification("connection", ExitCode.CONNECTION, transient)
    if isinstance(exc, psycopg2.Error):
        return Classification("warehouse", ExitCode.WAREHOUSE, transient)
    if _is_unreachable_s3(exc):
        return Classification("connection", ExitCode.CONNECTION, True)
    if isinstance(exc, TimeoutError | ConnectionError):
        return Classification("connection", ExitCode.CONNECTION, True)
    if isinstance(exc, OSError):
        return Classification("staging", ExitCode.STAGING, transient)
    return Classification("error", ExitCode.PARTIAL, transient)


def _is_unreachable_s3(exc: BaseException) -> bool:
    try:
        from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError
    except ImportError:  # pragma: no cover - botocore is a declared dependency
        return False
    return isinstance(exc, EndpointConnectionError | ConnectTimeoutError)


def is_transient_db_error(exc: BaseException) -> bool:
    """True for failures that may pass on retry (connection refused/lost, deadlock, restart).

    False for everything that will fail the same way again: syntax errors, unknown objects,
    authentication and permission errors, data errors.
    """
    if isinstance(exc, ConnectionFailure):
        return exc.transient
    if isinstance(exc, pymysql.err.MySQLError):
        if isinstance(exc, pymysql.err.InterfaceError):
            return True  # the connection object is closed; a new one may work
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        return code in _MYSQL_TRANSIENT_CODES
    if isinstance(exc, psycopg2.Error):
        if isinstance(exc, psycopg2.InterfaceError):
            return True  # "connection already closed"
        state = getattr(exc, "pgcode", None)
        if state:
            return state in _PG_TRANSIENT_STATES or state.startswith("08")
        if isinstance(exc, psycopg2.OperationalError):
            text = str(exc).lower()
            if any(marker in text for marker in _PG_PERMANENT_TEXT):
                return False
            return any(marker in text for marker in _PG_TRANSIENT_TEXT)
        return False
    if isinstance(exc, socket.gaierror):
        return False  # an unknown host name does not resolve on the second try either
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _TRANSIENT_ERRNOS
    return False


# --------------------------------------------------------------------------- backoff


def backoff_delay(attempt: int, base_delay: float, max_delay: float) -> float:
    """Delay before retry number ``attempt`` (1-based): exponential, capped, with "equal jitter".

    Half the delay is fixed and half random, so clients that failed together do not retry
    together, and no retry comes back immediately.
    """
    ceiling = min(max_delay, base_delay * (2 ** (attempt - 1)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def retry(
    fn: Callable[[], T],
    *,
    attempts: int,
    base_delay: float,
    max_delay: float,
    is_transient: Callable[[BaseException], bool] = is_transient_db_error,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it succeeds, retrying transient failures up to ``attempts`` calls in all.

    A non-transient error, or the last transient one, propagates unchanged. ``on_retry(attempt,
    error, delay)`` is called before each wait, e.g. to log what is being retried.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    attempt = 1
    while True:
        try:
            return fn()
        except Exception as exc:
            if attempt >= attempts or not is_transient(exc):
                raise
            delay = backoff_delay(attempt, base_delay, max_delay)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)
            attempt += 1


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry (``connection_settings`` in connections.yml)."""

    attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 30.0

    def run(
        self,
        fn: Callable[[], T],
        *,
        is_transient: Callable[[BaseException], bool] = is_transient_db_error,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
    ) -> T:
        """:func:`retry` with this policy's attempts and delays."""
        return retry(
            fn,
            attempts=self.attempts,
            base_delay=self.base_delay,
            max_delay=self.max_delay,
            is_transient=is_transient,
            on_retry=on_retry,
        )
