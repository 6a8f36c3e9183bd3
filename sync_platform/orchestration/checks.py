"""Asset checks of a warehouse table: rows reconcile with the source, keys are unique, data is fresh.

The row-count and key checks belong to the table's sync op: right after a load they cover the window
the run loaded (O(rows changed)); run alone from the UI, everything synced so far. Their full-table
versions (``*_full``) run in the pipeline's reconcile job. The queries are in
:mod:`sync_platform.engine.reconcile.counts`. Freshness checks use
Dagster's last-update checks with each table's ``freshness.max_lag``, run by their own sensor.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import dagster as dg

from sync_platform.configuration.project import TableSpec
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.reconcile.counts import (
    ENFORCED,
    WHOLE,
    KeyDuplicates,
    NotComparable,
    RowCounts,
    SharedMember,
    Window,
    compare_row_counts,
    compare_shared_row_counts,
    duplicate_keys,
    window_duplicate_keys,
    window_row_counts,
)
from sync_platform.engine.recovery import null_cursor_counts
from sync_platform.engine.shape import TableShape
from sync_platform.engine.watermark import Watermark
from sync_platform.orchestration.keys import TableKeys

ROW_COUNT_CHECK = "row_count_matches_source"  # per run: the window the run loaded
UNIQUE_KEY_CHECK = "primary_key_unique"
FULL_ROW_COUNT_CHECK = "row_count_matches_source_full"  # the whole synced window (reconcile job)
FULL_UNIQUE_KEY_CHECK = "primary_key_unique_full"
SCOPE = "scope"  # metadata: what a count or key check covered (see counts.WINDOW / SYNCED / WHOLE)
SECONDS = "seconds"  # metadata: what the check's queries took
NULL_CURSOR_CHECK = "null_cursor_rows"
FRESHNESS_SENSOR = "sync_platform_freshness_checks"


def check_specs(keys: TableKeys) -> list[dg.AssetCheckSpec]:
    """The reconciliation checks of one table, attached to its warehouse asset and run by its sync op."""
    return [
        dg.AssetCheckSpec(
            ROW_COUNT_CHECK,
            asset=keys.warehouse,
            additional_deps=[keys.source],
            description=(
                "After a load: source and target hold the same number of rows in the window the run loaded "
                "(rows whose cursor position is after the start of its first batch and at or below the end of "
                "its last), so it costs what the run changed, not the table; the whole table for full syncs. "
                "Run alone (no load in the run): every row at or below the load watermark. Fewer rows in the "
                "target is an error (rows missing); more is a warning (deletes are not propagated). The whole "
                f"synced window is also counted by `{FULL_ROW_COUNT_CHECK}` in the reconcile job."
                + (
                    " The target is shared: it is compared, over everything synced so far, with the sum of every "
                    "source table loading it."
                    if keys.spec.shares_target
                    else ""
                )
            ),
            blocking=True,  # an ERROR fails the run (exit 4 from the CLI)
        ),
        dg.AssetCheckSpec(
            UNIQUE_KEY_CHECK,
            asset=keys.warehouse,
            description=(
                "No primary-key value occurs twice in the target (Redshift does not enforce keys). After a load: "
                "the keys of the rows the run loaded, every row with such a key counted; run alone: every key. "
                f"`{FULL_UNIQUE_KEY_CHECK}` checks every key in the reconcile job."
                + (" Whichever source table loaded it." if keys.spec.shares_target else "")
            ),
            blocking=True,
        ),
        dg.AssetCheckSpec(
            NULL_CURSOR_CHECK,
            asset=keys.warehouse,
            additional_deps=[keys.source],
            description=(
                "Rows whose cursor column is NULL (outside every incremental window): with null_cursor: load "
                "the target holds as many as the source; with report they are counted (a warning); with fail "
                "any such row is an error."
            ),
            blocking=True,
        ),
    ]


def sync_check_keys(keys: TableKeys) -> list[dg.AssetCheckKey]:
    """The checks a sync of the table runs (the sync op's own). A run that names only its assets gets every
    check of those assets from Dagster, the reconcile job's whole-table ones too: runs name these instead."""
    return [spec.key for spec in check_specs(keys)]


def full_check_specs(keys: TableKeys) -> list[dg.AssetCheckSpec]:
    """The full-table versions of the count and key checks (O(table)): run by the reconcile job, not a sync."""
    return [
        dg.AssetCheckSpec(
            FULL_ROW_COUNT_CHECK,
            asset=keys.warehouse,
            additional_deps=[keys.source],
            description=(
                "Source and target hold the same number of rows within everything synced so far (every row "
                "at or below the load watermark, above a manual `watermark set`); the whole table for full "
                "syncs. Reads the whole table on both sides."
            ),
        ),
        dg.AssetCheckSpec(
            FULL_UNIQUE_KEY_CHECK,
            asset=keys.warehouse,
            description="No primary-key value occurs twice anywhere in the target. Reads every key of the target.",
        ),
    ]


def row_count_result(
    keys: TableKeys, counts: RowCounts | NotComparable, check_name: str = ROW_COUNT_CHECK
) -> dg.AssetCheckResult:
    if isinstance(counts, NotComparable):
        return _not_comparable(keys, check_name, counts)
    passed = counts.difference == 0
    severity = dg.AssetCheckSeverity.WARN if counts.difference > 0 else dg.AssetCheckSeverity.ERROR
    if passed:
        description = f"{counts.source_rows:,} rows on both sides ({counts.window})"
    elif counts.difference < 0:
        description = f"{-counts.difference:,} rows missing from the target ({counts.window})"
        if keys.spec.shares_target:
            description += (
                "; rows of different sources sharing a primary-key value replace each other in the shared target"
            )
    else:
        description = f"the target has {counts.difference:,} rows more than the source ({counts.window})"
    return dg.AssetCheckResult(
        asset_key=keys.warehouse,
        check_name=check_name,
        passed=passed,
        severity=severity,
        description=description,
        metadata={
            "source_rows": counts.source_rows,
            "target_rows": counts.target_rows,
            "difference": counts.difference,
            "window": counts.window,
            SCOPE: counts.scope,
            SECONDS: round(counts.seconds, 3),
            "source_seconds": round(counts.source_seconds, 3),
            "target_seconds": round(counts.target_seconds, 3),
        },
    )


def unique_key_result(
    keys: TableKeys, found: KeyDuplicates | NotComparable, check_name: str = UNIQUE_KEY_CHECK
) -> dg.AssetCheckResult:
    if isinstance(found, NotComparable):
        return _not_comparable(keys, check_name, found)
    passed = found.duplicated_keys == 0
    key = ", ".join(found.key)
    where = {WHOLE: "", ENFORCED: " (a unique index of the target enforces it)"}.get(
        found.scope, f" among the keys of {found.window}"
    )
    return dg.AssetCheckResult(
        asset_key=keys.warehouse,
        check_name=check_name,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"({key}) is unique{where}"
            if passed
            else f"{found.duplicated_keys:,} values of ({key}) occur more than once ({found.extra_rows:,} extra "
            f"rows){where}"
        ),
        metadata={
            "key": key,
            "duplicated_keys": found.duplicated_keys,
            "extra_rows": found.extra_rows,
            "window": found.window,
            SCOPE: found.scope,
            SECONDS: round(found.seconds, 3),
        },
    )


def run_checks(
    registry: ConnectionRegistry,
    keys: TableKeys,
    wanted: set[str],
    shape: TableShape,
    window: Window | None,
    load_watermark: Callable[[], Watermark],
    floor: Callable[[], Watermark | None],
    shared: Callable[[], list[SharedMember]] | None = None,
) -> Iterator[dg.AssetCheckResult]:
    """The sync op's count and key checks: over ``window`` (the rows the run loaded) when the run loaded,
    in full (everything synced so far) when the checks run alone (``window`` None).

    ``shared``: the source tables loading the same warehouse table (this one first). The target's rows in
    a window are then every source's, each loaded up to its own watermark, so the count compares
    everything synced so far with the sum of the sources (O(table); README, several source tables).
    """
    spec = keys.spec
    if ROW_COUNT_CHECK in wanted:
        if shared is not None:
            counts = compare_shared_row_counts(registry, shared())
        elif window is not None:
            counts = window_row_counts(registry, spec, shape, window)
        else:
            counts = compare_row_counts(registry, spec, shape, load_watermark(), floor())
        yield row_count_result(keys, counts)
    if UNIQUE_KEY_CHECK in wanted:
        found = (
            window_duplicate_keys(registry, spec, shape, window)
            if window is not None
            else duplicate_keys(registry, spec, shape)
        )
        yield unique_key_result(keys, found)


def full_checks(
    registry: ConnectionRegistry,
    keys: TableKeys,
    wanted: set[str],
    shape: TableShape,
    load_watermark: Watermark,
    floor: Watermark | None,
    shared: list[SharedMember] | None = None,
) -> Iterator[dg.AssetCheckResult]:
    """The full-table count and key checks (reconcile job); ``shared`` as for :func:`run_checks`."""
    if FULL_ROW_COUNT_CHECK in wanted:
        if shared is not None:
            counts = compare_shared_row_counts(registry, shared)
        else:
            counts = compare_row_counts(registry, keys.spec, shape, load_watermark, floor)
        yield row_count_result(keys, counts, FULL_ROW_COUNT_CHECK)
    if FULL_UNIQUE_KEY_CHECK in wanted:
        yield unique_key_result(keys, duplicate_keys(registry, keys.spec, shape), FULL_UNIQUE_KEY_CHECK)


def null_cursor_result(
    registry: ConnectionRegistry,
    keys: TableKeys,
    shape: TableShape,
    others: Sequence[tuple[TableSpec, TableShape]] = (),
) -> dg.AssetCheckResult:
    """``others``: the other source tables loading the same warehouse table; their NULL-cursor rows count too."""
    counts = null_cursor_counts(registry, keys.spec, shape)
    for spec, other_shape in others:
        more = null_cursor_counts(registry, spec, other_shape)
        if counts is not None and more is not None and more.column == counts.column:
            counts = replace(counts, source_rows=counts.source_rows + more.source_rows)
    if counts is None:
        return _not_comparable(keys, NULL_CURSOR_CHECK, NotComparable("the strategy reads no cursor that can be NULL"))
    column, source, target = counts.column, counts.source_rows, counts.target_rows
    severity = dg.AssetCheckSeverity.ERROR
    if counts.policy == "load":
        passed = target >= source
        if target > source:
            severity = dg.AssetCheckSeverity.WARN
        description = f"{source:,} rows with a NULL {column} at the source, {target:,} in the target" + (
            "" if passed else f": {source - target:,} missing"
        )
    else:
        passed = source == 0
        severity = dg.AssetCheckSeverity.WARN if counts.policy == "report" else dg.AssetCheckSeverity.ERROR
        description = (
            f"no rows with a NULL {column}"
            if passed
            else f"{source:,} rows with a NULL {column} are not loaded (null_cursor: {counts.policy}); "
            f"give them a {column} value or set null_cursor: load"
        )
    return dg.AssetCheckResult(
        asset_key=keys.warehouse,
        check_name=NULL_CURSOR_CHECK,
        passed=passed,
        severity=severity,
        description=description,
        metadata={"column": column, "policy": counts.policy, "source_rows": source, "target_rows": target},
    )


def _not_comparable(keys: TableKeys, check: str, why: NotComparable) -> dg.AssetCheckResult:
    """A check that does not apply passes, and says plainly that it compared nothing."""
    return dg.AssetCheckResult(
        asset_key=keys.warehouse,
        check_name=check,
        passed=True,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"not applicable: {why.reason}",
        metadata={"applicable": False, "reason": why.reason},
    )


def freshness_checks(lags: Sequence[tuple[TableKeys, float]]) -> list[dg.AssetChecksDefinition]:
    """Last-update freshness checks on the warehouse assets, one definition per distinct ``max_lag``."""
    by_lag: dict[float, list[dg.AssetKey]] = defaultdict(list)
    for keys, lag in lags:
        by_lag[lag].append(keys.warehouse)
    checks: list[dg.AssetChecksDefinition] = []
    with warnings.catch_warnings():  # Dagster now also offers FreshnessPolicy; the issue asks for checks
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        for lag, assets in sorted(by_lag.items()):
            checks += dg.build_last_update_freshness_checks(assets=assets, lower_bound_delta=dt.timedelta(seconds=lag))
    return checks


def freshness_sensor(checks: Sequence[dg.AssetChecksDefinition]) -> dg.SensorDefinition:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return dg.build_sensor_for_freshness_checks(
            freshness_checks=checks,
            name=FRESHNESS_SENSOR,
            minimum_interval_seconds=60,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
