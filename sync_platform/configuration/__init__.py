"""YAML configuration: models, loader, templates, environments, ``${VAR}`` interpolation, validation."""

from sync_platform.configuration import compat
from sync_platform.configuration.errors import ConfigError, ConfigProblem
from sync_platform.configuration.loader import load_project, read_project, resolve_config_dir, table_spec
from sync_platform.configuration.project import Pipeline, Project, TableSpec

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "Pipeline",
    "Project",
    "TableSpec",
    "compat",
    "load_project",
    "read_project",
    "resolve_config_dir",
    "table_spec",
]
