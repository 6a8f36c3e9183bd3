"""SIGKILL the sync process at every boundary, then rerun: the target equals the source exactly.

The sync runs in a child process (``child.py``) that stores its watermark only after the sync
returns, as the orchestrator does. ``SYNC_PLATFORM_KILL_AT`` makes it kill itself (``kill -9``:
no ``finally``, no cleanup) at a named checkpoint (``sync_platform.engine.faults``). Each
boundary is tried on a keyed table (hybrid, merge) and on a table without a key (append, where a
batch loaded twice or a row read twice would show as a duplicate row).
"""

from __future__ import annotations

import datetime as dt
import signal

import pytest

from sync_platform.engine.stage import list_batches, unmanifested_prefixes
from sync_platform.engine.sync import table_prefix
from sync_platform_tests.engine.harness import Harness
from sync_platform_tests.reliability.support import (
    APPEND_COLUMNS,
    BASE,
    KEYED_COLUMNS,
    ChildSync,
    assert_exact,
    make_append,
    make_keyed,
    wait_until,
)

ROWS = 600  # 12 pages of 50 rows, batches of 100 rows: several batches staged and loaded per run

BOUNDARIES = {
    "extract.page:5": "mid-extract (5th page read, earlier batches staged and possibly loaded)",
    "stage.before_manifest:2": "after the 2nd batch's parquet parts, before its manifest",
    "stage.after_manifest:2": "after the 2nd batch's manifest, before the extract watermark / load",
    "load.copy:2": "during the COPY of the 2nd batch (its transaction open)",
    "load.after_commit:2": "right after the 2nd batch's warehouse commit (ledger row written), mid-run",
    "sync.after_load": "after the warehouse commit, before the watermark (metadata) is stored",
}


def _staged(h: Harness, table: str) -> tuple[int, int]:
    spec = h.spec(table)
    with h.registry() as registry:
        store = registry.staging(spec.staging)
        prefix = table_prefix(spec)
        return len(list_batches(store, prefix)), len(unmanifested_prefixes(store, prefix))


def _change_source(h: Harness, table: str, kind: str) -> None:
    """Source changes between the crash and the rerun: new rows, and (keyed) updated rows."""
    later = BASE + dt.timedelta(days=30)
    if kind == "keyed":
        h.mysql.execute(
            f"UPDATE `{table}` SET name = CONCAT(name, '-v2'), updated_at = %s WHERE MOD(id, 10) = 0", (later,)
        )
        h.mysql.executemany(
            f"INSERT INTO `{table}` VALUES (%s, %s, %s, %s, %s)",
            [(ROWS + i, later, f"new-{i}", "1.00", None) for i in range(1, 31)],
        )
    else:
        h.mysql.executemany(f"INSERT INTO `{table}` VALUES (%s, %s, %s)", [(later, i, "new") for i in range(30)])


@pytest.mark.parametrize("kind", ["keyed", "append"])
@pytest.mark.parametrize("boundary", list(BOUNDARIES))
def test_sigkill_then_rerun(harness: Harness, tmp_path, kind: str, boundary: str, fault_report) -> None:
    table = f"k_{kind[:3]}_{boundary.split(':')[0].replace('.', '_')}"
    (make_keyed if kind == "keyed" else make_append)(harness, table, ROWS)
    columns, key = (KEYED_COLUMNS, "id") if kind == "keyed" else (APPEND_COLUMNS, None)
    child = ChildSync(harness, table, tmp_path / "child", batch_max_rows=100)

    code, _, err = child.run(kill_at=boundary)
    assert code == -signal.SIGKILL, f"the sync was to be killed at {boundary}; exit {code}: {err[-2000:]}"
    assert not child.state_file.exists(), "a killed run stores no watermark"
    manifested, orphaned = _staged(harness, table)
    if boundary.startswith("stage.before_manifest"):
        assert orphaned >= 1, "the batch killed before its manifest is left unmanifested (ignored, cleanable)"

    code, _, err = child.run()
    assert code == 0, f"the rerun after a kill at {boundary} failed: {err[-2000:]}"
    rows = assert_exact(harness, table, columns, key=key)

    _change_source(harness, table, kind)
    code, _out, err = child.run()
    assert code == 0, err[-2000:]
    rows_after = assert_exact(harness, table, columns, key=key)
    fault_report(
        f"SIGKILL {BOUNDARIES[boundary]} — {kind} table",
        f"killed (exit -9; {manifested} batches manifested, {orphaned} unmanifested left); rerun succeeded, "
        f"target == source ({rows} rows, per-column checksums equal, no duplicate "
        f"{'keys' if key else 'rows'}); next incremental run exact too ({rows_after} rows)",
    )


@pytest.mark.parametrize("kind", ["keyed", "append"])
def test_sigkill_from_outside_after_a_ledger_commit(harness: Harness, tmp_path, kind: str, fault_report) -> None:
    """No hook: the parent watches the warehouse ledger and kills the run once batches are committed."""
    from sync_platform.warehouse.dialect import LEDGER_TABLE

    table = f"k_{kind[:3]}_outside"
    (make_keyed if kind == "keyed" else make_append)(harness, table, ROWS)
    columns, key = (KEYED_COLUMNS, "id") if kind == "keyed" else (APPEND_COLUMNS, None)
    child = ChildSync(harness, table, tmp_path / "child", batch_max_rows=100).start(pause_at="extract.page:9")

    def committed() -> int:
        rows = harness.pg.query("SELECT COUNT(*) FROM information_schema.tables WHERE table_name = %s", (LEDGER_TABLE,))
        if rows != [(1,)]:
            return 0
        return harness.pg.query(
            f'SELECT COUNT(*) FROM public."{LEDGER_TABLE}" WHERE table_name LIKE %s', (f"%.{table}",)
        )[0][0]

    loaded = wait_until(lambda: committed() >= 2, 60)
    assert loaded, "the run committed batches before it was killed"
    child.kill()
    code, _, _ = child.wait()
    assert code == -signal.SIGKILL
    loaded = committed()
    code, _, err = child.run()
    assert code == 0, err[-2000:]
    rows = assert_exact(harness, table, columns, key=key)
    fault_report(
        f"SIGKILL from outside (parent watching the ledger) after {loaded} batch commits, mid-run — {kind} table",
        f"killed (exit -9); rerun succeeded, target == source ({rows} rows, no duplicate {'keys' if key else 'rows'})",
    )
