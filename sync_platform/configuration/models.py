"""Typed models of the YAML configuration.

The models accept every key the older tool's files use (so those files load unchanged), and
reject anything else: a typo such as ``cdc_stratgey`` is an error, never a silent default.
Keys the older tool accepted but never acted on are kept as ``Any`` and documented as ignored.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

CdcStrategy = Literal["hybrid", "timestamp_only", "id_only", "full_sync", "custom_sql"]
CDC_STRATEGIES: tuple[str, ...] = ("hybrid", "timestamp_only", "id_only", "full_sync", "custom_sql")
FullSyncMode = Literal["replace", "append", "paginate"]
WriteMode = Literal["merge", "append", "replace"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``"30s"``, ``"5m"``, ``"1h"`` or ``"2d"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5m, 1h or a number of seconds")
    number, unit = float(match.group(1)), (match.group(2) or "s")
    return number * _UNIT_SECONDS["ms" if unit == "ms" else unit[0]]


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --------------------------------------------------------------------------- connections.yml


class SSHTunnelConfig(Strict):
    enabled: bool = False
    host: str | None = None
    port: int = 22
    username: str | None = None
    private_key_path: str | None = None
    private_key_passphrase: SecretStr | None = None
    password: SecretStr | None = None
    local_port: int = 0  # 0: the OS picks a free port (the only safe choice when tunnels are shared)
    keepalive_seconds: float = 30.0
    # strict: only keys already in the known-hosts file; accept-new: remember a new bastion's key, refuse a
    # changed one; off: no check (connections/host_keys.py).
    host_key_check: Literal["strict", "accept-new", "off"] = "accept-new"

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> SSHTunnelConfig:
        if self.enabled:
            missing = [k for k in ("host", "username") if not getattr(self, k)]
            if missing:
                raise ValueError(f"ssh_tunnel is enabled but {' and '.join(missing)} is not set")
            if not self.private_key_path and self.password is None:
                raise ValueError("ssh_tunnel is enabled but neither private_key_path nor password is set")
        return self


class ConnectionPoolConfig(Strict):
    max_connections: int = 10
    min_connections: int | None = None
    pool_timeout: float | None = None
    pool_recycle: float | None = None


class MySQLSourceConfig(Strict):
    type: Literal["mysql", "mariadb"] = "mysql"
    host: str
    port: int = 3306
    database: str
    username: str = Field(validation_alias="username")
    password: SecretStr = SecretStr("")
    ssh_tunnel: SSHTunnelConfig | None = None
    connection_pool: ConnectionPoolConfig | None = None
    charset: str = "utf8mb4"
    connect_timeout: float = 30.0
    description: str | None = None


class WarehouseTargetConfig(Strict):
    type: Literal["redshift", "postgres", "postgresql"] = "redshift"
    host: str
    port: int | None = None  # 5439 for Redshift, 5432 for PostgreSQL
    database: str
    schema_: str = Field("public", alias="schema")
    username: str
    password: SecretStr = SecretStr("")
    ssh_tunnel: SSHTunnelConfig | None = None
    iam_role: str | None = None  # Redshift COPY authorization; preferred over access keys
    region: str | None = None
    sslmode: str | None = None
    connect_timeout: float = 30.0
    statement_timeout_seconds: float = 3600.0  # a COPY that hangs on a dead tunnel must end
    description: str | None = None

    @property
    def dialect(self) -> Literal["redshift", "postgres"]:
        return "redshift" if self.type == "redshift" else "postgres"

    @property
    def effective_port(self) -> int:
        return self.port or (5439 if self.dialect == "redshift" else 5432)


class S3PerformanceConfig(Strict):
    multipart_threshold: int | None = None
    multipart_chunksize: int | None = None
    max_concurrency: int | None = None
    max_pool_connections: int | None = None
    max_bandwidth: int | None = None
    retry_max_attempts: int = 5
    retry_mode: Literal["standard", "adaptive", "legacy"] = "adaptive"


class StagingConfig(Strict):
    """One entry of ``s3_configs``: an S3 bucket (or S3-compatible store), or a local directory."""

    bucket_name: str | None = None
    region: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    endpoint_url: str | None = None
    prefix: str = ""
    incremental_path: str | None = None  # accepted for compatibility; appended to the prefix
    local_path: str | None = None
    performance: S3PerformanceConfig | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> StagingConfig:
        if bool(self.bucket_name) == bool(self.local_path):
            raise ValueError("set exactly one of bucket_name (S3) or local_path (a local directory)")
        return self

    @property
    def kind(self) -> Literal["s3", "local"]:
        return "s3" if self.bucket_name else "local"


class ConnectionSettings(Strict):
    default_timeout: float = 1800.0
    max_retries: int = 3
    retry_delay: float = 1.0
    health_check_interval: float | None = None
    connection_timeout: float | None = None


class BackupDefaults(Strict):
    """The ``backup`` section. ``batch_size`` is the maximum rows per staged parquet file."""

    batch_size: int = Field(500_000, gt=0)
    max_workers: int | None = None
    memory_limit_mb: int | None = None
    gc_threshold: int | None = None
    target_rows_per_chunk: int | None = None
    max_rows_per_chunk: int | None = None
    retry_attempts: int | None = None
    timeout_seconds: int | None = None
    num_chunks: int | None = None
    memory_check_interval: int | None = None
    enable_compression: bool | None = None
    compression_level: int | None = None
    file_max_mb: int = Field(128, gt=0)  # parquet files roll at this size (Redshift COPY likes 64-256 MB)


class ConnectionGroups(Strict):
    sources: dict[str, MySQLSourceConfig] = Field(default_factory=dict)
    targets: dict[str, WarehouseTargetConfig] = Field(default_factory=dict)


class ConnectionsFile(Strict):
    connections: ConnectionGroups = Field(default_factory=ConnectionGroups)
    s3_configs: dict[str, StagingConfig] = Field(default_factory=dict)
    connection_settings: ConnectionSettings = Field(default_factory=ConnectionSettings)
    backup: BackupDefaults = Field(default_factory=BackupDefaults)
    strict: bool = False  # unknown keys are errors, not warnings (as --strict and SYNC_PLATFORM_STRICT=1)


# --------------------------------------------------------------------------- pipelines/*.yml


class TableProcessing(Strict):
    batch_size: int | None = Field(None, gt=0)  # rows per extract page (the old SQL LIMIT)
    file_max_rows: int | None = Field(None, gt=0)
    timeout_minutes: float | None = None


class InitialLoadConfig(Strict):
    """A first load split into primary-key ranges (``sync initial-load``, the ``initial_load_<pipeline>`` job)."""

    ranges: int = Field(8, ge=1, le=100_000)  # units of work; each is read and loaded on its own, once


class RedshiftTableLayout(Strict):
    """DISTSTYLE / DISTKEY / SORTKEY (the old tool kept these in redshift_keys.json)."""

    diststyle: Literal["AUTO", "ALL", "EVEN", "KEY", "auto", "all", "even", "key"] | None = None
    distkey: str | None = None
    sortkey: list[str] | Literal["AUTO", "auto"] | None = None
    interleaved_sortkey: list[str] | None = None

    @field_validator("sortkey", mode="before")
    @classmethod
    def _one_sortkey(cls, value: Any) -> Any:
        if isinstance(value, str) and value.upper() != "AUTO":
            return [value]
        return value


class FreshnessConfig(Strict):
    max_lag: str | float | None = None  # e.g. "30m": the table is stale when its last load is older

    @field_validator("max_lag")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if value is not None:
            parse_duration(value)
        return value


class ScheduleConfig(Strict):
    cron: str
    timezone: str = "UTC"
    enabled: bool = True


class ReconcileConfig(Strict):
    """``pipeline.reconcile``: when and how gently the pipeline's tables are compared with the source."""

    schedule: str | None = None  # cron for the pipeline's reconcile job, e.g. "0 3 * * *"
    timezone: str = "UTC"
    enabled: bool = True
    repair: bool | None = None  # the scheduled job repairs (default: each table's `repair`)
    range_rows: int = Field(2_000, gt=0)  # rows per checksummed key range
    rows_per_second: float | None = Field(None, gt=0)  # pace of source reads
    sleep_seconds: float = Field(0.0, ge=0)  # pause after each source range


class TableConfig(Strict):
    """Settings of one table (merged from defaults, templates, tables/ files and the pipeline)."""

    cdc_strategy: CdcStrategy = "hybrid"
    cdc_timestamp_column: str | None = None
    cdc_id_column: str | None = None
    cdc_ordering: list[str] | None = None  # accepted; paging always uses (cursor, key)
    additional_where: str | None = None
    custom_query: str | None = None
    timestamp_format: str | None = None
    target_name: str | None = None
    target_schema: str | None = None
    table_type: Literal["fact", "dimension"] | None = None
    full_sync_mode: FullSyncMode | None = None  # default for full_sync: replace (atomic)
    primary_key: list[str] | None = None  # default: the source table's primary key
    write_mode: WriteMode | None = None  # default: merge with a key, append without
    lookback: str | float | None = None  # default 60s for keyed tables, 0 for append-only
    safety_lag: str | float | None = None  # default 5s
    oversize_text: Literal["fail", "truncate"] = "fail"
    deletes: Literal["hard", "soft", "report"] = "report"  # rows reconcile finds deleted at the source
    repair: bool = False  # reconcile re-loads lost and changed rows
    # Rows whose cursor is NULL: read by key every run and merged (load), only counted (report), or refused (fail).
    null_cursor: Literal["load", "report", "fail"] = "load"
    processing: TableProcessing = Field(default_factory=TableProcessing)
    initial_load: InitialLoadConfig = Field(default_factory=InitialLoadConfig)
    redshift: RedshiftTableLayout | None = None
    freshness: FreshnessConfig | None = None
    description: str | None = None
    owners: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    enabled: bool = True
    full_name: str | None = None  # the older tool's override of the table's name (schema.table)
    # Keys the older tool accepted without acting on them: compat.IGNORED_KEYS (listed with the reason).

    @field_validator("primary_key", mode="before")
    @classmethod
    def _key_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("lookback", "safety_lag")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _strategy_needs(self) -> TableConfig:
        needs = {
            "custom_sql": ("custom_query",),
        }
        for key in needs.get(self.cdc_strategy, ()):
            if not getattr(self, key):
                raise ValueError(f"cdc_strategy {self.cdc_strategy} needs `{key}`")
        if self.custom_query and self.cdc_strategy != "custom_sql":
            raise ValueError("custom_query is set but cdc_strategy is not custom_sql; set cdc_strategy: custom_sql")
        if self.full_sync_mode and self.cdc_strategy != "full_sync":
            raise ValueError("full_sync_mode applies only to cdc_strategy: full_sync")
        return self

    @property
    def lookback_seconds(self) -> float | None:
        return None if self.lookback is None else parse_duration(self.lookback)

    @property
    def safety_lag_seconds(self) -> float:
        return 5.0 if self.safety_lag is None else parse_duration(self.safety_lag)


class PipelineProcessing(Strict):
    strategy: Literal["sequential", "inter-table", "parallel"] = "sequential"
    batch_size: int = Field(100_000, gt=0)  # rows per extract page unless the table sets its own
    timeout_minutes: float | None = None
    max_parallel_tables: int = Field(1, gt=0)
    max_workers: int | None = None
    file_max_rows: int | None = Field(None, gt=0)


class PipelineStaging(Strict):
    isolation_prefix: str | None = None  # default: the pipeline name
    partition_strategy: Literal["table", "datetime", "hybrid"] | None = None  # accepted; layout is fixed
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    incremental_path: str | None = None
    retention_days: float = Field(7.0, ge=0)  # s3clean keeps loaded batches this long

    @field_validator("compression", mode="before")
    @classmethod
    def _older_names(cls, value: Any) -> Any:
        return "none" if value == "uncompressed" else value  # the older tool's spelling


class PipelineSettings(Strict):
    name: str
    version: str | None = None
    description: str | None = None
    source: str
    target: str
    s3_config: str
    processing: PipelineProcessing = Field(default_factory=PipelineProcessing)
    s3: PipelineStaging = Field(default_factory=PipelineStaging)
    default_table_config: dict[str, Any] = Field(default_factory=dict)
    schedule: ScheduleConfig | None = None
    freshness: FreshnessConfig | None = None
    owners: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    max_concurrent_per_source: int = Field(2, gt=0)  # Dagster pool limit for the source connection
    reconcile: ReconcileConfig | None = None
    # Keys the older tool accepted without acting on them: compat.IGNORED_KEYS (listed with the reason).

    @field_validator("schedule", mode="before")
    @classmethod
    def _cron_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"cron": value}
        return value
