"""Redshift DDL → PostgreSQL DDL: types, layout clauses and unenforced constraints.

Redshift accepts DISTSTYLE / DISTKEY / SORTKEY / ENCODE and declares (but never enforces) PRIMARY
KEY, UNIQUE and FOREIGN KEY. The stand-in strips all of them before PostgreSQL sees the statement
and returns the layout so it can be recorded in the stand-in catalog. Types become the stand-in
domains: VARCHAR(n) counted in bytes, SUPER, VARBYTE(n).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sync_platform_tests.redshift_standin.catalog import (
    DEFAULT_VARBYTE_BYTES,
    DEFAULT_VARCHAR_BYTES,
    MAX_VARBYTE_BYTES,
    MAX_VARCHAR_BYTES,
    SCHEMA,
)
from sync_platform_tests.redshift_standin.rules import UNSUPPORTED_COLUMN_TYPES, Refusal, refused
from sync_platform_tests.redshift_standin.sql import (
    Token,
    matching_paren,
    name_sql,
    qualified_name_at,
    quote_ident,
    render,
    significant,
    split_top_level,
)

MAX_INTERLEAVED_COLUMNS = 8
MAX_SORTKEY_COLUMNS = 400
_COLUMN_KEYWORDS = {
    "ENCODE",
    "DISTKEY",
    "SORTKEY",
    "NOT",
    "NULL",
    "DEFAULT",
    "IDENTITY",
    "GENERATED",
    "PRIMARY",
    "UNIQUE",
    "REFERENCES",
    "COLLATE",
    "CONSTRAINT",
    "CHECK",
}
_VARCHAR_NAMES = {"varchar", "character varying", "nvarchar", "text", "char varying", "string"}
_VARBYTE_NAMES = {"varbyte", "varbinary", "binary varying"}
_CHAR_NAMES = {"char", "character", "nchar", "bpchar"}
_NUMERIC_NAMES = {"numeric", "decimal"}


@dataclass
class MappedType:
    sql: str  # PostgreSQL type text
    redshift: str  # Redshift's name, for messages
    domain: tuple[str, int] | None = None  # (kind, length) the stand-in domain to create first


def map_type(type_tokens: list[Token], column: str = "") -> MappedType:
    """A Redshift column type as the PostgreSQL type (or stand-in domain) that behaves like it."""
    sig = significant(type_tokens)
    words: list[str] = []
    args: list[str] = []
    i = 0
    while i < len(sig) and sig[i].kind in ("word", "qident"):
        words.append(sig[i].text.lower())
        i += 1
    if i < len(sig) and sig[i].text == "(":
        end = matching_paren(sig, i)
        args = [t.text.upper() for t in sig[i + 1 : end] if t.text != ","]
        i = end + 1
    name = " ".join(words)
    rest = render(sig[i:])
    original = render(sig)
    if name in UNSUPPORTED_COLUMN_TYPES or rest.startswith("["):
        raise refused("unsupported_column_types", column=column, type=name + ("[]" if rest.startswith("[") else ""))
    if name in _VARCHAR_NAMES:
        if name == "text" or not args:
            length = DEFAULT_VARCHAR_BYTES
        elif args[0] == "MAX":
            length = MAX_VARCHAR_BYTES
        else:
            length = int(args[0])
        if length > MAX_VARCHAR_BYTES:
            raise refused("varchar_max_length")
        if length < 1:
            raise Refusal("22023", "length for type varchar must be at least 1")
        return MappedType(f"{SCHEMA}.varchar_{length}", f"character varying({length})", ("varchar", length))
    if name in _VARBYTE_NAMES:
        length = int(args[0]) if args and args[0] != "MAX" else DEFAULT_VARBYTE_BYTES
        if args and args[0] == "MAX":
            length = MAX_VARBYTE_BYTES
        if length > MAX_VARBYTE_BYTES:
            raise refused("varbyte_max_length")
        return MappedType(f"{SCHEMA}.varbyte_{length}", f"varbyte({length})", ("varbyte", length))
    if name == "super":
        return MappedType(f"{SCHEMA}.super", "super")
    if name in _NUMERIC_NAMES:
        precision = int(args[0]) if args else 18
        scale = int(args[1]) if len(args) > 1 else 0
        if not 1 <= precision <= 38:
            raise refused("numeric_precision", precision=precision)
        return MappedType(f"numeric({precision},{scale})", f"numeric({precision},{scale})")
    if name in _CHAR_NAMES:
        length = int(args[0]) if args else 1
        if length > 4096:
            raise Refusal("22023", "length for type char cannot exceed 4096")
        return MappedType(f"char({length})", f"character({length})")
    if name in ("timestamp with time zone", "timestamptz"):
        return MappedType("timestamptz", "timestamp with time zone")
    if name in ("float", "float8", "double precision"):
        return MappedType("double precision", "double precision")
    return MappedType(original + (f" {rest}" if rest and rest not in original else ""), original.lower())


@dataclass
class ColumnDef:
    name: str
    type: MappedType
    encoding: str | None = None
    distkey: bool = False
    sortkey: bool = False
    pg_sql: str = ""


@dataclass
class Layout:
    diststyle: str | None = None
    distkey: str | None = None
    sortstyle: str | None = None  # COMPOUND | INTERLEAVED | AUTO | NONE
    sortkey: list[str] = field(default_factory=list)

    def resolved(self) -> Layout:
        style = self.diststyle or ("KEY" if self.distkey else "AUTO")
        sortstyle = self.sortstyle or ("COMPOUND" if self.sortkey else "AUTO")
        return Layout(style, self.distkey, sortstyle, list(self.sortkey))


@dataclass
class CreateTable:
    name: list[str]
    temporary: bool
    if_not_exists: bool
    columns: list[ColumnDef]
    layout: Layout
    like: list[str] | None
    pg_sql: str
    ctas: bool = False

    @property
    def domains(self) -> list[tuple[str, int]]:
        return [c.type.domain for c in self.columns if c.type.domain]


def _column_definition(element: list[Token]) -> ColumnDef:
    sig = significant(element)
    name = sig[0].name
    i = 1
    while i < len(sig) and not (sig[i].kind == "word" and sig[i].upper in _COLUMN_KEYWORDS):
        if sig[i].text == "(":
            i = matching_paren(sig, i) + 1
            continue
        i += 1
    mapped = map_type(sig[1:i], name)
    column = ColumnDef(name, mapped)
    kept: list[str] = []
    while i < len(sig):
        word = sig[i].upper
        if word == "ENCODE":
            column.encoding = sig[i + 1].text.lower()
            i += 2
        elif word == "DISTKEY":
            column.distkey = True
            i += 1
        elif word == "SORTKEY":
            column.sortkey = True
            i += 1
        elif word == "PRIMARY" or word == "UNIQUE":
            i += 2 if word == "PRIMARY" else 1  # declared, never enforced by Redshift
        elif word == "REFERENCES":
            i += 1
            _, i = qualified_name_at(sig, i)
            if i < len(sig) and sig[i].text == "(":
                i = matching_paren(sig, i) + 1
        elif word == "IDENTITY":
            end = matching_paren(sig, i + 1)
            seed, step = [t.text for t in sig[i + 2 : end] if t.text != ","][:2]
            kept.append(f"GENERATED ALWAYS AS IDENTITY (START WITH {seed} INCREMENT BY {step})")
            i = end + 1
        elif word == "GENERATED":
            # GENERATED BY DEFAULT AS IDENTITY ( seed, step )
            j = i
            while j < len(sig) and sig[j].upper != "IDENTITY":
                j += 1
            end = matching_paren(sig, j + 1)
            seed, step = [t.text for t in sig[j + 2 : end] if t.text != ","][:2]
            kept.append(f"GENERATED BY DEFAULT AS IDENTITY (START WITH {seed} INCREMENT BY {step})")
            i = end + 1
        elif word == "COLLATE":
            i += 2  # case_sensitive / case_insensitive: PostgreSQL compares case-sensitively
        elif word == "DEFAULT":
            j = i + 1
            start = j
            while j < len(sig) and not (sig[j].kind == "word" and sig[j].upper in _COLUMN_KEYWORDS - {"NULL"}):
                if sig[j].text == "(":
                    j = matching_paren(sig, j) + 1
                    continue
                j += 1
            kept.append("DEFAULT " + render(sig[start:j]))
            i = j
        else:
            kept.append(sig[i].text)
            i += 1
    column.pg_sql = " ".join([quote_ident(name), mapped.sql, *kept])
    return column


def _attribute_columns(sig: list[Token], i: int) -> tuple[list[str], int]:
    end = matching_paren(sig, i)
    return [t.name for t in sig[i + 1 : end] if t.name], end + 1


def _parse_attributes(sig: list[Token], i: int, layout: Layout) -> int:
    """Table attributes after the column list; returns the index of the first token not consumed."""
    while i < len(sig):
        word = sig[i].upper
        if word == "DISTSTYLE":
            layout.diststyle = sig[i + 1].upper
            i += 2
        elif word == "DISTKEY":
            cols, i = _attribute_columns(sig, i + 1)
            layout.distkey = cols[0]
        elif word in ("COMPOUND", "INTERLEAVED") and i + 1 < len(sig) and sig[i + 1].upper == "SORTKEY":
            cols, i = _attribute_columns(sig, i + 2)
            layout.sortstyle, layout.sortkey = word, cols
        elif word == "SORTKEY":
            if i + 1 < len(sig) and sig[i + 1].upper in ("AUTO", "NONE"):
                layout.sortstyle = sig[i + 1].upper
                i += 2
            else:
                cols, i = _attribute_columns(sig, i + 1)
                layout.sortstyle, layout.sortkey = "COMPOUND", cols
        elif word == "ENCODE":
            i += 2  # ENCODE AUTO
        elif word == "BACKUP":
            i += 2
        else:
            return i
    return i


def parse_create_table(tokens: list[Token]) -> CreateTable:
    sig = significant(tokens)
    i = 1
    temporary = False
    while sig[i].upper in ("LOCAL", "TEMP", "TEMPORARY", "GLOBAL"):
        temporary = temporary or sig[i].upper in ("TEMP", "TEMPORARY")
        i += 1
    if sig[i].text == "#":  # CREATE TABLE #name: a Redshift temporary table
        temporary = True
    i += 1  # TABLE
    if_not_exists = False
    if sig[i].upper == "IF":
        if_not_exists = True
        i += 3
    name, i = qualified_name_at(sig, i)
    columns: list[ColumnDef] = []
    pg_elements: list[str] = []
    like: list[str] | None = None
    layout = Layout()
    if i < len(sig) and sig[i].text == "(":
        end = matching_paren(sig, i)
        for element in split_top_level(sig[i + 1 : end]):
            esig = significant(element)
            head = esig[0].upper
            if head == "LIKE":
                like, after = qualified_name_at(esig, 1)
                rest = " ".join(t.text for t in esig[after:])
                pg_elements.append(f"LIKE {name_sql(like)} {rest}".strip())
            elif head in ("PRIMARY", "UNIQUE", "FOREIGN"):
                continue  # informational only on Redshift
            elif head == "CONSTRAINT":
                if len(esig) > 2 and esig[2].upper in ("PRIMARY", "UNIQUE", "FOREIGN"):
                    continue
                pg_elements.append(render(esig))
            elif head in ("DISTKEY", "SORTKEY"):
                continue
            else:
                column = _column_definition(element)
                columns.append(column)
                pg_elements.append(column.pg_sql)
        i = _parse_attributes(sig, end + 1, layout)
        tail = render(sig[i:])
        ctas = False
    else:
        i = _parse_attributes(sig, i, layout)
        tail = render(sig[i:])  # AS SELECT …
        ctas = True
    for column in columns:
        if column.distkey:
            layout.distkey = column.name
            layout.diststyle = layout.diststyle or "KEY"
        if column.sortkey:
            layout.sortkey.append(column.name)
            layout.sortstyle = layout.sortstyle or "COMPOUND"
    head = "CREATE " + ("TEMPORARY " if temporary else "") + "TABLE " + ("IF NOT EXISTS " if if_not_exists else "")
    body = f" ({', '.join(pg_elements)})" if not ctas else ""
    pg_sql = f"{head}{name_sql(name)}{body} {tail}".strip()
    create = CreateTable(name, temporary, if_not_exists, columns, layout, like, pg_sql, ctas)
    check_layout(create)
    return create


def check_layout(create: CreateTable) -> None:
    """Redshift's checks of DISTSTYLE / DISTKEY / SORTKEY against the columns."""
    layout = create.layout
    by_name = {c.name: c for c in create.columns}
    if layout.diststyle and layout.diststyle not in ("AUTO", "EVEN", "ALL", "KEY"):
        raise Refusal("42601", f'syntax error at or near "{layout.diststyle}"')
    if layout.distkey and layout.diststyle not in (None, "KEY"):
        raise refused("distkey_with_diststyle", problem=f"DISTSTYLE {layout.diststyle} cannot be used with a DISTKEY")
    if layout.diststyle == "KEY" and not layout.distkey:
        raise refused("distkey_with_diststyle", problem="DISTSTYLE KEY requires a DISTKEY column")
    if len([c for c in create.columns if c.distkey]) > 1:
        raise refused("distkey_with_diststyle", problem="Only one column can be defined as the distribution key")
    if layout.sortstyle == "INTERLEAVED" and len(layout.sortkey) > MAX_INTERLEAVED_COLUMNS:
        raise refused("interleaved_sortkey_columns")
    if not by_name or create.like is not None:
        return  # CTAS / LIKE: the columns are PostgreSQL's to report
    keys = [(layout.distkey, "distribution key")] if layout.distkey else []
    keys += [(name, "sort key") for name in layout.sortkey]
    for name, key in keys:
        column = by_name.get(name or "")
        if column is None:
            raise refused("key_column_exists", column=name, key="DISTKEY" if key == "distribution key" else "SORTKEY")
        kind = column.type.redshift.split("(")[0]
        if kind == "super":
            raise refused("super_key", column=column.name, key=key)
        if kind == "varbyte":
            raise refused("varbyte_key", column=column.name, key=key)
