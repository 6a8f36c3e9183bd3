"""Terminal output: rich tables on a terminal, plain aligned text otherwise (logs, CI, Airflow)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

import click
from rich.console import Console
from rich.table import Table

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
