"""The MySQL side of the canonical row text: each value rendered exactly as the warehouse renders it.

The warehouse twin is ``WarehouseDialect.canonical_text`` (sync_platform/warehouse/dialect.py). Both
render a value by its warehouse *logical* type from the type map, so what is compared is what the
sync would have loaded: decimals at their scale, DATETIME as ``YYYY-MM-DD HH:MM:SS[.ffffff]``
(PostgreSQL's text, see ``timestamp_as_text``; all six digits for Redshift), TIMESTAMP as
microseconds since the epoch (the instant), zero dates as NULL (the type map's
``DATE_ADD(c, INTERVAL 0 DAY)`` read expression), floats at 6 / 15 significant digits,
binary as its MD5, text as ``<length>:<text>`` (unbounded text as its MD5 for Redshift, whose
VARCHAR ends at 65535 bytes), JSON by presence only (each side normalizes JSON text its own way).
"""

from __future__ import annotations

from collections.abc import Sequence

from sync_platform.engine.typemap import ColumnMapping, Kind
from sync_platform.warehouse.dialect import DOUBLE_DIGITS, FLOAT_DIGITS, ROW_HASH_HEX_DIGITS


def float_text(value_sql: str, digits: int) -> str:
    """``<integer mantissa>e<exponent>`` at ``digits`` significant digits (see ``WarehouseDialect.float_text``)."""
    x = f"CAST({value_sql} AS DOUBLE)"
    e = f"FLOOR(LOG10(ABS({x})))"
    scaled = f"(CASE WHEN {e} >= 0 THEN {x} / POW(10, {e}) ELSE {x} * POW(10, -{e}) END)"
    mantissa = f"CAST(FLOOR({scaled} * POW(10, {digits - 1}) + 0.5) AS SIGNED)"
    return (
        f"CASE WHEN {x} IS NULL THEN NULL WHEN {x} = 0 THEN '0' ELSE "
        f"CONCAT(CAST({mantissa} AS CHAR), 'e', CAST(CAST({e} AS SIGNED) AS CHAR)) END"
    )


def canonical_text(column: ColumnMapping, *, hash_text: bool = False, timestamp_as_text: bool = False) -> str:
    """The MySQL expression of one column's canonical text inside CONCAT (NULL for NULL or a zero date).

    ``hash_text``: unbounded text as its MD5, as the warehouse renders it (``hashes_unbounded_text``).
    ``timestamp_as_text``: DATETIME as PostgreSQL prints a timestamp (``timestamp_as_text``): the
    CAST's text, the fraction's trailing zeros and a bare '.' trimmed.
    """
    kind, value = column.logical.kind, column.select_sql
    if kind in (Kind.SMALLINT, Kind.INTEGER, Kind.BIGINT):
        # Inside CONCAT a number is its decimal text: no CAST needed (it costs per row). YEAR prints as
        # four digits; + 0 makes it a number (0 stays 0).
        return f"(({value}) + 0)" if column.source.data_type.lower() == "year" else value
    if kind is Kind.DECIMAL:  # the type map reads decimals as text already (CAST AS CHAR)
        return value if value.endswith(" AS CHAR)") else f"CAST({value} AS CHAR)"
    if kind is Kind.REAL:
        return float_text(value, FLOAT_DIGITS)
    if kind is Kind.DOUBLE:
        return float_text(value, DOUBLE_DIGITS)
    if kind is Kind.DATE:
        return f"DATE_FORMAT({value}, '%Y-%m-%d')"
    if kind is Kind.TIMESTAMP:
        if not timestamp_as_text:
            return f"DATE_FORMAT({value}, '%Y-%m-%d %H:%i:%s.%f')"
        text = f"CAST({value} AS CHAR)"  # as many fraction digits as the column declares
        if not column.source.datetime_precision:
            return text
        return f"TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {text}))"  # the seconds end the '.' trim
    if kind is Kind.TIMESTAMPTZ:  # the read expression is microseconds since the epoch; 0 is the zero date
        return f"CAST(NULLIF({value}, 0) AS CHAR)"
    if kind is Kind.JSON:
        return f"IF({value} IS NULL, NULL, 'j')"
    if kind is Kind.BINARY:
        return f"MD5(LOWER(HEX({value})))"
    text = value if (column.source.character_set or "utf8mb4") == "utf8mb4" else f"CONVERT({value} USING utf8mb4)"
    if kind is Kind.TEXT and hash_text:
        return f"MD5({text})"
    return f"CONCAT(CHAR_LENGTH({text}), ':', {text})"  # after its length: a '|' inside cannot shift a column


def row_text(columns: Sequence[ColumnMapping], *, hash_text: bool = False, timestamp_as_text: bool = False) -> str:
    """One text per row: canonical texts joined by '|' (NULL as '')."""
    parts = [
        f"COALESCE({canonical_text(c, hash_text=hash_text, timestamp_as_text=timestamp_as_text)}, '')" for c in columns
    ]
    return "CONCAT(" + ", '|', ".join(parts) + ")"


def row_hash(columns: Sequence[ColumnMapping], *, hash_text: bool = False, timestamp_as_text: bool = False) -> str:
    """60 bits of the row text's SHA-256 as an unsigned integer (the warehouse takes the same 15 hex digits).

    SHA-256 rather than MD5: MariaDB computes it in under half the time (``python -m bench.hash_cost``),
    and this runs on the production source for every row; PostgreSQL and Redshift cost the same either way.
    """
    text = row_text(columns, hash_text=hash_text, timestamp_as_text=timestamp_as_text)
    return f"CAST(CONV(SUBSTRING(SHA2({text}, 256), 1, {ROW_HASH_HEX_DIGITS}), 16, 10) AS UNSIGNED)"
