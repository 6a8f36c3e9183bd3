"""Find the rows that differ between two sides by bisecting checksummed key ranges.

1. Walk the source's primary key, taking every ``range_rows``-th key: the top-level ranges.
2. Checksum (row count, sum of 60-bit row hashes) every range on both sides; the target checksums
   each range as soon as the source has cut it, each side on its own connection.
3. Split each range whose checksums differ into ``factor`` sub-ranges (boundaries taken from the
   side with more rows there) and checksum those; repeat until a range holds at most ``leaf_rows``
   rows on each side, then fetch the (key, row hash) pairs of that range from both sides.
4. Match the fetched pairs by key across every leaf; a key fetched on one side only is looked up
   on the other (a case-insensitive collation may order it into another range there). In the
   source only → lost, in the target only → deleted at the source, different hashes → changed.

What crosses the network is O(ranges + differing rows × leaf_rows): never the table.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sync_platform.engine.reconcile.sides import Checksum, IntegerSpan, KeyRange, KeyValues, Side

MAX_DEPTH = 12
SPARSE_KEYS = 16  # an integer key spanning more than this many values per row is walked, not divided


@dataclass(frozen=True)
class DiffSettings:
    range_rows: int = 2_000  # rows per top-level range (the source's chunk size)
    factor: int = 8  # sub-ranges a differing range is split into
    leaf_rows: int = 16  # at or below this many rows a range's row hashes are fetched
    ranges_per_query: int = 64  # integer keys: top-level ranges checksummed by one query (one pass, GROUP BY)


@dataclass
class Differences:
    """The rows that differ, by key, with what finding them cost."""

    lost: list[KeyValues] = field(default_factory=list)  # in the source, not in the target
    deleted: list[KeyValues] = field(default_factory=list)  # in the target, not in the source
    changed: list[KeyValues] = field(default_factory=list)  # in both, different values
    ranges_scanned: int = 0  # ranges checksummed (each on both sides)
    rows_transferred: int = 0  # boundary keys and (key, hash) pairs fetched
    source_rows: int = 0
    target_rows: int = 0

    @property
    def total(self) -> int:
        return len(self.lost) + len(self.deleted) + len(self.changed)


def _both(source_call: Callable[[], object], target_call: Callable[[], object]) -> tuple[object, object]:
    """Run one call per side at once (the two servers work in parallel)."""
    result: dict[str, object] = {}

    def run_target() -> None:
        try:
            result["target"] = target_call()
        except BaseException as exc:  # handed to the caller
            result["error"] = exc

    thread = threading.Thread(target=run_target, name="reconcile-target", daemon=True)
    thread.start()
    try:
        result["source"] = source_call()
    finally:
        thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["source"], result["target"]


def _all(calls: Sequence[Callable[[], object]]) -> None:
    """Run the calls at once, one thread each (the first in this thread); re-raise the first failure."""
    errors: list[BaseException] = []

    def guarded(call: Callable[[], object]) -> None:
        try:
            call()
        except BaseException as exc:  # handed to the caller
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(c,), name="reconcile-source", daemon=True) for c in calls[1:]]
    for thread in threads:
        thread.start()
    try:
        guarded(calls[0])
    finally:
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]


def _ranges(bounds: list[KeyValues], outer: KeyRange) -> list[KeyRange]:
    edges: list[KeyValues | None] = [outer.lower, *bounds]
    ranges = [KeyRange(edges[i], bounds[i]) for i in range(len(bounds))]
    if not bounds or bounds[-1] != outer.upper:
        ranges.append(KeyRange(edges[-1], outer.upper))
    return ranges


def diff_ranges(
    source: Side,
    target: Side,
    settings: DiffSettings = DiffSettings(),
    helpers: Sequence[Side] = (),
    target_helpers: Sequence[Side] = (),
) -> Differences:
    """Every differing row between ``source`` and ``target`` (see the module docstring).

    ``helpers`` / ``target_helpers``: more connections to each server (each source one on its own
    snapshot) that share the first pass over an integer key (the bisection runs on the first ones).
    """
    found = Differences()
    span = source.integer_span()
    if span is not None and span.high - span.low + 1 <= SPARSE_KEYS * span.rows:
        pending = _divided_ranges([source, *helpers], [target, *target_helpers], settings, found, span)
    else:
        pending = _walked_ranges(source, target, settings, found)
    source_rows: dict[KeyValues, int] = {}
    target_rows: dict[KeyValues, int] = {}
    depth = 0
    while pending:
        depth += 1
        pending = _next_level(source, target, pending, settings, found, source_rows, target_rows, depth)
    # Where the target orders keys differently (collations), a row can sit in a differing range on
    # one side and a matching one on the other: look such rows up by key before calling them different.
    only_source = [k for k in source_rows if k not in target_rows]
    only_target = [k for k in target_rows if k not in source_rows]
    if only_source or only_target:
        more_target, more_source = _both(
            lambda: target.hashes_for_keys(only_source), lambda: source.hashes_for_keys(only_target)
        )
        found.rows_transferred += len(more_target) + len(more_source)  # type: ignore[arg-type]
        target_rows.update(more_target)  # type: ignore[arg-type]
        source_rows.update(more_source)  # type: ignore[arg-type]
    for key, value in source_rows.items():
        other = target_rows.get(key)
        if other is None:
            found.lost.append(key)
        elif other != value:
            found.changed.append(key)
    found.deleted = [key for key in target_rows if key not in source_rows]
    found.lost.sort(key=repr)
    found.changed.sort(key=repr)
    found.deleted.sort(key=repr)
    return found


def _walked_ranges(
    source: Side, target: Side, settings: DiffSettings, found: Differences
) -> list[tuple[KeyRange, Checksum, Checksum]]:
    """Top-level ranges of ``range_rows`` keys walked on the source's key (any key type), checksummed."""
    ranges: queue.Queue[KeyRange | None] = queue.Queue()

    def walk_source() -> list[tuple[KeyRange, Checksum]]:
        """Cut the next range and checksum it; the target checksums each range as soon as it is cut."""
        done: list[tuple[KeyRange, Checksum]] = []
        lower: KeyValues | None = None
        try:
            while True:
                upper = source.next_boundary(KeyRange(lower, None), settings.range_rows)
                key_range = KeyRange(lower, upper)
                ranges.put(key_range)
                done.append((key_range, source.checksum(key_range)))
                if upper is None:
                    return done
                lower = upper
        finally:
            ranges.put(None)

    sums, target_sums = _both(walk_source, lambda: [target.checksum(r) for r in iter(ranges.get, None)])
    found.rows_transferred += len(sums) - 1  # type: ignore[arg-type]
    return _differing(zip(sums, target_sums, strict=True), found)  # type: ignore[call-overload]


def _divided_ranges(
    sources: Sequence[Side], targets: Sequence[Side], settings: DiffSettings, found: Differences, span: IntegerSpan
) -> list[tuple[KeyRange, Checksum, Checksum]]:
    """Top-level ranges of an integer key cut by arithmetic: no boundary walk, one pass per side.

    The span ``(low - 1, high]`` is divided into ranges of ``width`` keys (about ``range_rows`` rows
    each); one query per side checksums ``ranges_per_query`` consecutive ranges at once (GROUP BY the
    range's number). The first range is open below and the last open above, so target rows outside
    the source's span are counted too. Several connections per side take that side's queries in turn.
    """
    origin = span.low - 1
    width = max(1, math.ceil(settings.range_rows * (span.high - origin) / span.rows))
    count = (span.high - origin - 1) // width + 1
    per_query = max(1, settings.ranges_per_query)

    def edge(index: int) -> KeyValues | None:
        return None if index <= 0 or index >= count else (origin + index * width,)

    chunks = [(first, min(per_query, count - first)) for first in range(0, count, per_query)]

    def run(side: Side, todo: Iterable[int], into: list[list[Checksum]]) -> None:
        for index in todo:
            first, buckets = chunks[index]
            key_range = KeyRange(edge(first), edge(first + buckets))
            into[index] = side.bucket_checksums(key_range, origin + first * width, width, buckets)

    def run_all(sides: Sequence[Side]) -> list[list[Checksum]]:
        into: list[list[Checksum]] = [[] for _ in chunks]
        todo = iter(range(len(chunks)))  # shared: each connection takes the next query when it is free
        lock = threading.Lock()

        def take() -> Iterable[int]:
            while True:
                with lock:
                    index = next(todo, None)
                if index is None:
                    return
                yield index

        _all([lambda side=side: run(side, take(), into) for side in sides])  # type: ignore[misc]
        return into

    by_query, target_by_query = _both(lambda: run_all(sources), lambda: run_all(targets))
    sums = [c for part in by_query for c in part]  # type: ignore[attr-defined]
    target_sums = [c for part in target_by_query for c in part]  # type: ignore[attr-defined]
    ranges = [KeyRange(edge(i), edge(i + 1)) for i in range(count)]
    return _differing(zip(zip(ranges, sums, strict=True), target_sums, strict=True), found)  # type: ignore[call-overload]


def _differing(pairs: Iterable[tuple[tuple[KeyRange, Checksum], Checksum]], found: Differences) -> list:
    """The top-level ranges whose checksums differ (and the rows counted on each side)."""
    pending: list[tuple[KeyRange, Checksum, Checksum]] = []
    for (key_range, mine), theirs in pairs:
        found.ranges_scanned += 1
        found.source_rows += mine.rows
        found.target_rows += theirs.rows
        if mine != theirs:
            pending.append((key_range, mine, theirs))
    return pending


def _next_level(
    source: Side,
    target: Side,
    pending: list[tuple[KeyRange, Checksum, Checksum]],
    settings: DiffSettings,
    found: Differences,
    source_rows: dict[KeyValues, int],
    target_rows: dict[KeyValues, int],
    depth: int,
) -> list[tuple[KeyRange, Checksum, Checksum]]:
    """Fetch the rows of small differing ranges; split the others and keep those whose parts differ."""
    leaves: list[KeyRange] = []
    splits: list[tuple[KeyRange, list[KeyValues]]] = []
    for key_range, mine, theirs in pending:
        largest = max(mine.rows, theirs.rows)
        if largest <= settings.leaf_rows or depth > MAX_DEPTH:
            leaves.append(key_range)
            continue
        splitter = source if mine.rows >= theirs.rows else target
        bounds = splitter.split_boundaries(key_range, max(1, math.ceil(largest / settings.factor)))
        bounds = [b for b in bounds if b != key_range.upper]
        found.rows_transferred += len(bounds)
        if bounds:
            splits.append((key_range, bounds))
        else:
            leaves.append(key_range)
    if leaves:
        rows, other = _both(
            lambda: [source.row_hashes(r) for r in leaves], lambda: [target.row_hashes(r) for r in leaves]
        )
        for mine_rows, their_rows in zip(rows, other, strict=True):  # type: ignore[call-overload]
            found.rows_transferred += len(mine_rows) + len(their_rows)
            source_rows.update(mine_rows)
            target_rows.update(their_rows)
    if not splits:
        return []
    sums, target_sums = _both(
        lambda: [source.checksums(r, b) for r, b in splits], lambda: [target.checksums(r, b) for r, b in splits]
    )
    differing: list[tuple[KeyRange, Checksum, Checksum]] = []
    for (key_range, bounds), mine_parts, their_parts in zip(splits, sums, target_sums, strict=True):  # type: ignore[call-overload]
        parts = _ranges(bounds, key_range)
        found.ranges_scanned += len(parts)
        differing += [(p, a, b) for p, a, b in zip(parts, mine_parts, their_parts, strict=True) if a != b]
    return differing
