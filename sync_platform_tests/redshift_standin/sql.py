"""Just enough SQL lexing for the stand-in: tokens, statement splitting, and token-level rewrites.

The stand-in never parses SQL fully. It splits a Query string into statements (respecting quotes,
comments and dollar quoting), folds quoted identifiers to lower case as Redshift does by default,
and recognises the handful of statement shapes it must treat specially (COPY, CREATE TABLE,
ALTER TABLE, TRUNCATE, …) from their leading words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*")
_NUMBER = re.compile(r"(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_PARAM = re.compile(r"\$\d+")
_OPERATOR_CHARS = set("+-*/<>=~!@#%^&|`?")


class SqlLexError(ValueError):
    """Unterminated quote or comment."""


@dataclass(frozen=True)
class Token:
    kind: str  # word, qident, string, estring, dollar, number, op, punct, space, comment, param
    text: str
    offset: int = -1  # character offset in the Query string (-1: made by a rewrite)

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    @property
    def name(self) -> str:
        """The identifier this token names (word lower-cased, quoted identifier unquoted), else ''."""
        if self.kind == "word":
            return self.text.lower()
        if self.kind == "qident":
            return self.text[1:-1].replace('""', '"')
        return ""

    @property
    def is_trivia(self) -> bool:
        return self.kind in ("space", "comment")

    @property
    def string_value(self) -> str | None:
        """The value of a string literal (backslash escapes as Redshift reads them), else None."""
        if self.kind == "string":
            body = self.text[1:-1].replace("''", "'")
            return _unescape_backslashes(body)
        if self.kind == "estring":
            return _unescape_backslashes(self.text[2:-1].replace("''", "'"))
        if self.kind == "dollar":
            tag = _DOLLAR_TAG.match(self.text)
            assert tag is not None
            return self.text[len(tag.group()) : -len(tag.group())]
        return None


def _unescape_backslashes(body: str) -> str:
    simple = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(simple.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def tokenize(sql: str) -> list[Token]:
    """Tokens of ``sql``; concatenating their texts gives ``sql`` back exactly."""
    tokens: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            j = i
            while j < n and sql[j].isspace():
                j += 1
            tokens.append(Token("space", sql[i:j]))
            i = j
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j + 1
            tokens.append(Token("comment", sql[i:j]))
            i = j
        elif sql.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            if depth:
                raise SqlLexError("unterminated /* comment")
            tokens.append(Token("comment", sql[i:j]))
            i = j
        elif ch in "eE" and i + 1 < n and sql[i + 1] == "'":
            j = _end_of_quoted(sql, i + 1, "'", backslash=True)
            tokens.append(Token("estring", sql[i:j]))
            i = j
        elif ch == "'":
            # Redshift reads backslash as an escape inside ordinary literals too.
            j = _end_of_quoted(sql, i, "'", backslash=True)
            tokens.append(Token("string", sql[i:j]))
            i = j
        elif ch == '"':
            j = _end_of_quoted(sql, i, '"', backslash=False)
            tokens.append(Token("qident", sql[i:j]))
            i = j
        elif ch == "$":
            tag = _DOLLAR_TAG.match(sql, i)
            param = _PARAM.match(sql, i)
            if param:
                tokens.append(Token("param", param.group()))
                i = param.end()
            elif tag:
                end = sql.find(tag.group(), tag.end())
                if end < 0:
                    raise SqlLexError(f"unterminated dollar-quoted string {tag.group()}")
                j = end + len(tag.group())
                tokens.append(Token("dollar", sql[i:j]))
                i = j
            else:
                tokens.append(Token("op", ch))
                i += 1
        elif _WORD.match(sql, i):
            m = _WORD.match(sql, i)
            assert m is not None
            tokens.append(Token("word", m.group()))
            i = m.end()
        elif ch.isdigit() or (ch == "." and i + 1 < n and sql[i + 1].isdigit()):
            m = _NUMBER.match(sql, i)
            assert m is not None
            tokens.append(Token("number", m.group()))
            i = m.end()
        elif ch in "(),;[].":
            tokens.append(Token("punct", ch))
            i += 1
        elif ch == ":" and sql.startswith("::", i):
            tokens.append(Token("op", "::"))
            i += 2
        elif ch in _OPERATOR_CHARS or ch == ":":
            j = i + 1
            while j < n and sql[j] in _OPERATOR_CHARS and not sql.startswith("--", j) and not sql.startswith("/*", j):
                j += 1
            tokens.append(Token("op", sql[i:j]))
            i = j
        else:
            tokens.append(Token("op", ch))
            i += 1
    placed: list[Token] = []
    offset = 0
    for token in tokens:
        placed.append(Token(token.kind, token.text, offset))
        offset += len(token.text)
    return placed


def _end_of_quoted(sql: str, start: int, quote: str, *, backslash: bool) -> int:
    j = start + 1
    n = len(sql)
    while j < n:
        ch = sql[j]
        if backslash and ch == "\\":
            j += 2
            continue
        if ch == quote:
            if j + 1 < n and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    raise SqlLexError(f"unterminated quoted string starting at character {start + 1}")


def split_statements(sql: str) -> list[list[Token]]:
    """The statements of a Query string as token lists (empty statements dropped)."""
    statements: list[list[Token]] = []
    current: list[Token] = []
    depth = 0
    for token in tokenize(sql):
        if token.kind == "punct" and token.text == "(":
            depth += 1
        elif token.kind == "punct" and token.text == ")":
            depth = max(0, depth - 1)
        if token.kind == "punct" and token.text == ";" and depth == 0:
            if any(not t.is_trivia for t in current):
                statements.append(current)
            current = []
            continue
        current.append(token)
    if any(not t.is_trivia for t in current):
        statements.append(current)
    return statements


def significant(tokens: list[Token]) -> list[Token]:
    return [t for t in tokens if not t.is_trivia]


def render(tokens: list[Token]) -> str:
    return "".join(t.text for t in tokens).strip()


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A literal PostgreSQL reads the same whatever standard_conforming_strings says."""
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def fold_quoted_identifiers(tokens: list[Token]) -> list[Token]:
    """Redshift folds even quoted identifiers to lower case (enable_case_sensitive_identifier off)."""
    return [Token("qident", t.text.lower(), t.offset) if t.kind == "qident" else t for t in tokens]


def words(tokens: list[Token], count: int) -> list[str]:
    """The first ``count`` significant tokens, upper-cased words (other tokens as their text)."""
    out = []
    for t in significant(tokens):
        out.append(t.upper or t.text)
        if len(out) == count:
            break
    return out


def matching_paren(tokens: list[Token], open_index: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``open_index``."""
    depth = 0
    for i in range(open_index, len(tokens)):
        t = tokens[i]
        if t.kind == "punct" and t.text == "(":
            depth += 1
        elif t.kind == "punct" and t.text == ")":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced parentheses")


def split_top_level(tokens: list[Token], separator: str = ",") -> list[list[Token]]:
    """Split a token list on ``separator`` at parenthesis depth 0."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for t in tokens:
        if t.kind == "punct" and t.text == "(":
            depth += 1
        elif t.kind == "punct" and t.text == ")":
            depth -= 1
        if depth == 0 and t.kind == "punct" and t.text == separator:
            parts.append([])
            continue
        parts[-1].append(t)
    return [p for p in parts if significant(p)]


def qualified_name_at(sig: list[Token], index: int) -> tuple[list[str], int]:
    """A possibly schema-qualified name starting at ``sig[index]``: (parts, index after it)."""
    parts = [sig[index].name]
    i = index + 1
    while i + 1 < len(sig) and sig[i].kind == "punct" and sig[i].text == "." and sig[i + 1].name:
        parts.append(sig[i + 1].name)
        i += 2
    return parts, i


def name_sql(parts: list[str]) -> str:
    return ".".join(quote_ident(p) for p in parts)
