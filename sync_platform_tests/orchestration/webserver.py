"""A real ``dagster-webserver`` on loopback for the UI tests, and a small GraphQL client for it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sync_platform_tests.stack import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
WEBSERVER = (sys.executable, "-m", "dagster_webserver")
READY_SECONDS = 90
RUN_SECONDS = 240
_FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def dagster_env(config_dir: Path, dagster_home: Path) -> dict[str, str]:
    """The environment of every Dagster process of a test: its config directory and its instance."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    # No run queue here: runs launched from the UI start at once, without a daemon.
    (dagster_home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )
    env = dict(os.environ)
    env.update(
        SYNC_PLATFORM_CONFIG_DIR=str(config_dir),
        DAGSTER_HOME=str(dagster_home),
        DAGSTER_DISABLE_TELEMETRY="1",
        PYTHONUNBUFFERED="1",
    )
    return env


class Webserver:
    """``dagster-webserver -m sync_platform.definitions`` on a free loopback port; stop() ends it."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [*WEBSERVER, "-h", "127.0.0.1", "-p", str(self.port), "-m", "sync_platform.definitions"],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"dagster-webserver exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=2) as response:
                    if response.status == 200 and self.location_loaded():
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"dagster-webserver not ready after {READY_SECONDS}s:\n{self.log()}")

    def location_loaded(self) -> bool:
        data = self.graphql(
            "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
            "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
        )
        entries = data["workspaceOrError"]["locationEntries"]
        errors = [e["locationOrLoadError"] for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
        if errors:
            raise AssertionError(f"the code location failed to load: {errors[0]['message']}")
        return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)

    def location_name(self) -> str:
        data = self.graphql("{ workspaceOrError { ... on Workspace { locationEntries { name } } } }")
        return data["workspaceOrError"]["locationEntries"][0]["name"]

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise AssertionError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def launch(
        self, assets: list[list[str]], *, tags: dict[str, str] | None = None, run_config: dict | None = None
    ) -> str:
        """Launch a run of the ``sync_tables`` job over ``assets``, as the UI's Materialize button does."""
        params = {
            "selector": {
                "repositoryLocationName": self.location_name(),
                "repositoryName": "__repository__",
                "jobName": "sync_tables",
                "assetSelection": [{"path": path} for path in assets],
            },
            "runConfigData": run_config or {},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
            "mode": "default",
        }
        data = self.graphql(
            "mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename "
            "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } "
            "... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message } } }",
            {"params": params},
        )
        outcome = data["launchRun"]
        assert outcome["__typename"] == "LaunchRunSuccess", f"launch failed: {outcome}"
        return outcome["run"]["runId"]

    def wait_for_run(self, run_id: str) -> str:
        deadline = time.monotonic() + RUN_SECONDS
        status = "?"
        while time.monotonic() < deadline:
            data = self.graphql(
                "query Run($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id}
            )
            status = data["runOrError"]["status"]
            if status in _FINISHED:
                return status
            time.sleep(1)
        raise AssertionError(f"run {run_id} still {status} after {RUN_SECONDS}s")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
