"""Logical column types: what a warehouse column holds, before a dialect names it.

The engine's type map (``engine/typemap.py``) decides the logical type of each source column;
each warehouse dialect renders it (``RedshiftDialect.physical_type``) and owns its limits. This
module depends on nothing else in the package, so both sides can import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol

OversizePolicy = Literal["fail", "truncate"]


class Kind(StrEnum):
    """Warehouse-neutral type families; dialects render them (``VARCHAR`` is bytes on Redshift)."""

    SMALLINT = "smallint"
    INTEGER = "integer"
    BIGINT = "bigint"
    DECIMAL = "decimal"
    REAL = "real"
    DOUBLE = "double"
    DATE = "date"
    TIMESTAMP = "timestamp"  # wall-clock, no zone (MySQL DATETIME)
    TIMESTAMPTZ = "timestamptz"  # an instant (MySQL TIMESTAMP), staged as UTC
    VARCHAR = "varchar"  # bounded text; ``length`` in characters as declared at the source
    TEXT = "text"  # unbounded text
    JSON = "json"
    BINARY = "binary"  # ``length`` in bytes, None when unbounded


@dataclass(frozen=True)
class LogicalType:
    """A warehouse column type before a dialect renders it."""

    kind: Kind
    length: int | None = None
    precision: int | None = None
    scale: int | None = None

    def __str__(self) -> str:
        if self.kind is Kind.DECIMAL:
            return f"decimal({self.precision},{self.scale})"
        if self.length is not None:
            return f"{self.kind.value}({self.length})"
        return self.kind.value

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind.value, "length": self.length, "precision": self.precision, "scale": self.scale}

    @classmethod
    def from_dict(cls, data: dict) -> LogicalType:
        """The inverse of ``as_dict`` (staged manifests describe their columns this way)."""
        return cls(Kind(data["kind"]), data.get("length"), data.get("precision"), data.get("scale"))


class WarehouseColumnLike(Protocol):
    """What the SQL layer needs to know of a column (``typemap.ColumnMapping`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def logical(self) -> LogicalType: ...


@dataclass(frozen=True)
class WarehouseColumn:
    """A column by name and logical type (for callers without a source mapping)."""

    name: str
    logical: LogicalType
