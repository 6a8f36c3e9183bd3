"""Known passwords never leave the configuration through the command line or the Dagster instance.

Every command of ``sync-platform`` runs as an operator runs it (its own process, ``--debug`` and a
``--log-file``) against the real stack with a MySQL login and a PostgreSQL password that contain
URL-special characters: first the paths that succeed (syncs as Dagster runs, watermarks, checks,
clean-up, the demo), then commands failing: a custom query MySQL rejects (connectorx, whose errors
could echo its URL), the warehouse database missing, the warehouse and then MySQL on a dead port,
the MySQL database missing. Each password is given once literally in ``connections.yml`` and once
as ``${VARIABLE}`` (which Dagster's resources carry as an ``EnvVar``). Then the passwords, plain,
URL- or JSON-encoded and in part, are searched in every output, log file, JSON document, the
instance's event log (every run, runless events, run records and snapshots), every file under
``DAGSTER_HOME`` byte for byte (SQLite files included) and every staged file (manifests, parquet).
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import dagster as dg
import pytest
import yaml
from dagster._serdes import serialize_value

from sync_platform.cli.main import cli as cli_root
from sync_platform_tests.engine.harness import PIPELINE, Harness
from sync_platform_tests.reliability.support import add_table, instance_at, make_append, make_keyed, run_cli
from sync_platform_tests.reliability.test_secrets import MYSQL_PASSWORD, PG_PASSWORD
from sync_platform_tests.stack import free_port

USER = "spt_cli_secret_user"
MYSQL_VARIABLE = "SPT_CLI_MYSQL_PASSWORD"
PG_VARIABLE = "SPT_CLI_PG_PASSWORD"
MISSING_DATABASE = "spt_cli_secrets_no_such_database"
# Parts of each password that no other text contains, so that a partly masked or cut value is found too.
CORES = ("S3cr3t@/x%?#", "An0ther@S3cr3t")

# The commands the operator's guide lists; one that this build lacks is reported as not tried.
EXPECTED_COMMANDS = (
    "config setup",
    "config list-pipelines",
    "config show-pipeline",
    "config validate-pipeline",
    "config status",
    "connections list",
    "connections test",
    "connections info",
    "connections health",
    "sync",
    "sync pipeline",
    "sync connections",
    "backup",
    "watermark get",
    "watermark set",
    "watermark list",
    "watermark reset",
    "watermark-count validate-counts",
    "s3clean list",
    "cdc strategies",
    "cdc test-strategy",
    "cdc validate",
    "column-mappings list",
    "column-mappings show",
    "status",
    "info",
    "version",
    "features",
    "reconcile",
)


def _forms(secret: str) -> set[str]:
    """The ways a password shows up in text: as is, URL-quoted (connection URLs), JSON-escaped."""
    return {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret), json.dumps(secret)[1:-1]}


NEEDLES = sorted({form for secret in (MYSQL_PASSWORD, PG_PASSWORD, *CORES) for form in _forms(secret)})


def _leaks(text: str) -> list[str]:
    return [needle for needle in NEEDLES if needle in text]


def _byte_leaks(data: bytes) -> list[str]:
    return [needle for needle in NEEDLES if needle.encode() in data or needle.encode("utf-16-le") in data]


def command_paths() -> set[str]:
    """Every command of this build: leaf commands, and groups that run on their own (``sync -t``)."""
    found: set[str] = set()

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            if path and command.invoke_without_command:
                found.add(" ".join(path))
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        else:
            found.add(" ".join(path))

    walk(cli_root, ())
    return found


def command_path(args: tuple[str, ...]) -> str:
    """The command an argument list invokes (``sync pipeline -p P`` → ``sync pipeline``)."""
    command: click.Command = cli_root
    path: list[str] = []
    for arg in args:
        if not isinstance(command, click.Group) or arg not in command.commands:
            break
        command = command.commands[arg]
        path.append(arg)
    return " ".join(path)


@dataclass
class Sweep:
    """The CLI runs of the test and every text they produced, by where it was found."""

    h: Harness
    home: Path
    work: Path
    texts: dict[str, str] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    runs: list[tuple[str, tuple[str, ...], int]] = field(default_factory=list)  # phase, args, exit code

    def run(self, phase: str, *args: str, json_logs: bool = False, config_dir: Path | None = None) -> int:
        number = len(self.runs)
        log_file = self.work / f"{number:02d}.log"
        options = ["--debug", "--log-file", str(log_file), *(["--json-logs"] if json_logs else [])]
        env = {MYSQL_VARIABLE: MYSQL_PASSWORD, PG_VARIABLE: PG_PASSWORD}
        result = run_cli(config_dir or self.h.config.path, self.home, *args, options=options, env=env)
        label = f"[{phase}] {' '.join(args)}"
        self.texts[f"{label}: stdout"] = result.stdout
        self.texts[f"{label}: stderr"] = result.stderr
        if log_file.exists():
            self.texts[f"{label}: log file"] = log_file.read_text(errors="replace")
        self.runs.append((phase, args, result.returncode))
        return result.returncode

    def output(self, phase: str, args: tuple[str, ...]) -> str:
        label = f"[{phase}] {' '.join(args)}"
        return self.texts[f"{label}: stdout"] + self.texts[f"{label}: stderr"]

    def json_file(self, name: str) -> str:
        return str(self.work / name)

    def read_json_outputs(self) -> int:
        documents = sorted(self.work.glob("*.json"))
        for path in documents:
            self.texts[f"JSON output {path.name}"] = path.read_text()
        return len(documents)

    def read_staged(self) -> int:
        files = [p for p in Path(self.h.config.staging_location).rglob("*") if p.is_file()]
        for path in files:
            self.blobs[f"staged {path.relative_to(self.h.config.staging_location)}"] = path.read_bytes()
        return len(files)


def _connections(
    h: Harness,
    *,
    mysql: str,
    pg: str,
    source_port: int | None = None,
    target_port: int | None = None,
    source_database: str | None = None,
    target_database: str | None = None,
) -> None:
    """connections.yml with the secret login (and, to make commands fail, a dead port or a missing database)."""
    document = yaml.safe_load(h.config.connections_file.read_text())
    source = document["connections"]["sources"][h.config.source]
    target = document["connections"]["targets"][h.config.target]
    source.update(username=USER, password=mysql, port=source_port or h.mysql.port)
    source["database"] = source_database or h.mysql.name
    target.update(password=pg, port=target_port or h.pg.port)  # trust auth: PostgreSQL ignores it
    target["database"] = target_database or h.pg.name
    h.config.write("connections.yml", document)


@pytest.fixture
def secret_cli(mysql_db, pg_db, make_config_dir) -> Iterator[Harness]:
    """A project whose MySQL login needs MYSQL_PASSWORD (as ``test_secrets.py`` sets it up)."""
    mysql_db.execute(f"DROP USER IF EXISTS '{USER}'@'%'")
    mysql_db.execute(f"CREATE USER '{USER}'@'%%' IDENTIFIED BY %s", (MYSQL_PASSWORD,))
    mysql_db.execute(f"GRANT ALL ON `{mysql_db.name}`.* TO '{USER}'@'%'")
    h = Harness(make_config_dir(), mysql_db, pg_db)
    _connections(h, mysql=MYSQL_PASSWORD, pg=f"${{{PG_VARIABLE}}}")
    yield h
    mysql_db.execute(f"DROP USER IF EXISTS '{USER}'@'%'")
    # Should a command create the database that stands for a missing one, the next run must miss it again.
    pg_db.execute(f'DROP DATABASE IF EXISTS "{MISSING_DATABASE}"')


def _copy_config(h: Harness, where: Path) -> Path:
    shutil.copytree(h.config.path, where)
    return where


def _event_log_texts(home: Path) -> dict[str, str]:
    """The whole instance, serialized: each run's records, runless asset events, run records and snapshots."""
    instance = instance_at(home)
    texts: dict[str, str] = {}
    for run in instance.get_runs():
        records = instance.get_records_for_run(run.run_id, limit=1_000_000).records
        texts[f"event log of run {run.run_id}"] = "\n".join(serialize_value(r.event_log_entry) for r in records)
        texts[f"run record {run.run_id}"] = serialize_value(run)
        if run.job_snapshot_id:
            texts[f"job snapshot of {run.run_id}"] = serialize_value(instance.get_job_snapshot(run.job_snapshot_id))
        if run.execution_plan_snapshot_id:
            plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
            texts[f"execution plan of {run.run_id}"] = serialize_value(plan)
    runless = instance.get_records_for_run("", limit=1_000_000).records
    texts["runless events"] = "\n".join(serialize_value(r.event_log_entry) for r in runless)
    for key in instance.all_asset_keys():
        events = [*_all(instance.fetch_materializations, key), *_all(instance.fetch_observations, key)]
        texts[f"asset events {key.to_user_string()}"] = "\n".join(serialize_value(r.event_log_entry) for r in events)
    return texts


def _all(fetch: Callable[..., Any], key: dg.AssetKey) -> list[Any]:
    """Every record ``fetch`` (``fetch_materializations`` / ``fetch_observations``) has, page by page."""
    records: list[Any] = []
    cursor = None
    while True:
        page = fetch(key, limit=1000, cursor=cursor)
        records.extend(page.records)
        if not page.has_more:
            return records
        cursor = page.cursor


@pytest.mark.reliability_slow
@pytest.mark.timeout(600)  # ~80 CLI processes
def test_no_cli_command_leaks_a_password(secret_cli: Harness, tmp_path: Path, fault_report) -> None:
    h = secret_cli
    fault = (
        "Known MySQL and PostgreSQL passwords (URL-special characters; literal and ${VAR}) through every "
        "`sync-platform` command with --debug --log-file, succeeding and failing"
    )
    fault_report(fault, "not reached")
    db = h.mysql.name
    make_keyed(h, "s_keyed", 300)
    make_append(h, "s_append", 200)
    make_keyed(h, "s_ranges", 120)  # loaded by `sync initial-load` before any other sync reads it
    h.mysql.execute("CREATE TABLE s_adhoc LIKE s_keyed")
    h.mysql.execute("INSERT INTO s_adhoc SELECT * FROM s_keyed WHERE id <= 80")
    keyed, append, adhoc, ranges = f"{db}.s_keyed", f"{db}.s_append", f"{db}.s_adhoc", f"{db}.s_ranges"
    work = tmp_path / "out"
    work.mkdir()
    sweep = Sweep(h, tmp_path / "dagster_home", work)
    src, dw = h.config.source, h.config.target

    # --------------------------------------------------------------- the paths that succeed
    must_succeed = [
        ("version",),
        ("features",),
        ("info",),
        ("info", "--strategy"),
        ("config", "list-pipelines"),
        ("config", "show-pipeline", PIPELINE, "-v"),
        ("config", "validate-pipeline", PIPELINE, "-v"),
        ("config", "status"),
        ("connections", "list"),
        ("connections", "test", "--all"),
        ("connections", "info", src),
        ("connections", "info", dw),
        ("connections", "health"),
        ("cdc", "strategies"),
        ("cdc", "test-strategy", "-t", keyed, "-s", "hybrid", "--timestamp-column", "updated_at", "--id-column", "id"),
        ("cdc", "validate", "-t", keyed),
        ("cdc", "validate-pipeline", "-p", PIPELINE, "-o", sweep.json_file("cdc_validate_pipeline.json")),
        ("column-mappings", "list"),
        ("column-mappings", "show", "-t", keyed),
        ("column-mappings", "clear", "-t", keyed, "--force"),
        ("column-mappings", "clear-all", "--force"),
        ("sync", "-t", keyed, "--dry-run"),
        ("sync", "initial-load", "-t", ranges, "--ranges", "3", "--json-output", sweep.json_file("initial_load.json")),
        ("sync", "-t", keyed, "--json-output", sweep.json_file("sync_t.json")),
        ("sync", "pipeline", "-p", PIPELINE, "--json-output", sweep.json_file("sync_pipeline.json")),
        ("sync", "connections", "-s", src, "-r", dw, "-t", adhoc, "--json-output", sweep.json_file("sync_conn.json")),
        ("backup", "-t", append, "--json-output", sweep.json_file("backup.json")),
        ("watermark", "get", "-t", keyed, "--show-files"),
        ("watermark", "list"),
        ("watermark-count", "validate-counts", "-t", keyed),
        ("watermark", "set", "-t", keyed, "--timestamp", "2025-01-01 00:01:00", "--id", "240", "-y"),
        ("watermark", "reset", "-t", keyed, "-y"),
        ("watermark", "force-reset", "-t", keyed, "-y"),
        ("sync", "-t", keyed, "--json-output", sweep.json_file("sync_after_reset.json")),
        ("reconcile", "-t", keyed, "--repair", "--json-output", sweep.json_file("reconcile.json")),
        ("status",),
        ("s3clean", "list", "--show-timestamps"),
        ("s3clean", "clean-all", "--older-than", "0s", "--dry-run"),
    ]
    failed_ok = [(args, code) for args in must_succeed if (code := sweep.run("ok", *args)) != 0]
    # `config setup` on an existing project keeps its files but adds the example ones (pipelines/shop.yml,
    # whose connections this project lacks, makes every later command fail): it runs on a copy.
    setup = sweep.run("ok", "config", "setup", config_dir=_copy_config(h, tmp_path / "setup_copy"))
    if setup != 0:
        failed_ok.append((("config", "setup"), setup))
    sweep.run("ok", "watermark-count", "set-count", "-t", keyed, "--count", "1")  # exits 1 by design: nothing stored
    assert not failed_ok, f"commands meant to succeed failed: {failed_ok}; see {work}"
    staged = sweep.read_staged()  # before `s3clean clean` deletes the loaded batches
    assert any(name.endswith("_manifest.json") for name in sweep.blobs), "batches were staged"
    assert sweep.run("ok", "s3clean", "clean", "-t", keyed, "--older-than", "0s") == 0
    demo = sweep.run("ok", "demo", "--pipeline", PIPELINE)  # seeds its shop tables in this database too

    # --------------------------------------------------------------- the same commands failing
    # Each password now the other way round (MySQL from ${VAR}, PostgreSQL literal).
    _connections(h, mysql=f"${{{MYSQL_VARIABLE}}}", pg=PG_PASSWORD)
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
    h.mysql.execute("CREATE TABLE s_bad_custom LIKE s_keyed")
    h.mysql.execute("INSERT INTO s_bad_custom SELECT * FROM s_keyed WHERE id <= 20")
    bad = f"{db}.s_bad_custom"
    # A query MySQL rejects through connectorx (whose errors may echo its URL): not transient, fails at once.
    must_fail = [
        ("sync", "-t", bad, "--json-output", sweep.json_file("fail_custom.json")),
        ("cdc", "validate", "-t", bad),
    ]
    codes = {args: sweep.run("bad query", *args, json_logs=True) for args in must_fail}
    sweep.run("bad query", "sync", "-t", bad, "--dry-run")  # may succeed: it shows the SQL

    # A warehouse database that does not exist: a permanent error, the run fails at once and prints it.
    _connections(h, mysql=f"${{{MYSQL_VARIABLE}}}", pg=PG_PASSWORD, target_database=MISSING_DATABASE)
    broken_target = [
        ("sync", "-t", keyed, "--json-output", sweep.json_file("fail_target.json")),
        ("sync", "pipeline", "-p", PIPELINE, "--json-output", sweep.json_file("fail_target_pipeline.json")),
        ("sync", "-t", keyed, "--redshift-only"),
        ("connections", "test", "--all"),
        ("connections", "health"),
        ("watermark-count", "validate-counts", "-t", keyed),
    ]
    codes |= {args: sweep.run("target missing", *args, json_logs=True) for args in broken_target}
    assert MISSING_DATABASE in sweep.output("target missing", broken_target[0]), "the error was printed"
    # Commands that read the warehouse only for some answers may succeed without it. (Not `demo`: it
    # creates a missing warehouse database.)
    for args in [("status",), ("watermark", "get", "-t", keyed), ("watermark", "list")]:
        sweep.run("target missing", *args)

    # The warehouse on a dead port: a transient error, which the op's retry policy would retry for 4–5 min
    # (30 s, 60 s, 120 s ± jitter); --retries 0 makes the run fail at the first attempt.
    _connections(h, mysql=f"${{{MYSQL_VARIABLE}}}", pg=PG_PASSWORD, target_port=free_port())
    quick = ("--retries", "0")
    target_down = [
        ("sync", "-t", keyed, "--json-output", sweep.json_file("fail_target_port.json"), *quick),
        ("connections", "test", dw),
        ("demo", "--pipeline", PIPELINE),
        ("reconcile", "-t", keyed, "--json-output", sweep.json_file("fail_reconcile_target_port.json")),
    ]
    codes |= {args: sweep.run("target down", *args, json_logs=True) for args in target_down}

    _connections(h, mysql=f"${{{MYSQL_VARIABLE}}}", pg=PG_PASSWORD, source_database=MISSING_DATABASE)
    source_missing = [
        ("sync", "-t", keyed, "--json-output", sweep.json_file("fail_source_db.json")),
        ("cdc", "validate", "-t", keyed),
    ]
    codes |= {args: sweep.run("source missing", *args) for args in source_missing}

    _connections(h, mysql=f"${{{MYSQL_VARIABLE}}}", pg=PG_PASSWORD, source_port=free_port())
    broken_source = [
        ("sync", "-t", keyed, "--json-output", sweep.json_file("fail_source.json"), *quick),
        ("backup", "-t", append, *quick),
        ("sync", "-t", keyed, "--dry-run"),
        ("cdc", "validate", "-t", keyed),
        ("cdc", "test-strategy", "-t", keyed, "-s", "hybrid", "--timestamp-column", "updated_at", "--id-column", "id"),
        ("cdc", "validate-pipeline", "-p", PIPELINE, "-o", sweep.json_file("fail_cdc_pipeline.json")),
        ("column-mappings", "show", "-t", keyed),
        ("connections", "test", src),
    ]
    codes |= {args: sweep.run("source down", *args) for args in broken_source}
    for args in [("status",), ("s3clean", "list")]:
        sweep.run("source down", *args)
    succeeded = [" ".join(args) for args, code in codes.items() if code == 0]
    assert not succeeded, f"commands meant to fail succeeded: {succeeded}"

    # --------------------------------------------------------------- every command of this build tried?
    present = command_paths()
    tried = {command_path(args) for _phase, args, _code in sweep.runs}
    untried = sorted(present - tried)
    assert not untried, f"commands of this build the sweep does not run yet (add them): {untried}"
    absent = sorted(set(EXPECTED_COMMANDS) - present)

    # --------------------------------------------------------------- search
    documents = sweep.read_json_outputs()
    staged += sweep.read_staged()
    events = _event_log_texts(sweep.home)
    sweep.texts.update(events)
    instance_files = [p for p in sweep.home.rglob("*") if p.is_file()]
    for path in instance_files:
        sweep.blobs[f"DAGSTER_HOME/{path.relative_to(sweep.home)}"] = path.read_bytes()
    leaks = {where: found for where, text in sweep.texts.items() if (found := _leaks(text))}
    leaks |= {where: found for where, data in sweep.blobs.items() if (found := _byte_leaks(data))}
    assert not leaks, f"a password leaked: {leaks}"

    runs = instance_at(sweep.home).get_runs()
    assert len(runs) >= 6, "the syncs ran as Dagster runs"
    sqlite = sum(p.suffix == ".db" for p in instance_files)
    failing = sum(code != 0 for _phase, _args, code in sweep.runs)
    fault_report(
        fault,
        f"absent from the stdout/stderr and --log-file of {len(sweep.runs)} invocations of {len(tried)} commands "
        f"({failing} failing on purpose, demo exit {demo}), {documents} JSON outputs, the event log of {len(runs)} "
        f"Dagster runs plus runless asset events, run records and snapshots, {len(instance_files)} files under "
        f"DAGSTER_HOME ({sqlite} SQLite), {staged} staged files (manifests, parquet); commands not tried "
        f"(not in this build): {', '.join(absent) or 'none'}",
    )
