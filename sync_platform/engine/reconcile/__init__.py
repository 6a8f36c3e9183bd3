"""Reconcile: prove the target equals the source by checksummed key ranges, and repair what differs.

- ``table``: :func:`reconcile_table`, the whole run for one table (compare, classify, repair);
- ``diff``: bisection of checksummed key ranges down to the rows that differ;
- ``sides``: the source (MySQL, one consistent snapshot, paced) and the target behind one interface;
- ``canonical``: the MySQL half of the canonical row text (the warehouse half is in the dialect);
- ``counts``: the row-count and key-uniqueness queries behind the asset checks.
"""

from sync_platform.engine.reconcile.diff import Differences, DiffSettings, diff_ranges
from sync_platform.engine.reconcile.table import (
    ReconcileError,
    ReconcileOptions,
    ReconcileResult,
    reconcilable,
    reconcile_table,
)

__all__ = [
    "DiffSettings",
    "Differences",
    "ReconcileError",
    "ReconcileOptions",
    "ReconcileResult",
    "diff_ranges",
    "reconcilable",
    "reconcile_table",
]
