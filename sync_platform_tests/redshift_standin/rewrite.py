"""Token-level rewrites of Redshift functions, types and catalog relations into PostgreSQL.

Only names in a position where Redshift reads them as a function, type or relation are touched:
``GETDATE(``, ``JSON_PARSE(``, ``::SUPER``, ``FROM pg_table_def`` and so on.
"""

from __future__ import annotations

from sync_platform_tests.redshift_standin.catalog import MAX_VARCHAR_BYTES, SCHEMA
from sync_platform_tests.redshift_standin.sql import Token

# Redshift function → PostgreSQL function (called with the same arguments).
FUNCTIONS = {
    "GETDATE": f"{SCHEMA}.getdate",
    "JSON_PARSE": f"{SCHEMA}.json_parse",
    "JSON_SERIALIZE": f"{SCHEMA}.json_serialize",
    "IS_VALID_JSON": f"{SCHEMA}.is_valid_json",
    "STRTOL": f"{SCHEMA}.strtol",
    "TO_HEX": f"{SCHEMA}.to_hex",
    "SHA2": f"{SCHEMA}.sha2",
    "NVL": "coalesce",
    "LEN": "length",
}
# Redshift system relations the stand-in emulates with views.
RELATIONS = {"PG_TABLE_DEF": f"{SCHEMA}.pg_table_def", "SVV_TABLE_INFO": f"{SCHEMA}.svv_table_info"}
SYSDATE_SQL = "(transaction_timestamp() AT TIME ZONE 'UTC')"


def _next(tokens: list[Token], i: int) -> int:
    """Index of the next significant token after ``i`` (len(tokens) when none)."""
    j = i + 1
    while j < len(tokens) and tokens[j].is_trivia:
        j += 1
    return j


def _prev(tokens: list[Token], i: int) -> int:
    j = i - 1
    while j >= 0 and tokens[j].is_trivia:
        j -= 1
    return j


def _is(tokens: list[Token], i: int, text: str) -> bool:
    return 0 <= i < len(tokens) and (tokens[i].upper == text or (not tokens[i].upper and tokens[i].text == text))


def rewrite_expressions(tokens: list[Token]) -> list[Token]:
    out: list[Token] = []
    i = 0
    n = len(tokens)
    while i < n:
        t = tokens[i]
        upper = t.upper
        prev = _prev(tokens, i)
        after_dot = _is(tokens, prev, ".")
        if upper and not after_dot:
            nxt = _next(tokens, i)
            if upper in FUNCTIONS and _is(tokens, nxt, "("):
                out.append(Token("word", FUNCTIONS[upper]))
                i += 1
                continue
            if upper == "SYSDATE" and not _is(tokens, nxt, "("):
                out.append(Token("word", SYSDATE_SQL))
                i += 1
                continue
            if upper in RELATIONS and not _is(tokens, nxt, "("):
                out.append(Token("word", RELATIONS[upper]))
                i += 1
                continue
            if upper == "PG_CATALOG" and _is(tokens, nxt, "."):
                target = _next(tokens, nxt)
                if target < n and tokens[target].upper in RELATIONS:
                    out.append(Token("word", RELATIONS[tokens[target].upper]))
                    i = target + 1
                    continue
            if upper == "INFORMATION_SCHEMA" and _is(tokens, nxt, "."):
                target = _next(tokens, nxt)
                if target < n and tokens[target].upper == "COLUMNS":
                    out.append(Token("word", f"{SCHEMA}.information_schema_columns"))
                    i = target + 1
                    continue
            # Types in casts: x::SUPER, CAST(x AS SUPER), VARCHAR(MAX), x::VARBYTE(n)
            in_type_position = _is(tokens, prev, "::") or (
                _is(tokens, prev, "AS") and (upper in ("SUPER", "VARBYTE", "VARBINARY"))
            )
            if in_type_position and upper == "SUPER":
                out.append(Token("word", f"{SCHEMA}.super"))
                i += 1
                continue
            if in_type_position and upper in ("VARBYTE", "VARBINARY"):
                out.append(Token("word", "bytea"))
                i += 1
                if _is(tokens, nxt, "("):
                    depth = 0
                    j = nxt
                    while j < n:
                        if tokens[j].text == "(":
                            depth += 1
                        elif tokens[j].text == ")":
                            depth -= 1
                            if depth == 0:
                                break
                        j += 1
                    i = j + 1
                continue
            if upper in ("VARCHAR", "NVARCHAR") and _is(tokens, nxt, "("):
                arg = _next(tokens, nxt)
                close = _next(tokens, arg)
                if _is(tokens, arg, "MAX") and _is(tokens, close, ")"):
                    out.append(Token("word", f"varchar({MAX_VARCHAR_BYTES})"))
                    i = close + 1
                    continue
        out.append(t)
        i += 1
    return out
