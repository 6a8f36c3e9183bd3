"""The CLI executes its Dagster run in a child process, so the run can be stopped cleanly from outside.

Dagster's in-process executor waits for pool slots in a loop that never looks at interrupts, so a run
blocked on its pool could only be ended by killing whatever executes it. Executing it in a forked
child (which shares the definitions already built, so it costs no start-up time) lets the CLI do that
without touching the interpreter's internals: the parent watches the run's events, and when it must
give up it kills the child and records the run as canceled with the reason, freeing its pool claims.

The child is tied to the CLI in both directions:
- if the CLI dies (SIGKILL, a lost terminal), the child notices within half a second and kills itself;
- if the child is killed (OOM, a fault injected by the reliability suite), the CLI dies of the same signal,
  as one process executing the run would have;
- SIGTERM to the CLI (a scheduler's timeout) reaches the child as the interrupt Dagster handles: the run
  ends as canceled instead of being cut off.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

_PARENT_CHECK_SECONDS = 0.5


class RunWorker:
    """Runs ``work`` in a forked child; :meth:`wait` returns the child's exit code (negative: a signal)."""

    def __init__(self, work: Callable[[], Any]):
        self._work = work
        self._process: multiprocessing.process.BaseProcess | None = None

    def start(self) -> None:
        context = multiprocessing.get_context("fork")  # the definitions are built: the child inherits them
        self._process = context.Process(target=_child_main, args=(self._work, os.getpid()), name="sync-platform-run")
        self._process.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def wait(self) -> int:
        """Wait for the child; SIGTERM to this process meanwhile interrupts the run (Dagster cancels it)."""
        assert self._process is not None
        forward = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, self._interrupt_child) if forward else None
        interrupted = False
        try:
            while True:
                try:
                    self._process.join()
                    break
                except KeyboardInterrupt:  # Ctrl-C: the child cancels the run, as Dagster cancels runs
                    if interrupted:  # a second Ctrl-C: stop waiting
                        raise
                    interrupted = True
                    self._interrupt_child()
        finally:
            if forward:
                signal.signal(signal.SIGTERM, previous)
        return self._process.exitcode if self._process.exitcode is not None else 1

    def kill(self) -> None:
        """End the child now (it is only waiting: nothing of the run's work is lost)."""
        if self._process is not None and self._process.is_alive():
            with suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGKILL)

    def _interrupt_child(self, *_: object) -> None:
        if self._process is not None and self._process.is_alive():
            with suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGINT)


def die_like(exit_code: int) -> None:
    """The child was killed by a signal: the CLI ends the same way (exit -9 stays exit -9)."""
    if exit_code < 0:
        os.kill(os.getpid(), -exit_code)
        time.sleep(5)  # a handled signal (SIGINT, SIGTERM) returns here; the caller then exits normally


def _child_main(work: Callable[[], Any], parent: int) -> None:
    watcher = threading.Thread(target=_die_with_parent, args=(parent,), name="parent-watch", daemon=True)
    watcher.start()
    work()


def _die_with_parent(parent: int) -> None:
    while True:
        time.sleep(_PARENT_CHECK_SECONDS)
        if os.getppid() != parent:  # re-parented: the CLI is gone, and so is whoever reads this run
            os.kill(os.getpid(), signal.SIGKILL)
