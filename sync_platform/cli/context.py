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
    strict: bool | None = None  # None: SYNC_PLATFORM_STRICT, else connections.yml `strict:`
    last_error: str | None = None  # the configuration error a command exited on (for --json-output)
    _project: Project | None = field(default=None, repr=False)

    def project(self, pipeline: str | None = None) -> Project:
        """The project; on invalid configuration print every problem and exit 1.

        Only what the command needs must be valid: connections.yml, the environment, and the pipeline
        named by ``pipeline`` (when given). Another broken pipeline file is one warning line.
        """
        if self._project is None or pipeline is not None:
            try:
                self._project = load_project(self.config_dir, pipeline=pipeline, strict=self.strict)
            except ConfigError as exc:
                self.last_error = str(exc)
                click.echo(str(exc), err=True)
                raise SystemExit(ExitCode.CONFIG) from None
            self._warn_about(self._project, pipeline)
        return self._project

    def _warn_about(self, project: Project, pipeline: str | None) -> None:
        asked = project.broken_file(pipeline) if pipeline else None
        for file, problems in project.broken.items():
            if file == asked:
                continue
            first = problems[0].message if problems else "unreadable"
            click.echo(
                f"warning: {file} not loaded ({len(problems)} problem(s), first: {first}); "
                f"`config validate-pipeline {file.stem}` lists them",
                err=True,
            )
        wanted = project.pipelines.get(project.pipeline_name(pipeline) or "") if pipeline else None
        for warning in [*project.warnings, *(wanted.warnings if wanted else [])]:
            click.echo(str(warning), err=True)


pass_cli = click.make_pass_decorator(CliContext)


def config_dir_option_default() -> Path:
    return resolve_config_dir(None)
