"""Asset checks of a warehouse table: rows reconcile with the source, keys are unique, data is fresh.

The row-count and key checks belong to the table's sync op (they run right after a load, or alone
from the UI); the queries are in :mod:`sync_platform.engine.reconcile.counts`. Freshness checks use
Dagster's last-update checks with each table's ``freshness.max_lag``, run by their own sensor.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections import defaultdict
from collections.abc import Sequence

import dagster as dg

from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.reconcile.counts import KeyDuplicates, NotComparable, compare_row_counts, duplicate_keys
from sync_platform.engine.recovery import null_cursor_counts
from sync_platform.engine.shape import TableShape
from sync_platform.engine.watermark import Watermark
from sync_platform.orchestration.keys import TableKeys

ROW_COUNT_CHECK = "row_count_matches_source"
UNIQUE_KEY_CHECK = "primary_key_unique"
NULL_CURSOR_CHECK = "null_cursor_rows"
FRESHNESS_SENSOR = "sync_platform_freshness_checks"


def check_specs(keys: TableKeys) -> list[dg.AssetCheckSpec]:
    """The reconciliation checks of one table, attached to its warehouse asset."""
    return [
        dg.AssetCheckSpec(
            ROW_COUNT_CHECK,
            asset=keys.warehouse,
            additional_deps=[keys.source],
            description=(
                "Source and target hold the same number of rows within the synced window (every row whose "
                "cursor is at or below the load watermark); the whole table for full syncs. Fewer rows in the "
                "target is an error (rows missing); more is a warning (deletes are not propagated)."
            ),
            blocking=True,  # an ERROR fails the run (exit 4 from the CLI)
        ),
        dg.AssetCheckSpec(
            UNIQUE_KEY_CHECK,
            asset=keys.warehouse,
            description="No primary-key value occurs twice in the target (Redshift does not enforce keys).",
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


def row_count_result(
    registry: ConnectionRegistry,
    keys: TableKeys,
    shape: TableShape,
    load_watermark: Watermark,
    floor: Watermark | None = None,
) -> dg.AssetCheckResult:
    counts = compare_row_counts(registry, keys.spec, shape, load_watermark, floor)
    if isinstance(counts, NotComparable):
        return _not_comparable(keys, ROW_COUNT_CHECK, counts)
    passed = counts.difference == 0
    severity = dg.AssetCheckSeverity.WARN if counts.difference > 0 else dg.AssetCheckSeverity.ERROR
    if passed:
        description = f"{counts.source_rows:,} rows on both sides ({counts.window})"
    elif counts.difference < 0:
        description = f"{-counts.difference:,} rows missing from the target ({counts.window})"
    else:
        description = f"the target has {counts.difference:,} rows more than the source ({counts.window})"
    return dg.AssetCheckResult(
        asset_key=keys.warehouse,
        check_name=ROW_COUNT_CHECK,
        passed=passed,
        severity=severity,
        description=description,
        metadata={
            "source_rows": counts.source_rows,
            "target_rows": counts.target_rows,
            "difference": counts.difference,
            "window": counts.window,
        },
    )


def unique_key_result(registry: ConnectionRegistry, keys: TableKeys, shape: TableShape) -> dg.AssetCheckResult:
    found = duplicate_keys(registry, keys.spec, shape)
    if isinstance(found, NotComparable):
        return _not_comparable(keys, UNIQUE_KEY_CHECK, found)
    assert isinstance(found, KeyDuplicates)
    passed = found.duplicated_keys == 0
    key = ", ".join(found.key)
    return dg.AssetCheckResult(
        asset_key=keys.warehouse,
        check_name=UNIQUE_KEY_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"({key}) is unique"
            if passed
            else f"{found.duplicated_keys:,} values of ({key}) occur more than once ({found.extra_rows:,} extra rows)"
        ),
        metadata={"key": key, "duplicated_keys": found.duplicated_keys, "extra_rows": found.extra_rows},
    )


def null_cursor_result(registry: ConnectionRegistry, keys: TableKeys, shape: TableShape) -> dg.AssetCheckResult:
    counts = null_cursor_counts(registry, keys.spec, shape)
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
