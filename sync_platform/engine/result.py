"""What one table run did, as plain data: Dagster metadata, CLI output and JSON are made from it."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from sync_platform.engine.watermark import Watermark


@dataclass
class PhaseTimings:
    plan_seconds: float = 0.0
    extract_seconds: float = 0.0  # reading MySQL and writing parquet (they overlap)
    stage_seconds: float = 0.0  # uploading parts and manifests
    load_seconds: float = 0.0  # COPY + merge/append/replace in the warehouse


@dataclass
class ExtractResult:
    """The staging step ("backup"): rows read from MySQL into manifested batches."""

    table: str  # schema.table
    identity: str  # SOURCE:schema.table
    strategy: str
    rows: int = 0
    files: int = 0
    bytes: int = 0
    batches: list[str] = field(default_factory=list)  # batch ids staged by this run
    watermark_before: Watermark = field(default_factory=Watermark)
    watermark: Watermark = field(default_factory=Watermark)  # after the run (durable: manifests staged)
    ceiling: Any = None
    ceiling_held_by: list[dict[str, Any]] = field(default_factory=list)  # open source transactions it waited for
    null_cursor_rows: int = 0  # source rows whose cursor is NULL (never in a cursor window)
    null_cursor_policy: str = "load"  # load | report | fail: what this run did with them
    null_cursor_loaded: int = 0  # of those, rows this run read by key and staged (policy load)
    null_cursor_seconds: float = 0.0  # what reading them cost
    warnings: list[str] = field(default_factory=list)  # shown in the CLI summary and the run's metadata
    zero_dates: dict[str, int] = field(default_factory=dict)  # column -> values turned NULL
    truncated_values: dict[str, int] = field(default_factory=dict)
    capped: bool = False  # stopped at --limit/--max-chunks with rows left to read
    detected: str | None = None  # strategy chosen automatically (v1.0.0 tables without config)
    seconds: float = 0.0
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None

    @property
    def zero_date_count(self) -> int:
        return sum(self.zero_dates.values())


@dataclass
class LoadResult:
    """The warehouse step: manifested batches loaded exactly once."""

    table: str
    target: str  # schema.table in the warehouse
    write_mode: str
    rows: int = 0  # rows in the batches loaded
    batches: list[str] = field(default_factory=list)
    skipped_batches: list[str] = field(default_factory=list)  # already in the ledger, or superseded
    watermark: Watermark = field(default_factory=Watermark)  # end of the last batch loaded
    # start of the first batch loaded (None: none loaded); with ``watermark``, the window the run's checks count
    watermark_start: Watermark | None = None
    schema_changes: list[str] = field(default_factory=list)
    target_rows: int | None = None  # rows in the target table after the load (counted)
    target_rows_estimate: int | None = None  # the catalog's estimate instead, for a large target (see load._count)
    seconds: float = 0.0


@dataclass
class TableRunResult:
    """Both steps of one table, as the CLI and Dagster report it."""

    table: str
    extract: ExtractResult | None = None
    load: LoadResult | None = None
    timings: PhaseTimings = field(default_factory=PhaseTimings)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for step in ("extract", "load"):
            part = getattr(self, step)
            if part is not None:
                data[step]["watermark"] = part.watermark.to_dict()
                if step == "extract":
                    data[step]["watermark_before"] = part.watermark_before.to_dict()
                elif part.watermark_start is not None:
                    data[step]["watermark_start"] = part.watermark_start.to_dict()
        return data
