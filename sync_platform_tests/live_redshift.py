"""Opt in: the end-to-end tests also run against a real Amazon Redshift cluster.

Set ``SYNC_PLATFORM_LIVE_REDSHIFT_DSN`` (with ``SYNC_PLATFORM_LIVE_S3_BUCKET`` and
``SYNC_PLATFORM_LIVE_IAM_ROLE``) and the ``warehouse`` fixture gains a third value,
``redshift_live``; without it the value does not exist at all (nothing is skipped). See the
README section "Testing against a real Redshift cluster" for the command, permissions and cost.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg2.extensions

from sync_platform_tests.stack import PostgresDatabase, unique_name

DSN = "SYNC_PLATFORM_LIVE_REDSHIFT_DSN"
BUCKET = "SYNC_PLATFORM_LIVE_S3_BUCKET"
IAM_ROLE = "SYNC_PLATFORM_LIVE_IAM_ROLE"
REGION = "SYNC_PLATFORM_LIVE_S3_REGION"  # default us-east-1; must be the cluster's region
ACCESS_KEY_ID = "SYNC_PLATFORM_LIVE_AWS_ACCESS_KEY_ID"  # staging uploads (COPY itself uses the role)
SECRET_ACCESS_KEY = "SYNC_PLATFORM_LIVE_AWS_SECRET_ACCESS_KEY"
SESSION_TOKEN = "SYNC_PLATFORM_LIVE_AWS_SESSION_TOKEN"
LIVE_WAREHOUSE = "redshift_live"
PREFIX_ROOT = "sync-platform-live-tests"


@dataclass(frozen=True)
class LiveRedshift:
    """A real cluster and bucket to run the end-to-end tests against."""

    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)
    bucket: str
    iam_role: str
    region: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    run_prefix: str = field(default_factory=lambda: f"{PREFIX_ROOT}/{unique_name('run', '')}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> LiveRedshift | None:
        """The cluster the environment names; None when ``SYNC_PLATFORM_LIVE_REDSHIFT_DSN`` is unset."""
        dsn = environ.get(DSN)
        if not dsn:
            return None
        missing = [name for name in (BUCKET, IAM_ROLE, ACCESS_KEY_ID, SECRET_ACCESS_KEY) if not environ.get(name)]
        if missing:
            raise ValueError(f"{DSN} is set, so the live Redshift run also needs {', '.join(missing)}")
        parts = psycopg2.extensions.parse_dsn(dsn)
        return cls(
            host=parts.get("host", ""),
            port=int(parts.get("port", 5439)),
            database=parts.get("dbname", "dev"),
            user=parts.get("user", ""),
            password=parts.get("password", ""),
            bucket=environ[BUCKET],
            iam_role=environ[IAM_ROLE],
            region=environ.get(REGION) or "us-east-1",
            access_key_id=environ[ACCESS_KEY_ID],
            secret_access_key=environ[SECRET_ACCESS_KEY],
            session_token=environ.get(SESSION_TOKEN) or None,
        )

    def target(self, *, schema: str) -> dict[str, Any]:
        """A ``connections.targets`` entry for the cluster (TLS required)."""
        return {
            "type": "redshift",
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "schema": schema,
            "username": self.user,
            "password": self.password,
            "iam_role": self.iam_role,
            "sslmode": "require",
        }

    def staging(self) -> dict[str, Any]:
        """An ``s3_configs`` entry: the real bucket, under this session's own prefix."""
        block: dict[str, Any] = {
            "bucket_name": self.bucket,
            "region": self.region,
            "prefix": self.run_prefix,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
        }
        if self.session_token:
            block["session_token"] = self.session_token
        return block

    def database_handle(self) -> PostgresDatabase:
        """The cluster's database as the tests read targets back (psycopg2 speaks to Redshift)."""
        return PostgresDatabase(self.database, self.host, self.port, self.user, self.password)

    def tables(self, schema: str = "public") -> set[str]:
        rows = self.database_handle().query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        )
        return {name for (name,) in rows}

    def drop_tables(self, names: set[str], schema: str = "public") -> None:
        """Drop what a test module created (never a table that existed before it)."""
        db = self.database_handle()
        for name in sorted(names):
            db.execute(f'DROP TABLE IF EXISTS "{schema}"."{name}" CASCADE')

    def remove_staged_files(self) -> None:
        """Delete every object this session staged under its prefix."""
        import boto3

        client = boto3.client(
            "s3",
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
        )
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.run_prefix + "/"):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
