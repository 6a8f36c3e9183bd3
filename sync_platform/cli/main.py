"""The ``sync-platform`` (and older ``s3-backup``) command line."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from sync_platform import __version__
from sync_platform.cli.cdc_commands import cdc_group, column_mappings_group
from sync_platform.cli.config_commands import config_group
from sync_platform.cli.connections_commands import connections_group
from sync_platform.cli.context import CliContext
from sync_platform.cli.demo_command import demo
from sync_platform.cli.exit_codes import ExitCode
from sync_platform.cli.info_commands import features, version
from sync_platform.cli.s3clean_commands import s3clean_group
from sync_platform.cli.status_commands import info, status
from sync_platform.cli.sync_commands import backup, sync_group
from sync_platform.cli.watermark_commands import watermark_count_group, watermark_group
from sync_platform.configuration.loader import CONFIG_DIR_VARIABLE, DEFAULT_CONFIG_DIR


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


cli.add_command(config_group)
cli.add_command(connections_group)
cli.add_command(demo)
cli.add_command(s3clean_group)
cli.add_command(sync_group)
cli.add_command(backup)
cli.add_command(watermark_group)
cli.add_command(watermark_count_group)
cli.add_command(cdc_group)
cli.add_command(column_mappings_group)
cli.add_command(status)
cli.add_command(info)
cli.add_command(version)
cli.add_command(features)


def main() -> None:
    """Run the CLI; a usage error exits 1 like a configuration error (click's own default is 2,
    which here means a connection failure)."""
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
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
