"""One taxonomy: each error says whether a retry may help and which exit code it means."""

from __future__ import annotations

import psycopg2
import pymysql
import pytest

from sync_platform.cli.exit_codes import exit_code_for
from sync_platform.configuration import ConfigError, ConfigProblem
from sync_platform.connections.host_keys import HostKeyError
from sync_platform.connections.registry import UnknownConnection
from sync_platform.connections.retry import ConnectionFailure
from sync_platform.connections.ssh_tunnel import TunnelError
from sync_platform.engine.extract import ExtractError
from sync_platform.engine.load import LoadError
from sync_platform.engine.source_schema import SourceTableNotFound
from sync_platform.engine.stage import StagingError
from sync_platform.engine.strategies import PlanError
from sync_platform.engine.sync import ConcurrentRunError
from sync_platform.engine.typemap import UnsupportedColumnType
from sync_platform.errors import EndpointUnreachable, ExitCode, SyncPlatformError, classify
from sync_platform.warehouse import IncompatibleSchemaChange


@pytest.mark.parametrize(
    ("error", "kind", "code", "transient"),
    [
        (ConfigError([ConfigProblem(None, "-t x", "no such table")]), "configuration", ExitCode.CONFIG, False),
        (UnknownConnection("source", "nope", ["src"]), "configuration", ExitCode.CONFIG, False),
        (PlanError("no cursor column"), "configuration", ExitCode.CONFIG, False),
        (SourceTableNotFound("shop.nope"), "configuration", ExitCode.CONFIG, False),
        (EndpointUnreachable("warehouse down"), "connection", ExitCode.CONNECTION, False),
        (ConnectionFailure("refused", transient=True), "connection", ExitCode.CONNECTION, True),
        (ConnectionFailure("bad password", transient=False), "connection", ExitCode.CONNECTION, False),
        (TunnelError("bastion gone", transient=True), "connection", ExitCode.CONNECTION, True),
        (HostKeyError("changed key"), "connection", ExitCode.CONNECTION, False),
        (ExtractError("t", "lost connection", retryable=True), "connection", ExitCode.CONNECTION, True),
        (ExtractError("t", "bad SQL", retryable=False), "connection", ExitCode.CONNECTION, False),
        (ConcurrentRunError("held"), "busy", ExitCode.CONNECTION, True),
        (UnsupportedColumnType("geometry"), "data", ExitCode.DATA, False),
        (IncompatibleSchemaChange("t", "c", "INTEGER", "VARCHAR(4)", "fix"), "data", ExitCode.DATA, False),
        (StagingError("part missing"), "staging", ExitCode.STAGING, False),
        (LoadError("COPY refused"), "warehouse", ExitCode.WAREHOUSE, False),
        (pymysql.err.OperationalError(2003, "Can't connect"), "connection", ExitCode.CONNECTION, True),
        (psycopg2.OperationalError("could not connect to server: Connection refused"), "connection", 2, True),
        (psycopg2.ProgrammingError("syntax error"), "warehouse", ExitCode.WAREHOUSE, False),
        (PermissionError(13, "denied"), "staging", ExitCode.STAGING, False),
        (ValueError("something else"), "error", ExitCode.PARTIAL, False),
    ],
)
def test_every_error_knows_its_kind_exit_code_and_retry(
    error: BaseException, kind: str, code: int, transient: bool
) -> None:
    found = classify(error)
    assert (found.kind, found.exit_code, found.transient) == (kind, code, transient)
    assert exit_code_for(error) == code


def test_a_load_cut_short_by_a_lost_connection_is_transient_a_refused_statement_is_not() -> None:
    lost = LoadError("loading batch b failed")
    lost.__cause__ = psycopg2.OperationalError("server closed the connection unexpectedly")
    refused = LoadError("loading batch b failed")
    refused.__cause__ = psycopg2.errors.SyntaxError("syntax error at or near")
    assert classify(lost).transient and not classify(refused).transient


def test_the_platforms_errors_share_one_base() -> None:
    for error in (ConfigError([]), ConnectionFailure("x"), LoadError("x"), StagingError("x"), PlanError("x")):
        assert isinstance(error, SyncPlatformError)
