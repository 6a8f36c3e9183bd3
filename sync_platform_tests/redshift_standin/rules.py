"""The rule table: what Redshift refuses, with its SQLSTATE, its error text and the AWS page it comes from.

Statement rules have a ``check`` run on every statement before it reaches PostgreSQL; it returns
the values for the message when the statement breaks the rule. Rules enforced while a statement
runs (COPY's checks, DDL types, value lengths) have ``check=None`` and name the place that
enforces them in ``enforced_by``; they raise with the same rule id, so every refusal the stand-in
makes is one row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sync_platform_tests.redshift_standin.sql import Token, qualified_name_at, significant

DG = "https://docs.aws.amazon.com/redshift/latest/dg/"


@dataclass(frozen=True)
class Statement:
    """A statement as the rules see it."""

    tokens: list[Token]
    status: str  # transaction status before it runs: I (idle), T (in a block), E (failed block)
    lookup: Callable[[str], list[tuple[Any, ...]]]  # runs a catalog query on the session

    @property
    def sig(self) -> list[Token]:
        return significant(self.tokens)

    def head(self, count: int) -> list[str]:
        return [t.upper or t.text for t in self.sig[:count]]


@dataclass(frozen=True)
class Rule:
    id: str
    refuses: str  # what Redshift refuses, in a line
    sqlstate: str
    message: str  # Redshift's error text; {placeholders} filled from the check's result
    doc: str
    check: Callable[[Statement], dict[str, Any] | None] | None = None
    enforced_by: str = "statement check"


class Refusal(Exception):
    """A statement refused: the SQLSTATE and text the client receives (``rule_id`` when a rule says so)."""

    def __init__(
        self,
        sqlstate: str,
        message: str,
        rule_id: str = "",
        detail: str | None = None,
        position: int | None = None,
    ) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message
        self.rule_id = rule_id
        self.detail = detail
        self.position = position  # 1-based character in the Query string, as PostgreSQL reports syntax errors


def refused(rule_id: str, *, at: Token | None = None, **values: Any) -> Refusal:
    """The refusal a rule prescribes, its message filled with ``values``; ``at`` is the token to point at."""
    rule = RULES_BY_ID[rule_id]
    position = at.offset + 1 if at is not None and at.offset >= 0 else None
    return Refusal(rule.sqlstate, rule.message.format(**values), rule_id, position=position)


# ------------------------------------------------------------------------- checks


def _calls(stmt: Statement, names: set[str] | Callable[[str], bool]) -> str | None:
    sig = stmt.sig
    for i, t in enumerate(sig[:-1]):
        if t.kind != "word" or sig[i + 1].text != "(":
            continue
        if i > 0 and sig[i - 1].text == "." and not (i > 1 and sig[i - 2].upper == "PG_CATALOG"):
            continue
        name = t.text.lower()
        if (name in names) if isinstance(names, set) else names(name):
            return name
    return None


ADVISORY_LOCK_FUNCTIONS = {
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
    "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_try_advisory_xact_lock",
    "pg_try_advisory_xact_lock_shared",
}

# PostgreSQL functions Amazon Redshift does not have (the "Unsupported PostgreSQL functions" page
# lists these families: array functions and operators, most JSON functions, UUID generation,
# set-returning functions, object-size and advisory-lock administration functions, …).
ABSENT_FUNCTIONS = {
    "array_agg",
    "string_agg",
    "json_agg",
    "json_object_agg",
    "jsonb_agg",
    "jsonb_object_agg",
    "to_json",
    "to_jsonb",
    "json_build_object",
    "json_build_array",
    "row_to_json",
    "array_to_json",
    "gen_random_uuid",
    "uuid_generate_v4",
    "unnest",
    "array_length",
    "array_append",
    "array_cat",
    "array_to_string",
    "string_to_array",
    "cardinality",
    "regexp_matches",
    "regexp_split_to_table",
    "regexp_split_to_array",
    "to_regclass",
    "pg_relation_size",
    "pg_total_relation_size",
    "pg_table_size",
    "pg_sleep",
    "txid_current",
    "pg_current_xact_id",
    "format",
    "xmlagg",
    "generate_subscripts",
    # listed by name on the page
    "every",
    "xml_agg",
    "corr",
    "covar_pop",
    "covar_samp",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "clock_timestamp",
    "justify_days",
    "justify_hours",
    "justify_interval",
    "transaction_timestamp",
    "div",
    "setseed",
    "width_bucket",
    "bit_length",
    "overlay",
    "convert_from",
    "convert_to",
    "nextval",
    "currval",
    "setval",
}


def _advisory_lock(stmt: Statement) -> dict[str, Any] | None:
    name = _calls(stmt, ADVISORY_LOCK_FUNCTIONS)
    return {"name": name} if name else None


def _absent_function(stmt: Statement) -> dict[str, Any] | None:
    name = _calls(stmt, lambda n: n in ABSENT_FUNCTIONS or n.startswith("jsonb_"))
    return {"name": name} if name else None


def _generate_series_on_tables(stmt: Statement) -> dict[str, Any] | None:
    """generate_series runs on the leader node only: fine alone, refused next to a table."""
    if not _calls(stmt, {"generate_series"}):
        return None
    sig = stmt.sig
    for i, t in enumerate(sig[:-1]):
        if t.upper in ("FROM", "JOIN", "INTO", "UPDATE") and sig[i + 1].name:
            _, after = qualified_name_at(sig, i + 1)
            if after >= len(sig) or sig[after].text != "(":
                return {}
    return None


def _distinct_on(stmt: Statement) -> dict[str, Any] | None:
    sig = stmt.sig
    for i, t in enumerate(sig[:-1]):
        if t.upper == "DISTINCT" and sig[i + 1].upper == "ON":
            return {}
    return None


def _on_conflict(stmt: Statement) -> dict[str, Any] | None:
    sig = stmt.sig
    if not sig or sig[0].upper != "INSERT":
        return None
    for i, t in enumerate(sig[:-1]):
        if t.upper == "ON" and sig[i + 1].upper == "CONFLICT":
            return {"at": t}
    return None


def _returning(stmt: Statement) -> dict[str, Any] | None:
    sig = stmt.sig
    if sig and sig[0].upper in ("INSERT", "UPDATE", "DELETE"):
        for t in sig:
            if t.upper == "RETURNING":
                return {"at": t}
    return None


def _copy_stdio(stmt: Statement) -> dict[str, Any] | None:
    sig = stmt.sig
    if not sig or sig[0].upper != "COPY":
        return None
    for i, t in enumerate(sig[:-1]):
        if t.upper in ("FROM", "TO") and sig[i + 1].upper in ("STDIN", "STDOUT", "PROGRAM"):
            return {"direction": t.upper, "stream": sig[i + 1].upper}
    return None


def _create_index(stmt: Statement) -> dict[str, Any] | None:
    words = stmt.head(3)
    if words[:2] == ["CREATE", "INDEX"] or words[:3] == ["CREATE", "UNIQUE", "INDEX"]:
        return {}
    return None


def _savepoint(stmt: Statement) -> dict[str, Any] | None:
    words = stmt.head(3)
    if not words:
        return None
    if words[0] == "SAVEPOINT" or words[0] == "RELEASE":
        return {"command": words[0]}
    if words[0] == "ROLLBACK" and ("TO" in words[1:3]):
        return {"command": "ROLLBACK TO SAVEPOINT"}
    return None


_OID_TYPES = {"regclass", "regproc", "regprocedure", "regoper", "regoperator", "regtype", "regnamespace", "regrole"}


def _oid_types(stmt: Statement) -> dict[str, Any] | None:
    sig = stmt.sig
    for i, t in enumerate(sig):
        if t.kind == "word" and t.text.lower() in _OID_TYPES and i > 0 and sig[i - 1].text in ("::", "AS", "as"):
            return {"type": t.text.lower()}
    return None


def _lock_mode(stmt: Statement) -> dict[str, Any] | None:
    sig = stmt.sig
    if sig and sig[0].upper == "LOCK" and any(t.upper in ("IN", "NOWAIT") for t in sig):
        token = next(t for t in sig if t.upper in ("IN", "NOWAIT"))
        return {"word": token.text, "at": token}
    return None


def _lock_targets(stmt: Statement) -> list[list[str]]:
    sig = stmt.sig
    i = 1
    if i < len(sig) and sig[i].upper == "TABLE":
        i += 1
    targets = []
    while i < len(sig) and sig[i].name:
        parts, i = qualified_name_at(sig, i)
        targets.append(parts)
        if i < len(sig) and sig[i].text == ",":
            i += 1
        else:
            break
    return targets


def _lock_missing_table(stmt: Statement) -> dict[str, Any] | None:
    sig = stmt.sig
    if not sig or sig[0].upper != "LOCK" or stmt.status == "E":
        return None
    for parts in _lock_targets(stmt):
        qualified = ".".join('"' + p.replace('"', '""') + '"' for p in parts)
        rows = stmt.lookup(f"SELECT to_regclass($q${qualified}$q$) IS NOT NULL")
        if rows and rows[0][0] in ("f", False):
            return {"name": parts[-1]}
    return None


def _alter_column_type_parts(stmt: Statement) -> tuple[list[str], str, list[Token]] | None:
    sig = stmt.sig
    if stmt.head(2) != ["ALTER", "TABLE"]:
        return None
    table, i = qualified_name_at(sig, 2)
    if i + 3 < len(sig) and sig[i].upper == "ALTER":
        j = i + 1
        if sig[j].upper == "COLUMN":
            j += 1
        column = sig[j].name
        if j + 1 < len(sig) and sig[j + 1].upper == "TYPE":
            return table, column, sig[j + 2 :]
    return None


def _alter_column_type_in_block(stmt: Statement) -> dict[str, Any] | None:
    if _alter_column_type_parts(stmt) and stmt.status in ("T", "E"):
        return {}
    return None


def _column_type(stmt: Statement, table: list[str], column: str) -> str | None:
    qualified = ".".join('"' + p.replace('"', '""') + '"' for p in table)
    rows = stmt.lookup(
        "SELECT redshift_standin.redshift_type(atttypid, atttypmod) FROM pg_attribute "
        f"WHERE attrelid = to_regclass($q${qualified}$q$) AND attname = $q${column}$q$ AND NOT attisdropped"
    )
    return str(rows[0][0]) if rows else None


def _alter_column_type_not_varchar(stmt: Statement) -> dict[str, Any] | None:
    parts = _alter_column_type_parts(stmt)
    if not parts:
        return None
    table, column, type_tokens = parts
    new_type = " ".join(t.text.lower() for t in type_tokens)
    current = _column_type(stmt, table, column)
    new_is_varchar = new_type.split("(")[0].strip() in ("varchar", "character varying", "nvarchar")
    if current is None:
        return None  # PostgreSQL reports the missing table or column
    if not new_is_varchar or not current.startswith("character varying"):
        return {"column": column, "current": current, "new": new_type}
    return None


def _key_columns(stmt: Statement, table: list[str]) -> tuple[str | None, list[str]]:
    qualified = ".".join('"' + p.replace('"', '""') + '"' for p in table)
    rows = stmt.lookup(
        "SELECT (SELECT attname FROM pg_attribute WHERE attrelid = l.relid AND attnum = l.distkey), "
        "ARRAY(SELECT attname FROM pg_attribute a WHERE a.attrelid = l.relid AND a.attnum = ANY (l.sortkey)) "
        f"FROM redshift_standin.table_layout l WHERE l.relid = to_regclass($q${qualified}$q$)"
    )
    if not rows:
        return None, []
    distkey, sortkey = rows[0]
    names = str(sortkey or "{}").strip("{}")
    return distkey, [n.strip('"') for n in names.split(",") if n]


def _drop_key_column(stmt: Statement) -> dict[str, Any] | None:
    sig = stmt.sig
    if stmt.head(2) != ["ALTER", "TABLE"] or stmt.status == "E":
        return None
    table, i = qualified_name_at(sig, 2)
    if i + 1 < len(sig) and sig[i].upper == "DROP":
        j = i + 1
        if sig[j].upper == "COLUMN":
            j += 1
        if j < len(sig) and sig[j].upper == "IF":
            j += 2
        if j >= len(sig):
            return None
        column = sig[j].name
        distkey, sortkey = _key_columns(stmt, table)
        if column == distkey:
            return {"kind": "distkey", "column": column}
        if column in sortkey:
            return {"kind": "sortkey", "column": column}
    return None


def _add_column_parts(stmt: Statement) -> list[Token] | None:
    sig = stmt.sig
    if stmt.head(2) != ["ALTER", "TABLE"]:
        return None
    _, i = qualified_name_at(sig, 2)
    if (
        i < len(sig)
        and sig[i].upper == "ADD"
        and i + 1 < len(sig)
        and sig[i + 1].upper
        not in (
            "CONSTRAINT",
            "PRIMARY",
            "UNIQUE",
            "FOREIGN",
        )
    ):
        return sig[i + 1 :]
    return None


def _add_key_column(stmt: Statement) -> dict[str, Any] | None:
    rest = _add_column_parts(stmt)
    if rest and any(t.upper in ("DISTKEY", "SORTKEY") for t in rest):
        return {}
    return None


def _add_several_columns(stmt: Statement) -> dict[str, Any] | None:
    rest = _add_column_parts(stmt)
    if not rest:
        return None
    depth = 0
    for t in rest:
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            depth -= 1
        elif t.text == "," and depth == 0:
            return {"at": t}
    return None


def _identifier_too_long(stmt: Statement) -> dict[str, Any] | None:
    for t in stmt.sig:
        name = t.name
        if name and len(name.encode("utf-8")) > 127:
            return {"name": name[:40] + "…", "bytes": len(name.encode("utf-8"))}
    return None


UNSUPPORTED_COLUMN_TYPES = {
    "json",
    "jsonb",
    "uuid",
    "bytea",
    "serial",
    "bigserial",
    "smallserial",
    "serial4",
    "serial8",
    "money",
    "xml",
    "inet",
    "cidr",
    "macaddr",
    "point",
    "line",
    "box",
    "polygon",
    "tsvector",
    "tsquery",
    "bit",
    "interval",
}


def _is_distinct_from(stmt: Statement) -> dict[str, Any] | None:
    sig = stmt.sig
    for i, t in enumerate(sig[:-2]):
        if t.upper == "IS" and (
            sig[i + 1].upper == "DISTINCT" or (sig[i + 1].upper == "NOT" and sig[i + 2].upper == "DISTINCT")
        ):
            return {"at": next(s for s in sig[i:] if s.upper == "DISTINCT")}
    return None


def _array_constructor(stmt: Statement) -> dict[str, Any] | None:
    sig = stmt.sig
    for i, t in enumerate(sig[:-1]):
        if t.upper == "ARRAY" and sig[i + 1].text in ("[", "("):
            return {}
    return None


def _values_as_table(stmt: Statement) -> dict[str, Any] | None:
    """``FROM (VALUES …)``: a VALUES list used as a constant table (INSERT … VALUES is fine)."""
    sig = stmt.sig
    for i, t in enumerate(sig[:-2]):
        if t.text == "(" and sig[i + 1].upper == "VALUES" and i > 0 and sig[i - 1].upper in ("FROM", "JOIN", ","):
            return {}
    return None


def _create_table_unsupported_clause(stmt: Statement) -> dict[str, Any] | None:
    words = stmt.head(4)
    if not words or words[0] != "CREATE" or "TABLE" not in words:
        return None
    sig = stmt.sig
    depth = 0
    for i, t in enumerate(sig):
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            depth -= 1
        if depth == 0 and t.upper in ("INHERITS", "TABLESPACE", "UNLOGGED"):
            return {"clause": t.upper}
        if depth == 0 and t.upper == "PARTITION" and i + 1 < len(sig) and sig[i + 1].upper == "BY":
            return {"clause": "PARTITION BY"}
        if t.upper == "UNLOGGED":
            return {"clause": "UNLOGGED"}
    return None


# ------------------------------------------------------------------------- the table

RULES: tuple[Rule, ...] = (
    Rule(
        "advisory_locks",
        "advisory lock functions (pg_advisory_lock, pg_advisory_xact_lock, pg_try_advisory_lock, …)",
        "42883",
        "function {name} does not exist",
        DG + "c_unsupported-postgresql-functions.html",
        _advisory_lock,
    ),
    Rule(
        "absent_functions",
        "PostgreSQL functions Redshift does not have (array_agg, string_agg, jsonb_*, to_jsonb, gen_random_uuid, "
        "unnest, …)",
        "42883",
        "function {name} does not exist",
        DG + "c_unsupported-postgresql-functions.html",
        _absent_function,
    ),
    Rule(
        "leader_node_only_functions",
        "generate_series in a query that reads a table (leader-node-only function)",
        "0A000",
        "Specified types or functions (one per INFO message) not supported on Redshift tables.",
        DG + "c_sql-functions-leader-node.html",
        _generate_series_on_tables,
    ),
    Rule(
        "distinct_on",
        "SELECT DISTINCT ON (…)",
        "0A000",
        "SELECT DISTINCT ON is not supported",
        DG + "r_SELECT_list.html",
        _distinct_on,
    ),
    Rule(
        "on_conflict",
        "INSERT … ON CONFLICT (upsert)",
        "42601",
        'syntax error at or near "ON"',
        DG + "r_INSERT_30.html",
        _on_conflict,
    ),
    Rule(
        "returning",
        "INSERT/UPDATE/DELETE … RETURNING",
        "42601",
        'syntax error at or near "RETURNING"',
        DG + "r_INSERT_30.html",
        _returning,
    ),
    Rule(
        "copy_stdin_stdout",
        "COPY … FROM STDIN / TO STDOUT (Redshift COPY reads only from S3, EMR, DynamoDB or SSH hosts)",
        "0A000",
        "COPY {direction} {stream} is not supported",
        DG + "copy-parameters-data-source.html",
        _copy_stdio,
    ),
    Rule(
        "create_index",
        "CREATE INDEX (Redshift has no indexes)",
        "0A000",
        "CREATE INDEX is not supported",
        DG + "c_unsupported-postgresql-features.html",
        _create_index,
    ),
    Rule(
        "savepoints",
        "SAVEPOINT, RELEASE SAVEPOINT, ROLLBACK TO SAVEPOINT",
        "0A000",
        "{command} is not supported",
        DG + "c_unsupported-postgresql-functions.html",
        _savepoint,
    ),
    Rule(
        "object_identifier_types",
        "::regclass and the other object identifier types",
        "0A000",
        'type "{type}" is not supported',
        DG + "c_unsupported-postgresql-datatypes.html",
        _oid_types,
    ),
    Rule(
        "is_distinct_from",
        "IS [NOT] DISTINCT FROM",
        "42601",
        'syntax error at or near "DISTINCT"',
        DG + "c_unsupported-postgresql-functions.html",
        _is_distinct_from,
    ),
    Rule(
        "array_constructor",
        "ARRAY[…] / ARRAY(…) constructors (value expressions Redshift lacks)",
        "0A000",
        "array constructors are not supported",
        DG + "c_unsupported-postgresql-features.html",
        _array_constructor,
    ),
    Rule(
        "values_as_table",
        "a VALUES list used as a constant table (FROM (VALUES …))",
        "0A000",
        "VALUES lists used as constant tables are not supported",
        DG + "c_unsupported-postgresql-features.html",
        _values_as_table,
    ),
    Rule(
        "create_table_clauses",
        "CREATE TABLE … INHERITS / PARTITION BY / TABLESPACE / UNLOGGED",
        "0A000",
        "{clause} is not supported",
        DG + "c_unsupported-postgresql-features.html",
        _create_table_unsupported_clause,
    ),
    Rule(
        "lock_mode",
        "LOCK … IN <mode> MODE / NOWAIT (Redshift's LOCK takes no mode)",
        "42601",
        'syntax error at or near "{word}"',
        DG + "r_LOCK.html",
        _lock_mode,
    ),
    Rule(
        "lock_missing_table",
        "LOCK of a table that does not exist",
        "42P01",
        'relation "{name}" does not exist',
        DG + "r_LOCK.html",
        _lock_missing_table,
    ),
    Rule(
        "alter_column_type_in_transaction",
        "ALTER TABLE … ALTER COLUMN … TYPE inside a transaction block",
        "25001",
        "ALTER TABLE ALTER COLUMN cannot run inside a transaction block",
        DG + "r_ALTER_TABLE.html",
        _alter_column_type_in_block,
    ),
    Rule(
        "alter_column_type_varchar_only",
        "ALTER COLUMN … TYPE on anything but a VARCHAR column changed to VARCHAR",
        "0A000",
        'ALTER TABLE ALTER COLUMN TYPE is supported only for VARCHAR columns: cannot change column "{column}" '
        "from {current} to {new}",
        DG + "r_ALTER_TABLE.html",
        _alter_column_type_not_varchar,
    ),
    Rule(
        "drop_key_column",
        "dropping a DISTKEY or SORTKEY column",
        "0A000",
        'cannot drop {kind} column "{column}"',
        DG + "r_ALTER_TABLE.html",
        _drop_key_column,
    ),
    Rule(
        "add_key_column",
        "ALTER TABLE … ADD COLUMN of a DISTKEY or SORTKEY column",
        "0A000",
        "ALTER TABLE ADD COLUMN cannot add a DISTKEY or SORTKEY column",
        DG + "r_ALTER_TABLE.html",
        _add_key_column,
    ),
    Rule(
        "add_one_column",
        "several columns in one ALTER TABLE … ADD COLUMN",
        "42601",
        'syntax error at or near ","',
        DG + "r_ALTER_TABLE.html",
        _add_several_columns,
    ),
    Rule(
        "identifier_length",
        "identifiers longer than 127 bytes",
        "42622",
        'identifier "{name}" is {bytes} bytes long; identifiers are at most 127 bytes',
        DG + "r_names.html",
        _identifier_too_long,
    ),
    # ---- enforced while the statement runs (DDL rewriting, COPY, value checks)
    Rule(
        "unsupported_column_types",
        "PostgreSQL column types Redshift lacks (JSON/JSONB, UUID, BYTEA, SERIAL, arrays, INTERVAL, MONEY, …)",
        "0A000",
        'Column "{column}" has unsupported type "{type}".',
        DG + "c_unsupported-postgresql-datatypes.html",
        enforced_by="ddl.map_type",
    ),
    Rule(
        "super_key",
        "a SUPER column as DISTKEY or SORTKEY",
        "0A000",
        'column "{column}" has type SUPER, which cannot be a {key}',
        DG + "limitations-super.html",
        enforced_by="ddl.check_layout",
    ),
    Rule(
        "varbyte_key",
        "a VARBYTE column as DISTKEY or SORTKEY",
        "0A000",
        'column "{column}" has type VARBYTE, which cannot be a {key}',
        DG + "r_VARBYTE_type.html",
        enforced_by="ddl.check_layout",
    ),
    Rule(
        "key_column_exists",
        "DISTKEY / SORTKEY naming a column the table does not have",
        "42703",
        'column "{column}" named in {key} does not exist',
        DG + "r_CREATE_TABLE_NEW.html",
        enforced_by="ddl.check_layout",
    ),
    Rule(
        "distkey_with_diststyle",
        "DISTKEY with DISTSTYLE EVEN/ALL/AUTO, or DISTSTYLE KEY without a DISTKEY",
        "42601",
        "{problem}",
        DG + "r_CREATE_TABLE_NEW.html",
        enforced_by="ddl.check_layout",
    ),
    Rule(
        "interleaved_sortkey_columns",
        "an INTERLEAVED SORTKEY of more than 8 columns",
        "42601",
        "An INTERLEAVED SORTKEY can have at most 8 columns",
        DG + "r_CREATE_TABLE_NEW.html",
        enforced_by="ddl.check_layout",
    ),
    Rule(
        "varchar_max_length",
        "VARCHAR longer than 65535 bytes",
        "22023",
        "length for type varchar cannot exceed 65535",
        DG + "r_Character_types.html",
        enforced_by="ddl.map_type",
    ),
    Rule(
        "varbyte_max_length",
        "VARBYTE longer than 16,777,216 bytes",
        "22023",
        "length for type varbyte cannot exceed 16777216",
        DG + "r_VARBYTE_type.html",
        enforced_by="ddl.map_type",
    ),
    Rule(
        "numeric_precision",
        "DECIMAL/NUMERIC precision over 38",
        "22023",
        "NUMERIC precision {precision} must be between 1 and 38",
        DG + "r_Numeric_types201.html",
        enforced_by="ddl.map_type",
    ),
    Rule(
        "varchar_bytes",
        "a value longer than its VARCHAR(n) column, counted in BYTES (INSERT, UPDATE, COPY)",
        "22001",
        "value too long for type character varying({length})",
        DG + "r_Character_types.html",
        enforced_by="domain redshift_standin.varchar_<n> + error translation; COPY checks each value",
    ),
    Rule(
        "varbyte_bytes",
        "a value longer than its VARBYTE(n) column",
        "22001",
        "value too long for type varbyte({length})",
        DG + "r_VARBYTE_type.html",
        enforced_by="domain redshift_standin.varbyte_<n> + error translation; COPY checks each value",
    ),
    Rule(
        "copy_row_4mb",
        "COPY of a row larger than 4 MB",
        "XX000",
        "Load into table '{table}' failed. Row {row} of '{url}' is {size} bytes; the maximum size of a single "
        "input row is 4 MB (4194304 bytes)",
        DG + "copy-parameters-data-source.html",
        enforced_by="copy_parquet.copy_text_chunks",
    ),
    Rule(
        "copy_parquet_parameters",
        "REGION, ACCESS_KEY_ID/SECRET_ACCESS_KEY/SESSION_TOKEN and other parameters not listed for FORMAT AS PARQUET",
        "0A000",
        "{name} argument is not supported for PARQUET based COPY",
        DG + "copy-usage_notes-copy-from-columnar.html",
        enforced_by="copy_parquet.check_parquet_copy",
    ),
    Rule(
        "copy_parquet_column_list",
        "a column list on COPY … FORMAT AS PARQUET (columns map by position onto the whole table)",
        "0A000",
        "Column mapping option argument is not supported for PARQUET based COPY",
        DG + "copy-usage_notes-copy-from-columnar.html",
        enforced_by="copy_parquet.check_parquet_copy",
    ),
    Rule(
        "copy_authorization",
        "COPY from S3 without IAM_ROLE or CREDENTIALS",
        "XX000",
        "Invalid credentials. Must be of the format: credentials 'aws_iam_role=...' or "
        "'aws_access_key_id=...;aws_secret_access_key=...[;token=...]'",
        DG + "copy-parameters-authorization.html",
        enforced_by="copy_parquet.check_parquet_copy",
    ),
    Rule(
        "copy_parquet_column_count",
        "parquet files whose column count differs from the table's",
        "XX000",
        "Spectrum Scan Error: Unmatched number of columns between table and file. Table columns: {table}, "
        "Data columns: {data}, File: {url}",
        DG + "copy-usage_notes-copy-from-columnar.html",
        enforced_by="copy_parquet.check_schema",
    ),
    Rule(
        "copy_parquet_types",
        "a parquet column type that cannot go into the table column's type (e.g. int64 into VARCHAR, "
        "timestamp into TIMESTAMPTZ)",
        "XX000",
        "Spectrum Scan Error: File '{url}' has an incompatible Parquet schema for column '{url}.{column}' "
        "(position {position}). Column type: {column_type}, Parquet schema: {parquet_type}",
        DG + "copy-usage_notes-copy-from-columnar.html",
        enforced_by="copy_parquet.check_schema",
    ),
    Rule(
        "copy_value_overflow",
        "a parquet integer that does not fit the column's integer type",
        "XX000",
        "Spectrum Scan Error: Overflow in column {column}: value {value} does not fit {type}",
        DG + "copy-usage_notes-copy-from-columnar.html",
        enforced_by="copy_parquet.copy_text_chunks",
    ),
    Rule(
        "copy_value_length",
        "a parquet value longer than its VARCHAR(n) / VARBYTE(n) column (bytes)",
        "XX000",
        "Spectrum Scan Error: The length of the data column {column} is longer than the length defined in the "
        "table. Table: {limit}, Data: {size}",
        DG + "t_preparing-input-data.html",
        enforced_by="copy_parquet.copy_text_chunks",
    ),
    Rule(
        "copy_manifest_content_length",
        "a manifest for parquet files without meta.content_length",
        "XX000",
        "The manifest entry for '{url}' has no meta.content_length; it is required for a manifest that lists "
        "PARQUET files",
        DG + "loading-data-files-using-manifest.html",
        enforced_by="copy_parquet.source_files",
    ),
)

RULES_BY_ID = {rule.id: rule for rule in RULES}
STATEMENT_RULES = tuple(rule for rule in RULES if rule.check is not None)


def first_violation(stmt: Statement) -> Refusal | None:
    for rule in STATEMENT_RULES:
        values = rule.check(stmt)  # type: ignore[misc]
        if values is not None:
            return refused(rule.id, **values)
    return None
