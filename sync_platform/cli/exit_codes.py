"""Process exit codes, distinct per failure class so schedulers can react (documented in README)."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    CONFIG = 1  # the configuration is invalid or names something that does not exist
    CONNECTION = 2  # a source, warehouse, tunnel or store could not be reached
    PARTIAL = 3  # some tables synced, some failed
    DATA = 4  # the data itself was refused (type overflow, oversize text, incompatible schema change)
    STAGING = 5  # the staging store (S3 / local directory) failed
    WAREHOUSE = 6  # the warehouse refused a statement (COPY, merge, DDL)
    INTERRUPTED = 130  # Ctrl-C
