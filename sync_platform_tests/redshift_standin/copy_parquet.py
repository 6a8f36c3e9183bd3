"""Redshift's ``COPY … FROM 's3://…' … FORMAT AS PARQUET [MANIFEST]``, done by the stand-in.

The statement is parsed and checked as Redshift checks it, the manifest and the parquet files are
read from the S3 server the stand-in was started with, parquet columns are mapped BY POSITION
onto the table's columns with Redshift's type rules, and every row is turned into PostgreSQL COPY
text that the session streams into the table with ``COPY … FROM STDIN`` on the same backend (so
temporary stage tables work). Values are checked on the way: VARCHAR lengths in bytes and the
4 MB row limit, with Redshift's error texts.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sync_platform_tests.redshift_standin.rules import Refusal, refused
from sync_platform_tests.redshift_standin.sql import Token, matching_paren, name_sql, qualified_name_at, significant

MAX_ROW_BYTES = 4 * 1024 * 1024
COLUMNAR_DOC = "https://docs.aws.amazon.com/redshift/latest/dg/copy-usage_notes-copy-from-columnar.html"
# Parameters Redshift accepts with FORMAT AS PARQUET (the columnar page lists them).
PARQUET_PARAMETERS = {
    "FROM",
    "IAM_ROLE",
    "CREDENTIALS",
    "MANIFEST",
    "STATUPDATE",
    "EXPLICIT_IDS",
    "ACCEPTINVCHARS",
    "FILLRECORD",
    "FORMAT",
    "PARQUET",
    "SERIALIZETOJSON",
    "COMPUPDATE",
}


CopyRefused = Refusal  # COPY refused the way Redshift refuses it


@dataclass
class CopyCommand:
    table: list[str]
    column_list: list[str] | None
    source: str  # s3://… or STDIN/STDOUT word
    direction: str  # FROM | TO
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def table_sql(self) -> str:
        return name_sql(self.table)

    @property
    def table_text(self) -> str:
        return ".".join(self.table)


def parse_copy(tokens: list[Token]) -> CopyCommand:
    sig = significant(tokens)
    if len(sig) < 4:
        raise CopyRefused("42601", "syntax error at end of input")
    table, i = qualified_name_at(sig, 1)
    column_list = None
    if i < len(sig) and sig[i].text == "(":
        end = matching_paren(sig, i)
        column_list = [t.name for t in sig[i + 1 : end] if t.name]
        i = end + 1
    if i >= len(sig) or sig[i].upper not in ("FROM", "TO"):
        if i >= len(sig):
            raise Refusal("42601", "syntax error at end of input")
        raise Refusal("42601", f'syntax error at or near "{sig[i].text}"', position=sig[i].offset + 1)
    direction = sig[i].upper
    i += 1
    source_token = sig[i]
    source = source_token.string_value if source_token.string_value is not None else source_token.upper
    i += 1
    options: dict[str, Any] = {}
    while i < len(sig):
        word = sig[i].upper
        if not word:
            raise Refusal("42601", f'syntax error at or near "{sig[i].text}"', position=sig[i].offset + 1)
        i += 1
        if word == "FORMAT":
            if i < len(sig) and sig[i].upper == "AS":
                i += 1
            options["FORMAT"] = sig[i].upper
            i += 1
            continue
        if word in ("PARQUET", "ORC", "CSV", "JSON", "AVRO"):
            options["FORMAT"] = word
            continue
        if i < len(sig) and sig[i].upper == "AS" and word in ("CREDENTIALS", "REGION", "DELIMITER", "IAM_ROLE"):
            i += 1
        if i < len(sig) and (sig[i].string_value is not None or sig[i].kind == "number"):
            options[word] = sig[i].string_value if sig[i].string_value is not None else sig[i].text
            i += 1
        elif word == "IAM_ROLE" and i < len(sig) and sig[i].upper == "DEFAULT":
            options[word] = "default"
            i += 1
        elif word in ("STATUPDATE", "COMPUPDATE") and i < len(sig) and sig[i].upper in ("ON", "OFF", "TRUE", "FALSE"):
            options[word] = sig[i].upper
            i += 1
        else:
            options[word] = True
    return CopyCommand(table, column_list, source, direction, options)


def check_parquet_copy(command: CopyCommand) -> None:
    """Refuse what Redshift refuses before it reads a byte (authorization, parameters, column list)."""
    options = command.options
    fmt = options.get("FORMAT")
    if fmt != "PARQUET":
        raise CopyRefused(
            "0A000",
            f"the Redshift stand-in only emulates COPY … FORMAT AS PARQUET from S3 (got {fmt or 'text/CSV'})",
        )
    if not command.source.startswith("s3://"):
        raise CopyRefused("XX000", f"Invalid S3 URL '{command.source}': COPY FROM needs s3://bucket/key")
    for name in ("REGION", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "SESSION_TOKEN"):
        if name in options:
            raise refused("copy_parquet_parameters", name=name)
    if command.column_list is not None:
        raise refused("copy_parquet_column_list")
    unsupported = sorted(set(options) - PARQUET_PARAMETERS)
    if unsupported:
        raise refused("copy_parquet_parameters", name=unsupported[0])
    if "IAM_ROLE" not in options and "CREDENTIALS" not in options:
        raise refused("copy_authorization")
    credentials = options.get("CREDENTIALS")
    if isinstance(credentials, str) and not (
        "aws_iam_role=" in credentials
        or ("aws_access_key_id=" in credentials and "aws_secret_access_key=" in credentials)
    ):
        raise CopyRefused(
            "XX000",
            "Invalid credentials. Must be of the format: credentials 'aws_iam_role=...' or "
            "'aws_access_key_id=...;aws_secret_access_key=...[;token=...]'",
        )
    role = options.get("IAM_ROLE")
    if isinstance(role, str) and role != "default" and not role.startswith("arn:aws:iam::"):
        raise CopyRefused("XX000", f"Invalid IAM_ROLE '{role}': expected arn:aws:iam::<account>:role/<name> or default")


def _split_s3(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


@dataclass(frozen=True)
class TargetColumn:
    name: str
    redshift_type: str  # as pg_table_def shows it
    base: str  # PostgreSQL base type name (int4, numeric, varchar, jsonb, bytea, …)
    byte_limit: int | None  # VARCHAR / VARBYTE length in bytes

    @property
    def is_super(self) -> bool:
        return self.redshift_type == "super"


def source_files(s3: Any, command: CopyCommand) -> list[tuple[str, int]]:
    """(s3 url, size) of every file the COPY reads, checked as Redshift checks a manifest."""
    bucket, key = _split_s3(command.source)
    if command.options.get("MANIFEST"):
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            raise CopyRefused(
                "XX000", f"Problem reading manifest file - S3ServiceException:{_s3_reason(exc)}"
            ) from None
        try:
            manifest = json.loads(body)
            entries = manifest["entries"]
            assert isinstance(entries, list)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise CopyRefused("XX000", f"Manifest file is not in correct json format: {command.source}") from None
        files: list[tuple[str, int]] = []
        for entry in entries:
            url = entry.get("url") if isinstance(entry, dict) else None
            if not isinstance(url, str) or not url.startswith("s3://"):
                raise CopyRefused("XX000", f"Manifest file is not in correct json format: {command.source}")
            length = (entry.get("meta") or {}).get("content_length")
            if not isinstance(length, int):
                raise refused("copy_manifest_content_length", url=url)
            entry_bucket, entry_key = _split_s3(url)
            try:
                size = int(s3.head_object(Bucket=entry_bucket, Key=entry_key)["ContentLength"])
            except Exception as exc:
                if entry.get("mandatory", False):
                    raise CopyRefused(
                        "XX000",
                        f"Manifest file lists '{url}', which cannot be read: S3ServiceException:{_s3_reason(exc)}",
                    ) from None
                continue
            if size != length:
                raise CopyRefused(
                    "XX000",
                    f"Spectrum Scan Error: content_length {length} in the manifest does not match the size "
                    f"{size} of '{url}'",
                )
            files.append((url, size))
        return files
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key)
    objects = [(f"s3://{bucket}/{o['Key']}", int(o["Size"])) for o in listed.get("Contents", [])]
    if not objects:
        raise CopyRefused("XX000", f"The specified S3 prefix '{key}' does not exist")
    return objects


def _s3_reason(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Message") or exc)


def read_parquet(s3: Any, url: str) -> pq.ParquetFile:
    bucket, key = _split_s3(url)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.ParquetFile(io.BytesIO(body))


_INT_RANGE = {"int2": 2**15, "int4": 2**31, "int8": 2**63}


def _compatible(arrow_type: pa.DataType, column: TargetColumn) -> bool:
    """Redshift's parquet → column type rules (incompatible pairs fail the COPY)."""
    base = column.base
    if pa.types.is_null(arrow_type):
        return True
    if pa.types.is_boolean(arrow_type):
        return base == "bool"
    if pa.types.is_integer(arrow_type):
        return base in ("int2", "int4", "int8", "numeric")
    if pa.types.is_floating(arrow_type):
        return base in ("float4", "float8")
    if pa.types.is_decimal(arrow_type):
        return base == "numeric"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return base in ("varchar", "bpchar", "text") or column.is_super
    if (
        pa.types.is_binary(arrow_type)
        or pa.types.is_large_binary(arrow_type)
        or pa.types.is_fixed_size_binary(arrow_type)
    ):
        return base == "bytea"
    if pa.types.is_date(arrow_type):
        return base == "date"
    if pa.types.is_timestamp(arrow_type):
        # Parquet timestamps load into TIMESTAMP (as UTC); TIMESTAMPTZ is not a parquet COPY target.
        return base == "timestamp"
    return False


def check_schema(schema: pa.Schema, columns: list[TargetColumn], url: str) -> None:
    if len(schema) != len(columns):
        raise refused("copy_parquet_column_count", table=len(columns), data=len(schema), url=url)
    for position, (parquet_field, column) in enumerate(zip(schema, columns, strict=True), start=1):
        if not _compatible(parquet_field.type, column):
            raise refused(
                "copy_parquet_types",
                url=url,
                column=parquet_field.name,
                position=position,
                column_type=column.redshift_type.upper(),
                parquet_type=parquet_field.type,
            )


def _escape(text: str) -> str:
    if "\0" in text:
        raise CopyRefused("22021", 'invalid byte sequence for encoding "UTF8": 0x00')
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _text(value: Any, column: TargetColumn, arrow_type: pa.DataType) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        limit = _INT_RANGE.get(column.base)
        if limit is not None and not -limit <= value < limit:
            raise refused("copy_value_overflow", column=column.name, value=value, type=column.redshift_type.upper())
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        if column.byte_limit is not None and len(value) > column.byte_limit:
            raise refused("copy_value_length", column=column.name, limit=column.byte_limit, size=len(value))
        return "\\\\x" + value.hex()
    if isinstance(value, str):
        if column.is_super:
            return _escape(json.dumps(value, ensure_ascii=False))
        size = len(value.encode("utf-8"))
        if column.byte_limit is not None and size > column.byte_limit:
            raise refused("copy_value_length", column=column.name, limit=column.byte_limit, size=size)
        return _escape(value)
    raise CopyRefused("XX000", f"Spectrum Scan Error: unsupported parquet value for column {column.name}: {arrow_type}")


def _input_size(value: Any) -> int:
    """A value's size as input (bytes of text or binary; the printed size of anything else)."""
    if value is None:
        return 0
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    return len(str(value))


def _first(mask: pa.Array) -> int | None:
    """Index of the first true value of a boolean array (None when there is none)."""
    if not pc.any(mask).as_py():
        return None
    return int(pc.index(mask, True).as_py())


_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def _column_text(array: pa.Array, column: TargetColumn, first_row: int) -> tuple[pa.Array, pa.Array]:
    """(COPY text of each value, NULL as \\N; input size of each value in bytes), checking Redshift's limits.

    Vectorized with Arrow compute for the common types; SUPER and binary go value by value.
    """
    kind = array.type
    if pa.types.is_null(kind):
        return pa.array(["\\N"] * len(array), pa.string()), pa.array([0] * len(array), pa.int64())
    if (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and not column.is_super:
        sizes = pc.binary_length(array)
        if column.byte_limit is not None:
            over = _first(pc.fill_null(pc.greater(sizes, column.byte_limit), False))
            if over is not None:
                size = sizes[over].as_py()
                raise refused("copy_value_length", column=column.name, limit=column.byte_limit, size=size)
        if _first(pc.fill_null(pc.match_substring(array, "\0"), False)) is not None:
            raise Refusal("22021", 'invalid byte sequence for encoding "UTF8": 0x00')
        text = array.cast(pa.string())
        for old, new in _ESCAPES:
            text = pc.replace_substring(text, old, new)
    elif (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_date(kind)
        or pa.types.is_timestamp(kind)
    ):
        if pa.types.is_integer(kind) and column.base in _INT_RANGE and len(array) and array.null_count < len(array):
            limit = _INT_RANGE[column.base]
            low, high = pc.min_max(array).values()
            for value in (low.as_py(), high.as_py()):
                if not -limit <= value < limit:
                    raise refused(
                        "copy_value_overflow", column=column.name, value=value, type=column.redshift_type.upper()
                    )
        if pa.types.is_timestamp(kind) and kind.tz is not None:
            array = array.cast(pa.timestamp(kind.unit))  # the UTC instant, as Redshift stores TIMESTAMP
        text = array.cast(pa.string())
        sizes = pc.binary_length(text)
    else:
        values = array.to_pylist()
        return (
            pa.array([_text(v, column, kind) for v in values], pa.string()),
            pa.array([_input_size(v) for v in values], pa.int64()),
        )
    return pc.fill_null(text, "\\N"), pc.fill_null(sizes.cast(pa.int64()), 0)


def copy_text_chunks(
    parquet: pq.ParquetFile, columns: list[TargetColumn], url: str, table: str, first_row: int
) -> Iterator[tuple[bytes, int]]:
    """(COPY text, rows) per record batch; raises a Refusal on a value Redshift would reject."""
    row_number = first_row
    for batch in parquet.iter_batches(batch_size=16384):
        if batch.num_rows == 0:
            continue
        texts, sizes = [], []
        for index, column in enumerate(columns):
            text, size = _column_text(batch.column(index), column, row_number)
            texts.append(text)
            sizes.append(size)
        total = sizes[0]
        for size in sizes[1:]:
            total = pc.add(total, size)
        over = _first(pc.greater(total, MAX_ROW_BYTES))
        if over is not None:
            raise refused("copy_row_4mb", table=table, row=row_number + over + 1, url=url, size=total[over].as_py())
        lines = pc.binary_join_element_wise(*texts, pa.array([""] * batch.num_rows, pa.string()), "\t")
        # Each line ends in the tab joined before the empty last field; turn it into the row's newline.
        body = "\n".join(line[:-1] for line in lines.to_pylist()) + "\n"
        row_number += batch.num_rows
        yield body.encode("utf-8"), batch.num_rows
