"""Small helpers shared by the connection tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from sync_platform.configuration.models import ConnectionsFile
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform_tests.stack import ConfigDir


def load_connections(config: ConfigDir | Path) -> ConnectionsFile:
    """Parse a test connections.yml with the real models (no loader features are needed here)."""
    path = config.connections_file if isinstance(config, ConfigDir) else Path(config)
    return ConnectionsFile.model_validate(yaml.safe_load(path.read_text()))


def registry_for(config: ConfigDir) -> ConnectionRegistry:
    return ConnectionRegistry(load_connections(config), config.path)
