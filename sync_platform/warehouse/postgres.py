"""PostgreSQL: the local warehouse and Redshift's stand-in in tests.

Differences from the shared SQL: DISTINCT ON for the per-key dedup, keys declared (and
enforced), and the stage filled by ``COPY … FROM STDIN`` in CSV produced straight from Arrow by
``arrow_batch_to_copy_bytes``.

CSV was chosen because pyarrow writes it in C++ (about 0.4 s per million 12-column rows here) and
its conventions match PostgreSQL's CSV exactly: NULL is an unquoted empty field, an empty string
is a quoted ``""``, every string is quoted. Two column kinds need help first:
- ``timestamp[us, tz]``: pyarrow's CSV formatting of zoned timestamps goes through the time-zone
  database (~40× slower), so they are written as naive UTC text with a ``+00`` suffix;
- binary: PostgreSQL's CSV takes ``bytea`` as ``\\x`` + hex, built here with numpy (no row loop).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from sync_platform.warehouse.dialect import WarehouseColumnLike, WarehouseDialect

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_HEX_PAIRS = np.stack([_HEX[np.arange(256) >> 4], _HEX[np.arange(256) & 15]], axis=1)  # (256, 2)


class PostgresDialect(WarehouseDialect):
    """PostgreSQL 12+."""

    name = "postgres"
    max_identifier_bytes = 63
    declares_primary_key = True
    current_timestamp_sql = "now()"
    max_numeric_precision = 1000

    def deduplicated_rows(
        self, stage: str, columns: Sequence[WarehouseColumnLike], key: Sequence[str], order_by: Sequence[str]
    ) -> str:
        """DISTINCT ON the key, ordered by the cursor DESC NULLS LAST: the latest row per key."""
        ordering = [c for c in order_by if c not in key]
        order = ", ".join([*(self.quote(k) for k in key), *(f"{self.quote(c)} DESC NULLS LAST" for c in ordering)])
        return (
            f"SELECT DISTINCT ON ({self.column_list(key)}) {self._insert_select_list(columns)} "
            f"FROM {self.quote(stage)} ORDER BY {order}"
        )

    def copy_from_stdin(self, stage: str, columns: Sequence[WarehouseColumnLike | str]) -> str:
        """COPY for ``cursor.copy_expert``; feed it ``arrow_batch_to_copy_bytes`` output."""
        return f"COPY {self.quote(stage)} ({self.column_list(columns)}) FROM STDIN WITH (FORMAT csv)"


def arrow_batch_to_copy_bytes(batch: pa.RecordBatch | pa.Table) -> bytes:
    """One Arrow batch as PostgreSQL CSV for ``COPY … FROM STDIN WITH (FORMAT csv)``, columns in order.

    Exact for every staged type: NULL vs empty string, decimals, float32/64 (shortest round-trip
    text), dates and timestamps from year 1 to 9999, zoned timestamps (as UTC), JSON text, bytea.
    """
    sink = io.BytesIO()
    write_copy_csv(batch, sink)
    return sink.getvalue()


def write_copy_csv(batch: pa.RecordBatch | pa.Table, sink: io.RawIOBase | io.BufferedIOBase | str) -> None:
    """Like ``arrow_batch_to_copy_bytes`` but writes into a file-like object (for streaming)."""
    arrays = [_copy_ready(column) for column in batch.columns]
    table = pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(arrays))])
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, batch_size=65536))


def _copy_ready(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    kind = column.type
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        naive_utc = column.cast(pa.timestamp(kind.unit))  # same instants, read as UTC wall-clock
        return pc.binary_join_element_wise(pc.cast(naive_utc, pa.string()), pa.scalar("+00"), "")
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        if isinstance(column, pa.ChunkedArray):
            return pa.chunked_array([_bytea_hex(chunk) for chunk in column.chunks], type=pa.large_string())
        return _bytea_hex(column)
    return column


def _bytea_hex(array: pa.Array) -> pa.Array:
    """``\\x``-hex text of each binary value (vectorized; NULLs stay NULL)."""
    if not (pa.types.is_large_binary(array.type)):
        array = array.cast(pa.large_binary())
    count = len(array)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + count + 1]
    data_buffer = array.buffers()[2]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.empty(0, np.uint8)
    start = int(offsets[0]) if count else 0
    lengths = np.diff(offsets)
    raw = data[start : int(offsets[-1])] if count else data[:0]

    new_offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(2 + 2 * lengths, out=new_offsets[1:])
    out = np.empty(int(new_offsets[-1]), dtype=np.uint8)
    heads = new_offsets[:-1]
    out[heads] = ord("\\")
    out[heads + 1] = ord("x")
    if raw.size:
        owner = np.repeat(np.arange(count), lengths)
        position = heads[owner] + 2 + 2 * (np.arange(raw.size) - (offsets[owner] - start))
        pairs = _HEX_PAIRS[raw]
        out[position] = pairs[:, 0]
        out[position + 1] = pairs[:, 1]
    validity = pc.is_valid(array).buffers()[1] if array.null_count else None
    return pa.Array.from_buffers(
        pa.large_string(), count, [validity, pa.py_buffer(new_offsets), pa.py_buffer(out)], null_count=array.null_count
    )
