"""A fault in the middle of a run is retried, and the retry resumes: what is staged is not read again."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import dagster as dg

from sync_platform.configuration import load_project
from sync_platform.engine.faults import FAULT_DIR_VARIABLE, PAUSE_VARIABLE
from sync_platform.engine.stage import list_batches
from sync_platform.engine.sync import table_prefix
from sync_platform.orchestration.assets import RetrySchedule
from sync_platform.orchestration.automation import TABLES_JOB
from sync_platform.orchestration.factory import build_definitions
from sync_platform_tests.engine.harness import source_rows, target_rows
from sync_platform_tests.orchestration.platform import Platform, create_orders, hybrid, metadata_of
from sync_platform_tests.stack import environment

COLUMNS = ["id", "name", "amount", "updated_at"]


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"the run never reached {path.name}"
        time.sleep(0.05)


def test_a_warehouse_connection_lost_mid_load_is_retried_without_extracting_again(
    make_config_dir: Any, mysql_db: Any, pg_db: Any, tmp_path: Path
) -> None:
    with dg.instance_for_test() as instance:
        platform = Platform(make_config_dir(), mysql_db, pg_db, instance)
        create_orders(mysql_db, "resumed", 300)
        platform.set_tables({"resumed": hybrid()}, processing={"batch_size": 100})
        keys = platform.keys("resumed")
        project = load_project(platform.config.path, env={})
        job = build_definitions(project, retry_schedule=RetrySchedule(retries=2, first_delay=1.0))
        selection = job.resolve_job_def(TABLES_JOB).get_subset(asset_selection={keys.staging, keys.warehouse})

        faults = tmp_path / "faults"
        faults.mkdir()
        outcome: dict[str, Any] = {}
        # The first COPY pauses with its transaction open; its backend is then killed, as a warehouse
        # restart or a dropped connection would.
        with environment({PAUSE_VARIABLE: "load.copy:1", FAULT_DIR_VARIABLE: str(faults)}):
            runner = threading.Thread(
                target=lambda: outcome.update(
                    result=selection.execute_in_process(instance=instance, raise_on_error=False)
                )
            )
            runner.start()
            _wait_for(faults / "load.copy.reached")
            backends = pg_db.query(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'sync_platform' "
                "AND query ILIKE 'COPY%%'",
                (pg_db.name,),
            )
            assert len(backends) == 1, backends
            pg_db.query("SELECT pg_terminate_backend(%s)", (backends[0][0],))
            (faults / "load.copy.release").write_text("")
            runner.join(timeout=300)
        result = outcome["result"]
        assert result.success, [str(e.step_failure_data.error) for e in result.all_events if e.is_step_failure]
        events = [e.event_type_value for e in result.all_events]
        assert events.count("STEP_UP_FOR_RETRY") == 1 and "STEP_RESTARTED" in events

        # Every row was read once: the retry staged nothing new (one batch of 300 rows in all) and
        # loaded the batch the first attempt had staged; the target equals the source.
        spec = platform.spec("resumed")
        with _registry(project) as registry:
            staged = list_batches(registry.staging(spec.staging), table_prefix(spec))
        assert [m.rows for m in staged] == [300]
        assert metadata_of(result, keys.staging)["rows"] == 0  # the retry read nothing from MySQL
        assert metadata_of(result, keys.warehouse)["rows"] == 300
        wanted = source_rows(mysql_db, "resumed", COLUMNS, "id")
        assert target_rows(pg_db, platform.target("resumed"), COLUMNS, "id") == wanted and len(wanted) == 300


def _registry(project: Any) -> Any:
    from sync_platform.connections.registry import ConnectionRegistry

    return ConnectionRegistry(project.connections, project.config_dir)
