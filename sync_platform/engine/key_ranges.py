"""Key ranges on a table's primary key, and the walk that cuts a key space into ranges.

A key range is ``(lower, upper]`` on the primary key in the source's order; ``None`` is open.
Reconcile compares tables range by range, and a big initial load reads and loads one range per
unit of work; both find the range boundaries with the same walk (:class:`KeyWalk`): every
``step``-th key, one short index walk per boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

KeyValues = tuple[Any, ...]


@dataclass(frozen=True)
class KeyRange:
    """``lower < key <= upper`` (``None``: unbounded on that side)."""

    lower: KeyValues | None = None
    upper: KeyValues | None = None

    def describe(self) -> str:
        low = "start" if self.lower is None else str(self.lower)
        high = "end" if self.upper is None else str(self.upper)
        return f"({low}, {high}]"


def compare_keys(columns: Sequence[str], values: Sequence[str], above: bool) -> str:
    """``(c1, c2, …) > (v1, v2, …)`` (``above``) or ``<=``, expanded without row constructors.

    The leading ``c1 >= v1`` / ``c1 <= v1`` lets MySQL bound an index range scan on both ends.
    """
    first, value = columns[0], values[0]
    if len(columns) == 1:
        return f"{first} {'>' if above else '<='} {value}"
    strict, loose = (">", ">=") if above else ("<", "<=")
    rest = compare_keys(columns[1:], values[1:], above)
    return f"{first} {loose} {value} AND ({first} {strict} {value} OR ({rest}))"


def key_params(values: KeyValues) -> list[Any]:
    if len(values) == 1:
        return [values[0]]
    return [values[0], values[0], *key_params(values[1:])]


def range_condition(columns: Sequence[str], key_range: KeyRange) -> tuple[str, list[Any]]:
    """WHERE text and parameters of a key range over the (quoted) key ``columns``."""
    parts: list[str] = []
    params: list[Any] = []
    placeholders = ["%s"] * len(columns)
    if key_range.lower is not None:
        parts.append(compare_keys(columns, placeholders, above=True))
        params += key_params(key_range.lower)
    if key_range.upper is not None:
        parts.append(compare_keys(columns, placeholders, above=False))
        params += key_params(key_range.upper)
    if not parts and columns:  # a cursor column may hold NULLs: they are in no range (reconcile's null_checksum)
        parts.append(f"{columns[0]} IS NOT NULL")
    return (" AND ".join(parts) or "TRUE"), params


def mysql_boundary_sql(table_sql: str, key_list: str, where: str, step: int) -> str:
    """The ``step``-th key of a range in MySQL, walking the primary key (touches ``step`` index entries)."""
    return f"SELECT {key_list} FROM {table_sql} WHERE {where} ORDER BY {key_list} LIMIT 1 OFFSET {step - 1}"


class KeyWalk:
    """``boundaries`` from a side's ``next_boundary``: the same walk on every server."""

    def next_boundary(self, key_range: KeyRange, step: int) -> KeyValues | None:
        raise NotImplementedError

    def boundaries(self, key_range: KeyRange, step: int, limit: int | None = None) -> list[KeyValues]:
        """Every ``step``-th key of the range (at most ``limit`` of them)."""
        found: list[KeyValues] = []
        lower = key_range.lower
        while limit is None or len(found) < limit:
            bound = self.next_boundary(KeyRange(lower, key_range.upper), step)
            if bound is None:
                break
            found.append(bound)
            lower = bound
        return found


class MySQLKeyWalk(KeyWalk):
    """The walk over a MySQL table's primary key through a plain (pymysql) connection."""

    def __init__(self, conn: Any, table_sql: str, quoted_columns: Sequence[str]):
        self.conn = conn
        self.table_sql = table_sql
        self.columns = list(quoted_columns)
        self.key_list = ", ".join(self.columns)
        self.queries = 0

    def next_boundary(self, key_range: KeyRange, step: int) -> KeyValues | None:
        where, params = range_condition(self.columns, key_range)
        self.queries += 1
        with self.conn.cursor() as cursor:
            cursor.execute(mysql_boundary_sql(self.table_sql, self.key_list, where, step), tuple(params))
            row = cursor.fetchone()
        return tuple(row) if row else None
