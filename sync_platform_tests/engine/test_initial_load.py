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


class _Crash(Exception):
    pass


def test_range_that_died_midway_continues_after_its_last_staged_batch(harness: Harness) -> None:
    """A range staged in several batches dies after its second batch is manifested (not loaded): the next
    attempt loads the staged batches and reads only the rest of the range — no row lost, none read twice."""
    h = harness
    make_keyed(h, "il_midway", 400, page_rows=50)
    spec = h.spec("il_midway")
    staged: list[str] = []

    def crash_after_two(message: str) -> None:
        if "staged batch" in message:
            staged.append(message)
            if len(staged) == 2:
                raise _Crash(message)

    with h.registry() as registry:
        plan = plan_initial_load(registry, spec, 2)
        with pytest.raises(_Crash):
            load_range(registry, spec, plan.plan_id, 0, batch_max_rows=50, progress=crash_after_two)
        assert read_plan(registry, spec).pending == [0, 1]
        again = load_range(registry, spec, plan.plan_id, 0, batch_max_rows=50)
        assert again.status == "resumed" and again.resumed_after == (100,)
        # The first attempt loaded its first batch before it died; this one loads the second and the rest.
        assert again.rows_extracted == 100 and again.rows == 200 and again.rows_loaded == 150
        load_range(registry, spec, plan.plan_id, 1, batch_max_rows=50)
        finish_initial_load(registry, spec, plan.plan_id)
    assert_exact(h, "il_midway", KEYED_COLUMNS, key="id")
    ledger = h.pg.query(
        f'SELECT COUNT(*), COUNT(DISTINCT batch_id), SUM(row_count) FROM "{h.config.target_schema}"._sync_load_ledger '
        "WHERE table_name = %s AND row_count > 0",
        (spec.identity,),
    )
    assert ledger == [(8, 8, 400)], f"8 batches of 50 rows, each loaded once: {ledger}"
