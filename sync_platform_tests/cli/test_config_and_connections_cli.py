"""The ``config`` and ``connections`` commands, run as a user runs them (a real subprocess)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.instance.ref import InstanceRef

from sync_platform_tests.stack import ConfigDir, MySQLDatabase, PostgresDatabase, unique_name

REPO = Path(__file__).resolve().parents[2]
SECRET = "Sup3r-Secret-pw!"


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, input: str | None = None
) -> subprocess.CompletedProcess:
    """The CLI in a subprocess; ``input`` is typed at its prompts."""
    return subprocess.run(
        [sys.executable, "-m", "sync_platform.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=cwd or REPO,
        input=input,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connections_test_all_reports_mysql_postgres_s3_and_a_tunnel_ok(make_config_dir) -> None:
    config = make_config_dir(staging="s3", tunnel="source")
    result = run("--config-dir", str(config.path), "connections", "test", "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "OK source src (mysql" in out and "tunnel" in out
    assert "OK target dw (postgres" in out
    assert "OK staging stage (s3" in out
    assert "3 connection(s) OK" in out


def test_a_stopped_service_is_a_clear_failure_with_exit_2(make_config_dir) -> None:
    config = make_config_dir()
    document = yaml.safe_load(config.connections_file.read_text())
    port = free_port()  # nothing listens here: the service is "stopped"
    document["connections"]["targets"]["dw"]["port"] = port
    document["connections"]["targets"]["dw"]["password"] = SECRET
    config.write("connections.yml", document)
    result = run("--config-dir", str(config.path), "connections", "test", "--all")
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.stderr and "FAIL target dw" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_info_status_and_list_never_print_secrets(make_config_dir) -> None:
    config = make_config_dir(staging="s3")
    document = yaml.safe_load(config.connections_file.read_text())
    document["connections"]["sources"]["src"]["password"] = "${SRC_PASSWORD}"
    config.write("connections.yml", document)
    config.write(
        "pipelines/p.yml",
        {
            "pipeline": {"name": "p", "source": "src", "target": "dw", "s3_config": "stage"},
            "tables": {"a.b": {"cdc_strategy": "full_sync"}},
        },
    )
    env = {"SRC_PASSWORD": SECRET}
    outputs = []
    for args in (
        ("connections", "info", "src"),
        ("connections", "info", "stage"),
        ("config", "status"),
        ("connections", "list"),
        ("config", "show-pipeline", "p", "-v"),
        ("connections", "health"),
    ):
        result = run("--config-dir", str(config.path), *args, env=env)
        outputs.append(result.stdout + result.stderr)
        assert result.returncode in (0, 2), (args, result.stderr)
    text = "\n".join(outputs)
    assert SECRET not in text
    assert "password: ********" in text
    secret_key = document["s3_configs"]["stage"]["secret_access_key"]
    assert secret_key not in text


def test_invalid_config_prints_file_key_and_fix_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "connections.yml").write_text(
        "connections:\n  sources:\n    s: {host: h, database: d, username: u}\n"
        "  targets:\n    t: {type: postgres, host: h, database: d, username: u}\n"
        "s3_configs:\n  l: {local_path: x}\n"
    )
    (tmp_path / "pipelines" / "p.yml").write_text(
        "pipeline: {name: p, source: s, target: t, s3_config: l}\n"
        "tables:\n  a.b: {cdc_stratgey: hybrid, cdc_timestamp_column: updated_at}\n"
    )
    result = run("--config-dir", str(tmp_path), "config", "validate-pipeline", "p")
    assert result.returncode == 1
    assert str(tmp_path / "pipelines" / "p.yml") in result.stderr
    assert 'tables."a.b".cdc_stratgey: unknown key' in result.stderr
    assert "did you mean `cdc_strategy`?" in result.stderr


def test_setup_writes_a_skeleton_that_validates(tmp_path: Path) -> None:
    target = tmp_path / "cfg"
    assert run("--config-dir", str(target), "config", "setup").returncode == 0
    for relative in (
        "connections.yml",
        "pipelines/shop.yml",
        "environments/production.yml",
        "templates/standard_fact_table.yml",
    ):
        assert (target / relative).exists()
    assert run("--config-dir", str(target), "config", "setup").returncode == 0  # idempotent, keeps files
    result = run("--config-dir", str(target), "config", "validate-pipeline", "shop", "-v")
    assert result.returncode == 0, result.stderr
    assert "pipeline shop is valid" in result.stdout
    listed = run("--config-dir", str(target), "config", "list-pipelines")
    assert "shop" in listed.stdout


def test_config_dir_comes_from_the_environment_variable(tmp_path: Path) -> None:
    result = run("config", "list-pipelines", env={"SYNC_PLATFORM_CONFIG_DIR": str(REPO / "config")}, cwd=tmp_path)
    assert result.returncode == 0 and "shop" in result.stdout


def test_version_and_features() -> None:
    version = run("version")
    assert version.returncode == 0 and "sync-platform 0.1.0" in version.stdout and "dagster 1.13.27" in version.stdout
    features = run("features")
    assert features.returncode == 0 and "hybrid" in features.stdout


def test_demo_seeds_the_source_syncs_it_and_a_second_run_is_incremental(
    make_config_dir, warehouse_db, tmp_path: Path, monkeypatch
) -> None:
    pg_db = warehouse_db  # PostgreSQL, or the database behind the Redshift stand-in (`type: redshift`)
    # Each warehouse variant gets a fresh source and Dagster instance: the demo's first run seeds the shop.
    mysql_db = MySQLDatabase(unique_name("spt", "demo"))
    mysql_db.create()
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    try:
        _demo_twice(make_config_dir(target_schema="shop", postgres=warehouse_db, mysql=mysql_db), mysql_db, pg_db)
    finally:
        mysql_db.drop()


def _demo_twice(config: ConfigDir, mysql_db: MySQLDatabase, pg_db: PostgresDatabase) -> None:
    config.write(
        "pipelines/shop.yml",
        {
            "pipeline": {"name": "shop", "source": "src", "target": "dw", "s3_config": "stage"},
            "tables": {
                f"{mysql_db.name}.orders": {
                    "cdc_strategy": "hybrid",
                    "cdc_timestamp_column": "updated_at",
                    "cdc_id_column": "id",
                },
                f"{mysql_db.name}.customers": {"cdc_strategy": "full_sync"},
            },
        },
    )
    first = run("--config-dir", str(config.path), "demo")
    assert first.returncode == 0, first.stderr
    assert "rows in target" in first.stdout and "orders" in first.stdout
    source = mysql_db.query("SELECT COUNT(*) FROM orders")[0][0]  # NULL updated_at included: the demo is exact
    assert mysql_db.query("SELECT COUNT(*) FROM orders WHERE updated_at IS NULL")[0][0] > 0
    assert pg_db.query('SELECT COUNT(*) FROM "shop"."orders"')[0][0] == source
    assert pg_db.query('SELECT COUNT(*) FROM "shop"."customers"')[0][0] == 200
    second = run("--config-dir", str(config.path), "demo")
    assert second.returncode == 0, second.stderr
    assert "added 10 for an incremental sync" in second.stdout
    assert pg_db.query('SELECT COUNT(*) FROM "shop"."orders"')[0][0] == source + 10
    # Both were Dagster runs in the instance the UI shows (the tests' own DAGSTER_HOME).
    assert "dagster dev -m sync_platform.definitions" in second.stdout
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(os.environ["DAGSTER_HOME"]))
    demo_runs = instance.get_runs(filters=dg.RunsFilter(tags={"sync_platform/trigger": "demo"}))
    assert len(demo_runs) >= 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in demo_runs[:2])
    # Each run prints the UI address of its own run.
    assert f"http://127.0.0.1:3000/runs/{demo_runs[0].run_id} (this run)" in second.stdout
    assert f"http://127.0.0.1:3000/runs/{demo_runs[1].run_id} (this run)" in first.stdout


def test_config_setup_in_an_existing_project_adds_nothing_that_breaks_it(make_config_dir) -> None:
    config = make_config_dir()
    before = sorted(p.relative_to(config.path) for p in config.path.rglob("*.yml"))
    result = run("--config-dir", str(config.path), "config", "setup")
    assert result.returncode == 0, result.stderr
    assert "nothing added" in result.stdout
    assert sorted(p.relative_to(config.path) for p in config.path.rglob("*.yml")) == before
    assert run("--config-dir", str(config.path), "config", "list-pipelines").returncode == 0


def test_json_log_lines_stay_valid_json_whatever_the_message_holds() -> None:
    import logging

    from sync_platform.cli.main import JsonLogFormatter

    message = 'connection to server at "127.0.0.1", port 1 failed: Connection refused\n\tIs the server running?'
    record = logging.LogRecord("sync_platform.engine", logging.ERROR, __file__, 1, message, None, None)
    entry = json.loads(JsonLogFormatter().format(record))
    assert entry["message"] == message and entry["level"] == "ERROR" and entry["logger"] == "sync_platform.engine"
