"""The paging loop: one run's read of a table as a stream of normalized Arrow batches.

A page is one SELECT ordered by the keyset with a LIMIT; the next page starts after the last row
of the previous one. When the keyset is not unique (a table without a key), a page would cut a
group of equal keys in two; the loop first finds the page's boundary key and then reads every
row up to and including it, so no row of the group is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from sync_platform.engine.faults import checkpoint
from sync_platform.engine.mysql_sql import keyset_after, literal, quote_mysql
from sync_platform.engine.strategies import PlanError, ReadPlan
from sync_platform.engine.watermark import CursorValue

ReadSql = Callable[[str], Iterator[pa.RecordBatch]]
Normalize = Callable[[pa.RecordBatch], pa.RecordBatch]
QueryOne = Callable[[str], tuple[Any, ...] | None]


class PageNotAdvancingError(PlanError):
    """A page ended where the previous one did: reading on would return the same rows forever."""


@dataclass
class PageReader:
    """Reads the plan page by page; ``last`` is the keyset position of the last row yielded."""

    plan: ReadPlan
    select_list: str
    read: ReadSql  # SQL -> raw Arrow batches (connectorx)
    normalize: Normalize  # raw batch -> staged batch (types, names)
    key_fields: tuple[str, ...]  # names of the keyset columns in normalized batches
    query_one: QueryOne  # one row through a plain client (boundary keys, raw values)
    last: tuple[CursorValue, ...] | None = None
    rows: int = 0
    pages: int = 0
    capped: bool = False
    _done: bool = field(default=False, repr=False)

    def batches(self) -> Iterator[pa.RecordBatch]:
        plan = self.plan
        self.last = plan.after
        if not plan.keyset and plan.custom_query is None:
            yield from self._unpaged()
            return
        while not self._done:
            remaining = None if plan.max_rows is None else plan.max_rows - self.rows
            if remaining is not None and remaining <= 0:
                self.capped = self._more_rows_exist()
                return
            limit = plan.page_rows if remaining is None else min(plan.page_rows, remaining)
            before = self.last
            if plan.unique_keyset or plan.custom_query is not None:
                sql = plan.page_sql(self.select_list, self.last, limit)
                page_rows = yield from self._consume(sql)
                if page_rows < limit:
                    return
            else:
                yield from self._non_unique_page(limit)
            if not self._done and self.last == before:
                raise self._not_advancing(before)

    def _not_advancing(self, position: tuple[CursorValue, ...] | None) -> PageNotAdvancingError:
        plan = self.plan
        where = ", ".join(f"{c.name}={v!r}" for c, v in zip(plan.keyset, position or (), strict=False))
        if plan.custom_query is not None:
            fix = (
                "the custom_query must select only rows after its placeholders: "
                "WHERE (ts, id) > ({last_timestamp}, {last_id}) AND ts <= {ceiling_timestamp} "
                "ORDER BY ts, id LIMIT {limit}"
            )
        else:
            fix = "the keyset columns' comparison does not follow their order; report this with the column types"
        return PageNotAdvancingError(
            f"{plan.table_sql}: a full page of {plan.page_rows} rows did not advance the read position past "
            f"({where or 'the start'}); reading on would return the same rows forever, so the run stops. {fix}"
        )

    def _unpaged(self) -> Iterator[pa.RecordBatch]:
        limit = self.plan.max_rows
        yield from self._consume(self.plan.page_sql(self.select_list, None, limit))
        if limit is not None and self.rows >= limit:
            self.capped = True

    def _consume(self, sql: str) -> Iterator[pa.RecordBatch]:
        """Yield the normalized batches of one query; returns its row count."""
        count = 0
        last_batch: pa.RecordBatch | None = None
        for raw in self.read(sql):
            if raw.num_rows == 0:
                continue
            batch = self.normalize(raw)
            count += batch.num_rows
            self.rows += batch.num_rows
            last_batch = batch
            yield batch
        self.pages += 1
        checkpoint("extract.page")
        if last_batch is not None and self.key_fields:
            self.last = self._position(last_batch)
        return count

    def _position(self, batch: pa.RecordBatch) -> tuple[CursorValue, ...]:
        row = batch.num_rows - 1
        values = tuple(batch.column(name)[row].as_py() for name in self.key_fields)
        if any(v is None for v in values):
            values = self._raw_position(values)
        return values

    def _raw_position(self, values: tuple[CursorValue, ...]) -> tuple[CursorValue, ...]:
        """A keyset value normalized to NULL (e.g. an invalid date) is re-read as the server's own text."""
        keyset = self.plan.keyset
        known = [(c, v) for c, v in zip(keyset, values, strict=True) if v is not None]
        if not known:
            return values
        where = " AND ".join(f"{quote_mysql(c.name)} = {literal(c, v)}" for c, v in known)
        columns = ", ".join(f"CAST({quote_mysql(c.name)} AS CHAR)" for c in keyset)
        row = self.query_one(f"SELECT {columns} FROM {self.plan.table_sql} WHERE {where} LIMIT 1")
        if row is None:
            return values
        return tuple(v if v is not None else row[i] for i, v in enumerate(values))

    def _non_unique_page(self, limit: int) -> Iterator[pa.RecordBatch]:
        plan = self.plan
        keys = ", ".join(quote_mysql(c.name) for c in plan.keyset)
        probe = plan.page_sql(keys, self.last, None) + f" LIMIT 1 OFFSET {int(limit) - 1}"
        boundary = self.query_one(probe)
        if boundary is None:  # fewer rows than a page remain: read them all and stop
            yield from self._consume(plan.page_sql(self.select_list, self.last, None))
            self._done = True
            return
        up_to_boundary = f"NOT ({keyset_after(plan.keyset, tuple(boundary))})"
        yield from self._consume(_with_condition(plan.page_sql(self.select_list, self.last, None), up_to_boundary))
        self.last = tuple(boundary)

    def _more_rows_exist(self) -> bool:
        keys = ", ".join(quote_mysql(c.name) for c in self.plan.keyset) or "1"
        return self.query_one(self.plan.page_sql(keys, self.last, 1)) is not None


def _with_condition(sql: str, condition: str) -> str:
    """Add a condition to a SELECT built by :meth:`ReadPlan.page_sql` (before its ORDER BY)."""
    head, sep, tail = sql.partition(" ORDER BY ")
    joiner = " AND " if " WHERE " in head else " WHERE "
    return f"{head}{joiner}{condition}{sep}{tail}"
