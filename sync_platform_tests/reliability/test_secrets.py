"""A known password never shows up: not in log records, exceptions, child output, staged manifests
and files, run results, or anything the sync wrote to the warehouse."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import pytest
import yaml

from sync_platform.engine.extract import read_batches
from sync_platform.warehouse.dialect import LEDGER_TABLE
from sync_platform_tests.engine.harness import Harness
from sync_platform_tests.reliability.support import ChildSync, add_table, make_keyed

MYSQL_PASSWORD = "Pw-mysql:S3cr3t@/x%?#1"
PG_PASSWORD = "Pw-pg:An0ther@S3cr3t"
SECRETS = (MYSQL_PASSWORD, PG_PASSWORD)
QUOTED = tuple(s.replace(":", "%3A").replace("@", "%40").replace("/", "%2F") for s in SECRETS)


def _leaks(text: str) -> list[str]:
    return [s for s in (*SECRETS, *QUOTED) if s in text]


@pytest.fixture
def secret_harness(mysql_db, pg_db, make_config_dir) -> Harness:
    user = "spt_secret_user"
    mysql_db.execute(f"DROP USER IF EXISTS '{user}'@'%'")
    mysql_db.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (MYSQL_PASSWORD,))
    mysql_db.execute(f"GRANT ALL ON `{mysql_db.name}`.* TO '{user}'@'%'")
    config = make_config_dir()
    document = yaml.safe_load(config.connections_file.read_text())
    source = document["connections"]["sources"][config.source]
    source.update(username=user, password=MYSQL_PASSWORD)
    document["connections"]["targets"][config.target]["password"] = PG_PASSWORD  # trust auth ignores it
    config.write("connections.yml", document)
    yield Harness(config, mysql_db, pg_db)
    mysql_db.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def _record_text(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if record.exc_info:
        text += "".join(traceback.format_exception(*record.exc_info))
    return text


def test_password_never_leaks(secret_harness: Harness, tmp_path, caplog, fault_report) -> None:
    h = secret_harness
    caplog.set_level(logging.DEBUG)
    make_keyed(h, "s_table", 300)
    result = h.sync("s_table", batch_max_rows=100)
    texts = {"run result": repr(result)}

    # Failures: a table that does not exist (pymysql path), a custom query rejected by MySQL
    # (connectorx path, whose errors may echo the connection URL), a warehouse that is down.
    failures = []
    add_table(h, "s_missing", {"cdc_strategy": "full_sync", "primary_key": ["id"]})
    add_table(
        h,
        "s_bad_custom",
        {
            "cdc_strategy": "custom_sql",
            "custom_query": "SELECT * FROM {table_name} WHERE no_such_column > {last_id} LIMIT {limit}",
            "cdc_timestamp_column": "updated_at",
            "cdc_id_column": "id",
        },
    )
    h.mysql.execute("CREATE TABLE IF NOT EXISTS s_bad_custom LIKE s_table")
    for table in ("s_missing", "s_bad_custom"):
        try:
            h.sync(table)
        except Exception as exc:  # any failure: only its text matters here
            failures.append(exc)
    document = yaml.safe_load(h.config.connections_file.read_text())
    document["connections"]["targets"][h.config.target]["port"] = 1
    h.config.write("connections.yml", document)
    try:
        h.sync("s_table")
    except Exception as exc:
        failures.append(exc)
    with h.registry() as registry:  # the reader itself (connectorx), whose errors may echo its URL
        source = registry.source(h.config.source)
        with source.endpoint() as (host, port):
            url = source.connection_url(host, port)
            assert MYSQL_PASSWORD.replace(":", "%3A").replace("@", "%40")[:6] in url
            try:
                list(read_batches(url, "SELECT no_such_column FROM s_table", 100))
            except Exception as exc:
                failures.append(exc)
    assert len(failures) == 4, failures
    for number, exc in enumerate(failures):
        texts[f"failure {number} ({type(exc).__name__})"] = "".join(traceback.format_exception(exc))

    # The same run in a child process: its stdout/stderr (with tracebacks) must be clean too.
    document["connections"]["targets"][h.config.target]["port"] = h.pg.port
    h.config.write("connections.yml", document)
    make_keyed(h, "s_child", 120)
    child = ChildSync(h, "s_child", tmp_path / "child", env={"SYNC_PLATFORM_CHILD_TRACEBACK": "1"})
    code, out, err = child.run()
    assert code == 0, err[-2000:]
    texts["child output"] = out + err
    h.mysql.execute("DROP TABLE s_child")
    code, out, err = child.run()
    assert code == 1
    texts["child failure output"] = out + err

    texts["log records"] = "\n".join(_record_text(r) for r in caplog.records)
    staged = [p for p in Path(h.config.staging_location).rglob("*") if p.is_file()]
    assert any(p.name == "_manifest.json" for p in staged)
    for path in staged:
        texts[f"staged {path.name}"] = path.read_bytes().decode("latin-1")
    warehouse_text = h.pg.query(f"SELECT string_agg(t::text, E'\\n') FROM (SELECT * FROM public.{LEDGER_TABLE}) t")
    texts["warehouse ledger"] = str(warehouse_text)
    leaks = {where: _leaks(text) for where, text in texts.items() if _leaks(text)}
    assert not leaks, f"a password leaked: {leaks}"
    fault_report(
        "Known MySQL and PostgreSQL passwords (with URL-special characters) during syncs and 5 failures",
        f"absent from {len(caplog.records)} log records, {len(failures) + 1} exception tracebacks, child "
        f"stdout/stderr, {len(staged)} staged files (manifests included), the run result and the ledger",
    )
