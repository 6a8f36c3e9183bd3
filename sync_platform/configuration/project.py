"""The resolved configuration: what the engine, Dagster and the CLI consume."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sync_platform.configuration.compat import IgnoredKey
from sync_platform.configuration.errors import ConfigProblem
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
    # Set when the pipeline lists schema.table from several source connections: the connection then
    # tells the tables apart in names, staging paths and asset keys (``CONNECTION:schema.table``).
    scope: str = ""
    # Identities (``SOURCE:schema.table``) of every source table of the pipeline loading the same
    # warehouse table, this one included, when there are several; empty when this table is its only writer.
    shared_target: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        base = f"{self.schema}.{self.table}"
        return f"{self.scope}:{base}" if self.scope else base

    @property
    def shares_target(self) -> bool:
        """Several source tables load this table's warehouse table (the many-to-one layout)."""
        return len(self.shared_target) > 1

    @property
    def target_label(self) -> str:
        return f"{self.target}.{self.target_schema}.{self.target_table}"

    @property
    def identity(self) -> str:
        """The old tool's table identity, ``SOURCE:schema.table``."""
        return f"{self.source}:{self.schema}.{self.table}"


@dataclass(frozen=True)
class Pipeline:
    name: str
    file: Path | None  # None for the generated v1.0.0 default pipeline
    settings: PipelineSettings
    tables: dict[str, TableSpec]  # by TableSpec.name ("schema.table", "CONNECTION:schema.table" when scoped)
    environment: str | None = None
    open_tables: bool = False  # v1.0.0 default pipeline: any schema.table may be named
    table_aliases: dict[str, str] = field(default_factory=dict)  # key as written (`orders`, `CONN:orders`) → name
    ignored: list[IgnoredKey] = field(default_factory=list)  # keys that loaded and change nothing, with why
    warnings: list[ConfigProblem] = field(default_factory=list)

    def table_name(self, written: str) -> str | None:
        """``schema.table`` of a table named as the pipeline file (or the older tool's CLI) names it."""
        if written in self.tables:
            return written
        return self.table_aliases.get(written)


@dataclass
class Project:
    config_dir: Path
    connections: ConnectionsFile
    pipelines: dict[str, Pipeline]
    environment: str | None
    mode: str  # "yaml" (connections.yml) or "env" (v1.0.0 .env variables)
    files_read: list[Path] = field(default_factory=list)
    # Pipeline files that did not load (their own problems); the rest of the project works without them.
    broken: dict[Path, list[ConfigProblem]] = field(default_factory=dict)
    broken_names: dict[str, Path] = field(default_factory=dict)  # pipeline.name or file name → broken file
    aliases: dict[str, str] = field(default_factory=dict)  # file name (as the older tool's -p) → pipeline.name
    warnings: list[ConfigProblem] = field(default_factory=list)  # of connections.yml and the environment

    def pipeline_name(self, written: str) -> str | None:
        """The pipeline ``-p written`` means: its ``pipeline.name`` or its file name (as the older tool)."""
        if written in self.pipelines:
            return written
        return self.aliases.get(written)

    def broken_file(self, written: str) -> Path | None:
        return self.broken_names.get(written)

    def sharing(self, spec: TableSpec) -> list[TableSpec]:
        """The other source tables (of any pipeline) loading ``spec``'s warehouse table; empty when none."""
        if not spec.shares_target:
            return []
        return [
            table
            for pipeline in self.pipelines.values()
            for table in pipeline.tables.values()
            if table.pipeline == pipeline.name  # once: a pipeline may list a table another one owns
            and table.identity in spec.shared_target
            and table.identity != spec.identity
            and table.target_label == spec.target_label
        ]

    def listing(self, spec: TableSpec) -> list[TableSpec]:
        """Every other pipeline's entry of ``spec``'s source table into ``spec``'s warehouse table (one table:
        owned by one pipeline when they agree, refused when they do not)."""
        return [
            table
            for pipeline in self.pipelines.values()
            for table in pipeline.tables.values()
            if table.identity == spec.identity and table.target_label == spec.target_label and table is not spec
        ]


@dataclass
class ConfigurationRead:
    """Everything one read of a configuration directory found."""

    project: Project | None  # None when connections.yml or the environment file is unusable
    shared_problems: list[ConfigProblem]  # problems every pipeline shares (connections.yml, environment)
    broken: dict[Path, list[ConfigProblem]]
    warnings: list[ConfigProblem]
    ignored: list[IgnoredKey]

    @property
    def problems(self) -> list[ConfigProblem]:
        return [*self.shared_problems, *(p for problems in self.broken.values() for p in problems)]
