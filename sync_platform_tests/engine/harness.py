"""Runs the real engine against the test stack and compares target with source, row by row."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sync_platform.configuration import load_project, table_spec
from sync_platform.configuration.project import TableSpec
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.result import TableRunResult
from sync_platform.engine.sync import RunOptions, extract_table, load_table, sync_table
from sync_platform.engine.watermark import Watermark
from sync_platform_tests.stack import ConfigDir, MySQLDatabase, PostgresDatabase

PIPELINE = "p"


@dataclass
class Harness:
    """A pipeline over the module's databases; keeps each table's watermark as Dagster will."""

    config: ConfigDir
    mysql: MySQLDatabase
    pg: PostgresDatabase
    watermarks: dict[str, Watermark] = field(default_factory=dict)

    @property
    def warehouse(self) -> str:
        """``postgres`` or ``redshift`` (the stand-in in front of the same PostgreSQL database)."""
        return self.config.warehouse

    def set_tables(self, tables: dict[str, dict[str, Any]], **pipeline: Any) -> None:
        settings = {
            "name": PIPELINE,
            "source": self.config.source,
            "target": self.config.target,
            "s3_config": self.config.staging,
            **pipeline,
        }
        self.config.write(f"pipelines/{PIPELINE}.yml", {"pipeline": settings, "tables": tables})

    def spec(self, table: str) -> TableSpec:
        project = load_project(self.config.path, env={})
        return table_spec(project, PIPELINE, f"{self.mysql.name}.{table}")

    def registry(self) -> ConnectionRegistry:
        project = load_project(self.config.path, env={})
        return ConnectionRegistry(project.connections, project.config_dir)

    def sync(self, table: str, **options: Any) -> TableRunResult:
        spec = self.spec(table)
        with self.registry() as registry:
            result = sync_table(registry, spec, self.watermarks.get(table, Watermark()), RunOptions(**options))
        assert result.extract is not None
        self.watermarks[table] = result.extract.watermark
        return result

    def extract(self, table: str, **options: Any):
        spec = self.spec(table)
        with self.registry() as registry:
            result = extract_table(registry, spec, self.watermarks.get(table, Watermark()), RunOptions(**options))
        self.watermarks[table] = result.watermark
        return result

    def load(self, table: str):
        with self.registry() as registry:
            return load_table(registry, self.spec(table))

    def target(self, table: str) -> str:
        return f'"{self.config.target_schema}"."{table.lower()}"'


def canonical(value: Any) -> Any:
    """One comparable form for a value read from MySQL (pymysql) or PostgreSQL (psycopg2)."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, Decimal):
        return value.normalize() if value == value.to_integral_value() else value
    if isinstance(value, bool):
        return int(value)
    return value


def source_rows(mysql: MySQLDatabase, table: str, columns: list[str], key: str, json_columns=()) -> list[tuple]:
    cols = ", ".join(f"`{c}`" for c in columns)
    rows = mysql.query(f"SELECT {cols} FROM `{table}` ORDER BY `{key}`")
    out = []
    for row in rows:
        values = []
        for name, value in zip(columns, row, strict=True):
            if name in json_columns and value is not None:
                value = json.loads(value)
            values.append(canonical(value))
        out.append(tuple(values))
    return out


def target_rows(pg: PostgresDatabase, target: str, columns: list[str], key: str) -> list[tuple]:
    cols = ", ".join(f'"{c.lower()}"' for c in columns)
    rows = pg.query(f'SELECT {cols} FROM {target} ORDER BY "{key.lower()}"')
    return [tuple(canonical(v) for v in row) for row in rows]


def assert_same(harness: Harness, table: str, columns: list[str], key: str, json_columns=()) -> int:
    """Target equals source exactly (every column of every row); returns the row count."""
    expected = source_rows(harness.mysql, table, columns, key, json_columns)
    actual = target_rows(harness.pg, harness.target(table), columns, key)
    assert len(actual) == len(expected), f"{table}: target has {len(actual)} rows, source {len(expected)}"
    for want, got in zip(expected, actual, strict=True):
        assert want == got, f"{table}: row differs\n source {want}\n target {got}"
    return len(expected)
