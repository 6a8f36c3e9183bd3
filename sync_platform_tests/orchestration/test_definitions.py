"""The definitions built from YAML: keys, lineage, groups, metadata, checks, automation, resources.

No server is needed (or contacted): every connection points at a closed port.
"""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from bench.bench_definitions import measure
from sync_platform.configuration import ConfigError, load_project
from sync_platform.orchestration.automation import POOL_LIMITS_SENSOR, STAGED_BATCHES_SENSOR, TABLES_JOB
from sync_platform.orchestration.checks import FRESHNESS_SENSOR, ROW_COUNT_CHECK, UNIQUE_KEY_CHECK
from sync_platform.orchestration.component import SyncPipelinesComponent
from sync_platform.orchestration.factory import build_definitions
from sync_platform.orchestration.launch import only_tables
from sync_platform.orchestration.resources import MySQLSourceResource, StagingResource, WarehouseResource

CONNECTIONS = {
    "connections": {
        "sources": {
            "shop": {"host": "127.0.0.1", "port": 1, "database": "shop", "username": "u", "password": "${SPT_SHOP_PW}"}
        },
        "targets": {
            "dw": {"host": "127.0.0.1", "port": 1, "database": "dw", "schema": "raw", "username": "u", "password": "x"}
        },
    },
    "s3_configs": {"lake": {"bucket_name": "lake", "region": "us-east-1", "prefix": "sync"}},
}
SHOP = {
    "pipeline": {
        "name": "shop",
        "source": "shop",
        "target": "dw",
        "s3_config": "lake",
        "schedule": {"cron": "*/15 * * * *"},
        "owners": ["data-team"],
        "tags": {"domain": "sales/eu"},
        "freshness": {"max_lag": "1h"},
        "max_concurrent_per_source": 3,
    },
    "tables": {
        "shop.orders": {
            "cdc_strategy": "hybrid",
            "cdc_timestamp_column": "updated_at",
            "cdc_id_column": "id",
            "description": "Every order",
            "owners": ["ana@example.com"],
            "tags": {"tier": "gold"},
            "freshness": {"max_lag": "30m"},
        },
        "shop.customers": {"cdc_strategy": "full_sync", "target_name": "clients"},
    },
}


def write(directory: Path, pipelines: dict[str, dict]) -> Path:
    config = directory / "config"
    (config / "pipelines").mkdir(parents=True, exist_ok=True)
    (config / "connections.yml").write_text(yaml.safe_dump(CONNECTIONS))
    for name, document in pipelines.items():
        (config / "pipelines" / f"{name}.yml").write_text(yaml.safe_dump(document))
    return config


@pytest.fixture
def defs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    monkeypatch.setenv("SPT_SHOP_PW", "s3cret")
    started = time.monotonic()
    built = build_definitions(load_project(write(tmp_path, {"shop": SHOP})))
    dg.Definitions.validate_loadable(built)
    assert time.monotonic() - started < 10  # nothing waited on a connection
    return built


def test_each_table_becomes_mysql_staging_and_warehouse_assets_with_lineage(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    orders = [
        dg.AssetKey(["mysql", "shop", "shop", "orders_mysql"]),
        dg.AssetKey(["staging", "shop", "shop", "orders_staged"]),
    ]
    warehouse = dg.AssetKey(["warehouse", "dw", "raw", "orders"])
    assert graph.get(orders[1]).parent_keys == {orders[0]}
    assert graph.get(warehouse).parent_keys == {orders[1]}
    assert not graph.get(orders[0]).is_executable  # the MySQL table is an external source
    assert dg.AssetKey(["warehouse", "dw", "raw", "clients"]) in graph.get_all_asset_keys()
    assert {graph.get(k).group_name for k in graph.get_all_asset_keys()} == {"shop"}

    node = graph.get(warehouse)
    assert node.kinds == {"redshift"} and graph.get(orders[1]).kinds == {"parquet", "s3"}
    assert node.description.startswith("Every order")
    assert node.owners == ["team:data-team", "ana@example.com"]
    assert node.tags["tier"] == "gold" and node.tags["domain"] == "sales_eu"
    assert node.metadata["dagster/table_name"] == "dw.raw.orders"
    assert graph.get(orders[0]).metadata["dagster/table_name"] == "shop.orders"
    assert graph.get(orders[1]).metadata["location"] == "s3://lake/sync/shop/shop/orders/"


def test_checks_schedules_sensors_and_pools_come_from_the_config(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    warehouse = dg.AssetKey(["warehouse", "dw", "raw", "orders"])
    names = {key.name for key in graph.asset_check_keys if key.asset_key == warehouse}
    assert {ROW_COUNT_CHECK, UNIQUE_KEY_CHECK, "freshness_check"} <= names
    assert graph.get(warehouse).pools == {"mysql-shop"}

    schedule = defs.resolve_schedule_def("shop_schedule")
    assert schedule.cron_schedule == "*/15 * * * *" and schedule.job_name == TABLES_JOB
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    sensors = {sensor.name for sensor in defs.sensors or []}
    assert {STAGED_BATCHES_SENSOR, POOL_LIMITS_SENSOR, FRESHNESS_SENSOR} <= sensors

    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        defs.resolve_sensor_def(POOL_LIMITS_SENSOR).evaluate_tick(context)
        limits = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}
        assert limits == {"mysql-shop": 3}


def test_resources_are_one_per_connection_and_secrets_are_env_vars(defs: dg.Definitions) -> None:
    resources = defs.resources or {}
    source = resources["mysql_shop"]
    assert isinstance(source, MySQLSourceResource) and source.host == "127.0.0.1"
    assert isinstance(source.password, dg.EnvVar) and source.password.env_var_name == "SPT_SHOP_PW"
    target = resources["warehouse_dw"]
    assert isinstance(target, WarehouseResource) and target.password is None  # a literal stays in the file
    assert isinstance(resources["staging_lake"], StagingResource)
    graph = defs.resolve_asset_graph()
    assert not any("s3cret" in str(graph.get(key).metadata) for key in graph.get_all_asset_keys())


def test_two_pipelines_listing_one_table_define_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Alike, it is one table owned by the first file (``again.yml``); with other settings, refused."""
    monkeypatch.setenv("SPT_SHOP_PW", "s3cret")
    other = {**SHOP, "pipeline": {**SHOP["pipeline"], "name": "again"}}
    project = load_project(write(tmp_path, {"shop": SHOP, "again": other}))
    assert project.pipelines["shop"].tables["shop.orders"].pipeline == "again"
    defs = build_definitions(project)
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert [k.path for k in keys if k.path[-1] == "orders_staged"] == [["staging", "again", "shop", "orders_staged"]]
    assert [k.path for k in keys if k.path[-1] == "orders"] == [["warehouse", "dw", "raw", "orders"]]

    changed = {**other, "tables": {**SHOP["tables"], "shop.orders": {**SHOP["tables"]["shop.orders"], "lookback": 9}}}
    with pytest.raises(ConfigError, match=r"with different settings \(lookback\)"):
        build_definitions(load_project(write(tmp_path, {"shop": SHOP, "again": changed})))


def test_the_component_builds_the_same_definitions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPT_SHOP_PW", "s3cret")
    config = write(tmp_path, {"shop": SHOP})
    built = dg.build_defs_for_component(SyncPipelinesComponent(config_dir=str(config)))
    assert dg.AssetKey(["warehouse", "dw", "raw", "clients"]) in built.resolve_asset_graph().get_all_asset_keys()


def test_definitions_module_loads_the_configured_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNC_PLATFORM_CONFIG_DIR", str(write(tmp_path, {"shop": SHOP})))
    monkeypatch.setenv("SPT_SHOP_PW", "s3cret")
    from sync_platform import definitions

    loaded = definitions.defs()  # lazy: importing the module reads nothing
    assert (
        dg.AssetKey(["staging", "shop", "shop", "customers_staged"])
        in loaded.resolve_asset_graph().get_all_asset_keys()
    )


def test_a_thousand_tables_become_three_thousand_assets() -> None:
    """Correctness at scale; the time it takes is measured by ``python -m bench.bench_definitions``."""
    figures = measure(tables=1000, pipelines=10)
    assert figures["assets"] == 3000


def test_a_cli_run_builds_only_the_tables_it_syncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`sync -t shop.orders` executes a job of that table's assets, not of every configured table."""
    monkeypatch.setenv("SPT_SHOP_PW", "s3cret")
    other = {
        **SHOP,
        "pipeline": {**SHOP["pipeline"], "name": "other"},
        "tables": {"shop.items": {"cdc_strategy": "full_sync"}},
    }
    project = load_project(write(tmp_path, {"shop": SHOP, "other": other}))
    orders = project.pipelines["shop"].tables["shop.orders"]
    cut = only_tables(project, [orders])
    assert {name: list(p.tables) for name, p in cut.pipelines.items()} == {"shop": ["shop.orders"]}
    keys = build_definitions(cut).resolve_asset_graph().get_all_asset_keys()
    assert dg.AssetKey(["warehouse", "dw", "raw", "orders"]) in keys
    assert not any("customers" in key.path or "items" in key.path for key in keys)
    assert cut.pipelines["shop"].settings == project.pipelines["shop"].settings  # same pipeline, fewer tables
