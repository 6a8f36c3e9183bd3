"""``sync-platform reconcile`` as an operator runs it: its own process, exit codes, JSON, a crash mid-repair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sync_platform.engine.faults import CHECKPOINTS
from sync_platform_tests.engine.harness import Harness, assert_same
from sync_platform_tests.engine.test_reconcile import COLUMNS, break_table, int_table
from sync_platform_tests.reliability.support import run_cli


@pytest.fixture
def harness(mysql_db, pg_db, make_config_dir, warehouse) -> Harness:
    return Harness(make_config_dir(), mysql_db, pg_db)


def test_exit_4_while_differences_remain_then_0_after_repair_with_the_counts_in_json(
    harness: Harness, tmp_path: Path
) -> None:
    int_table(harness, "orders", deletes="hard")
    break_table(harness, "orders")
    table = f"{harness.mysql.name}.orders"
    report = tmp_path / "report.json"
    first = run_cli(harness.config.path, tmp_path / "home", "reconcile", "-t", table, "--json-output", str(report))
    assert first.returncode == 4, first.stdout + first.stderr
    assert "6 differences remain" in first.stderr and "--repair" in first.stderr
    data = json.loads(report.read_text())
    assert (data["missing"], data["extra"], data["changed"], data["status"]) == (3, 3, 3, "differences")
    assert data["rows_deleted"] == 3  # deletes: hard applies without --repair; lost/changed wait for it
    second = run_cli(harness.config.path, tmp_path / "home", "reconcile", "-t", table, "--repair")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "the target equals the source" in second.stdout
    assert_same(harness, "orders", COLUMNS, "id")


def test_a_crash_in_the_middle_of_a_repair_then_a_rerun_leaves_the_target_exact(
    harness: Harness, tmp_path: Path
) -> None:
    """Killed while the repair batch streams into the warehouse (its transaction open), then after
    the batch is staged but before it is loaded: each rerun finds what is left and makes it exact."""
    assert "load.copy" in CHECKPOINTS
    int_table(harness, "crashy", deletes="hard", repair=True)
    table = f"{harness.mysql.name}.crashy"
    break_table(harness, "crashy")
    for kill_at in ("load.copy", "reconcile.staged"):
        harness.mysql.execute("UPDATE `crashy` SET name = %s WHERE id IN (11, 111)", (f"again {kill_at}",))
        crashed = run_cli(harness.config.path, tmp_path / "home", "reconcile", "-t", table, kill_at=kill_at)
        assert crashed.returncode == -9, crashed.stdout + crashed.stderr
        rerun = run_cli(harness.config.path, tmp_path / "home", "reconcile", "-t", table)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert_same(harness, "crashy", COLUMNS, "id")
    ledger = harness.pg.query(
        "SELECT COUNT(*) FROM public._sync_load_ledger WHERE table_name = %s AND watermark LIKE %s",
        (harness.spec("crashy").identity, '%"reconcile"%'),
    )
    assert ledger == [(2,)]  # one repair batch loaded per successful rerun; none from the crashed runs
