"""The older tool's configuration shapes and Airflow DAG commands, end to end.

The configuration set here is written for these tests (none of the older tool's files): it is shaped
like its production directory — pipeline files named apart from their ``pipeline.name``, every key
its pipelines use, schemaless and ``CONNECTION:table`` keys, the alternative layout, a top-level
``default_table_config``, ``config/default_pipeline.yml`` — over the test MariaDB and PostgreSQL.
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import pytest

from sync_platform.orchestration.factory import load_definitions
from sync_platform_tests.cli.test_config_and_connections_cli import run

PROCESSING = {
    "strategy": "sequential",
    "batch_size": 40,
    "timeout_minutes": 30,
    "max_parallel_tables": 2,
    "query_timeout_seconds": 90,
}
S3 = {"isolation_prefix": "older_dw/", "partition_strategy": "datetime", "compression": "snappy"}
DEFAULTS = {
    "backup_strategy": "sequential",
    "watermark_strategy": "automatic",
    "validation": {"enable_data_quality_checks": True, "max_null_percentage": 3.0},
}
CDC_SETTINGS = {"default_strategy": "hybrid", "enable_watermark_validation": True, "fallback_to_legacy": True}
PER_TABLE_EXTRAS = {
    "description": "written for the compatibility tests",
    "validation": {"enable_schema_validation": True, "max_null_percentage": 2.0},
    "watermark_settings": {"enable_backup": True, "validation_mode": "strict", "recovery_strategy": "manual"},
    "performance": {"memory_limit_mb": 512, "connection_timeout": 30, "query_timeout": 120},
    "monitoring": {"enable_progress_tracking": True, "alert_on_failures": True},
}
STRICT = "SYNC_PLATFORM_STRICT"
TABLES = {"orders": 130, "items": 75, "events": 90, "warehouses": 12, "parcels": 60, "claims": 20}
LIMIT = "100"  # two DAG ticks catch every table up


def production_shaped(config, database: str) -> dict[str, dict[str, str]]:
    """Write the set; returns, per pipeline file name, the tables as the file names them → target table."""
    connections = config.connections_file
    text = connections.read_text()
    # A second source connection to the same database (the older tool scoped tables by connection),
    # and the older tool's high_watermark_key on the staging store.
    import yaml

    document = yaml.safe_load(text)
    sources = document["connections"]["sources"]
    sources["PROD_RO"] = {**sources[config.source], "description": "read-only replica"}
    document["s3_configs"][config.staging]["high_watermark_key"] = "watermark/last_run_timestamp.txt"
    document["backup"] = {"batch_size": 1000, "max_workers": 4, "memory_limit_mb": 2048, "enable_compression": True}
    connections.write_text(yaml.safe_dump(document, sort_keys=False))

    config.write(
        "pipelines/dw_main_pipeline.yml",
        {
            "pipeline": {
                "name": "dw_hybrid_cdc_v1.2",  # differs from the file name, with a dot as in the real files
                "description": "main pipeline",
                "source": config.source,
                "target": config.target,
                "version": "1.2.0",
                "sync_frequency": "*/15 * * * *",
                "processing": PROCESSING,
                "s3": S3,
                "default_table_config": DEFAULTS,
                "cdc_settings": CDC_SETTINGS,
                "dw_settings": {"enable_large_table_optimization": True},
            },
            "tables": {
                f"{database}.orders": {
                    "cdc_strategy": "hybrid",
                    "cdc_timestamp_column": "updated_at",
                    "cdc_id_column": "id",
                    "cdc_ordering": ["updated_at", "id"],
                    "target_name": "orders_dw",
                    "processing": {"batch_size": 30, "enable_parallel_processing": False, "query_timeout_seconds": 60},
                    **PER_TABLE_EXTRAS,
                },
                "items": {  # no schema: the source connection's database
                    "cdc_strategy": "timestamp_only",
                    "cdc_timestamp_column": "updated_at",
                    "timestamp_format": "datetime",
                    "start_from": "30 days ago",
                    "initial_load_filter": "updated_at >= '2020-01-01'",
                    "additional_where": "id > 0",
                },
                "PROD_RO:events": {  # CONNECTION:table
                    "cdc_strategy": "id_only",
                    "cdc_id_column": "id",
                    "connection": "PROD_RO",
                    "processing": {"batch_size": 25, "query_optimization": "use_index"},
                },
            },
            "monitoring": {"enable_progress_tracking": True},
            "default_table_config": {"production_safety": {"max_query_time_seconds": 120}},
        },
    )
    config.write(
        "pipelines/reference_tables_pipeline.yml",
        {
            "pipeline": {
                "name": "reference tables",  # spaces, as the alternative layout's names have
                "source": config.source,
                "target": config.target,
                "processing": {"strategy": "sequential", "batch_size": 50},
                "s3": {"isolation_prefix": "reference/", "partition_strategy": "table", "compression": "snappy"},
                "cdc_settings": {"default_strategy": "full_sync"},
            },
            "tables": {
                f"{database}.warehouses": {
                    "cdc_strategy": "full_sync",
                    "full_sync_mode": "replace",
                    "target_name": "warehouses_ref",
                    "notes": "dimension refresh",
                    "validation": {"create_table_if_missing": True, "decimal_columns": ["amount"]},
                },
            },
            "default_table_config": {
                "backup_strategy": "sequential",
                "performance": {"memory_limit_mb": 512, "read_timeout": 90},
            },
        },
    )
    config.write(
        "pipelines/parcel_poc.yml",
        {  # the alternative layout
            "name": "Parcel POC Pipeline",
            "description": "alternative layout",
            "connections": {"mysql": config.source, "redshift": config.target},
            "defaults": {
                "backup": {"strategy": "sequential", "chunk_size": 45, "max_chunks": 50},
                "cdc": {"strategy": "id_only", "batch_size": 100},
            },
            "tables": {
                f"{database}.parcels": {
                    "cdc_strategy": "id_only",
                    "cdc_id_column": "id",
                    "target_name": "parcels_raw",
                    "backup": {"chunk_size": 20, "max_chunks": 10},
                },
            },
            "metadata": {"version": "1.2.0", "poc_phase": "dedup"},
            "monitoring": {"enable_completion_markers": True, "json_output_required": True},
        },
    )
    config.write(
        "default_pipeline.yml",
        {
            "pipeline": {"name": "settlement_default", "description": "v1.0.0", "source": config.source},
            "tables": {
                f"{database}.claims": {
                    "enabled": True,
                    "strategy": "sequential",
                    "cdc_strategy": "hybrid",
                    "cdc_timestamp_column": "updated_at",
                    "cdc_id_column": "id",
                }
            },
            "processing": {"batch_size": 50, "memory_limit_mb": 6144, "compression_enabled": True},
            "watermarks": {"storage": "s3", "auto_manage": True},
        },
    )
    # default_pipeline.yml names no target: the environment supplies it (as the older tool's overrides did).
    config.write(
        "environments/production.yml",
        {
            "pipeline": {
                "target": config.target,
                "default_table_config": {"validation": {"enable_data_quality_checks": True}},
                "processing": {"max_parallel_tables": 5, "timeout_minutes": 240},
            }
        },
    )
    return {
        "dw_main_pipeline": {f"{database}.orders": "orders_dw", "items": "items", "PROD_RO:events": "events"},
        "reference_tables_pipeline": {f"{database}.warehouses": "warehouses_ref"},
        "parcel_poc": {f"{database}.parcels": "parcels_raw"},
        "default_pipeline": {f"{database}.claims": "claims"},
    }


def create_table(mysql_db, table: str, rows: int) -> None:
    mysql_db.execute(f"DROP TABLE IF EXISTS `{table}`")
    mysql_db.execute(
        f"CREATE TABLE `{table}` (id BIGINT PRIMARY KEY, name VARCHAR(40), amount DECIMAL(10,2), "
        "updated_at DATETIME(6) NOT NULL, KEY (updated_at))"
    )
    mysql_db.executemany(
        f"INSERT INTO `{table}` VALUES (%s, %s, %s, TIMESTAMPADD(SECOND, %s, '2025-01-01'))",
        [(i, f"{table}-{i}", f"{i}.50", i) for i in range(1, rows + 1)],
    )


@pytest.fixture
def site(mysql_db, pg_db, make_config_dir, tmp_path: Path):
    config = make_config_dir()
    targets = [*TABLES, "orders_dw", "warehouses_ref", "parcels_raw", "_sync_load_ledger"]
    for table in targets:  # each test starts from an empty warehouse (the ledger too)
        pg_db.execute(f'DROP TABLE IF EXISTS "public"."{table}"')
    files = production_shaped(config, mysql_db.name)
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {"DAGSTER_HOME": str(home), "SYNC_ENV": "production", "SYNC_PLATFORM_STRICT": ""}
    return config, files, env


def cli(config, env, *args: str, extra: dict[str, str] | None = None):
    return run("--config-dir", str(config.path), *args, env={**env, **(extra or {})})


def test_production_shaped_directory_validates_pipeline_by_pipeline_with_ignored_keys_listed(site) -> None:
    config, files, env = site
    for file_name, tables in files.items():
        result = cli(config, env, "config", "validate-pipeline", "-v", file_name)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{len(tables)} table(s)" in result.stdout
    main = cli(config, env, "config", "validate-pipeline", "-v", "dw_main_pipeline").stdout
    for key in (
        "backup_strategy",
        "watermark_strategy",
        "start_from",
        "initial_load_filter",
        "query_timeout_seconds",
        "enable_parallel_processing",
        "sync_frequency",
        "cdc_settings",
        "high_watermark_key",
        "dw_settings",
        "monitoring",
        "production_safety",
    ):
        assert key in main, f"{key} is not listed: {main}"
    assert "never scheduled (Airflow did)" in main  # each with its reason
    assert "read under pipeline.default_table_config" in main  # the top-level default_table_config acts
    poc = cli(config, env, "config", "validate-pipeline", "-v", "parcel_poc").stdout
    assert "read as pipeline.source" in poc and "read as processing.batch_size" in poc
    # Found by pipeline.name too; the schemaless and CONNECTION:table keys resolve to the database.
    shown = cli(config, env, "config", "show-pipeline", "dw_hybrid_cdc_v1.2")
    assert shown.returncode == 0, shown.stderr
    database = next(iter(files["default_pipeline"])).split(".")[0]
    assert f"{database}.items" in shown.stdout and f"{database}.events" in shown.stdout
    assert "public.orders_dw" in shown.stdout


def test_a_near_miss_is_an_error_other_unknown_keys_warn_and_strict_refuses_them(site) -> None:
    config, _, env = site
    path = config.path / "pipelines" / "reference_tables_pipeline.yml"
    original = path.read_text()
    path.write_text(original.replace("full_sync_mode: replace", "full_sync_mode: replace\n    house_rules: 3"))
    warned = cli(config, env, "config", "validate-pipeline", "reference_tables_pipeline")
    assert warned.returncode == 0, warned.stderr
    assert "warning:" in warned.stderr and "house_rules" in warned.stderr and str(path) in warned.stderr
    status = cli(config, env, "config", "status")
    assert status.returncode == 0 and "house_rules" in status.stderr
    for refused in (
        cli(config, env, "config", "validate-pipeline", "--strict", "reference_tables_pipeline"),
        cli(config, env, "config", "validate-pipeline", "reference_tables_pipeline", extra={STRICT: "1"}),
        cli(config, env, "--strict", "config", "status"),
    ):
        assert refused.returncode == 1 and "house_rules" in refused.stderr

    path.write_text(original.replace("cdc_strategy: full_sync", "cdc_stratgey: full_sync"))
    typo = cli(config, env, "config", "validate-pipeline", "reference_tables_pipeline")
    assert typo.returncode == 1
    assert "unknown key `cdc_stratgey`" in typo.stderr and "did you mean `cdc_strategy`?" in typo.stderr


def test_s3_config_omitted_with_two_stores_is_refused_with_the_list(site) -> None:
    import yaml

    config, _, env = site
    document = yaml.safe_load(config.connections_file.read_text())
    document["s3_configs"]["second"] = {"local_path": str(config.path / "second")}
    config.connections_file.write_text(yaml.safe_dump(document))
    result = cli(config, env, "config", "validate-pipeline", "parcel_poc")
    assert result.returncode == 1
    assert "s3_config is not set" in result.stderr and "second" in result.stderr and config.staging in result.stderr


def test_a_broken_pipeline_elsewhere_is_a_warning_line_and_a_marker_in_dagster(site, monkeypatch, caplog) -> None:
    config, _, env = site
    config.write("pipelines/broken_pipeline.yml", "pipeline: {name: broken, source: nowhere, target: dw}\n")
    result = cli(config, env, "config", "validate-pipeline", "parcel_poc")
    assert result.returncode == 0, result.stderr
    assert "broken_pipeline.yml" in result.stderr  # one line about it, not a failure
    listed = cli(config, env, "config", "list-pipelines")
    assert listed.returncode == 0 and "warning:" in listed.stderr and "broken_pipeline.yml" in listed.stderr

    monkeypatch.setenv("SYNC_ENV", "production")
    monkeypatch.delenv("SYNC_PLATFORM_STRICT", raising=False)
    with caplog.at_level("WARNING", logger="sync_platform.definitions"):
        defs = load_definitions(config.path)
    assert "broken_pipeline.yml" in caplog.text and "nowhere" in caplog.text  # the code location's log
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "config_problems/broken_pipeline" in keys
    assert any(k.startswith("warehouse/") and k.endswith("parcels_raw") for k in keys)
    specs = defs.resolve_all_asset_specs()
    marker = next(spec for spec in specs if spec.key.to_user_string() == "config_problems/broken_pipeline")
    assert "nowhere" in (marker.description or "")
    monkeypatch.setenv("SYNC_PLATFORM_STRICT", "1")
    with pytest.raises(Exception, match="nowhere"):
        load_definitions(config.path)


def test_json_output_is_written_when_the_configuration_or_the_table_is_refused(site, tmp_path: Path) -> None:
    config, _, env = site
    out = tmp_path / "out" / "missing.json"
    missing = cli(config, env, "sync", "pipeline", "-p", "parcel_poc", "-t", "nosuch.table", "--json-output", str(out))
    assert missing.returncode == 1
    document = json.loads(out.read_text())
    assert document["status"] == "failed" and document["exit_code"] == 1
    assert "nosuch.table" in document["error"] and document["table_results"]["nosuch.table"]["status"] == "failed"
    assert document["summary"]["failure_count"] == 1 and document["pipeline"] == "parcel_poc"

    config.write("pipelines/parcel_poc.yml", "name: x\nconnections: {mysql: nowhere, redshift: dw}\ntables: {}\n")
    refused = tmp_path / "refused.json"
    result = cli(config, env, "sync", "pipeline", "-p", "parcel_poc", "-t", "a.b", "--json-output", str(refused))
    assert result.returncode == 1
    document = json.loads(refused.read_text())
    assert document["status"] == "failed" and document["success"] is False and "nowhere" in document["error"]


@pytest.mark.timeout(900)  # a dozen CLI processes, each a Dagster run
def test_dag_commands_sync_every_table_and_the_aggregation_reads_the_json(site, mysql_db, pg_db, tmp_path) -> None:
    """As the 15-minute DAG: one `sync pipeline -p <file name> -t T --json-output F --limit N --max-workers 1`
    per table, repeated until caught up, then the JSON files aggregated the way its last task reads them."""
    config, files, env = site
    for table, rows in TABLES.items():
        create_table(mysql_db, table, rows)
    out = tmp_path / "dag"
    ds = "2026-12-05"
    expected = {name: TABLES[target.split("_")[0]] for tables in files.values() for name, target in tables.items()}
    pending = {(file_name, name) for file_name, tables in files.items() for name in tables}
    for run_no in range(3):  # ticks of the DAG, until every table read less than --limit
        for file_name, name in sorted(pending):
            clean = name.replace(".", "_").replace(":", "_")
            path = out / f"sync_{clean}_{ds}_{run_no}.json"
            # The parcel DAG's form (--max-chunks) for the alternative layout, the 15-minute DAG's for the rest.
            flags = ("--max-chunks", "5") if file_name == "parcel_poc" else ("--max-workers", "1")
            result = cli(
                config, env, "sync", "pipeline", "-p", file_name, "-t", name,
                "--json-output", str(path), "--limit", LIMIT, *flags,
            )  # fmt: skip
            assert result.returncode == 0, f"{file_name} {name}: {result.stdout}{result.stderr}"
            if json.loads(path.read_text())["summary"]["total_rows_processed"] < int(LIMIT):
                pending.discard((file_name, name))
        if not pending:
            break
    assert not pending, pending
    # The aggregation step: status, summary.total_rows_processed, summary.total_files_created, error.
    totals: dict[str, int] = {}
    for name in expected:
        clean = name.replace(".", "_").replace(":", "_")
        for json_file in sorted(glob.glob(str(out / f"sync_{clean}_{ds}*.json"))):
            result = json.loads(Path(json_file).read_text())
            assert result.get("status") == "success", result.get("error", "Unknown error")
            totals[name] = totals.get(name, 0) + result.get("summary", {}).get("total_rows_processed", 0)
            assert result.get("summary", {}).get("total_files_created", 0) >= 0
    full_sync = {n for n in expected if "warehouses" in n}
    for name, rows in expected.items():
        if name not in full_sync:  # every row read (a keyed table's lookback window re-reads a few)
            assert totals[name] >= rows, (name, totals[name], rows)
    with pg_db.connect() as conn, conn.cursor() as cur:
        for tables in files.values():
            for name, target in tables.items():
                cur.execute(f'SELECT count(*), coalesce(sum(id), 0) FROM "public"."{target}"')
                count, id_sum = cur.fetchone()
                rows = expected[name]
                assert (count, id_sum) == (rows, rows * (rows + 1) // 2), (name, target, count)

    # A failure still writes F: a configured table the source does not hold.
    mysql_db.execute("DROP TABLE `events`")
    failed = out / "failed.json"
    result = cli(
        config, env, "sync", "pipeline", "-p", "dw_main_pipeline", "-t", "PROD_RO:events",
        "--json-output", str(failed), "--limit", LIMIT, "--max-workers", "1",
    )  # fmt: skip
    assert result.returncode != 0
    document = json.loads(failed.read_text())
    assert document["status"] == "failed" and document["error"] and document["exit_code"] == result.returncode
    assert os.path.getsize(failed) > 0


@pytest.mark.timeout(600)
def test_json_output_is_written_when_the_run_is_interrupted(site, mysql_db, tmp_path: Path) -> None:
    """SIGINT (Airflow killing the task) while the tables sync: the JSON says failed, interrupted, 130."""
    import signal
    import subprocess
    import sys
    import threading
    import time

    config, _, env = site
    for table, rows in TABLES.items():
        create_table(mysql_db, table, rows)
    mysql_db.execute(  # enough rows that the run is still going when the signal comes
        "INSERT INTO orders SELECT seq + 1000, 'bulk', 1.00, TIMESTAMPADD(SECOND, seq, '2025-02-01') "
        "FROM seq_1_to_60000"
    )
    out = tmp_path / "interrupted.json"
    args = ["--config-dir", str(config.path), "sync", "pipeline", "-p", "dw_main_pipeline", "--json-output", str(out)]
    child = subprocess.Popen(
        [sys.executable, "-m", "sync_platform.cli.main", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The run is under way once it reports a staged batch (progress lines go to stderr off a terminal).
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(child.stderr.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any("staged batch" in line for line in list(lines)):
        assert child.poll() is None, (child.stdout.read(), "".join(lines))
        time.sleep(0.1)
    for _ in range(80):  # Ctrl-C, repeated: one that lands inside the native MySQL reader can go unnoticed
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=3)
            break
        except subprocess.TimeoutExpired:
            continue
    reader.join(timeout=10)
    stderr = "".join(lines)
    # 130, or killed by a later Ctrl-C while the interpreter was already shutting down (after the JSON).
    assert child.returncode in (130, -signal.SIGINT), stderr
    document = json.loads(out.read_text())
    assert document["status"] == "failed" and document["exit_code"] == 130
    assert "interrupt" in document["error"]
