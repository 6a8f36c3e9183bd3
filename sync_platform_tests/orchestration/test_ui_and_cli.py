"""The platform as people use it: a real webserver, the Dagster CLIs and a schedule tick, one instance.

The webserver (loopback only) shows the assets and their lineage through GraphQL and in headless
Chromium; a run launched through it (the UI's Materialize), ``dagster asset materialize``,
``dg launch --assets`` and a schedule tick each read only the rows the one before left, because they
all read and move the same watermarks in the same ``DAGSTER_HOME``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from sync_platform.configuration import load_project, table_spec
from sync_platform.orchestration import watermarks
from sync_platform.orchestration.factory import build_definitions
from sync_platform.orchestration.keys import TableKeys, schedule_name
from sync_platform_tests.orchestration.platform import PIPELINE, add_orders, create_orders, hybrid
from sync_platform_tests.orchestration.webserver import REPO_ROOT, Webserver, dagster_env
from sync_platform_tests.stack import ConfigDir, connections_document

CLI_SECONDS = 180


@pytest.fixture(scope="module")
def site(mysql_db, pg_db, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A configured pipeline over the module's databases, its DAGSTER_HOME and a running webserver."""
    root = tmp_path_factory.mktemp("ui")  # make_config_dir is per test; this directory lives for the module
    config_path = root / "config"
    config_path.mkdir()
    config = ConfigDir(config_path, "src", "dw", "stage", "public", str(root / "staging"))
    config.write(
        "connections.yml",
        connections_document(
            mysql=mysql_db,
            postgres=pg_db,
            staging={"local_path": str(root / "staging")},
            source_name="src",
            target_name="dw",
            staging_name="stage",
            target_schema="public",
            source_tunnel=None,
            target_tunnel=None,
            connection_settings={"retry_delay": 0.1},
        ),
    )
    create_orders(mysql_db, "orders", 20)
    config.write(
        f"pipelines/{PIPELINE}.yml",
        {
            "pipeline": {
                "name": PIPELINE,
                "source": "src",
                "target": "dw",
                "s3_config": "stage",
                "schedule": {"cron": "*/15 * * * *"},
            },
            "tables": {f"{mysql_db.name}.orders": hybrid()},
        },
    )
    env = dagster_env(config.path, root / "dagster_home")
    server = Webserver(env, root / "webserver.log")
    try:
        server.wait_ready()
        yield {"config": config, "env": env, "server": server, "mysql": mysql_db, "home": root / "dagster_home"}
    finally:
        server.stop()


def _instance(site: dict) -> dg.DagsterInstance:
    """The persistent instance the webserver and the CLIs share."""
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(site["home"])))


def _keys(site: dict) -> TableKeys:
    project = load_project(site["config"].path, env={})
    return TableKeys.of(table_spec(project, PIPELINE, f"{site['mysql'].name}.orders"))


def _watermark_id(site: dict) -> int:
    with _instance(site) as instance:
        stored = watermarks.read_extract_watermark(instance, _keys(site).spec)
    assert stored is not None
    return int(stored.watermark.position["id"])


def _rows_read_by_last_run(site: dict) -> int:
    with _instance(site) as instance:
        event = instance.get_latest_materialization_event(_keys(site).staging)
    assert event is not None and event.asset_materialization is not None
    return int(event.asset_materialization.metadata[watermarks.ROWS].value)


def _run_cli(site: dict, command: list[str]) -> None:
    done = subprocess.run(command, cwd=REPO_ROOT, env=site["env"], capture_output=True, text=True, timeout=CLI_SECONDS)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_the_webserver_serves_the_asset_keys_and_their_lineage(site: dict) -> None:
    data = site["server"].graphql("{ assetNodes { assetKey { path } dependencyKeys { path } groupName kinds } }")
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    keys = _keys(site)
    source, staging, warehouse = (k.to_user_string() for k in (keys.source, keys.staging, keys.warehouse))
    assert {source, staging, warehouse} <= set(nodes)
    assert [d["path"] for d in nodes[staging]["dependencyKeys"]] == [list(keys.source.path)]
    assert [d["path"] for d in nodes[warehouse]["dependencyKeys"]] == [list(keys.staging.path)]
    assert nodes[warehouse]["groupName"] == PIPELINE and "postgres" in nodes[warehouse]["kinds"]


def test_ui_cli_and_schedule_runs_move_the_same_watermarks(site: dict) -> None:
    keys, server, mysql = _keys(site), site["server"], site["mysql"]
    both = [list(keys.staging.path), list(keys.warehouse.path)]

    # 1. The UI's Materialize: a run launched through the webserver (in its own process).
    run_id = server.launch(both)
    assert server.wait_for_run(run_id) == "SUCCESS", server.log()
    assert _watermark_id(site) == 20 and _rows_read_by_last_run(site) == 20

    # 2. `dagster asset materialize -m sync_platform.definitions --select …`
    add_orders(mysql, "orders", range(21, 24))
    selection = f"{keys.staging.to_user_string()},{keys.warehouse.to_user_string()}"
    _run_cli(
        site,
        [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "sync_platform.definitions",
            "--select",
            selection,
        ],
    )
    assert _watermark_id(site) == 23 and _rows_read_by_last_run(site) == 3

    # 3. `dg launch --assets …` (the project's [tool.dg] names the same definitions module)
    dg_cli = shutil.which("dg")
    assert dg_cli, "the dg command is missing: pip install dagster-dg-cli==1.13.27"
    add_orders(mysql, "orders", range(24, 26))
    _run_cli(site, [dg_cli, "launch", "--assets", selection])
    assert _watermark_id(site) == 25 and _rows_read_by_last_run(site) == 2

    # 4. A schedule tick: the run request it makes, launched through the webserver as the daemon would.
    add_orders(mysql, "orders", [26])
    defs = build_definitions(load_project(site["config"].path, env={}))
    with _instance(site) as instance:
        context = dg.build_schedule_context(instance=instance)
        (request,) = defs.resolve_schedule_def(schedule_name(PIPELINE)).evaluate_tick(context).run_requests or []
    paths = [list(k.path) for k in request.asset_selection or []]
    run_id = server.launch(paths, tags=dict(request.tags), run_config=request.run_config)
    assert server.wait_for_run(run_id) == "SUCCESS", server.log()
    assert _watermark_id(site) == 26 and _rows_read_by_last_run(site) == 1


def test_the_asset_graph_renders_in_headless_chromium(site: dict, tmp_path: Path) -> None:
    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        pytest.fail("Chromium is needed to see the UI in a real browser: apt-get install -y chromium", pytrace=False)
    output = tmp_path / "asset-graph.png"
    _run_cli(site, [sys.executable, "scripts/ui_screenshot.py", "--url", site["server"].url, "--output", str(output)])
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and output.stat().st_size > 20_000
