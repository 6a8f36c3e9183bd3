"""Read a configuration directory into a validated :class:`Project`.

Order of precedence for one table (later wins): built-in defaults, the pipeline's
``default_table_config``, ``tables/<schema.table>.yml``, the table's ``extends:`` template, the
pipeline's own entry. Environments (``environments/<env>.yml``) are deep-merged over the whole
pipeline document first; ``extends:`` at the top of a pipeline pulls a template under it.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sync_platform.configuration import legacy_env
from sync_platform.configuration.errors import ConfigError, ConfigProblem, key_path
from sync_platform.configuration.interpolation import interpolate
from sync_platform.configuration.merge import deep_merge
from sync_platform.configuration.models import (
    CDC_STRATEGIES,
    ConnectionsFile,
    PipelineSettings,
    TableConfig,
)
from sync_platform.configuration.project import Pipeline, Project, TableSpec

CONFIG_DIR_VARIABLE = "SYNC_PLATFORM_CONFIG_DIR"
DEFAULT_CONFIG_DIR = Path("config")
ENVIRONMENT_ALIASES = {
    "dev": "development",
    "develop": "development",
    "stage": "staging",
    "stg": "staging",
    "prod": "production",
}
MAX_TEMPLATE_DEPTH = 10
_TABLE_NAME = re.compile(r"^[^.\s]+\.[^.\s]+$")
# pydantic's own steps in an error location (``function-after[...]``, ``list[str]``, ``tagged-union[...]``)
_PYDANTIC_TAG = re.compile(r"^(function-[a-z]+|[a-z][a-z-]*\[.*\])")
_PIPELINE_KEYS = ("extends", "pipeline", "tables")


def resolve_config_dir(config_dir: str | Path | None, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    chosen = config_dir or env.get(CONFIG_DIR_VARIABLE) or DEFAULT_CONFIG_DIR
    return Path(chosen).expanduser()


def resolve_environment(explicit: str | None, env: Mapping[str, str]) -> str:
    """``SYNC_ENV``, else the older ``BACKUP_ENVIRONMENT`` (aliases dev/stage/prod), else as the older tool."""
    name = explicit or env.get("SYNC_ENV") or env.get("BACKUP_ENVIRONMENT")
    if not name:
        name = "development" if env.get("DEBUG") == "1" or env.get("DEV") == "1" else "production"
    name = name.strip().lower()
    return ENVIRONMENT_ALIASES.get(name, name)


def effective_environment(config_dir: Path) -> dict[str, str]:
    """Process environment over ``.env`` files (cwd, then the config dir); set variables win."""
    merged: dict[str, str] = {}
    for dotenv in (config_dir / ".env", Path.cwd() / ".env"):
        merged.update(legacy_env.read_dotenv(dotenv))
    merged.update(os.environ)
    return merged


class _Reader:
    """Collects problems while reading; every public entry point raises them all at once."""

    def __init__(self, config_dir: Path, env: Mapping[str, str]):
        self.config_dir = config_dir
        self.env = env
        self.problems: list[ConfigProblem] = []
        self.files_read: list[Path] = []

    def problem(self, file: Path | None, key: str, message: str, hint: str = "") -> None:
        self.problems.append(ConfigProblem(file, key, message, hint))

    def read_yaml(self, path: Path, *, interpolate_values: bool = True) -> dict[str, Any] | None:
        self.files_read.append(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            self.problem(path, where, f"not valid YAML: {getattr(exc, 'problem', exc)}", "fix the YAML syntax")
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self.problem(path, "", f"cannot be read: {exc}", "check the file's permissions and encoding")
            return None
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.problem(path, "", f"must be a mapping of keys, found {type(data).__name__}", "see README")
            return None
        return interpolate(data, self.env, path, self.problems) if interpolate_values else data

    def validate(
        self,
        model: type[BaseModel],
        data: Any,
        file: Path | None,
        prefix: tuple = (),
        sources: list[tuple[Path | None, dict[str, Any]]] | None = None,
    ) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                self._report(model, error, file, prefix, sources)
            return None

    def _report(
        self,
        model: type[BaseModel],
        error: Any,
        file: Path | None,
        prefix: tuple,
        sources: list[tuple[Path | None, dict[str, Any]]] | None,
    ) -> None:
        raw = tuple(error["loc"])
        loc = tuple(p for p in raw if not (isinstance(p, str) and _PYDANTIC_TAG.match(p)))
        if error["type"] == "extra_forbidden" and raw and loc[-1:] != raw[-1:]:
            loc = (*loc, raw[-1])  # the unknown key is the user's own, whatever characters it holds
        message = str(error["msg"]).removeprefix("Value error, ")
        hint = ""
        if error["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            message = f"unknown key `{loc[-1]}`"
            hint = f"did you mean `{guess[0]}`?" if guess else f"allowed keys: {', '.join(sorted(allowed))}"
        elif error["type"] == "literal_error":
            message = f"{error.get('input')!r} is not allowed here"
            hint = f"use one of {error.get('ctx', {}).get('expected', '')}"
        elif error["type"] == "missing":
            message = f"required key `{loc[-1]}` is missing"
            hint = f"add `{loc[-1]}: ...`"
        if file is None and sources is None:
            variable = legacy_env.variable_for(loc)
            if variable:
                hint = f"set the environment variable {variable}" + (f" ({hint})" if hint else "")
        owner = _owner(sources, loc) if sources else file
        self.problem(owner, key_path((*prefix, *loc)), message, hint)


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names (and aliases) of the model at ``loc`` inside ``model``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", {})
        field = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        if field is None:  # a name under dict[str, Model]: keys are names, not fields
            continue
        current = _model_in(field.annotation)
    fields = getattr(current, "model_fields", {})
    return [f.alias or name for name, f in fields.items()]


def _model_in(annotation: Any) -> Any:
    """The BaseModel class inside an annotation such as ``X | None`` or ``dict[str, X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _owner(sources: list[tuple[Path | None, dict[str, Any]]], loc: tuple) -> Path | None:
    """The last contributing document that sets the offending key (its file is where to fix it)."""
    for file, document in reversed(sources):
        node: Any = document
        found = True
        for part in loc:
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                found = False
                break
        if found or (loc and isinstance(document, dict) and loc[0] in document):
            return file
    return sources[-1][0]


# --------------------------------------------------------------------------- templates


class _Templates:
    def __init__(self, reader: _Reader, directory: Path):
        self.reader = reader
        self.files: dict[str, Path] = {}
        self.cache: dict[str, dict[str, Any] | None] = {}
        if directory.is_dir():
            for path in sorted(directory.glob("*.y*ml")):
                self.files[path.stem] = path

    def expand(self, document: dict[str, Any], file: Path | None, key: str) -> dict[str, Any]:
        """``document`` with its ``extends:`` chain merged under it (templates first)."""
        return self._expand(document, file, key, chain=())

    def _expand(self, document: dict[str, Any], file: Path | None, key: str, chain: tuple[str, ...]) -> dict:
        parent = document.get("extends")
        body = {k: v for k, v in document.items() if k != "extends"}
        if parent is None:
            return body
        where = f"{key}.extends" if key else "extends"
        names = parent if isinstance(parent, list) else [parent]
        base: dict[str, Any] = {}
        for name in names:
            if not isinstance(name, str):
                self.reader.problem(file, where, f"must name a template, found {name!r}", "extends: <template name>")
                continue
            if name in chain:
                cycle = " -> ".join([*chain, name])
                self.reader.problem(file, where, f"template cycle: {cycle}", "remove one of the extends links")
                continue
            if len(chain) >= MAX_TEMPLATE_DEPTH:
                self.reader.problem(file, where, "templates nest deeper than 10", "flatten the template chain")
                continue
            path = self.files.get(name)
            if path is None:
                known = ", ".join(sorted(self.files)) or "none"
                self.reader.problem(
                    file,
                    where,
                    f"template `{name}` not found",
                    f"create templates/{name}.yml (known: {known})",
                )
                continue
            if name not in self.cache:
                self.cache[name] = self.reader.read_yaml(path)
            template = self.cache[name]
            if template is None:
                continue
            template = {k: v for k, v in template.items() if k not in ("template", "name")}
            base = deep_merge(base, self._expand(template, path, "", (*chain, name)))
        return deep_merge(base, body)


# --------------------------------------------------------------------------- entry points


def load_project(
    config_dir: str | Path | None = None,
    *,
    environment: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Project:
    """Read and validate everything; raise :class:`ConfigError` listing every problem found."""
    project, problems = read_project(config_dir, environment=environment, env=env)
    if problems:
        raise ConfigError(problems)
    assert project is not None
    return project


def read_project(
    config_dir: str | Path | None = None,
    *,
    environment: str | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[Project | None, list[ConfigProblem]]:
    """Like :func:`load_project` but returns what could be read together with the problems."""
    directory = resolve_config_dir(config_dir, env)
    env = effective_environment(directory) if env is None else env
    reader = _Reader(directory, env)
    env_name = resolve_environment(environment, env)

    connections_path = directory / "connections.yml"
    if not connections_path.exists() and (directory / "connections.yaml").exists():
        connections_path = directory / "connections.yaml"
    if connections_path.exists():
        mode = "yaml"
        raw = reader.read_yaml(connections_path)
        connections = reader.validate(ConnectionsFile, raw, connections_path) if raw is not None else None
    elif legacy_env.is_legacy_environment(env):
        mode = "env"
        connections = reader.validate(ConnectionsFile, legacy_env.connections_document(env), None)
    else:
        hint = (
            f"create {connections_path} (see config/examples/connections.yml), pass --config-dir, "
            f"set {CONFIG_DIR_VARIABLE}, or set the v1.0.0 variables (DB_HOST, ...)"
        )
        if not directory.exists():
            reader.problem(directory, "", "configuration directory not found", hint)
        else:
            reader.problem(connections_path, "", "connections.yml not found", hint)
        return None, reader.problems
    references_checkable = connections is not None
    connections = connections or ConnectionsFile()  # keep reading pipelines: report everything at once

    templates = _Templates(reader, directory / "templates")
    environment_doc, environment_file = _environment_document(reader, directory, env_name)
    table_files = _table_documents(reader, directory / "tables")
    pipelines: dict[str, Pipeline] = {}
    pipelines_dir = directory / "pipelines"
    for path in sorted(pipelines_dir.glob("*.y*ml")) if pipelines_dir.is_dir() else []:
        pipeline = _read_pipeline(
            reader,
            path,
            connections if references_checkable else None,
            templates,
            environment_doc,
            environment_file,
            table_files,
        )
        if pipeline is None:
            continue
        if pipeline.name in pipelines:
            other = pipelines[pipeline.name].file
            reader.problem(
                path,
                "pipeline.name",
                f"pipeline `{pipeline.name}` is also defined in {other}",
                "give each pipeline a unique name",
            )
            continue
        pipelines[pipeline.name] = pipeline
    if reader.problems:
        return None, reader.problems
    if mode == "env" and "default" not in pipelines:
        pipelines["default"] = _default_pipeline(env_name)

    project = Project(
        config_dir=directory,
        connections=connections,
        pipelines=pipelines,
        environment=env_name if environment_file else None,
        mode=mode,
        files_read=reader.files_read,
    )
    return project, reader.problems


def _environment_document(reader: _Reader, directory: Path, name: str) -> tuple[dict[str, Any], Path | None]:
    for suffix in (".yml", ".yaml"):
        path = directory / "environments" / f"{name}{suffix}"
        if path.exists():
            document = reader.read_yaml(path) or {}
            for key in document:
                if key not in _PIPELINE_KEYS or key == "extends":
                    reader.problem(
                        path,
                        key_path((key,)),
                        f"unknown key `{key}` in an environment file",
                        "an environment file may hold `pipeline:` and `tables:` overrides",
                    )
            return {k: v for k, v in document.items() if k in ("pipeline", "tables")}, path
    return {}, None


def _table_documents(reader: _Reader, directory: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    found: dict[str, tuple[Path, dict[str, Any]]] = {}
    if directory.is_dir():
        for path in sorted(directory.glob("*.y*ml")):
            document = reader.read_yaml(path)
            if document is not None:
                found[path.stem] = (path, document)
    return found


def _read_pipeline(
    reader: _Reader,
    path: Path,
    connections: ConnectionsFile | None,
    templates: _Templates,
    environment_doc: dict[str, Any],
    environment_file: Path | None,
    table_files: dict[str, tuple[Path, dict[str, Any]]],
) -> Pipeline | None:
    raw = reader.read_yaml(path)
    if raw is None:
        return None
    before = len(reader.problems)
    for key in raw:
        if key not in _PIPELINE_KEYS:
            guess = difflib.get_close_matches(str(key), _PIPELINE_KEYS, n=1)
            reader.problem(
                path,
                key_path((key,)),
                f"unknown top-level key `{key}`",
                f"did you mean `{guess[0]}`?" if guess else "use `pipeline:` and `tables:`",
            )
    document = templates.expand(raw, path, "")
    if environment_doc:
        document = deep_merge(document, environment_doc)
    if "pipeline" not in document:
        reader.problem(
            path,
            "pipeline",
            "required section `pipeline:` is missing",
            "add pipeline: {name, source, target, s3_config}",
        )
        return None
    misshapen = [section for section in ("pipeline", "tables") if not isinstance(document.get(section) or {}, dict)]
    for section in misshapen:
        reader.problem(
            path,
            section,
            f"`{section}:` must be a mapping, found {type(document[section]).__name__}",
            "pipeline: {name, source, target, s3_config}"
            if section == "pipeline"
            else 'tables: {"schema.table": {cdc_strategy: ...}}',
        )
    if misshapen:
        return None
    pipeline_doc = dict(document.get("pipeline") or {})
    pipeline_doc.setdefault("name", path.stem)
    sources = [(path, {"pipeline": raw.get("pipeline", {})})]
    if environment_file:
        sources.append((environment_file, {"pipeline": environment_doc.get("pipeline", {})}))
    settings = reader.validate(PipelineSettings, pipeline_doc, path, ("pipeline",), None)
    if settings is not None and connections is not None:
        _check_references(reader, path, settings, connections)
    defaults = pipeline_doc.get("default_table_config")
    defaults = defaults if isinstance(defaults, dict) else {}

    tables: dict[str, TableSpec] = {}
    for name, entry in (document.get("tables") or {}).items():
        config = _read_table_config(
            reader,
            path,
            defaults,
            templates,
            table_files,
            str(name),
            entry,
            environment_file,
            environment_doc,
        )
        if config is None or settings is None or not config.enabled:
            continue
        schema, table = str(name).split(".", 1)
        target = (connections or ConnectionsFile()).connections.targets.get(settings.target)
        spec = build_table_spec(
            settings,
            connections or ConnectionsFile(),
            schema,
            table,
            config,
            target_schema=config.target_schema or (target.schema_ if target else "public"),
        )
        tables[spec.name] = spec
    if settings is None or len(reader.problems) > before:
        return None
    return Pipeline(
        name=settings.name,
        file=path,
        settings=settings,
        tables=tables,
        environment=environment_file.stem if environment_file else None,
        open_tables=settings.name == "default",
    )


def _check_references(reader: _Reader, path: Path, settings: PipelineSettings, connections: ConnectionsFile) -> None:
    for key, name, known, section in (
        ("source", settings.source, connections.connections.sources, "connections.sources"),
        ("target", settings.target, connections.connections.targets, "connections.targets"),
        ("s3_config", settings.s3_config, connections.s3_configs, "s3_configs"),
    ):
        if name not in known:
            names = ", ".join(sorted(known)) or "none defined"
            guess = difflib.get_close_matches(name, list(known), n=1)
            hint = f"did you mean `{guess[0]}`? " if guess else ""
            reader.problem(
                path,
                f"pipeline.{key}",
                f"`{name}` is not defined in connections.yml {section}",
                f"{hint}defined: {names}",
            )


def _read_table_config(
    reader: _Reader,
    path: Path,
    defaults: dict[str, Any],
    templates: _Templates,
    table_files: dict[str, tuple[Path, dict[str, Any]]],
    name: str,
    entry: Any,
    environment_file: Path | None,
    environment_doc: dict[str, Any],
) -> TableConfig | None:
    key = key_path(("tables", name))
    if not _TABLE_NAME.match(name):
        reader.problem(path, key, f"table `{name}` must be written schema.table", "e.g. shop.orders")
        return None
    if entry is None:
        entry = {}
    if not isinstance(entry, dict):
        reader.problem(
            path, key, f"must be a mapping of table settings, found {entry!r}", "e.g. {cdc_strategy: hybrid}"
        )
        return None
    table = name.split(".", 1)[1]
    sources: list[tuple[Path | None, dict[str, Any]]] = [(path, defaults)]
    merged = dict(defaults)
    for file_key in (table, name):  # tables/<table>.yml, then the more specific tables/<schema.table>.yml
        if file_key in table_files:
            file, document = table_files[file_key]
            document = templates.expand(document, file, "")
            sources.append((file, document))
            merged = deep_merge(merged, document)
    expanded = templates.expand(entry, path, key)
    sources.append((path, expanded))
    if environment_file and name in (environment_doc.get("tables") or {}):
        sources.append((environment_file, environment_doc["tables"][name]))
    merged = deep_merge(merged, expanded)
    config = reader.validate(TableConfig, merged, path, ("tables", name), sources)
    if config is None or not _check_strategy_columns(reader, path, key, config):
        return None
    return config


def _check_strategy_columns(reader: _Reader, path: Path, key: str, config: TableConfig) -> bool:
    needs = {
        "hybrid": ("cdc_timestamp_column",),
        "timestamp_only": ("cdc_timestamp_column",),
        "id_only": ("cdc_id_column",),
    }.get(config.cdc_strategy, ())
    ok = True
    for column_key in needs:
        if not getattr(config, column_key):
            example = "updated_at" if "timestamp" in column_key else "id"
            reader.problem(
                path,
                f"{key}.{column_key}",
                f"cdc_strategy {config.cdc_strategy} needs `{column_key}`",
                f"add {column_key}: {example} (the column that tracks changes)",
            )
            ok = False
    if config.cdc_strategy not in CDC_STRATEGIES:  # pragma: no cover - guarded by the model's Literal
        ok = False
    return ok


def build_table_spec(
    settings: PipelineSettings,
    connections: ConnectionsFile,
    schema: str,
    table: str,
    config: TableConfig,
    *,
    target_schema: str,
) -> TableSpec:
    prefix = (settings.s3.isolation_prefix or settings.name).strip("/")
    return TableSpec(
        pipeline=settings.name,
        source=settings.source,
        target=settings.target,
        staging=settings.s3_config,
        schema=schema,
        table=table,
        target_schema=target_schema.lower(),
        target_table=(config.target_name or table).lower(),
        staging_prefix=prefix,
        page_rows=config.processing.batch_size or settings.processing.batch_size,
        file_max_rows=config.processing.file_max_rows
        or settings.processing.file_max_rows
        or connections.backup.batch_size,
        file_max_mb=connections.backup.file_max_mb,
        compression=settings.s3.compression,
        config=config,
    )


def _default_pipeline(environment: str) -> Pipeline:
    settings = PipelineSettings(name="default", source="default", target="default", s3_config="default")
    return Pipeline(name="default", file=None, settings=settings, tables={}, environment=None, open_tables=True)


def table_spec(project: Project, pipeline_name: str, table_name: str) -> TableSpec:
    """The spec of ``schema.table`` in a pipeline; open pipelines (v1.0.0 ``default``) accept any table.

    A table of an open pipeline without configuration gets ``hybrid`` on an auto-detected
    timestamp column (the engine detects it and records the choice).
    """
    pipeline = project.pipelines.get(pipeline_name)
    if pipeline is None:
        known = ", ".join(sorted(project.pipelines)) or "none"
        raise ConfigError(
            [
                ConfigProblem(
                    project.config_dir / "pipelines",
                    pipeline_name,
                    f"pipeline `{pipeline_name}` not found",
                    f"known pipelines: {known}",
                )
            ]
        )
    if table_name in pipeline.tables:
        return pipeline.tables[table_name]
    if not pipeline.open_tables:
        known = ", ".join(sorted(pipeline.tables)) or "none"
        raise ConfigError(
            [
                ConfigProblem(
                    pipeline.file,
                    f"tables.{table_name}",
                    f"table `{table_name}` is not part of pipeline `{pipeline_name}`",
                    f"add it under tables: in {pipeline.file} (configured: {known})",
                )
            ]
        )
    if not _TABLE_NAME.match(table_name):
        raise ConfigError(
            [ConfigProblem(pipeline.file, table_name, "a table must be written schema.table", "e.g. shop.orders")]
        )
    schema, table = table_name.split(".", 1)
    target = project.connections.connections.targets[pipeline.settings.target]
    return build_table_spec(
        pipeline.settings, project.connections, schema, table, TableConfig(), target_schema=target.schema_
    )
