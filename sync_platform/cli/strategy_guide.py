"""The CDC strategies explained for people: what each reads, what it needs, when to choose it.

Shown by ``cdc strategies`` and ``info --strategy``; the behaviour itself lives in
``sync_platform/engine/strategies.py`` (DESIGN §4).
"""

from __future__ import annotations

from dataclasses import dataclass

import click


@dataclass(frozen=True)
class StrategyGuide:
    name: str
    reads: str
    needs: str
    use_when: str


GUIDES: tuple[StrategyGuide, ...] = (
    StrategyGuide(
        "hybrid",
        "rows with (timestamp, id) past the watermark up to the run's ceiling, paged on (timestamp, id); "
        "the first run reads in primary-key order",
        "cdc_timestamp_column (changes on every update) and cdc_id_column (default: the primary key)",
        "the default for tables that are updated: no row is lost on ties, updates are merged by key",
    ),
    StrategyGuide(
        "timestamp_only",
        "rows with the timestamp past the watermark; the primary key breaks ties internally",
        "cdc_timestamp_column; additional_where is applied here",
        "tables with an update timestamp but no usable id column",
    ),
    StrategyGuide(
        "id_only",
        "rows with the id past the watermark, up to MAX(id) at run start",
        "cdc_id_column (default: the primary key), increasing with every insert",
        "append-only tables (logs, events); updates and rows committed out of id order are missed",
    ),
    StrategyGuide(
        "full_sync",
        "the whole table, paged on the primary key; full_sync_mode replace (atomic swap), append or "
        "paginate (a pass spread over capped runs)",
        "a primary key for paging (replace and append work without one)",
        "small or dimension tables, and tables whose deleted rows must disappear from the target",
    ),
    StrategyGuide(
        "custom_sql",
        "your SELECT, with {table_name}, {last_timestamp}, {last_id}, {ceiling_timestamp} and {limit} filled in",
        "custom_query (one SELECT; anything else is refused) returning the table's own columns, "
        "its cursor columns among them",
        "a filter or join the other strategies cannot express",
    ),
)


def echo_guides() -> None:
    """Print every strategy's explanation."""
    for guide in GUIDES:
        click.echo(f"{guide.name}")
        click.echo(f"  reads:    {guide.reads}")
        click.echo(f"  needs:    {guide.needs}")
        click.echo(f"  use when: {guide.use_when}")
    click.echo("Every strategy stops at a ceiling fixed at run start (min(MAX(cursor), now - safety_lag)) and, for")
    click.echo("tables with a key, re-reads a lookback window (default 60s); loads merge, so re-reads never duplicate.")
    click.echo("Limit of every incremental strategy (hybrid, timestamp_only, id_only, custom_sql): an UPDATE that")
    click.echo("does not change the cursor column is invisible to it, so the target keeps the old values. Make the")
    click.echo("cursor change on every update (ON UPDATE CURRENT_TIMESTAMP), or run full_sync periodically.")
    click.echo("Rows with a NULL cursor follow the table's null_cursor setting (load, the default: read by key).")
