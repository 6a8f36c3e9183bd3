"""The CLI is a thin adapter: it holds no Dagster internals and no watermark logic of its own."""

from __future__ import annotations

import ast
from pathlib import Path

CLI = Path(__file__).resolve().parents[2] / "sync_platform" / "cli"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_cli_imports_no_dagster_internals() -> None:
    offenders = {
        f"{path.name}: {module}"
        for path in CLI.glob("*.py")
        for module in _imports(path)
        if module.startswith("dagster._") or module.startswith("dagster_shared")
    }
    assert not offenders, sorted(offenders)


def test_watermark_parsing_and_ordering_live_in_the_engine() -> None:
    source = (CLI / "watermark_commands.py").read_text()
    for name in ("def manual_position", "def _timestamp_value", "def moves_back", "def _materialized_rows"):
        assert name not in source, name
    assert "get_run_records" not in source and "fetch_materializations" not in source
