"""Wiring the stand-in into tests (no pytest here; ``conftest.py`` turns these into fixtures)."""

from __future__ import annotations

from typing import Any, Literal

from sync_platform_tests.redshift_standin.server import RedshiftStandin

Warehouse = Literal["postgres", "redshift"]
WAREHOUSES: tuple[Warehouse, ...] = ("postgres", "redshift")
TEST_IAM_ROLE = "arn:aws:iam::123456789012:role/sync-platform-test"


def start_standin(
    s3_endpoint_url: str, postgres_dsn: str = "host=127.0.0.1 port=5432 user=postgres"
) -> RedshiftStandin:
    """A stand-in on a free loopback port, in front of the local PostgreSQL, reading S3 at ``s3_endpoint_url``."""
    return RedshiftStandin(postgres_dsn=postgres_dsn, s3_endpoint_url=s3_endpoint_url).start()


def redshift_target(standin: RedshiftStandin, *, database: str, schema: str, user: str = "postgres") -> dict[str, Any]:
    """A ``connections.targets`` entry reaching the stand-in exactly as a cluster is reached."""
    return {
        "type": "redshift",
        "host": standin.host,
        "port": standin.port,
        "database": database,
        "schema": schema,
        "username": user,
        "password": "",
        "iam_role": TEST_IAM_ROLE,
    }
