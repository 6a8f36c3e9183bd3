"""How long Dagster takes to load the definitions of a large configuration (no database needed).

    python -m bench.bench_definitions                # 1,000 tables in 10 pipelines
    python -m bench.bench_definitions --tables 3000 --pipelines 30

Writes a generated configuration (connections.yml and pipelines/*.yml with schedules, freshness,
owners and tags) to a temporary directory, then measures, in a fresh Python process each time so
that imports and caches are cold:

- ``load_project``: the config loader reading and validating every file;
- ``build_definitions``: the factory turning the project into assets, checks, jobs, schedules, sensors;
- ``resolve``: ``Definitions.validate_loadable`` (the asset graph and jobs resolved, as a code
  location does when it loads);
- ``total``: the three together — the figure the "1,000 tables in under 5 s" target is about;
- ``process``: the whole process including the Python imports of dagster and sync_platform.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

TARGET_SECONDS = 5.0
_CHILD = """
import json, sys, time
started = time.perf_counter()
import dagster as dg
from sync_platform.configuration import load_project
from sync_platform.orchestration.factory import build_definitions
imported = time.perf_counter()
project = load_project(sys.argv[1], env={})
loaded = time.perf_counter()
defs = build_definitions(project)
built = time.perf_counter()
dg.Definitions.validate_loadable(defs)
resolved = time.perf_counter()
graph = defs.resolve_asset_graph()
print(json.dumps({
    "imports": imported - started,
    "load_project": loaded - imported,
    "build_definitions": built - loaded,
    "resolve": resolved - built,
    "total": resolved - imported,
    "assets": len(list(graph.get_all_asset_keys())),
    "checks": len(list(graph.asset_check_keys)),
}))
"""


def write_config(directory: Path, tables: int, pipelines: int) -> Path:
    """A configuration with ``tables`` tables spread over ``pipelines`` pipelines; returns its directory."""
    config = directory / "config"
    (config / "pipelines").mkdir(parents=True, exist_ok=True)
    connections = {
        "connections": {
            "sources": {"app": {"host": "127.0.0.1", "port": 1, "database": "app", "username": "u", "password": ""}},
            "targets": {
                "dw": {
                    "type": "redshift",
                    "host": "127.0.0.1",
                    "port": 1,
                    "database": "dw",
                    "schema": "raw",
                    "username": "u",
                    "password": "",
                }
            },
        },
        "s3_configs": {"lake": {"bucket_name": "bench-bucket", "region": "us-east-1"}},
    }
    (config / "connections.yml").write_text(yaml.safe_dump(connections), encoding="utf-8")
    per_pipeline = -(-tables // pipelines)
    written = 0
    for p in range(pipelines):
        entries: dict[str, Any] = {}
        for t in range(per_pipeline):
            if written == tables:
                break
            written += 1
            if t % 3 == 0:
                entries[f"schema{p}.table{p}_{t}"] = {"cdc_strategy": "full_sync"}
            else:
                entries[f"schema{p}.table{p}_{t}"] = {
                    "cdc_strategy": "hybrid",
                    "cdc_timestamp_column": "updated_at",
                    "cdc_id_column": "id",
                    "owners": ["data-platform@example.com"],
                    "tags": {"tier": "gold" if t % 2 else "silver"},
                    "freshness": {"max_lag": "30m" if t % 2 else "2h"},
                }
        document = {
            "pipeline": {
                "name": f"pipeline{p}",
                "source": "app",
                "target": "dw",
                "s3_config": "lake",
                "schedule": {"cron": "*/15 * * * *"},
                "owners": ["team:analytics"],
                "tags": {"domain": f"d{p}"},
            },
            "tables": entries,
        }
        (config / "pipelines" / f"pipeline{p}.yml").write_text(yaml.safe_dump(document), encoding="utf-8")
    return config


def measure(tables: int = 1000, pipelines: int = 10) -> dict[str, Any]:
    """Figures of one cold load of a generated configuration (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="sync-platform-bench-defs-") as tmp:
        config = write_config(Path(tmp), tables, pipelines)
        started = time.perf_counter()
        child = subprocess.run([sys.executable, "-c", _CHILD, str(config)], capture_output=True, text=True)
        if child.returncode != 0:
            raise RuntimeError(f"loading the generated definitions failed:\n{child.stderr[-4000:]}")
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        figures["process"] = time.perf_counter() - started
    figures.update(tables=tables, pipelines=pipelines)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_definitions", description=__doc__)
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--pipelines", type=int, default=10)
    parser.add_argument("--json-output", help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures = measure(args.tables, args.pipelines)
    print(f"definitions for {figures['tables']:,} tables in {figures['pipelines']} pipelines")
    print(f"  {figures['assets']:,} assets, {figures['checks']:,} checks")
    for step in ("load_project", "build_definitions", "resolve", "total", "imports", "process"):
        print(f"  {step:<18} {figures[step]:6.2f} s")
    verdict = "within" if figures["total"] < TARGET_SECONDS else "OVER"
    print(f"  target: total under {TARGET_SECONDS:.0f} s: {verdict}")
    if args.json_output:
        Path(args.json_output).write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
