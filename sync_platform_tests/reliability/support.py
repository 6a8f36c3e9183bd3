"""Helpers of the reliability suite: tables to sync, exact comparisons, and a sync in a child process."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sync_platform.engine.faults import FAULT_DIR_VARIABLE, KILL_VARIABLE, PAUSE_VARIABLE
from sync_platform_tests.engine.harness import PIPELINE, Harness, canonical

if TYPE_CHECKING:
    import dagster as dg

REPO = Path(__file__).resolve().parents[2]

KEYED_COLUMNS = ["id", "updated_at", "name", "amount", "note"]
APPEND_COLUMNS = ["ts", "n", "label"]
BASE = dt.datetime(2025, 1, 1)


def make_keyed(h: Harness, table: str, rows: int, *, page_rows: int = 50) -> None:
    """A table with a primary key, synced ``hybrid`` on (updated_at, id): loads merge."""
    h.mysql.execute(f"DROP TABLE IF EXISTS `{table}`")
    h.mysql.execute(
        f"CREATE TABLE `{table}` (id INT PRIMARY KEY, updated_at DATETIME(6) NOT NULL, name VARCHAR(40), "
        "amount DECIMAL(12,2), note TEXT, KEY (updated_at))"
    )
    data = [
        (i, BASE + dt.timedelta(seconds=i // 4), f"name-{i}", f"{i * 1.25:.2f}", None if i % 7 else f"n{i}")
        for i in range(1, rows + 1)
    ]
    h.mysql.executemany(f"INSERT INTO `{table}` VALUES (%s, %s, %s, %s, %s)", data)
    add_table(
        h,
        table,
        {"cdc_strategy": "hybrid", "cdc_timestamp_column": "updated_at", "cdc_id_column": "id"},
        page_rows=page_rows,
    )


def make_append(h: Harness, table: str, rows: int, *, page_rows: int = 50) -> None:
    """A table without any key, synced ``timestamp_only``: loads append, the ledger gives exactly-once."""
    h.mysql.execute(f"DROP TABLE IF EXISTS `{table}`")
    h.mysql.execute(f"CREATE TABLE `{table}` (ts DATETIME(6) NOT NULL, n INT, label VARCHAR(20), KEY (ts))")
    data = [(BASE + dt.timedelta(seconds=i // 3), i % 50, f"l{i % 11}") for i in range(rows)]
    h.mysql.executemany(f"INSERT INTO `{table}` VALUES (%s, %s, %s)", data)
    add_table(h, table, {"cdc_strategy": "timestamp_only", "cdc_timestamp_column": "ts"}, page_rows=page_rows)


def add_table(h: Harness, table: str, config: dict[str, Any], *, page_rows: int = 50) -> None:
    """Add (or replace) one table in the harness pipeline, keeping the others."""
    import yaml

    path = h.config.path / "pipelines" / f"{PIPELINE}.yml"
    tables = (yaml.safe_load(path.read_text()) or {}).get("tables", {}) if path.exists() else {}
    tables[f"{h.mysql.name}.{table}"] = config
    h.set_tables(tables, processing={"batch_size": page_rows})


def _quote_mysql(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _quote_pg(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def column_checksums(rows: list[tuple], columns: list[str]) -> dict[str, tuple[int, str]]:
    """Per column: non-NULL count and an order-independent digest of the values."""
    out: dict[str, tuple[int, str]] = {}
    for index, name in enumerate(columns):
        values = sorted(repr(row[index]) for row in rows if row[index] is not None)
        out[name] = (len(values), hashlib.sha256("\n".join(values).encode()).hexdigest()[:16])
    return out


def assert_exact(
    h: Harness,
    table: str,
    columns: list[str],
    *,
    key: str | None = None,
    target_table: str | None = None,
    target_columns: list[str] | None = None,
) -> int:
    """Target == source: same row count, same per-column checksums, same multiset of rows; keys unique.

    ``target_columns``: the warehouse names of ``columns`` when they differ from the lower-cased name.
    """
    target_columns = target_columns or [c.lower() for c in columns]
    source = [
        tuple(canonical(v) for v in row)
        for row in h.mysql.query(f"SELECT {', '.join(map(_quote_mysql, columns))} FROM {_quote_mysql(table)}")
    ]
    target_name = f"{_quote_pg(h.config.target_schema)}.{_quote_pg(target_table or table.lower())}"
    target = [
        tuple(canonical(v) for v in row)
        for row in h.pg.query(f"SELECT {', '.join(map(_quote_pg, target_columns))} FROM {target_name}")
    ]
    assert len(target) == len(source), f"{table}: target has {len(target)} rows, source {len(source)}"
    assert column_checksums(target, columns) == column_checksums(source, columns), f"{table}: column checksums differ"
    doubled = [row for row, n in Counter(target).items() if n > 1]
    assert not doubled, f"{table}: duplicated rows in the target: {doubled[:3]}"
    assert Counter(target) == Counter(source), f"{table}: rows differ"
    if key is not None:
        index = [c.lower() for c in columns].index(key.lower())
        keys = Counter(row[index] for row in target)
        assert max(keys.values(), default=1) == 1, f"{table}: duplicate keys in the target"
    return len(source)


@dataclass
class ChildSync:
    """``sync_table`` of one table in a child process (``child.py``), with fault variables set."""

    h: Harness
    table: str
    workdir: Path
    batch_max_rows: int = 100
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[str] | None = None

    @property
    def state_file(self) -> Path:
        return self.workdir / f"{self.table}.watermark.json"

    def start(self, *, kill_at: str | None = None, pause_at: str | None = None) -> ChildSync:
        env = {k: v for k, v in os.environ.items() if k not in (KILL_VARIABLE, PAUSE_VARIABLE)}
        env.update(self.env)
        env[FAULT_DIR_VARIABLE] = str(self.workdir)
        if kill_at:
            env[KILL_VARIABLE] = kill_at
        if pause_at:
            env[PAUSE_VARIABLE] = pause_at
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "sync_platform_tests.reliability.child",
            str(self.h.config.path),
            PIPELINE,
            f"{self.h.mysql.name}.{self.table}",
            str(self.state_file),
            str(self.batch_max_rows),
        ]
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        return self

    def wait(self, timeout: float = 90.0) -> tuple[int, str, str]:
        assert self.process is not None
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.process.communicate()
            raise AssertionError(f"child sync of {self.table} hung; stderr: {err[-2000:]}") from None
        return self.process.returncode, out, err

    def run(self, **kwargs: Any) -> tuple[int, str, str]:
        return self.start(**kwargs).wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)

    def wait_reached(self, name: str, timeout: float = 60.0) -> None:
        marker = self.workdir / f"{name}.reached"
        wait_until(lambda: marker.exists() or (self.process is not None and self.process.poll() is not None), timeout)
        if not marker.exists():
            code, _out, err = self.wait()
            raise AssertionError(f"child never reached {name} (exit {code}): {err[-2000:]}")

    def release(self, name: str) -> None:
        (self.workdir / f"{name}.release").write_text("go")


def wait_until(check: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def run_cli(
    config_dir: Path,
    dagster_home: Path,
    *args: str,
    options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    kill_at: str | None = None,
    timeout: float = 240.0,
) -> subprocess.CompletedProcess[str]:
    """``sync-platform [options] --config-dir DIR args…`` as an operator runs it: its own process, the
    Dagster instance under ``dagster_home``; ``kill_at`` makes it SIGKILL itself at that checkpoint."""
    environment = {k: v for k, v in os.environ.items() if k not in (KILL_VARIABLE, PAUSE_VARIABLE)}
    environment.update(env or {})
    environment["DAGSTER_HOME"] = str(dagster_home)
    if kill_at:
        environment[KILL_VARIABLE] = kill_at
    command = [sys.executable, "-m", "sync_platform.cli.main", "--config-dir", str(config_dir), *options, *args]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def instance_at(dagster_home: Path) -> dg.DagsterInstance:
    """A fresh handle on the instance under ``dagster_home`` (sees everything the CLI processes wrote)."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home)))
