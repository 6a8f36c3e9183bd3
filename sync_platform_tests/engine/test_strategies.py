"""Read plans page on the keyset, bound the run by the ceiling and start where the watermark says."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest

from sync_platform.configuration.loader import build_table_spec
from sync_platform.configuration.models import ConnectionsFile, PipelineSettings, TableConfig
from sync_platform.engine.strategies import (
    CursorColumn,
    PlanError,
    build_plan,
    ceiling_from,
    check_custom_query,
    choose_strategy,
    literal,
    run_cap,
)
from sync_platform.engine.watermark import Watermark, later


@dataclass(frozen=True)
class Col:
    name: str
    data_type: str


@dataclass(frozen=True)
class Table:
    schema: str
    table: str
    columns: tuple[Col, ...]
    primary_key: tuple[str, ...]
    unique_keys: tuple[tuple[str, ...], ...] = ()


ORDERS = Table("shop", "orders", (Col("id", "bigint"), Col("updated_at", "datetime"), Col("note", "text")), ("id",))
EVENTS = Table("shop", "events", (Col("ts", "timestamp"), Col("payload", "text")), ())


def spec(**table: object):
    settings = PipelineSettings(name="p", source="s", target="t", s3_config="l")
    return build_table_spec(settings, ConnectionsFile(), "shop", "orders", TableConfig(**table), target_schema="dw")


def test_hybrid_pages_on_timestamp_then_key_and_stops_at_the_ceiling() -> None:
    s = spec(cdc_strategy="hybrid", cdc_timestamp_column="updated_at", cdc_id_column="id", lookback=0)
    choice = choose_strategy(s, ORDERS)
    ceiling = dt.datetime(2026, 1, 1, 12, 0, 0, 123456)
    previous = Watermark({"updated_at": dt.datetime(2026, 1, 1, 11, 0, 0, 5), "id": 42})
    plan = build_plan(s, ORDERS, choice, previous, ceiling=ceiling, page_rows=1000, max_rows=None)
    sql = plan.page_sql("*", plan.after, 1000)
    assert sql == (
        "SELECT * FROM `shop`.`orders` WHERE `updated_at` <= '2026-01-01 12:00:00.123456' AND "
        "`updated_at` >= '2026-01-01 11:00:00.000005' AND (`updated_at` > '2026-01-01 11:00:00.000005' "
        "OR (`id` > 42)) ORDER BY `updated_at`, `id` LIMIT 1000"
    )


def test_keyed_tables_reread_the_lookback_window() -> None:
    s = spec(cdc_strategy="hybrid", cdc_timestamp_column="updated_at")
    choice = choose_strategy(s, ORDERS)
    assert choice.lookback_seconds == 60 and choice.write_mode == "merge" and choice.id_columns == ("id",)
    previous = Watermark({"updated_at": dt.datetime(2026, 1, 1, 11, 0, 0), "id": 42})
    plan = build_plan(s, ORDERS, choice, previous, ceiling=None, page_rows=10, max_rows=None)
    assert plan.after is None and plan.lower_from == dt.datetime(2026, 1, 1, 10, 59, 0)


def test_timestamp_without_key_is_a_non_unique_keyset_and_append_only() -> None:
    s = spec(cdc_strategy="timestamp_only", cdc_timestamp_column="ts")
    choice = choose_strategy(s, EVENTS)
    assert choice.write_mode == "append" and choice.lookback_seconds == 0
    plan = build_plan(s, EVENTS, choice, Watermark(), ceiling=None, page_rows=10, max_rows=None)
    assert plan.unique_keyset is False and plan.keyset == (CursorColumn("ts", "timestamp"),)


def test_lookback_on_an_append_only_table_is_refused() -> None:
    with pytest.raises(PlanError, match="only safe when loads merge"):
        choose_strategy(spec(cdc_strategy="timestamp_only", cdc_timestamp_column="ts", lookback="30s"), EVENTS)


def test_unknown_cursor_column_names_the_table_and_the_columns() -> None:
    with pytest.raises(PlanError, match=r"`modified` is not a column.*id, updated_at, note"):
        choose_strategy(spec(cdc_strategy="hybrid", cdc_timestamp_column="modified"), ORDERS)


def test_full_sync_defaults_to_atomic_replace_and_pages_on_the_key() -> None:
    s = spec(cdc_strategy="full_sync")
    choice = choose_strategy(s, ORDERS)
    assert (choice.full_sync_mode, choice.write_mode) == ("replace", "replace")
    plan = build_plan(s, ORDERS, choice, Watermark(), ceiling=None, page_rows=5, max_rows=None)
    assert plan.page_sql("*", (7,), 5) == "SELECT * FROM `shop`.`orders` WHERE `id` > 7 ORDER BY `id` LIMIT 5"


def test_unconfigured_table_gets_a_detected_timestamp_column() -> None:
    choice = choose_strategy(spec(), ORDERS)
    assert choice.timestamp_column == "updated_at" and choice.detected == "hybrid on updated_at, id"


def test_old_limit_and_max_chunks_arithmetic() -> None:
    assert run_cap(10_000, None, None) == (10_000, None)
    assert run_cap(10_000, 500, None) == (500, 500)
    assert run_cap(100, 500, None) == (100, 500)
    assert run_cap(10_000, 500, 3) == (500, 1500)
    assert run_cap(10_000, None, 3) == (10_000, 30_000)


def test_timestamp_literals_do_not_depend_on_the_session_zone() -> None:
    column = CursorColumn("ts", "timestamp")
    value = dt.datetime(2026, 3, 1, 0, 0, 0, 250000, tzinfo=dt.UTC)
    assert literal(column, value) == "FROM_UNIXTIME(1772323200.250000)"
    assert literal(CursorColumn("n", "string"), "it's") == "'it''s'"
    assert literal(CursorColumn("n", "string"), "a\\'b") == "_utf8mb4 X'615c2762'"  # exact in every sql_mode


def test_ceiling_is_the_smaller_of_max_and_the_clock() -> None:
    column = CursorColumn("updated_at", "datetime")
    t1, t2 = dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)
    assert ceiling_from(column, t2, t1) == t1
    assert ceiling_from(column, t1, t2) == t1
    assert ceiling_from(column, None, t2) is None
    assert ceiling_from(CursorColumn("ts", "timestamp"), t1, t2) == t1.replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM shop.orders",
        "SELECT * FROM shop.orders; DROP TABLE shop.orders",
        "SELECT * FROM shop.orders INTO OUTFILE '/tmp/x'",
        "UPDATE shop.orders SET x = 1",
        "SELECT SLEEP(10)",
        "SELECT * FROM t -- comment",
    ],
)
def test_custom_query_must_be_a_plain_select(query: str) -> None:
    with pytest.raises(PlanError):
        check_custom_query(query)


def test_custom_query_with_keywords_inside_strings_is_accepted() -> None:
    check_custom_query("SELECT id, updated_at FROM t WHERE note <> 'drop table; delete' LIMIT {limit}")


def test_watermark_round_trips_exactly() -> None:
    mark = Watermark(
        {
            "updated_at": dt.datetime(2026, 1, 1, 0, 0, 0, 999999),
            "ts": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            "id": 18446744073709551615,
            "amount": Decimal("12345678901234567890.123456789"),
            "day": dt.date(2020, 2, 29),
            "code": "ab'c",
        },
        manual_at=dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
    )
    assert Watermark.from_json(mark.to_json()) == mark
    assert Watermark.from_json(None).is_empty


def test_later_watermark_wins() -> None:
    a = Watermark({"updated_at": dt.datetime(2026, 1, 1), "id": 5})
    b = Watermark({"updated_at": dt.datetime(2026, 1, 1), "id": 9})
    assert later(a, b, ("updated_at", "id")) == b
    assert later(b, a, ("updated_at", "id")) == b
    assert later(Watermark(), a, ("updated_at", "id")) == a
