"""Entry point Dagster loads: ``dagster dev -m sync_platform.definitions``, ``dg dev``, ``dagster asset materialize``.

Definitions are built from the configuration directory (``SYNC_PLATFORM_CONFIG_DIR``, else
``./config``) through the project's own config loader, the same files the CLI reads. Building them
opens no connection. A pipeline file that does not load is logged and shown as a
``config_problems`` asset with a failing check; the other pipelines load. ``SYNC_PLATFORM_STRICT=1``
makes any problem fail the whole code location.
"""

from __future__ import annotations

import dagster as dg

from sync_platform.orchestration.factory import load_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return load_definitions()
