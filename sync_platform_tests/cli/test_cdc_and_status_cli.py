"""``cdc``, ``column-mappings``, ``status`` and ``info``, run as a user runs them (a real subprocess)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from sync_platform.cli.strategy_guide import GUIDES
from sync_platform.configuration import load_project, table_spec
from sync_platform.configuration.models import CDC_STRATEGIES
from sync_platform.engine.watermark import Watermark
from sync_platform.orchestration.instance import cli_instance
from sync_platform.orchestration.watermarks import record_manual_watermark
from sync_platform_tests.cli.test_config_and_connections_cli import SECRET, free_port, run
from sync_platform_tests.engine.harness import Harness
from sync_platform_tests.engine.test_sync import create_orders, hybrid


@pytest.fixture
def harness(mysql_db, pg_db, make_config_dir) -> Harness:
    return Harness(make_config_dir(), mysql_db, pg_db)


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh instance directory, for this process and the CLI subprocesses."""
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def cli(h: Harness, *args: str) -> tuple[int, str, str]:
    result = run("--config-dir", str(h.config.path), *args)
    return result.returncode, result.stdout, result.stderr


def section(stdout: str, title: str) -> list[str]:
    """The indented SQL lines printed under a heading of the explanation."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(title))
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        body.append(line.strip())
    return body


# --------------------------------------------------------------------------- cdc test-strategy


def test_test_strategy_prints_the_first_run_sql_a_real_sync_reads(harness: Harness) -> None:
    h = harness
    create_orders(h, "orders", 50)
    h.set_tables({f"{h.mysql.name}.orders": {"cdc_strategy": "full_sync"}})  # the configured strategy differs
    table = f"{h.mysql.name}.orders"
    code, out, err = cli(
        h, "cdc", "test-strategy", "-t", table, "-s", "hybrid", "--timestamp-column", "updated_at",
        "--id-column", "id", "--batch-size", "1000", "-p", "p",
    )  # fmt: skip
    assert code == 0, err
    assert "strategy:      hybrid" in out and "paged on:      (updated_at, id)" in out
    (first_page,) = section(out, "first run SQL (MySQL):")
    printed = [row[0] for row in h.mysql.query(first_page)]
    assert "OK first run, first page: 50 row(s) now" in out  # the page queries ran (read only)

    h.set_tables({table: hybrid()}, processing={"batch_size": 1000})
    assert h.sync("orders").extract.rows == 50
    assert printed == [r[0] for r in h.pg.query(f"SELECT id FROM {h.target('orders')} ORDER BY id")]


def test_test_strategy_pages_on_cursor_and_key_and_changes_nothing(harness: Harness) -> None:
    h = harness
    create_orders(h, "keyset", 30)
    h.set_tables({f"{h.mysql.name}.keyset": hybrid()})
    code, out, err = cli(
        h, "cdc", "test-strategy", "-t", f"{h.mysql.name}.keyset", "-s", "hybrid", "--batch-size", "10"
    )
    assert code == 0, err
    (following,) = section(out, "incremental, following pages:")
    assert "`updated_at` >= '2025-01-01 00:00:30.000000' AND (`updated_at` > '2025-01-01 00:00:30.000000'" in following
    assert "OR (`id` > 30))" in following and following.endswith("ORDER BY `updated_at`, `id` LIMIT 10")
    assert not Path(h.config.staging_location).exists()  # nothing staged
    assert h.pg.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'keyset'") == []


def test_an_unknown_strategy_exits_1_naming_it(harness: Harness) -> None:
    h = harness
    create_orders(h, "named", 2)
    h.set_tables({f"{h.mysql.name}.named": hybrid()})
    code, _, err = cli(h, "cdc", "test-strategy", "-t", f"{h.mysql.name}.named", "-s", "timestmap_only")
    assert code == 1
    assert "unknown strategy 'timestmap_only'" in err and "timestamp_only" in err


def test_a_missing_column_exits_1_naming_it(harness: Harness) -> None:
    h = harness
    create_orders(h, "named2", 2)
    h.set_tables({f"{h.mysql.name}.named2": hybrid()})
    table = f"{h.mysql.name}.named2"
    code, _, err = cli(h, "cdc", "test-strategy", "-t", table, "-s", "hybrid", "--timestamp-column", "changed_on")
    assert code == 1
    assert "cdc_timestamp_column `changed_on` is not a column" in err
    code, _, err = cli(h, "cdc", "validate", "-t", table, "--id-column", "order_no")
    assert code == 1 and "cdc_id_column `order_no` is not a column" in err


def test_a_custom_query_that_is_not_a_select_is_refused(harness: Harness) -> None:
    h = harness
    create_orders(h, "victim", 3)
    h.set_tables({f"{h.mysql.name}.victim": hybrid()})
    code, out, err = cli(
        h, "cdc", "test-strategy", "-t", f"{h.mysql.name}.victim", "-s", "custom_sql",
        "--custom-query", "DELETE FROM {table_name}",
    )  # fmt: skip
    assert code == 1
    assert "custom_query must be a SELECT statement" in err and "SELECT" not in out
    assert h.mysql.query("SELECT COUNT(*) FROM victim") == [(3,)]
    code, _, err = cli(h, "cdc", "test-strategy", "-t", f"{h.mysql.name}.victim", "-s", "custom_sql")
    assert code == 1 and "custom_sql needs `custom_query`" in err


def test_a_custom_query_prints_its_rendered_placeholders(harness: Harness) -> None:
    h = harness
    create_orders(h, "custom", 20)
    h.set_tables({f"{h.mysql.name}.custom": hybrid()})
    query = (
        "SELECT id, name, amount, updated_at, note FROM {table_name} WHERE (updated_at, id) > "
        "({last_timestamp}, {last_id}) AND updated_at <= {ceiling_timestamp} ORDER BY updated_at, id LIMIT {limit}"
    )
    code, out, err = cli(
        h, "cdc", "test-strategy", "-t", f"{h.mysql.name}.custom", "-s", "custom_sql", "--custom-query", query,
        "--batch-size", "5",
    )  # fmt: skip
    assert code == 0, err
    (first,) = section(out, "first run SQL (MySQL):")
    assert f"FROM `{h.mysql.name}`.`custom` WHERE (updated_at, id) > ('1000-01-01 00:00:00', -1)" in first
    assert "LIMIT 5) AS custom_query" in first
    assert [r[0] for r in h.mysql.query(first)] == [1, 2, 3, 4, 5]


# --------------------------------------------------------------------------- cdc validate


def test_validate_warns_about_an_unindexed_cursor_and_passes(harness: Harness) -> None:
    h = harness
    h.mysql.execute("DROP TABLE IF EXISTS plain")
    h.mysql.execute("CREATE TABLE plain (id INT PRIMARY KEY, changed DATETIME NOT NULL)")
    h.set_tables({f"{h.mysql.name}.plain": hybrid(cdc_timestamp_column="changed")})
    code, out, err = cli(h, "cdc", "validate", "-t", f"{h.mysql.name}.plain")
    assert code == 0, err
    assert "WARNING" in out and "`changed` is not the first column of any index" in out
    assert "ADD INDEX (`changed`, `id`)" in out
    assert "valid (1 warning(s))" in out


def test_validate_pipeline_reports_each_table_and_exits_1_when_one_is_broken(harness: Harness, tmp_path) -> None:
    h = harness
    create_orders(h, "good", 3)
    h.mysql.execute("DROP TABLE IF EXISTS textcursor")
    h.mysql.execute("CREATE TABLE textcursor (id INT PRIMARY KEY, stamp VARCHAR(20), KEY (stamp))")
    h.set_tables(
        {
            f"{h.mysql.name}.good": hybrid(),
            f"{h.mysql.name}.textcursor": hybrid(cdc_timestamp_column="stamp"),
        }
    )
    report = tmp_path / "report.json"
    code, out, err = cli(h, "cdc", "validate-pipeline", "-p", "p", "-o", str(report))
    assert code == 1
    assert "`stamp` is varchar(20), which does not order like time" in err
    assert "1 of 2 table(s) valid" in out
    tables = {t["table"]: t["ok"] for t in json.loads(report.read_text())["tables"]}
    assert tables == {f"src:{h.mysql.name}.good": True, f"src:{h.mysql.name}.textcursor": False}


# --------------------------------------------------------------------------- column-mappings


def test_column_mappings_show_and_list_the_renames_and_clear_stores_nothing(harness: Harness) -> None:
    h = harness
    h.mysql.execute("DROP TABLE IF EXISTS odd")
    h.mysql.execute("CREATE TABLE odd (id INT PRIMARY KEY, `190_time` DATETIME, `Mixed` VARCHAR(10), oid BIGINT)")
    h.set_tables({f"{h.mysql.name}.odd": {"cdc_strategy": "full_sync"}})
    code, out, err = cli(h, "column-mappings", "show", "-t", f"{h.mysql.name}.odd")
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert rows["190_time"][:4] == ["190_time", "datetime", "col_190_time", "TIMESTAMP"]
    assert rows["Mixed"][:4] == ["Mixed", "varchar(10)", "mixed", "VARCHAR(10)"]
    assert rows["oid"][2] == "col_oid" and rows["id"][2:4] == ["id", "INTEGER"]

    code, out, err = cli(h, "column-mappings", "list", "-p", "p")
    assert code == 0, err
    assert "190_time" in out and "col_190_time" in out and "col_oid" in out and "  id  " not in out

    for args in (("clear", "-t", f"{h.mysql.name}.odd", "--force"), ("clear-all", "--force")):
        code, out, _ = cli(h, "column-mappings", *args)
        assert code == 0 and "nothing is stored" in out.lower()


# --------------------------------------------------------------------------- status and info


def test_status_shows_configuration_connections_and_the_instances_watermarks(harness: Harness, dagster_home) -> None:
    h = harness
    create_orders(h, "tracked", 2)
    h.set_tables({f"{h.mysql.name}.tracked": hybrid()})
    spec = table_spec(load_project(h.config.path, env={}), "p", f"{h.mysql.name}.tracked")
    position = Watermark({"updated_at": dt.datetime(2025, 3, 4, 5, 6, 7), "id": 42})
    record_manual_watermark(cli_instance(), spec, position)

    code, out, err = cli(h, "status")
    assert code == 0, err
    assert "OK configuration" in out and "1 pipeline(s), 1 table(s)" in out
    assert "OK source src (mysql" in out and "OK target dw (postgres" in out and "OK staging stage" in out
    line = next(line for line in out.splitlines() if line.startswith(f"src:{h.mysql.name}.tracked"))
    assert "updated_at=2025-03-04 05:06:07" in line and "id=42" in line and "(set by hand)" in line
    assert line.endswith("(none recorded)")  # nothing loaded yet
    assert str(dagster_home) in out


def test_status_reports_a_stopped_service_with_exit_2_and_never_the_password(harness: Harness, dagster_home) -> None:
    h = harness
    h.set_tables({f"{h.mysql.name}.anything": hybrid()})
    document = yaml.safe_load(h.config.connections_file.read_text())
    port = free_port()  # nothing listens here: the warehouse is "stopped"
    document["connections"]["targets"]["dw"].update({"port": port, "password": SECRET})
    h.config.write("connections.yml", document)
    code, out, err = cli(h, "status")
    assert code == 2
    assert "FAIL target dw" in err and f"127.0.0.1:{port}" in err
    assert "OK source src" in out
    assert "1 of 3 connection(s) unreachable" in err
    assert SECRET not in out + err


def test_status_with_invalid_configuration_exits_1(tmp_path: Path, dagster_home) -> None:
    (tmp_path / "connections.yml").write_text("connections: {sources: {s: {host: h, databse: d}}}\n")
    result = run("--config-dir", str(tmp_path), "status")
    assert result.returncode == 1
    assert "problem" in result.stdout + result.stderr and "databse" in result.stderr


def test_info_shows_where_things_are_and_every_strategy(harness: Harness, dagster_home) -> None:
    h = harness
    h.set_tables({f"{h.mysql.name}.a": hybrid(), f"{h.mysql.name}.b": {"cdc_strategy": "full_sync"}})
    code, out, err = cli(h, "info", "--strategy")
    assert code == 0, err
    assert "sync-platform " in out and f"config dir:   {h.config.path}" in out
    assert f"DAGSTER_HOME: {dagster_home}" in out
    assert "pipelines:    1 (p)" in out and "tables:       2" in out
    for name in CDC_STRATEGIES:
        assert f"\n{name}\n  reads:" in out
    assert tuple(g.name for g in GUIDES) == CDC_STRATEGIES  # every strategy is explained, in order
    code, out, _ = cli(h, "cdc", "strategies")
    assert code == 0 and all(f"{name}\n" in out for name in CDC_STRATEGIES)
