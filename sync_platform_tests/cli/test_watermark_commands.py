"""``watermark`` and ``watermark-count``, run as a user runs them, against the instance Dagster runs use.

The CLI runs in a subprocess whose ``DAGSTER_HOME`` is the test's instance; syncs are materialized
in-process through the real definitions (as the UI or a schedule would) into the same instance, so a
position set on the command line is the one the next run reads, and the other way round.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.test_utils import create_run_for_test

from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.shape import read_table_shape
from sync_platform.engine.watermark import ManualPositionError, Watermark, manual_position
from sync_platform.orchestration import watermarks
from sync_platform_tests.cli.test_config_and_connections_cli import SECRET, free_port, run
from sync_platform_tests.engine.harness import source_rows, target_rows
from sync_platform_tests.orchestration.platform import Platform, add_orders, create_orders, hybrid, metadata_of

COLUMNS = ["id", "name", "amount", "updated_at"]
START = dt.datetime(2025, 1, 1)  # create_orders: row i has updated_at = START + i seconds


@pytest.fixture
def platform(mysql_db, pg_db, make_config_dir, tmp_path: Path) -> Iterator[Platform]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:  # SQLite storage under DAGSTER_HOME, as in production
        yield Platform(make_config_dir(), mysql_db, pg_db, instance)


def cli(p: Platform, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    result = run(
        "--config-dir", str(p.config.path), *args, env={"DAGSTER_HOME": p.instance.root_directory}, input=input
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def qualified(p: Platform, table: str) -> str:
    return f"{p.mysql.name}.{table}"


def rows_where(p: Platform, table: str, keep: Callable[[int], bool]) -> tuple[list[tuple], list[tuple]]:
    """(source rows, target rows) whose id ``keep`` accepts, in comparable form."""
    wanted = [r for r in source_rows(p.mysql, table, COLUMNS, "id") if keep(r[0])]
    actual = [r for r in target_rows(p.pg, p.target(table), COLUMNS, "id") if keep(r[0])]
    return wanted, actual


def extract_position(p: Platform, table: str) -> watermarks.WatermarkRecord:
    record = watermarks.read_extract_watermark(p.instance, p.spec(table))
    assert record is not None
    return record


def test_set_timestamp_and_id_then_a_run_resumes_from_exactly_there(platform: Platform) -> None:
    create_orders(platform.mysql, "replay", 60)
    platform.set_tables({"replay": hybrid()})
    assert metadata_of(platform.materialize("replay"), platform.keys("replay").staging)["rows"] == 60
    # A change the cursor cannot see (updated_at untouched): only a re-read brings it over.
    platform.mysql.execute("UPDATE replay SET name = 'fixed' WHERE id > 30")

    result = cli(
        platform,
        "watermark",
        "set",
        "-t",
        qualified(platform, "replay"),
        "--timestamp",
        "2025-01-01 00:00:40",
        "--id",
        "40",
    )
    assert result.returncode == 0, result.stderr
    assert "set to updated_at=2025-01-01 00:00:40, id=40" in result.stdout
    stored = extract_position(platform, "replay")
    assert stored.origin == watermarks.Origin.MANUAL
    assert stored.watermark.position == {"updated_at": START + dt.timedelta(seconds=40), "id": 40}

    run_ = platform.materialize("replay")
    staged = metadata_of(run_, platform.keys("replay").staging)
    assert staged["rows"] == 20  # rows 41..60 only: nothing at or before the set point is read again
    assert Watermark.from_dict(staged["watermark_before"]).position["id"] == 40
    wanted, actual = rows_where(platform, "replay", lambda i: i > 40)
    assert actual == wanted and len(actual) == 20 and {r[1] for r in actual} == {"fixed"}
    _, untouched = rows_where(platform, "replay", lambda i: 30 < i <= 40)
    assert [r[1] for r in untouched] == [f"name-{i}" for i in range(31, 41)]  # not re-read
    assert extract_position(platform, "replay").watermark.position["id"] == 60


def test_set_timestamp_alone_on_a_new_table_skips_the_history_before_it(platform: Platform) -> None:
    create_orders(platform.mysql, "recent", 50)
    platform.set_tables({"recent": hybrid()})
    result = cli(
        platform, "watermark", "set", "-t", qualified(platform, "recent"), "--timestamp", "2025-01-01 00:00:20"
    )
    assert result.returncode == 0, result.stderr
    assert "None" not in result.stdout, result.stdout  # the NULL tie-breaker is said in words
    assert "updated_at=2025-01-01 00:00:20 (after every row with that updated_at)" in result.stdout

    # The skipped history counts as missing for the (blocking) row-count check; this test is about the set.
    staged = metadata_of(platform.materialize("recent", checks=False), platform.keys("recent").staging)
    assert staged["rows"] == 30  # strictly after 00:00:20: rows 21..50
    wanted, actual = rows_where(platform, "recent", lambda i: i > 20)
    assert actual == wanted and len(actual) == 30
    assert len(target_rows(platform.pg, platform.target("recent"), COLUMNS, "id")) == 30


def test_a_timestamp_column_is_set_as_a_utc_instant_in_the_engines_own_form(platform: Platform) -> None:
    platform.mysql.execute(
        "CREATE TABLE stamps (id BIGINT PRIMARY KEY, name VARCHAR(64), changed_at TIMESTAMP(6) NULL, KEY (changed_at))"
    )
    platform.mysql.executemany(  # the fixture's session zone is UTC: these are UTC instants
        "INSERT INTO stamps VALUES (%s, %s, %s)", [(i, f"n{i}", START + dt.timedelta(seconds=i)) for i in range(1, 31)]
    )
    platform.set_tables(
        {"stamps": {"cdc_strategy": "timestamp_only", "cdc_timestamp_column": "changed_at", "lookback": 0}}
    )
    platform.materialize("stamps")
    engine_value = extract_position(platform, "stamps").watermark.position["changed_at"]

    result = cli(
        platform, "watermark", "set", "-t", qualified(platform, "stamps"), "--timestamp", "2025-01-01 00:00:10"
    )
    assert result.returncode == 0, result.stderr
    position = extract_position(platform, "stamps").watermark.position
    assert position == {"changed_at": dt.datetime(2025, 1, 1, 0, 0, 10, tzinfo=dt.UTC), "id": None}
    assert type(position["changed_at"]) is type(engine_value) and engine_value.utcoffset() == dt.timedelta(0)

    staged = metadata_of(platform.materialize("stamps"), platform.keys("stamps").staging)
    assert staged["rows"] == 20  # rows 11..30
    assert extract_position(platform, "stamps").watermark.position["id"] == 30


def test_an_append_only_table_takes_id_and_refuses_what_would_duplicate_rows(platform: Platform) -> None:
    create_orders(platform.mysql, "events", 40, keyed=False)  # no key: loads append
    platform.set_tables({"events": {"cdc_strategy": "id_only", "cdc_id_column": "id"}})
    platform.materialize("events")
    table = qualified(platform, "events")

    wrong = cli(platform, "watermark", "set", "-t", table, "--timestamp", "2025-01-01 00:00:10")
    assert wrong.returncode == 1 and "id_only" in wrong.stderr and "--timestamp does not apply" in wrong.stderr
    back = cli(platform, "watermark", "set", "-t", table, "--id", "30")
    assert back.returncode == 1 and "appends" in back.stderr and "--yes" in back.stderr
    for command in ("reset", "force-reset"):
        refused = cli(platform, "watermark", command, "-t", table)
        assert refused.returncode == 1, refused.stdout
        assert "appends" in refused.stderr and "--yes" in refused.stderr and "watermark set" in refused.stderr
    assert extract_position(platform, "events").watermark.position == {"id": 40}  # nothing moved

    add_orders(platform.mysql, "events", range(41, 46))
    forward = cli(platform, "watermark", "set", "-t", table, "--id", "42")
    assert forward.returncode == 0, forward.stderr
    ran = platform.materialize("events", checks=False)  # 41, 42 skipped on purpose: the row-count check sees them
    assert metadata_of(ran, platform.keys("events").staging)["rows"] == 3  # 43..45
    ids = [r[0] for r in target_rows(platform.pg, platform.target("events"), COLUMNS, "id")]
    assert ids == [*range(1, 41), 43, 44, 45]  # each once; 41 and 42 skipped as asked


def test_reset_rereads_everything_and_the_keyed_target_has_no_duplicates(platform: Platform) -> None:
    create_orders(platform.mysql, "again", 40)
    platform.set_tables({"again": hybrid()})
    platform.materialize("again")
    table = qualified(platform, "again")

    # A keyed table merges: a reset asks nothing (it runs without a terminal, as under cron).
    result = cli(platform, "watermark", "reset", "-t", table, "--preserve-files")
    assert result.returncode == 0, result.stderr
    assert "?" not in result.stdout, result.stdout
    assert "reads from the beginning" in result.stdout
    record = extract_position(platform, "again")
    assert record.origin == watermarks.Origin.MANUAL and record.watermark.is_empty

    assert metadata_of(platform.materialize("again"), platform.keys("again").staging)["rows"] == 40
    wanted, actual = rows_where(platform, "again", lambda i: True)
    assert actual == wanted and len(actual) == 40
    assert platform.pg.query(f"SELECT COUNT(*), COUNT(DISTINCT id) FROM {platform.target('again')}") == [(40, 40)]

    forced = cli(platform, "watermark", "force-reset", "-t", table)  # no question for a keyed table
    assert forced.returncode == 0, forced.stderr
    assert extract_position(platform, "again").watermark.is_empty


def test_get_and_list_show_positions_origins_and_staged_files(platform: Platform) -> None:
    create_orders(platform.mysql, "shown", 30)
    platform.set_tables({"shown": hybrid(), "Mixed_Case_2": hybrid()})
    platform.materialize("shown")
    add_orders(platform.mysql, "shown", range(31, 36))
    platform.materialize("shown", warehouse=False)  # staged, not loaded yet
    table = qualified(platform, "shown")

    got = cli(platform, "watermark", "get", "-t", table, "--show-files")
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    extract = next(line for line in lines if line.startswith("extract watermark"))
    load = next(line for line in lines if line.startswith("load watermark"))
    assert extract.endswith("updated_at=2025-01-01 00:00:35, id=35")
    assert load.endswith("updated_at=2025-01-01 00:00:30, id=30")
    assert "recorded" in got.stdout and "run " in got.stdout
    assert " loaded " in got.stdout and " pending " in got.stdout

    by_connection = cli(platform, "watermark", "get", "-c", platform.config.source, "-t", table)
    assert by_connection.returncode == 0 and "id=35" in by_connection.stdout

    listed = cli(platform, "watermark", "list")
    assert listed.returncode == 0, listed.stderr
    shown = next(line for line in listed.stdout.splitlines() if f" {table} " in line)
    assert "updated_at=2025-01-01 00:00:35, id=35" in shown and "updated_at=2025-01-01 00:00:30, id=30" in shown
    mixed = next(line for line in listed.stdout.splitlines() if qualified(platform, "Mixed_Case_2") in line)
    assert "not recorded" in mixed  # the configured name, exactly as written

    cli(platform, "watermark", "set", "-t", table, "--timestamp", "2025-01-01 00:00:33", "--id", "33")
    manual = cli(platform, "watermark", "get", "-t", table)
    assert 'manual ("set from the command line")' in manual.stdout and "id=33" in manual.stdout
    assert "(manual)" in cli(platform, "watermark", "list", "-p", "p").stdout
    unknown = cli(platform, "watermark", "list", "-p", "nope")
    assert unknown.returncode == 1 and "pipeline `nope` not found" in unknown.stderr


def test_validate_counts_passes_on_a_good_sync_and_fails_on_a_tampered_target(platform: Platform) -> None:
    create_orders(platform.mysql, "counted", 50)
    platform.set_tables({"counted": hybrid()})
    platform.materialize("counted")
    table = qualified(platform, "counted")

    good = cli(platform, "watermark-count", "validate-counts", "-t", table)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "source rows       50" in good.stdout and "target rows       50" in good.stdout
    assert "duplicate keys    0 on (id)" in good.stdout
    assert "rows extracted    50 in 1 recorded run(s)" in good.stdout
    assert "rows loaded       50 in 1 recorded run(s)" in good.stdout

    platform.pg.execute(f"DELETE FROM {platform.target('counted')} WHERE id % 10 = 0")
    bad = cli(platform, "watermark-count", "validate-counts", "-t", table)
    assert bad.returncode == 4, bad.stdout + bad.stderr
    assert "target rows       45" in bad.stdout and "5 rows of the window are missing from the target" in bad.stderr

    set_count = cli(platform, "watermark-count", "set-count", "-t", table, "--count", "50")
    assert set_count.returncode == 1 and "not stored" in set_count.stderr and "validate-counts" in set_count.stderr


def test_bad_flags_are_refused_with_exit_1_and_say_what_is_wrong(platform: Platform) -> None:
    create_orders(platform.mysql, "flags", 5)
    create_orders(platform.mysql, "whole", 5)
    create_orders(platform.mysql, "nokey", 5, keyed=False)
    platform.set_tables(
        {
            "flags": hybrid(),
            "whole": {"cdc_strategy": "full_sync"},
            "nokey": {"cdc_strategy": "timestamp_only", "cdc_timestamp_column": "updated_at"},
        }
    )
    table = qualified(platform, "flags")
    cases = [
        (("set", "-t", table), "give --timestamp"),
        (("set", "-t", table, "--timestamp", "2025-13-01 00:00:00"), "--timestamp '2025-13-01 00:00:00'"),
        (("set", "-t", table, "--timestamp", "yesterday"), "expected 'YYYY-MM-DD HH:MM:SS'"),
        (("set", "-t", table, "--timestamp", "2025-01-01 00:00:00+02:00"), "without an offset"),
        (("set", "-t", table, "--id", "abc"), "'--id'"),
        (("set", "-t", table, "--id", "5"), "uses hybrid on (updated_at, id): it resumes in updated_at order"),
        (("set", "-t", qualified(platform, "whole"), "--id", "5"), "full_sync"),
        (
            ("set", "-t", qualified(platform, "nokey"), "--timestamp", "2025-01-01 00:00:01", "--id", "1"),
            "uses timestamp_only on (updated_at): it has no id column to break ties",
        ),
        (("get", "-t", table, "-p", "p", "-c", platform.config.source), "-p and -c both given"),
        (("get", "-t", f"other:{table}", "-c", platform.config.source), "names source `other`"),
        (("get", "-t", f"{platform.mysql.name}.nosuch"), "no pipeline lists"),
        (("set", "--id", "5"), "Missing option '-t'"),
    ]
    for args, message in cases:
        result = cli(platform, "watermark", *args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    assert watermarks.read_extract_watermark(platform.instance, platform.spec("flags")) is None  # nothing recorded


def test_an_unreachable_warehouse_is_exit_2_and_never_shows_its_password(platform: Platform) -> None:
    create_orders(platform.mysql, "secret", 5)
    platform.set_tables({"secret": hybrid()})
    document = yaml.safe_load(platform.config.connections_file.read_text())
    document["connections"]["targets"][platform.config.target].update(port=free_port(), password=SECRET)
    platform.config.write("connections.yml", document)

    result = cli(platform, "watermark", "get", "-t", qualified(platform, "secret"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not recorded in the instance" in result.stdout
    counts = cli(platform, "watermark-count", "validate-counts", "-t", qualified(platform, "secret"))
    assert counts.returncode == 2 and qualified(platform, "secret") in counts.stderr
    assert SECRET not in result.stdout + result.stderr + counts.stdout + counts.stderr


def test_a_set_or_reset_during_a_run_that_extracts_the_table_is_refused(platform: Platform) -> None:
    create_orders(platform.mysql, "busy", 10)
    platform.set_tables({"busy": hybrid()})
    platform.materialize("busy")
    table = qualified(platform, "busy")
    running = create_run_for_test(  # as a run launched from the UI, still extracting
        platform.instance,
        job_name="sync_tables",
        status=dg.DagsterRunStatus.STARTED,
        asset_selection=frozenset({platform.keys("busy").staging}),
    )
    for args in (("set", "-t", table, "--timestamp", "2025-01-01 00:00:05"), ("force-reset", "-t", table)):
        refused = cli(platform, "watermark", *args)
        assert refused.returncode == 1 and running.run_id in refused.stderr, refused.stderr
    assert extract_position(platform, "busy").origin == watermarks.Origin.MATERIALIZATION

    anyway = cli(platform, "watermark", "set", "-t", table, "--timestamp", "2025-01-01 00:00:05", "--yes")
    assert anyway.returncode == 0, anyway.stderr
    assert extract_position(platform, "busy").origin == watermarks.Origin.MANUAL


def test_timestamp_maps_onto_date_and_epoch_cursors_as_the_engine_reads_them(platform: Platform) -> None:
    platform.mysql.execute("CREATE TABLE daily (id BIGINT PRIMARY KEY, day DATE, KEY (day))")
    platform.mysql.execute("CREATE TABLE epochs (id BIGINT UNSIGNED PRIMARY KEY, changed INT UNSIGNED, KEY (changed))")
    platform.set_tables(
        {
            "daily": {"cdc_strategy": "timestamp_only", "cdc_timestamp_column": "day"},
            "epochs": {"cdc_strategy": "hybrid", "cdc_timestamp_column": "changed", "cdc_id_column": "id"},
        }
    )
    project = platform.project()
    with ConnectionRegistry(project.connections, project.config_dir) as registry:
        daily, epochs = platform.spec("daily"), platform.spec("epochs")
        daily_shape, epochs_shape = read_table_shape(registry, daily), read_table_shape(registry, epochs)
    daily_id, epochs_id = daily.identity, epochs.identity
    assert manual_position(daily_id, daily_shape, dt.datetime(2025, 1, 2), 7) == {"day": dt.date(2025, 1, 2), "id": 7}
    with pytest.raises(ManualPositionError, match="a date has no time of day") as midday:
        manual_position(daily_id, daily_shape, dt.datetime(2025, 1, 2, 12), None)
    assert midday.value.exit_code == 1
    # An integer cursor holds epoch seconds (UTC); BIGINT UNSIGNED is staged as DECIMAL(20,0).
    position = manual_position(epochs_id, epochs_shape, dt.datetime(2025, 1, 2), 7)
    assert position == {"changed": 1735776000, "id": Decimal(7)}
    assert type(position["changed"]) is int and type(position["id"]) is Decimal
