"""The ``sync-platform`` (and older ``s3-backup``) command line.

Start-up is part of every run's time (a scheduler starts `sync-platform sync` every few minutes), so
a command's module, and what it imports, is loaded only when that command runs, and the garbage
collector waits until the modules are loaded (it would otherwise walk every object of Dagster's
import many times over).
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import sys
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import click

from sync_platform import __version__
from sync_platform.cli import timings
from sync_platform.cli.context import CliContext
from sync_platform.cli.exit_codes import ExitCode
from sync_platform.configuration.loader import CONFIG_DIR_VARIABLE, DEFAULT_CONFIG_DIR

# command name → "module:attribute"
COMMANDS = {
    "config": "sync_platform.cli.config_commands:config_group",
    "connections": "sync_platform.cli.connections_commands:connections_group",
    "demo": "sync_platform.cli.demo_command:demo",
    "s3clean": "sync_platform.cli.s3clean_commands:s3clean_group",
    "sync": "sync_platform.cli.sync_commands:sync_group",
    "backup": "sync_platform.cli.sync_commands:backup",
    "watermark": "sync_platform.cli.watermark_commands:watermark_group",
    "watermark-count": "sync_platform.cli.watermark_commands:watermark_count_group",
    "cdc": "sync_platform.cli.cdc_commands:cdc_group",
    "column-mappings": "sync_platform.cli.cdc_commands:column_mappings_group",
    "status": "sync_platform.cli.status_commands:status",
    "info": "sync_platform.cli.status_commands:info",
    "version": "sync_platform.cli.info_commands:version",
    "features": "sync_platform.cli.info_commands:features",
    "reconcile": "sync_platform.cli.reconcile_command:reconcile",
}


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands, each imported on first use (``--help`` and ``items()`` load them all)."""

    def __init__(self, targets: dict[str, str]):
        self._targets = dict(targets)
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            module, _, attribute = self._targets[name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command) or command.name != name:
                raise TypeError(f"{self._targets[name]} is not the `{name}` command")
            self._loaded[name] = command
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._targets.setdefault(name, "")
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._targets[name]
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets


def resume_collection() -> None:
    """Garbage collection back on (see :func:`main`). What is loaded by now lives until exit: it is
    frozen, so that no collection walks it again."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, whatever the message holds (quotes, newlines of a driver's error)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sync-platform")
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=CONFIG_DIR_VARIABLE,
    default=DEFAULT_CONFIG_DIR,
    show_default=True,
    help=f"Configuration directory (env {CONFIG_DIR_VARIABLE}).",
)
@click.option("--debug", is_flag=True, help="Verbose logging.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Also write logs to this file.")
@click.option("--json-logs", is_flag=True, help="Log lines as JSON.")
@click.option("--config-file", hidden=True, help="Accepted for compatibility; ignored.")
@click.option(
    "--strict",
    is_flag=True,
    help="Unknown configuration keys are errors, and any broken pipeline file fails every command "
    "(also SYNC_PLATFORM_STRICT=1, or `strict: true` in connections.yml).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    config_dir: Path,
    debug: bool,
    quiet: bool,
    log_file: str | None,
    json_logs: bool,
    config_file: str | None,
    strict: bool,
) -> None:
    """Keep MySQL tables in sync with Redshift (or PostgreSQL) through parquet staged in S3."""
    resume_collection()  # click has imported the subcommand's module by now
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    formatter = (
        JsonLogFormatter() if json_logs else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=handlers, force=True)
    if not debug:  # the instance's storage migrations log at INFO on every start
        logging.getLogger("alembic").setLevel(logging.WARNING)
    ctx.obj = CliContext(config_dir=config_dir, quiet=quiet, debug=debug, strict=True if strict else None)


cli.commands = LazyCommands(COMMANDS)


def main() -> None:
    """Run the CLI; a usage error exits 1 like a configuration error (click's own default is 2,
    which here means a connection failure)."""
    timings.mark("main")
    gc.disable()  # while the command's modules load; resume_collection() turns it back on
    try:
        code = cli.main(prog_name=Path(sys.argv[0]).name or "sync-platform", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = ExitCode.CONFIG
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("interrupted", err=True)
        code = ExitCode.INTERRUPTED
    finally:
        timings.write()
        # Dagster's modules leave hundreds of thousands of objects: the interpreter's collections at
        # exit took seconds over them. Frozen objects are skipped; the process is ending anyway.
        gc.freeze()
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
