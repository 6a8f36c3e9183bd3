"""A table resolved once per run: the source table, its strategy, its keyset and its column mapping.

"Read the source table → choose the strategy → map the columns" happens here and nowhere else:
:func:`resolve_table` builds a :class:`TableShape` from a source connection and the table's spec
(:func:`read_table_shape` opens the connection itself). Planning a run (``sync.plan_extract``), the
checks, reconcile, recovery from the warehouse, ``cdc validate`` and the CLI's watermark and
column-mapping commands all take that one object, so they agree on columns, keys and collations,
and a run reads the source's INFORMATION_SCHEMA once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pymysql
import pymysql.connections

from sync_platform.configuration.project import TableSpec
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine import collation
from sync_platform.engine.mysql_sql import table_sql
from sync_platform.engine.source_schema import SourceTable, read_indexes, read_source_table
from sync_platform.engine.strategies import (
    CursorColumn,
    PlanError,
    StrategyChoice,
    check_custom_query,
    choose_strategy,
    keyset_of,
    render_custom_query,
)
from sync_platform.engine.typemap import TableMapping, map_table


@dataclass(frozen=True)
class TableShape:
    """One source table as a run of its strategy sees it (plain data, built by :func:`resolve_table`)."""

    source: SourceTable  # columns (types, collations), primary key, unique keys
    choice: StrategyChoice  # the resolved strategy, keys and write mode
    keyset: tuple[CursorColumn, ...]  # the columns a watermark is written on, in paging order
    mapping: TableMapping  # source column → warehouse column, for what a run stages (custom_sql: its query's)
    indexes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # every index, columns in order
    unique_keyset: bool = False

    @property
    def keyset_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.keyset)

    def warehouse_names(self, columns: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(self.mapping.warehouse_name(c) for c in columns)

    @property
    def key_equality(self) -> dict[str, collation.KeyEquality]:
        """Merge-key columns MySQL compares loosely (source name → what it ignores); computed from collations."""
        found = {k: self.source.column(k).key_equality for k in self.choice.primary_key}
        return {name: rule for name, rule in found.items() if rule is not None}

    @property
    def position_order(self) -> dict[str, Callable[[Any], Any]]:
        """Sort keys for the keyset's text columns, so Python compares positions in the source's collation order."""
        order: dict[str, Callable[[Any], Any]] = {}
        for cursor in self.keyset:
            column = self.source.column(cursor.name)
            key = collation.sort_key(column.data_type, column.collation)
            if key is not None:
                order[cursor.name] = key
        return order


def resolve_table(conn: pymysql.connections.Connection, spec: TableSpec) -> TableShape:
    """Read ``spec``'s source table and resolve its strategy, keyset and column mapping (reads only).

    Raises ``SourceTableNotFound``, ``PlanError`` (a setting the table cannot satisfy, a custom query
    that does not run) and ``UnsupportedColumnType``.
    """
    source = read_source_table(conn, spec.schema, spec.table)
    indexes = read_indexes(conn, spec.schema, spec.table)
    choice = choose_strategy(spec, source)
    keyset, unique = keyset_of(choice, source)
    mapping = _custom_mapping(conn, spec, source, choice) if choice.strategy == "custom_sql" else map_table(source)
    return TableShape(source, choice, keyset, mapping, indexes, unique)


def read_table_shape(registry: ConnectionRegistry, spec: TableSpec) -> TableShape:
    """:func:`resolve_table` over a connection of its own to the table's source."""
    with registry.source(spec.source).connect() as conn:
        return resolve_table(conn, spec)


def _custom_mapping(
    conn: pymysql.connections.Connection, spec: TableSpec, source: SourceTable, choice: StrategyChoice
) -> TableMapping:
    """The mapping of the columns a custom query returns; its cursor columns must be among them."""
    query = spec.config.custom_query or ""
    check_custom_query(query)
    probe = render_custom_query(
        query,
        table_sql=table_sql(source.schema, source.table),
        last_timestamp="'1000-01-01 00:00:00'",
        last_id="-1",
        ceiling="'9999-12-31 23:59:59'",
        limit=0,
    )
    with conn.cursor() as cursor:
        try:
            cursor.execute(f"SELECT * FROM ({probe}) AS custom_query LIMIT 0")
        except pymysql.MySQLError as exc:
            raise PlanError(f"{spec.name}: custom_query does not run: {exc.args[-1]}") from exc
        returned = [d[0] for d in cursor.description]
    by_name = {c.name.lower(): c for c in source.columns}
    unknown = [name for name in returned if name.lower() not in by_name]
    if unknown:
        raise PlanError(
            f"{spec.name}: custom_query returns {', '.join(unknown)}, which are not columns of "
            f"{source.qualified_name}; return the table's own columns"
        )
    needed = [c for c in (choice.timestamp_column, *choice.id_columns) if c]
    missing = [c for c in needed if c.lower() not in {r.lower() for r in returned}]
    if missing:
        raise PlanError(f"{spec.name}: custom_query must return its cursor columns; missing: {', '.join(missing)}")
    subset = SourceTable(
        source.schema, source.table, tuple(by_name[r.lower()] for r in returned), source.primary_key, source.unique_keys
    )
    return map_table(subset)
