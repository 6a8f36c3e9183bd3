"""Hostile and bad input: odd identifiers, custom SQL that is not a SELECT, tables changed under
the sync. Canary tables in both databases prove that no injected SQL ever ran."""

from __future__ import annotations

import datetime as dt

import pytest

from sync_platform_tests.engine.harness import Harness
from sync_platform_tests.reliability.support import KEYED_COLUMNS, add_table, assert_exact, make_keyed

HOSTILE_TABLE = "we\"ird`ta'ble;DROP(canary)--"  # no space or dot: the config refuses those (tested below)
HOSTILE_COLUMNS = ["id", "upd at", 'co"l', "back`tick", "x'); DROP TABLE canary; --", "Select"]


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


@pytest.fixture
def canaries(harness: Harness):
    harness.mysql.execute("CREATE TABLE IF NOT EXISTS canary (v INT)")
    harness.mysql.execute("DELETE FROM canary")
    harness.mysql.execute("INSERT INTO canary VALUES (1), (2), (3)")
    harness.pg.execute("CREATE TABLE IF NOT EXISTS public.canary (v INT)")
    harness.pg.execute("DELETE FROM public.canary")
    harness.pg.execute("INSERT INTO public.canary VALUES (1), (2), (3)")

    def intact() -> None:
        assert harness.mysql.query("SELECT COUNT(*) FROM canary") == [(3,)], "MySQL canary was touched"
        assert harness.pg.query("SELECT COUNT(*) FROM public.canary") == [(3,)], "PostgreSQL canary was touched"

    return intact


def test_hostile_identifiers_sync_exactly(harness: Harness, canaries, fault_report) -> None:
    h = harness
    h.mysql.execute(f"DROP TABLE IF EXISTS {_q(HOSTILE_TABLE)}")
    h.mysql.execute(
        f"CREATE TABLE {_q(HOSTILE_TABLE)} (id INT PRIMARY KEY, {_q('upd at')} DATETIME(6) NOT NULL, "
        f"{_q(chr(99) + 'o' + chr(34) + 'l')} VARCHAR(50), {_q('back`tick')} INT, "
        f"{_q(HOSTILE_COLUMNS[4])} TEXT, {_q('Select')} INT, KEY ({_q('upd at')}))"
    )
    rows = [
        (i, dt.datetime(2025, 1, 1) + dt.timedelta(seconds=i), f"'; DROP TABLE canary; -- {i}", i, '"); --', i % 3)
        for i in range(1, 121)
    ]
    h.mysql.executemany(f"INSERT INTO {_q(HOSTILE_TABLE)} VALUES (%s, %s, %s, %s, %s, %s)", rows)
    add_table(h, HOSTILE_TABLE, {"cdc_strategy": "hybrid", "cdc_timestamp_column": "upd at", "cdc_id_column": "id"})
    h.sync(HOSTILE_TABLE, batch_max_rows=50)
    h.mysql.execute(f"UPDATE {_q(HOSTILE_TABLE)} SET {_q('upd at')} = '2025-02-01', {_q('Select')} = 9 WHERE id < 5")
    h.sync(HOSTILE_TABLE, batch_max_rows=50)
    target_columns = [
        name
        for (name,) in h.pg.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s "
            "ORDER BY ordinal_position",
            (HOSTILE_TABLE.lower(),),
        )
    ]
    count = assert_exact(h, HOSTILE_TABLE, HOSTILE_COLUMNS, key="id", target_columns=target_columns)
    canaries()
    fault_report(
        "Table and column names with quotes, spaces, backticks, SQL fragments and keywords",
        f"synced (initial + incremental) exactly: {count} rows, every column equal (warehouse columns "
        f"{target_columns}); canary tables intact",
    )


def test_table_name_with_space_or_dot_is_a_config_error(harness: Harness, canaries, fault_report) -> None:
    from sync_platform.configuration.errors import ConfigError

    outcomes = []
    for name in ("has space; DROP TABLE canary", "a.b"):
        add_table(harness, name, {"cdc_strategy": "full_sync"})
        with pytest.raises(ConfigError) as raised:
            harness.spec(name)
        assert "must be written schema.table" in str(raised.value)
        outcomes.append(str(raised.value).splitlines()[-2].split(": ", 2)[-1][:100])
        harness.set_tables({})
    canaries()
    fault_report(
        "A table name with a space or a dot in pipelines/*.yml",
        f"validation error naming file and key ({outcomes[0]!r}); nothing reached either database",
    )


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM canary",
        "UPDATE canary SET v = 0",
        "SELECT * FROM {table_name}; DROP TABLE canary",
        "SELECT * FROM {table_name} WHERE id > {last_id} -- LIMIT {limit}",
        "SELECT * FROM canary INTO OUTFILE '/tmp/spt_canary'",
        "WITH x AS (SELECT 1) DELETE FROM canary",
        "SELECT SLEEP(5)",
        "",
    ],
)
def test_custom_sql_that_is_not_a_plain_select_is_refused(harness: Harness, canaries, query, fault_report) -> None:
    make_keyed(harness, "h_custom", 20)
    add_table(
        harness,
        "h_custom",
        {
            "cdc_strategy": "custom_sql",
            "custom_query": query,
            "cdc_timestamp_column": "updated_at",
            "cdc_id_column": "id",
        },
    )
    try:
        harness.sync("h_custom")
    except Exception as exc:  # a ConfigError (validation) or a PlanError (engine): both name the problem
        message = str(exc)
    else:
        pytest.fail(f"custom_query {query!r} was accepted")
    assert "custom_query" in message, message
    canaries()
    assert harness.pg.query("SELECT to_regclass('public.h_custom')") == [(None,)], "nothing was loaded"
    fault_report(f"custom_query {query!r}", f"refused before reaching MySQL: {message.splitlines()[-1][:160]!r}")


def test_source_table_dropped_between_runs(harness: Harness, canaries, fault_report) -> None:
    make_keyed(harness, "h_dropped", 50)
    harness.sync("h_dropped")
    harness.mysql.execute("DROP TABLE h_dropped")
    with pytest.raises(Exception) as raised:
        harness.sync("h_dropped")
    message = str(raised.value)
    assert "h_dropped" in message, message
    assert harness.pg.query('SELECT COUNT(*) FROM public."h_dropped"') == [(50,)], "the target is left as it was"
    canaries()
    fault_report(
        "Source table dropped between runs",
        f"run failed: {type(raised.value).__name__}: {message[:180]!r}; the target kept its 50 rows",
    )


def test_source_table_altered_between_runs(harness: Harness, fault_report) -> None:
    make_keyed(harness, "h_altered", 80)
    harness.sync("h_altered")
    harness.mysql.execute("ALTER TABLE h_altered ADD COLUMN extra VARCHAR(10), MODIFY name VARCHAR(200)")
    harness.mysql.execute(
        "UPDATE h_altered SET extra = 'x', name = REPEAT('n', 150), updated_at = '2025-03-01' WHERE id <= 10"
    )
    result = harness.sync("h_altered")
    rows = assert_exact(harness, "h_altered", [*KEYED_COLUMNS, "extra"], key="id")
    assert result.load is not None and result.load.schema_changes, "the schema change is reported"
    fault_report(
        "Source table altered between runs (column added, VARCHAR widened)",
        f"next run evolved the target ({'; '.join(result.load.schema_changes)[:160]}) and target == source "
        f"({rows} rows)",
    )


def test_target_altered_by_hand(harness: Harness, fault_report) -> None:
    make_keyed(harness, "h_target", 80)
    harness.sync("h_target")
    harness.pg.execute('ALTER TABLE public."h_target" ADD COLUMN "by_hand" INT DEFAULT 7')
    harness.pg.execute('ALTER TABLE public."h_target" ALTER COLUMN "name" TYPE INT USING 0')
    harness.mysql.execute("UPDATE h_target SET name = 'changed', updated_at = '2025-03-01' WHERE id <= 5")
    with pytest.raises(Exception) as raised:
        harness.sync("h_target")
    message = str(raised.value)
    assert "name" in message, message
    assert harness.pg.query('SELECT COUNT(*) FROM public."h_target"') == [(80,)]
    fault_report(
        "Target table altered by hand (extra column added, a column's type changed)",
        f"run failed: {type(raised.value).__name__}: {message[:200]!r}; the target was not modified",
    )
