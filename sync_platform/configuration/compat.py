"""The older tool's key set: which keys act here, which load and are ignored (and why), and what
happens to a key nobody knows.

The older tool (``src/core/configuration_manager.py``) read its YAML with ``dict.get`` and never
refused a key. Its real configuration directory therefore holds keys that acted, keys it read and
then ignored, and keys nothing ever read. Every one of them loads here:

- a key this project acts on is a field of the models in :mod:`models`;
- a key the older tool accepted but that changes nothing is listed in :data:`IGNORED_KEYS` with the
  reason, shown by ``config validate-pipeline -v``;
- any other key one edit away from a known key is an error with "did you mean" (a typo must never
  fall back to a default); any other unknown key is a warning naming file and key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from sync_platform.configuration import models
from sync_platform.configuration.errors import key_path

STRICT_VARIABLE = "SYNC_PLATFORM_STRICT"

_NOT_READ = "the older tool loaded it but never read it"
_VALIDATION = "data-quality thresholds of the older tool; the asset checks here reconcile counts and keys instead"
_SEQUENTIAL = (
    "a CLI run syncs its tables in turn; a scheduled run max_parallel_tables at a time, within the source's "
    "pool (max_concurrent_per_source)"
)

# Keys accepted for compatibility and ignored, by the model whose section holds them.
IGNORED_KEYS: dict[type[BaseModel], dict[str, str]] = {
    models.TableConfig: {
        "backup_strategy": f"the older tool chose sequential/inter-table from pipeline.processing.strategy, never "
        f"from this key; {_SEQUENTIAL}",
        "watermark_strategy": "the older tool always managed watermarks automatically; so does this project",
        "start_from": f"{_NOT_READ}: the first sync reads the whole table; to begin later, run "
        "`watermark set` before the first sync",
        "initial_load_filter": f"{_NOT_READ}; to begin later, run `watermark set` before the first sync "
        "(additional_where filters every sync)",
        "validation": _VALIDATION,
        "watermark_settings": f"{_NOT_READ}; watermarks are kept in the Dagster instance and advance only over "
        "durable data",
        "performance": f"{_NOT_READ}; memory is bounded by batch_size, timeouts by the connection settings",
        "monitoring": f"{_NOT_READ}; progress, metrics and failures are in the Dagster UI and the run's exit code",
        "production_safety": _NOT_READ,
        "notes": "free text",
        "strategy": f"the older tool's execution strategy; {_SEQUENTIAL}",
        "connection": "the older tool read every table of a pipeline from pipeline.source, whatever this key says; "
        "write the table as CONNECTION:table to read it from another connection",
        "backup": "chunk sizes of the older tool's alternative layout (chunk_size becomes processing.batch_size "
        "when the table sets none); max_chunks caps a run only as --max-chunks",
        "priority": f"used only for a warning by the older tool; {_SEQUENTIAL}",
        "timeout_minutes": _NOT_READ,
        "cdc_settings": _NOT_READ,
        "schedule": "schedules are per pipeline (pipeline.schedule)",
        "enabled_features": _NOT_READ,
        "cdc_ordering": "paging always orders by (cursor, primary key): rows sharing a cursor value are never skipped",
        "timestamp_format": "the column's type decides: an integer (UNIX) column is compared as a number, "
        "a DATETIME/TIMESTAMP as a time",
        "table_type": "fact and dimension tables load alike (by primary key)",
        "depends_on": "tables sync independently; order them with Dagster or the scheduler",
    },
    models.BackupDefaults: {
        key: "a tuning knob of the older tool's in-memory backup; memory is bounded by batch_size here"
        for key in (
            "max_workers",
            "memory_limit_mb",
            "gc_threshold",
            "target_rows_per_chunk",
            "max_rows_per_chunk",
            "num_chunks",
            "memory_check_interval",
            "enable_compression",
            "compression_level",
        )
    }
    | {
        "retry_attempts": "retries come from connection_settings.max_retries and the Dagster retry policy",
        "timeout_seconds": "statement timeouts come from the connection settings",
    },
    models.PipelineStaging: {
        "partition_strategy": "the staging layout is fixed: <prefix>/<pipeline>/<schema>/<table>/<run-id>/",
    },
    models.TableProcessing: {
        "enable_parallel_processing": f"{_NOT_READ}; {_SEQUENTIAL}",
        "query_timeout_seconds": f"{_NOT_READ}; queries are bounded by batch_size (keyset pages) and the source's "
        "connect/read timeouts",
        "query_optimization": _NOT_READ,
        "priority": f"used only for a warning by the older tool; {_SEQUENTIAL}",
        "timeout_minutes": "compared with the pipeline's timeout by the older tool's validation only",
        "memory_limit_mb": "memory is bounded by batch_size here",
        "compression_enabled": "staged parquet is always compressed (pipeline.s3.compression)",
    },
    models.PipelineSettings: {
        "version": "the older tool printed it; it selects nothing",
        "sync_frequency": "the older tool never scheduled (Airflow did); set pipeline.schedule: {cron: ...} to "
        "let Dagster run the pipeline",
        "cdc_settings": f"{_NOT_READ}: a table without cdc_strategy stays hybrid, as in the older tool",
        "monitoring": f"{_NOT_READ}; see the Dagster UI and exit codes",
        "validation": _VALIDATION,
        "performance": _NOT_READ,
        "watermark_settings": _NOT_READ,
        "notifications": _NOT_READ,
        "metadata": "descriptive; the older tool stored it without acting on it",
        "dw_settings": _NOT_READ,
        "ca_dw_settings": _NOT_READ,
    },
    models.PipelineProcessing: {
        "strategy": f"sequential and inter-table are one behaviour here: {_SEQUENTIAL}",
        "timeout_minutes": "a run is bounded by --wait-timeout and the connection timeouts",
        "max_workers": "tables of one pipeline run per max_parallel_tables",
        "query_timeout_seconds": f"{_NOT_READ}; queries are bounded by batch_size (keyset pages)",
        "enable_parallel_processing": f"{_NOT_READ}; {_SEQUENTIAL}",
        "memory_limit_mb": "memory is bounded by batch_size here",
        "compression_enabled": "staged parquet is always compressed (pipeline.s3.compression)",
    },
    models.StagingConfig: {
        "high_watermark_key": "the older tool kept one watermark file at this S3 key; watermarks live in the "
        "Dagster instance here (import them with `watermark set`)",
    },
}

# Keys of a pipeline file's top level (besides pipeline/tables/extends) and what becomes of them.
TOP_LEVEL_ACTED = ("default_table_config", "processing")
TOP_LEVEL_IGNORED: dict[str, str] = {
    "monitoring": f"{_NOT_READ}; see the Dagster UI and exit codes",
    "watermarks": "watermarks are kept in the Dagster instance",
    "metadata": "descriptive",
    "description": "descriptive",
}


@dataclass(frozen=True)
class IgnoredKey:
    """A key that loaded but changes nothing, with the reason (``config validate-pipeline -v``)."""

    file: Path | None
    key: str
    reason: str
    kind: str = "ignored"  # or "translated": a key of an older shape, read as the key the reason names

    def __str__(self) -> str:
        return f"{self.file or 'environment'}: {self.key}: {self.reason}"


def strict_from_environment(env: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get(STRICT_VARIABLE, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def one_edit_apart(a: str, b: str) -> bool:
    """True when ``a`` becomes ``b`` by one insertion, deletion, substitution or adjacent swap."""
    if a == b:
        return False
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, long_ = (a, b) if la < lb else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]


def near_miss(key: str, known: list[str]) -> str | None:
    """The known key ``key`` is one edit away from, if any (case ignored)."""
    lowered = key.lower()
    for candidate in known:
        if lowered == candidate.lower() or one_edit_apart(lowered, candidate.lower()):
            return candidate
    return None


# report(loc, severity, message, hint); severity is "error", "warning" or "ignored"
Report = Callable[[tuple[Any, ...], str, str, str], None]


def prune(model: type[BaseModel], data: Any, report: Report, loc: tuple[Any, ...] = ()) -> Any:
    """``data`` without the keys ``model`` does not act on, each one reported.

    Ignored keys are reported as ``ignored`` with their reason; a key one edit away from a known key
    as an ``error`` (kept out, so it cannot fall back to a default silently); any other unknown
    key as a ``warning``. Nested sections are pruned with their own models.
    """
    if not isinstance(data, dict):
        return data
    fields = model.model_fields
    by_name = {(f.alias or name): f for name, f in fields.items()}
    by_name.update({name: f for name, f in fields.items()})
    ignored = IGNORED_KEYS.get(model, {})
    known = sorted(set(by_name) | set(ignored))
    kept: dict[Any, Any] = {}
    for key, value in data.items():
        name = str(key)
        if name in by_name:  # validated; also listed when it changes nothing here
            kept[key] = _descend(by_name[name].annotation, value, report, (*loc, key))
            if name in ignored:
                report((*loc, key), "ignored", ignored[name], "")
        elif name in ignored:
            report((*loc, key), "ignored", ignored[name], "")
        else:
            guess = near_miss(name, known)
            if guess is not None:
                report((*loc, key), "error", f"unknown key `{name}`", f"did you mean `{guess}`?")
            else:
                report(
                    (*loc, key),
                    "warning",
                    f"unknown key `{name}` (not read by this project or the older tool)",
                    "remove it, or check its spelling; --strict makes this an error",
                )
    return kept


def _descend(annotation: Any, value: Any, report: Report, loc: tuple[Any, ...]) -> Any:
    model, mapping = _model_of(annotation)
    if model is None:
        return value
    if mapping:
        if not isinstance(value, dict):
            return value
        return {k: prune(model, v, report, (*loc, k)) for k, v in value.items()}
    return prune(model, value, report, loc)


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model inside ``annotation`` and whether it sits under a ``dict[str, Model]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if get_origin(annotation) is dict:
        inner, _ = _model_of(get_args(annotation)[1])
        return inner, inner is not None
    for arg in get_args(annotation):
        found, mapping = _model_of(arg)
        if found is not None:
            return found, mapping
    return None, False


def render_loc(prefix: tuple[Any, ...], loc: tuple[Any, ...]) -> str:
    return key_path((*prefix, *loc))
