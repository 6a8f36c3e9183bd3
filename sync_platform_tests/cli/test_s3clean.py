"""``s3clean`` removes only loaded batches of exactly the named table, unless told otherwise."""

from __future__ import annotations

import pytest

from sync_platform_tests.cli.test_config_and_connections_cli import run
from sync_platform_tests.engine.harness import Harness, assert_same
from sync_platform_tests.engine.test_sync import COLUMNS, create_orders, hybrid


@pytest.fixture
def harness(mysql_db, pg_db, make_config_dir) -> Harness:
    h = Harness(make_config_dir(), mysql_db, pg_db)
    for table in ("orders", "orders_old", "pend"):
        create_orders(h, table, 30)
    h.set_tables({f"{mysql_db.name}.{t}": hybrid(lookback=0) for t in ("orders", "orders_old", "pend")})
    h.sync("orders")
    h.sync("orders_old")
    h.extract("pend")  # staged, not loaded (the older tool's --backup-only)
    return h


def staged_batches(h: Harness, table: str) -> list[str]:
    from sync_platform.engine.stage import list_batches
    from sync_platform.engine.sync import table_prefix

    spec = h.spec(table)
    with h.registry() as registry:
        return [m.batch_id for m in list_batches(registry.staging(spec.staging), table_prefix(spec))]


def test_list_shows_loaded_and_pending_batches(harness: Harness) -> None:
    db = harness.mysql.name
    result = run("--config-dir", str(harness.config.path), "s3clean", "list", "-t", f"{db}.orders", "-t", f"{db}.pend")
    assert result.returncode == 0, result.stderr
    assert "loaded" in result.stdout and "pending" in result.stdout


def test_clean_deletes_only_loaded_batches_of_exactly_that_table(harness: Harness) -> None:
    db = harness.mysql.name
    result = run(
        "--config-dir", str(harness.config.path), "s3clean", "clean", "-t", f"{db}.orders", "--older-than", "0s"
    )
    assert result.returncode == 0, result.stderr
    assert staged_batches(harness, "orders") == []
    assert len(staged_batches(harness, "orders_old")) == 1  # a longer name sharing the prefix is untouched
    # Cleaning loaded batches loses nothing and a rerun loads nothing twice.
    harness.mysql.execute("UPDATE orders SET name = 'later', updated_at = '2026-01-01' WHERE id = 3")
    harness.sync("orders")
    assert assert_same(harness, "orders", COLUMNS, "id") == 30


def test_a_batch_that_is_not_loaded_is_kept_unless_forced(harness: Harness) -> None:
    db = harness.mysql.name
    config = str(harness.config.path)
    kept = run("--config-dir", config, "s3clean", "clean", "-t", f"{db}.pend", "--older-than", "0s")
    assert kept.returncode == 0 and "keeping 1 batch(es) not loaded yet" in kept.stdout
    assert len(staged_batches(harness, "pend")) == 1
    clean_all = run("--config-dir", config, "s3clean", "clean-all", "--older-than", "0s")
    assert clean_all.returncode == 0 and len(staged_batches(harness, "pend")) == 1
    # After loading, the same command may delete it.
    harness.load("pend")
    run("--config-dir", config, "s3clean", "clean", "-t", f"{db}.pend", "--older-than", "0s")
    assert staged_batches(harness, "pend") == []
    assert assert_same(harness, "pend", COLUMNS, "id") == 30


def test_force_deletes_unloaded_batches_only_when_asked(harness: Harness) -> None:
    db = harness.mysql.name
    config = str(harness.config.path)
    dry = run(
        "--config-dir", config, "s3clean", "clean", "-t", f"{db}.pend", "--older-than", "0s", "--force", "--dry-run"
    )
    assert "would delete" in dry.stdout and len(staged_batches(harness, "pend")) == 1
    forced = run(
        "--config-dir", config, "s3clean", "clean", "-t", f"{db}.pend", "--older-than", "0s", "--force", "--yes"
    )
    assert forced.returncode == 0 and staged_batches(harness, "pend") == []


def test_retention_keeps_recent_loaded_batches(harness: Harness) -> None:
    db = harness.mysql.name
    result = run("--config-dir", str(harness.config.path), "s3clean", "clean", "-t", f"{db}.orders")
    assert result.returncode == 0 and len(staged_batches(harness, "orders")) == 1  # default: 7 days


def test_an_ambiguous_table_asks_for_a_pipeline(harness: Harness) -> None:
    db = harness.mysql.name
    settings = {
        "name": "p2",
        "source": harness.config.source,
        "target": harness.config.target,
        "s3_config": harness.config.staging,
    }
    harness.config.write("pipelines/p2.yml", {"pipeline": settings, "tables": {f"{db}.orders": hybrid()}})
    result = run("--config-dir", str(harness.config.path), "s3clean", "list", "-t", f"{db}.orders")
    assert result.returncode == 1 and "several pipelines (p, p2); name one with -p" in result.stderr
