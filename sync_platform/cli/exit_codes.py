"""Process exit codes, distinct per failure class so schedulers can react (documented in README)."""

from collections.abc import Sequence
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    CONFIG = 1  # the configuration is invalid or names something that does not exist
    CONNECTION = 2  # a source, warehouse, tunnel or store could not be reached
    PARTIAL = 3  # some tables synced, some failed
    DATA = 4  # the data itself was refused (type overflow, oversize text, incompatible schema change)
    STAGING = 5  # the staging store (S3 / local directory) failed
    WAREHOUSE = 6  # the warehouse refused a statement (COPY, merge, DDL)
    INTERRUPTED = 130  # Ctrl-C


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit code for an error raised by a sync (checked from the most specific class)."""
    for types, code in _classes():
        if isinstance(error, types):
            return code
    return ExitCode.PARTIAL


def exit_code_for_names(class_names: Sequence[str]) -> ExitCode:
    """The exit code for a failure known only by its exception class names (a Dagster step failure).

    The names are its chain, outermost first (``Failure``, then the engine's error that caused it).
    """
    for name in class_names:
        for types, code in _classes():
            if any(name in _names_of(t) for t in types):
                return code
    return ExitCode.PARTIAL


def _names_of(cls: type) -> set[str]:
    names, pending = set(), [cls]
    while pending:
        current = pending.pop()
        names.add(current.__name__)
        pending.extend(current.__subclasses__())
    return names


def _classes() -> list[tuple[tuple[type[BaseException], ...], ExitCode]]:
    import psycopg2
    import pymysql

    from sync_platform.configuration import ConfigError
    from sync_platform.connections.retry import ConnectionFailure
    from sync_platform.connections.ssh_tunnel import TunnelError
    from sync_platform.engine.extract import ExtractError
    from sync_platform.engine.load import LoadError
    from sync_platform.engine.source_schema import SourceTableNotFound
    from sync_platform.engine.stage import StagingError
    from sync_platform.engine.strategies import NullCursorRowsError, PlanError
    from sync_platform.engine.typemap import OversizeValueError, UnsupportedColumnType
    from sync_platform.warehouse import IncompatibleSchemaChange

    return [
        ((ConfigError, PlanError, SourceTableNotFound), ExitCode.CONFIG),
        (
            (ConnectionFailure, TunnelError, ExtractError, pymysql.err.OperationalError, psycopg2.OperationalError),
            ExitCode.CONNECTION,
        ),
        ((OversizeValueError, UnsupportedColumnType, IncompatibleSchemaChange, NullCursorRowsError), ExitCode.DATA),
        ((StagingError, OSError), ExitCode.STAGING),
        ((LoadError,), ExitCode.WAREHOUSE),
    ]
