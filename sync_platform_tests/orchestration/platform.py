"""Drives the Dagster definitions against the real test stack, as the UI or a schedule would."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dagster as dg

from sync_platform.configuration import load_project, table_spec
from sync_platform.configuration.project import TableSpec
from sync_platform.orchestration.automation import TABLES_JOB
from sync_platform.orchestration.factory import build_definitions
from sync_platform.orchestration.keys import TableKeys
from sync_platform_tests.stack import ConfigDir, MySQLDatabase, PostgresDatabase

PIPELINE = "p"


def create_orders(mysql: MySQLDatabase, table: str, rows: int, *, keyed: bool = True) -> None:
    """``table`` with ``rows`` rows, one second apart from 2025-01-01 (``keyed=False``: no primary key)."""
    mysql.execute(f"DROP TABLE IF EXISTS `{table}`")
    key = "PRIMARY KEY" if keyed else ""
    mysql.execute(
        f"CREATE TABLE `{table}` (id BIGINT NOT NULL {key}, name VARCHAR(64), amount DECIMAL(12,2), "
        "updated_at DATETIME(6) NULL, KEY (updated_at), KEY (id))"
    )
    add_orders(mysql, table, range(1, rows + 1))


def add_orders(mysql: MySQLDatabase, table: str, ids: Iterable[int]) -> None:
    start = dt.datetime(2025, 1, 1)
    mysql.executemany(
        f"INSERT INTO `{table}` VALUES (%s, %s, %s, %s)",
        [(i, f"name-{i}", f"{i}.25", start + dt.timedelta(seconds=i)) for i in ids],
    )


def hybrid(**extra: Any) -> dict[str, Any]:
    return {
        "cdc_strategy": "hybrid",
        "cdc_timestamp_column": "updated_at",
        "cdc_id_column": "id",
        "lookback": 0,
        **extra,
    }


@dataclass
class Platform:
    """A pipeline ``p`` over the module's databases, its definitions and a Dagster instance."""

    config: ConfigDir
    mysql: MySQLDatabase
    pg: PostgresDatabase
    instance: dg.DagsterInstance

    def set_tables(self, tables: dict[str, dict[str, Any]], **pipeline: Any) -> None:
        settings = {
            "name": PIPELINE,
            "source": self.config.source,
            "target": self.config.target,
            "s3_config": self.config.staging,
            **pipeline,
        }
        qualified = {f"{self.mysql.name}.{name}": cfg for name, cfg in tables.items()}
        self.config.write(f"pipelines/{PIPELINE}.yml", {"pipeline": settings, "tables": qualified})

    def project(self):
        return load_project(self.config.path, env={})

    def definitions(self) -> dg.Definitions:
        return build_definitions(self.project(), retry_schedule=None)

    def spec(self, table: str) -> TableSpec:
        return table_spec(self.project(), PIPELINE, f"{self.mysql.name}.{table}")

    def keys(self, table: str) -> TableKeys:
        return TableKeys.of(self.spec(table))

    def materialize(
        self, *tables: str, staging: bool = True, warehouse: bool = True, checks: bool = True
    ) -> dg.ExecuteInProcessResult:
        """Materialize the tables' assets (and their checks) in one run, as the UI would."""
        selection: list[dg.AssetKey] = []
        for table in tables:
            keys = self.keys(table)
            selection += [keys.staging] if staging else []
            selection += [keys.warehouse] if warehouse else []
        return self.execute(set(selection), None if checks else set())

    def execute(
        self,
        assets: set[dg.AssetKey],
        checks: set[dg.AssetCheckKey] | None = None,
        *,
        run_config: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        expect_success: bool = True,
    ) -> dg.ExecuteInProcessResult:
        """One in-process run of the ``sync_tables`` job over a selection; fails the test unless it ends as expected."""
        job = self.definitions().resolve_job_def(TABLES_JOB)
        subset = job.get_subset(asset_selection=assets, asset_check_selection=checks)
        result = subset.execute_in_process(
            instance=self.instance, run_config=run_config, tags=tags, raise_on_error=False
        )
        if expect_success:
            assert result.success, _failure(result)
        else:
            assert not result.success, "the run succeeded although it was expected to fail"
        return result

    def run_checks(self, table: str, *, expect_success: bool = True) -> dict[str, dg.AssetCheckEvaluation]:
        """Run only the table's reconciliation checks; ``{check name: evaluation}``.

        The checks are blocking: one that fails with ERROR severity fails the run (``expect_success=False``).
        """
        keys = self.keys(table)
        names = ("row_count_matches_source", "primary_key_unique")
        checks = {dg.AssetCheckKey(keys.warehouse, name) for name in names}
        result = self.execute(set(), checks, expect_success=expect_success)
        return {e.check_name: e for e in result.get_asset_check_evaluations()}

    def target(self, table: str) -> str:
        return f'"{self.config.target_schema}"."{table.lower()}"'


def metadata_of(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, Any]:
    """The metadata values of the run's materialization of ``key``."""
    events = [m for m in result.get_asset_materialization_events() if m.asset_key == key]
    assert events, f"{key.to_user_string()} was not materialized"
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


def _failure(result: dg.ExecuteInProcessResult) -> str:
    lines = []
    for event in result.all_events:
        if event.is_step_failure:
            lines.append(str(event.step_failure_data.error))
    return "\n".join(lines) or "run failed"
