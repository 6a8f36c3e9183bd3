"""One error taxonomy: every failure says whether trying again can help and which exit code it means.

The platform's errors derive from :class:`SyncPlatformError` and carry three attributes that every
consumer reads instead of deciding for itself:

- ``transient``: a later attempt may succeed (a lost connection, a table held by another run); the
  Dagster op retries only these;
- ``exit_code``: the CLI's exit code (README, "Exit codes");
- ``kind``: a short word for the JSON output's ``error_kind`` and the run's failure metadata.

:class:`TransientError` and :class:`TerminalError` fix ``transient`` for a whole class; the kind
classes below fix ``exit_code`` and ``kind``. An error class of a module combines the two (``class
LoadError(WarehouseError)``), or sets ``transient`` per instance when only the cause tells
(a connection refused now may answer later; a password that is wrong stays wrong).

Errors raised by drivers (pymysql, psycopg2, botocore, ``OSError``) are classified by
:func:`classify`, the one place that knows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, distinct per failure class so schedulers can react (documented in README)."""

    OK = 0
    CONFIG = 1  # the configuration or the command line is wrong, or names something that does not exist
    CONNECTION = 2  # a source, warehouse, tunnel or store could not be reached (or the run could not start)
    PARTIAL = 3  # some tables synced, some failed (or a failure of no known kind)
    DATA = 4  # the data was refused or a check failed (type overflow, oversize text, incompatible schema change)
    STAGING = 5  # the staging store (S3 / local directory) failed
    WAREHOUSE = 6  # the warehouse refused a statement (COPY, merge, DDL)
    INTERRUPTED = 130  # Ctrl-C


class SyncPlatformError(Exception):
    """Base of every error the platform raises on purpose; the message names the thing and the fix."""

    exit_code: ExitCode = ExitCode.PARTIAL
    transient: bool = False
    kind: str = "error"


class TransientError(SyncPlatformError):
    """A later attempt may succeed: the op's retry policy retries it."""

    transient = True


class TerminalError(SyncPlatformError):
    """Trying again cannot help until someone changes something: fail at once."""

    transient = False


# --------------------------------------------------------------------------- kinds (exit code + name)


class ConfigurationError(TerminalError):
    """The configuration or the command's arguments are wrong (exit 1)."""

    exit_code = ExitCode.CONFIG
    kind = "configuration"


class EndpointError(SyncPlatformError):
    """A source, warehouse, SSH bastion or staging endpoint did not answer or dropped us (exit 2)."""

    exit_code = ExitCode.CONNECTION
    kind = "connection"


class EndpointUnreachable(EndpointError, TerminalError):
    """The pre-flight check found an endpoint down before the run read anything: fail now, no retries.

    Retrying a run whose warehouse is down only re-reads the source every time; the operator has to act.
    """


class RunBlocked(EndpointError, TerminalError):
    """The run could not start any step in time (pool slots or the table held by other runs)."""

    kind = "blocked"


class DataError(TerminalError):
    """The data itself was refused (exit 4)."""

    exit_code = ExitCode.DATA
    kind = "data"


class StagingStoreError(SyncPlatformError):
    """The staging store (S3 or a local directory) failed (exit 5)."""

    exit_code = ExitCode.STAGING
    kind = "staging"


class WarehouseError(SyncPlatformError):
    """The warehouse refused a statement (exit 6)."""

    exit_code = ExitCode.WAREHOUSE
    kind = "warehouse"


class TableBusy(TransientError):
    """Another run holds the table (one writer per table): wait and retry (exit 2 when retries run out)."""

    exit_code = ExitCode.CONNECTION
    kind = "busy"


# --------------------------------------------------------------------------- classification


@dataclass(frozen=True)
class Classification:
    """What consumers need to know about any exception: retry or not, which exit code, which kind."""

    kind: str
    exit_code: ExitCode
    transient: bool

    def as_metadata(self) -> dict[str, object]:
        """The run's failure metadata (read back by the CLI; shown in the Dagster UI)."""
        return {"error_kind": self.kind, "exit_code": int(self.exit_code), "transient": self.transient}

    @classmethod
    def from_metadata(cls, metadata: dict[str, object]) -> Classification | None:
        code = metadata.get("exit_code")
        if not isinstance(code, int):
            return None
        try:
            exit_code = ExitCode(code)
        except ValueError:
            exit_code = ExitCode.PARTIAL
        return cls(str(metadata.get("error_kind") or "error"), exit_code, bool(metadata.get("transient")))


def classify(error: BaseException) -> Classification:
    """The kind, exit code and retry decision for ``error`` (the platform's own, or a driver's)."""
    if isinstance(error, SyncPlatformError):
        transient = bool(error.transient)
        if not transient and isinstance(error, WarehouseError | StagingStoreError) and error.__cause__ is not None:
            # A load or an upload cut short by a lost connection is worth another attempt; a refused
            # statement is not. The driver's error underneath tells which.
            transient = classify(error.__cause__).transient
        return Classification(error.kind, ExitCode(error.exit_code), transient)
    # Drivers' errors: only connections/ knows their codes; imported here lazily (this module is a leaf).
    from sync_platform.connections.retry import classify_driver_error

    return classify_driver_error(error)


# A run stopped by Ctrl-C or SIGTERM (Dagster cancels it at its next checkpoint).
INTERRUPTED = Classification("interrupted", ExitCode.INTERRUPTED, False)
