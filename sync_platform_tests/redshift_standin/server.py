"""The stand-in server: PostgreSQL's wire protocol on loopback, in front of a real PostgreSQL.

One thread per client connection, each with its own upstream backend. Startup and authentication
are relayed; every simple Query is split into statements, checked against the rule table, rewritten
from Redshift SQL into PostgreSQL SQL and run upstream one statement at a time, so the stand-in can
step in between (COPY from S3, layout recording, TRUNCATE's commit). The transaction status comes
from upstream's ReadyForQuery; a refused statement inside a transaction block also aborts the
upstream transaction, so later statements fail until ROLLBACK, as on Redshift.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
import psycopg2.extensions

from sync_platform_tests.redshift_standin import copy_parquet, ddl
from sync_platform_tests.redshift_standin.catalog import SCHEMA, CatalogInstaller
from sync_platform_tests.redshift_standin.rewrite import rewrite_expressions
from sync_platform_tests.redshift_standin.rules import Refusal, Statement, first_violation
from sync_platform_tests.redshift_standin.sql import (
    SqlLexError,
    Token,
    fold_quoted_identifiers,
    name_sql,
    qualified_name_at,
    quote_literal,
    render,
    significant,
    split_statements,
    tokenize,
)

log = logging.getLogger(__name__)

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
COPY_CHUNK = 1 << 20
_KEPT_ERROR_FIELDS = "SVCMDH"
# Session settings that make PostgreSQL read SQL the way Redshift does.
REDSHIFT_SESSION = {
    "standard_conforming_strings": "off",  # Redshift treats backslash in '…' as an escape
    "escape_string_warning": "off",
    "TimeZone": "UTC",
    "DateStyle": "ISO, MDY",
}


class ClientGone(Exception):
    """The client or the upstream server closed the connection."""


def _message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def _fields(payload: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in payload.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return out


def _fields_payload(fields: dict[str, str]) -> bytes:
    return b"".join(k.encode() + v.encode("utf-8") + b"\0" for k, v in fields.items()) + b"\0"


def error_fields(
    sqlstate: str, message: str, detail: str | None = None, position: int | None = None, severity: str = "ERROR"
) -> dict[str, str]:
    fields = {"S": severity, "V": severity, "C": sqlstate, "M": message}
    if detail:
        fields["D"] = detail
    if position is not None:
        fields["P"] = str(position)
    return fields


_DOMAIN_CHECK = re.compile(r'value for domain (?:\S+\.)?"?(varchar|varbyte)_(\d+)"? violates check constraint')
_PG_TOO_LONG = re.compile(r"value too long for type character varying\((\d+)\)")


def translate_error(fields: dict[str, str], *, keep_position: bool = False) -> dict[str, str]:
    """PostgreSQL's error as Redshift words it (positions kept only when they point into the client's text)."""
    kept = {k: v for k, v in fields.items() if k in _KEPT_ERROR_FIELDS or (keep_position and k == "P")}
    message = kept.get("M", "")
    match = _DOMAIN_CHECK.search(message)
    if match:
        kind, length = match.groups()
        type_name = "character varying" if kind == "varchar" else "varbyte"
        kept.update(C="22001", M=f"value too long for type {type_name}({length})")
        kept.pop("D", None)
    elif _PG_TOO_LONG.search(message):
        kept["C"] = "22001"
    return kept


class _Stream:
    """Length-prefixed message I/O on one socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.pending = bytearray()

    def read_exact(self, size: int) -> bytes:
        data = self.reader.read(size)
        if data is None or len(data) < size:
            raise ClientGone()
        return data

    def read_message(self) -> tuple[bytes, bytes]:
        head = self.read_exact(5)
        (length,) = struct.unpack("!I", head[1:])
        return head[:1], self.read_exact(length - 4)

    def write(self, data: bytes) -> None:
        self.pending += data
        if len(self.pending) >= 1 << 16:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            try:
                self.sock.sendall(self.pending)
            except OSError as exc:
                raise ClientGone() from exc
            self.pending.clear()

    def send_now(self, data: bytes) -> None:
        self.write(data)
        self.flush()

    def close(self) -> None:
        # The makefile() reader holds the descriptor open until it is closed too.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.reader.close()
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class Result:
    status: str = "I"
    error: dict[str, str] | None = None
    tags: list[str] = field(default_factory=list)
    rows: list[tuple[str | None, ...]] = field(default_factory=list)
    notices: list[dict[str, str]] = field(default_factory=list)


class Session:
    def __init__(self, server: RedshiftStandin, client: socket.socket) -> None:
        self.server = server
        self.client = _Stream(client)
        self.up: _Stream | None = None
        self.status = "I"
        self.database = ""
        self.query_text = ""

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> None:
        try:
            if self.startup():
                self.loop()
        except ClientGone:
            pass
        except Exception:  # a stand-in bug must not kill the server; the client sees the connection drop
            log.exception("redshift stand-in session failed")
        finally:
            # Close both ends at once: the upstream backend must end (and release its locks) the moment
            # the client is gone, as it would if the client had been connected to PostgreSQL directly.
            for stream in (self.client, self.up):
                if stream is not None:
                    stream.close()

    def startup(self) -> bool:
        while True:
            (length,) = struct.unpack("!I", self.client.read_exact(4))
            payload = self.client.read_exact(length - 4)
            (code,) = struct.unpack("!I", payload[:4])
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                self.client.send_now(b"N")
                continue
            if code == CANCEL_REQUEST:
                with socket.create_connection(self.server.upstream_address, timeout=5) as cancel:
                    cancel.sendall(struct.pack("!I", length) + payload)
                return False
            break
        parts = payload[4:].split(b"\0")
        params = {parts[i].decode(): parts[i + 1].decode() for i in range(0, len(parts) - 1, 2) if parts[i]}
        params.setdefault("database", params.get("user", "postgres"))
        self.database = params["database"]
        params.update(REDSHIFT_SESSION)
        body = struct.pack("!I", 196608) + b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items())
        body += b"\0"
        upstream = socket.create_connection(self.server.upstream_address, timeout=None)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.up = _Stream(upstream)
        self.up.send_now(struct.pack("!I", len(body) + 4) + body)
        while True:
            kind, data = self.up.read_message()
            if kind == b"R":
                self.client.send_now(_message(kind, data))
                (auth,) = struct.unpack("!I", data[:4])
                if auth in (3, 5, 10, 11):  # the server wants a password (or SASL step) from the client
                    reply_kind, reply = self.client.read_message()
                    self.up.send_now(_message(reply_kind, reply))
                continue
            if kind == b"E":
                self.client.send_now(_message(kind, data))
                return False
            if kind == b"Z":
                self.status = data.decode()
                try:
                    self.server.installer.ensure_installed(self.database)
                except Exception as exc:
                    self.client.send_now(
                        _message(b"E", _fields_payload(error_fields("XX000", f"Redshift stand-in setup failed: {exc}")))
                    )
                    return False
                self.client.send_now(_message(kind, data))
                return True
            self.client.write(_message(kind, data))

    def loop(self) -> None:
        while True:
            kind, data = self.client.read_message()
            if kind == b"X":
                return
            if kind == b"Q":
                self.on_query(data[:-1].decode("utf-8"))
            elif kind in (b"P", b"B", b"D", b"E", b"C", b"H", b"F"):
                self.refuse_extended(kind)
            elif kind == b"S":
                self.client.write(_message(b"Z", self.status.encode()))
            elif kind in (b"d", b"c", b"f"):
                pass  # stray COPY messages: the stand-in never enters COPY IN for a client
            else:
                self.send_error("08P01", f"unexpected message type {kind!r}")
            self.client.flush()

    def refuse_extended(self, first: bytes) -> None:
        self.send_error(
            "0A000",
            "the Redshift stand-in accepts only the simple Query protocol (psycopg2's); "
            f"extended-protocol message {first.decode()!r} refused",
        )
        kind = first
        while kind != b"S":
            kind, _ = self.client.read_message()
        self.client.write(_message(b"Z", self.status.encode()))

    # ------------------------------------------------------------------ upstream

    def run_upstream(self, sql: str, *, forward: bool, keep_position: bool = False) -> Result:
        assert self.up is not None
        self.up.send_now(_message(b"Q", sql.encode("utf-8") + b"\0"))
        result = Result()
        while True:
            kind, data = self.up.read_message()
            if kind == b"Z":
                result.status = self.status = data.decode()
                return result
            if kind == b"E":
                result.error = translate_error(_fields(data), keep_position=keep_position)
                if forward:
                    self.client.write(_message(b"E", _fields_payload(result.error)))
                continue
            if kind == b"C":
                result.tags.append(data[:-1].decode())
            elif kind == b"N":
                result.notices.append(_fields(data))
            elif kind == b"D" and not forward:
                result.rows.append(_data_row(data))
            elif kind == b"G":  # COPY FROM STDIN the stand-in did not start: refuse it upstream
                self.up.send_now(_message(b"f", b"COPY FROM STDIN is not supported by Redshift\0"))
                continue
            if forward:
                self.client.write(_message(kind, data))

    def lookup(self, sql: str) -> list[tuple[str | None, ...]]:
        """A catalog query on the session's own backend (sees its temp tables and open transaction)."""
        result = self.run_upstream(sql, forward=False)
        if result.error:
            raise RuntimeError(f"stand-in catalog query failed: {result.error.get('M')}: {sql}")
        return result.rows

    # ------------------------------------------------------------------ client replies

    def send_error(self, sqlstate: str, message: str, detail: str | None = None, position: int | None = None) -> None:
        self.client.write(_message(b"E", _fields_payload(error_fields(sqlstate, message, detail, position))))

    def refuse(self, sqlstate: str, message: str, detail: str | None = None, position: int | None = None) -> None:
        """Refuse a statement; inside a transaction block the transaction fails, as on Redshift."""
        if self.status == "T":
            self.run_upstream(
                "DO $standin$BEGIN RAISE EXCEPTION 'statement refused by the Redshift stand-in'; END$standin$",
                forward=False,
            )
        self.send_error(sqlstate, message, detail, position)

    def complete(self, tag: str) -> None:
        self.client.write(_message(b"C", tag.encode() + b"\0"))

    def notice(self, severity: str, message: str) -> None:
        fields = {"S": severity, "V": severity, "C": "00000", "M": message}
        self.client.write(_message(b"N", _fields_payload(fields)))

    # ------------------------------------------------------------------ statements

    def on_query(self, sql: str) -> None:
        self.query_text = sql
        try:
            statements = split_statements(sql)
        except SqlLexError as exc:
            self.refuse("42601", str(exc))
            self.client.write(_message(b"Z", self.status.encode()))
            return
        if not statements:
            self.client.write(_message(b"I", b""))
        # Several statements in one Query run as one implicit transaction, as PostgreSQL and Redshift run them.
        implicit = self.status == "I" and len(statements) > 1 and not any(_controls_transaction(t) for t in statements)
        if implicit:
            self.run_upstream("BEGIN", forward=False)
        ok = True
        for tokens in statements:
            ok = self.execute(fold_quoted_identifiers(tokens))
            if not ok:
                break
        if implicit and self.status != "I":
            self.run_upstream("COMMIT" if ok else "ROLLBACK", forward=False)
        self.client.write(_message(b"Z", self.status.encode()))

    def execute(self, tokens: list[Token]) -> bool:
        sig = significant(tokens)
        head = [t.upper or t.text for t in sig[:4]]
        if self.status == "E":
            if head[0] in ("ROLLBACK", "COMMIT", "END", "ABORT"):
                return self.forward(render(tokens))
            return self.forward("SELECT 1")  # PostgreSQL answers: current transaction is aborted
        refusal = first_violation(Statement(tokens, self.status, self.lookup)) or _beyond_postgres(sig)
        if refusal is not None:
            self.refuse(refusal.sqlstate, refusal.message, refusal.detail, refusal.position)
            return False
        try:
            if head[0] == "COPY":
                return self.copy(tokens)
            if head[0] == "CREATE" and "TABLE" in head:
                return self.create_table(tokens)
            if head[:2] == ["ALTER", "TABLE"]:
                return self.alter_table(tokens)
            if head[0] == "TRUNCATE":
                return self.truncate(tokens)
        except Refusal as exc:
            self.refuse(exc.sqlstate, exc.message, exc.detail, exc.position)
            return False
        return self.forward(render(rewrite_expressions(tokens)))

    def forward(self, sql: str) -> bool:
        # PostgreSQL's error position points into what it ran: keep it when that is the client's own text.
        return self.run_upstream(sql, forward=True, keep_position=sql == self.query_text).error is None

    # ------------------------------------------------------------------ TRUNCATE

    def truncate(self, tokens: list[Token]) -> bool:
        """TRUNCATE commits the transaction it runs in (and everything done before it in that transaction)."""
        in_block = self.status == "T"
        if not self.forward(render(tokens)):
            return False
        if in_block:
            self.run_upstream("COMMIT", forward=False)
        return True

    # ------------------------------------------------------------------ CREATE TABLE

    def create_table(self, tokens: list[Token]) -> bool:
        create = ddl.parse_create_table(tokens)
        for kind, length in create.domains:
            self.server.installer.ensure_domain(self.database, kind, length)
        sql = render(rewrite_expressions(tokenize(create.pg_sql)))
        result = self.run_upstream(sql, forward=True)
        if result.error:
            return False
        if any(n.get("C") == "42P07" for n in result.notices):  # IF NOT EXISTS and it existed
            return True
        self.record_layout(create)
        return True

    def _relid(self, name: list[str]) -> str | None:
        rows = self.lookup(f"SELECT to_regclass({quote_literal(name_sql(name))})::oid")
        return rows[0][0] if rows else None

    def _attnums(self, relid: str) -> dict[str, str]:
        rows = self.lookup(
            f"SELECT attname, attnum FROM pg_attribute WHERE attrelid = {relid} AND attnum > 0 AND NOT attisdropped"
        )
        return {str(name): str(num) for name, num in rows}

    def record_layout(self, create: ddl.CreateTable) -> None:
        relid = self._relid(create.name)
        if relid is None:
            return
        attnums = self._attnums(relid)
        encodings = {c.name: c.encoding for c in create.columns if c.encoding}
        layout = create.layout
        if create.like is not None and not (layout.diststyle or layout.distkey or layout.sortkey or layout.sortstyle):
            parent = self._relid(create.like)
            if parent is not None:
                rows = self.lookup(
                    "SELECT l.diststyle, (SELECT attname FROM pg_attribute WHERE attrelid = l.relid "
                    "AND attnum = l.distkey), l.sortstyle, ARRAY(SELECT a.attname FROM unnest(l.sortkey) "
                    "WITH ORDINALITY k(n, p) JOIN pg_attribute a ON a.attrelid = l.relid AND a.attnum = k.n "
                    f"ORDER BY k.p) FROM {SCHEMA}.table_layout l WHERE l.relid = {parent}"
                )
                if rows:
                    style, distkey, sortstyle, sortkey = rows[0]
                    names = [n.strip('"') for n in str(sortkey or "{}").strip("{}").split(",") if n]
                    layout = ddl.Layout(style, distkey, sortstyle, names)
                enc_rows = self.lookup(
                    "SELECT a.attname, e.encoding FROM "
                    f"{SCHEMA}.column_encoding e JOIN pg_attribute a ON a.attrelid = e.relid AND a.attnum = e.attnum "
                    f"WHERE e.relid = {parent}"
                )
                encodings.update({str(n): str(e) for n, e in enc_rows})
        resolved = layout.resolved()
        distkey = attnums.get(resolved.distkey or "", "NULL")
        sortkey = "ARRAY[" + ",".join(attnums[c] for c in resolved.sortkey if c in attnums) + "]::smallint[]"
        statements = [
            f"DELETE FROM {SCHEMA}.table_layout WHERE relid = {relid}",
            f"INSERT INTO {SCHEMA}.table_layout VALUES ({relid}, {quote_literal(resolved.diststyle or 'AUTO')}, "
            f"{distkey}, {quote_literal(resolved.sortstyle or 'AUTO')}, {sortkey})",
            f"DELETE FROM {SCHEMA}.column_encoding WHERE relid = {relid}",
        ]
        for column, encoding in encodings.items():
            if column in attnums:
                values = f"({relid}, {attnums[column]}, {quote_literal(encoding)})"
                statements.append(f"INSERT INTO {SCHEMA}.column_encoding VALUES {values}")
        self.lookup("; ".join(statements))

    # ------------------------------------------------------------------ ALTER TABLE

    def alter_table(self, tokens: list[Token]) -> bool:
        sig = significant(tokens)
        table, i = qualified_name_at(sig, 2)
        if i >= len(sig):
            return self.forward(render(tokens))
        action = [t.upper for t in sig[i : i + 3]]
        table_sql = name_sql(table)
        if action[0] == "ALTER" and action[1] in (
            "DISTKEY",
            "DISTSTYLE",
            "SORTKEY",
            "COMPOUND",
            "INTERLEAVED",
            "ENCODE",
        ):
            return self.alter_layout(table, sig[i + 1 :])
        if action[0] == "ALTER":
            j = i + 1 + (1 if sig[i + 1].upper == "COLUMN" else 0)
            column = sig[j].name
            if j + 1 < len(sig) and sig[j + 1].upper == "TYPE":
                mapped = ddl.map_type(sig[j + 2 :])
                if mapped.domain:
                    self.server.installer.ensure_domain(self.database, *mapped.domain)
                return self.forward(f"ALTER TABLE {table_sql} ALTER COLUMN {name_sql([column])} TYPE {mapped.sql}")
            if j + 1 < len(sig) and sig[j + 1].upper == "ENCODE":
                return self.alter_encoding(table, column, sig[j + 2].text.lower())
        if action[0] == "ADD" and action[1] not in ("CONSTRAINT", "PRIMARY", "UNIQUE", "FOREIGN"):
            j = i + 1 + (1 if sig[i + 1].upper == "COLUMN" else 0)
            column = ddl._column_definition(sig[j:])
            if column.type.domain:
                self.server.installer.ensure_domain(self.database, *column.type.domain)
            sql = render(rewrite_expressions(tokenize(f"ALTER TABLE {table_sql} ADD COLUMN {column.pg_sql}")))
            if not self.forward(sql):
                return False
            if column.encoding:
                relid = self._relid(table)
                attnum = self._attnums(relid).get(column.name) if relid else None
                if attnum:
                    self.lookup(
                        f"INSERT INTO {SCHEMA}.column_encoding VALUES ({relid}, {attnum}, "
                        f"{quote_literal(column.encoding)})"
                    )
            return True
        if action[0] == "ADD":
            self.complete("ALTER TABLE")  # PRIMARY KEY / UNIQUE / FOREIGN KEY: informational on Redshift
            return True
        return self.forward(render(rewrite_expressions(tokens)))

    def _require_table(self, table: list[str]) -> str | None:
        relid = self._relid(table)
        if relid is None:
            self.refuse("42P01", f'relation "{table[-1]}" does not exist')
        return relid

    def alter_layout(self, table: list[str], rest: list[Token]) -> bool:
        relid = self._require_table(table)
        if relid is None:
            return False
        attnums = self._attnums(relid)
        current = self.lookup(f"SELECT 1 FROM {SCHEMA}.table_layout WHERE relid = {relid}")
        if not current:
            self.lookup(f"INSERT INTO {SCHEMA}.table_layout VALUES ({relid}, 'AUTO', NULL, 'AUTO', '{{}}')")
        word = rest[0].upper
        if word == "DISTSTYLE":
            style = rest[1].upper
            self.lookup(
                f"UPDATE {SCHEMA}.table_layout SET diststyle = {quote_literal(style)}, distkey = NULL "
                f"WHERE relid = {relid}"
            )
        elif word == "DISTKEY":
            column = rest[1].name
            if column not in attnums:
                self.refuse("42703", f'column "{column}" named in DISTKEY does not exist')
                return False
            self.lookup(
                f"UPDATE {SCHEMA}.table_layout SET diststyle = 'KEY', distkey = {attnums[column]} WHERE relid = {relid}"
            )
        elif word == "ENCODE":
            pass  # ALTER ENCODE AUTO
        else:
            style = "COMPOUND"
            if word in ("COMPOUND", "INTERLEAVED"):
                style, rest = word, rest[1:]
            if rest[1].upper in ("AUTO", "NONE"):
                style, columns = rest[1].upper, []
            else:
                columns = [t.name for t in rest[2:] if t.name]
                missing = [c for c in columns if c not in attnums]
                if missing:
                    self.refuse("42703", f'column "{missing[0]}" named in SORTKEY does not exist')
                    return False
            array = "ARRAY[" + ",".join(attnums[c] for c in columns) + "]::smallint[]"
            self.lookup(
                f"UPDATE {SCHEMA}.table_layout SET sortstyle = {quote_literal(style)}, sortkey = {array} "
                f"WHERE relid = {relid}"
            )
        self.complete("ALTER TABLE")
        return True

    def alter_encoding(self, table: list[str], column: str, encoding: str) -> bool:
        relid = self._require_table(table)
        if relid is None:
            return False
        attnum = self._attnums(relid).get(column)
        if attnum is None:
            self.refuse("42703", f'column "{column}" of relation "{table[-1]}" does not exist')
            return False
        self.lookup(
            f"INSERT INTO {SCHEMA}.column_encoding VALUES ({relid}, {attnum}, {quote_literal(encoding)}) "
            "ON CONFLICT (relid, attnum) DO UPDATE SET encoding = EXCLUDED.encoding"
        )
        self.complete("ALTER TABLE")
        return True

    # ------------------------------------------------------------------ COPY

    def table_columns(self, table: list[str]) -> list[copy_parquet.TargetColumn] | None:
        rows = self.lookup(
            f"SELECT a.attname, {SCHEMA}.redshift_type(a.atttypid, a.atttypmod), bt.typname "
            "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
            "JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END "
            f"WHERE a.attrelid = to_regclass({quote_literal(name_sql(table))}) AND a.attnum > 0 "
            "AND NOT a.attisdropped ORDER BY a.attnum"
        )
        if not rows:
            return None
        columns = []
        for name, redshift_type, base in rows:
            limit = re.search(r"(?:character varying|binary varying)\((\d+)\)", str(redshift_type))
            columns.append(
                copy_parquet.TargetColumn(
                    str(name), str(redshift_type), str(base), int(limit.group(1)) if limit else None
                )
            )
        return columns

    def copy(self, tokens: list[Token]) -> bool:
        started = False
        try:
            command = copy_parquet.parse_copy(tokens)
            copy_parquet.check_parquet_copy(command)
            columns = self.table_columns(command.table)
            if columns is None:
                raise copy_parquet.CopyRefused("42P01", f'relation "{command.table[-1]}" does not exist')
            s3 = self.server.s3()
            files = copy_parquet.source_files(s3, command)
            parquets = []
            for url, _ in files:
                parquet = copy_parquet.read_parquet(s3, url)
                copy_parquet.check_schema(parquet.schema_arrow, columns, url)
                parquets.append((url, parquet))
            assert self.up is not None
            self.up.send_now(_message(b"Q", f"COPY {command.table_sql} FROM STDIN\0".encode()))
            kind, data = self.up.read_message()
            if kind != b"G":
                self._drain_after(kind, data)
                return False
            started = True
            rows = 0
            for url, parquet in parquets:
                for chunk, count in copy_parquet.copy_text_chunks(parquet, columns, url, command.table_text, rows):
                    for offset in range(0, len(chunk), COPY_CHUNK):
                        self.up.write(_message(b"d", chunk[offset : offset + COPY_CHUNK]))
                    rows += count
            self.up.send_now(_message(b"c", b""))
            result = self._finish_upstream()
            if result.error:
                self.client.write(_message(b"E", _fields_payload(result.error)))
                return False
        except Refusal as exc:
            if started:
                assert self.up is not None
                self.up.send_now(_message(b"f", exc.message.encode("utf-8") + b"\0"))
                self._finish_upstream()
                self.send_error(exc.sqlstate, exc.message, exc.detail)
            else:
                self.refuse(exc.sqlstate, exc.message, exc.detail, exc.position)
            return False
        self.notice("INFO", f"Load into table '{command.table[-1]}' completed, {rows} record(s) loaded successfully.")
        self.complete(f"COPY {rows}")
        return True

    def _finish_upstream(self) -> Result:
        assert self.up is not None
        result = Result()
        while True:
            kind, data = self.up.read_message()
            if kind == b"Z":
                self.status = result.status = data.decode()
                return result
            if kind == b"E":
                result.error = translate_error(_fields(data))
            elif kind == b"C":
                result.tags.append(data[:-1].decode())

    def _drain_after(self, kind: bytes, data: bytes) -> None:
        """Upstream refused our COPY before COPY IN began: pass its error on."""
        while kind != b"Z":
            if kind == b"E":
                self.client.write(_message(b"E", _fields_payload(translate_error(_fields(data)))))
            assert self.up is not None
            kind, data = self.up.read_message()
        self.status = data.decode()


def _controls_transaction(tokens: list[Token]) -> bool:
    sig = significant(tokens)
    return bool(sig) and sig[0].upper in ("BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT")


def _beyond_postgres(sig: list[Token]) -> Refusal | None:
    """Names Redshift takes (64–127 bytes) but PostgreSQL would silently truncate: fail loudly instead."""
    for token in sig:
        size = len(token.name.encode("utf-8"))
        if size > 63:
            return Refusal(
                "0A000",
                f'the Redshift stand-in cannot hold identifier "{token.name[:40]}…" ({size} bytes): PostgreSQL '
                "behind it truncates names over 63 bytes, although Redshift allows up to 127",
            )
    return None


def _data_row(data: bytes) -> tuple[str | None, ...]:
    (count,) = struct.unpack("!H", data[:2])
    offset = 2
    values: list[str | None] = []
    for _ in range(count):
        (length,) = struct.unpack("!i", data[offset : offset + 4])
        offset += 4
        if length < 0:
            values.append(None)
        else:
            values.append(data[offset : offset + length].decode("utf-8"))
            offset += length
    return tuple(values)


class RedshiftStandin:
    """A Redshift stand-in listening on ``host:port`` (port 0: a free one), in front of PostgreSQL."""

    def __init__(
        self,
        *,
        postgres_dsn: str = "host=127.0.0.1 port=5432 user=postgres",
        s3_endpoint_url: str,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        dsn = psycopg2.extensions.parse_dsn(postgres_dsn)
        self.upstream_address = (dsn.get("host", "127.0.0.1"), int(dsn.get("port", 5432)))
        self.installer = CatalogInstaller(
            self.upstream_address[0], self.upstream_address[1], dsn.get("user", "postgres")
        )
        self.s3_endpoint_url = s3_endpoint_url
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self.host, self.port = self._listener.getsockname()[:2]
        self._thread: threading.Thread | None = None
        self._sessions: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._s3: Any = None
        self._stopping = threading.Event()

    def s3(self) -> Any:
        with self._lock:
            if self._s3 is None:
                self._s3 = boto3.client(
                    "s3",
                    endpoint_url=self.s3_endpoint_url,
                    region_name="us-east-1",
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                )
            return self._s3

    def start(self) -> RedshiftStandin:
        self._listener.listen(128)
        self._thread = threading.Thread(target=self._accept, name="redshift-standin", daemon=True)
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sessions.add(client)
            threading.Thread(target=self._serve, args=(client,), name="redshift-standin-session", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            Session(self, client).run()
        finally:
            with self._lock:
                self._sessions.discard(client)

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sessions = list(self._sessions)
        for client in sessions:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> RedshiftStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["RedshiftStandin", "Session", "translate_error"]
