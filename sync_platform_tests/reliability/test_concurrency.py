"""Two syncs at once: of the same table, the second fails clearly and nothing interleaves; of
different tables, both run in parallel and both end exact."""

from __future__ import annotations

from sync_platform_tests.engine.harness import Harness
from sync_platform_tests.reliability.support import (
    APPEND_COLUMNS,
    KEYED_COLUMNS,
    ChildSync,
    assert_exact,
    make_append,
    make_keyed,
)

ROWS = 400


def test_same_table_twice_second_fails_clearly(harness: Harness, tmp_path, fault_report) -> None:
    make_append(harness, "c_same", ROWS)
    first = ChildSync(harness, "c_same", tmp_path / "first").start(pause_at="extract.page:2")
    first.wait_reached("extract.page")  # the first run is mid-extract, holding the table
    second = ChildSync(harness, "c_same", tmp_path / "second")
    code, _, err = second.run()
    assert code == 1, f"a second sync of a running table must not run (exit {code}): {err[-1500:]}"
    message = [line for line in err.splitlines() if line.startswith("ERROR ")][-1]
    assert "ConcurrentRunError" in message and "another sync of this table is running" in message, message
    first.release("extract.page")
    code, _, err = first.wait()
    assert code == 0, err[-2000:]
    rows = assert_exact(harness, "c_same", APPEND_COLUMNS)
    code, _, err = second.run()  # once the first is done, the second may run: it finds nothing new
    assert code == 0, err[-2000:]
    assert_exact(harness, "c_same", APPEND_COLUMNS)
    fault_report(
        "Two syncs of the same table started together (append table)",
        f"the second failed at once: {message[:180]!r}; the first completed; target == source ({rows} rows, "
        "no duplicates); a later run of the second found nothing to add",
    )


def test_different_tables_in_parallel(harness: Harness, tmp_path, fault_report) -> None:
    make_keyed(harness, "c_par_a", ROWS)
    make_append(harness, "c_par_b", ROWS)
    runs = [ChildSync(harness, t, tmp_path / t).start(pause_at="extract.page:2") for t in ("c_par_a", "c_par_b")]
    for run in runs:
        run.wait_reached("extract.page")  # both are mid-extract at the same time
    for run in runs:
        run.release("extract.page")
    results = [run.wait() for run in runs]
    assert [code for code, _, _ in results] == [0, 0], [err[-1500:] for _, _, err in results]
    rows_a = assert_exact(harness, "c_par_a", KEYED_COLUMNS, key="id")
    rows_b = assert_exact(harness, "c_par_b", APPEND_COLUMNS)
    fault_report(
        "Syncs of two different tables at the same time (keyed + append)",
        f"both were mid-extract together and both completed; each target == its source "
        f"({rows_a} and {rows_b} rows, no duplicates)",
    )
