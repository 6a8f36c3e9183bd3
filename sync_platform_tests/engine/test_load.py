"""The loader's reactions to what the warehouse answers: conflicts retried, secrets never in an error."""

from __future__ import annotations

import psycopg2
import pytest
import yaml

from sync_platform.engine import load as load_module
from sync_platform.engine.load import LoadError, LoadSpec, TableLoader
from sync_platform.warehouse import RedshiftDialect, S3Authorization, TableRef
from sync_platform_tests.engine.harness import Harness, assert_same
from sync_platform_tests.engine.test_sync import COLUMNS, create_orders, hybrid


@pytest.fixture
def harness(mysql_db, warehouse_db, make_config_dir) -> Harness:
    return Harness(make_config_dir(postgres=warehouse_db), mysql_db, warehouse_db)


def test_a_serialization_conflict_is_retried_and_the_batch_loads_once(harness: Harness) -> None:
    """Redshift answers concurrent ledger writers with error 1023; the batch is retried, not failed."""
    h = harness
    create_orders(h, "conflicted", 40)
    h.set_tables({f"{h.mysql.name}.conflicted": hybrid(lookback=0)})
    h.sync("conflicted")  # creates the ledger
    # The server itself refuses the next ledger row once, as Redshift does to the loser of a conflict.
    with h.pg.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE SEQUENCE conflict_once; "
            "CREATE FUNCTION conflict_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF nextval('conflict_once') = 1 THEN RAISE EXCEPTION '1023' USING ERRCODE = 'serialization_failure', "
            "DETAIL = 'Serializable isolation violation on table - 1, transactions forming the cycle are: 1, 2'; "
            "END IF; RETURN NEW; END $$; "
            'CREATE TRIGGER conflict_once BEFORE INSERT ON public."_sync_load_ledger" '
            "FOR EACH ROW EXECUTE FUNCTION conflict_once()"
        )
        conn.commit()
    h.mysql.execute("UPDATE conflicted SET amount = amount + 1, updated_at = '2025-06-01' WHERE id <= 5")
    result = h.sync("conflicted")
    assert result.load.rows == 5 and len(result.load.batches) == 1
    assert h.pg.query("SELECT last_value FROM conflict_once") == [(2,)]  # refused once, then accepted
    assert assert_same(h, "conflicted", COLUMNS, "id") == 40


def test_a_redshift_conflict_is_recognised_by_its_code_and_text() -> None:
    rs = RedshiftDialect()
    assert rs.is_conflict("XX000", "1023\nDETAIL:  Serializable isolation violation on table - 100, transactions ...")
    assert rs.is_conflict("40001", "could not serialize access")
    assert not rs.is_conflict("42601", 'syntax error at or near "COPY"')
    race = 'duplicate key value violates unique constraint "pg_type_typname_nsp_index"'
    assert rs.is_conflict("23505", race) and rs.is_conflict("42P07", 'relation "t" already exists')
    assert not rs.is_conflict("23505", 'duplicate key value violates unique constraint "orders_pkey"')


def test_a_warehouse_error_quoting_the_copy_credentials_never_carries_the_secret(harness: Harness) -> None:
    """libpq echoes the statement around a syntax error; a COPY with keys must not reach the error text."""
    h = harness
    secret, token = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "FQoGZXIvYXdzEXAMPLETOKEN"
    auth = S3Authorization(access_key_id="AKIAEXAMPLE", secret_access_key=secret, session_token=token)
    copy = RedshiftDialect().copy_from_s3("stage", ["id"], "s3://b/k/_manifest-copy.json", auth)
    credentials = copy.sql[copy.sql.index("CREDENTIALS") :]
    excerpts = []
    # Both a statement cut before the keys and one whose error lies just after them (as Redshift's parser,
    # which knows CREDENTIALS, would report a mistake in the clauses that follow).
    for broken in (copy.sql.replace("FROM", "FROMM", 1), "SELECT " + credentials.removeprefix("CREDENTIALS ")):
        with h.pg.connect() as conn, conn.cursor() as cur, pytest.raises(psycopg2.Error) as raised:
            cur.execute(broken)  # a real server's syntax error, with its excerpt of the statement
        excerpts.append(raised.value)
    assert "CREDENTIAL" in str(excerpts[0]) and secret[-10:] in str(excerpts[1])  # the excerpt holds key text
    document = yaml.safe_load(h.config.connections_file.read_text())
    document["connections"]["targets"]["dw"]["type"] = "redshift"
    h.config.write("connections.yml", document)
    with h.registry() as registry:
        spec = LoadSpec("s.t", TableRef("public", "t"), "append", (), (), authorization=auth)
        loader = TableLoader(registry.warehouse("dw"), registry.staging(h.config.staging), spec)
        failures = [LoadError(loader._failure_text("loading batch b-1 into public.t", e)) for e in excerpts]
    for failure in failures:
        text = str(failure)
        assert "public.t" in text and "SQLSTATE 42601" in text
        assert not any(part in text for part in (secret[:6], secret[-6:], token[:6], token[-6:]))  # not even a piece


def test_readers_of_the_target_do_not_wait_while_a_batch_is_copied(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stage is filled and committed before the target is locked: Redshift's LOCK blocks readers too."""
    h = harness
    create_orders(h, "readable", 30)
    h.set_tables({f"{h.mysql.name}.readable": hybrid(lookback=0)})
    h.sync("readable")
    h.mysql.execute("UPDATE readable SET amount = amount + 1, updated_at = '2025-06-01' WHERE id <= 10")
    seen: list[object] = []
    real = load_module.checkpoint

    def read_during_copy(name: str) -> None:
        if name == "load.copy" and not seen:
            with (
                h.registry() as registry,
                registry.warehouse(h.config.target).connect() as conn,
                conn.cursor() as cur,
            ):
                cur.execute("SET statement_timeout TO 10000")  # a blocked reader fails instead of hanging
                try:
                    cur.execute(f"SELECT COUNT(*) FROM {h.target('readable')}")
                    seen.append(cur.fetchone()[0])
                except psycopg2.Error as exc:
                    seen.append(exc)
        real(name)

    monkeypatch.setattr(load_module, "checkpoint", read_during_copy)
    h.sync("readable")
    assert seen == [30], seen
    assert assert_same(h, "readable", COLUMNS, "id") == 30
