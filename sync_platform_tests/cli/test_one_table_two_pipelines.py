"""One source table listed by two pipelines into one warehouse table, and a table whose target is renamed.

The older tool named a table's watermark after its source connection, key and target, so two pipelines
listing the same source table into the same target shared one watermark: one table configured twice.
Here it is one table (one set of assets, owned by the first pipeline file in sorted order), synced with
one watermark from either pipeline. The pipelines are written for these tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
import yaml

from sync_platform.configuration import load_project
from sync_platform.errors import ExitCode
from sync_platform.orchestration.factory import load_definitions
from sync_platform.orchestration.keys import schedule_name
from sync_platform_tests.cli.test_config_and_connections_cli import REPO, run
from sync_platform_tests.stack import MySQLDatabase, unique_name

OWNER_FILE, OTHER_FILE, DIFFERENT_FILE = "a_orders_pipeline", "b_orders_pipeline", "c_orders_pipeline"


def create_table(db: MySQLDatabase, table: str, ids: range) -> None:
    db.execute(
        f"CREATE TABLE `{table}` (id BIGINT PRIMARY KEY, name VARCHAR(40), amount DECIMAL(10,2), "
        "updated_at DATETIME(6) NOT NULL, KEY (updated_at))"
    )
    insert(db, table, ids, "2025-01-01")


def insert(db: MySQLDatabase, table: str, ids: range, day: str) -> None:
    db.executemany(
        f"INSERT INTO `{table}` VALUES (%s, %s, %s, TIMESTAMPADD(SECOND, %s, '{day}'))",
        [(i, f"row-{i}", f"{i}.25", i) for i in ids],
    )


def source_rows(db: MySQLDatabase, table: str) -> list[tuple[int, str, Decimal]]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id, name, amount FROM `{table}`")
        return sorted((int(i), str(n), Decimal(a)) for i, n, a in cur.fetchall())


def target_rows(warehouse_db, schema: str, table: str) -> list[tuple[int, str, Decimal]]:
    found = warehouse_db.query(f'SELECT id, name, amount FROM "{schema}"."{table}"')
    return sorted((int(i), str(n), Decimal(a)) for i, n, a in found)


def checksum(rows: list[tuple[int, str, Decimal]]) -> int:
    return sum(hash((i, n, str(a))) for i, n, a in rows)


def table_entry(target: str, **extra: object) -> dict[str, object]:
    return {
        "cdc_strategy": "hybrid",
        "cdc_timestamp_column": "updated_at",
        "cdc_id_column": "id",
        "target_name": target,
        "lookback": 0,
        **extra,
    }


def write_pipeline(
    config, file: str, name: str, tables: dict[str, object], batch_size: int, **settings: object
) -> None:
    pipeline = {
        "name": name,
        "source": config.source,
        "target": config.target,
        "s3_config": config.staging,
        "processing": {"batch_size": batch_size},
        **settings,
    }
    config.write(f"pipelines/{file}.yml", {"pipeline": pipeline, "tables": tables})


def cli(config, env: dict[str, str], *args: str):
    return run("--config-dir", str(config.path), *args, env=env)


def sync(config, env, out: Path, pipeline: str, *tables: str) -> dict:
    selected = [arg for t in tables for arg in ("-t", t)]
    result = cli(config, env, "sync", "pipeline", "-p", pipeline, *selected, "--json-output", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text())


@pytest.fixture
def site(mysql_db, warehouse_db, make_config_dir, tmp_path: Path):
    config = make_config_dir(postgres=warehouse_db)
    home = tmp_path / "dagster_home"
    home.mkdir()
    return config, {"DAGSTER_HOME": str(home)}


@pytest.mark.timeout(600)
def test_one_table_in_two_pipelines_is_one_table_with_one_watermark(site, mysql_db, warehouse_db, tmp_path) -> None:
    config, env = site
    table = unique_name("orders")
    target = f"{table}_dw"
    create_table(mysql_db, table, range(1, 51))
    # Descriptions and page sizes differ (they do not change what is synced); the sync settings are alike.
    write_pipeline(config, OWNER_FILE, "alpha", {table: table_entry(target, description="alpha's")}, batch_size=40)
    write_pipeline(
        config,
        OTHER_FILE,
        "beta",
        {f"{config.source}:{table}": table_entry(target, owners=["beta"])},
        batch_size=15,
        schedule={"cron": "0 * * * *"},
    )
    name = f"{mysql_db.name}.{table}"

    # validate-pipeline says the table is shared and which pipeline owns its assets; both stay valid.
    shown = cli(config, env, "config", "validate-pipeline", OTHER_FILE)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "also listed by pipeline alpha" in shown.stderr and "its assets belong to pipeline alpha" in shown.stderr
    assert "warning(s)" not in shown.stdout + shown.stderr
    strict = cli(config, env, "config", "validate-pipeline", "--strict", OTHER_FILE)  # a note, never an error
    assert strict.returncode == 0, strict.stdout + strict.stderr
    owner = cli(config, env, "config", "validate-pipeline", OWNER_FILE)
    assert owner.returncode == 0 and "also listed by pipeline beta" in owner.stderr, owner.stdout + owner.stderr

    # The Dagster definitions load with one set of assets for the table, owned by alpha.
    project = load_project(config.path)
    assert project.pipelines["beta"].tables[name] is project.pipelines["alpha"].tables[name]
    defs = load_definitions(config.path)
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert [k.path for k in keys if k.path[-1] == target] == [
        ["warehouse", config.target, config.target_schema, target]
    ]
    staged = [k.path for k in keys if k.path[-1] == f"{table}_staged"]
    assert staged == [["staging", "alpha", mysql_db.name, f"{table}_staged"]]
    warehouse_key = dg.AssetKey(["warehouse", config.target, config.target_schema, target])
    # beta's schedule runs the table through alpha's assets.
    with dg.instance_for_test() as instance:
        tick = defs.resolve_schedule_def(schedule_name("beta")).evaluate_tick(
            dg.build_schedule_context(instance=instance)
        )
    (request,) = tick.run_requests or []
    assert warehouse_key in set(request.asset_selection or [])
    dg_cli = shutil.which("dg")
    assert dg_cli, "the dg command is missing: pip install dagster-dg-cli"
    checked = subprocess.run(
        [dg_cli, "check", "defs"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, **env, "SYNC_PLATFORM_CONFIG_DIR": str(config.path)},
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # Sync through alpha, add rows, sync through beta: beta reads only the new rows (the same watermark).
    first = sync(config, env, tmp_path / "a.json", OWNER_FILE)
    assert first["status"] == "success" and first["table_results"][name]["rows_processed"] == 50
    insert(mysql_db, table, range(51, 61), "2025-02-01")
    second = sync(config, env, tmp_path / "b.json", OTHER_FILE, f"{config.source}:{table}")  # as beta writes it
    assert second["status"] == "success", second
    assert second["table_results"][name]["rows_processed"] == 10
    expected = source_rows(mysql_db, table)
    found = target_rows(warehouse_db, config.target_schema, target)
    assert len(found) == len(expected) == 60 and checksum(found) == checksum(expected) and found == expected
    again = sync(config, env, tmp_path / "a2.json", OWNER_FILE)
    assert again["table_results"][name]["rows_processed"] == 0

    # With settings that change the sync it is an error naming both pipelines, both keys, the setting and the fix.
    write_pipeline(config, DIFFERENT_FILE, "gamma", {table: table_entry(target, additional_where="id > 5")}, 40)
    refused = cli(
        config, env, "sync", "pipeline", "-p", DIFFERENT_FILE, "-t", table, "--json-output", str(tmp_path / "c.json")
    )
    said = refused.stdout + refused.stderr
    assert refused.returncode == ExitCode.CONFIG, said
    assert f"{DIFFERENT_FILE}.yml" in said and f"alpha: {name}" in said and f"tables.{table}" in said
    assert "additional_where" in said and "give both entries the same settings" in said
    assert json.loads((tmp_path / "c.json").read_text())["status"] == "failed"
    warned = cli(config, env, "config", "validate-pipeline", DIFFERENT_FILE)
    assert warned.returncode == 0, warned.stdout + warned.stderr
    assert "pipeline alpha" in warned.stderr and "additional_where" in warned.stderr and "refused" in warned.stderr
    assert target_rows(warehouse_db, config.target_schema, target) == expected


@pytest.mark.timeout(600)
@pytest.mark.parametrize("change", ["target_name", "target_schema"])
def test_a_renamed_target_table_receives_every_row(site, mysql_db, warehouse_db, tmp_path, change: str) -> None:
    """Changing ``target_name`` or ``target_schema`` points the table at a new, empty warehouse table
    (a new warehouse asset, no load recorded for it): the next sync loads it from the beginning instead
    of continuing from the source watermark."""
    config, env = site
    table = unique_name("renamed")
    create_table(mysql_db, table, range(1, 41))
    name = f"{mysql_db.name}.{table}"
    write_pipeline(config, OWNER_FILE, "alpha", {table: table_entry(table)}, batch_size=15)
    first = sync(config, env, tmp_path / "first.json", OWNER_FILE)
    assert first["table_results"][name]["rows_processed"] == 40
    insert(mysql_db, table, range(41, 46), "2025-02-01")
    # The loaded batches are cleaned away (as s3clean does after the retention): no staged file brings them back.
    cleaned = cli(config, env, "s3clean", "clean", "-t", table, "-p", OWNER_FILE, "--older-than", "0s", "-y")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr

    schema, target = config.target_schema, table
    if change == "target_name":
        target = f"{table}_renamed"
    else:
        schema = unique_name("moved")
        warehouse_db.execute(f'CREATE SCHEMA "{schema}"')
    try:
        entry = table_entry(target, **({"target_schema": schema} if change == "target_schema" else {}))
        write_pipeline(config, OWNER_FILE, "alpha", {table: entry}, batch_size=15)
        renamed = sync(config, env, tmp_path / "second.json", OWNER_FILE)
        assert renamed["status"] == "success", renamed
        result = renamed["table_results"][name]
        assert result["rows_extracted"] == 45, result  # read again from the beginning, with a warning saying so
        assert any("again from the beginning" in w for w in result["warnings"]), result["warnings"]
        expected = source_rows(mysql_db, table)
        assert len(expected) == 45 and target_rows(warehouse_db, schema, target) == expected
        again = sync(config, env, tmp_path / "again.json", OWNER_FILE)
        assert again["table_results"][name]["rows_processed"] == 0
        assert target_rows(warehouse_db, schema, target) == expected
    finally:
        if change == "target_schema":
            warehouse_db.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_the_shared_note_is_not_shown_for_a_pipeline_of_its_own(site, mysql_db) -> None:
    """A table only one pipeline lists gets no note; the shared table's note names the owner's file."""
    config, env = site
    table = unique_name("alone")
    write_pipeline(config, OWNER_FILE, "alpha", {table: table_entry(table)}, batch_size=40)
    shown = cli(config, env, "config", "validate-pipeline", OWNER_FILE)
    assert shown.returncode == 0 and "also listed by" not in shown.stderr, shown.stdout + shown.stderr
    document = yaml.safe_load((config.path / "pipelines" / f"{OWNER_FILE}.yml").read_text())
    config.write(f"pipelines/{OTHER_FILE}.yml", {**document, "pipeline": {**document["pipeline"], "name": "beta"}})
    shown = cli(config, env, "config", "validate-pipeline", OTHER_FILE)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"{OWNER_FILE}.yml" in shown.stderr and "its assets belong to pipeline alpha" in shown.stderr
