"""Table syncs started from the command line, as Dagster runs in the persistent instance.

The CLI does not call the engine itself: it executes the ``sync_tables`` job for the selected assets
in this process against the instance under ``DAGSTER_HOME``. A CLI run is therefore a run in the UI,
reads and moves the same watermarks as schedules and ``dagster asset materialize``, honours the
source pools and the per-table lock, and its results are read back from the run's events.

The run executes in a child process (:mod:`run_worker`) so that it can be stopped cleanly: a run whose
steps cannot start (a pool with no free slot) would wait for ever; a watchdog gives up after
``wait_timeout`` seconds without a running step, ends the child and records the run as canceled with
what it was waiting for.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import dagster as dg

from sync_platform.configuration.project import Pipeline, Project, TableSpec
from sync_platform.errors import INTERRUPTED, Classification, RunBlocked, classify
from sync_platform.orchestration import watermarks
from sync_platform.orchestration.assets import DEFAULT_RETRY_SCHEDULE
from sync_platform.orchestration.automation import PIPELINE_TAG, TABLES_JOB, TRIGGER_TAG
from sync_platform.orchestration.checks import sync_check_keys
from sync_platform.orchestration.factory import build_definitions, project_tables
from sync_platform.orchestration.initial_load import (
    FINISH_OP,
    PLAN_OP,
    RANGE_OP,
    initial_load_job_name,
    op_name,
    table_of_run,
)
from sync_platform.orchestration.keys import TableKeys, group_name
from sync_platform.orchestration.run_worker import RunWorker, die_like

DEFAULT_WAIT_TIMEOUT = 600.0  # longer than the retry schedule's longest back-off (120 s)
_POLL_SECONDS = 0.5
_STEP_STARTED = {"STEP_START", "STEP_RESTARTED"}
_INTERRUPTS = {"DagsterExecutionInterruptedError", "KeyboardInterrupt"}  # how Dagster reports a step it interrupted
_RUN_ENDED = {"PIPELINE_SUCCESS", "PIPELINE_FAILURE", "PIPELINE_CANCELED"}  # event type values of RUN_SUCCESS, …
# A step waiting for its retry is not blocked: it is still the run's (its retry policy bounds the wait).
_STEP_ENDED = {"STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"}
_DURATION_ENDS = _STEP_ENDED | {"STEP_UP_FOR_RETRY"}
PID_TAG = "sync_platform/pid"
HOST_TAG = "sync_platform/host"
_LIVE = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]

Progress = Callable[[TableSpec, str], None]


class RunBlockedError(RunBlocked):
    """No step of the run could start within the wait timeout; the run was interrupted."""


@dataclass
class TableOutcome:
    """What one table's part of a run did, read from the run's events."""

    spec: TableSpec
    status: str = "skipped"  # success | failed | skipped (not reached)
    rows_extracted: int = 0
    rows_loaded: int = 0
    files: int = 0
    bytes: int = 0
    null_cursor_rows: int = 0
    null_cursor_policy: str | None = None
    null_cursor_loaded: int = 0
    warnings: list[str] = field(default_factory=list)
    zero_dates: int = 0
    target_rows: int | None = None
    target_rows_estimate: int | None = None  # a large PostgreSQL target is not counted every run
    extract_watermark: str | None = None
    load_watermark: str | None = None
    schema_changes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    error_kind: Classification | None = None  # the failure's classification (sync_platform.errors), for exit codes
    finished_at: dt.datetime | None = None
    checks: dict[str, bool] = field(default_factory=dict)  # check name → passed
    check_errors: dict[str, str] = field(default_factory=dict)  # failed ERROR checks: name → what they found
    # check name → what it covered and cost (scope, window, seconds, rows counted), from its metadata
    check_details: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class RunOutcome:
    run_id: str
    tables: list[TableOutcome]
    seconds: float
    blocked: str | None = None  # why the run was interrupted by the watchdog
    marks: dict[str, float] = field(default_factory=dict)  # phase → when it ended (epoch seconds)

    @property
    def failed(self) -> list[TableOutcome]:
        return [t for t in self.tables if t.status != "success"]


def with_tables(project: Project, specs: Sequence[TableSpec]) -> Project:
    """The project with every spec in its pipeline: tables of open (v1.0.0 ``default``) and ad-hoc
    pipelines are not in the configuration files, but a run needs their assets."""
    pipelines = dict(project.pipelines)
    for spec in specs:
        pipeline = pipelines[spec.pipeline]
        if pipeline.tables.get(spec.name) != spec:
            pipelines[spec.pipeline] = replace(pipeline, tables={**pipeline.tables, spec.name: spec})
    return replace(project, pipelines=pipelines)


def only_tables(project: Project, specs: Sequence[TableSpec]) -> Project:
    """The project cut down to ``specs`` (their pipelines, with only these tables and the tables sharing
    their warehouse tables): a run builds the definitions it executes, and building every table's assets
    cost seconds in large configurations."""
    wanted: dict[str, dict[str, TableSpec]] = {}
    for spec in specs:
        wanted.setdefault(spec.pipeline, {})[spec.name] = spec
        for other in project.sharing(spec):  # the checks of a shared warehouse table read every source loading it
            wanted.setdefault(other.pipeline, {}).setdefault(other.name, other)
    return replace(
        project, pipelines={name: replace(project.pipelines[name], tables=tables) for name, tables in wanted.items()}
    )


def with_pipeline(project: Project, pipeline: Pipeline) -> Project:
    """The project with one more (ad-hoc) pipeline."""
    return replace(project, pipelines={**project.pipelines, pipeline.name: pipeline})


def run_tables(
    project: Project,
    specs: Sequence[TableSpec],
    *,
    instance: dg.DagsterInstance,
    stage: bool = True,
    load: bool = True,
    limit: int | None = None,
    max_chunks: int | None = None,
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    trigger: str = "cli",
    progress: Progress | None = None,
    retries: int | None = None,
) -> RunOutcome:
    """Sync ``specs`` in one Dagster run (tables one after another) and report each table's outcome.

    ``stage`` / ``load`` select the staging and warehouse assets (the older ``--backup-only`` and
    ``--redshift-only``); ``limit`` / ``max_chunks`` cap the extract as the older tool did.
    ``retries`` replaces the ops' retry count for transient errors (0: fail at the first one).
    """
    if not stage and not load:
        raise ValueError("a run must stage, load, or both")
    project = with_tables(project, specs)
    schedule = DEFAULT_RETRY_SCHEDULE if retries is None else replace(DEFAULT_RETRY_SCHEDULE, retries=retries)
    project_tables(project, only=specs)  # one writer per source and warehouse table, judged over the configuration
    definitions = build_definitions(only_tables(project, specs), retry_schedule=schedule)
    job = definitions.resolve_job_def(TABLES_JOB)
    marks = {"definitions": time.time()}
    keys = [TableKeys.of(spec) for spec in specs]
    selection = [k for t in keys for k in ((t.staging,) if stage else ()) + ((t.warehouse,) if load else ())]
    op_config = {"limit": limit, "max_chunks": max_chunks}
    run_config: dict[str, Any] = {
        "ops": {t.op: {"config": op_config} for t in keys},
        # The CLI shows its own progress and summary; Dagster's console logger would repeat every event.
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }
    pipelines = sorted({group_name(spec.pipeline) for spec in specs})
    tags = {
        TRIGGER_TAG: trigger,
        PIPELINE_TAG: pipelines[0] if len(pipelines) == 1 else "several",
        PID_TAG: str(os.getpid()),
        HOST_TAG: socket.gethostname(),
    }
    end_runs_of_dead_processes(instance)
    marks["stale_runs"] = time.time()
    run_id = str(uuid.uuid4())

    # The sync op's own checks only (see checks.sync_check_keys).
    checks_run = {key for t in keys for key in sync_check_keys(t)} if load else set()
    subset = job.get_subset(asset_selection=set(selection), asset_check_selection=checks_run)

    def execute() -> None:  # in the run worker; results are read back from the run's events, as the UI shows them
        subset.execute_in_process(
            run_config=run_config,
            instance=instance,
            run_id=run_id,
            tags=tags,
            raise_on_error=False,
        )

    # Create the run's event storage before the fork: the worker writes it while the watchdog reads it,
    # and two processes creating one SQLite file at once can each stamp its schema (a broken run log).
    instance.get_records_for_run(run_id, limit=1)
    instance.event_log_storage.get_concurrency_keys()
    worker = RunWorker(execute)
    watchdog = _Watchdog(instance, run_id, keys, wait_timeout, progress, on_blocked=worker.kill)
    started = time.monotonic()
    worker.start()
    watchdog.start()  # after the fork: the child inherits no thread
    try:
        exit_code = worker.wait()
    finally:
        watchdog.stop()
    if watchdog.blocked is not None:
        _cancel_blocked_run(instance, run_id, watchdog.blocked)
    elif exit_code < 0:
        die_like(exit_code)
    seconds = time.monotonic() - started
    marks["run"] = time.time()
    outcomes = [_outcome(watchdog.records, t) for t in keys]
    if watchdog.blocked is not None:
        for outcome in outcomes:
            if outcome.status == "skipped":
                outcome.status, outcome.error = "failed", watchdog.blocked
                outcome.error_kind = classify(RunBlockedError(watchdog.blocked))
    return RunOutcome(run_id=run_id, tables=outcomes, seconds=seconds, blocked=watchdog.blocked, marks=marks)


@dataclass
class InitialLoadOutcome:
    """What a run of the ``initial_load_<pipeline>`` job did, read from its events."""

    run_id: str
    spec: TableSpec
    status: str = "failed"  # success | failed
    plan_id: str | None = None
    ranges: list[dict[str, Any]] = field(default_factory=list)  # load_range outputs, by range
    failed_ranges: list[str] = field(default_factory=list)  # their step keys
    rows: int = 0  # rows the ranges hold
    watermark: str | None = None  # where incremental syncs continue (finished loads)
    error: str | None = None
    error_kind: Classification | None = None
    seconds: float = 0.0
    blocked: str | None = None

    @property
    def rows_extracted(self) -> int:
        return sum(int(r.get("rows_extracted", 0)) for r in self.ranges)


def run_initial_load(
    project: Project,
    spec: TableSpec,
    *,
    instance: dg.DagsterInstance,
    ranges: int | None = None,
    new: bool = False,
    batch_max_rows: int | None = None,
    workers: int = 1,
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    progress: Progress | None = None,
    retries: int | None = None,
) -> InitialLoadOutcome:
    """Run the pipeline's ``initial_load`` job for ``spec`` in this process (ranges one after another).

    The same job the UI launches; there its executor may run the ranges in parallel processes or pods.
    """
    project = with_tables(project, [spec])
    schedule = DEFAULT_RETRY_SCHEDULE if retries is None else replace(DEFAULT_RETRY_SCHEDULE, retries=retries)
    project_tables(project)
    definitions = build_definitions(only_tables(project, [spec]), retry_schedule=schedule)
    job = definitions.resolve_job_def(initial_load_job_name(spec.pipeline))
    config: dict[str, Any] = {"table": spec.name, "ranges": ranges, "new": new, "workers": workers}
    if batch_max_rows is not None:
        config["batch_max_rows"] = batch_max_rows
    run_config: dict[str, Any] = {
        "ops": {op_name(spec.pipeline, PLAN_OP): {"config": config}},
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }
    tags = {
        TRIGGER_TAG: "cli",
        PIPELINE_TAG: group_name(spec.pipeline),
        PID_TAG: str(os.getpid()),
        HOST_TAG: socket.gethostname(),
        **table_of_run(spec),
    }
    end_runs_of_dead_processes(instance)
    run_id = str(uuid.uuid4())

    def execute() -> None:
        job.execute_in_process(run_config=run_config, instance=instance, run_id=run_id, tags=tags, raise_on_error=False)

    instance.get_records_for_run(run_id, limit=1)
    instance.event_log_storage.get_concurrency_keys()
    ops = {op_name(spec.pipeline, op): op for op in (PLAN_OP, RANGE_OP, FINISH_OP)}
    keys = [replace(TableKeys.of(spec), op=name) for name in ops]
    worker = RunWorker(execute)
    watchdog = _Watchdog(instance, run_id, keys, wait_timeout, progress, on_blocked=worker.kill)
    started = time.monotonic()
    worker.start()
    watchdog.start()
    try:
        exit_code = worker.wait()
    finally:
        watchdog.stop()
    if watchdog.blocked is not None:
        _cancel_blocked_run(instance, run_id, watchdog.blocked)
    elif exit_code < 0:
        die_like(exit_code)
    outcome = InitialLoadOutcome(run_id=run_id, spec=spec, seconds=time.monotonic() - started)
    for record in watchdog.records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        step, kind = event.step_key or "", event.event_type_value
        op = ops.get(step.split("[", 1)[0], "")
        if kind == "STEP_OUTPUT" and op in (RANGE_OP, FINISH_OP):
            metadata = {k: v.value for k, v in event.event_specific_data.metadata.items()}
            if op == RANGE_OP:
                outcome.ranges += list(metadata.get("ranges") or [])
                outcome.plan_id = str(metadata.get("plan"))
            else:
                outcome.status, outcome.rows = "success", int(metadata.get("rows", 0))
                outcome.plan_id = str(metadata.get("plan"))
        elif kind == "ASSET_MATERIALIZATION":
            text = event.event_specific_data.materialization.metadata.get(watermarks.WATERMARK_TEXT)
            outcome.watermark = text.value if text is not None else outcome.watermark
        elif kind == "STEP_FAILURE":
            if op == RANGE_OP:
                outcome.failed_ranges.append(step)
            if outcome.error is None:
                outcome.error, outcome.error_kind = _step_failure(event)
    outcome.ranges.sort(key=lambda r: int(r.get("index", 0)))
    if watchdog.blocked is not None:
        outcome.status, outcome.blocked, outcome.error = "failed", watchdog.blocked, watchdog.blocked
        outcome.error_kind = classify(RunBlockedError(watchdog.blocked))
    elif outcome.status != "success" and outcome.error is None:
        outcome.error = "the run ended before the load finished"
    return outcome


def _cancel_blocked_run(instance: dg.DagsterInstance, run_id: str, reason: str) -> None:
    """Record the run the watchdog stopped as canceled, with what it was waiting for, and free its pool claims."""
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.report_run_canceled(run, f"sync-platform {reason}")
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def end_runs_of_dead_processes(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the CLI runs of this host whose process is gone, and free their pool slots.

    An in-process run killed hard (SIGKILL, OOM, a lost machine) stays STARTED in the instance and
    keeps its claims on the source pool: after a few, every run of that source would wait for ever.
    Only runs that carry this host's name and a pid that no longer exists are touched.
    """
    host = socket.gethostname()
    ended: list[str] = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=_LIVE, tags={HOST_TAG: host})):
        pid = run.tags.get(PID_TAG, "")
        if not pid.isdigit() or process_alive(int(pid)):
            continue
        instance.report_run_failed(run, f"the process that ran it ({host}, pid {pid}) is gone; ended by a later run")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        ended.append(run.run_id)
    return ended


def process_alive(pid: int) -> bool:
    """Whether a process of this host with that pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _outcome(records: Sequence[Any], keys: TableKeys) -> TableOutcome:
    outcome = TableOutcome(spec=keys.spec)
    step_seconds = 0.0
    step_started: float | None = None
    for record in records:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event is None or event.step_key != keys.op:
            continue
        kind = event.event_type_value
        if kind == "STEP_START":
            step_started = entry.timestamp
        elif kind in _DURATION_ENDS and step_started is not None:
            step_seconds += entry.timestamp - step_started
            step_started = None
        if kind == "STEP_SUCCESS":
            outcome.status = "success"
            outcome.finished_at = dt.datetime.fromtimestamp(entry.timestamp, dt.UTC)
        elif kind == "STEP_FAILURE":
            outcome.status = "failed"
            outcome.finished_at = dt.datetime.fromtimestamp(entry.timestamp, dt.UTC)
            outcome.error, outcome.error_kind = _step_failure(event)
        elif kind == "ASSET_MATERIALIZATION":
            _read_materialization(outcome, keys, event.event_specific_data.materialization)
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            outcome.checks[evaluation.check_name] = evaluation.passed
            outcome.check_details[evaluation.check_name] = _check_details(evaluation)
            if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
                outcome.check_errors[evaluation.check_name] = evaluation.description or "failed"
    outcome.seconds = step_seconds
    return outcome


_CHECK_DETAILS = (
    "scope",
    "window",
    "seconds",
    "source_seconds",
    "target_seconds",
    "source_rows",
    "target_rows",
    "duplicated_keys",
    "reason",
)


def _check_details(evaluation: Any) -> dict[str, Any]:
    """What a check covered and cost, from its metadata (the keys of ``_CHECK_DETAILS`` it has)."""
    metadata = evaluation.metadata or {}
    details: dict[str, Any] = {"passed": evaluation.passed}
    for key in _CHECK_DETAILS:
        if key in metadata:
            details[key] = metadata[key].value
    return details


def _value(metadata: Mapping[str, Any], key: str, default: Any = None) -> Any:
    entry = metadata.get(key)
    return default if entry is None else entry.value


def _read_materialization(outcome: TableOutcome, keys: TableKeys, materialization: dg.AssetMaterialization) -> None:
    metadata = materialization.metadata
    if materialization.asset_key == keys.staging:
        outcome.rows_extracted = _value(metadata, watermarks.ROWS, 0)
        outcome.files = _value(metadata, watermarks.FILES, 0)
        outcome.bytes = _value(metadata, watermarks.BYTES, 0)
        outcome.null_cursor_rows = _value(metadata, watermarks.NULL_CURSOR_ROWS, 0)
        outcome.null_cursor_policy = _value(metadata, watermarks.NULL_CURSOR_POLICY)
        outcome.null_cursor_loaded = _value(metadata, watermarks.NULL_CURSOR_LOADED, 0)
        outcome.warnings = list(_value(metadata, watermarks.WARNINGS, []) or [])
        outcome.zero_dates = _value(metadata, watermarks.ZERO_DATE_COUNT, 0)
        outcome.extract_watermark = _value(metadata, watermarks.WATERMARK_TEXT)
    elif materialization.asset_key == keys.warehouse:
        outcome.rows_loaded = _value(metadata, watermarks.ROWS, 0)
        outcome.target_rows = _value(metadata, watermarks.TARGET_ROWS)
        outcome.target_rows_estimate = _value(metadata, watermarks.TARGET_ROWS_ESTIMATE)
        outcome.load_watermark = _value(metadata, watermarks.WATERMARK_TEXT)
        outcome.schema_changes = list(_value(metadata, watermarks.SCHEMA_CHANGES, []) or [])


class _Watchdog(threading.Thread):
    """Relays the run's progress messages and gives up on a run that cannot start any step.

    The in-process executor waits for a pool slot in a loop that never looks at signals, so giving up
    means ``on_blocked``: the run worker (the child process executing the run) is killed, and the run
    is recorded as canceled with what it was waiting for (see :mod:`run_worker`).
    """

    def __init__(
        self,
        instance: dg.DagsterInstance,
        run_id: str,
        keys: Sequence[TableKeys],
        wait_timeout: float,
        progress: Progress | None,
        *,
        on_blocked: Callable[[], None],
    ):
        super().__init__(name="sync-platform-watchdog", daemon=True)
        self.instance, self.run_id, self.wait_timeout, self.progress = instance, run_id, wait_timeout, progress
        self.by_op = {k.op: k.spec for k in keys}
        self.blocked: str | None = None
        self._halt = threading.Event()
        self._running: set[str] = set()
        self._waiting_since = time.monotonic()
        self._last_wait_reason = ""
        self._on_blocked = on_blocked
        self._run_ended = False  # the run reached its end: nothing to give up on
        self._cursor: str | None = None
        self.records: list[Any] = []  # every event of the run, in order, once stopped

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
        while self._poll():  # the run's last moments
            pass

    def run(self) -> None:
        while not self._halt.wait(_POLL_SECONDS):
            try:
                self._poll()
            except Exception:  # the storage may be mid-write; the next poll reads it
                continue
            if self._run_ended:
                return
            if self._running or not self.records:  # a step runs, or the worker has not started the run yet
                self._waiting_since = time.monotonic()
            elif time.monotonic() - self._waiting_since > self.wait_timeout:
                reason = self._last_wait_reason or "no step started"
                self.blocked = (
                    f"gave up after {self.wait_timeout:g} s without a running step ({reason}); "
                    "other runs hold the source pool's slots or the table — see the Dagster UI "
                    "(Deployment → Concurrency) or raise --wait-timeout"
                )
                self._on_blocked()
                return

    def _poll(self) -> bool:
        """Read the run's next events; True when more are waiting."""
        connection = self.instance.get_records_for_run(self.run_id, cursor=self._cursor, limit=1000)
        self._cursor = connection.cursor
        self.records.extend(connection.records)
        for record in connection.records:
            entry = record.event_log_entry
            event = entry.dagster_event
            step = entry.step_key
            if event is not None:
                kind = event.event_type_value
                if kind in _RUN_ENDED:
                    self._run_ended = True
                if kind in _STEP_STARTED:
                    self._running.add(step)
                elif kind in _STEP_ENDED:
                    self._running.discard(step)
                if kind == "ENGINE_EVENT" and "pool" in (event.message or "").lower():
                    self._last_wait_reason = event.message or ""
                continue
            spec = self.by_op.get(step or "") or self.by_op.get((step or "").split("[", 1)[0])  # mapped: op[key]
            if spec is not None and self.progress is not None and entry.user_message:
                self.progress(spec, entry.user_message)
        return connection.has_more


def _step_failure(event: Any) -> tuple[str, Classification | None]:
    """A failed step's message (the op's own description first) and how the product classifies it."""
    error = event.step_failure_data.error
    user = event.step_failure_data.user_failure_data
    message = (user.description if user and user.description else None) or (
        error.message.strip() if error else "failed"
    )
    metadata = {key: value.value for key, value in (user.metadata if user else {}).items()}
    kind = Classification.from_metadata(metadata)
    if kind is None and error is not None and error.cls_name in _INTERRUPTS:
        kind = INTERRUPTED
    return message, kind
