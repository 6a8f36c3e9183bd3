"""The warehouse SQL layer: one generator, two small dialects (PostgreSQL and Redshift).

A leaf: nothing here imports the engine. The logical column types live in ``types``, Redshift's
limits in ``redshift_limits``; what a warehouse can do is data (``WarehouseDialect.capabilities``).

Pick a dialect with ``dialect_for(connection.dialect)``; every statement the loader runs comes
from it, so Redshift/PostgreSQL differences never leak into the engine as ``if`` chains.
"""

from __future__ import annotations

from sync_platform.warehouse.dialect import (
    LEDGER_TABLE,
    BatchLoad,
    Capabilities,
    EvolutionPlan,
    ExistingColumn,
    IncompatibleSchemaChange,
    LedgerEntry,
    LoadPlan,
    LoadStep,
    PhysicalType,
    SchemaChange,
    Statement,
    TableLayout,
    TableRef,
    TargetState,
    WarehouseColumn,
    WarehouseDialect,
    quote_identifier,
)
from sync_platform.warehouse.postgres import (
    BINARY_HEADER,
    BINARY_TRAILER,
    PostgresDialect,
    arrow_batch_to_copy_bytes,
    copy_binary,
    copy_text,
)
from sync_platform.warehouse.redshift import (
    CopyStatement,
    LayoutError,
    MissingCopyAuthorization,
    RedshiftDialect,
    S3Authorization,
)
from sync_platform.warehouse.types import Kind, LogicalType

__all__ = [
    "BINARY_HEADER",
    "BINARY_TRAILER",
    "LEDGER_TABLE",
    "BatchLoad",
    "Capabilities",
    "CopyStatement",
    "EvolutionPlan",
    "ExistingColumn",
    "IncompatibleSchemaChange",
    "Kind",
    "LayoutError",
    "LedgerEntry",
    "LoadPlan",
    "LoadStep",
    "LogicalType",
    "MissingCopyAuthorization",
    "PhysicalType",
    "PostgresDialect",
    "RedshiftDialect",
    "S3Authorization",
    "SchemaChange",
    "Statement",
    "TableLayout",
    "TableRef",
    "TargetState",
    "WarehouseColumn",
    "WarehouseDialect",
    "arrow_batch_to_copy_bytes",
    "copy_binary",
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
