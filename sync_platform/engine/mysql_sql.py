"""MySQL text the engine writes: identifier quoting, value literals and the small queries built from them.

connectorx takes no bound parameters, so every key and cursor value is written into the SQL text.
This module is the one place that does it, and each literal is exact for its value's type whatever
the session's ``sql_mode`` (``NO_BACKSLASH_ESCAPES`` included) or time zone:

- bytes (BINARY, VARBINARY, BLOB keys) as a hex literal ``X'…'``, compared byte for byte;
- text with a backslash or a NUL as ``_utf8mb4 X'…'`` (hex, so no escape rule applies); other
  text quoted with ``''`` for a quote, the one escape every mode reads the same way;
- decimals in positional notation (``1E+20`` would be read as an approximate DOUBLE);
- dates, times and datetimes as their ISO text; TIMESTAMP positions through ``FROM_UNIXTIME`` of
  the epoch, so they mean the same instant in every session time zone.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Protocol


class CursorColumnLike(Protocol):
    name: str
    kind: str


def quote_mysql(identifier: str) -> str:
    """Backtick-quote a MySQL identifier (backticks doubled); MySQL allows no NUL in an identifier."""
    if "\0" in identifier:
        raise ValueError(f"identifier {identifier!r} contains a NUL character, which MySQL does not allow")
    return "`" + identifier.replace("`", "``") + "`"


def table_sql(schema: str, table: str) -> str:
    return f"{quote_mysql(schema)}.{quote_mysql(table)}"


def text_literal(text: str) -> str:
    """An exact string literal; hex when the text holds characters whose escaping depends on sql_mode."""
    if "\\" in text or "\0" in text:
        return f"_utf8mb4 X'{text.encode('utf-8').hex()}'"
    return "'" + text.replace("'", "''") + "'"


def _time_text(value: dt.timedelta) -> str:
    """A TIME value as MySQL writes it (``-838:59:59.000000`` … ``838:59:59.000000``)."""
    micros = value // dt.timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    hours, rest = divmod(seconds, 3600)
    return f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}.{fraction:06d}"


def _epoch_literal(value: dt.datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    epoch = aware - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    seconds = epoch.days * 86400 + epoch.seconds
    return f"FROM_UNIXTIME({seconds}.{epoch.microseconds:06d})"


def value_literal(value: Any, *, kind: str | None = None) -> str:
    """A MySQL literal for one key or cursor value, exact for its type (see the module docstring).

    ``kind`` says how the column compares: a ``timestamp`` column takes a datetime as an epoch
    instant. A value the server sent as text (e.g. a zero date read with ``CAST(… AS CHAR)``) stays
    text whatever the column.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"X'{bytes(value).hex()}'"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} has no MySQL literal")
        return format(value, "f")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no MySQL literal")
        return repr(value)
    if isinstance(value, dt.datetime):
        if kind == "timestamp":
            return _epoch_literal(value)
        return text_literal(value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds"))
    if isinstance(value, dt.date):
        return text_literal(value.isoformat())
    if isinstance(value, dt.time):
        return text_literal(value.replace(tzinfo=None).isoformat(timespec="microseconds"))
    if isinstance(value, dt.timedelta):
        return text_literal(_time_text(value))
    if isinstance(value, str):
        return text_literal(value)
    raise TypeError(f"no MySQL literal for a {type(value).__name__} value ({value!r})")


def literal(column: CursorColumnLike, value: Any) -> str:
    """The literal for ``value`` compared with ``column`` (see :func:`value_literal`)."""
    try:
        return value_literal(value, kind=column.kind)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{column.name}: {exc}") from exc


def keyset_after(keyset: Sequence[CursorColumnLike], values: Sequence[Any]) -> str:
    """``(c1, c2, …) > (v1, v2, …)`` written so MySQL can range-scan an index on c1."""
    first, first_value = keyset[0], values[0]
    column = quote_mysql(first.name)
    if len(keyset) == 1:
        return f"{column} > {literal(first, first_value)}"
    rest = keyset_after(keyset[1:], values[1:])
    lit = literal(first, first_value)
    return f"{column} >= {lit} AND ({column} > {lit} OR ({rest}))"


def keyset_at_or_below(keyset: Sequence[CursorColumnLike], values: Sequence[Any]) -> str:
    """``(c1, c2, …) <= (v1, v2, …)`` written so MySQL can range-scan an index on c1 (the opposite of
    :func:`keyset_after`; NULLs are in neither)."""
    first, first_value = keyset[0], values[0]
    column = quote_mysql(first.name)
    lit = literal(first, first_value)
    if len(keyset) == 1:
        return f"{column} <= {lit}"
    rest = keyset_at_or_below(keyset[1:], values[1:])
    return f"{column} <= {lit} AND ({column} < {lit} OR ({rest}))"


def keyset_equal(keyset: Sequence[CursorColumnLike], values: Sequence[Any]) -> str:
    """Every keyset column equal to its value (NULL-safe)."""
    return " AND ".join(f"{quote_mysql(c.name)} <=> {literal(c, v)}" for c, v in zip(keyset, values, strict=True))
