"""Amazon S3 (or any S3-compatible store reached through ``endpoint_url``) as the staging store."""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import boto3
import boto3.s3.transfer
import botocore.config
import botocore.exceptions

from sync_platform.configuration.models import StagingConfig
from sync_platform.connections.retry import ConnectionFailure
from sync_platform.connections.staging.store import StoredObject

DELETE_BATCH = 1000  # the S3 DeleteObjects limit
SPOOL_BYTES = 64 * 1024 * 1024  # objects read through open_read stay in memory up to this size


def root_prefix(cfg: StagingConfig) -> str:
    """The configured ``prefix`` plus the legacy ``incremental_path``, without stray slashes."""
    parts = [p.strip("/") for p in (cfg.prefix, cfg.incremental_path or "") if p and p.strip("/")]
    return "/".join(parts)


class S3Store:
    """Objects under ``s3://bucket/<prefix>/``; keys given to and returned by methods are relative."""

    kind = "s3"

    def __init__(self, name: str, cfg: StagingConfig, *, client: Any | None = None):
        if not cfg.bucket_name:
            raise ValueError(f"s3_configs.{name} has no bucket_name")
        self.name = name
        self.cfg = cfg
        self.bucket = cfg.bucket_name
        self.root = root_prefix(cfg)
        self._client = client
        perf = cfg.performance
        transfer: dict[str, Any] = {}
        if perf is not None:
            for option in ("multipart_threshold", "multipart_chunksize", "max_concurrency", "max_bandwidth"):
                value = getattr(perf, option)
                if value is not None:
                    transfer[option] = value
        self._transfer = boto3.s3.transfer.TransferConfig(**transfer)

    @property
    def client(self) -> Any:
        """The boto3 client, built on first use (so that building a registry does no I/O)."""
        if self._client is None:
            self._client = self.make_client()
        return self._client

    def make_client(self, *, attempts: int | None = None, timeout: float | None = None) -> Any:
        """A client with this config's credentials, region, endpoint and retry mode.

        Without access keys boto3's default chain applies (environment, profile, instance role).
        """
        perf = self.cfg.performance
        retries = {
            "max_attempts": attempts or (perf.retry_max_attempts if perf else 5),
            "mode": perf.retry_mode if perf else "adaptive",
        }
        options: dict[str, Any] = {"retries": retries}
        if perf is not None and perf.max_pool_connections:
            options["max_pool_connections"] = perf.max_pool_connections
        if timeout is not None:
            options["connect_timeout"] = timeout
            options["read_timeout"] = timeout
        if self.cfg.endpoint_url:
            options["s3"] = {"addressing_style": "path"}  # S3-compatible servers rarely do virtual hosts
        session = boto3.session.Session(
            aws_access_key_id=_secret(self.cfg.access_key_id),
            aws_secret_access_key=_secret(self.cfg.secret_access_key),
            aws_session_token=_secret(self.cfg.session_token),
            region_name=self.cfg.region,
        )
        return session.client("s3", endpoint_url=self.cfg.endpoint_url, config=botocore.config.Config(**options))

    def full_key(self, key: str) -> str:
        if not key or key.startswith("/"):
            raise ValueError(f"invalid staging key {key!r}: use a relative '/'-separated path")
        return f"{self.root}/{key}" if self.root else key

    def _relative(self, full: str) -> str:
        return full[len(self.root) + 1 :] if self.root else full

    def put_file(self, key: str, path: str) -> None:
        """Upload through boto3's transfer manager: multipart above the threshold, visible when complete."""
        self.client.upload_file(path, self.bucket, self.full_key(key), Config=self._transfer)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.full_key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key))
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise FileNotFoundError(self.uri(key)) from None
            raise
        return bytes(response["Body"].read())

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        """A seekable local copy (in memory when small, spilled to a temp file when large)."""
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            try:
                self.client.download_fileobj(self.bucket, self.full_key(key), spool, Config=self._transfer)
            except botocore.exceptions.ClientError as exc:
                if _code(exc) in ("NoSuchKey", "404"):
                    raise FileNotFoundError(self.uri(key)) from None
                raise
            spool.seek(0)
            yield spool  # type: ignore[misc]

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.full_key(key))
            return True
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def list(self, prefix: str) -> Iterator[StoredObject]:
        """Every object under ``prefix``, following continuation tokens to the end."""
        full_prefix = f"{self.root}/{prefix}" if self.root else prefix
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
            for item in page.get("Contents", []):
                modified: dt.datetime = item["LastModified"]
                if modified.tzinfo is None:
                    modified = modified.replace(tzinfo=dt.UTC)
                yield StoredObject(
                    key=self._relative(item["Key"]), size=int(item["Size"]), last_modified=modified.astimezone(dt.UTC)
                )

    def delete(self, keys: list[str]) -> None:
        """Delete in batches of 1000; any per-key failure is raised, not ignored."""
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": self.full_key(k)} for k in keys[start : start + DELETE_BATCH]]
            response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise OSError(
                    f"S3 refused to delete {len(errors)} object(s) in s3://{self.bucket}, e.g. "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.full_key(key)}"

    def describe(self) -> str:
        """Where the store is, safe to print (no keys)."""
        where = f"s3://{self.bucket}/{self.root}".rstrip("/")
        return f"{where} at {self.cfg.endpoint_url}" if self.cfg.endpoint_url else where

    def ping(self, timeout: float = 10.0) -> float:
        """HEAD the bucket once (no retries) and return the round trip in ms; ConnectionFailure if not."""
        client = self.make_client(attempts=1, timeout=timeout)
        started = time.perf_counter()
        try:
            client.head_bucket(Bucket=self.bucket)
            return (time.perf_counter() - started) * 1000
        except botocore.exceptions.EndpointConnectionError:
            endpoint = self.cfg.endpoint_url or f"S3 in region {self.cfg.region or '(default)'}"
            raise ConnectionFailure(
                f"cannot reach {endpoint} for bucket {self.bucket!r}; check endpoint_url/region and the network",
                transient=True,
            ) from None
        except botocore.exceptions.NoCredentialsError:
            raise ConnectionFailure(
                f"no AWS credentials for bucket {self.bucket!r}; set access_key_id/secret_access_key or "
                "configure the default credential chain (environment, profile, instance role)"
            ) from None
        except botocore.exceptions.ClientError as exc:
            code = _code(exc)
            if code in ("404", "NoSuchBucket", "NotFound"):
                hint = "the bucket does not exist; check bucket_name (and region)"
            elif code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                hint = "access denied; check the credentials and the bucket policy"
            else:
                hint = "check bucket_name, region and credentials"
            raise ConnectionFailure(f"bucket {self.bucket!r} at {self.describe()}: {code}: {hint}") from None
        except botocore.exceptions.BotoCoreError as exc:
            raise ConnectionFailure(f"bucket {self.bucket!r} at {self.describe()}: {exc}", transient=True) from None
        finally:
            client.close()

    def close(self) -> None:
        """Release the client's pooled HTTP connections."""
        if self._client is not None:
            self._client.close()
            self._client = None


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
