"""Settings and measuring helpers shared by the benchmarks (plain stdlib; no sync_platform imports).

Every figure a benchmark prints comes from the same run, on the same machine, against the local
stack (MariaDB on 127.0.0.1:3306, PostgreSQL on 127.0.0.1:5432) unless the environment says otherwise.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

DEFAULT_ROWS = 2_000_000


@dataclass(frozen=True)
class BenchSettings:
    """Where the benchmark data lives; every field can be set from the environment."""

    rows: int = DEFAULT_ROWS
    mysql_host: str = "127.0.0.1"
    mysql_port: int = 3306
    mysql_user: str = "root"
    mysql_password: str = ""
    database: str = "bench"  # MySQL database holding the seeded table
    table: str = "orders"
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "postgres"
    pg_database: str = "bench"
    batch_rows: int = 100_000  # rows per Arrow batch read from MySQL
    repeat: int = 1  # timed runs per measurement; the fastest is reported (the machine may be shared)

    @classmethod
    def from_env(cls, rows: int | None = None) -> BenchSettings:
        env = os.environ
        return cls(
            rows=rows if rows is not None else int(env.get("BENCH_ROWS", DEFAULT_ROWS)),
            mysql_host=env.get("BENCH_MYSQL_HOST", cls.mysql_host),
            mysql_port=int(env.get("BENCH_MYSQL_PORT", cls.mysql_port)),
            mysql_user=env.get("BENCH_MYSQL_USER", cls.mysql_user),
            mysql_password=env.get("BENCH_MYSQL_PASSWORD", cls.mysql_password),
            database=env.get("BENCH_DATABASE", cls.database),
            table=env.get("BENCH_TABLE", cls.table),
            pg_host=env.get("BENCH_PG_HOST", cls.pg_host),
            pg_port=int(env.get("BENCH_PG_PORT", cls.pg_port)),
            pg_user=env.get("BENCH_PG_USER", cls.pg_user),
            pg_database=env.get("BENCH_PG_DATABASE", cls.pg_database),
            batch_rows=int(env.get("BENCH_BATCH_ROWS", cls.batch_rows)),
            repeat=max(1, int(env.get("BENCH_REPEAT", cls.repeat))),
        )

    @property
    def qualified_table(self) -> str:
        return f"`{self.database}`.`{self.table}`"

    @property
    def mysql_url(self) -> str:
        """connectorx URL (holds the password: never print it)."""
        user = quote(self.mysql_user, safe="")
        password = quote(self.mysql_password, safe="")
        credentials = f"{user}:{password}" if password else user
        return f"mysql://{credentials}@{self.mysql_host}:{self.mysql_port}/{quote(self.database, safe='')}"

    def as_env(self) -> dict[str, str]:
        """The settings as BENCH_* variables, so child processes measure the same thing."""
        return {
            "BENCH_ROWS": str(self.rows),
            "BENCH_MYSQL_HOST": self.mysql_host,
            "BENCH_MYSQL_PORT": str(self.mysql_port),
            "BENCH_MYSQL_USER": self.mysql_user,
            "BENCH_MYSQL_PASSWORD": self.mysql_password,
            "BENCH_DATABASE": self.database,
            "BENCH_TABLE": self.table,
            "BENCH_PG_HOST": self.pg_host,
            "BENCH_PG_PORT": str(self.pg_port),
            "BENCH_PG_USER": self.pg_user,
            "BENCH_PG_DATABASE": self.pg_database,
            "BENCH_BATCH_ROWS": str(self.batch_rows),
            "BENCH_REPEAT": str(self.repeat),
        }


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """This process's resident set size now, in MB."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """``with stopwatch() as t: ...`` then ``t["seconds"]``."""
    timing: dict[str, float] = {}
    started = time.perf_counter()
    try:
        yield timing
    finally:
        timing["seconds"] = time.perf_counter() - started


@contextmanager
def work_dir(prefix: str) -> Iterator[Path]:
    """A scratch directory for one benchmark: removed afterwards, unless ``BENCH_KEEP_WORK`` names a folder
    to keep it in (the CLI logs, configurations and Dagster homes, to look into a surprising figure)."""
    keep = os.environ.get("BENCH_KEEP_WORK")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=keep))
        print(f"bench: keeping the work of this run in {path}", file=sys.stderr)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def run_child(module: str, args: list[str], settings: BenchSettings) -> dict[str, Any]:
    """Run ``python -m module args`` and return the JSON object it prints last.

    Each measurement runs in its own process so its peak RSS is its own, not the benchmark's.
    """
    env = {**os.environ, **settings.as_env()}
    done = subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{module} {' '.join(args)} printed no result:\n{done.stdout[-2000:]}")
    return json.loads(lines[-1])


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f} rows/s" if seconds > 0 else "n/a"


def write_config_dir(
    settings: BenchSettings, root: Path, schema: str, tables: dict[str, dict[str, Any]], pipeline: str = "bench"
) -> Path:
    """``root/config``: the bench MariaDB as source ``bench``, PostgreSQL schema ``schema`` as target ``pg``,
    local staging under ``root/staging``, and one pipeline holding ``tables`` (``db.table`` → settings)."""
    config = root / "config"
    (config / "pipelines").mkdir(parents=True, exist_ok=True)
    connections = {
        "connections": {
            "sources": {
                "bench": {
                    "host": settings.mysql_host,
                    "port": settings.mysql_port,
                    "database": settings.database,
                    "username": settings.mysql_user,
                    "password": "${BENCH_MYSQL_PASSWORD:-}",
                }
            },
            "targets": {
                "pg": {
                    "type": "postgres",
                    "host": settings.pg_host,
                    "port": settings.pg_port,
                    "database": settings.pg_database,
                    "schema": schema,
                    "username": settings.pg_user,
                }
            },
        },
        "s3_configs": {"local": {"local_path": str(root / "staging")}},
    }
    document = {
        "pipeline": {"name": pipeline, "source": "bench", "target": "pg", "s3_config": "local"},
        "tables": tables,
    }
    (config / "connections.yml").write_text(yaml.safe_dump(connections))
    (config / "pipelines" / f"{pipeline}.yml").write_text(yaml.safe_dump(document))
    return config
