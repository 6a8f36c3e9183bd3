"""A Redshift stand-in for tests: PostgreSQL's wire protocol on loopback, in front of a local PostgreSQL.

It refuses what Redshift refuses (``rules.RULES``, each rule citing its AWS documentation page) and
does what only Redshift does (COPY parquet by manifest from S3, SUPER/JSON_PARSE, VARBYTE,
GETDATE, DIST/SORT keys recorded in ``pg_table_def`` / ``svv_table_info``, TRUNCATE's commit).
Run it by hand with ``python -m sync_platform_tests.redshift_standin --port P --postgres-dsn DSN
--s3-endpoint-url URL``.
"""

from sync_platform_tests.redshift_standin.rules import RULES, Rule
from sync_platform_tests.redshift_standin.server import RedshiftStandin

__all__ = ["RULES", "RedshiftStandin", "Rule"]
