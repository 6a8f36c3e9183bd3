"""Watermarks: the keyset position of the last row synced, as plain, exactly round-tripping data.

A watermark holds the values of the keyset columns of the last row read (e.g. ``updated_at`` and
``id``), in keyset order. Values keep their exact type through JSON: datetimes keep microseconds
and their time zone, big integers stay integers, decimals stay decimals.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from sync_platform.errors import ConfigurationError

if TYPE_CHECKING:  # the manual-position helpers only read attributes of these
    from sync_platform.engine.shape import TableShape
    from sync_platform.engine.strategies import CursorColumn
    from sync_platform.engine.typemap import ColumnMapping

CursorValue = dt.datetime | dt.date | int | Decimal | str | float | None
PositionOrder = Mapping[str, Callable[[Any], Any]]  # column → sort key of its source collation (text columns)

TIMESTAMP_FORMAT = "YYYY-MM-DD HH:MM:SS"
# Strict: the older tool's documented form, optionally with microseconds; no offset (values are UTC / as stored).
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?$")


class ManualPositionError(ConfigurationError):
    """A position given by hand (``watermark set --timestamp/--id``) that does not fit the table."""


def encode_value(value: CursorValue) -> Any:
    """A JSON value that :func:`decode_value` turns back into exactly ``value``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, dt.datetime):
        return {"datetime": value.isoformat(timespec="microseconds")}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, float):
        return {"float": repr(value)}
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    raise TypeError(f"cannot store a cursor value of type {type(value).__name__}")


def decode_value(data: Any) -> Any:
    if isinstance(data, dict) and len(data) == 1:
        ((kind, text),) = data.items()
        decoders = {
            "datetime": dt.datetime.fromisoformat,
            "date": dt.date.fromisoformat,
            "decimal": Decimal,
            "float": float,
            "hex": bytes.fromhex,
        }
        if kind in decoders:
            return decoders[kind](text)
    return data


@dataclass(frozen=True)
class Watermark:
    """Where the next run continues.

    ``position`` maps keyset columns to the last row's values, in keyset order (empty: start from the
    beginning). ``manual_at`` is set when a person set or reset it: staged batches created before
    that moment no longer move the resume point.
    """

    position: dict[str, CursorValue] = field(default_factory=dict)
    manual_at: dt.datetime | None = None
    note: str | None = None

    @property
    def is_empty(self) -> bool:
        return not self.position or all(v is None for v in self.position.values())

    def values(self, columns: tuple[str, ...]) -> tuple[CursorValue, ...] | None:
        """The position as a tuple for ``columns``, or None if it lacks any of them."""
        if self.is_empty or any(c not in self.position for c in columns):
            return None
        return tuple(self.position[c] for c in columns)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"position": {k: encode_value(v) for k, v in self.position.items()}}
        if self.manual_at:
            data["manual_at"] = self.manual_at.isoformat(timespec="microseconds")
        if self.note:
            data["note"] = self.note
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Watermark:
        if not data:
            return cls()
        manual = data.get("manual_at")
        return cls(
            position={k: decode_value(v) for k, v in (data.get("position") or {}).items()},
            manual_at=dt.datetime.fromisoformat(manual) if manual else None,
            note=data.get("note"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> Watermark:
        return cls.from_dict(json.loads(text)) if text else cls()

    def describe(self) -> str:
        """The position in words. A NULL tie-breaker (set by hand with --timestamp alone) reads as
        "every row at that timestamp", never as ``id=None``."""
        if self.is_empty:
            return "start (no watermark)"
        shown = [(k, v) for k, v in self.position.items() if v is not None]
        parts = [f"{k}={v.isoformat(sep=' ') if isinstance(v, dt.datetime) else v}" for k, v in shown]
        text = ", ".join(parts)
        if len(shown) < len(self.position) and shown:
            text += f" (after every row with that {shown[-1][0]})"
        return text


def later(a: Watermark, b: Watermark, columns: tuple[str, ...], order: PositionOrder | None = None) -> Watermark:
    """The watermark further along the keyset (a missing or incomparable one loses).

    ``order`` gives text columns the sort key of their source collation (``TableShape.position_order``):
    MySQL pages ``'a'`` before ``'B'`` under ``utf8mb4_general_ci``, although ``'B' < 'a'`` in Python.
    """
    va, vb = a.values(columns), b.values(columns)
    if va is None:
        return b
    if vb is None:
        return a
    try:
        return b if _key(vb, columns, order) > _key(va, columns, order) else a
    except TypeError:
        return a


def _key(
    values: tuple[CursorValue, ...], columns: tuple[str, ...], order: PositionOrder | None = None
) -> tuple[Any, ...]:
    # NULLs sort first, as in MySQL; aware and naive datetimes never mix within one column.
    return tuple(_rank(v, (order or {}).get(c)) for v, c in zip(values, columns, strict=True))


def _rank(value: CursorValue, sort_key: Callable[[Any], Any] | None = None) -> tuple[int, Any]:
    """A zero date (kept as the server's text, '0000-00-00 …') is the lowest position after NULL."""
    if value is None:
        return (0, 0)
    if is_zero_date(value):
        return (1, 0)
    return (2, sort_key(value) if sort_key is not None else value)


def is_zero_date(value: Any) -> bool:
    """The server's text of a zero DATE / DATETIME / TIMESTAMP value, which no Python date can hold."""
    return isinstance(value, str) and value.startswith("0000-00-00")


# --------------------------------------------------------------------------- positions set by hand


def parse_timestamp(text: str) -> dt.datetime:
    """``--timestamp``: ``YYYY-MM-DD HH:MM:SS[.ffffff]``, nothing looser (a typo must not move a watermark)."""
    value = text.strip()
    if _TIMESTAMP.match(value):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ManualPositionError(
        f"--timestamp {text!r} is not a valid date and time: expected '{TIMESTAMP_FORMAT}' "
        "(optionally .ffffff), in UTC for TIMESTAMP columns and as stored for DATETIME columns, without an offset"
    )


def _fitted(column: ColumnMapping, value: Any, flag: str, table: str) -> CursorValue:
    """``value`` as the engine reads the column back (the staged Arrow type): int, Decimal, ... ."""
    try:
        return pa.array([value], type=column.arrow_type)[0].as_py()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        raise ManualPositionError(
            f"{table}: {flag} {value} does not fit column {column.source_name} ({column.source.column_type})"
        ) from None


def timestamp_value(column: ColumnMapping, cursor: CursorColumn, value: dt.datetime, table: str) -> CursorValue:
    """The ``--timestamp`` value in the exact form the engine writes for this cursor column."""
    where = f"{table}: {cursor.name} is {column.source.column_type}"
    if cursor.kind == "datetime":
        return value  # DATETIME holds wall-clock values with no zone: compared as written
    if cursor.kind == "timestamp":
        return value.replace(tzinfo=dt.UTC)  # TIMESTAMP is an instant: the engine keeps it as aware UTC
    if cursor.kind == "date":
        if value.time() != dt.time(0):
            raise ManualPositionError(f"{where}: give --timestamp 'YYYY-MM-DD 00:00:00' (a date has no time of day)")
        return value.date()
    if cursor.kind == "unix":
        if value.microsecond:
            raise ManualPositionError(f"{where}, holding epoch seconds: give --timestamp in whole seconds")
        return _fitted(column, int(value.replace(tzinfo=dt.UTC).timestamp()), "--timestamp", table)
    raise ManualPositionError(
        f"{where}: --timestamp cannot be mapped onto it (supported: DATETIME, TIMESTAMP, DATE, integer epoch)"
    )


def _id_value(column: ColumnMapping, cursor: CursorColumn, value: int, table: str) -> CursorValue:
    if cursor.kind in ("integer", "decimal"):
        return _fitted(column, value, "--id", table)
    if cursor.kind == "string":
        return str(value)  # the engine pages a text key in its collation order; the literal is the text
    raise ManualPositionError(f"{table}: {cursor.name} is {column.source.column_type}: --id cannot be mapped onto it")


def manual_position(
    table: str, shape: TableShape, timestamp: dt.datetime | None, ident: int | None
) -> dict[str, CursorValue]:
    """The keyset position ``--timestamp`` / ``--id`` mean for this table's strategy.

    The timestamp goes to the cursor column, the id to the single tie-breaker or id column; a tie-breaker
    left unset is NULL, so the next run reads strictly after the timestamp (the older tool's semantics).
    Raises :class:`ManualPositionError` when they do not fit.
    """
    strategy = shape.choice.strategy
    keyset = shape.keyset
    names = ", ".join(c.name for c in keyset)
    about = f"{table} uses {strategy}" + (f" on ({names})" if names else "")
    if strategy == "full_sync" or not keyset:
        raise ManualPositionError(f"{about}: it reads the whole table on every run, so it has no watermark to set")
    ts_column = keyset[0] if shape.choice.timestamp_column == keyset[0].name and strategy != "id_only" else None
    ids = keyset[1:] if ts_column else keyset
    if timestamp is not None and ts_column is None:
        raise ManualPositionError(f"{about}: it has no timestamp cursor, so --timestamp does not apply; use --id")
    if ident is not None and len(ids) != 1:
        if not ids:
            raise ManualPositionError(
                f"{about}: it has no id column to break ties, so --id does not apply; use --timestamp alone"
            )
        hint = "; use --timestamp alone" if ts_column else ""
        raise ManualPositionError(
            f"{about}: --id sets one column, but the position is on ({', '.join(c.name for c in ids)}){hint}"
        )
    if ts_column is not None and timestamp is None:
        raise ManualPositionError(
            f"{about}: it resumes in {ts_column.name} order, so --timestamp is required "
            f"(--id only orders rows sharing one {ts_column.name} value)"
        )
    if ts_column is None and ident is None:
        raise ManualPositionError(f"{about}: give --id")

    def mapping(cursor: CursorColumn) -> ColumnMapping:
        return shape.mapping.column(shape.mapping.warehouse_name(cursor.name))

    position: dict[str, CursorValue] = {}
    if ts_column is not None and timestamp is not None:
        position[ts_column.name] = timestamp_value(mapping(ts_column), ts_column, timestamp, table)
    for cursor in ids:
        position[cursor.name] = _id_value(mapping(cursor), cursor, ident, table) if ident is not None else None
    return position


def moves_back(
    wanted: Watermark, current: Watermark, columns: tuple[str, ...], order: PositionOrder | None = None
) -> bool:
    """Whether the next run would read again rows that ``current`` has already passed.

    A NULL tie-breaker reads strictly after its cursor value (``ts > T``), so it sorts after every id
    there, not before as in :func:`later`. ``order``: as in :func:`later`.
    """
    new, old = wanted.values(columns), current.values(columns)
    if new is None or old is None:
        return False
    try:
        new_key, old_key = _collated(new, columns, order), _collated(old, columns, order)
        if new_key[0] != old_key[0]:
            return new_key[0] < old_key[0]
        if None in new[1:]:
            return False
        return None in old[1:] or new_key[1:] < old_key[1:]
    except TypeError:  # incomparable values (a changed column type): nothing to warn about reliably
        return False


def _collated(
    values: tuple[CursorValue, ...], columns: tuple[str, ...], order: PositionOrder | None
) -> tuple[Any, ...]:
    """The values with each text column's collation sort key applied (NULLs stay NULL)."""
    keys = order or {}
    return tuple(v if v is None or c not in keys else keys[c](v) for v, c in zip(values, columns, strict=True))
