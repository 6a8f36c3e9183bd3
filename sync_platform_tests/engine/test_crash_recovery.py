"""A crash between any two steps, then a rerun: the target equals the source, nothing doubled.

The table here has no key, so loads append: a batch loaded twice or a row extracted twice would
show as a duplicate row. Crashes are injected by making the next step raise (in-process); the
reliability suite repeats them with SIGKILL.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

import sync_platform.engine.load as load_module
import sync_platform.engine.sync as sync_module
from sync_platform.engine.stage import list_batches, unmanifested_prefixes
from sync_platform_tests.engine.harness import Harness


class Crash(RuntimeError):
    pass


@pytest.fixture
def harness(mysql_db, warehouse_db, make_config_dir) -> Harness:
    h = Harness(make_config_dir(postgres=warehouse_db), mysql_db, warehouse_db)
    return h


def make_events(h: Harness, table: str, rows: int) -> list[tuple]:
    h.mysql.execute(f"DROP TABLE IF EXISTS `{table}`")
    h.mysql.execute(f"CREATE TABLE `{table}` (ts DATETIME(6) NOT NULL, n INT, KEY (ts))")
    data = [(dt.datetime(2025, 1, 1) + dt.timedelta(seconds=i // 3), i) for i in range(rows)]
    h.mysql.executemany(f"INSERT INTO `{table}` VALUES (%s, %s)", data)
    h.set_tables(
        {f"{h.mysql.name}.{table}": {"cdc_strategy": "timestamp_only", "cdc_timestamp_column": "ts"}},
        processing={"batch_size": 50},
    )
    return data


def assert_exactly(h: Harness, table: str, data: list[tuple]) -> None:
    target = Counter(h.pg.query(f"SELECT ts, n FROM {h.target(table)}"))
    assert sum(target.values()) == len(data), f"target has {sum(target.values())} rows, source {len(data)}"
    assert target == Counter(data)


def test_crash_after_staging_before_load(harness: Harness) -> None:
    data = make_events(harness, "ev_a", 300)
    harness.extract("ev_a")  # the process dies here: staged, not loaded
    harness.sync("ev_a")
    assert_exactly(harness, "ev_a", data)


def test_crash_mid_extract_after_some_batches(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_events(harness, "ev_b", 600)
    real = sync_module.read_batches
    calls = {"n": 0}

    def failing(url, sql, rows):
        calls["n"] += 1
        if calls["n"] == 7:
            raise Crash("connection lost mid-extract")
        yield from real(url, sql, rows)

    monkeypatch.setattr(sync_module, "read_batches", failing)
    with pytest.raises(Crash):
        harness.sync("ev_b", batch_max_rows=100)
    monkeypatch.setattr(sync_module, "read_batches", real)
    spec = harness.spec("ev_b")
    with harness.registry() as registry:
        staged = list_batches(registry.staging(spec.staging), sync_module.table_prefix(spec))
    assert staged, "batches completed before the crash stay staged"
    harness.sync("ev_b", batch_max_rows=100)
    assert_exactly(harness, "ev_b", data)


def test_crash_after_parts_before_manifest(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_events(harness, "ev_c", 200)
    real_finish = sync_module.BatchStager.finish

    def crash(self, **kwargs):
        raise Crash("killed before the manifest")

    monkeypatch.setattr(sync_module.BatchStager, "finish", crash)
    with pytest.raises(Crash):
        harness.sync("ev_c")
    monkeypatch.setattr(sync_module.BatchStager, "finish", real_finish)
    spec = harness.spec("ev_c")
    with harness.registry() as registry:
        store = registry.staging(spec.staging)
        prefix = sync_module.table_prefix(spec)
        assert list_batches(store, prefix) == []
        assert unmanifested_prefixes(store, prefix), "the orphaned parts are reported for cleaning"
    harness.sync("ev_c")
    assert_exactly(harness, "ev_c", data)


def test_crash_during_load_before_commit(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_events(harness, "ev_d", 250)
    real = load_module.checkpoint

    def crash_before_commit(name: str) -> None:
        if name == "load.before_commit":  # rows and ledger row are in the transaction …
            raise Crash("killed before the load commit")  # … which never commits
        real(name)

    monkeypatch.setattr(load_module, "checkpoint", crash_before_commit)
    with pytest.raises(Crash):
        harness.sync("ev_d")
    assert harness.pg.query('SELECT COUNT(*) FROM public."ev_d"') == [(0,)], "nothing of the batch is visible"
    monkeypatch.setattr(load_module, "checkpoint", real)
    harness.sync("ev_d")
    assert_exactly(harness, "ev_d", data)


def test_crash_after_commit_before_the_watermark_is_stored(harness: Harness) -> None:
    data = make_events(harness, "ev_e", 180)
    harness.sync("ev_e")
    harness.watermarks.pop("ev_e")  # the orchestrator died before recording the new watermark
    again = harness.sync("ev_e")
    assert again.extract.rows == 0, "the resume point comes from the staged manifests"
    assert_exactly(harness, "ev_e", data)
    extra = [(dt.datetime(2025, 2, 1), 9999)]
    harness.mysql.executemany("INSERT INTO ev_e VALUES (%s, %s)", extra)
    harness.watermarks.pop("ev_e")
    harness.sync("ev_e")
    assert_exactly(harness, "ev_e", data + extra)


def test_load_only_rerun_loads_nothing_twice(harness: Harness) -> None:
    data = make_events(harness, "ev_f", 120)
    harness.sync("ev_f")
    again = harness.load("ev_f")  # the older tool's --redshift-only, run again
    assert again.rows == 0 and again.batches == [] and len(again.skipped_batches) >= 1
    assert_exactly(harness, "ev_f", data)
