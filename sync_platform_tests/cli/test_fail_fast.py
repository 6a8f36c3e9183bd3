"""A sync whose endpoints are down ends within seconds with exit 2, naming the endpoint and the fix.

Each test closes one endpoint for real (a loopback port nothing listens on) and runs the CLI as a
user would; the pre-flight check must stop the run before it reads anything, with no retries and
no traceback. The last test proves that transient faults in the middle of a run are retried on
exactly the back-off the README and ``--help`` state.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from sync_platform.configuration import load_project, table_spec
from sync_platform.orchestration.assets import DEFAULT_RETRY_SCHEDULE, RetrySchedule
from sync_platform.orchestration.automation import TABLES_JOB
from sync_platform.orchestration.factory import build_definitions
from sync_platform.orchestration.keys import TableKeys
from sync_platform_tests.cli.test_config_and_connections_cli import REPO, free_port, run
from sync_platform_tests.engine.harness import PIPELINE, Harness
from sync_platform_tests.engine.test_sync import create_orders, hybrid

# The run itself (the pre-flight check) must end within seconds: a retry would wait 30 s first. The whole
# command (Python start, a new instance's migrations) gets 30 s on an idle machine; on the shared test
# machine it can be slower, so the wall clock bound for the process is looser.
RUN_SECONDS = 15.0
COMMAND_SECONDS = 90.0
_RUN_LINE = re.compile(r"^Run [0-9a-f-]+ \((?P<seconds>[0-9.]+) s\)$", re.MULTILINE)


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    return home


def _project(make_config_dir: Any, mysql_db: Any, pg_db: Any, **config: Any) -> Harness:
    h = Harness(make_config_dir(**config), mysql_db, pg_db)
    create_orders(h, "orders", 50)
    h.set_tables({f"{mysql_db.name}.orders": hybrid(lookback=0)})
    return h


def _break(h: Harness, change: Any) -> None:
    """Edit connections.yml in place (``change`` receives the parsed document)."""
    path = h.config.path / "connections.yml"
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document))


def _sync(h: Harness, home: Path, *extra: str) -> tuple[Any, float]:
    started = time.monotonic()
    result = run(
        "--config-dir",
        str(h.config.path),
        "sync",
        "-t",
        f"{h.mysql.name}.orders",
        *extra,
        env={"DAGSTER_HOME": str(home)},
    )
    return result, time.monotonic() - started


def _assert_failed_fast(result: Any, seconds: float, *named: str) -> None:
    text = result.stdout + result.stderr
    assert result.returncode == 2, text
    run_line = _RUN_LINE.search(result.stdout)
    assert run_line is not None, text
    assert float(run_line["seconds"]) < RUN_SECONDS, text
    assert seconds < COMMAND_SECONDS, f"took {seconds:.1f} s\n{text}"
    assert "Traceback" not in text, text
    for fragment in named:
        assert fragment in result.stderr, text
    assert "read nothing" in result.stderr and "connections health" in result.stderr, text  # the fix
    assert "transient: retry" not in result.stderr, text  # an endpoint down at the start is not retried


def test_warehouse_port_closed_exits_2_at_once_naming_the_warehouse(
    make_config_dir: Any, mysql_db: Any, pg_db: Any, dagster_home: Path
) -> None:
    h = _project(make_config_dir, mysql_db, pg_db)
    port = free_port()
    _break(h, lambda d: d["connections"]["targets"]["dw"].update(port=port))
    output = dagster_home.parent / "result.json"
    result, seconds = _sync(h, dagster_home, "--json-output", str(output))
    _assert_failed_fast(result, seconds, f"127.0.0.1:{port}", "target `dw`")
    failed = json.loads(output.read_text())["table_results"][f"{h.mysql.name}.orders"]
    assert failed["error_kind"] == "connection" and failed["exit_code"] == 2 and failed["transient"] is False
    # Nothing was read: no batch was staged.
    assert not list(Path(h.config.staging_location).rglob("_manifest.json"))


def test_source_port_closed_exits_2_at_once_naming_the_source(
    make_config_dir: Any, mysql_db: Any, pg_db: Any, dagster_home: Path
) -> None:
    h = _project(make_config_dir, mysql_db, pg_db)
    port = free_port()
    _break(h, lambda d: d["connections"]["sources"]["src"].update(port=port))
    result, seconds = _sync(h, dagster_home)
    _assert_failed_fast(result, seconds, f"127.0.0.1:{port}", "source `src`")
    # The failure line names the table once.
    line = next(x for x in result.stderr.splitlines() if x.startswith("FAIL"))
    assert line.count(f"{h.mysql.name}.orders") == 1, line


def test_s3_endpoint_closed_exits_2_at_once_naming_the_store(
    make_config_dir: Any, mysql_db: Any, pg_db: Any, dagster_home: Path
) -> None:
    h = _project(make_config_dir, mysql_db, pg_db, staging="s3")
    port = free_port()
    _break(h, lambda d: d["s3_configs"]["stage"].update(endpoint_url=f"http://127.0.0.1:{port}"))
    result, seconds = _sync(h, dagster_home)
    _assert_failed_fast(result, seconds, f"http://127.0.0.1:{port}", "staging `stage`")


def test_bastion_down_exits_2_at_once_naming_the_bastion(
    make_config_dir: Any, mysql_db: Any, pg_db: Any, dagster_home: Path
) -> None:
    h = _project(make_config_dir, mysql_db, pg_db, tunnel="source")
    port = free_port()  # the bastion's address answers nothing
    _break(h, lambda d: d["connections"]["sources"]["src"]["ssh_tunnel"].update(port=port))
    result, seconds = _sync(h, dagster_home)
    _assert_failed_fast(result, seconds, f"bastion 127.0.0.1:{port}", f"{h.mysql.host}:{h.mysql.port} via SSH bastion")


def test_the_documented_back_off_is_the_one_used(make_config_dir: Any, mysql_db: Any, pg_db: Any) -> None:
    """README and --help say 30/60/120 s; a table whose lock another session holds is retried on the
    schedule's delays (scaled down here to 1/2 s), measured between the retry and restart events."""
    assert DEFAULT_RETRY_SCHEDULE.describe() == "30/60/120 s"
    readme = (REPO / "README.md").read_text()
    assert "30/60/120 s" in readme
    assert "30/60/120" in run("sync", "--help").stdout

    h = _project(make_config_dir, mysql_db, pg_db)
    spec = table_spec(load_project(h.config.path, env={}), PIPELINE, f"{h.mysql.name}.orders")
    keys = TableKeys.of(spec)
    holder = mysql_db.connect()
    try:
        with holder.cursor() as cursor:  # another run of the table holds its lock for the whole test
            from sync_platform.engine.sync import _lock_name

            cursor.execute("SELECT GET_LOCK(%s, 0)", (_lock_name(spec),))
        schedule = RetrySchedule(retries=2, first_delay=1.0)
        job = build_definitions(load_project(h.config.path, env={}), retry_schedule=schedule).resolve_job_def(
            TABLES_JOB
        )
        with dg.instance_for_test() as instance:
            result = job.get_subset(asset_selection={keys.staging, keys.warehouse}).execute_in_process(
                instance=instance, raise_on_error=False
            )
            records = instance.get_records_for_run(result.run_id, limit=10_000).records
    finally:
        holder.close()
    assert not result.success
    times: dict[str, list[float]] = {}
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is not None:
            times.setdefault(event.event_type_value, []).append(record.event_log_entry.timestamp)
    waits = [start - up for up, start in zip(times["STEP_UP_FOR_RETRY"], times["STEP_RESTARTED"], strict=True)]
    assert len(waits) == 2, times
    for wait, expected in zip(waits, (1.0, 2.0), strict=True):
        assert expected <= wait < expected + 1.5, waits
    failure = next(e for e in result.all_events if e.is_step_failure)
    metadata = {k: v.value for k, v in failure.step_failure_data.user_failure_data.metadata.items()}
    assert metadata == {"error_kind": "busy", "exit_code": 2, "transient": True}
    assert "another sync of this table is running" in failure.step_failure_data.user_failure_data.description
