"""YAML fuzzed with hypothesis: every document gives a valid project or validation problems, never a
traceback. Keys are drawn near the real ones (typos included); values are any YAML scalar, list or map."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from sync_platform.configuration.loader import read_project

REAL_KEYS = [
    "connections",
    "sources",
    "targets",
    "s3_configs",
    "host",
    "port",
    "database",
    "username",
    "password",
    "schema",
    "type",
    "ssh_tunnel",
    "enabled",
    "private_key_path",
    "local_port",
    "iam_role",
    "bucket_name",
    "region",
    "endpoint_url",
    "local_path",
    "prefix",
    "access_key_id",
    "secret_access_key",
    "connection_settings",
    "retry_delay",
    "max_retries",
    "pipeline",
    "name",
    "source",
    "target",
    "s3_config",
    "processing",
    "batch_size",
    "tables",
    "cdc_strategy",
    "cdc_timestamp_column",
    "cdc_id_column",
    "custom_query",
    "target_name",
    "full_sync_mode",
    "primary_key",
    "extends",
    "default_table_config",
    "schedule",
    "safety_lag",
    "lookback",
    "performance",
    "retry_max_attempts",
    "redshift",
    "target_schema",
    "additional_where",
    "oversize_text",
]
TYPOS = ["cdc_stratgey", "hots", "prot", "pipline", "tabels", "s3config", "sources ", "", "0", "null", "~"]
KEYS = st.one_of(
    st.sampled_from(REAL_KEYS + TYPOS),
    st.builds(lambda k, i, c: k[:i] + c + k[i:], st.sampled_from(REAL_KEYS), st.integers(0, 6), st.sampled_from("_x.")),
    st.text(max_size=8),
    st.integers(-2, 70000),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "hybrid",
            "full_sync",
            "custom_sql",
            "id_only",
            "timestamp_only",
            "replace",
            "append",
            "postgres",
            "redshift",
            "${UNSET}",
            "${X:-1}",
            "${",
            "db.table",
            "a.b.c",
            "127.0.0.1",
            "5s",
            "-1",
            "1e999",
            "src",
            "dw",
            "stage",
            "SELECT * FROM {table_name}",
        ]
    ),
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12
)
TABLE_KEYS = st.one_of(
    st.sampled_from(["shop.orders", "a.b", "x", "a.b.c", " . ", "db.t`; DROP"]), st.text(max_size=10)
)


def _plausible_connections() -> st.SearchStrategy:
    source = st.fixed_dictionaries({"host": SCALARS, "port": SCALARS, "database": SCALARS}, optional={"x": VALUES})
    return st.fixed_dictionaries(
        {"connections": st.fixed_dictionaries({"sources": st.dictionaries(st.sampled_from(["src", "s"]), source)})},
        optional={"s3_configs": st.dictionaries(st.sampled_from(["stage", "s"]), VALUES), "extra": VALUES},
    )


def _plausible_pipeline() -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {"pipeline": st.dictionaries(KEYS, VALUES, max_size=5), "tables": st.dictionaries(TABLE_KEYS, VALUES)},
        optional={"extends": SCALARS},
    )


VALID_CONNECTIONS = yaml.safe_dump(
    {
        "connections": {
            "sources": {"src": {"host": "127.0.0.1", "port": 3306, "database": "shop", "username": "root"}},
            "targets": {
                "dw": {"type": "postgres", "host": "127.0.0.1", "database": "dw", "schema": "shop", "username": "u"}
            },
        },
        "s3_configs": {"stage": {"local_path": "./.staging"}},
    }
)
VALID_PIPELINE = {"pipeline": {"name": "p", "source": "src", "target": "dw", "s3_config": "stage"}}
VALID_TABLE = {"cdc_strategy": "hybrid", "cdc_timestamp_column": "updated_at", "cdc_id_column": "id"}


def _near_valid_pipeline() -> st.SearchStrategy:
    """The valid pipeline with one key of the pipeline or of a table replaced by fuzz."""
    return st.builds(
        lambda pkey, pval, table, tkey, tval: {
            "pipeline": {**VALID_PIPELINE["pipeline"], **({pkey: pval} if pkey else {})},
            "tables": {table: {**VALID_TABLE, tkey: tval}},
        },
        st.sampled_from(["", "", "name", "schedule", "processing", "s3", "default_table_config", "pipline", "source"]),
        VALUES,
        st.sampled_from(["shop.orders", "a.b"]) | TABLE_KEYS,
        st.sampled_from(["cdc_strategy", "cdc_timestamp_column", "primary_key", "safety_lag", "lookback", "typo_"]),
        st.sampled_from(["hybrid", "full_sync", "updated_at", "5s", 60]) | SCALARS,
    )


DOCUMENTS = st.one_of(VALUES, st.dictionaries(KEYS, VALUES, max_size=5))
TEXTS = st.one_of(
    DOCUMENTS.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.text(max_size=60),  # not YAML at all, or broken YAML
    st.sampled_from(["a: [", "{{", "- - -", "key: !!python/object:os.system ls", "&a [*a]", "\t: x", "\x00"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    connections=st.one_of(
        st.just(VALID_CONNECTIONS), st.just(VALID_CONNECTIONS), TEXTS, _plausible_connections().map(yaml.safe_dump)
    ),
    pipeline=st.one_of(_near_valid_pipeline().map(yaml.safe_dump), TEXTS, _plausible_pipeline().map(yaml.safe_dump)),
    other=st.none()
    | st.none()
    | st.tuples(st.sampled_from(["templates/t.yml", "tables/a.b.yml", "environments/dev.yml"]), TEXTS),
)
@example(connections="'[': null\n", pipeline="{}\n", other=None)
@example(connections=VALID_CONNECTIONS, pipeline="pipeline:\n- null\n", other=None)
@example(connections=VALID_CONNECTIONS, pipeline="tables: [1]\npipeline: {}\n", other=None)
def _read_fuzzed_project(connections, pipeline, other) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "pipelines").mkdir()
        (root / "connections.yml").write_text(connections)
        (root / "pipelines" / "p.yml").write_text(pipeline)
        if other is not None:
            extra = root / other[0]
            extra.parent.mkdir(exist_ok=True)
            extra.write_text(other[1])
        project, problems = read_project(root, env={"SYNC_ENV": "dev"})
        assert project is not None or problems, "neither a project nor a problem"
        event("valid project" if not problems else "validation problems")
        OUTCOMES["valid" if not problems else "problems"] += 1
        for problem in problems:
            assert str(problem).strip(), "every problem says something"


OUTCOMES = {"valid": 0, "problems": 0}


def test_any_yaml_gives_a_project_or_problems_never_a_traceback(fault_report) -> None:
    _read_fuzzed_project()
    fault_report(
        "Fuzzed YAML (hypothesis, 150 examples): connections.yml, pipelines/p.yml, a template/table/environment "
        "file; keys near the real ones, typos, broken YAML, any scalar/list/map",
        f"read_project never raised: {OUTCOMES['problems']} examples gave validation problems, "
        f"{OUTCOMES['valid']} a valid project",
    )


def test_unknown_key_with_brackets_is_reported_not_raised(tmp_path, fault_report) -> None:
    """Found by the fuzzer: a top-level key such as ``[`` was dropped from the error location as if
    it were one of pydantic's own steps, and ``loc[-1]`` raised IndexError."""
    (tmp_path / "connections.yml").write_text("'[': null\nconnections: {'a[b]': 1}\n")
    project, problems = read_project(tmp_path, env={}, strict=True)  # unknown keys are warnings unless strict
    assert project is None
    messages = {(p.key, p.message) for p in problems}
    assert any(message.startswith("unknown key `[`") for _, message in messages), messages
    assert any(message.startswith("unknown key `a[b]`") for _, message in messages), messages
    fault_report(
        "connections.yml with keys `[` and `a[b]` (found by the fuzzer)",
        "reported as unknown keys; before the fix in configuration/loader.py read_project raised IndexError",
    )


def test_pipeline_or_tables_section_that_is_not_a_mapping(tmp_path, fault_report) -> None:
    """Found by the fuzzer: ``pipeline: [null]`` raised TypeError, ``tables: [1]`` AttributeError."""
    (tmp_path / "connections.yml").write_text(VALID_CONNECTIONS)
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "a.yml").write_text("pipeline:\n- null\n")
    (tmp_path / "pipelines" / "b.yml").write_text(yaml.safe_dump({**VALID_PIPELINE, "tables": [1]}))
    project, problems = read_project(tmp_path, env={})
    assert project is None
    found = {(p.file.name, p.key, p.message) for p in problems}
    assert ("a.yml", "pipeline", "`pipeline:` must be a mapping, found list") in found, found
    assert ("b.yml", "tables", "`tables:` must be a mapping, found list") in found, found
    fault_report(
        "pipelines/*.yml whose `pipeline:` or `tables:` is a list (found by the fuzzer)",
        "validation problem naming file and section; before the fix in configuration/loader.py "
        "read_project raised TypeError / AttributeError",
    )
