"""Amazon Redshift's limits, in bytes, and the check of a batch against them before it is staged.

VARCHAR lengths count bytes on Redshift (characters on PostgreSQL), so a value the source holds
can be too long for the column; a COPY failing on one value would stop the whole load, so every
value is checked on the Arrow batch first (``enforce_redshift_limits``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from sync_platform.errors import DataError
from sync_platform.warehouse.types import Kind, LogicalType, OversizePolicy, WarehouseColumnLike

REDSHIFT_MAX_VARCHAR_BYTES = 65535
REDSHIFT_MAX_VARBYTE_BYTES = 1_024_000
# JSON reaches SUPER through JSON_PARSE of a staged VARCHAR, so it has the VARCHAR limit.
REDSHIFT_MAX_JSON_BYTES = REDSHIFT_MAX_VARCHAR_BYTES
# Identifier lengths in bytes: PostgreSQL NAMEDATALEN-1, Redshift 127.
POSTGRES_MAX_IDENTIFIER_BYTES = 63
REDSHIFT_MAX_IDENTIFIER_BYTES = 127
REDSHIFT_MAX_NUMERIC_PRECISION = 38
REDSHIFT_MAX_INTERLEAVED_SORTKEY_COLUMNS = 8


class OversizeValueError(DataError, ValueError):
    """A value longer than the warehouse column can hold, with ``oversize_text: fail``."""

    def __init__(self, table: str, column: str, byte_length: int, limit: int, *, hint: str) -> None:
        self.table = table
        self.column = column
        self.byte_length = byte_length
        self.limit = limit
        super().__init__(
            f"{table}.{column}: a value is {byte_length} bytes long, more than the {limit} bytes "
            f"the Redshift column can hold. {hint}"
        )


def redshift_varchar_bytes(logical: LogicalType) -> int:
    """Redshift VARCHAR width (bytes) of a text column: 4 bytes per declared character, capped."""
    if logical.kind is Kind.VARCHAR and logical.length is not None:
        return min(4 * logical.length, REDSHIFT_MAX_VARCHAR_BYTES)
    return REDSHIFT_MAX_VARCHAR_BYTES


def redshift_varbyte_bytes(logical: LogicalType) -> int:
    """Redshift VARBYTE width of a binary column (declared bytes, capped at VARBYTE's maximum)."""
    if logical.length is not None:
        return min(logical.length, REDSHIFT_MAX_VARBYTE_BYTES)
    return REDSHIFT_MAX_VARBYTE_BYTES


def redshift_byte_limit(logical: LogicalType) -> int | None:
    """The most bytes a value may have in its Redshift column, None when no limit applies."""
    if logical.kind in (Kind.VARCHAR, Kind.TEXT):
        return redshift_varchar_bytes(logical)
    if logical.kind is Kind.JSON:
        return REDSHIFT_MAX_JSON_BYTES
    if logical.kind is Kind.BINARY:
        return redshift_varbyte_bytes(logical)
    return None


def _may_exceed(logical: LogicalType, limit: int) -> bool:
    """False when the declared source length already guarantees the limit (4 bytes per char)."""
    if logical.kind is Kind.VARCHAR and logical.length is not None:
        return 4 * logical.length > limit
    if logical.kind is Kind.BINARY and logical.length is not None:
        return logical.length > limit
    return True


def enforce_redshift_limits(
    batch: pa.RecordBatch,
    mappings: Sequence[WarehouseColumnLike],
    *,
    table: str,
    oversize_text: OversizePolicy = "fail",
) -> tuple[pa.RecordBatch, dict[str, int]]:
    """Check every value against its Redshift column width in bytes, before it is staged.

    ``fail`` raises :class:`OversizeValueError` (table, column, byte length); ``truncate`` cuts
    text at a UTF-8 character boundary (binary at the limit) and returns ``{column: values cut}``.
    JSON is never truncated (cut JSON is not JSON), it always fails.
    """
    counts: dict[str, int] = {}
    arrays = list(batch.columns)
    for index, m in enumerate(mappings):
        limit = redshift_byte_limit(m.logical)
        if limit is None or not _may_exceed(m.logical, limit):
            continue
        column = arrays[index]
        lengths = pc.binary_length(column)
        longest = pc.max(lengths).as_py()
        if longest is None or longest <= limit:
            continue
        if oversize_text == "fail" or m.logical.kind is Kind.JSON:
            hint = (
                "JSON cannot be truncated; exclude or shorten the value at the source."
                if m.logical.kind is Kind.JSON
                else "Set `oversize_text: truncate` on the table to cut such values (they are counted), "
                "or exclude the column with a custom_sql query."
            )
            raise OversizeValueError(table, m.name, int(longest), limit, hint=hint)
        too_long = pc.greater(lengths, limit)
        arrays[index] = _truncate(column, too_long, limit, binary=m.logical.kind is Kind.BINARY)
        counts[m.name] = int(pc.sum(too_long).as_py() or 0)
    if not counts:
        return batch, counts
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema), counts


def _truncate(column: pa.Array, mask: pa.Array, limit: int, *, binary: bool) -> pa.Array:
    """Replace the masked values by their first ``limit`` bytes (text: whole characters only)."""
    long_values = pc.filter(column, mask).to_pylist()
    if binary:
        cut: list[object] = [v[:limit] for v in long_values]
    else:
        cut = [v.encode("utf-8")[:limit].decode("utf-8", "ignore") for v in long_values]
    return pc.replace_with_mask(column, mask, pa.array(cut, type=column.type))
