"""Every third-party import is a declared dependency, so a fresh virtualenv runs what CI ran.

The product (``sync_platform/``) may import only ``[project].dependencies``; the tests, ``bench/`` and
``scripts/`` may also import the ``dev`` extras. A module counts as declared when a distribution
that provides it is named there. Run in CI inside a fresh venv, where nothing undeclared is present.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"sync_platform", "sync_platform_tests", "bench", "scripts", "__future__"}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: list[str]) -> set[str]:
    return {_normalized(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in requirements}


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _requirement_names(project["dependencies"])
    dev = _requirement_names(project.get("optional-dependencies", {}).get("dev", []))
    return runtime, runtime | dev


def third_party_imports(folder: Path) -> dict[str, set[str]]:
    """Top-level module name -> files under ``folder`` importing it (stdlib and first party left out)."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in FIRST_PARTY:
                    continue
                found.setdefault(top, set()).add(str(path.relative_to(folder.parent)))
    return found


def _undeclared(folder: Path, declared: set[str]) -> list[str]:
    providers = packages_distributions()
    problems = []
    for module, files in sorted(third_party_imports(folder).items()):
        distributions = {_normalized(d) for d in providers.get(module, [module])}
        if not distributions & declared:
            problems.append(f"{module} (imported by {', '.join(sorted(files)[:3])})")
    return problems


def test_the_product_imports_only_its_declared_dependencies() -> None:
    runtime, _ = _declared()
    assert _undeclared(ROOT / "sync_platform", runtime) == [], "add these to [project].dependencies"


def test_tests_bench_and_scripts_import_only_declared_or_dev_dependencies() -> None:
    _, everything = _declared()
    folders = ("sync_platform_tests", "bench", "scripts")
    problems = [p for folder in folders for p in _undeclared(ROOT / folder, everything)]
    assert problems == [], "add these to [project.optional-dependencies].dev"


def test_an_undeclared_import_is_found(tmp_path: Path) -> None:
    """The check itself can fail: a module importing a package nobody declared is reported."""
    (tmp_path / "module.py").write_text("import numpy\nfrom yaml import safe_load\nimport json\n")
    found = third_party_imports(tmp_path)
    assert set(found) == {"numpy", "yaml"}
    assert _undeclared(tmp_path, {"pyyaml"}) == [f"numpy (imported by {tmp_path.name}/module.py)"]
