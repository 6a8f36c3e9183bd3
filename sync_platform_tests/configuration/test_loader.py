"""The configuration loader reads the older tool's files, merges layers in order and reports every problem."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from sync_platform.configuration import ConfigError, load_project, read_project, table_spec

REPO = Path(__file__).resolve().parents[2]

EXAMPLE_ENV = {
    "DB_USER": "reader",
    "DB_SALES_PASSWORD": "s3cret-sales",
    "DB_INVENTORY_PASSWORD": "s3cret-inv",
    "SSH_BASTION_HOST": "203.0.113.10",
    "SSH_BASTION_USER": "ec2-user",
    "SSH_BASTION_KEY_PATH": "/keys/bastion.pem",
    "REDSHIFT_USER": "loader",
    "REDSHIFT_PASSWORD": "s3cret-rs",
    "REDSHIFT_SSH_BASTION_HOST": "203.0.113.20",
    "REDSHIFT_SSH_BASTION_USER": "ec2-user",
    "REDSHIFT_SSH_BASTION_KEY_PATH": "/keys/rs.pem",
}


def write(root: Path, files: dict[str, str]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content), encoding="utf-8")
    return root


MINIMAL = {
    "connections.yml": """\
        connections:
          sources:
            shop: {host: 127.0.0.1, port: 3306, database: shop, username: root, password: ""}
          targets:
            dw: {type: postgres, host: 127.0.0.1, port: 5432, database: dw, schema: shop,
                 username: postgres, password: ""}
        s3_configs:
          local: {local_path: ./.staging}
        """,
    "pipelines/shop.yml": """\
        pipeline: {name: shop, source: shop, target: dw, s3_config: local}
        tables:
          shop.orders: {cdc_strategy: hybrid, cdc_timestamp_column: updated_at, cdc_id_column: id}
        """,
}


def problems_of(root: Path, env: dict[str, str] | None = None) -> list[str]:
    _, problems = read_project(root, env=env or {})
    return [str(p) for p in problems]


def test_design_minimal_example_loads_exactly_as_written(tmp_path: Path) -> None:
    project = load_project(write(tmp_path, MINIMAL), env={})
    spec = project.pipelines["shop"].tables["shop.orders"]
    assert (spec.source, spec.target, spec.staging) == ("shop", "dw", "local")
    assert (spec.target_schema, spec.target_table) == ("shop", "orders")
    assert spec.config.cdc_strategy == "hybrid"
    assert spec.identity == "shop:shop.orders"
    assert project.connections.connections.targets["dw"].dialect == "postgres"


def test_repository_local_config_is_valid() -> None:
    project = load_project(REPO / "config", env={})
    assert "shop" in project.pipelines


def test_every_example_validates(tmp_path: Path) -> None:
    shutil.copytree(REPO / "config" / "examples", tmp_path / "examples")
    project = load_project(tmp_path / "examples", env=EXAMPLE_ENV)
    sales = project.pipelines["sales_pipeline"]
    assert set(sales.tables) == {
        "sales.orders",
        "sales.order_items",
        "sales.customers",
        "sales.order_events",
        "sales.currency_rates",
        "sales.daily_totals",
    }
    orders = sales.tables["sales.orders"]
    assert orders.config.table_type == "fact"  # from the template
    assert orders.page_rows == 200_000  # the table's own setting beats template and environment
    assert sales.tables["sales.order_items"].page_rows == 100_000  # template
    assert sales.tables["sales.customers"].config.owners == ["team:crm"]  # tables/ file
    assert sales.tables["sales.customers"].config.table_type == "dimension"
    assert sales.settings.processing.batch_size == 200_000  # production environment (the default)
    assert orders.staging_prefix == "sales_analytics"
    tunnel = project.connections.connections.sources["sales_mysql"].ssh_tunnel
    assert tunnel is not None and tunnel.host == "203.0.113.10"


def test_development_environment_is_chosen_by_sync_env_and_old_alias(tmp_path: Path) -> None:
    shutil.copytree(REPO / "config" / "examples", tmp_path / "examples")
    for variables in ({"SYNC_ENV": "development"}, {"BACKUP_ENVIRONMENT": "dev"}):
        project = load_project(tmp_path / "examples", env={**EXAMPLE_ENV, **variables})
        sales = project.pipelines["sales_pipeline"]
        assert project.environment == "development"
        assert sales.settings.processing.batch_size == 10_000
        assert sales.settings.schedule is not None and sales.settings.schedule.enabled is False


def test_typo_in_a_table_key_is_reported_with_file_key_and_suggestion(tmp_path: Path) -> None:
    files = dict(MINIMAL)
    files["pipelines/shop.yml"] = """\
        pipeline: {name: shop, source: shop, target: dw, s3_config: local}
        tables:
          shop.orders: {cdc_stratgey: id_only, cdc_timestamp_column: updated_at}
        """
    problems = problems_of(write(tmp_path, files))
    assert len(problems) == 1
    assert str(tmp_path / "pipelines" / "shop.yml") in problems[0]
    assert 'tables."shop.orders".cdc_stratgey' in problems[0]
    assert "did you mean `cdc_strategy`" in problems[0]


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    files = dict(MINIMAL)
    files["pipelines/shop.yml"] = """\
        extends: base
        pipeline: {name: shop, source: shopp, target: dw, s3_config: local}
        tables:
          shop.a: {cdc_strategy: timestamp_onl}
          shop.b: {cdc_strategy: id_only}
          shop.c: {cdc_strategy: hybrid, cdc_timestamp_column: updated_at, password: "${MISSING_SECRET}"}
          shop.d: {cdc_strategy: custom_sql}
          "shop.orders.extra": {}
        """
    files["templates/base.yml"] = "extends: loop\n"
    files["templates/loop.yml"] = "extends: base\n"
    problems = problems_of(write(tmp_path, files))
    text = "\n".join(problems)
    assert "pipeline.source: `shopp` is not defined in connections.yml connections.sources" in text
    assert "did you mean `shop`?" in text
    assert "'timestamp_onl' is not allowed here" in text and "'hybrid'" in text
    assert 'tables."shop.b".cdc_id_column: cdc_strategy id_only needs `cdc_id_column`' in text
    assert "environment variable MISSING_SECRET is not set" in text
    assert "cdc_strategy custom_sql needs `custom_query`" in text
    assert "must be written schema.table" in text
    assert "template cycle: base -> loop -> base" in text or "template cycle: loop -> base -> loop" in text
    assert len(problems) >= 7  # `password:` in a table is an unknown key: a warning, not a problem
    with pytest.raises(ConfigError) as raised:
        load_project(tmp_path, env={}, pipeline="shop")
    assert str(raised.value).startswith(f"{len(problems)} configuration problems:")


def test_unknown_connection_key_and_bad_target_type(tmp_path: Path) -> None:
    files = dict(MINIMAL)
    files["connections.yml"] = """\
        connections:
          sources:
            shop: {host: 127.0.0.1, database: shop, username: root, passwrd: x}
          targets:
            dw: {type: postgress, host: 127.0.0.1, database: dw, username: postgres}
        s3_configs:
          local: {local_path: ./.staging}
        """
    text = "\n".join(problems_of(write(tmp_path, files)))
    assert "connections.sources.shop.passwrd: unknown key `passwrd`" in text
    assert "did you mean `password`?" in text
    assert "connections.targets.dw.type: 'postgress' is not allowed here" in text


def test_staging_needs_exactly_one_of_bucket_or_directory(tmp_path: Path) -> None:
    files = dict(MINIMAL)
    files["connections.yml"] = MINIMAL["connections.yml"].replace(
        "local: {local_path: ./.staging}", "local: {local_path: ./.staging, bucket_name: b}"
    )
    text = "\n".join(problems_of(write(tmp_path, files)))
    assert "s3_configs.local" in text and "exactly one of bucket_name" in text


def test_variables_and_defaults_are_interpolated(tmp_path: Path) -> None:
    files = dict(MINIMAL)
    files["connections.yml"] = MINIMAL["connections.yml"].replace(
        'port: 3306, database: shop, username: root, password: ""',
        'port: "${SHOP_PORT:-3307}", database: "${SHOP_DB}", username: root, password: "${SHOP_PW}"',
    )
    project = load_project(write(tmp_path, files), env={"SHOP_DB": "shop_live", "SHOP_PW": "pw-1"})
    source = project.connections.connections.sources["shop"]
    assert (source.port, source.database) == (3307, "shop_live")
    assert source.password.get_secret_value() == "pw-1"
    assert "pw-1" not in repr(source) and "pw-1" not in str(project.connections)


def test_layers_merge_in_order(tmp_path: Path) -> None:
    files = dict(MINIMAL)
    files["pipelines/shop.yml"] = """\
        pipeline:
          name: shop
          source: shop
          target: dw
          s3_config: local
          processing: {batch_size: 5000}
          default_table_config: {lookback: 10s, processing: {batch_size: 7000}}
        tables:
          shop.orders: {extends: fact, target_name: Orders_V2}
          shop.items: {cdc_strategy: id_only, cdc_id_column: id}
        """
    files["templates/fact.yml"] = "cdc_strategy: hybrid\ncdc_timestamp_column: updated_at\nlookback: 30s\n"
    files["tables/shop.orders.yml"] = "cdc_timestamp_column: modified_at\nsafety_lag: 2s\n"
    project = load_project(write(tmp_path, files), env={})
    orders = project.pipelines["shop"].tables["shop.orders"]
    # template beats the tables/ file and the defaults; the tables/ file beats the defaults
    assert orders.config.cdc_timestamp_column == "updated_at"
    assert orders.config.lookback_seconds == 30
    assert orders.config.safety_lag_seconds == 2
    assert orders.page_rows == 7000
    assert orders.target_table == "orders_v2"
    items = project.pipelines["shop"].tables["shop.items"]
    assert items.config.lookback_seconds == 10 and items.page_rows == 7000


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    files = dict(MINIMAL)
    files["pipelines/shop.yml"] = "pipeline: {name: shop\ntables: [\n"
    text = "\n".join(problems_of(write(tmp_path, files)))
    assert "pipelines/shop.yml" in text and "not valid YAML" in text and "line" in text


def test_missing_directory_says_how_to_create_it(tmp_path: Path) -> None:
    text = "\n".join(problems_of(tmp_path / "nope"))
    assert f"{tmp_path / 'nope'}: (top level): configuration directory not found" in text
    assert "--config-dir" in text and "connections.yml" in text


def test_v1_environment_variables_define_default_connections_and_open_pipeline(tmp_path: Path) -> None:
    env = {
        "DB_HOST": "127.0.0.1",
        "DB_PORT": "3306",
        "DB_USER": "root",
        "DB_PASSWORD": "pw",
        "DB_DATABASE": "shop",
        "REDSHIFT_HOST": "127.0.0.1",
        "REDSHIFT_PORT": "5432",
        "REDSHIFT_USER": "postgres",
        "REDSHIFT_PASSWORD": "",
        "REDSHIFT_DATABASE": "dw",
        "REDSHIFT_TYPE": "postgres",
        "S3_LOCAL_PATH": str(tmp_path / "staging"),
    }
    project = load_project(tmp_path, env=env)
    assert project.mode == "env"
    default = project.pipelines["default"]
    assert default.open_tables
    spec = table_spec(project, "default", "anything.at_all")
    assert (spec.schema, spec.table, spec.target_schema) == ("anything", "at_all", "public")
    assert spec.config.cdc_timestamp_column is None  # detected by the engine at run time
    target = project.connections.connections.targets["default"]
    assert target.dialect == "postgres" and target.effective_port == 5432


def test_v1_environment_missing_variable_names_it(tmp_path: Path) -> None:
    env = {
        "DB_HOST": "127.0.0.1",
        "DB_USER": "root",
        "REDSHIFT_HOST": "h",
        "REDSHIFT_USER": "u",
        "REDSHIFT_DATABASE": "d",
        "S3_BUCKET_NAME": "b",
    }
    text = "\n".join(problems_of(tmp_path, env))
    assert "environment: connections.sources.default.database" in text
    assert "set the environment variable DB_DATABASE" in text


def test_table_outside_a_closed_pipeline_is_refused(tmp_path: Path) -> None:
    project = load_project(write(tmp_path, MINIMAL), env={})
    with pytest.raises(ConfigError) as raised:
        table_spec(project, "shop", "shop.customers")
    assert "not part of pipeline `shop`" in str(raised.value) and "shop.orders" in str(raised.value)


def test_readme_lists_every_key_accepted_and_ignored() -> None:
    from sync_platform.configuration.compat import IGNORED_KEYS, TOP_LEVEL_IGNORED

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("Accepted and ignored") : readme.index("### connections.yml")]
    keys = {key for keys in IGNORED_KEYS.values() for key in keys} | set(TOP_LEVEL_IGNORED)
    missing = sorted(key for key in keys if f"`{key}`" not in section)
    assert not missing, f"README's accepted-and-ignored table misses {missing}"


def test_one_edit_apart_is_a_near_miss_and_more_is_not() -> None:
    from sync_platform.configuration.compat import near_miss

    known = ["cdc_strategy", "cdc_timestamp_column", "watermark_settings", "target_name"]
    assert near_miss("cdc_stratgey", known) == "cdc_strategy"  # swapped letters
    assert near_miss("cdc_strateg", known) == "cdc_strategy"  # one letter missing
    assert near_miss("target_names", known) == "target_name"  # one letter extra
    assert near_miss("dw_settings", known) is None  # a different key, not a typo: a warning
    assert near_miss("strategy", known) is None
