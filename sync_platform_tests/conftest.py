"""Fixtures for the real local stack (DESIGN §7): MariaDB, PostgreSQL, S3 (moto) and an SSH bastion.

No mocks: tests talk to real servers on loopback. A service that is down is started if possible;
if it still cannot be reached the test fails with a message saying what to run — it is never
skipped. Helpers without pytest in them live in ``sync_platform_tests.stack``.

Available fixtures:
- ``mysql_db`` (module): a fresh MariaDB database ``MySQLDatabase`` (``.name``, ``.connect()``,
  ``.execute()``, ``.executemany()``, ``.query()``).
- ``pg_db`` (module): a fresh PostgreSQL database ``PostgresDatabase`` (same conveniences).
- ``s3_server`` (session): endpoint URL of a moto S3 server; dummy AWS credentials are set.
- ``s3_client`` (function): a boto3 S3 client pointed at ``s3_server``.
- ``s3_bucket`` (function): a fresh, empty bucket name (removed afterwards).
- ``sshd`` (function, server lives for the session): a running OpenSSH bastion ``SSHServer``
  (``host``, ``port``, ``username``, ``private_key_path``, ``log_path``, ``stop()``, ``start()``,
  ``forwards()``).
- ``redshift_standin`` (session): the Redshift stand-in (``sync_platform_tests.redshift_standin``) on a
  free loopback port, in front of the local PostgreSQL, COPYing from ``s3_server``.
- ``warehouse`` (function, parametrized ``postgres`` / ``redshift``): the target a test runs against;
  ``make_config_dir`` follows it.
- ``warehouse_db`` (function): the database behind ``warehouse`` (``pg_db``, or ``standin_db``, the
  stand-in's own database for the module); pass it to ``make_config_dir(postgres=…)`` and read it back.
- ``make_config_dir`` (function): factory writing a ``connections.yml`` for the above.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from sync_platform_tests.live_redshift import LIVE_WAREHOUSE, LiveRedshift
from sync_platform_tests.redshift_standin import RedshiftStandin
from sync_platform_tests.redshift_standin.fixtures import WAREHOUSES, redshift_target, start_standin
from sync_platform_tests.stack import (
    AWS_ENV_TO_CLEAR,
    DUMMY_AWS_ENV,
    ConfigDir,
    MotoS3,
    MySQLDatabase,
    PostgresDatabase,
    SSHServer,
    StackError,
    connections_document,
    ensure_mariadb,
    ensure_postgres,
    environment,
    unique_name,
)

# --------------------------------------------------------------------------- database servers


@pytest.fixture(scope="session")
def mariadb_server() -> None:
    """MariaDB on 127.0.0.1:3306 is up (started if it was not); fails the test otherwise."""
    try:
        ensure_mariadb()
    except StackError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def postgres_server() -> None:
    """PostgreSQL on 127.0.0.1:5432 is up (started if it was not); fails the test otherwise."""
    try:
        ensure_postgres()
    except StackError as exc:
        pytest.fail(str(exc), pytrace=False)


def _module_hint(request: pytest.FixtureRequest) -> str:
    module = request.module.__name__.rsplit(".", 1)[-1]
    return module.removeprefix("test_")[:30]


@pytest.fixture(scope="module")
def mysql_db(mariadb_server: None, request: pytest.FixtureRequest) -> Iterator[MySQLDatabase]:
    """A fresh MariaDB database ``spt_<module>_<6 hex>`` for this test module, dropped afterwards.

    Connect as root with no password on 127.0.0.1:3306; ``.connect()`` gives an autocommit
    pymysql connection with the session time zone set to UTC.
    """
    db = MySQLDatabase(unique_name("spt", _module_hint(request)))
    db.create()
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture(scope="module")
def pg_db(postgres_server: None, request: pytest.FixtureRequest) -> Iterator[PostgresDatabase]:
    """A fresh PostgreSQL database ``spt_<module>_<6 hex>`` for this test module, dropped afterwards.

    Connect as postgres (trust) on 127.0.0.1:5432; ``.connect()`` gives an autocommit psycopg2
    connection. Its backends are terminated before the drop, so leaked connections do not block it.
    """
    db = PostgresDatabase(unique_name("spt", _module_hint(request)))
    db.create()
    try:
        yield db
    finally:
        db.drop()


# --------------------------------------------------------------------------- S3


@pytest.fixture(scope="session")
def _moto() -> Iterator[MotoS3]:
    with environment(DUMMY_AWS_ENV, clear=AWS_ENV_TO_CLEAR):
        server = MotoS3()
        try:
            server.start()
        except StackError as exc:
            pytest.fail(str(exc), pytrace=False)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def s3_server(_moto: MotoS3) -> str:
    """Endpoint URL (``http://127.0.0.1:<port>``) of a moto S3 server running for the session.

    Dummy credentials (``testing``/``testing``, region us-east-1) are in the environment while it
    runs, so boto3's default chain never finds real ones.
    """
    return _moto.endpoint_url


@pytest.fixture
def s3_client(_moto: MotoS3) -> Any:
    """A boto3 S3 client pointed at the moto server."""
    return _moto.client()


@pytest.fixture
def s3_bucket(_moto: MotoS3, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh empty bucket on the moto server; emptied and removed after the test."""
    name = _moto.create_bucket(request.node.name[:20])
    try:
        yield name
    finally:
        _moto.delete_bucket(name)


# --------------------------------------------------------------------------- Redshift stand-in


@pytest.fixture(scope="session")
def redshift_standin(s3_server: str, postgres_server: None) -> Iterator[RedshiftStandin]:
    """The Redshift stand-in for the session (``.host``, ``.port``), reading S3 from ``s3_server``."""
    standin = start_standin(s3_server)
    try:
        yield standin
    finally:
        standin.stop()


# A real cluster joins as a third warehouse only when the environment names one (see live_redshift.py).
LIVE_REDSHIFT = LiveRedshift.from_env()
WAREHOUSE_PARAMS: tuple[str, ...] = (*WAREHOUSES, *((LIVE_WAREHOUSE,) if LIVE_REDSHIFT else ()))


@pytest.fixture(params=WAREHOUSE_PARAMS, ids=list(WAREHOUSE_PARAMS))
def warehouse(request: pytest.FixtureRequest) -> str:
    """The warehouse a test runs against: ``postgres``, ``redshift`` (the stand-in, staging on S3), and
    ``redshift_live`` (a real cluster) when ``SYNC_PLATFORM_LIVE_REDSHIFT_DSN`` is set."""
    return str(request.param)


@pytest.fixture(scope="module")
def live_redshift_db() -> Iterator[PostgresDatabase]:
    """The live cluster's database for this module; every table the module created is dropped afterwards."""
    assert LIVE_REDSHIFT is not None
    before = LIVE_REDSHIFT.tables()
    try:
        yield LIVE_REDSHIFT.database_handle()
    finally:
        LIVE_REDSHIFT.drop_tables(LIVE_REDSHIFT.tables() - before)


@pytest.fixture(scope="session", autouse=True)
def _live_staging_removed() -> Iterator[None]:
    yield
    if LIVE_REDSHIFT is not None:
        LIVE_REDSHIFT.remove_staged_files()


@pytest.fixture(scope="module")
def standin_db(postgres_server: None, request: pytest.FixtureRequest) -> Iterator[PostgresDatabase]:
    """The PostgreSQL database behind the Redshift stand-in for this module (dropped afterwards).

    Its own, not ``pg_db``: the ``postgres`` and ``redshift`` runs of a test then never share a table,
    so each run creates its target from nothing.
    """
    db = PostgresDatabase(unique_name("spt", "rs_" + _module_hint(request)[:27]))
    db.create()
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture
def warehouse_db(warehouse: str, request: pytest.FixtureRequest) -> PostgresDatabase:
    """The database the test's ``warehouse`` writes into, to read the target back.

    ``pg_db``, ``standin_db`` or the live cluster's database.
    """
    databases = {"postgres": "pg_db", "redshift": "standin_db", LIVE_WAREHOUSE: "live_redshift_db"}
    return request.getfixturevalue(databases[warehouse])


# --------------------------------------------------------------------------- SSH bastion


@pytest.fixture(scope="session")
def _sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    server = SSHServer(tmp_path_factory.mktemp("sshd"))
    try:
        server.prepare()
        server.start()
    except (StackError, OSError) as exc:
        pytest.fail(f"cannot start the test SSH bastion: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sshd(_sshd_server: SSHServer) -> SSHServer:
    """A running OpenSSH bastion on a loopback port (one server for the session).

    Key-only login for the current user with the ed25519 key at ``private_key_path``; TCP
    forwarding allowed; DEBUG1 log at ``log_path`` (``forwards()`` lists each ``direct-tcpip``
    target). Tests may ``stop()`` it (which also ends open sessions) and ``start()`` it again; it
    is restarted here for the next test if a test leaves it stopped.
    """
    _sshd_server.start()
    return _sshd_server


# --------------------------------------------------------------------------- config directories

MakeConfigDir = Callable[..., ConfigDir]


@pytest.fixture
def make_config_dir(tmp_path: Path, request: pytest.FixtureRequest) -> MakeConfigDir:
    """Factory: write ``<tmp>/config/connections.yml`` for the test databases; returns a ``ConfigDir``.

    Keyword arguments (all optional):
    - ``mysql``: a ``MySQLDatabase``, ``True`` (default: this module's ``mysql_db``) or ``False`` (no source).
    - ``postgres``: a ``PostgresDatabase``, ``True`` (default: this module's ``pg_db``) or ``False``.
    - ``staging``: ``"local"`` (default: a ``local_path`` under tmp) or ``"s3"`` (a fresh moto
      bucket with ``endpoint_url``; dummy keys are written too).
    - ``tunnel``: ``False`` (default), ``True`` (source and target through the ``sshd`` bastion),
      ``"source"`` or ``"target"``.
    - ``source_name`` / ``target_name`` / ``staging_name``: default ``src`` / ``dw`` / ``stage``.
    - ``target_schema``: default ``public``.
    - ``connection_settings``: default ``{"retry_delay": 0.1}`` so failing tests fail fast.
    - ``pipelines``: ``{name: dict}`` written as ``pipelines/<name>.yml``.
    - ``warehouse``: ``"postgres"`` or ``"redshift"``; default: the test's ``warehouse`` parameter when it
      uses that fixture, else ``"postgres"``. ``"redshift"`` writes a ``type: redshift`` target pointing at
      the ``redshift_standin`` (database = the ``pg_db``, an ``iam_role``) and forces S3 staging;
      ``"redshift_live"`` the real cluster and bucket of ``live_redshift.py``.

    Add more files with ``ConfigDir.write("pipelines/x.yml", {...})``.
    """
    counter = iter(range(1_000_000))

    def make(
        *,
        mysql: MySQLDatabase | bool = True,
        postgres: PostgresDatabase | bool = True,
        staging: Literal["local", "s3"] = "local",
        tunnel: bool | Literal["source", "target"] = False,
        source_name: str = "src",
        target_name: str = "dw",
        staging_name: str = "stage",
        target_schema: str = "public",
        connection_settings: dict[str, Any] | None = None,
        pipelines: dict[str, dict[str, Any]] | None = None,
        warehouse: Literal["postgres", "redshift", "redshift_live"] | None = None,
    ) -> ConfigDir:
        if warehouse is None:
            warehouse = request.getfixturevalue("warehouse") if "warehouse" in request.fixturenames else "postgres"
        if warehouse == "redshift":
            staging = "s3"  # Redshift COPYs from S3 only
        root = tmp_path / f"project{next(counter) or ''}"
        config_path = root / "config"
        config_path.mkdir(parents=True)
        source_db = request.getfixturevalue("mysql_db") if mysql is True else (mysql or None)
        target_db = request.getfixturevalue("pg_db") if postgres is True else (postgres or None)
        if warehouse == LIVE_WAREHOUSE:
            assert LIVE_REDSHIFT is not None
            staging_block: dict[str, Any] = LIVE_REDSHIFT.staging()
            location = LIVE_REDSHIFT.bucket
        elif staging == "s3":
            bucket = request.getfixturevalue("s3_bucket")
            staging_block = {
                "bucket_name": bucket,
                "region": "us-east-1",
                "endpoint_url": request.getfixturevalue("s3_server"),
                "access_key_id": DUMMY_AWS_ENV["AWS_ACCESS_KEY_ID"],
                "secret_access_key": DUMMY_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            }
            location = bucket
        else:
            location = str(root / "staging")
            staging_block = {"local_path": location}
        bastion = request.getfixturevalue("sshd") if tunnel else None
        override = None
        if warehouse == "redshift" and target_db is not None:
            override = redshift_target(
                request.getfixturevalue("redshift_standin"), database=target_db.name, schema=target_schema
            )
        elif warehouse == LIVE_WAREHOUSE and target_db is not None:
            assert LIVE_REDSHIFT is not None
            override = LIVE_REDSHIFT.target(schema=target_schema)
        document = connections_document(
            mysql=source_db,
            postgres=target_db,
            staging=staging_block,
            source_name=source_name,
            target_name=target_name,
            staging_name=staging_name,
            target_schema=target_schema,
            source_tunnel=bastion if tunnel in (True, "source") else None,
            target_tunnel=bastion if tunnel in (True, "target") else None,
            connection_settings={"retry_delay": 0.1} if connection_settings is None else connection_settings,
            target_override=override,
        )
        config = ConfigDir(
            path=config_path,
            source=source_name,
            target=target_name,
            staging=staging_name,
            target_schema=target_schema,
            staging_location=location,
            warehouse=warehouse,
        )
        config.write("connections.yml", document)
        for name, content in (pipelines or {}).items():
            config.write(f"pipelines/{name}.yml", content)
        return config

    return make


@pytest.fixture(autouse=True, scope="session")
def _private_dagster_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every CLI run of the tests uses a Dagster instance of its own, never the user's."""
    with environment({"DAGSTER_HOME": str(tmp_path_factory.mktemp("dagster_home"))}):
        yield


@pytest.fixture(autouse=True, scope="session")
def _no_real_aws() -> Iterator[None]:
    """Keep boto3 from ever finding real credentials or config files on the machine."""
    with environment(
        {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"},
        clear=("AWS_PROFILE", "AWS_DEFAULT_PROFILE"),
    ):
        yield
