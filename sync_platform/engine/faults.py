"""Fault-injection points for the reliability suite (inert unless an environment variable names them).

The engine calls :func:`checkpoint` at the boundaries where a crash matters. In production the
variables below are unset and a checkpoint costs one dictionary lookup.

- ``SYNC_PLATFORM_KILL_AT=NAME[:N]``: the process SIGKILLs itself the N-th time (default 1st)
  it reaches checkpoint NAME — no cleanup, no ``finally``, exactly like ``kill -9``.
- ``SYNC_PLATFORM_PAUSE_AT=NAME[:N]`` with ``SYNC_PLATFORM_FAULT_DIR=DIR``: at the N-th hit the
  process writes ``DIR/NAME.reached`` and waits (up to 120 s) until ``DIR/NAME.release`` exists,
  so a test can break a server while the sync is at that exact point and then let it continue.

Checkpoint names:

- ``extract.page``: a keyset page was read from MySQL (``pages.PageReader``); mid-extract.
- ``stage.before_manifest``: a batch's parquet parts (and COPY manifest) are uploaded, its
  ``_manifest.json`` is not written yet (``stage.BatchStager.finish``).
- ``stage.after_manifest``: the batch's ``_manifest.json`` is written (committed) and nothing
  downstream (extract watermark, loader) has seen it yet.
- ``load.copy``: rows are being streamed into the warehouse by ``COPY … FROM STDIN``, once per
  chunk (``load._copy_chunks``); on Redshift, once per batch just before its ``COPY … FROM 's3://…'``.
  The stage's transaction is open; the target is not locked yet.
- ``load.before_commit``: a batch's load transaction holds its rows and ledger row, not yet
  committed (``load.TableLoader._run``, before the load phase's COMMIT).
- ``load.after_commit``: a batch's warehouse transaction (rows + ledger row) has committed
  (needs the call in ``load.TableLoader._load_batch``; see the reliability README).
- ``reconcile.staged``: a reconcile repair batch is staged (manifested) and not loaded yet.
- ``checks.start``: a sync op loaded (or was asked only for its checks) and is about to run the
  table's asset checks (``orchestration.assets``); the warehouse holds the run's rows.
- ``sync.after_load``: the whole sync returned; the caller has not stored the new watermark
  (the orchestrator's metadata) yet. Called by callers that store watermarks.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

KILL_VARIABLE = "SYNC_PLATFORM_KILL_AT"
PAUSE_VARIABLE = "SYNC_PLATFORM_PAUSE_AT"
FAULT_DIR_VARIABLE = "SYNC_PLATFORM_FAULT_DIR"
PAUSE_TIMEOUT_SECONDS = 120.0

CHECKPOINTS = (
    "extract.page",
    "stage.before_manifest",
    "stage.after_manifest",
    "load.copy",
    "load.before_commit",
    "load.after_commit",
    "sync.after_load",
    "checks.start",
    "reconcile.staged",
)

_hits: dict[str, int] = {}


def _wanted(variable: str, name: str) -> bool:
    """True when ``variable`` is ``name`` or ``name:N`` and this is the N-th hit of ``name``."""
    value = os.environ.get(variable)
    if not value:
        return False
    wanted, _, nth = value.partition(":")
    if wanted != name:
        return False
    return _hits[name] == (int(nth) if nth else 1)


def checkpoint(name: str) -> None:
    """A named boundary: kill or pause the process here when the environment asks for it."""
    if not os.environ.get(KILL_VARIABLE) and not os.environ.get(PAUSE_VARIABLE):
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _wanted(KILL_VARIABLE, name):
        os.kill(os.getpid(), signal.SIGKILL)
    if _wanted(PAUSE_VARIABLE, name):
        directory = Path(os.environ.get(FAULT_DIR_VARIABLE) or ".")
        (directory / f"{name}.reached").write_text(str(os.getpid()))
        release = directory / f"{name}.release"
        deadline = time.monotonic() + PAUSE_TIMEOUT_SECONDS
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
