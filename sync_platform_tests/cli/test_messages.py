"""Messages a person understands: argument errors, guesses at a mistyped table, confirmations without a
terminal, a custom query caught by validation, connection types."""

from __future__ import annotations

from typing import Any

import pytest

from sync_platform_tests.cli.test_config_and_connections_cli import run
from sync_platform_tests.cli.test_s3clean import staged_batches
from sync_platform_tests.engine.harness import Harness
from sync_platform_tests.engine.test_sync import create_orders, hybrid


@pytest.fixture
def harness(mysql_db: Any, pg_db: Any, make_config_dir: Any) -> Harness:
    h = Harness(make_config_dir(), mysql_db, pg_db)
    create_orders(h, "orders", 20)
    h.set_tables({f"{mysql_db.name}.orders": hybrid(lookback=0)})
    return h


def _cli(h: Harness, *args: str, **kwargs: Any) -> Any:
    return run("--config-dir", str(h.config.path), *args, **kwargs)


def test_an_unqualified_or_misspelled_table_gets_a_guess_and_no_environment_label(harness: Harness) -> None:
    db = harness.mysql.name
    for command in (("sync", "-t"), ("backup", "-t"), ("watermark", "get", "-t")):
        for typed in ("orders", f"{db}.ordres"):
            result = _cli(harness, *command, typed)
            assert result.returncode == 1, result.stderr
            assert f"did you mean `{db}.orders`?" in result.stderr, result.stderr
            assert "environment" not in result.stderr and "command line" in result.stderr, result.stderr
    in_pipeline = _cli(harness, "sync", "pipeline", "-p", "p", "-t", f"{db}.order")
    assert in_pipeline.returncode == 1 and f"did you mean `{db}.orders`?" in in_pipeline.stderr, in_pipeline.stderr


def test_a_confirmation_without_a_terminal_says_pass_yes_and_exits_1(harness: Harness) -> None:
    db = harness.mysql.name
    harness.extract("orders")  # staged, not loaded: deleting it needs a confirmation
    result = _cli(harness, "s3clean", "clean", "-t", f"{db}.orders", "--older-than", "0s", "--force", input="")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pass --yes" in result.stderr and "interrupted" not in result.stderr
    assert len(staged_batches(harness, "orders")) == 1  # nothing deleted


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        ("SELECT * FROM {table_name}; DROP TABLE canary", "single SELECT"),
        ("DELETE FROM canary", "must be a SELECT"),
        ("SELECT * FROM {table_name} INTO OUTFILE '/tmp/x'", "may only read"),
    ],
)
def test_validate_pipeline_catches_a_custom_query_that_is_not_one_select(
    harness: Harness, query: str, complaint: str
) -> None:
    db = harness.mysql.name
    harness.set_tables({f"{db}.orders": {"cdc_strategy": "custom_sql", "custom_query": query}})
    result = _cli(harness, "config", "validate-pipeline", "p")
    assert result.returncode == 1, result.stdout + result.stderr
    pipeline_file = harness.config.path / "pipelines" / "p.yml"
    assert f'{pipeline_file}: tables."{db}.orders".custom_query: ' in result.stderr, result.stderr
    assert complaint in result.stderr


def test_connections_list_knows_local_staging(harness: Harness) -> None:
    result = _cli(harness, "connections", "list", "--type", "local")
    assert result.returncode == 0, result.stderr
    assert "stage" in result.stdout and "local" in result.stdout and "src" not in result.stdout
