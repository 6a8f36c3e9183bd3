"""Progress of a run: a live line per table on a terminal, plain log lines otherwise (CI, Airflow)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from types import TracebackType

import click
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from sync_platform.cli import output
from sync_platform.configuration import TableSpec
from sync_platform.orchestration.launch import RunOutcome


class RunProgress:
    """Receives the engine's messages per table (from the run's event log) and shows them."""

    def __init__(self, specs: Sequence[TableSpec], *, quiet: bool = False):
        self.quiet = quiet
        self.live = output.is_terminal() and not quiet
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        if self.live:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.fields[table]}", style="bold"),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=output.console,
                transient=False,
            )
            for spec in specs:
                self._tasks[spec.identity] = self._progress.add_task("waiting", table=spec.identity, total=None)

    def __enter__(self) -> RunProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, spec: TableSpec, message: str) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.update(self._tasks[spec.identity], description=message)
            elif not self.quiet:
                click.echo(f"{dt.datetime.now():%H:%M:%S} {message}", err=True)

    def finish(self, outcome: RunOutcome) -> None:
        """Stop the spinners with each table's final state."""
        if self._progress is None:
            return
        for table in outcome.tables:
            task = self._tasks[table.spec.identity]
            done = "done" if table.status == "success" else table.status
            self._progress.update(task, description=done, total=1, completed=1)
