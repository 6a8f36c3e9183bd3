"""Whether a table's CDC settings work against its real source table: columns, types, indexes.

A run fails on a missing column, but it would only be slow on an unindexed cursor (every page scans
the table) and quietly wrong on a cursor that does not order like time. These checks say so before
the first run. They read INFORMATION_SCHEMA and plan a run with :func:`explain.explain_table`
(which also proves a custom query runs and returns its cursor columns); nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pymysql

from sync_platform.configuration.project import TableSpec
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.explain import TableExplanation, explain_table
from sync_platform.engine.shape import TableShape, resolve_table
from sync_platform.engine.source_schema import SourceTable, SourceTableNotFound
from sync_platform.engine.strategies import PlanError, StrategyChoice, cursor_kind
from sync_platform.engine.sync import RunOptions
from sync_platform.engine.typemap import UnsupportedColumnType
from sync_platform.engine.watermark import Watermark

Level = Literal["ok", "warning", "error"]
TIME_KINDS = ("datetime", "timestamp", "date", "unix")


@dataclass(frozen=True)
class Finding:
    level: Level
    message: str


@dataclass
class CdcReport:
    """What was checked for one table and what was found."""

    table: str  # SOURCE:schema.table
    strategy: str | None = None
    findings: list[Finding] = field(default_factory=list)
    explanation: TableExplanation | None = None

    @property
    def errors(self) -> list[str]:
        return [f.message for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[str]:
        return [f.message for f in self.findings if f.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, level: Level, message: str) -> None:
        self.findings.append(Finding(level, message))

    def as_dict(self) -> dict[str, object]:
        return {
            "table": self.table,
            "strategy": self.strategy,
            "ok": self.ok,
            "findings": [{"level": f.level, "message": f.message} for f in self.findings],
        }


def check_table(registry: ConnectionRegistry, spec: TableSpec) -> CdcReport:
    """Check ``spec``'s CDC settings against the source table (errors stop a run; warnings do not)."""
    report = CdcReport(spec.identity, spec.config.cdc_strategy)
    with registry.source(spec.source).connect() as conn:
        try:
            shape = resolve_table(conn, spec)
        except (SourceTableNotFound, PlanError, UnsupportedColumnType) as exc:
            report.add("error", str(exc))
            return report
    choice, source, indexes = shape.choice, shape.source, shape.indexes
    report.strategy = choice.strategy
    if choice.detected:
        report.add("ok", f"no cdc columns configured: a run uses {choice.detected}")
    _check_timestamp(report, choice, source, indexes)
    _check_ids(report, choice, source, indexes)
    _check_key(report, choice)
    _check_key_collation(report, shape)
    try:
        report.explanation = explain_table(registry, spec, Watermark(), RunOptions(), shape)
    except (PlanError, UnsupportedColumnType, pymysql.MySQLError) as exc:
        report.add("error", str(exc))
    else:
        report.add("ok", "a run can be planned: first-run and incremental SQL build against the table")
    return report


def _leads_an_index(column: str, indexes: dict[str, tuple[str, ...]]) -> str | None:
    """The name of an index whose first column is ``column`` (a range on it can use the index)."""
    for name, columns in indexes.items():
        if columns and columns[0].lower() == column.lower():
            return name
    return None


def _check_timestamp(
    report: CdcReport, choice: StrategyChoice, source: SourceTable, indexes: dict[str, tuple[str, ...]]
) -> None:
    ts = choice.timestamp_column
    if not ts:
        return
    column = source.column(ts)
    kind = cursor_kind(column.data_type, as_timestamp=True)
    if kind not in TIME_KINDS:
        report.add(
            "error",
            f"cdc_timestamp_column `{ts}` is {column.column_type}, which does not order like time; "
            "use a DATETIME, TIMESTAMP, DATE or integer epoch column",
        )
    else:
        note = " (integer: an epoch in seconds, ms or µs, told by magnitude)" if kind == "unix" else ""
        report.add("ok", f"cdc_timestamp_column `{ts}` exists, {column.column_type}{note}")
    if column.nullable:
        report.add(
            "warning",
            f"`{ts}` is nullable: rows where it is NULL lie outside every incremental window; with "
            "null_cursor: load (the default) they are read by key on every run and merged, with report they "
            "are only counted, with fail the run stops; make it NOT NULL if every row has one",
        )
    index = _leads_an_index(ts, indexes)
    if index is None:
        wanted = ", ".join(f"`{c}`" for c in (ts, *choice.id_columns) if c)
        report.add(
            "warning",
            f"`{ts}` is not the first column of any index: every page and the ceiling query scan the whole "
            f"table; add one, e.g. ALTER TABLE {source.qualified_name} ADD INDEX ({wanted})",
        )
    else:
        report.add("ok", f"`{ts}` is indexed ({index})")


def _check_ids(
    report: CdcReport, choice: StrategyChoice, source: SourceTable, indexes: dict[str, tuple[str, ...]]
) -> None:
    ids = choice.id_columns
    if not ids or choice.strategy in ("timestamp_only",):
        return
    for name in ids:
        column = source.column(name)
        kind = cursor_kind(column.data_type, as_timestamp=False)
        if kind == "string":
            report.add(
                "warning",
                f"id column `{name}` is {column.column_type}: text orders by collation, which may not follow "
                "insertion order; an integer id is safer",
            )
        elif choice.strategy == "id_only" and kind not in ("integer", "decimal"):
            report.add("warning", f"id_only cursor `{name}` is {column.column_type}; an increasing integer is expected")
    covers_key = bool(choice.primary_key) and set(ids) >= set(choice.primary_key)
    unique = covers_key or any(set(key) <= set(ids) for key in source.unique_keys)
    if choice.strategy in ("id_only", "full_sync") and _leads_an_index(ids[0], indexes) is None:
        report.add("warning", f"`{ids[0]}` is not the first column of any index: every page scans the whole table")
    if not unique:
        report.add(
            "warning",
            f"({', '.join(ids)}) is not unique: pages end only between groups of equal values (safe, but a "
            "large group is read in one page)",
        )
    else:
        report.add("ok", f"id column(s) {', '.join(f'`{i}`' for i in ids)} exist and are unique")


def _check_key_collation(report: CdcReport, shape: TableShape) -> None:
    """Merge keys MySQL compares loosely: the merge matches case and trailing spaces as MySQL does, not accents."""
    choice, source = shape.choice, shape.source
    if choice.write_mode != "merge":
        return
    for name, rule in shape.key_equality.items():
        column = source.column(name)
        ignored = {"case": "case", "pad": "trailing spaces (PAD SPACE)", "case_pad": "case and trailing spaces"}[rule]
        report.add(
            "ok",
            f"key column `{name}` (collation {column.collation}) is compared ignoring {ignored} at the source; "
            "the warehouse merge matches keys the same way",
        )
        if column.compares_loosely:
            report.add(
                "warning",
                f"key column `{name}` has collation {column.collation}: MySQL also treats keys that differ only in "
                "accents ('é', 'e') as one, the warehouse merge does not, so a key whose accents change at the "
                f"source stays twice in the target. Fix: ALTER TABLE {source.qualified_name} MODIFY `{name}` "
                f"{column.column_type} COLLATE {column.character_set or 'utf8mb4'}_bin, or set "
                "primary_key to a column compared exactly",
            )


def _check_key(report: CdcReport, choice: StrategyChoice) -> None:
    if choice.primary_key:
        return
    if choice.write_mode == "replace":
        report.add("ok", "no primary key: each run replaces the whole target table")
        return
    report.add(
        "warning",
        "no primary key: batches are appended (each exactly once), so an updated row arrives as another row; "
        "set primary_key: [col, ...] to merge",
    )
