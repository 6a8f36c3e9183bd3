"""``${VAR}`` and ``${VAR:-default}`` substitution in YAML values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sync_platform.configuration.errors import ConfigProblem, key_path

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def interpolate(
    value: Any, env: Mapping[str, str], file: Path | None, problems: list[ConfigProblem], path: tuple = ()
) -> Any:
    """Return ``value`` with every reference substituted; unset variables without default are problems."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, file, problems, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, file, problems, (*path, i)) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        if name in env:  # set but empty: an explicit empty value (e.g. a blank password)
            return ""
        problems.append(
            ConfigProblem(
                file,
                key_path(path),
                f"environment variable {name} is not set",
                f"export {name}=..., add it to .env, or write ${{{name}:-default}}",
            )
        )
        return match.group(0)

    whole = _REFERENCE.fullmatch(value)
    result = _REFERENCE.sub(substitute, value)
    # A value that is exactly one reference to a number keeps YAML's typing ("${PORT}" -> 3306).
    if whole and result.strip().lstrip("-").isdigit():
        return int(result)
    return result
