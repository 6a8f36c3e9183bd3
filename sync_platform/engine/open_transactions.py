"""Open transactions on the source that hold a run's ceiling back (``information_schema.INNODB_TRX``).

A transaction stamps its rows' cursor when it writes them, but the rows become visible only when
it commits. A run whose ceiling passed the stamp before the commit would move its watermark past
rows it never saw; the lookback re-reads only a short window behind the watermark. So the ceiling is
also kept below the start of the oldest open transaction that has written on the source server: the
rows it writes arrive in the first run after it commits, however long it ran.

Reading ``INNODB_TRX`` needs the PROCESS privilege. Without it the run says so (once, with the
``GRANT``) and relies on the lookback alone.

Notes on what MariaDB/MySQL show there:
- ``trx_started`` is the server process's local (system) time with whole seconds, whatever the
  session's time zone: it is converted with ``CONVERT_TZ(…, 'SYSTEM', '+00:00')``.
- The table is a snapshot refreshed at most every 0.1 s; a transaction that started within that time
  lies above any ceiling a ``safety_lag`` of 1 s or more allows anyway.
- A transaction "has written" when it modified rows, holds locks (a write under way, ``SELECT … FOR
  UPDATE``) or waits for one. Read-only transactions (reports, consistent snapshots) never hold the
  ceiling back. The run's own connection is left out; its readers only read.

Integer id cursors (``id_only``, append tables) are allocated, not stamped: an open transaction's id
can lie below a higher id another transaction has committed. While any writer is open (or when
``INNODB_TRX`` cannot be read), :func:`first_uncommitted_id` compares the ids of the run's window as
committed with the same ids read uncommitted, and the ceiling stays below the first id that is not
committed yet.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pymysql

from sync_platform.engine.mysql_sql import quote_mysql
from sync_platform.engine.strategies import CursorColumn, StrategyChoice, server_local_time, transaction_ceiling
from sync_platform.engine.watermark import CursorValue

ACCESS_DENIED = (1227, 1142, 1044)  # ER_SPECIFIC_ACCESS_DENIED_ERROR, ER_TABLEACCESS_DENIED, ER_DBACCESS_DENIED

_STARTED_UTC = "COALESCE(CONVERT_TZ(t.trx_started, 'SYSTEM', '+00:00'), t.trx_started)"
OLDEST_WRITER_SQL = (
    "SELECT t.trx_id, t.trx_mysql_thread_id, t.trx_state, t.trx_rows_modified, "
    f"{_STARTED_UTC}, {server_local_time(_STARTED_UTC)}, UTC_TIMESTAMP(6), p.USER, p.HOST "
    "FROM information_schema.INNODB_TRX AS t "
    "LEFT JOIN information_schema.PROCESSLIST AS p ON p.ID = t.trx_mysql_thread_id "
    "WHERE t.trx_mysql_thread_id <> CONNECTION_ID() "
    "AND (t.trx_rows_modified > 0 OR t.trx_lock_structs > 0 OR t.trx_state = 'LOCK WAIT') "
    "ORDER BY t.trx_started, t.trx_id LIMIT {limit}"
)
SHOWN = 5  # the oldest writers a report names
ID_CHUNK = 10_000  # ids compared per step when looking for an uncommitted insert


@dataclass(frozen=True)
class OpenTransaction:
    """The oldest open transaction that has written on the source, as ``INNODB_TRX`` shows it."""

    trx_id: str
    thread_id: int
    state: str
    rows_modified: int
    started_at: dt.datetime  # UTC (aware), whole seconds
    started_local: dt.datetime  # the same moment in the server's local time (what DATETIME cursors hold)
    open_seconds: float  # how long it has been open when the run started
    user: str | None = None
    host: str | None = None

    @property
    def who(self) -> str:
        return f"{self.user}@{self.host}" if self.user else "user not shown"

    def describe(self) -> str:
        return (
            f"transaction {self.trx_id} of MySQL thread {self.thread_id} ({self.who}), open since "
            f"{self.started_at:%Y-%m-%d %H:%M:%S} UTC ({self.open_seconds:.0f} s, {self.rows_modified} rows "
            f"written so far, {self.state})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "trx_id": self.trx_id,
            "thread_id": self.thread_id,
            "user": self.user,
            "host": self.host,
            "state": self.state,
            "rows_modified": self.rows_modified,
            "started_at": self.started_at.isoformat(),
            "open_seconds": round(self.open_seconds, 1),
        }


@dataclass(frozen=True)
class TransactionProbe:
    """What the run could learn about open transactions: the oldest writers, or why it could not look."""

    writers: tuple[OpenTransaction, ...] = ()  # oldest first, at most SHOWN
    unreadable: str | None = None  # the warning when the login lacks the PROCESS privilege

    @property
    def oldest(self) -> OpenTransaction | None:
        return self.writers[0] if self.writers else None


def probe_open_transactions(conn: pymysql.connections.Connection) -> TransactionProbe:
    """The oldest open writing transactions on the source other than this connection's (oldest first)."""
    with conn.cursor() as cursor:
        try:
            cursor.execute(OLDEST_WRITER_SQL.format(limit=SHOWN))
        except (pymysql.err.OperationalError, pymysql.err.ProgrammingError) as exc:
            if not exc.args or exc.args[0] not in ACCESS_DENIED:
                raise
            return TransactionProbe(unreadable=_no_privilege_message(conn))
        rows = cursor.fetchall()
    return TransactionProbe(tuple(_transaction(row) for row in rows))


def _transaction(row: tuple[Any, ...]) -> OpenTransaction:
    trx_id, thread_id, state, modified, started_utc, started_local, now, user, host = row
    started = started_utc.replace(tzinfo=dt.UTC)
    return OpenTransaction(
        trx_id=str(trx_id),
        thread_id=int(thread_id or 0),
        state=str(state),
        rows_modified=int(modified or 0),
        started_at=started,
        started_local=started_local,
        open_seconds=max(0.0, (now.replace(tzinfo=dt.UTC) - started).total_seconds()),
        user=user or None,
        host=host or None,
    )


def _no_privilege_message(conn: pymysql.connections.Connection) -> str:
    with conn.cursor() as cursor:
        cursor.execute("SELECT CURRENT_USER()")
        (account,) = cursor.fetchone()
    user, _, host = str(account).rpartition("@")
    grantee = f"'{user}'@'{host}'"
    return (
        f"the source login {grantee} cannot read information_schema.INNODB_TRX (it needs the PROCESS privilege), "
        "so open transactions cannot hold the ceiling back: a row whose transaction commits later than the "
        f"lookback after it stamped its cursor is missed. Fix: GRANT PROCESS ON *.* TO {grantee}"
    )


def first_uncommitted_id(
    conn: pymysql.connections.Connection, table: str, column: str, after: int | None, maximum: int
) -> int | None:
    """The smallest id in ``(after, maximum]`` of a row inserted by a transaction that has not committed.

    Reads the window's ids committed, then the same range READ UNCOMMITTED, ``ID_CHUNK`` ids at a time:
    an id only the second read sees is an insert still to commit. (An id only the first read sees is a
    delete still to commit, which loses nothing.) An insert that commits between the two reads is
    taken for uncommitted, which only holds the ceiling back one run longer.
    """
    quoted = quote_mysql(column)
    lower = after
    while True:
        above = f" AND {quoted} > {int(lower)}" if lower is not None else ""
        committed = _ids(conn, f"SELECT {quoted} FROM {table} WHERE {quoted} <= {int(maximum)}{above} "
                               f"ORDER BY {quoted} LIMIT {ID_CHUNK}")  # fmt: skip
        upper = committed[-1] if len(committed) == ID_CHUNK else int(maximum)
        with conn.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED")  # the next transaction only
            cursor.execute("START TRANSACTION READ ONLY")
        try:
            seen = _ids(conn, f"SELECT {quoted} FROM {table} WHERE {quoted} <= {upper}{above}")
        finally:
            conn.commit()
        pending = set(seen) - set(committed)
        if pending:
            return min(pending)
        if upper >= maximum:
            return None
        lower = upper


def _ids(conn: pymysql.connections.Connection, sql: str) -> list[int]:
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return [int(value) for (value,) in cursor.fetchall() if value is not None]


def hold_ceiling(
    conn: pymysql.connections.Connection,
    first: CursorColumn,
    ceiling: CursorValue,
    maximum: object,
    choice: StrategyChoice,
    table: str,
    after: CursorValue,
) -> tuple[CursorValue, tuple[OpenTransaction, ...], list[str]]:
    """The ceiling kept below what open writing transactions may still commit (see :mod:`open_transactions`).

    Clock cursors stay below the start of the oldest one; integer ids below the first id inserted but not
    committed yet. Returns (ceiling, the transactions that hold it back, oldest first, warnings). Text and
    decimal cursors have no such bound (README, limits).
    """
    integer = first.kind == "integer" and isinstance(ceiling, int) and isinstance(after, int | None)
    if first.kind not in ("timestamp", "datetime", "date", "unix") and not integer:
        return ceiling, (), []
    probe = probe_open_transactions(conn)
    warnings = []
    if probe.unreadable:
        lookback = f"the lookback ({choice.lookback_seconds:g} s)"
        warnings.append(probe.unreadable.replace("the lookback", lookback))
    if integer:
        if not probe.writers and not probe.unreadable:
            return ceiling, (), warnings
        pending = first_uncommitted_id(conn, table, first.name, after, ceiling)  # type: ignore[arg-type]
        if pending is None:
            return ceiling, (), warnings
        names = "; ".join(writer.describe() for writer in probe.writers) or "not readable"
        warnings.append(
            f"ceiling held back to {first.name} {pending - 1} (from {ceiling}): {first.name} {pending} is inserted "
            f"by a transaction that has not committed yet (open writing transactions, oldest first: {names}). "
            "The rows they write arrive in the first run after they commit"
        )
        return pending - 1, probe.writers, warnings
    if probe.unreadable:
        return ceiling, (), warnings
    holding = []
    for writer in probe.writers:
        bound = transaction_ceiling(first, writer.started_at, writer.started_local, maximum)
        if bound is not None and bound < ceiling:  # type: ignore[operator]
            holding.append((bound, writer))
    if not holding:
        return ceiling, (), []
    bound = holding[0][0]
    names = "; ".join(writer.describe() for _, writer in holding)
    note = (
        f"ceiling held back to {bound} (from {ceiling}) by {len(holding)} open writing transaction(s) on the "
        f"source, oldest first: {names}. The rows they write arrive in the first run after they commit"
    )
    return bound, tuple(writer for _, writer in holding), [note]
