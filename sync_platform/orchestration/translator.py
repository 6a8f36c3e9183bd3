"""Table specs into Dagster asset specs: keys, lineage, groups, kinds, descriptions, owners, tags, metadata.

Pure functions of the configuration: building them does no I/O, so loading definitions for a thousand
tables stays fast and works with every server down.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from sync_platform.configuration.models import parse_duration
from sync_platform.configuration.project import Pipeline, Project, TableSpec
from sync_platform.engine.sync import table_prefix
from sync_platform.orchestration.keys import TableKeys
from sync_platform.orchestration.resources import staging_location

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TAG_KEY = re.compile(r"^([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}$")
_TAG_VALUE = re.compile(r"^[A-Za-z0-9_.-]{0,63}$")
_NOT_TAG = re.compile(r"[^A-Za-z0-9_.-]+")


def owners_of(*lists: Sequence[str]) -> list[str]:
    """Owners as Dagster accepts them: e-mail addresses, or team names written ``team:<name>``."""
    out: list[str] = []
    for owner in (o.strip() for group in lists for o in group):
        if not owner:
            continue
        value = owner if _EMAIL.match(owner) or owner.startswith("team:") else f"team:{owner}"
        if value not in out:
            out.append(value)
    return out


def tags_of(*mappings: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(Dagster tags, the configured tags Dagster cannot take as written, kept for metadata).

    Dagster restricts tag keys and values to letters, digits, ``_ - .`` (63 characters); a value
    such as ``sales/eu`` becomes ``sales_eu`` so a configuration never stops the location loading.
    """
    tags: dict[str, str] = {}
    original: dict[str, str] = {}
    for mapping in mappings:
        for key, value in mapping.items():
            text = str(value)
            if _TAG_KEY.match(key) and _TAG_VALUE.match(text):
                tags[key] = text
                continue
            original[key] = text
            fixed_key = key if _TAG_KEY.match(key) else _NOT_TAG.sub("_", key)[:63]
            tags[fixed_key] = _NOT_TAG.sub("_", text)[:63]
    return tags, original


def freshness_lag_seconds(pipeline: Pipeline, spec: TableSpec) -> float | None:
    """The table's ``freshness.max_lag``, else the pipeline's; None when neither sets one."""
    for freshness in (spec.config.freshness, pipeline.settings.freshness):
        if freshness is not None and freshness.max_lag is not None:
            return parse_duration(freshness.max_lag)
    return None


def _address(cfg: Any) -> str:
    text = f"{cfg.host}:{getattr(cfg, 'effective_port', None) or cfg.port}"
    tunnel = cfg.ssh_tunnel
    return f"{text} via {tunnel.host}" if tunnel is not None and tunnel.enabled else text


def source_spec(project: Project, keys: TableKeys) -> dg.AssetSpec:
    """The MySQL table: an external asset, never materialized by Dagster, the root of the lineage."""
    spec = keys.spec
    cfg = project.connections.connections.sources[spec.source]
    return dg.AssetSpec(
        keys.source,
        description=f"MySQL table `{spec.schema}`.`{spec.table}` on source `{spec.source}` (read, never written).",
        group_name=keys.group,
        kinds={"mysql"},
        metadata={
            "dagster/table_name": f"{spec.schema}.{spec.table}",
            "connection": spec.source,
            "address": _address(cfg),
        },
    )


def staging_spec(project: Project, pipeline: Pipeline, keys: TableKeys) -> dg.AssetSpec:
    """The parquet batches staged for the table (the older tool's "backup"), downstream of MySQL."""
    spec = keys.spec
    cfg = spec.config
    store = project.connections.s3_configs[spec.staging]
    tags, odd_tags = tags_of(pipeline.settings.tags, cfg.tags)
    metadata: dict[str, Any] = {
        "location": f"{staging_location(project, spec.staging)}/{table_prefix(spec)}/",
        "strategy": cfg.cdc_strategy,
        "cursor": ", ".join(c for c in (cfg.cdc_timestamp_column, cfg.cdc_id_column) if c) or "(from the source)",
        "pipeline": spec.pipeline,
        "source_table": spec.identity,
    }
    if odd_tags:
        metadata["configured_tags"] = dg.MetadataValue.json(odd_tags)
    return dg.AssetSpec(
        keys.staging,
        deps=[keys.source],
        description=(
            f"Parquet batches of {spec.name} staged in `{spec.staging}` with a manifest each (the backup); "
            f"strategy {cfg.cdc_strategy}. Materializing it reads MySQL from the extract watermark."
        ),
        group_name=keys.group,
        kinds={"parquet", "s3"} if store.kind == "s3" else {"parquet"},
        owners=owners_of(pipeline.settings.owners, cfg.owners),
        tags=tags,
        metadata=metadata,
        skippable=True,
    )


def warehouse_spec(project: Project, pipeline: Pipeline, keys: TableKeys) -> dg.AssetSpec:
    """The warehouse table, downstream of the staged batches."""
    spec = keys.spec
    cfg = spec.config
    target = project.connections.connections.targets[spec.target]
    tags, odd_tags = tags_of(pipeline.settings.tags, cfg.tags)
    lag = freshness_lag_seconds(pipeline, spec)
    metadata: dict[str, Any] = {
        "dagster/table_name": f"{target.database}.{spec.target_schema}.{spec.target_table}",
        "connection": spec.target,
        "address": _address(target),
        "write_mode": cfg.write_mode or "from the strategy (merge with a key, else append; full_sync: replace)",
        "source_table": spec.identity,
    }
    if lag is not None:
        metadata["freshness_max_lag_seconds"] = lag
    if odd_tags:
        metadata["configured_tags"] = dg.MetadataValue.json(odd_tags)
    description = cfg.description or pipeline.settings.description
    base = (
        f"{target.dialect.capitalize()} table {spec.target_schema}.{spec.target_table}, "
        f"loaded from the staged batches of {spec.name}."
    )
    if spec.shares_target:
        others = ", ".join(i for i in spec.shared_target if i != spec.identity)
        base = (
            f"The rows of {spec.identity} in {target.dialect.capitalize()} table "
            f"{spec.target_schema}.{spec.target_table}, which {others} also load(s); loaded from the staged "
            f"batches of {spec.name} with this table's own watermark. Its checks compare the whole target table "
            "with the sum of its sources."
        )
        metadata["shared_with"] = others
    return dg.AssetSpec(
        keys.warehouse,
        deps=[keys.staging],
        description=f"{description}\n\n{base}" if description else base,
        group_name=keys.group,
        kinds={"redshift" if target.dialect == "redshift" else "postgres"},
        owners=owners_of(pipeline.settings.owners, cfg.owners),
        tags=tags,
        metadata=metadata,
        skippable=True,
    )


def shared_table_spec(project: Project, members: Sequence[TableKeys]) -> dg.AssetSpec:
    """A warehouse table several source tables load: downstream of each source's load, materialized through them."""
    spec = members[0].spec
    target = project.connections.connections.targets[spec.target]
    sources = ", ".join(k.spec.identity for k in members)
    return dg.AssetSpec(
        members[0].table,
        deps=[k.warehouse for k in members],
        description=(
            f"{target.dialect.capitalize()} table {spec.target_schema}.{spec.target_table}, loaded by {len(members)} "
            f"source tables: {sources}. Each loads its own rows with its own watermark; materialize the loads "
            "(the upstream assets), not this one."
        ),
        group_name=members[0].group,
        kinds={"redshift" if target.dialect == "redshift" else "postgres"},
        metadata={
            "dagster/table_name": f"{target.database}.{spec.target_schema}.{spec.target_table}",
            "connection": spec.target,
            "address": _address(target),
            "source_tables": sources,
        },
    )
