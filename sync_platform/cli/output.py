"""Terminal output: rich tables on a terminal, plain aligned text otherwise (logs, CI, Airflow)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

import click
from rich.console import Console
from rich.table import Table

from sync_platform.configuration.project import TableSpec

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def is_terminal() -> bool:
    return sys.stdout.isatty()


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    rows = [["" if cell is None else str(cell) for cell in row] for row in rows]
    if is_terminal():
        rich_table = Table(title=title, show_lines=False)
        for column in columns:
            rich_table.add_column(column)
        for row in rows:
            rich_table.add_row(*row)
        console.print(rich_table)
        return
    if title:
        click.echo(title)
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def ok(text: str) -> None:
    click.echo(("✔ " if is_terminal() else "OK ") + text)


def fail(text: str) -> None:
    click.echo(("✘ " if is_terminal() else "FAIL ") + text, err=True)


def mask(value: object) -> str:
    """What the CLI prints in place of any secret."""
    return "********" if value not in (None, "") else "(not set)"


def confirm(question: str, *, flag: str = "--yes") -> bool:
    """Ask ``question`` on a terminal; without one (cron, CI, a pipe) refuse with exit 1 and say which flag answers it.

    Reading an answer from a closed stdin would look like Ctrl-C (exit 130), which a scheduler reads as
    "killed", not as "needs a flag".
    """
    if not sys.stdin.isatty():
        click.echo(f"{question}\nThis needs a confirmation and there is no terminal to ask on: pass {flag}.", err=True)
        raise SystemExit(1)  # the usage-error code (ExitCode.CONFIG)
    return click.confirm(question)


def failure_line(spec: TableSpec, error: str) -> str:
    """``<table>: <what failed>``, naming the table once even when the engine's message starts with it."""
    for name in (spec.identity, spec.name):
        if error.startswith(f"{name}: "):
            error = error[len(name) + 2 :]
            break
    return f"{spec.identity}: {error}"
