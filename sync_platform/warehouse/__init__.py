"""The warehouse SQL layer: one generator, two small dialects (PostgreSQL and Redshift).

Pick a dialect with ``dialect_for(connection.dialect)``; every statement the loader runs comes
from it, so Redshift/PostgreSQL differences never leak into the engine as ``if`` chains.
"""

from __future__ import annotations

from sync_platform.warehouse.dialect import (
    LEDGER_TABLE,
    EvolutionPlan,
    ExistingColumn,
    IncompatibleSchemaChange,
    LedgerEntry,
    PhysicalType,
    ReplacePlan,
    SchemaChange,
    Statement,
    TableLayout,
    TableRef,
    WarehouseColumn,
    WarehouseDialect,
    quote_identifier,
)
from sync_platform.warehouse.postgres import PostgresDialect, arrow_batch_to_copy_bytes, copy_text
from sync_platform.warehouse.redshift import CopyStatement, LayoutError, RedshiftDialect, S3Authorization

__all__ = [
    "LEDGER_TABLE",
    "CopyStatement",
    "EvolutionPlan",
    "ExistingColumn",
    "IncompatibleSchemaChange",
    "LayoutError",
    "LedgerEntry",
    "PhysicalType",
    "PostgresDialect",
    "RedshiftDialect",
    "ReplacePlan",
    "S3Authorization",
    "SchemaChange",
    "Statement",
    "TableLayout",
    "TableRef",
    "WarehouseColumn",
    "WarehouseDialect",
    "arrow_batch_to_copy_bytes",
    "copy_text",
    "dialect_for",
    "quote_identifier",
]

_DIALECTS: dict[str, type[WarehouseDialect]] = {"postgres": PostgresDialect, "redshift": RedshiftDialect}


def dialect_for(name: str) -> WarehouseDialect:
    """The dialect for a target connection's ``dialect`` (``postgres`` or ``redshift``)."""
    try:
        return _DIALECTS[name.lower()]()
    except KeyError:
        raise ValueError(f"unknown warehouse dialect {name!r}; expected one of {sorted(_DIALECTS)}") from None
