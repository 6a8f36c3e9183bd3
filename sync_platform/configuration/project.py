"""The resolved configuration: what the engine, Dagster and the CLI consume."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sync_platform.configuration.models import ConnectionsFile, PipelineSettings, TableConfig


@dataclass(frozen=True)
class TableSpec:
    """One table of one pipeline, with every default resolved."""

    pipeline: str
    source: str  # source connection name
    target: str  # target connection name
    staging: str  # s3_configs entry name
    schema: str  # MySQL database of the table
    table: str
    target_schema: str
    target_table: str
    staging_prefix: str  # <isolation prefix>/<pipeline>, under which <schema>/<table>/<run-id>/ live
    page_rows: int  # rows per extract page (the old LIMIT)
    file_max_rows: int  # rows per parquet file at most
    file_max_mb: int
    compression: str
    config: TableConfig

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def identity(self) -> str:
        """The old tool's table identity, ``SOURCE:schema.table``."""
        return f"{self.source}:{self.schema}.{self.table}"


@dataclass(frozen=True)
class Pipeline:
    name: str
    file: Path | None  # None for the generated v1.0.0 default pipeline
    settings: PipelineSettings
    tables: dict[str, TableSpec]  # by "schema.table"
    environment: str | None = None
    open_tables: bool = False  # v1.0.0 default pipeline: any schema.table may be named


@dataclass
class Project:
    config_dir: Path
    connections: ConnectionsFile
    pipelines: dict[str, Pipeline]
    environment: str | None
    mode: str  # "yaml" (connections.yml) or "env" (v1.0.0 .env variables)
    files_read: list[Path] = field(default_factory=list)
