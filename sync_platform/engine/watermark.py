"""Watermarks: the keyset position of the last row synced, as plain, exactly round-tripping data.

A watermark holds the values of the keyset columns of the last row read (e.g. ``updated_at`` and
``id``), in keyset order. Values keep their exact type through JSON: datetimes keep microseconds
and their time zone, big integers stay integers, decimals stay decimals.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

CursorValue = dt.datetime | dt.date | int | Decimal | str | float | None


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
        if self.is_empty:
            return "start (no watermark)"
        parts = [f"{k}={v.isoformat(sep=' ') if isinstance(v, dt.datetime) else v}" for k, v in self.position.items()]
        return ", ".join(parts)


def later(a: Watermark, b: Watermark, columns: tuple[str, ...]) -> Watermark:
    """The watermark further along the keyset (a missing or incomparable one loses)."""
    va, vb = a.values(columns), b.values(columns)
    if va is None:
        return b
    if vb is None:
        return a
    try:
        return b if _key(vb) > _key(va) else a
    except TypeError:
        return a


def _key(values: tuple[CursorValue, ...]) -> tuple[Any, ...]:
    # NULLs sort first, as in MySQL; aware and naive datetimes never mix within one column.
    return tuple(_rank(v) for v in values)


def _rank(value: CursorValue) -> tuple[int, Any]:
    """A zero date (kept as the server's text, '0000-00-00 …') is the lowest position after NULL."""
    if value is None:
        return (0, 0)
    if is_zero_date(value):
        return (1, 0)
    return (2, value)


def is_zero_date(value: Any) -> bool:
    """The server's text of a zero DATE / DATETIME / TIMESTAMP value, which no Python date can hold."""
    return isinstance(value, str) and value.startswith("0000-00-00")
