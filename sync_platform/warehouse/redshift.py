"""Amazon Redshift: what differs from the PostgreSQL-flavoured SQL in ``dialect``.

- Capabilities (data, ``RedshiftDialect.capabilities``): the stage is filled from S3, no advisory
  locks, keys not enforced, ALTER COLUMN TYPE only outside a transaction block, DISTKEY/SORTKEY.
- Types: VARCHAR lengths are bytes (``redshift_limits.redshift_varchar_bytes``), TEXT is VARCHAR(65535),
  JSON is SUPER, binary is VARBYTE. JSON is staged as VARCHAR and parsed with ``JSON_PARSE`` on the
  way into the target: a parquet string COPYed straight into SUPER would stay a JSON *string*.
  TIMESTAMPTZ is staged as the UTC TIMESTAMP parquet maps to and converted on insert.
- Keys are not enforced, so none are declared (the planner trusts declared keys).
- Layout: DISTSTYLE / DISTKEY / [COMPOUND | INTERLEAVED] SORTKEY; default DISTSTYLE AUTO SORTKEY AUTO.
- The stage is filled by ``COPY … FROM 's3://…manifest' … FORMAT AS PARQUET MANIFEST``. Columnar
  COPY accepts only IAM_ROLE or CREDENTIALS for authorization (not ACCESS_KEY_ID/…), no REGION,
  no column list, and maps parquet columns by position — the stage is created in staged order.
- Schema evolution: only ``ALTER COLUMN … TYPE VARCHAR(n)`` exists (outside a transaction block);
  other widenings rebuild the column (add new, copy, drop old, rename), which moves it last — or,
  for a NOT NULL or DISTKEY/SORTKEY column (read from PG_TABLE_DEF), deep-copy the table.
- Locking: ``LOCK table`` (blocks readers too until commit): the load plan takes it after the stage
  is filled and committed, just before the merge. Error 1023 (serializable isolation) is a conflict.
- Values: VARCHAR/SUPER/VARBYTE byte limits are checked on the Arrow batch before staging
  (``enforce_limits``), since a COPY failing on one long value would stop the whole load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from sync_platform.errors import ConfigurationError
from sync_platform.warehouse.dialect import (
    INTERNAL_SUFFIX,
    ROW_HASH_HEX_DIGITS,
    BatchLoad,
    Capabilities,
    ExistingColumn,
    LoadStep,
    PhysicalType,
    Statement,
    TableLayout,
    TableRef,
    WarehouseColumnLike,
    WarehouseDialect,
    derived_name,
)
from sync_platform.warehouse.redshift_limits import (
    REDSHIFT_MAX_IDENTIFIER_BYTES,
    REDSHIFT_MAX_INTERLEAVED_SORTKEY_COLUMNS,
    REDSHIFT_MAX_JSON_BYTES,
    REDSHIFT_MAX_NUMERIC_PRECISION,
    enforce_redshift_limits,
    redshift_varbyte_bytes,
    redshift_varchar_bytes,
)
from sync_platform.warehouse.types import Kind, LogicalType, OversizePolicy

MAX_INTERLEAVED_SORTKEY_COLUMNS = REDSHIFT_MAX_INTERLEAVED_SORTKEY_COLUMNS
REDACTED = "***"


class MissingCopyAuthorization(ConfigurationError, ValueError):
    """A Redshift load without an IAM role or keys to read the staging bucket."""


class LayoutError(ConfigurationError, ValueError):
    """A DISTKEY/SORTKEY setting that Redshift would reject (names table and setting)."""


@dataclass(frozen=True)
class S3Authorization:
    """How Redshift reads the staging bucket: an IAM role (preferred) or temporary/static keys.

    ``iam_role="default"`` uses the cluster's default role. With a role, no secret is in the SQL.
    """

    iam_role: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.iam_role and not (self.access_key_id and self.secret_access_key):
            raise ValueError(
                "Redshift COPY needs `iam_role` on the target connection (recommended) or access keys "
                "(access_key_id and secret_access_key) on the staging config"
            )


@dataclass(frozen=True)
class CopyStatement:
    """A COPY command; ``str()``/``repr()`` show the redacted form so it is safe to log."""

    sql: str = field(repr=False)
    redacted_sql: str

    def redacted(self) -> str:
        return self.redacted_sql

    def __str__(self) -> str:
        return self.redacted_sql

    def __repr__(self) -> str:
        return f"CopyStatement({self.redacted_sql!r})"


class RedshiftDialect(WarehouseDialect):
    """Amazon Redshift (provisioned or serverless)."""

    name = "redshift"
    max_identifier_bytes = REDSHIFT_MAX_IDENTIFIER_BYTES
    declares_primary_key = False
    max_numeric_precision = REDSHIFT_MAX_NUMERIC_PRECISION
    capabilities = Capabilities(
        stage_fill="copy_from_s3",
        advisory_locks=False,
        enforces_keys=False,
        alter_type_in_transaction=False,
        distribution_keys=True,
    )

    def literal(self, value: str) -> str:
        """Redshift string literals treat backslash as an escape: double it too."""
        if "\0" in value:
            raise ValueError("string literal contains a NUL character")
        return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"

    # ------------------------------------------------------------------ types

    def physical_type(self, logical: LogicalType) -> PhysicalType:
        kind = logical.kind
        if kind in (Kind.VARCHAR, Kind.TEXT):
            return PhysicalType("varchar", length=redshift_varchar_bytes(logical))
        if kind is Kind.JSON:
            return PhysicalType("super")
        if kind is Kind.BINARY:
            return PhysicalType("varbyte", length=redshift_varbyte_bytes(logical))
        return super().physical_type(logical)

    def stage_type(self, logical: LogicalType) -> str:
        if logical.kind is Kind.JSON:
            return PhysicalType("varchar", length=REDSHIFT_MAX_JSON_BYTES).sql
        if logical.kind is Kind.TIMESTAMPTZ:
            # Parquet → TIMESTAMPTZ is not a documented COPY mapping: stage the UTC wall-clock.
            return "TIMESTAMP"
        return self.render_type(logical)

    def insert_expression(self, column_sql: str, logical: LogicalType) -> str:
        if logical.kind is Kind.JSON:
            return f"JSON_PARSE({column_sql})"
        if logical.kind is Kind.TIMESTAMPTZ:
            return f"({column_sql} AT TIME ZONE 'UTC')"
        return column_sql

    def enforce_limits(
        self,
        batch: pa.RecordBatch,
        mappings: Sequence[WarehouseColumnLike],
        *,
        table: str,
        oversize_text: OversizePolicy = "fail",
    ) -> tuple[pa.RecordBatch, dict[str, int]]:
        """Byte limits of VARCHAR (65535), SUPER via JSON_PARSE and VARBYTE: fail or truncate-and-count."""
        return enforce_redshift_limits(batch, mappings, table=table, oversize_text=oversize_text)

    # ------------------------------------------------------------------ layout

    def table_attributes(
        self, table: TableRef, columns: Sequence[WarehouseColumnLike], layout: TableLayout | None
    ) -> str:
        layout = layout or TableLayout()
        names = {c.name for c in columns}

        def known(column: str, setting: str) -> str:
            if column.lower() not in names:
                raise LayoutError(
                    f"{table}: redshift {setting} names column {column!r}, which the table does not have "
                    f"(columns: {', '.join(sorted(names))})"
                )
            return self.quote(column.lower())

        parts: list[str] = []
        style = (layout.diststyle or "").upper()
        if style in ("AUTO", "EVEN", "ALL"):
            parts.append(f"DISTSTYLE {style}")
        elif layout.distkey:
            parts.append(f"DISTSTYLE KEY DISTKEY ({known(layout.distkey, 'distkey')})")
        elif style == "KEY":
            raise LayoutError(f"{table}: redshift diststyle KEY needs a distkey column")
        else:
            parts.append("DISTSTYLE AUTO")

        if layout.interleaved_sortkey and layout.sortkey:
            raise LayoutError(f"{table}: set either redshift sortkey or interleaved_sortkey, not both")
        if layout.interleaved_sortkey:
            if len(layout.interleaved_sortkey) > MAX_INTERLEAVED_SORTKEY_COLUMNS:
                raise LayoutError(
                    f"{table}: an interleaved sort key takes at most {MAX_INTERLEAVED_SORTKEY_COLUMNS} columns"
                )
            cols = ", ".join(known(c, "interleaved_sortkey") for c in layout.interleaved_sortkey)
            parts.append(f"INTERLEAVED SORTKEY ({cols})")
        elif isinstance(layout.sortkey, tuple) and layout.sortkey:
            cols = ", ".join(known(c, "sortkey") for c in layout.sortkey)
            parts.append(f"{'COMPOUND ' if len(layout.sortkey) > 1 else ''}SORTKEY ({cols})")
        else:
            parts.append("SORTKEY AUTO")
        return "\n" + " ".join(parts)

    def stage_attributes(self, columns: Sequence[WarehouseColumnLike], layout: TableLayout | None) -> str:
        """Distribute the stage like the target when it has a DISTKEY, so the merge joins locally."""
        if layout and layout.distkey and layout.distkey.lower() in {c.name for c in columns}:
            return f"\nDISTSTYLE KEY DISTKEY ({self.quote(layout.distkey.lower())})"
        return ""

    # ------------------------------------------------------------------ COPY

    def copy_from_s3(
        self,
        stage: str,
        columns: Sequence[WarehouseColumnLike | str],
        manifest_url: str,
        auth: S3Authorization,
        *,
        serialize_to_json: bool = False,
    ) -> CopyStatement:
        """COPY the staged parquet files listed in a Redshift manifest into the stage table.

        COPY from parquet takes no column list (it is not among the parameters columnar COPY
        accepts) and maps columns by position: the stage has exactly ``columns``, in parquet order.
        ``serialize_to_json`` adds SERIALIZETOJSON, only needed for nested parquet types.
        """
        if not manifest_url.startswith("s3://"):
            raise ValueError(f"manifest URL must be s3://bucket/key, got {manifest_url!r}")
        fmt = "FORMAT AS PARQUET" + (" SERIALIZETOJSON" if serialize_to_json else "")
        head = f"COPY {self.quote(stage)} FROM {self.literal(manifest_url)}"
        tail = f"{fmt} MANIFEST"
        if auth.iam_role:
            role = "default" if auth.iam_role.lower() == "default" else self.literal(auth.iam_role)
            sql = f"{head} IAM_ROLE {role} {tail}"
            return CopyStatement(sql, sql)

        def credentials(secret: str, token: str | None) -> str:
            text = f"aws_access_key_id={auth.access_key_id};aws_secret_access_key={secret}"
            return self.literal(text + (f";token={token}" if token else ""))

        secret = credentials(auth.secret_access_key or "", auth.session_token)
        masked = credentials(REDACTED, REDACTED if auth.session_token else None)
        return CopyStatement(f"{head} CREDENTIALS {secret} {tail}", f"{head} CREDENTIALS {masked} {tail}")

    def fill_stage_step(self, stage: str, batch: BatchLoad) -> LoadStep:
        if batch.authorization is None or batch.manifest_url is None:
            raise MissingCopyAuthorization(
                f"{batch.target}: Redshift COPY needs `iam_role` on the target connection or access keys "
                "on the staging connection"
            )
        copy = self.copy_from_s3(stage, batch.columns, batch.manifest_url, batch.authorization)
        secret = copy.sql if copy.sql != copy.redacted_sql else None
        return LoadStep("stage", "copy_s3", copy.redacted_sql, secret_sql=secret)

    # ------------------------------------------------------------------ evolution

    def alter_column_type(
        self,
        table: TableRef,
        column: ExistingColumn,
        old: PhysicalType,
        new: PhysicalType,
        layout: TableLayout | None,
        key_columns: frozenset[str] = frozenset(),
    ) -> tuple[tuple[str, ...], bool] | None:
        """VARCHAR grows in place (outside a transaction block); anything else rebuilds the column or the table.

        Redshift's ALTER COLUMN … TYPE exists for VARCHAR only. A nullable, non-key column is
        rebuilt (add new, copy, drop old, rename — it moves last); a DISTKEY/SORTKEY column cannot be
        dropped and ADD COLUMN cannot add NOT NULL without a default, so those rebuild the table.
        """
        target, name = self.table_sql(table), column.name
        if old.name == "varchar" and new.name == "varchar":
            return (f"ALTER TABLE {target} ALTER COLUMN {self.quote(name)} TYPE {new.sql}",), False
        keys = {k.lower() for k in key_columns} | (layout.key_columns() if layout else set())
        if name.lower() in keys or not column.nullable:
            return None
        temporary = derived_name(name, f"{INTERNAL_SUFFIX}_widen", self.max_identifier_bytes)
        return (
            (
                f"ALTER TABLE {target} ADD COLUMN {self.quote(temporary)} {new.sql}",
                f"UPDATE {target} SET {self.quote(temporary)} = {self.quote(name)}",
                f"ALTER TABLE {target} DROP COLUMN {self.quote(name)}",
                f"ALTER TABLE {target} RENAME COLUMN {self.quote(temporary)} TO {self.quote(name)}",
            ),
            True,
        )

    def key_columns_queries(self, table: TableRef) -> tuple[Statement, ...]:
        """PG_TABLE_DEF lists only tables on the search_path: put the schema there first."""
        return (
            Statement(f"SET search_path TO {self.quote(table.schema)}, public"),
            Statement(
                'SELECT "column", distkey, sortkey FROM pg_table_def WHERE schemaname = %s AND tablename = %s',
                (table.schema, table.name),
            ),
        )

    def is_conflict(self, sqlstate: str | None, message: str) -> bool:
        """Error 1023, serializable isolation violation: concurrent transactions touched the same tables."""
        lowered = message.lower()
        if "serializable isolation" in lowered or lowered.lstrip().startswith("1023"):
            return True
        return super().is_conflict(sqlstate, message)  # and racing CREATE … IF NOT EXISTS

    def _incompatible_fix(self, table: TableRef, column: str, new: PhysicalType) -> str:
        return (
            f"Fix: drop the target table (DROP TABLE {self.table_sql(table)}) and sync the table again: a sync into "
            "a missing target reads every row from the beginning and recreates it with the new type; or rebuild "
            f"the column yourself as {new.sql} (ADD COLUMN, UPDATE … SET, "
            "DROP COLUMN, RENAME COLUMN) and rerun."
        )

    # ------------------------------------------------------------------ reconcile

    text_type = "VARCHAR(65535)"
    hashes_unbounded_text = True  # a row's canonical text must stay within VARCHAR(65535)
    timestamp_as_text = False  # TO_CHAR: a fixed format, whatever Redshift's own text of a timestamp
    reconcile_session = ()

    def binary_hex(self, column_sql: str) -> str:
        return f"TO_HEX({column_sql})"

    def row_hash(self, text_sql: str) -> str:
        """Redshift has no bit casts: STRTOL reads the 15 hex digits; DECIMAL keeps the sum exact."""
        return f"CAST(STRTOL(SUBSTRING(SHA2({text_sql}, 256), 1, {ROW_HASH_HEX_DIGITS}), 16) AS DECIMAL(38,0))"

    # ------------------------------------------------------------------ locking

    def lock_statement(self, table: TableRef) -> str:
        return f"LOCK {self.table_sql(table)}"
