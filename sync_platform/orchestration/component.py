"""The factory as a Dagster Component, for projects that assemble definitions from a ``defs/`` folder.

``defs/sync/defs.yaml``::

    type: sync_platform.orchestration.component.SyncPipelinesComponent
    attributes:
      config_dir: config        # default: SYNC_PLATFORM_CONFIG_DIR, else ./config
      environment: production   # default: SYNC_ENV / BACKUP_ENVIRONMENT

It reads the same YAML as the CLI, through the same loader, and builds exactly what
``sync_platform.definitions`` builds.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from sync_platform.orchestration.factory import load_definitions


@dataclass
class SyncPipelinesComponent(dg.Component, dg.Resolvable):
    """Every table of every pipeline in a sync_platform configuration directory, as assets."""

    config_dir: str | None = None
    environment: str | None = None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return load_definitions(self.config_dir, environment=self.environment)
