"""Several source tables loading one warehouse table (the older tool's shared ``target_name``), end to end.

The pipelines here are written for these tests: ``orders`` of two MariaDB databases (two source
connections, as two shards, in one pipeline) and an ``orders_old`` archive table (in a second
pipeline) all load ``all_orders``. Each source table stays its own unit of work with its own
watermark; the warehouse table holds their union.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from sync_platform.configuration import ConfigError, load_project
from sync_platform.engine.sync import table_prefix
from sync_platform.errors import ExitCode
from sync_platform.orchestration.factory import build_definitions, load_definitions
from sync_platform.orchestration.keys import TableKeys
from sync_platform_tests.cli.test_config_and_connections_cli import run
from sync_platform_tests.stack import MySQLDatabase, unique_name

PIPELINE_FILE = "sales_pipeline"  # pipeline.name differs, as in the older tool's files
ARCHIVE_FILE = "archive_pipeline"
TARGET = "all_orders"
CHECKS = {"row_count_matches_source", "primary_key_unique", "null_cursor_rows"}


def hybrid(**extra: object) -> dict[str, object]:
    return {
        "cdc_strategy": "hybrid",
        "cdc_timestamp_column": "updated_at",
        "cdc_id_column": "id",
        "target_name": TARGET,
        "lookback": 0,
        **extra,
    }


def create_orders(db: MySQLDatabase, table: str, ids: range) -> None:
    db.execute(f"DROP TABLE IF EXISTS `{table}`")
    db.execute(
        f"CREATE TABLE `{table}` (id BIGINT PRIMARY KEY, name VARCHAR(40), amount DECIMAL(10,2), "
        "updated_at DATETIME(6) NOT NULL, KEY (updated_at))"
    )
    db.executemany(
        f"INSERT INTO `{table}` VALUES (%s, %s, %s, TIMESTAMPADD(SECOND, %s, '2025-01-01'))",
        [(i, f"{table}-{i}", f"{i}.25", i) for i in ids],
    )


def rows_of(db: MySQLDatabase, table: str) -> list[tuple[int, str, Decimal]]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id, name, amount FROM `{table}`")
        return [(int(i), str(n), Decimal(a)) for i, n, a in cur.fetchall()]


@pytest.fixture
def shard_b() -> Iterator[MySQLDatabase]:
    db = MySQLDatabase(unique_name("spt", "many_to_one_b"))
    db.create()
    try:
        yield db
    finally:
        db.drop()


def write_site(
    config,
    shard: MySQLDatabase,
    tables: dict[str, dict[str, object]],
    archive: dict[str, dict[str, object]] | None = None,
) -> None:
    """connections.yml with a second source connection (``shard_b``), the shared-target pipeline and,
    with ``archive``, a second pipeline loading the same warehouse table."""
    document = yaml.safe_load(config.connections_file.read_text())
    sources = document["connections"]["sources"]
    sources["shard_b"] = {**sources[config.source], "database": shard.name}
    config.connections_file.write_text(yaml.safe_dump(document, sort_keys=False))
    pipeline = {
        "name": "sales",
        "source": config.source,
        "target": config.target,
        "s3_config": config.staging,
        "processing": {"batch_size": 40},
    }
    config.write(f"pipelines/{PIPELINE_FILE}.yml", {"pipeline": pipeline, "tables": tables})
    archive_file = config.path / "pipelines" / f"{ARCHIVE_FILE}.yml"
    if archive is None:
        archive_file.unlink(missing_ok=True)
    else:
        config.write(
            archive_file.relative_to(config.path).as_posix(),
            {"pipeline": {**pipeline, "name": "archive"}, "tables": archive},
        )


@pytest.fixture
def site(mysql_db, shard_b, warehouse_db, make_config_dir, tmp_path: Path):
    config = make_config_dir(postgres=warehouse_db)
    for table in (TARGET, "_sync_load_ledger"):
        warehouse_db.execute(f'DROP TABLE IF EXISTS "{config.target_schema}"."{table}"')
    create_orders(mysql_db, "orders", range(1, 131))
    create_orders(mysql_db, "orders_old", range(5001, 5061))
    create_orders(shard_b, "orders", range(1001, 1091))
    write_site(
        config,
        shard_b,
        {f"{config.source}:orders": hybrid(), "shard_b:orders": hybrid()},
        archive={"orders_old": hybrid(description="archived orders")},
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    return config, {"DAGSTER_HOME": str(home)}


def cli(config, env, *args: str):
    return run("--config-dir", str(config.path), *args, env=env)


def union(mysql_db: MySQLDatabase, shard_b: MySQLDatabase) -> list[tuple[int, str, Decimal]]:
    return sorted(rows_of(mysql_db, "orders") + rows_of(mysql_db, "orders_old") + rows_of(shard_b, "orders"))


def target_rows(warehouse_db, schema: str) -> list[tuple[int, str, Decimal]]:
    found = warehouse_db.query(f'SELECT id, name, amount FROM "{schema}"."{TARGET}"')
    return sorted((int(i), str(n), Decimal(a)) for i, n, a in found)


def sync(config, env, out: Path, *tables: str, pipeline: str = PIPELINE_FILE) -> dict:
    selected = [arg for t in tables for arg in ("-t", t)]
    result = cli(config, env, "sync", "pipeline", "-p", pipeline, *selected, "--json-output", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text())


@pytest.mark.timeout(600)
def test_two_connections_and_an_archive_table_load_one_warehouse_table(
    site, mysql_db, shard_b, warehouse_db, tmp_path
) -> None:
    config, env = site
    schema = config.target_schema
    a, old, b = f"{mysql_db.name}.orders", f"{mysql_db.name}.orders_old", f"{shard_b.name}.orders"

    # One source alone (-t, as the DAG calls it): the target holds its rows, the checks pass.
    first = sync(config, env, tmp_path / "a.json", f"{config.source}:orders")
    assert first["status"] == "success" and list(first["table_results"]) == [a]
    assert set(first["table_results"][a]["checks"]) == CHECKS and all(first["table_results"][a]["checks"].values())
    assert target_rows(warehouse_db, schema) == sorted(rows_of(mysql_db, "orders"))

    # The whole pipeline by its file name: both shards; the target is their union by count and content.
    whole = sync(config, env, tmp_path / "all.json")
    assert whole["status"] == "success" and set(whole["table_results"]) == {a, b}
    for name, result in whole["table_results"].items():
        assert result["checks"] == dict.fromkeys(CHECKS, True), (name, result)
    assert whole["table_results"][a]["rows_processed"] == 0  # its watermark was already at the end
    assert whole["table_results"][b]["rows_processed"] == 90
    assert target_rows(warehouse_db, schema) == sorted(rows_of(mysql_db, "orders") + rows_of(shard_b, "orders"))

    # A second pipeline loads the archive table into the same warehouse table; the checks sum all three sources.
    archived = sync(config, env, tmp_path / "archive.json", pipeline=ARCHIVE_FILE)
    assert archived["status"] == "success" and archived["table_results"][old]["rows_processed"] == 60
    assert archived["table_results"][old]["checks"] == dict.fromkeys(CHECKS, True)
    assert target_rows(warehouse_db, schema) == union(mysql_db, shard_b)
    assert len(union(mysql_db, shard_b)) == 130 + 60 + 90

    # An incremental round on one source moves that source only.
    shard_b.executemany(
        "INSERT INTO `orders` VALUES (%s, %s, %s, TIMESTAMPADD(SECOND, %s, '2025-01-02'))",
        [(i, f"late-{i}", "7.75", i) for i in range(1091, 1101)],
    )
    shard_b.execute("UPDATE `orders` SET name = 'changed', updated_at = '2025-01-03' WHERE id = 1001")
    one = sync(config, env, tmp_path / "b.json", "shard_b:orders")
    assert list(one["table_results"]) == [b] and one["table_results"][b]["rows_processed"] == 11
    assert one["table_results"][b]["checks"] == dict.fromkeys(CHECKS, True)
    assert target_rows(warehouse_db, schema) == union(mysql_db, shard_b)
    again = sync(config, env, tmp_path / "again.json")
    assert {n: r["rows_processed"] for n, r in again["table_results"].items()} == {a: 0, b: 0}
    again = sync(config, env, tmp_path / "again_archive.json", pipeline=ARCHIVE_FILE)
    assert again["table_results"][old]["rows_processed"] == 0
    assert target_rows(warehouse_db, schema) == union(mysql_db, shard_b)

    # A row lost from the shared target is found by the sum of the sources, whichever source (and pipeline) it
    # came from: here a row of the archive pipeline's table, found by a sync of a shard.
    warehouse_db.execute(f'DELETE FROM "{schema}"."{TARGET}" WHERE id = 5001')
    lost = cli(config, env, "sync", "pipeline", "-p", PIPELINE_FILE, "-t", "shard_b:orders")
    assert lost.returncode == ExitCode.DATA, lost.stdout + lost.stderr
    assert "row_count_matches_source" in lost.stdout + lost.stderr and "1 rows missing" in lost.stdout + lost.stderr

    # Reconcile compares one source with one table: a shared table is refused, with the reason and the fix.
    refused = cli(config, env, "reconcile", "-p", ARCHIVE_FILE, "-t", "orders_old")
    assert refused.returncode == ExitCode.CONFIG, refused.stdout + refused.stderr
    assert "also loaded from" in refused.stdout + refused.stderr and "target_name" in refused.stdout + refused.stderr


def test_shared_target_assets_keys_and_what_is_refused(site, mysql_db, shard_b) -> None:
    """Dagster keys stay unique; a replace and a table listed twice with other settings are refused."""
    config, env = site
    project = load_project(config.path)
    specs = [*project.pipelines["sales"].tables.values(), *project.pipelines["archive"].tables.values()]
    assert len(specs) == 3 and all(s.shares_target and len(s.shared_target) == 3 for s in specs)
    assert len({s.identity for s in specs}) == 3
    defs = load_definitions(config.path)
    graph = defs.resolve_asset_graph()
    shared = graph.get(next(k for k in graph.get_all_asset_keys() if k.path[-1] == TARGET))
    loads = {k.path[-1] for k in shared.parent_keys}
    assert loads == {  # the sources come from two connections: each load names its connection
        f"{TARGET}__from__{config.source}_{mysql_db.name}_orders",
        f"{TARGET}__from__{config.source}_{mysql_db.name}_orders_old",
        f"{TARGET}__from__shard_b_{shard_b.name}_orders",
    }

    # The same source table loaded into the same warehouse table by a second pipeline with other settings
    # is refused, naming both pipelines and keys and the setting (alike, it is one table: test_one_table_two_pipelines).
    config.write(
        "pipelines/third_pipeline.yml",
        {"pipeline": {**yaml.safe_load((config.path / "pipelines" / f"{ARCHIVE_FILE}.yml").read_text())["pipeline"],
                      "name": "again"}, "tables": {"shard_b:orders": hybrid(lookback=30)}},
    )  # fmt: skip
    with pytest.raises(ConfigError) as twice:
        build_definitions(load_project(config.path))
    text = str(twice.value)
    assert "third_pipeline.yml" in text and f"shard_b:{shard_b.name}.orders" in text and "sales: " in text
    assert "(lookback)" in text and "give both entries the same settings" in text
    shown = cli(config, env, "config", "validate-pipeline", "third_pipeline")  # its own file is valid: a warning
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "`shard_b:orders` of pipeline sales" in shown.stderr and "a sync of it is refused" in shown.stderr
    (config.path / "pipelines" / "third_pipeline.yml").unlink()

    # full_sync replaces the whole table on every load: it would delete the other sources' rows.
    write_site(
        config,
        shard_b,
        {"orders": hybrid(), "shard_b:orders": {"cdc_strategy": "full_sync", "target_name": TARGET}},
    )
    with pytest.raises(ConfigError) as refused:
        load_project(config.path, pipeline=PIPELINE_FILE)
    text = str(refused.value)
    assert "shard_b:orders" in text and "`orders`" in text and f"{config.target_schema}.{TARGET}" in text
    assert "full_sync_mode: paginate" in text and f"{PIPELINE_FILE}.yml" in text

    # paginate merges by key: accepted.
    write_site(
        config,
        shard_b,
        {
            "orders": hybrid(),
            "shard_b:orders": {"cdc_strategy": "full_sync", "full_sync_mode": "paginate", "target_name": TARGET},
        },
    )
    assert load_project(config.path, pipeline=PIPELINE_FILE).pipelines["sales"].tables

    # One schema.table from two connections of one pipeline (a replica beside the primary): two source
    # tables, told apart by their connection in names, staging paths and keys.
    document = yaml.safe_load(config.connections_file.read_text())
    document["connections"]["sources"]["replica"] = document["connections"]["sources"][config.source]
    config.connections_file.write_text(yaml.safe_dump(document, sort_keys=False))
    write_site(config, shard_b, {"orders": hybrid(), "replica:orders": hybrid()})
    pipeline = load_project(config.path, pipeline=PIPELINE_FILE).pipelines["sales"]
    primary, replica = (pipeline.tables[pipeline.table_name(k)] for k in ("orders", "replica:orders"))
    assert (primary.name, replica.name) == (
        f"{config.source}:{mysql_db.name}.orders",
        f"replica:{mysql_db.name}.orders",
    )
    assert primary.shares_target and replica.shares_target
    assert table_prefix(primary) != table_prefix(replica)
    assert len({TableKeys.of(s).staging for s in (primary, replica)}) == 2
    assert len({TableKeys.of(s).warehouse for s in (primary, replica)}) == 2
    assert len({TableKeys.of(s).op for s in (primary, replica)}) == 2


def test_one_table_listed_twice_is_one_table_or_an_error_naming_both_keys(site, mysql_db, shard_b) -> None:
    """``orders`` and ``CONN:orders`` name one source table: with the same settings it is one table
    (synced once, both keys accepted by -t, a warning names both); with other settings an error."""
    config, env = site
    write_site(
        config,
        shard_b,
        {
            "orders": {**hybrid(), "description": "bare key"},
            f"{config.source}:orders": {**hybrid(), "description": "connection-scoped key"},
        },
    )
    project = load_project(config.path, pipeline=PIPELINE_FILE)
    pipeline = project.pipelines["sales"]
    assert list(pipeline.tables) == [f"{mysql_db.name}.orders"]
    spec = pipeline.tables[f"{mysql_db.name}.orders"]
    assert not spec.shares_target
    assert pipeline.table_name(f"{config.source}:orders") == pipeline.table_name("orders") == spec.name
    shown = cli(config, env, "config", "validate-pipeline", PIPELINE_FILE)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    said = shown.stdout + shown.stderr
    assert f"{config.source}:orders" in said and "also listed as `orders`" in said and "synced once" in said

    write_site(
        config,
        shard_b,
        {"orders": hybrid(), f"{config.source}:orders": {**hybrid(), "cdc_strategy": "timestamp_only"}},
    )
    refused = cli(config, env, "config", "validate-pipeline", PIPELINE_FILE)
    assert refused.returncode == ExitCode.CONFIG, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    assert f"`{config.source}:orders`" in said or f"{config.source}:orders" in said
    assert "also listed as `orders`" in said and "cdc_strategy" in said and "remove the other" in said
