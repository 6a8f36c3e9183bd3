"""Helpers for the stand-in's own tests: connections through it and parquet staged on the S3 server."""

from __future__ import annotations

import io
import json
from typing import Any

import psycopg2
import psycopg2.extensions
import pyarrow as pa
import pyarrow.parquet as pq

from sync_platform_tests.redshift_standin.server import RedshiftStandin


def connect(standin: RedshiftStandin, database: str, *, autocommit: bool = True) -> psycopg2.extensions.connection:
    """A psycopg2 connection through the stand-in, as the product makes one (a password is sent and ignored)."""
    conn = psycopg2.connect(
        host=standin.host, port=standin.port, user="postgres", password="ignored", dbname=database, connect_timeout=10
    )
    conn.autocommit = autocommit
    return conn


def put_parquet(s3: Any, bucket: str, key: str, table: pa.Table) -> tuple[str, int]:
    """Write ``table`` as parquet to ``s3://bucket/key``; returns (url, size)."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    body = buffer.getvalue()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}", len(body)


def put_manifest(s3: Any, bucket: str, key: str, files: list[tuple[str, int]], *, content_length: bool = True) -> str:
    """A Redshift manifest listing ``files`` (mandatory, with ``meta.content_length`` unless told not to)."""
    entries = []
    for url, size in files:
        entry: dict[str, Any] = {"url": url, "mandatory": True}
        if content_length:
            entry["meta"] = {"content_length": size}
        entries.append(entry)
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"entries": entries}).encode())
    return f"s3://{bucket}/{key}"
