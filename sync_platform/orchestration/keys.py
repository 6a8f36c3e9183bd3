"""Names Dagster shows for a table: asset keys, op, group, pool and resource keys.

One place for them, so the UI, the CLI (which selects assets by key) and the tests agree:

- ``mysql/<source>/<schema>/<table>_mysql``: the MySQL table, an external asset (never materialized here);
- ``staging/<pipeline>/<schema>/<table>_staged``: the parquet batches staged in S3 or a directory ("backup");
- ``warehouse/<target>/<target schema>/<target table>``: the Redshift (or PostgreSQL) table.

Several source tables of one pipeline may load one warehouse table (the many-to-one layout). Each
keeps its own assets; its warehouse asset is then its *load* into the shared table,
``warehouse/<target>/<target schema>/<target table>__from__[<connection>_]<schema>_<table>`` (the
connection named when the sources come from several), and the shared table
itself is one more asset, ``warehouse/<target>/<target schema>/<target table>``, downstream of every load
(external: it is materialized only through its loads). A table listed from several connections in one
pipeline has the connection in its staged key (``staging/<pipeline>/<connection>/<schema>/<table>_staged``).

The asset graph labels a node with the last part of its key only, so the three nodes of a table end
differently (``orders_mysql`` → ``orders_staged`` → ``orders``): a person tells them apart at a glance.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

import dagster as dg

from sync_platform.configuration.project import TableSpec

SOURCE_SUFFIX = "_mysql"
STAGED_SUFFIX = "_staged"
Role = Literal["source", "target", "staging"]
_NOT_NAME = re.compile(r"[^A-Za-z0-9_]+")
_ROLE_PREFIX: dict[Role, str] = {"source": "mysql", "target": "warehouse", "staging": "staging"}


def identifier(text: str) -> str:
    """``text`` as a Dagster name (letters, digits, ``_``); never empty, never starts with a digit."""
    name = _NOT_NAME.sub("_", text).strip("_") or "unnamed"
    return f"_{name}" if name[0].isdigit() else name


def source_key(spec: TableSpec) -> dg.AssetKey:
    return dg.AssetKey(["mysql", spec.source, spec.schema, spec.table + SOURCE_SUFFIX])


def staging_key(spec: TableSpec) -> dg.AssetKey:
    # A pipeline.name may hold spaces or dots (the older tool allowed any text); key parts may not.
    scope = [identifier(spec.scope)] if spec.scope else []
    return dg.AssetKey(["staging", identifier(spec.pipeline), *scope, spec.schema, spec.table + STAGED_SUFFIX])


def target_table_key(spec: TableSpec) -> dg.AssetKey:
    """The warehouse table itself, whichever source tables load it."""
    return dg.AssetKey(["warehouse", spec.target, spec.target_schema, spec.target_table])


def warehouse_key(spec: TableSpec) -> dg.AssetKey:
    """The asset a table's sync materializes in the warehouse: the table, or its load into a shared table."""
    if not spec.shares_target:
        return target_table_key(spec)
    # The source connection is named when the table's sources come from several connections.
    several = len({identity.split(":", 1)[0] for identity in spec.shared_target}) > 1
    origin = identifier("_".join(p for p in (spec.source if several else "", spec.schema, spec.table) if p))
    return dg.AssetKey(["warehouse", spec.target, spec.target_schema, f"{spec.target_table}__from__{origin}"])


def group_name(pipeline: str) -> str:
    """One asset group per pipeline."""
    return identifier(pipeline)


def schedule_name(pipeline: str) -> str:
    return f"{identifier(pipeline)}_schedule"


def op_name(spec: TableSpec) -> str:
    """The op that syncs one table; a short hash keeps names unique after sanitizing."""
    scope = f"\0{spec.scope}" if spec.scope else ""
    digest = hashlib.sha1(f"{spec.pipeline}\0{spec.schema}\0{spec.table}{scope}".encode()).hexdigest()[:6]
    return identifier(f"sync_{spec.pipeline}__{spec.schema}__{spec.table}")[:200] + f"_{digest}"


def source_pool(source: str) -> str:
    """The concurrency pool every table of one MySQL source shares (``mysql-<source>``)."""
    return f"mysql-{source}"


def resource_key(role: Role, connection: str) -> str:
    """The Dagster resource key of a connection, e.g. ``mysql_shop``, ``warehouse_dw``, ``staging_local``."""
    return f"{_ROLE_PREFIX[role]}_{identifier(connection)}"


@dataclass(frozen=True)
class TableKeys:
    """Every name Dagster uses for one table of one pipeline."""

    spec: TableSpec
    source: dg.AssetKey
    staging: dg.AssetKey
    warehouse: dg.AssetKey  # what the sync materializes: the table, or this source's load into a shared one
    table: dg.AssetKey  # the warehouse table itself (== warehouse unless the table is shared)
    op: str
    group: str
    pool: str

    @classmethod
    def of(cls, spec: TableSpec) -> TableKeys:
        return cls(
            spec=spec,
            source=source_key(spec),
            staging=staging_key(spec),
            warehouse=warehouse_key(spec),
            table=target_table_key(spec),
            op=op_name(spec),
            group=group_name(spec.pipeline),
            pool=source_pool(spec.source),
        )

    @property
    def resource_keys(self) -> dict[Role, str]:
        spec = self.spec
        return {
            "source": resource_key("source", spec.source),
            "target": resource_key("target", spec.target),
            "staging": resource_key("staging", spec.staging),
        }
