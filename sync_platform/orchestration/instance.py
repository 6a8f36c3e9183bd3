"""The persistent Dagster instance the CLI shares with ``dagster dev`` and the daemon.

Runs started from the command line, from the UI and from schedules must land in one instance, or
they would read and move different watermarks. The instance is the one under ``DAGSTER_HOME``; when
that is unset the CLI uses ``~/.sync_platform/dagster`` (and says so once), creating it with the
project's ``dagster.yaml`` the first time.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import dagster as dg

DAGSTER_HOME = "DAGSTER_HOME"
DEFAULT_DAGSTER_HOME = Path("~/.sync_platform/dagster")
_PROJECT_INSTANCE_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"
# Used when the package is installed without its source tree (no dagster.yaml beside it).
_FALLBACK_INSTANCE_YAML = """\
concurrency:
  runs:
    max_concurrent_runs: 4
  pools:
    default_limit: 2
    granularity: op
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  cancel_timeout_seconds: 300
  max_runtime_seconds: 43200
  poll_interval_seconds: 60
  free_slots_after_run_end_seconds: 300
telemetry:
  enabled: false
"""

log = logging.getLogger(__name__)


def ensure_dagster_home() -> Path:
    """The instance directory: ``$DAGSTER_HOME``, else the default (exported for this process).

    A new directory gets the project's ``dagster.yaml``; an existing one is left as the operator made it.
    """
    configured = os.environ.get(DAGSTER_HOME)
    home = Path(configured).expanduser() if configured else DEFAULT_DAGSTER_HOME.expanduser()
    if not configured:
        log.info("%s is not set: using %s (export it so that `dagster dev` sees the same runs)", DAGSTER_HOME, home)
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        text = _PROJECT_INSTANCE_YAML.read_text() if _PROJECT_INSTANCE_YAML.is_file() else _FALLBACK_INSTANCE_YAML
        settings.write_text(text)
    os.environ[DAGSTER_HOME] = str(home)  # the instance (and any run worker it starts) reads it from here
    return home


def cli_instance() -> dg.DagsterInstance:
    """The persistent instance (``DagsterInstance.get()`` after :func:`ensure_dagster_home`)."""
    ensure_dagster_home()
    return dg.DagsterInstance.get()
