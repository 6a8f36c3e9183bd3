"""What every command shares: the chosen config directory and the project read from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from sync_platform.cli.exit_codes import ExitCode
from sync_platform.configuration import ConfigError, Project, load_project, resolve_config_dir


@dataclass
class CliContext:
    config_dir: Path
    quiet: bool = False
    debug: bool = False
    _project: Project | None = field(default=None, repr=False)

    def project(self) -> Project:
        """The validated project; on invalid configuration print every problem and exit 1."""
        if self._project is None:
            try:
                self._project = load_project(self.config_dir)
            except ConfigError as exc:
                click.echo(str(exc), err=True)
                raise SystemExit(ExitCode.CONFIG) from None
        return self._project


pass_cli = click.make_pass_decorator(CliContext)


def config_dir_option_default() -> Path:
    return resolve_config_dir(None)
