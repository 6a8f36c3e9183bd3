"""Dagster layer: the YAML pipelines as assets, checks, schedules and sensors (see README.md here).

Modules: ``keys`` (asset keys and names), ``translator`` (table → AssetSpec), ``resources`` (one per
connection), ``assets`` (the per-table op that adapts the engine), ``watermarks`` (watermarks in the
instance — the API the CLI uses), ``checks`` (asset checks; queries in ``engine.reconcile``),
``reconciliation`` (the ``source_equals_target`` check, reconcile jobs and schedules), ``automation`` (job,
schedules, sensors, pool limits), ``factory`` (``build_definitions``), ``component`` (the same as a
Dagster Component).
"""

from sync_platform.orchestration.factory import build_definitions, load_definitions
from sync_platform.orchestration.keys import TableKeys, source_key, staging_key, warehouse_key
from sync_platform.orchestration.watermarks import (
    WatermarkRecord,
    read_extract_watermark,
    read_load_watermark,
    record_manual_watermark,
    reset_watermark,
    resolve_extract_watermark,
    resolve_load_watermark,
)

__all__ = [
    "TableKeys",
    "WatermarkRecord",
    "build_definitions",
    "load_definitions",
    "read_extract_watermark",
    "read_load_watermark",
    "record_manual_watermark",
    "reset_watermark",
    "resolve_extract_watermark",
    "resolve_load_watermark",
    "source_key",
    "staging_key",
    "warehouse_key",
]
