"""``version`` and ``features``: what this build is and what it can do."""

from __future__ import annotations

import platform
from importlib import metadata

import click

from sync_platform import __version__
from sync_platform.cli import output

FEATURES: list[tuple[str, str, str]] = [
    ("Configuration", "connections.yml, pipelines/, environments/, templates/, tables/, ${VAR}", "available"),
    ("Configuration", "v1.0.0 mode from .env variables (default pipeline)", "available"),
    ("Connections", "MySQL / Redshift / PostgreSQL, SSH tunnels shared per bastion, S3 or local staging", "available"),
    ("CDC", "hybrid, timestamp_only, id_only, full_sync (replace, append, paginate), custom_sql", "available"),
    ("Loading", "merge by key, append with load ledger, atomic replace; PostgreSQL and Redshift SQL", "available"),
    ("Demo", "sync-platform demo: local MariaDB -> staging directory -> PostgreSQL, as a Dagster run", "available"),
    ("Orchestration", "Dagster assets per table, watermarks in metadata, checks, schedules, pools", "available"),
    ("CLI", "v1.0.0 sync/backup/watermark/s3clean/status/info through Dagster", "available"),
    ("CLI", "v1.1.0 sync pipeline/connections, --json-output, cdc, watermark-count, column-mappings", "available"),
    ("CDC", "log-based (binlog) CDC; deletes captured between full syncs", "planned"),
    ("SCD", "type 2 dimension tables (table_type: dimension)", "planned"),
]


@click.command("version")
def version() -> None:
    """Show the version and the versions of the components it runs on."""
    click.echo(f"sync-platform {__version__}")
    click.echo(f"python {platform.python_version()}")
    for package in ("dagster", "pyarrow", "connectorx", "pymysql", "psycopg2-binary", "boto3"):
        try:
            click.echo(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            click.echo(f"{package} not installed")


@click.command("features")
def features() -> None:
    """Show the feature matrix of this build."""
    output.table("Features", ["area", "feature", "status"], FEATURES)
