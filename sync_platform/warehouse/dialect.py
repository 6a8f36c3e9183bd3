"""The warehouse SQL generator: every statement the loader runs, PostgreSQL-flavoured.

``WarehouseDialect`` holds the SQL that PostgreSQL and Redshift share; ``PostgresDialect`` and
``RedshiftDialect`` override the few places where they differ (type names, table layout, COPY,
dedup, locking, which ALTERs exist). Every method is pure: it returns SQL text (and parameters
where values come from outside), it never touches a connection.

Identifiers are always double-quoted with embedded quotes doubled, so names with spaces,
quotes or backticks are safe everywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

from sync_platform.errors import DataError
from sync_platform.warehouse.types import Kind, LogicalType, OversizePolicy
from sync_platform.warehouse.types import WarehouseColumn as WarehouseColumn
from sync_platform.warehouse.types import WarehouseColumnLike as WarehouseColumnLike

LEDGER_TABLE = "_sync_load_ledger"
INTERNAL_SUFFIX = "__sp"  # marks tables/columns the platform creates next to a target
SOFT_DELETE_COLUMN = "_deleted_at"  # set by reconcile on rows deleted at the source (`deletes: soft`)
FLOAT_DIGITS = 6  # significant digits a REAL (float32) is compared at (FLT_DIG)
DOUBLE_DIGITS = 15  # significant digits a DOUBLE is compared at (DBL_DIG)
# A row's hash, on every server: the first 15 hex digits (60 bits) of the SHA-256 of its canonical text, so
# that sums of millions of them stay exact in a BIGINT-sized DECIMAL.
ROW_HASH_HEX_DIGITS = 15


@dataclass(frozen=True)
class TableRef:
    """A warehouse table: schema and name, unquoted."""

    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class TableLayout:
    """Redshift physical layout (the old tool's ``redshift_keys.json``); PostgreSQL ignores it.

    ``diststyle`` AUTO/EVEN/ALL wins over ``distkey`` (as in the old tool); a ``distkey`` alone
    means DISTSTYLE KEY. ``sortkey`` is a column list (more than one: COMPOUND) or ``"AUTO"``.
    The default is ``DISTSTYLE AUTO SORTKEY AUTO``.
    """

    diststyle: str | None = None
    distkey: str | None = None
    sortkey: tuple[str, ...] | Literal["AUTO"] | None = None
    interleaved_sortkey: tuple[str, ...] | None = None

    @classmethod
    def from_config(cls, config: Any) -> TableLayout:
        """Build from any object with the four attributes (e.g. ``RedshiftTableLayout``), or None."""
        if config is None:
            return cls()
        sortkey = getattr(config, "sortkey", None)
        if isinstance(sortkey, str):
            sortkey = "AUTO" if sortkey.upper() == "AUTO" else (sortkey,)
        elif sortkey is not None:
            sortkey = tuple(sortkey)
        interleaved = getattr(config, "interleaved_sortkey", None)
        return cls(
            diststyle=getattr(config, "diststyle", None),
            distkey=getattr(config, "distkey", None),
            sortkey=sortkey,
            interleaved_sortkey=tuple(interleaved) if interleaved else None,
        )

    def key_columns(self) -> set[str]:
        """Columns the layout names (they cannot be dropped on Redshift)."""
        names = set(self.interleaved_sortkey or ())
        if isinstance(self.sortkey, tuple):
            names.update(self.sortkey)
        if self.distkey:
            names.add(self.distkey)
        return {n.lower() for n in names}


@dataclass(frozen=True)
class PhysicalType:
    """A rendered warehouse type, comparable with what information_schema reports."""

    name: str  # smallint, integer, bigint, numeric, real, double precision, varchar, char, text,
    # date, timestamp, timestamptz, jsonb, json, super, bytea, varbyte, boolean, or as reported
    length: int | None = None
    precision: int | None = None
    scale: int | None = None

    @property
    def sql(self) -> str:
        upper = self.name.upper()
        if self.name == "numeric":
            return f"NUMERIC({self.precision},{self.scale})"
        if self.name in ("varchar", "char", "varbyte") and self.length is not None:
            return f"{upper}({self.length})"
        return upper

    def __str__(self) -> str:
        return self.sql


@dataclass(frozen=True)
class ExistingColumn:
    """A target column as ``information_schema.columns`` reports it."""

    name: str
    data_type: str
    char_max_length: int | None = None
    numeric_precision: int | None = None
    numeric_scale: int | None = None
    nullable: bool = True


@dataclass(frozen=True)
class SchemaChange:
    """One change to a target table, reported to the user and recorded in run metadata."""

    action: Literal["add_column", "widen_column", "kept_column", "rebuild_table"]
    table: str
    column: str
    old_type: str | None
    new_type: str | None
    statements: tuple[str, ...] = ()
    transactional: bool = True  # False: run each statement on its own (autocommit)
    note: str = ""

    def describe(self) -> str:
        if self.action == "add_column":
            return f"{self.table}: added column {self.column} {self.new_type}"
        if self.action == "widen_column":
            return f"{self.table}: widened column {self.column} from {self.old_type} to {self.new_type}"
        if self.action == "rebuild_table":
            return f"{self.table}: rebuilt (deep copy) to widen {self.column}: {self.note}"
        return (
            f"{self.table}: column {self.column} {self.old_type} is no longer in the source; kept (NULL for new rows)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "table": self.table,
            "column": self.column,
            "old_type": self.old_type,
            "new_type": self.new_type,
        }


@dataclass(frozen=True)
class EvolutionPlan:
    """Every change needed to bring a target table in step with the source, in order."""

    table: str
    changes: tuple[SchemaChange, ...] = ()

    @property
    def statements(self) -> tuple[str, ...]:
        return tuple(s for c in self.changes for s in c.statements)

    @property
    def is_empty(self) -> bool:
        return not self.statements


class IncompatibleSchemaChange(DataError, ValueError):
    """A source column changed in a way the target column cannot follow by widening."""

    def __init__(self, table: str, column: str, old_type: str, new_type: str, fix: str) -> None:
        self.table = table
        self.column = column
        self.old_type = old_type
        self.new_type = new_type
        self.fix = fix
        super().__init__(
            f"{table}.{column}: the target column is {old_type} but the source now needs {new_type}, "
            f"which is not a widening. {fix}"
        )


@dataclass(frozen=True)
class LedgerEntry:
    """One loaded staged batch; written in the same transaction as the batch's rows."""

    table_name: str
    batch_id: str
    run_id: str | None
    rows: int
    files: int = 0
    bytes: int = 0
    watermark: str | None = None  # JSON text of the batch's watermark range
    # The client's clock, like a manual watermark's ``manual_at``, at microsecond precision
    # (Redshift's GETDATE() has whole seconds): the two are compared.
    loaded_at: dt.datetime | None = None


@dataclass(frozen=True)
class Statement:
    """SQL text with its parameters (psycopg2 ``%s`` style)."""

    sql: str
    params: tuple[Any, ...] = field(default=())


@dataclass(frozen=True)
class Capabilities:
    """What a warehouse can do, as data: the loader and ``explain`` read these, never the dialect's class."""

    stage_fill: Literal["copy_from_stdin", "copy_from_s3"]  # how rows reach the stage table
    advisory_locks: bool  # writers serialize on a key (readers never wait); else LOCK TABLE
    enforces_keys: bool  # declared keys are enforced: an empty target may take a COPY directly
    alter_type_in_transaction: bool  # ALTER COLUMN … TYPE may run inside a transaction block
    distribution_keys: bool  # DISTKEY/SORTKEY exist (read back from the catalog before a rebuild)


@dataclass(frozen=True)
class TargetState:
    """The target table as the loader found it before planning a batch."""

    columns: tuple[ExistingColumn, ...] = ()  # empty: the table does not exist
    empty: bool = True  # no rows (or missing): a warehouse that enforces keys may COPY straight in
    unique_key: bool = False  # an enforced unique key on exactly the load's key columns
    key_columns: frozenset[str] = frozenset()  # DISTKEY/SORTKEY columns the catalog reports

    @property
    def exists(self) -> bool:
        return bool(self.columns)


@dataclass(frozen=True)
class BatchLoad:
    """One staged batch to load into one target (plain data; the loader builds it from a manifest)."""

    target: TableRef
    columns: tuple[WarehouseColumnLike, ...]  # in staged (parquet) order
    write_mode: Literal["merge", "append", "replace"]
    ledger: LedgerEntry
    key: tuple[str, ...] = ()
    order_by: tuple[str, ...] = ()
    # Key columns the source compares loosely: (column, "case" | "pad" | "case_pad"), see ``key_match``.
    key_equality: tuple[tuple[str, str], ...] = ()
    layout: TableLayout | None = None
    manifest_url: str | None = None  # the batch's COPY manifest (Redshift)
    authorization: Any = None  # S3Authorization (Redshift)
    run_token: str = ""


StepAction = Literal["execute", "autocommit", "commit", "copy_stdin", "copy_s3", "skip_if_loaded", "verify_columns"]


@dataclass(frozen=True)
class LoadStep:
    """One step of a load plan.

    ``execute`` runs ``sql``; ``autocommit`` runs it outside a transaction block; ``commit``
    commits; ``copy_stdin`` streams the batch's rows into ``sql``; ``copy_s3`` runs the COPY
    (``secret_sql`` when it carries credentials; ``sql`` is then the redacted text);
    ``skip_if_loaded`` runs the ledger query and ends the batch (rolled back) if it finds a row;
    ``verify_columns`` re-reads the target's columns under the lock and re-plans if they moved.
    """

    phase: Literal["stage", "prepare", "load", "cleanup"]
    action: StepAction
    sql: str = ""
    params: tuple[Any, ...] = ()
    secret_sql: str | None = field(default=None, repr=False)
    binary: bool = False  # copy_stdin: the rows go in COPY's binary format (``sql`` says FORMAT binary)

    @property
    def executable(self) -> str:
        return self.secret_sql if self.secret_sql is not None else self.sql

    def display(self) -> str:
        """The step as ``explain`` prints it (never the secret form)."""
        if self.action == "commit":
            return "COMMIT"
        if self.action == "autocommit":
            return f"{self.sql}  -- outside a transaction block"
        if self.action == "copy_stdin":
            return f"{self.sql}  -- rows streamed from the staged parquet"
        if self.action == "skip_if_loaded":
            return f"{self.sql}  -- a row: already loaded, roll back and skip the batch"
        if self.action == "verify_columns":
            return f"{self.sql}  -- columns changed since planning: roll back and plan again"
        return self.sql


@dataclass(frozen=True)
class LoadPlan:
    """Every statement of loading one batch, in order: the loader runs exactly these, ``explain`` prints them.

    Phases: ``stage`` fills a session-private stage table and commits (temporary tables survive
    commit), so the target is not locked while rows travel; ``prepare`` creates the target or runs
    the ALTERs that cannot run in a transaction; ``load`` is one transaction — lock, ledger
    check, in-transaction schema changes, merge/append/replace, ledger row, commit; ``cleanup``
    drops the stage. A conflict (serialization failure) retries from ``prepare``.
    """

    steps: tuple[LoadStep, ...]
    changes: tuple[SchemaChange, ...] = ()
    direct: bool = False  # rows are COPYed straight into the target (no stage)
    stage: str | None = None
    # The target's (column, type) the load phase expects under the lock; type None: any.
    expected_columns: tuple[tuple[str, str | None], ...] = ()

    def columns_match(self, found: Sequence[tuple[str, str]]) -> bool:
        """Whether the target under the lock is the one this plan was made for (``verify_columns``)."""
        if [name for name, _ in found] != [name for name, _ in self.expected_columns]:
            return False
        return all(
            want is None or want == got for (_, got), (_, want) in zip(found, self.expected_columns, strict=True)
        )

    def phase(self, name: str) -> tuple[LoadStep, ...]:
        return tuple(s for s in self.steps if s.phase == name)

    def lines(self) -> list[str]:
        """The plan as printable SQL, phase by phase (COPY credentials redacted)."""
        out: list[str] = []
        titles = {
            "stage": "-- stage: fill the stage table, committed before the target is locked",
            "prepare": "-- prepare: create the target / changes that cannot run in a transaction",
            "load": "-- load: one transaction",
            "cleanup": "-- cleanup",
        }
        current = None
        for step in self.steps:
            if step.phase != current:
                current = step.phase
                out.append(titles[current])
            out.append(step.display())
        return out


# --------------------------------------------------------------------------- quoting


def quote_identifier(name: str) -> str:
    """Double-quote an identifier, doubling embedded quotes (safe for any characters but NUL)."""
    if "\0" in name:
        raise ValueError(f"identifier {name!r} contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


def derived_name(base: str, suffix: str, max_bytes: int) -> str:
    """``base + suffix`` within ``max_bytes`` UTF-8 bytes (a hash keeps shortened names distinct)."""
    name = base + suffix
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    digest = hashlib.sha1(base.encode("utf-8")).hexdigest()[:8]
    room = max_bytes - len(suffix.encode("utf-8")) - 9
    head = base.encode("utf-8")[:room].decode("utf-8", "ignore")
    return f"{head}_{digest}{suffix}"


_EXACT_DIGITS = {"smallint": 5, "integer": 10, "bigint": 19}
_FLOAT_RANK = {"real": 1, "double precision": 2}
_TEXTUAL = {"varchar", "char", "text"}


class WarehouseDialect:
    """SQL shared by PostgreSQL and Redshift (PostgreSQL-flavoured); subclasses override differences."""

    name = "postgres"
    max_identifier_bytes = 63
    declares_primary_key = True  # Redshift does not enforce keys: do not declare them there
    capabilities = Capabilities(
        stage_fill="copy_from_stdin",
        advisory_locks=True,
        enforces_keys=True,
        alter_type_in_transaction=True,
        distribution_keys=False,
    )
    max_numeric_precision = 38

    # ------------------------------------------------------------------ names and literals

    def quote(self, name: str) -> str:
        return quote_identifier(name)

    def table_sql(self, table: TableRef) -> str:
        return f"{self.quote(table.schema)}.{self.quote(table.name)}"

    def literal(self, value: str) -> str:
        """A string literal (standard SQL: quotes doubled)."""
        if "\0" in value:
            raise ValueError("string literal contains a NUL character")
        return "'" + value.replace("'", "''") + "'"

    def column_list(self, columns: Iterable[WarehouseColumnLike | str]) -> str:
        return ", ".join(self.quote(c if isinstance(c, str) else c.name) for c in columns)

    # ------------------------------------------------------------------ types

    def physical_type(self, logical: LogicalType) -> PhysicalType:
        """The column type this dialect creates for a logical type."""
        kind = logical.kind
        if kind is Kind.DECIMAL:
            return PhysicalType("numeric", precision=logical.precision, scale=logical.scale)
        if kind is Kind.DOUBLE:
            return PhysicalType("double precision")
        if kind is Kind.VARCHAR:
            return PhysicalType("varchar", length=logical.length)
        if kind is Kind.TEXT:
            return PhysicalType("text")
        if kind is Kind.JSON:
            return PhysicalType("jsonb")
        if kind is Kind.BINARY:
            return PhysicalType("bytea")
        return PhysicalType(kind.value)  # smallint, integer, bigint, real, date, timestamp, timestamptz

    def render_type(self, logical: LogicalType) -> str:
        return self.physical_type(logical).sql

    def stage_type(self, logical: LogicalType) -> str:
        """The type of the column in the stage table (what COPY fills)."""
        return self.render_type(logical)

    def insert_expression(self, column_sql: str, logical: LogicalType) -> str:
        """How a stage column becomes a target value (Redshift parses JSON here)."""
        return column_sql

    def enforce_limits(
        self,
        batch: pa.RecordBatch,
        mappings: Sequence[WarehouseColumnLike],
        *,
        table: str,
        oversize_text: OversizePolicy = "fail",
    ) -> tuple[pa.RecordBatch, dict[str, int]]:
        """Check a normalized batch against this warehouse's column limits before it is staged.

        Returns the batch (values cut under ``truncate``) and ``{column: values truncated}``.
        PostgreSQL takes every value the type map produces (VARCHAR(n) counts characters there).
        """
        return batch, {}

    # ------------------------------------------------------------------ DDL

    def create_schema(self, schema: str) -> str:
        return f"CREATE SCHEMA IF NOT EXISTS {self.quote(schema)}"

    def create_table(
        self,
        table: TableRef,
        columns: Sequence[WarehouseColumnLike],
        *,
        primary_key: Sequence[str] = (),
        layout: TableLayout | None = None,
        if_not_exists: bool = True,
    ) -> str:
        """CREATE TABLE for the mapped columns; key columns NOT NULL, every other column nullable."""
        _check_columns(table, columns, primary_key)
        keys = set(primary_key)
        lines = [
            f"{self.quote(c.name)} {self.render_type(c.logical)}{' NOT NULL' if c.name in keys else ''}"
            for c in columns
        ]
        if primary_key and self.declares_primary_key:
            lines.append(f"PRIMARY KEY ({self.column_list(primary_key)})")
        exists = "IF NOT EXISTS " if if_not_exists else ""
        body = ",\n  ".join(lines)
        attributes = self.table_attributes(table, columns, layout)
        return f"CREATE TABLE {exists}{self.table_sql(table)} (\n  {body}\n){attributes}"

    def table_attributes(
        self, table: TableRef, columns: Sequence[WarehouseColumnLike], layout: TableLayout | None
    ) -> str:
        """Text after the column list (Redshift: DISTSTYLE/SORTKEY); none on PostgreSQL."""
        return ""

    def drop_table(self, table: TableRef, *, if_exists: bool = True) -> str:
        return f"DROP TABLE {'IF EXISTS ' if if_exists else ''}{self.table_sql(table)}"

    def table_exists_query(self, table: TableRef) -> Statement:
        return Statement(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (table.schema, table.name),
        )

    # ------------------------------------------------------------------ stage

    def stage_name(self, target: TableRef, run_token: str = "") -> str:
        """The temporary stage table's (unqualified) name for a target."""
        suffix = f"{INTERNAL_SUFFIX}_stage" + (f"_{run_token}" if run_token else "")
        return derived_name(target.name, suffix, self.max_identifier_bytes)

    def create_stage(
        self, stage: str, columns: Sequence[WarehouseColumnLike], *, layout: TableLayout | None = None
    ) -> str:
        """A session-private stage table with the staged columns, in staged (parquet) order."""
        body = ",\n  ".join(f"{self.quote(c.name)} {self.stage_type(c.logical)}" for c in columns)
        return f"CREATE TEMPORARY TABLE {self.quote(stage)} (\n  {body}\n){self.stage_attributes(columns, layout)}"

    def stage_attributes(self, columns: Sequence[WarehouseColumnLike], layout: TableLayout | None) -> str:
        return ""

    def drop_stage(self, stage: str) -> str:
        return f"DROP TABLE IF EXISTS {self.quote(stage)}"

    # ------------------------------------------------------------------ loading

    def _insert_select_list(self, columns: Sequence[WarehouseColumnLike]) -> str:
        """Stage columns as target values (through ``insert_expression``)."""
        return ", ".join(self.insert_expression(self.quote(c.name), c.logical) for c in columns)

    def key_match(self, column_sql: str, rule: str | None) -> str:
        """The expression a key column is matched by in a merge: MySQL's equality for the column.

        ``rule`` says what the source's collation ignores (``engine.collation.key_equality``): ``pad``
        trailing spaces (PAD SPACE: ``'abc' = 'abc '``), ``case`` letter case (``'abc' = 'ABC'``),
        ``case_pad`` both; None compares exactly.
        """
        if rule in ("pad", "case_pad"):
            column_sql = f"RTRIM({column_sql})"
        if rule in ("case", "case_pad"):
            column_sql = f"LOWER({column_sql})"
        return column_sql

    def key_match_index(self, target: TableRef, key: Sequence[str], key_equality: Mapping[str, str]) -> str | None:
        """An index on the key as :meth:`key_match` compares it, so a merge's DELETE need not scan the target.

        None where the warehouse has no such indexes (Redshift), or every key column compares exactly.
        """
        return None

    def _key_list(self, key: Sequence[str], key_equality: Mapping[str, str] | None, prefix: str = "") -> str:
        """The key columns as matched (see :meth:`key_match`), comma-separated."""
        rules = key_equality or {}
        return ", ".join(self.key_match(prefix + self.quote(k), rules.get(k)) for k in key)

    def deduplicated_rows(
        self,
        stage: str,
        columns: Sequence[WarehouseColumnLike],
        key: Sequence[str],
        order_by: Sequence[str],
        key_equality: Mapping[str, str] | None = None,
    ) -> str:
        """SELECT one row per key from the stage: the latest by ``order_by`` (DESC, NULLs last).

        Keys are equal as the source compares them (``key_equality``, see :meth:`key_match`).
        The portable form: ROW_NUMBER() over the key. PostgreSQL overrides it with DISTINCT ON.
        """
        names = [c.name for c in columns]
        rn = _free_name("__sp_rn", names)
        sub = _free_name("__sp_dedup", names)
        order = self._dedup_order(key, order_by)
        inner = (
            f"SELECT {self.column_list(names)}, ROW_NUMBER() OVER (PARTITION BY {self._key_list(key, key_equality)} "
            f"ORDER BY {order}) AS {self.quote(rn)} FROM {self.quote(stage)}"
        )
        return (
            f"SELECT {self._insert_select_list(columns)} FROM ({inner}) AS {self.quote(sub)} WHERE {self.quote(rn)} = 1"
        )

    def _dedup_order(self, key: Sequence[str], order_by: Sequence[str]) -> str:
        ordering = [c for c in order_by if c not in key] or list(key)
        return ", ".join(f"{self.quote(c)} DESC NULLS LAST" for c in ordering)

    def merge_statements(
        self,
        target: TableRef,
        stage: str,
        columns: Sequence[WarehouseColumnLike],
        *,
        key: Sequence[str],
        order_by: Sequence[str] = (),
        key_equality: Mapping[str, str] | None = None,
    ) -> tuple[str, ...]:
        """Upsert the stage into the target: delete the keys present in the stage, insert the latest row per key.

        ``order_by`` are the cursor columns: among stage rows sharing a key, the greatest
        ``(cursor…)`` wins. Keys match as the source compares them (``key_equality``): a key whose
        case or trailing spaces changed at the source replaces its old row. Run inside the load
        transaction, together with the ledger row.
        """
        if not key:
            raise ValueError(f"merge into {target} needs key columns (use append for tables without a key)")
        _check_columns(target, columns, key)
        if stage == target.name:
            raise ValueError(f"stage table {stage!r} must not share the target's name")
        rules = key_equality or {}
        match = " AND ".join(
            f"{self.key_match(f'{self.quote(target.name)}.{self.quote(k)}', rules.get(k))} = "
            f"{self.key_match(f'{self.quote(stage)}.{self.quote(k)}', rules.get(k))}"
            for k in key
        )
        delete = f"DELETE FROM {self.table_sql(target)} USING {self.quote(stage)} WHERE {match}"
        insert = (
            f"INSERT INTO {self.table_sql(target)} ({self.column_list(columns)}) "
            f"{self.deduplicated_rows(stage, columns, key, order_by, key_equality)}"
        )
        return (delete, insert)

    def append_statements(
        self, target: TableRef, stage: str, columns: Sequence[WarehouseColumnLike]
    ) -> tuple[str, ...]:
        """Insert every stage row (tables without a key; exactly-once comes from the ledger)."""
        return (
            f"INSERT INTO {self.table_sql(target)} ({self.column_list(columns)}) "
            f"SELECT {self._insert_select_list(columns)} FROM {self.quote(stage)}",
        )

    def _replacement_rows(
        self,
        stage: str,
        columns: Sequence[WarehouseColumnLike],
        key: Sequence[str],
        order_by: Sequence[str],
        key_equality: Mapping[str, str] | None = None,
    ) -> str:
        """The stage's rows for a full replace: the latest per key when there is a key."""
        if key:
            return self.deduplicated_rows(stage, columns, key, order_by, key_equality)
        return f"SELECT {self._insert_select_list(columns)} FROM {self.quote(stage)}"

    def replace_in_place_statements(
        self,
        target: TableRef,
        stage: str,
        columns: Sequence[WarehouseColumnLike],
        *,
        key: Sequence[str] = (),
        order_by: Sequence[str] = (),
        key_equality: Mapping[str, str] | None = None,
    ) -> tuple[str, ...]:
        """Atomic replace keeping the table itself (grants, ownership, dependent views): DELETE all + INSERT.

        Run in one transaction: readers see the old rows until the commit and the new ones after.
        Not TRUNCATE, which commits on Redshift; not a swap by rename, which breaks dependent
        views (DROP is RESTRICT) and loses grants and ownership.
        """
        rows = self._replacement_rows(stage, columns, key, order_by, key_equality)
        return (
            f"DELETE FROM {self.table_sql(target)}",
            f"INSERT INTO {self.table_sql(target)} ({self.column_list(columns)}) {rows}",
        )

    # ------------------------------------------------------------------ schema evolution

    def columns_query(self, table: TableRef) -> Statement:
        """The target's columns; feed the rows to ``parse_columns``."""
        return Statement(
            "SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale, "
            "is_nullable FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "ORDER BY ordinal_position",
            (table.schema, table.name),
        )

    def parse_columns(self, rows: Iterable[Sequence[Any]]) -> tuple[ExistingColumn, ...]:
        return tuple(
            ExistingColumn(
                name=str(name),
                data_type=str(data_type).lower(),
                char_max_length=_opt_int(length),
                numeric_precision=_opt_int(precision),
                numeric_scale=_opt_int(scale),
                nullable=str(nullable).upper() == "YES",
            )
            for name, data_type, length, precision, scale, nullable in rows
        )

    def existing_type(self, column: ExistingColumn) -> PhysicalType:
        """information_schema's description of a column as a comparable type."""
        data_type = column.data_type
        aliases = {
            "character varying": "varchar",
            "character": "char",
            "timestamp without time zone": "timestamp",
            "timestamp with time zone": "timestamptz",
            "binary varying": "varbyte",
            "varbinary": "varbyte",
        }
        name = aliases.get(data_type, data_type)
        if name == "numeric":
            return PhysicalType("numeric", precision=column.numeric_precision, scale=column.numeric_scale or 0)
        if name in ("varchar", "char", "varbyte"):
            return PhysicalType(name, length=column.char_max_length)
        return PhysicalType(name)

    def plan_evolution(
        self,
        table: TableRef,
        existing: Sequence[ExistingColumn],
        desired: Sequence[WarehouseColumnLike],
        *,
        layout: TableLayout | None = None,
        key_columns: frozenset[str] = frozenset(),
    ) -> EvolutionPlan:
        """ADD the new columns, widen grown ones, keep the ones gone from the source; raise if incompatible.

        ``key_columns`` are the DISTKEY/SORTKEY columns the catalog reports (Redshift): a widening
        that cannot happen in place on such a column (or on a NOT NULL one) rebuilds the table.
        """
        by_name = {c.name: c for c in existing}
        changes: list[SchemaChange] = []
        widened: dict[str, PhysicalType] = {}  # every column whose type grows
        rebuild = False
        for column in desired:
            new_type = self.physical_type(column.logical)
            current = by_name.get(column.name)
            if current is None:
                changes.append(
                    SchemaChange(
                        "add_column",
                        str(table),
                        column.name,
                        None,
                        new_type.sql,
                        (f"ALTER TABLE {self.table_sql(table)} ADD COLUMN {self.quote(column.name)} {new_type.sql}",),
                    )
                )
                continue
            old_type = self.existing_type(current)
            target_type = self.widened(table, column.name, old_type, new_type)
            if target_type is None:
                continue
            widened[column.name] = target_type
            altered = self.alter_column_type(table, current, old_type, target_type, layout, key_columns)
            if altered is None:
                rebuild = True
                continue
            statements, transactional = altered
            changes.append(
                SchemaChange(
                    "widen_column",
                    str(table),
                    column.name,
                    old_type.sql,
                    target_type.sql,
                    statements,
                    transactional,
                )
            )
        if rebuild:  # the deep copy carries every widening and every added column at once
            changes = [self._rebuild_change(table, existing, desired, widened, layout)]
        desired_names = {c.name for c in desired}
        for current in existing:
            if current.name not in desired_names and current.name != SOFT_DELETE_COLUMN:
                changes.append(
                    SchemaChange("kept_column", str(table), current.name, self.existing_type(current).sql, None)
                )
        return EvolutionPlan(str(table), tuple(changes))

    def _rebuild_change(
        self,
        table: TableRef,
        existing: Sequence[ExistingColumn],
        desired: Sequence[WarehouseColumnLike],
        widened: dict[str, PhysicalType],
        layout: TableLayout | None,
    ) -> SchemaChange:
        """A deep copy: a new table with the widened types (NOT NULL and column order kept), filled, swapped in.

        Runs inside the load transaction under the table lock. The old table is dropped without
        CASCADE: a dependent view stops the load with the warehouse's own message.
        """
        known = {c.name for c in existing}
        added = [c for c in desired if c.name not in known]
        lines: list[str] = []
        for column in existing:
            kind = widened.get(column.name) or self.existing_type(column)
            lines.append(f"{self.quote(column.name)} {kind.sql}{'' if column.nullable else ' NOT NULL'}")
        lines += [f"{self.quote(c.name)} {self.render_type(c.logical)}" for c in added]
        copy = TableRef(table.schema, derived_name(table.name, f"{INTERNAL_SUFFIX}_deep", self.max_identifier_bytes))
        shape = [WarehouseColumn(c.name, LogicalType(Kind.TEXT)) for c in existing] + list(added)
        body = ",\n  ".join(lines)
        names = self.column_list([c.name for c in existing])
        statements = (
            self.drop_table(copy),
            f"CREATE TABLE {self.table_sql(copy)} (\n  {body}\n){self.table_attributes(copy, shape, layout)}",
            f"INSERT INTO {self.table_sql(copy)} ({names}) SELECT {names} FROM {self.table_sql(table)}",
            self.drop_table(table, if_exists=False),
            f"ALTER TABLE {self.table_sql(copy)} RENAME TO {self.quote(table.name)}",
        )
        described = ", ".join(f"{name} to {kind.sql}" for name, kind in widened.items())
        note = described + (f"; added {', '.join(c.name for c in added)}" if added else "")
        return SchemaChange("rebuild_table", str(table), ", ".join(widened), None, None, statements, True, note)

    def widened(self, table: TableRef, column: str, old: PhysicalType, new: PhysicalType) -> PhysicalType | None:
        """The type the target column must become to hold ``new`` values (None: it already can)."""
        if old == new:
            return None
        if old.name == "numeric" and old.precision is None and _is_exact(new):
            return None  # PostgreSQL's unconstrained NUMERIC holds any exact number
        if _is_exact(old) and _is_exact(new):
            old_int, old_scale = _digits(old)
            new_int, new_scale = _digits(new)
            if old_int >= new_int and old_scale >= new_scale:
                return None
            if old.name in _EXACT_DIGITS and new.name in _EXACT_DIGITS:
                return new
            precision = max(old_int, new_int) + max(old_scale, new_scale)
            if precision <= self.max_numeric_precision:
                return PhysicalType("numeric", precision=precision, scale=max(old_scale, new_scale))
        elif old.name in _FLOAT_RANK and new.name in _FLOAT_RANK:
            return None if _FLOAT_RANK[old.name] >= _FLOAT_RANK[new.name] else new
        elif old.name in _TEXTUAL and new.name in _TEXTUAL:
            if old.name == "text":
                return None
            if new.name == "text":
                return new
            old_length, new_length = old.length or 0, new.length or 0
            if old.name == "varchar" and old_length >= new_length:
                return None
            return PhysicalType("varchar", length=max(old_length, new_length))
        elif old.name in ("bytea", "varbyte") and new.name == old.name:
            if old.length is None or (new.length is not None and old.length >= new.length):
                return None
            return new
        elif {old.name, new.name} <= {"json", "jsonb"}:
            return None
        raise IncompatibleSchemaChange(str(table), column, old.sql, new.sql, self._incompatible_fix(table, column, new))

    def _incompatible_fix(self, table: TableRef, column: str, new: PhysicalType) -> str:
        return (
            f"Fix: either drop the target table (DROP TABLE {self.table_sql(table)}) and sync the table again: a "
            "sync into a missing target reads every row from the beginning and recreates it with the new type; "
            f"or change the column yourself (e.g. ALTER TABLE "
            f"{self.table_sql(table)} ALTER COLUMN {self.quote(column)} TYPE {new.sql} USING ...) and rerun."
        )

    def alter_column_type(
        self,
        table: TableRef,
        column: ExistingColumn,
        old: PhysicalType,
        new: PhysicalType,
        layout: TableLayout | None,
        key_columns: frozenset[str] = frozenset(),
    ) -> tuple[tuple[str, ...], bool] | None:
        """Statements that change a column's type in place and whether they may run in a transaction.

        None: the column cannot change in place; the table is rebuilt (deep copy).
        """
        name = self.quote(column.name)
        return (
            (f"ALTER TABLE {self.table_sql(table)} ALTER COLUMN {name} TYPE {new.sql} USING {name}::{new.sql}",),
            True,
        )

    # ------------------------------------------------------------------ reconcile: checksums and repairs
    # Each value is rendered as one canonical text, identical to what the MySQL side renders for the
    # same logical type (sync_platform/engine/reconcile/canonical.py); rows hash to 60-bit integers
    # that are summed per key range. NULL renders as ''; text as '<length>:<text>' (unbounded text as
    # its MD5 where ``hashes_unbounded_text``), binary as its MD5.

    text_type = "TEXT"
    # Unbounded text enters a row's canonical text as its MD5 (a fixed width) where text values are
    # limited (Redshift's VARCHAR ends at 65535 bytes); elsewhere as itself, which costs less.
    hashes_unbounded_text = False
    # DATETIME values as the server's own text, 'YYYY-MM-DD HH:MM:SS[.ffffff]' without the fraction's
    # trailing zeros (under ``reconcile_session``'s ISO DateStyle): far cheaper per row than TO_CHAR.
    # The MySQL side renders the same (CAST, trailing zeros trimmed); Redshift keeps TO_CHAR.
    timestamp_as_text = True
    reconcile_session: tuple[str, ...] = ("SET datestyle = 'ISO, MDY'",)  # run in the comparison's transaction

    def canonical_text(self, column_sql: str, logical: LogicalType) -> str:
        """The canonical text of one column value (NULL when the value is NULL)."""
        kind, text = logical.kind, self.text_type
        if kind in (Kind.SMALLINT, Kind.INTEGER, Kind.BIGINT, Kind.DECIMAL):
            return f"CAST({column_sql} AS {text})"  # numerics print at their declared scale
        if kind is Kind.REAL:
            return self.float_text(column_sql, FLOAT_DIGITS)
        if kind is Kind.DOUBLE:
            return self.float_text(column_sql, DOUBLE_DIGITS)
        if kind is Kind.DATE:
            return f"TO_CHAR({column_sql}, 'YYYY-MM-DD')"
        if kind is Kind.TIMESTAMP:
            if self.timestamp_as_text:
                return f"CAST({column_sql} AS {text})"
            return f"TO_CHAR({column_sql}, 'YYYY-MM-DD HH24:MI:SS.US')"
        if kind is Kind.TIMESTAMPTZ:  # microseconds since the epoch: the instant, whatever the zone
            return f"CAST(CAST(ROUND(EXTRACT(EPOCH FROM {column_sql}) * 1000000) AS BIGINT) AS {text})"
        if kind is Kind.JSON:  # JSON text is normalized differently on each side: presence only
            return f"CASE WHEN {column_sql} IS NULL THEN NULL ELSE 'j' END"
        if kind is Kind.BINARY:
            return f"MD5({self.binary_hex(column_sql)})"
        if kind is Kind.TEXT and self.hashes_unbounded_text:
            return f"MD5({column_sql})"
        # Text as itself after its length: a '|' inside cannot be taken for a column boundary.
        return f"CAST(LENGTH({column_sql}) AS {text}) || ':' || {column_sql}"

    def binary_hex(self, column_sql: str) -> str:
        return f"ENCODE({column_sql}, 'hex')"

    def float_text(self, column_sql: str, digits: int) -> str:
        """``digits`` significant digits as ``<integer mantissa>e<exponent>``, from IEEE arithmetic only.

        MySQL and PostgreSQL print floats differently; this renders both the same way (see the MySQL
        twin). ``FLOOR(m + 0.5)`` rather than ROUND, whose tie rule differs between servers.
        """
        x = f"CAST({column_sql} AS DOUBLE PRECISION)"
        e = f"FLOOR(LOG(ABS({x})))"
        scaled = f"(CASE WHEN {e} >= 0 THEN {x} / POWER(10, {e}) ELSE {x} * POWER(10, -{e}) END)"
        mantissa = f"CAST(FLOOR({scaled} * POWER(10, {digits - 1}) + 0.5) AS BIGINT)"
        return (
            f"CASE WHEN {x} IS NULL THEN NULL WHEN {x} = 0 THEN '0' ELSE "
            f"CAST({mantissa} AS {self.text_type}) || 'e' || CAST(CAST({e} AS INTEGER) AS {self.text_type}) END"
        )

    def row_text(self, columns: Sequence[tuple[str, LogicalType]]) -> str:
        """One text per row: canonical texts joined by '|' (NULL as '')."""
        parts = [f"COALESCE({self.canonical_text(sql, logical)}, '')" for sql, logical in columns]
        return " || '|' || ".join(parts)

    def row_hash(self, text_sql: str) -> str:
        """60 bits of the SHA-256 of a row's text (its UTF-8 bytes), as an integer (summed per range)."""
        digest = f"ENCODE(SHA256(CONVERT_TO({text_sql}, 'UTF8')), 'hex')"
        return f"('x' || SUBSTR({digest}, 1, {ROW_HASH_HEX_DIGITS}))::BIT(60)::BIGINT"

    def hash_sum(self, hash_sql: str) -> str:
        return f"COALESCE(SUM({hash_sql}), 0)"

    def key_order_expression(self, value_sql: str, logical: LogicalType, *, case_insensitive: bool) -> str:
        """The expression keys are compared and ordered by: MySQL's order where the types allow.

        A case-insensitive MySQL collation orders ``UPPER(k)`` (its weights are upper-case letters);
        where the orders still differ (accents), reconcile matches rows by key across ranges.
        """
        if case_insensitive and logical.kind in (Kind.VARCHAR, Kind.TEXT):
            return f"UPPER(CAST({value_sql} AS {self.text_type}))"
        return value_sql

    def delete_keys(self, table: TableRef, key: Sequence[str], count: int) -> str:
        """DELETE of ``count`` rows by key (parameters: the key values, row after row)."""
        return f"DELETE FROM {self.table_sql(table)} WHERE {self._keys_match(key, count)}"

    def soft_delete_keys(self, table: TableRef, key: Sequence[str], count: int) -> str:
        """Mark ``count`` rows deleted (``_deleted_at``) by key, keeping an earlier mark.

        Parameters: the time of the mark, then the key values row after row.
        """
        column = self.quote(SOFT_DELETE_COLUMN)
        return (
            f"UPDATE {self.table_sql(table)} SET {column} = %s "
            f"WHERE {column} IS NULL AND ({self._keys_match(key, count)})"
        )

    def add_soft_delete_column(self, table: TableRef) -> str:
        return f"ALTER TABLE {self.table_sql(table)} ADD COLUMN {self.quote(SOFT_DELETE_COLUMN)} TIMESTAMPTZ"

    def _keys_match(self, key: Sequence[str], count: int) -> str:
        one = "(" + " AND ".join(f"{self.quote(k)} = %s" for k in key) + ")"
        return " OR ".join([one] * count)

    # ------------------------------------------------------------------ ledger

    def ledger_table(self, schema: str) -> TableRef:
        return TableRef(schema, LEDGER_TABLE)

    def create_ledger(self, schema: str) -> str:
        """The load ledger: one row per staged batch loaded, written in the batch's own transaction."""
        key = ',\n  PRIMARY KEY ("table_name", "batch_id")' if self.declares_primary_key else ""
        return (
            f"CREATE TABLE IF NOT EXISTS {self.table_sql(self.ledger_table(schema))} (\n"
            '  "table_name" VARCHAR(1024) NOT NULL,\n'
            '  "batch_id" VARCHAR(1024) NOT NULL,\n'
            '  "run_id" VARCHAR(256),\n'
            '  "row_count" BIGINT NOT NULL,\n'
            '  "file_count" INTEGER,\n'
            '  "byte_count" BIGINT,\n'
            '  "watermark" VARCHAR(65535),\n'
            f'  "loaded_at" TIMESTAMPTZ NOT NULL{key}\n'
            ")"
        )

    def record_batch(self, schema: str, entry: LedgerEntry) -> Statement:
        """INSERT of the ledger row (run it in the same transaction as the batch's rows)."""
        loaded_at = entry.loaded_at or dt.datetime.now(dt.UTC)
        return Statement(
            f"INSERT INTO {self.table_sql(self.ledger_table(schema))} "
            '("table_name", "batch_id", "run_id", "row_count", "file_count", "byte_count", "watermark", "loaded_at") '
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                entry.table_name,
                entry.batch_id,
                entry.run_id,
                entry.rows,
                entry.files,
                entry.bytes,
                entry.watermark,
                loaded_at,
            ),
        )

    def batch_loaded_query(self, schema: str, table_name: str, batch_id: str) -> Statement:
        """One row when the batch is already loaded (check it after taking the table lock)."""
        return Statement(
            f'SELECT 1 FROM {self.table_sql(self.ledger_table(schema))} WHERE "table_name" = %s AND "batch_id" = %s',
            (table_name, batch_id),
        )

    def loaded_batches_query(self, schema: str, table_name: str) -> Statement:
        return Statement(
            f'SELECT "batch_id", "run_id", "row_count", "loaded_at" FROM {self.table_sql(self.ledger_table(schema))} '
            'WHERE "table_name" = %s ORDER BY "loaded_at", "batch_id"',
            (table_name,),
        )

    # ------------------------------------------------------------------ locking

    def lock_statement(self, table: TableRef) -> str:
        """Serialize writers of one table until the transaction ends (run it inside the load transaction).

        A transaction-scoped advisory lock: readers are never blocked, and it needs no table to exist.
        """
        return f"SELECT pg_advisory_xact_lock({lock_key(table)})"

    # ------------------------------------------------------------------ what the loader reads first

    def row_estimate_query(self, table: TableRef) -> Statement | None:
        """The catalog's row estimate of ``table`` (one row, NULL when unknown); None where COUNT(*) is cheap
        (Redshift reads one column's block headers). Where there is one, COUNT(*) visits every row, and a
        load reports the estimate for a large target instead of counting it every run."""
        return None

    def unique_key_query(self, table: TableRef) -> Statement | None:
        """Rows of (unique index columns, sorted) for ``table``; None where keys are not enforced."""
        return None

    def key_columns_queries(self, table: TableRef) -> tuple[Statement, ...]:
        """Statements whose last one lists (column, is_distkey, sortkey position); empty without DISTKEY/SORTKEY."""
        return ()

    def parse_key_columns(self, rows: Iterable[Sequence[Any]]) -> frozenset[str]:
        return frozenset(str(name) for name, distkey, sortkey in rows if distkey or (sortkey or 0) != 0)

    def is_conflict(self, sqlstate: str | None, message: str) -> bool:
        """A concurrent-writer conflict that succeeds when the transaction is retried.

        Besides serialization failures and deadlocks: two sessions racing through CREATE … IF NOT
        EXISTS of the same table (the loser sees the winner's catalog row, or "already exists");
        the retry finds the table and passes.
        """
        if sqlstate in ("40001", "40P01", "42P07"):
            return True
        return sqlstate == "23505" and "pg_type_typname_nsp_index" in message

    # ------------------------------------------------------------------ the load plan

    def fill_stage_step(self, stage: str, batch: BatchLoad) -> LoadStep:
        """How the batch's rows reach the stage (``capabilities.stage_fill``)."""
        binary = self.copies_binary(batch.columns)  # the stage's columns are ``stage_type``
        return LoadStep("stage", "copy_stdin", self.copy_from_stdin(stage, batch.columns, binary=binary), binary=binary)

    def copy_from_stdin(
        self, table: str | TableRef, columns: Sequence[WarehouseColumnLike | str], *, binary: bool = False
    ) -> str:
        """COPY for ``cursor.copy_expert`` into a stage (by name) or a table, in PostgreSQL's text or binary format."""
        name = self.table_sql(table) if isinstance(table, TableRef) else self.quote(table)
        return f"COPY {name} ({self.column_list(columns)}) FROM STDIN WITH (FORMAT {'binary' if binary else 'text'})"

    def copies_binary(self, columns: Sequence[WarehouseColumnLike]) -> bool:
        """True when rows of these columns may be sent in COPY's binary format into columns of exactly
        ``render_type`` (= ``stage_type``) each; only dialects with a binary encoder say so."""
        return False

    def _binary_into(self, state: TargetState, columns: Sequence[WarehouseColumnLike]) -> bool:
        """Binary COPY into an existing target: only when each column has exactly the type the
        encoder writes for (binary fields are read by the column's own type, e.g. json ≠ jsonb)."""
        if not self.copies_binary(columns):
            return False
        existing = {c.name: self.existing_type(c).sql for c in state.columns}
        return all(existing.get(c.name) == self.render_type(c.logical) for c in columns)

    def copies_directly(self, batch: BatchLoad, state: TargetState) -> bool:
        """Rows may skip the stage: the warehouse enforces the key and the target is empty (or replaced).

        A repeated key in the batch then fails the COPY, and the loader plans again with the stage.
        """
        if not self.capabilities.enforces_keys:
            return False
        if not (state.empty or batch.write_mode == "replace"):
            return False
        if batch.key_equality:  # the warehouse's key compares exactly: 'abc' and 'ABC' would both pass
            return False
        return not batch.key or not state.exists or state.unique_key

    def load_plan(self, batch: BatchLoad, state: TargetState, *, direct: bool | None = None) -> LoadPlan:
        """The ordered statements of loading one batch (see ``LoadPlan``); raises ``IncompatibleSchemaChange``."""
        target, columns, schema = batch.target, batch.columns, batch.target.schema
        direct = self.copies_directly(batch, state) if direct is None else direct
        index = (
            self.key_match_index(target, batch.key, dict(batch.key_equality))
            if batch.write_mode == "merge" and batch.key_equality
            else None
        )
        steps: list[LoadStep] = []
        stage = None if direct else self.stage_name(target, batch.run_token)
        if stage is not None:
            steps += [
                LoadStep("stage", "execute", self.drop_stage(stage)),
                LoadStep("stage", "execute", self.create_stage(stage, columns, layout=batch.layout)),
                self.fill_stage_step(stage, batch),
                LoadStep("stage", "commit"),
            ]
        changes: tuple[SchemaChange, ...] = ()
        expected: tuple[tuple[str, str | None], ...] = tuple((c.name, None) for c in columns)
        if not state.exists:
            # Created before the lock: Redshift's LOCK needs the table, and IF NOT EXISTS lets racers pass.
            create = self.create_table(target, columns, primary_key=batch.key, layout=batch.layout)
            if self.capabilities.advisory_locks:  # see setup_statements
                steps.append(LoadStep("prepare", "execute", self.lock_statement(target)))
            steps += [LoadStep("prepare", "execute", sql) for sql in (create, index) if sql]
            steps.append(LoadStep("prepare", "commit"))
        else:
            evolution = self.plan_evolution(
                target, state.columns, columns, layout=batch.layout, key_columns=state.key_columns
            )
            changes = evolution.changes
            steps += [
                LoadStep("prepare", "autocommit", sql) for c in changes if not c.transactional for sql in c.statements
            ]
            if index:  # a no-op once the index exists; built once for a table created before it
                if self.capabilities.advisory_locks:
                    steps.append(LoadStep("prepare", "execute", self.lock_statement(target)))
                steps += [LoadStep("prepare", "execute", index), LoadStep("prepare", "commit")]
            types: dict[str, str | None] = {c.name: self.existing_type(c).sql for c in state.columns}
            types.update({c.column: c.new_type for c in changes if not c.transactional and c.statements})
            expected = tuple(types.items())
        loaded = self.batch_loaded_query(schema, batch.ledger.table_name, batch.ledger.batch_id)
        described = self.columns_query(target)
        steps += [
            LoadStep("load", "execute", self.lock_statement(target)),
            LoadStep("load", "skip_if_loaded", loaded.sql, loaded.params),
            LoadStep("load", "verify_columns", described.sql, described.params),
        ]
        steps += [LoadStep("load", "execute", sql) for c in changes if c.transactional for sql in c.statements]
        if direct:
            if batch.write_mode == "replace" and state.exists:
                steps.append(LoadStep("load", "execute", f"DELETE FROM {self.table_sql(target)}"))
            binary = (
                self.copies_binary(columns) if not state.exists else not changes and self._binary_into(state, columns)
            )
            copy = self.copy_from_stdin(target, columns, binary=binary)
            steps.append(LoadStep("load", "copy_stdin", copy, binary=binary))
        else:
            assert stage is not None
            rules = dict(batch.key_equality)
            if batch.write_mode == "merge":
                moved = self.merge_statements(
                    target, stage, columns, key=batch.key, order_by=batch.order_by, key_equality=rules
                )
            elif batch.write_mode == "replace":
                moved = self.replace_in_place_statements(
                    target, stage, columns, key=batch.key, order_by=batch.order_by, key_equality=rules
                )
            else:
                moved = self.append_statements(target, stage, columns)
            steps += [LoadStep("load", "execute", sql) for sql in moved]
        record = self.record_batch(schema, batch.ledger)
        steps += [LoadStep("load", "execute", record.sql, record.params), LoadStep("load", "commit")]
        if stage is not None:
            steps += [LoadStep("cleanup", "execute", self.drop_stage(stage)), LoadStep("cleanup", "commit")]
        return LoadPlan(tuple(steps), changes, direct, stage, expected)

    def described_columns(self, columns: Sequence[ExistingColumn]) -> list[tuple[str, str]]:
        """(name, type) of target columns, comparable with ``LoadPlan.expected_columns``."""
        return [(c.name, self.existing_type(c).sql) for c in columns]

    def setup_statements(self, schema: str) -> tuple[str, ...]:
        """Once per load, committed on its own: the schema and the ledger exist (racing creators are harmless)."""
        # PostgreSQL's concurrent CREATE … IF NOT EXISTS can still collide: serialize on an advisory key.
        guard = (
            (self.lock_statement(TableRef(schema, "_sync_platform_schema")),)
            if self.capabilities.advisory_locks
            else ()
        )
        return (*guard, self.create_schema(schema), self.create_ledger(schema))


def lock_key(table: TableRef) -> int:
    """A stable signed 64-bit key for ``schema.table`` (advisory locks)."""
    digest = hashlib.blake2b(f"sync_platform:{table.schema}.{table.name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _check_columns(table: TableRef, columns: Sequence[WarehouseColumnLike], key: Sequence[str]) -> None:
    names = [c.name for c in columns]
    if not names:
        raise ValueError(f"{table}: no columns")
    if len(set(names)) != len(names):
        raise ValueError(f"{table}: duplicate column names in {names}")
    missing = [k for k in key if k not in names]
    if missing:
        raise ValueError(f"{table}: key columns {missing} are not among the columns {names}")


def _free_name(wanted: str, taken: Iterable[str]) -> str:
    names = set(taken)
    while wanted in names:
        wanted = "_" + wanted
    return wanted


def _is_exact(t: PhysicalType) -> bool:
    return t.name in _EXACT_DIGITS or t.name == "numeric"


def _digits(t: PhysicalType) -> tuple[int, int]:
    """(integer digits, scale) a type can hold."""
    if t.name in _EXACT_DIGITS:
        return _EXACT_DIGITS[t.name], 0
    precision, scale = t.precision or 38, t.scale or 0
    return precision - scale, scale


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
