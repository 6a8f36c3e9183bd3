"""What a MySQL/MariaDB table looks like, read from INFORMATION_SCHEMA into plain frozen records.

The type map (``typemap``) and the read plans (``strategies``) work from these records only, so
they never talk to the server themselves. Two server quirks are absorbed here:

- MariaDB stores ``JSON`` as ``LONGTEXT`` with a ``CHECK (json_valid(col))`` constraint, so
  ``DATA_TYPE`` says ``longtext``; such columns are reported as ``json`` like on MySQL.
- ``DATA_TYPE`` never says ``unsigned`` or ``tinyint(1)``; ``COLUMN_TYPE`` does, so both are kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pymysql
import pymysql.connections

from sync_platform.engine import collation
from sync_platform.errors import ConfigurationError


class SourceTableNotFound(ConfigurationError, LookupError):
    """The table does not exist on the source server (or the login cannot see it)."""


@dataclass(frozen=True)
class SourceColumn:
    """One column as INFORMATION_SCHEMA.COLUMNS describes it (``data_type`` lower-cased)."""

    name: str
    ordinal: int
    data_type: str  # e.g. "int", "varchar", "json" (also for MariaDB's json_valid LONGTEXT)
    column_type: str  # e.g. "int(10) unsigned", "tinyint(1)", "enum('a','b')"
    nullable: bool
    char_max_length: int | None = None  # characters (ENUM/SET: the longest possible value)
    numeric_precision: int | None = None  # DECIMAL p; BIT n (MySQL reports BIT(n) precision as n)
    numeric_scale: int | None = None
    datetime_precision: int | None = None  # fractional-second digits of DATETIME/TIMESTAMP/TIME
    unsigned: bool = False
    character_set: str | None = None
    generated: bool = False  # a VIRTUAL/STORED generated column (still readable)
    collation: str | None = None  # text columns: how MySQL compares them (e.g. utf8mb4_general_ci)

    @property
    def compares_loosely(self) -> bool:
        """Text that MySQL compares ignoring case or accents: distinct values in the warehouse may be one key."""
        return collation.ignores_case(self.collation)

    @property
    def key_equality(self) -> collation.KeyEquality | None:
        """What MySQL ignores when it compares this column as a key: case, trailing spaces (PAD SPACE), both."""
        return collation.key_equality(self.data_type, self.collation)

    @property
    def display_width(self) -> int | None:
        """The ``(n)`` of an integer's COLUMN_TYPE (``tinyint(1)`` → 1), None when absent."""
        match = re.match(r"^[a-z]+\((\d+)\)", self.column_type.lower())
        return int(match.group(1)) if match else None

    @property
    def is_boolean_like(self) -> bool:
        """``TINYINT(1)`` (``BOOL``): kept as a small integer since values other than 0/1 occur."""
        return self.data_type == "tinyint" and self.display_width == 1


@dataclass(frozen=True)
class SourceTable:
    """A source table: its columns in ordinal order, primary key and unique keys (column names)."""

    schema: str
    table: str
    columns: tuple[SourceColumn, ...]
    primary_key: tuple[str, ...] = ()
    unique_keys: tuple[tuple[str, ...], ...] = ()

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> SourceColumn:
        """The column called ``name`` (MySQL column names are case-insensitive)."""
        wanted = name.lower()
        for column in self.columns:
            if column.name.lower() == wanted:
                return column
        raise KeyError(f"{self.qualified_name} has no column {name!r}; columns: {', '.join(self.column_names)}")


@dataclass(frozen=True)
class ServerTimeZone:
    """The source server's time zone facts (TIMESTAMP values are shown in the session zone)."""

    global_zone: str  # @@global.time_zone, e.g. "SYSTEM", "+00:00", "Europe/Berlin"
    session_zone: str  # @@session.time_zone of the connection that asked
    system_zone: str  # @@system_time_zone (what SYSTEM means)
    session_offset_seconds: int  # NOW() - UTC_TIMESTAMP() for the asking session, right now

    @property
    def session_is_utc(self) -> bool:
        return self.session_offset_seconds == 0


_COLUMNS_SQL = """
SELECT COLUMN_NAME, ORDINAL_POSITION, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE,
       CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION,
       CHARACTER_SET_NAME, EXTRA, COLLATION_NAME
FROM INFORMATION_SCHEMA.COLUMNS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s
ORDER BY ORDINAL_POSITION
"""

_KEYS_SQL = """
SELECT INDEX_NAME, COLUMN_NAME
FROM INFORMATION_SCHEMA.STATISTICS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND NON_UNIQUE = 0
ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX
"""

_INDEXES_SQL = """
SELECT INDEX_NAME, COLUMN_NAME
FROM INFORMATION_SCHEMA.STATISTICS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s
ORDER BY INDEX_NAME, SEQ_IN_INDEX
"""

_CHECKS_SQL = """
SELECT CHECK_CLAUSE
FROM INFORMATION_SCHEMA.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s
"""

_SIMILAR_TABLES_SQL = """
SELECT TABLE_SCHEMA, TABLE_NAME
FROM INFORMATION_SCHEMA.TABLES
WHERE LOWER(TABLE_SCHEMA) = LOWER(%s) AND LOWER(TABLE_NAME) = LOWER(%s)
"""

# MariaDB writes the JSON check as json_valid(`col`) (backticks doubled inside the name).
_JSON_VALID = re.compile(r"json_valid\(\s*`((?:[^`]|``)+)`\s*\)", re.IGNORECASE)


def read_source_table(conn: pymysql.connections.Connection, schema: str, table: str) -> SourceTable:
    """Columns, primary key and unique keys of ``schema.table``; ``SourceTableNotFound`` if absent."""
    with conn.cursor() as cur:
        cur.execute(_COLUMNS_SQL, (schema, table))
        column_rows: Sequence[Sequence[Any]] = cur.fetchall()
        if not column_rows:
            raise SourceTableNotFound(_not_found_message(cur, schema, table))
        cur.execute(_KEYS_SQL, (schema, table))
        key_rows: Sequence[Sequence[Any]] = cur.fetchall()
        json_columns = _json_checked_columns(cur, schema, table)

    columns = tuple(_column(row, json_columns) for row in column_rows)
    primary: list[str] = []
    uniques: dict[str, list[str]] = {}
    for index_name, column_name in key_rows:
        if index_name == "PRIMARY":
            primary.append(column_name)
        else:
            uniques.setdefault(index_name, []).append(column_name)
    return SourceTable(
        schema=schema,
        table=table,
        columns=columns,
        primary_key=tuple(primary),
        unique_keys=tuple(tuple(cols) for cols in uniques.values()),
    )


def read_indexes(conn: pymysql.connections.Connection, schema: str, table: str) -> dict[str, tuple[str, ...]]:
    """Every index of ``schema.table`` (unique or not) by name, with its columns in index order."""
    with conn.cursor() as cur:
        cur.execute(_INDEXES_SQL, (schema, table))
        rows: Sequence[Sequence[Any]] = cur.fetchall()
    indexes: dict[str, list[str]] = {}
    for index_name, column_name in rows:
        indexes.setdefault(_text(index_name), []).append(_text(column_name))
    return {name: tuple(columns) for name, columns in indexes.items()}


def read_server_time_zone(conn: pymysql.connections.Connection) -> ServerTimeZone:
    """The server's zone settings and the asking session's current UTC offset."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT @@global.time_zone, @@session.time_zone, @@system_time_zone, "
            "TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW())"
        )
        row = cur.fetchone()
    assert row is not None
    return ServerTimeZone(str(row[0]), str(row[1]), str(row[2]), int(row[3]))


def _column(row: Sequence[Any], json_columns: set[str]) -> SourceColumn:
    name, ordinal, data_type, column_type, is_nullable, char_len, precision, scale, dt_precision = row[:9]
    charset, extra = row[9], row[10]
    collation = row[11] if len(row) > 11 else None
    data_type = _text(data_type).lower()
    column_type = _text(column_type)
    if data_type == "longtext" and name in json_columns:
        data_type = "json"
    extra_text = _text(extra).lower()
    return SourceColumn(
        name=name,
        ordinal=int(ordinal),
        data_type=data_type,
        column_type=column_type,
        nullable=_text(is_nullable).upper() == "YES",
        char_max_length=_int(char_len),
        numeric_precision=_int(precision),
        numeric_scale=_int(scale),
        datetime_precision=_int(dt_precision),
        unsigned="unsigned" in column_type.lower().split(),
        character_set=charset,
        collation=_text(collation) if collation else None,
        generated="generated" in extra_text or "virtual" in extra_text or "persistent" in extra_text,
    )


def _json_checked_columns(cur: Any, schema: str, table: str) -> set[str]:
    """Names of MariaDB LONGTEXT columns guarded by ``json_valid``; empty where the view is missing."""
    try:
        cur.execute(_CHECKS_SQL, (schema, table))
    except pymysql.MySQLError:  # MySQL < 8.0.16 has no CHECK_CONSTRAINTS view (and a real JSON type)
        return set()
    found: set[str] = set()
    for (clause,) in cur.fetchall():
        for match in _JSON_VALID.finditer(_text(clause)):
            found.add(match.group(1).replace("``", "`"))
    return found


def _not_found_message(cur: Any, schema: str, table: str) -> str:
    cur.execute(_SIMILAR_TABLES_SQL, (schema, table))
    similar = [f"{s}.{t}" for s, t in cur.fetchall()]
    hint = f" Did you mean {', '.join(similar)}? (table names are case-sensitive)" if similar else ""
    return (
        f"source table {schema}.{table} does not exist, or the login cannot see it "
        f"(no columns in INFORMATION_SCHEMA.COLUMNS).{hint}"
    )


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8")
    return "" if value is None else str(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
