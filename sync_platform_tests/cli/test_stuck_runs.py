"""A run whose process died does not stay STARTED unnoticed: run monitoring is on, ``status`` shows it."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from dagster._core.test_utils import create_run_for_test

from sync_platform.orchestration.launch import HOST_TAG, PID_TAG
from sync_platform.orchestration.run_health import runs_in_progress
from sync_platform_tests.cli.test_config_and_connections_cli import REPO, run


def _instance(home: Path) -> dg.DagsterInstance:
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_the_instance_configuration_enables_run_monitoring(tmp_path: Path) -> None:
    instance = _instance(tmp_path)
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_max_runtime_seconds == 12 * 3600  # the backstop for the default launcher
    assert instance.run_monitoring_start_timeout_seconds > 0 and instance.run_monitoring_cancel_timeout_seconds > 0


def test_status_shows_a_run_whose_process_died(tmp_path: Path, make_config_dir: Any) -> None:
    home = tmp_path / "home"
    home.mkdir()
    instance = _instance(home)
    dead = create_run_for_test(
        instance,
        job_name="sync_tables",
        status=dg.DagsterRunStatus.STARTED,
        tags={HOST_TAG: socket.gethostname(), PID_TAG: str(_dead_pid())},
    )
    alive = create_run_for_test(instance, job_name="sync_tables", status=dg.DagsterRunStatus.STARTED)
    instance.report_engine_event("working", alive)  # a run that logs is not stuck

    health = {r.run_id: r for r in runs_in_progress(instance)}
    assert "process" in (health[dead.run_id].stuck or "") and health[alive.run_id].stuck is None
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    quiet = {r.run_id: r for r in runs_in_progress(instance, now=later)}
    assert quiet[alive.run_id].stuck == "no event for 60 min"

    config = make_config_dir()
    result = run("--config-dir", str(config.path), "status", env={"DAGSTER_HOME": str(home)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Runs in progress" in result.stdout and dead.run_id in result.stdout and alive.run_id in result.stdout
    assert f"run {dead.run_id} looks stuck: its process" in result.stderr, result.stderr
    assert alive.run_id not in result.stderr
