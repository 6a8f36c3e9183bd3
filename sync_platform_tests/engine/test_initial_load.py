"""The engine's initial load in key ranges: planned, each range loaded once, finished at the plan's ceiling."""

from __future__ import annotations

import pytest

from sync_platform.engine.initial_load import (
    InitialLoadError,
    InitialLoadIncomplete,
    InitialLoadInProgress,
    finish_initial_load,
    load_range,
    plan_initial_load,
    read_plan,
    run_initial_load,
)
from sync_platform.engine.recovery import ledger_watermark
from sync_platform_tests.engine.harness import Harness
from sync_platform_tests.reliability.support import KEYED_COLUMNS, assert_exact, make_append, make_keyed


@pytest.fixture
def harness(mysql_db, warehouse_db, make_config_dir) -> Harness:
    return Harness(make_config_dir(postgres=warehouse_db), mysql_db, warehouse_db)


def test_ranges_load_once_and_finish_at_the_ceiling(harness: Harness) -> None:
    h = harness
    make_keyed(h, "il_engine", 1000)
    spec = h.spec("il_engine")
    with h.registry() as registry:
        plan = plan_initial_load(registry, spec, 4)
        assert len(plan.ranges) == 4 and plan.pending == [0, 1, 2, 3]
        with pytest.raises(InitialLoadInProgress, match="0 of 4 ranges done"):
            h.sync("il_engine")  # a plain first sync would read the whole table beside the ranges
        first = load_range(registry, spec, plan.plan_id, 1)
        assert first.rows_extracted == 250 and first.status == "loaded"
        with pytest.raises(InitialLoadIncomplete, match="3 range"):
            finish_initial_load(registry, spec, plan.plan_id)
        again = load_range(registry, spec, plan.plan_id, 1)
        assert again.status == "already_done" and again.rows_extracted == 0
        done, results = run_initial_load(registry, spec)  # resumes the plan: range 2 is skipped
        assert done.plan_id == plan.plan_id and done.finished
        assert [r.rows_extracted for r in results] == [250, 0, 250, 250]
        assert ledger_watermark(registry, spec) == done.final
        assert done.final.position == {
            "updated_at": h.mysql.query("SELECT MAX(updated_at) FROM il_engine")[0][0],
            "id": 1000,
        }
        with pytest.raises(InitialLoadError, match="finished"):
            plan_initial_load(registry, spec)
        assert read_plan(registry, spec).finished
    assert_exact(h, "il_engine", KEYED_COLUMNS, key="id")


def test_table_without_key_is_refused(harness: Harness) -> None:
    h = harness
    make_append(h, "il_nokey", 50)
    with h.registry() as registry, pytest.raises(InitialLoadError, match="primary key"):
        plan_initial_load(registry, h.spec("il_nokey"), 4)
