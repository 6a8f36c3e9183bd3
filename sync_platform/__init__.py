"""sync_platform: keep MySQL tables in sync with Redshift (or PostgreSQL) through parquet staged in S3."""

__version__ = "0.1.0"
