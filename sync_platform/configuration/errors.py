"""Configuration problems: each names the file, the key, what is wrong and what would be right."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sync_platform.errors import ConfigurationError


@dataclass(frozen=True)
class ConfigProblem:
    file: Path | None  # None when the value came from environment variables
    key: str  # dotted key path, e.g. tables."shop.orders".cdc_strategy
    message: str
    hint: str = ""
    # or "warning": an unknown key that is not a near-miss (--strict makes it an error); or "info": worth knowing,
    # never an error (a table another pipeline lists too)
    severity: str = "error"

    @property
    def on_command_line(self) -> bool:
        """A problem with a command-line argument (``-t x``, ``--pipeline``), not with a file or variable."""
        return self.file is None and self.key.startswith("-")

    def __str__(self) -> str:
        where = str(self.file) if self.file else "command line" if self.on_command_line else "environment"
        label = {"warning": "warning: ", "info": "note: "}.get(self.severity, "")
        text = f"{label}{where}: {self.key or '(top level)'}: {self.message}"
        return f"{text}\n    fix: {self.hint}" if self.hint else text


class ConfigError(ConfigurationError):
    """Every problem found, reported at once."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = list(problems)
        count = len(self.problems)
        what = "command-line" if self.problems and all(p.on_command_line for p in self.problems) else "configuration"
        header = f"{count} {what} problem{'s' if count != 1 else ''}:"
        super().__init__("\n".join([header, *(f"- {p}" for p in self.problems)]))


def key_path(parts: tuple[str | int, ...] | list[str | int]) -> str:
    """Render a key path; parts with dots or spaces are quoted so the path stays unambiguous."""
    rendered: list[str] = []
    for part in parts:
        text = str(part)
        if isinstance(part, int):
            rendered.append(f"[{text}]")
            continue
        needs_quotes = any(c in text for c in '. "') or not text
        rendered.append(f'"{text}"' if needs_quotes else text)
    out = ""
    for piece in rendered:
        out += piece if piece.startswith("[") or not out else "." + piece
    return out
