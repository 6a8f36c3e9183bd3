"""MySQL → Arrow → warehouse types, in one place.

For every source column this module decides three things together, because they only make sense
together:

1. the SELECT expression connectorx runs — chosen so connectorx neither panics nor loses digits;
2. the exact Arrow type of the staged parquet column (``normalize_batch`` casts what connectorx
   returns into it, vectorized);
3. the warehouse *logical* type, which each warehouse dialect renders (``render_type``).

Facts measured on MariaDB 10.11 + connectorx 0.4.6 that shaped the expressions (tests prove each):

- connectorx raises ``PanicException`` (a ``BaseException``) on zero/invalid dates
  ('0000-00-00', '2020-00-15', '2020-02-31' under ALLOW_INVALID_DATES), on TIME outside
  00:00–23:59:59, on GEOMETRY, and on DECIMAL values with more than ~28 significant digits;
- DECIMAL goes through a 96-bit decimal rescaled to scale 10: DECIMAL(30,20) silently loses
  digits, DECIMAL(20,0) = 99999999999999999999 fails. So every DECIMAL is read as text
  (``CAST(c AS CHAR)``) and parsed by Arrow — which measured no slower than the native path;
- TIMESTAMP arrives as naive wall-clock in the session zone and no ``SET time_zone`` can run first;
  ``UNIX_TIMESTAMP(ts_column)`` returns the stored UTC instant whatever the zone;
- ``DATE_ADD(c, INTERVAL 0 DAY)`` turns every invalid DATE/DATETIME into NULL (and keeps valid
  ones, '0001-01-01' and '9999-12-31 23:59:59.999999' included), ~0.1 s per column per 2 M rows;
- BIT arrives as binary (``CAST(c AS UNSIGNED)`` gives a uint64); YEAR arrives as int16;
  unsigned integers arrive as uint8..uint64; 4-byte UTF-8 text round-trips (utf8mb4 session).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa
import pyarrow.compute as pc

from sync_platform.engine.mysql_sql import quote_mysql
from sync_platform.engine.source_schema import SourceColumn, SourceTable
from sync_platform.errors import DataError

# The logical types and Redshift's limits belong to the warehouse; re-exported here for callers
# that import them from the type map.
from sync_platform.warehouse.redshift_limits import (
    POSTGRES_MAX_IDENTIFIER_BYTES as POSTGRES_MAX_IDENTIFIER_BYTES,
)
from sync_platform.warehouse.redshift_limits import (
    REDSHIFT_MAX_IDENTIFIER_BYTES as REDSHIFT_MAX_IDENTIFIER_BYTES,
)
from sync_platform.warehouse.redshift_limits import (
    REDSHIFT_MAX_JSON_BYTES as REDSHIFT_MAX_JSON_BYTES,
)
from sync_platform.warehouse.redshift_limits import (
    REDSHIFT_MAX_VARBYTE_BYTES as REDSHIFT_MAX_VARBYTE_BYTES,
)
from sync_platform.warehouse.redshift_limits import (
    REDSHIFT_MAX_VARCHAR_BYTES as REDSHIFT_MAX_VARCHAR_BYTES,
)
from sync_platform.warehouse.redshift_limits import (
    OversizeValueError as OversizeValueError,
)
from sync_platform.warehouse.redshift_limits import (
    enforce_redshift_limits as enforce_redshift_limits,
)
from sync_platform.warehouse.redshift_limits import (
    redshift_byte_limit as redshift_byte_limit,
)
from sync_platform.warehouse.redshift_limits import (
    redshift_varbyte_bytes as redshift_varbyte_bytes,
)
from sync_platform.warehouse.redshift_limits import (
    redshift_varchar_bytes as redshift_varchar_bytes,
)
from sync_platform.warehouse.types import Kind as Kind
from sync_platform.warehouse.types import LogicalType as LogicalType
from sync_platform.warehouse.types import OversizePolicy as OversizePolicy

# Prefix the old tool gave to column names starting with a digit (kept for compatibility).
DIGIT_PREFIX = "col_"
# PostgreSQL/Redshift system column names, which a user column cannot take.
SYSTEM_COLUMN_NAMES = frozenset({"oid", "tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"})


class Conversion(StrEnum):
    """How ``normalize_batch`` turns the connectorx column into the staged column."""

    CAST = "cast"  # a plain (safe) Arrow cast, possibly a no-op
    CHECKED_DATE = "checked_date"  # invalid dates already NULL in SQL; count them
    UNIX_MICROS = "unix_micros"  # int64 µs since the epoch; 0 is MySQL's zero TIMESTAMP


class UnsupportedColumnType(DataError, ValueError):
    """A source column type the type map does not know; the message names table, column and type."""


class ColumnNameCollision(DataError, ValueError):
    """Two source columns would get the same warehouse name."""


@dataclass(frozen=True)
class ColumnMapping:
    """Everything about one column: how it is read, staged and typed in the warehouse."""

    source: SourceColumn
    name: str  # warehouse column name (lower-cased; see warehouse_column_name)
    logical: LogicalType
    arrow_type: pa.DataType  # the staged parquet type
    select_sql: str  # MySQL expression connectorx reads (no alias)
    conversion: Conversion = Conversion.CAST
    null_flag_sql: str | None = None  # `c` IS NULL, for nullable CHECKED_DATE columns
    note: str = ""  # why the column is read the way it is (for docs and metadata)

    @property
    def source_name(self) -> str:
        return self.source.name

    @property
    def renamed(self) -> bool:
        return self.name != self.source.name

    @property
    def counts_invalid_dates(self) -> bool:
        return self.conversion is not Conversion.CAST


@dataclass(frozen=True)
class TableMapping:
    """The mappings of a whole table, in source ordinal order."""

    source: SourceTable
    columns: tuple[ColumnMapping, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        """Warehouse column names, in staged order."""
        return tuple(c.name for c in self.columns)

    @property
    def renames(self) -> dict[str, str]:
        """``{source name: warehouse name}`` for every column whose name changed (to store)."""
        return {c.source.name: c.name for c in self.columns if c.renamed}

    @property
    def primary_key(self) -> tuple[str, ...]:
        """The source primary key in warehouse names."""
        return tuple(self.warehouse_name(name) for name in self.source.primary_key)

    @property
    def arrow_schema(self) -> pa.Schema:
        return staged_schema(self.columns)

    @property
    def select_list(self) -> str:
        return select_list(self.columns)

    def warehouse_name(self, source_name: str) -> str:
        wanted = source_name.lower()
        for column in self.columns:
            if column.source.name.lower() == wanted:
                return column.name
        raise KeyError(f"{self.source.qualified_name} has no column {source_name!r}")

    def column(self, warehouse_name: str) -> ColumnMapping:
        for column in self.columns:
            if column.name == warehouse_name:
                return column
        raise KeyError(f"{self.source.qualified_name} has no warehouse column {warehouse_name!r}")

    def normalize(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, dict[str, int]]:
        return normalize_batch(batch, self.columns)


# --------------------------------------------------------------------------- names


def warehouse_column_name(source_name: str, max_bytes: int = REDSHIFT_MAX_IDENTIFIER_BYTES) -> str:
    """The warehouse name of a source column: the explicit rule, so a stored mapping can be checked.

    1. lower-cased (Redshift folds quoted names to lower case anyway);
    2. double quotes and control characters become ``_`` (Redshift identifiers allow only
       printable characters, and its docs exclude ``"`` from quoted names);
    3. a leading digit, or a system column name (``oid``, ``xmin``, ``ctid``…), gets the old
       tool's ``col_`` prefix (``190_time`` → ``col_190_time``, ``oid`` → ``col_oid``);
    4. a name longer than ``max_bytes`` UTF-8 bytes is cut at a character boundary and ends with
       ``_`` + 8 hex digits of a hash of the source name, so long names stay distinct.
    """
    name = re.sub(r'["\x00-\x1f\x7f]', "_", source_name.lower())
    if name[:1].isdigit() or name in SYSTEM_COLUMN_NAMES:
        name = DIGIT_PREFIX + name
    if len(name.encode("utf-8")) > max_bytes:
        digest = hashlib.sha1(source_name.encode("utf-8")).hexdigest()[:8]
        head = name.encode("utf-8")[: max_bytes - 9].decode("utf-8", "ignore")
        name = f"{head}_{digest}"
    return name


def warehouse_column_names(
    source_names: Iterable[str],
    *,
    max_bytes: int = REDSHIFT_MAX_IDENTIFIER_BYTES,
    overrides: Mapping[str, str] | None = None,
    table: str = "",
) -> dict[str, str]:
    """``{source name: warehouse name}`` for a table; stored ``overrides`` win; collisions raise."""
    chosen: dict[str, str] = {}
    stored = {k.lower(): v for k, v in (overrides or {}).items()}
    taken: dict[str, str] = {}
    for source_name in source_names:
        name = stored.get(source_name.lower()) or warehouse_column_name(source_name, max_bytes)
        if name in taken:
            raise ColumnNameCollision(
                f"{table or 'table'}: source columns {taken[name]!r} and {source_name!r} would both be "
                f"warehouse column {name!r}; add an explicit column mapping for one of them"
            )
        taken[name] = source_name
        chosen[source_name] = name
    return chosen


# --------------------------------------------------------------------------- the type map

_INTEGERS: dict[tuple[str, bool], tuple[pa.DataType, Kind]] = {
    ("tinyint", False): (pa.int8(), Kind.SMALLINT),
    ("tinyint", True): (pa.int16(), Kind.SMALLINT),
    ("smallint", False): (pa.int16(), Kind.SMALLINT),
    ("smallint", True): (pa.int32(), Kind.INTEGER),
    ("mediumint", False): (pa.int32(), Kind.INTEGER),
    ("mediumint", True): (pa.int32(), Kind.INTEGER),
    ("int", False): (pa.int32(), Kind.INTEGER),
    ("int", True): (pa.int64(), Kind.BIGINT),
    ("integer", False): (pa.int32(), Kind.INTEGER),
    ("integer", True): (pa.int64(), Kind.BIGINT),
    ("bigint", False): (pa.int64(), Kind.BIGINT),
}
_TEXT_TYPES = {"tinytext", "text", "mediumtext", "longtext"}
_BLOB_BYTES = {"tinyblob": 255, "blob": 65535, "mediumblob": None, "longblob": None}
_SPATIAL_TYPES = {
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
    "geomcollection",
}
# MariaDB's own types, read as their canonical text.
_TEXT_CAST_TYPES = {"uuid": 36, "inet4": 15, "inet6": 39}
MAX_DECIMAL_PRECISION = 38
UNSIGNED_BIGINT = LogicalType(Kind.DECIMAL, precision=20, scale=0)


def map_column(column: SourceColumn, name: str | None = None, *, table: str = "") -> ColumnMapping:
    """The mapping of one source column (``name``: its warehouse name, default by the naming rule)."""
    target = name if name is not None else warehouse_column_name(column.name)
    q = quote_mysql(column.name)
    data_type = column.data_type.lower()

    def mapping(
        logical: LogicalType,
        arrow_type: pa.DataType,
        select_sql: str = q,
        conversion: Conversion = Conversion.CAST,
        note: str = "",
    ) -> ColumnMapping:
        flag = f"{q} IS NULL" if conversion is Conversion.CHECKED_DATE and column.nullable else None
        return ColumnMapping(column, target, logical, arrow_type, select_sql, conversion, flag, note)

    if data_type == "tinyint" and column.is_boolean_like and not column.unsigned:
        return mapping(LogicalType(Kind.SMALLINT), pa.int8(), note="TINYINT(1): values other than 0/1 occur")
    if (data_type, column.unsigned) in _INTEGERS:
        arrow_type, kind = _INTEGERS[(data_type, column.unsigned)]
        return mapping(LogicalType(kind), arrow_type)
    if data_type == "bigint":  # unsigned
        return mapping(UNSIGNED_BIGINT, pa.decimal128(20, 0), note="BIGINT UNSIGNED exceeds BIGINT")
    if data_type in ("decimal", "numeric"):
        precision, scale = column.numeric_precision or 10, column.numeric_scale or 0
        text = f"CAST({q} AS CHAR)"
        if precision > MAX_DECIMAL_PRECISION:
            return mapping(
                LogicalType(Kind.VARCHAR, length=precision + 2),
                pa.string(),
                text,
                note=f"DECIMAL({precision},{scale}) exceeds 38 digits: exact text",
            )
        return mapping(
            LogicalType(Kind.DECIMAL, precision=precision, scale=scale),
            pa.decimal128(precision, scale),
            text,
            note="read as text: connectorx rescales decimals to scale 10 within 28 digits",
        )
    if data_type == "float":
        return mapping(LogicalType(Kind.REAL), pa.float32())
    if data_type in ("double", "real", "double precision"):
        return mapping(LogicalType(Kind.DOUBLE), pa.float64())
    if data_type == "bit":
        bits = column.numeric_precision or 1
        as_int = f"CAST({q} AS UNSIGNED)"
        if bits >= 64:
            return mapping(UNSIGNED_BIGINT, pa.decimal128(20, 0), as_int, note="BIT(64) exceeds BIGINT")
        return mapping(LogicalType(Kind.BIGINT), pa.int64(), as_int)
    if data_type == "year":
        return mapping(LogicalType(Kind.SMALLINT), pa.int16())
    if data_type == "date":
        return mapping(
            LogicalType(Kind.DATE),
            pa.date32(),
            f"DATE_ADD({q}, INTERVAL 0 DAY)",
            Conversion.CHECKED_DATE,
            note="zero/invalid dates become NULL (counted)",
        )
    if data_type == "datetime":
        return mapping(
            LogicalType(Kind.TIMESTAMP),
            pa.timestamp("us"),
            f"DATE_ADD({q}, INTERVAL 0 DAY)",
            Conversion.CHECKED_DATE,
            note="zero/invalid dates become NULL (counted)",
        )
    if data_type == "timestamp":
        return mapping(
            LogicalType(Kind.TIMESTAMPTZ),
            pa.timestamp("us", tz="UTC"),
            f"CAST(UNIX_TIMESTAMP({q}) * 1000000 AS SIGNED)",
            Conversion.UNIX_MICROS,
            note="read as the stored UTC instant, whatever the session time zone",
        )
    if data_type == "time":
        digits = column.datetime_precision or 0
        return mapping(
            LogicalType(Kind.VARCHAR, length=10 + (digits + 1 if digits else 0)),
            pa.string(),
            f"CAST({q} AS CHAR)",
            note="TIME spans ±838:59:59 and Redshift cannot COPY TIME from parquet: text",
        )
    if data_type in ("char", "varchar"):
        return mapping(LogicalType(Kind.VARCHAR, length=max(column.char_max_length or 1, 1)), pa.string())
    if data_type in ("enum", "set"):
        return mapping(LogicalType(Kind.VARCHAR, length=max(column.char_max_length or 1, 1)), pa.string())
    if data_type in _TEXT_TYPES:
        return mapping(LogicalType(Kind.TEXT), pa.string())
    if data_type == "json":
        select = f"CAST({q} AS CHAR)" if column.column_type.lower() == "json" else q
        return mapping(LogicalType(Kind.JSON), pa.string(), select)
    if data_type in ("binary", "varbinary"):
        return mapping(LogicalType(Kind.BINARY, length=max(column.char_max_length or 1, 1)), pa.binary())
    if data_type in _BLOB_BYTES:
        return mapping(LogicalType(Kind.BINARY, length=_BLOB_BYTES[data_type]), pa.binary())
    if data_type in _SPATIAL_TYPES:
        return mapping(LogicalType(Kind.TEXT), pa.string(), f"ST_AsText({q})", note="spatial value as WKT")
    if data_type in _TEXT_CAST_TYPES:
        return mapping(LogicalType(Kind.VARCHAR, length=_TEXT_CAST_TYPES[data_type]), pa.string(), f"CAST({q} AS CHAR)")
    raise UnsupportedColumnType(
        f"{table or 'source table'}.{column.name}: MySQL type {column.column_type!r} is not in the type map "
        "(sync_platform/engine/typemap.py); exclude the column with a custom_sql query or add a rule"
    )


def map_table(
    source: SourceTable,
    *,
    max_identifier_bytes: int = REDSHIFT_MAX_IDENTIFIER_BYTES,
    column_names: Mapping[str, str] | None = None,
) -> TableMapping:
    """Map every column of ``source``; ``column_names`` are stored ``{source: warehouse}`` names."""
    names = warehouse_column_names(
        source.column_names, max_bytes=max_identifier_bytes, overrides=column_names, table=source.qualified_name
    )
    columns = tuple(map_column(c, names[c.name], table=source.qualified_name) for c in source.columns)
    return TableMapping(source, columns)


# --------------------------------------------------------------------------- reading


def select_list(mappings: Sequence[ColumnMapping]) -> str:
    """The SELECT list connectorx runs: each value (and null flag) under a neutral alias.

    Aliases never equal a source column name, so ``ORDER BY `col``` in the page query still sorts
    on the indexed column rather than on an expression with the same name.
    """
    taken = {m.source.name.lower() for m in mappings}
    prefix = "__sp_"
    while any(name.startswith(prefix) for name in taken):
        prefix = "_" + prefix
    parts: list[str] = []
    for index, m in enumerate(mappings):
        parts.append(f"{m.select_sql} AS {quote_mysql(f'{prefix}v{index}')}")
        if m.null_flag_sql is not None:
            parts.append(f"{m.null_flag_sql} AS {quote_mysql(f'{prefix}n{index}')}")
    return ", ".join(parts)


def read_width(mappings: Sequence[ColumnMapping]) -> int:
    """How many columns the SELECT list yields (values plus null flags)."""
    return sum(2 if m.null_flag_sql is not None else 1 for m in mappings)


def staged_schema(mappings: Sequence[ColumnMapping]) -> pa.Schema:
    """The exact Arrow schema of staged parquet (all fields nullable: zero dates become NULL)."""
    return pa.schema([pa.field(m.name, m.arrow_type, nullable=True) for m in mappings])


def normalize_batch(
    batch: pa.RecordBatch | pa.Table, mappings: Sequence[ColumnMapping]
) -> tuple[pa.RecordBatch, dict[str, int]]:
    """Cast a connectorx batch (columns as in ``select_list``) to the staged schema.

    Returns the batch and ``{warehouse column: zero/invalid dates turned NULL}`` (non-zero only).
    Vectorized: one Arrow kernel or two per column.
    """
    if isinstance(batch, pa.Table):
        batch = pa.RecordBatch.from_arrays([c.combine_chunks() for c in batch.columns], names=batch.column_names)
    expected = read_width(mappings)
    if batch.num_columns != expected:
        raise ValueError(
            f"batch has {batch.num_columns} columns but the select list of {len(mappings)} mapped columns "
            f"yields {expected}; was it read with select_list() of the same mappings?"
        )
    arrays: list[pa.Array] = []
    counts: dict[str, int] = {}
    position = 0
    for m in mappings:
        value = batch.column(position)
        position += 1
        flag = None
        if m.null_flag_sql is not None:
            flag = batch.column(position)
            position += 1
        if m.conversion is Conversion.CHECKED_DATE:
            invalid = _invalid_dates(value, flag)
            array = pc.cast(value, m.arrow_type)
        elif m.conversion is Conversion.UNIX_MICROS:
            micros = pc.cast(value, pa.int64())
            zero = pc.equal(micros, 0)
            invalid = int(pc.sum(zero).as_py() or 0)
            if invalid:
                micros = pc.if_else(zero, pa.scalar(None, pa.int64()), micros)
            array = micros.cast(m.arrow_type)
        else:
            invalid = 0
            array = value if value.type == m.arrow_type else pc.cast(value, m.arrow_type)
        if invalid:
            counts[m.name] = invalid
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=staged_schema(mappings)), counts


def _invalid_dates(value: pa.Array, source_is_null: pa.Array | None) -> int:
    """Rows NULL after DATE_ADD(c, INTERVAL 0 DAY) that were not NULL at the source."""
    if value.null_count == 0:
        return 0
    if source_is_null is None:  # NOT NULL column: every NULL was an invalid date
        return value.null_count
    was_not_null = pc.equal(source_is_null, 0)
    return int(pc.sum(pc.and_(pc.is_null(value), was_not_null)).as_py() or 0)
