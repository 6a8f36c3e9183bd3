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
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sync_platform.configuration import compat, legacy_env
from sync_platform.configuration.compat import IgnoredKey
from sync_platform.configuration.errors import ConfigError, ConfigProblem, key_path
from sync_platform.configuration.interpolation import interpolate
from sync_platform.configuration.merge import deep_merge
from sync_platform.configuration.models import (
    CDC_STRATEGIES,
    ConnectionsFile,
    PipelineSettings,
    TableConfig,
)
from sync_platform.configuration.project import ConfigurationRead, Pipeline, Project, TableSpec

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
_BARE_NAME = re.compile(r"^[^.:\s]+$")
# pydantic's own steps in an error location (``function-after[...]``, ``list[str]``, ``tagged-union[...]``)
_PYDANTIC_TAG = re.compile(r"^(function-[a-z]+|[a-z][a-z-]*\[.*\])")
_PIPELINE_KEYS = ("extends", "pipeline", "tables")
# The older tool's alternative layout: top-level name / connections / defaults / metadata.
_ALTERNATIVE_KEYS = ("name", "description", "connections", "defaults", "metadata")
_ALTERNATIVE_CONNECTIONS = {"mysql": "source", "source": "source", "redshift": "target", "target": "target"}
_ALTERNATIVE_CONNECTIONS.update({"s3": "s3_config", "s3_config": "s3_config"})


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
        self.warnings: list[ConfigProblem] = []
        self.ignored: list[IgnoredKey] = []
        self.files_read: list[Path] = []

    def problem(self, file: Path | None, key: str, message: str, hint: str = "") -> None:
        self.problems.append(ConfigProblem(file, key, message, hint))

    def warning(self, file: Path | None, key: str, message: str, hint: str = "") -> None:
        self.warnings.append(ConfigProblem(file, key, message, hint, severity="warning"))

    def note_ignored(self, file: Path | None, key: str, reason: str, kind: str = "ignored") -> None:
        self.ignored.append(IgnoredKey(file, key, reason, kind))

    def read_shared_yaml(self, path: Path) -> dict[str, Any] | None:
        """A template or tables/ file: read once, its problems charged to every pipeline that uses it."""
        cache = self.__dict__.setdefault("_shared", {})
        if path not in cache:
            mark = len(self.problems)
            document = self.read_yaml(path)
            cache[path] = (document, self.problems[mark:])
            del self.problems[mark:]
        document, problems = cache[path]
        self.problems.extend(problems)
        return document

    def mark(self) -> tuple[int, int, int]:
        return len(self.problems), len(self.warnings), len(self.ignored)

    def since(self, mark: tuple[int, int, int]) -> tuple[list[ConfigProblem], list[ConfigProblem], list[IgnoredKey]]:
        return self.problems[mark[0] :], self.warnings[mark[1] :], self.ignored[mark[2] :]

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
        def report(loc: tuple[Any, ...], severity: str, message: str, hint: str) -> None:
            owner = _owner(sources, loc) if sources else file
            where = key_path((*prefix, *loc))
            if severity == "error":
                self.problem(owner, where, message, hint)
            elif severity == "warning":
                self.warning(owner, where, message, hint)
            else:
                self.note_ignored(owner, where, message)

        data = compat.prune(model, data, report)
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
            template = self.reader.read_shared_yaml(path)
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
    pipeline: str | None = None,
    strict: bool | None = None,
) -> Project:
    """The project, with every pipeline whose files are valid; raise :class:`ConfigError` when it cannot serve.

    Problems in connections.yml or the environment file always raise. A broken pipeline file raises
    only when ``pipeline`` names it; otherwise it is left out (``project.broken`` says why).
    ``strict`` (default: ``SYNC_PLATFORM_STRICT``) restores all-or-nothing and makes warnings errors.
    """
    directory = resolve_config_dir(config_dir, env)
    env = effective_environment(directory) if env is None else env
    read = read_configuration(directory, environment=environment, env=env)
    if strict is None:
        strict = compat.strict_from_environment(env) or bool(read.project and read.project.connections.strict)
    if strict:
        errors = [*read.problems, *read.warnings]
    else:
        errors = list(read.shared_problems)
        if pipeline is not None and read.project is not None:
            broken = read.project.broken_file(pipeline)
            if broken is not None and read.project.pipeline_name(pipeline) is None:
                errors.extend(read.broken[broken])
    if errors:
        raise ConfigError(errors)
    assert read.project is not None
    return read.project


def read_project(
    config_dir: str | Path | None = None,
    *,
    environment: str | None = None,
    env: Mapping[str, str] | None = None,
    strict: bool | None = None,
) -> tuple[Project | None, list[ConfigProblem]]:
    """All-or-nothing: the project when every file is valid, else ``None`` and every problem found.

    Warnings count as problems when ``strict`` (default: ``SYNC_PLATFORM_STRICT``).
    """
    directory = resolve_config_dir(config_dir, env)
    env = effective_environment(directory) if env is None else env
    read = read_configuration(directory, environment=environment, env=env)
    problems = read.problems
    if compat.strict_from_environment(env) if strict is None else strict:
        problems = [*problems, *read.warnings]
    return (None if problems else read.project), problems


def read_configuration(
    config_dir: str | Path | None = None,
    *,
    environment: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ConfigurationRead:
    """Read everything, keeping each pipeline file's problems to itself (one broken file blocks no other)."""
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
        return ConfigurationRead(None, reader.problems, {}, reader.warnings, reader.ignored)
    references_checkable = connections is not None
    connections = connections or ConnectionsFile()  # keep reading pipelines: report everything at once

    templates = _Templates(reader, directory / "templates")
    environment_doc, environment_file = _environment_document(reader, directory, env_name)
    shared_problems = list(reader.problems)
    shared_warnings = list(reader.warnings)
    table_files = _table_files(directory / "tables")
    pipelines: dict[str, Pipeline] = {}
    broken: dict[Path, list[ConfigProblem]] = {}
    broken_names: dict[str, Path] = {}
    aliases: dict[str, str] = {}
    for path in _pipeline_files(directory):
        mark = reader.mark()
        pipeline = _read_pipeline(
            reader,
            path,
            connections if references_checkable else None,
            templates,
            environment_doc,
            environment_file,
            table_files,
        )
        if pipeline is not None and pipeline.name in pipelines:
            other = pipelines[pipeline.name].file
            reader.problem(
                path,
                "pipeline.name",
                f"pipeline `{pipeline.name}` is also defined in {other}",
                "give each pipeline a unique name",
            )
        problems, warnings, ignored = reader.since(mark)
        if pipeline is None or problems:
            broken[path] = list(problems)
            broken_names[path.stem] = path
            name = _declared_name(path)
            if name:
                broken_names.setdefault(name, path)
            continue
        pipelines[pipeline.name] = replace(pipeline, ignored=list(ignored), warnings=_unique(warnings))
        for alias in (path.stem, path.stem.removesuffix("_pipeline")):
            if alias != pipeline.name:
                aliases.setdefault(alias, pipeline.name)
    mark = reader.mark()
    for name in _share_targets(reader, pipelines):
        file = pipelines.pop(name).file
        assert file is not None
        broken[file] = [p for p in reader.since(mark)[0] if p.file == file]
        broken_names[file.stem] = file
        broken_names.setdefault(name, file)
    if mode == "env" and "default" not in pipelines:
        pipelines["default"] = _default_pipeline(env_name)
    if shared_problems:
        return ConfigurationRead(None, shared_problems, broken, _unique(reader.warnings), reader.ignored)

    project = Project(
        config_dir=directory,
        connections=connections,
        pipelines=pipelines,
        environment=env_name if environment_file else None,
        mode=mode,
        files_read=reader.files_read,
        broken=broken,
        broken_names=broken_names,
        aliases={k: v for k, v in aliases.items() if k not in pipelines and v in pipelines},
        warnings=_unique(shared_warnings),
    )
    return ConfigurationRead(project, shared_problems, broken, _unique(reader.warnings), reader.ignored)


def _unique(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """Once each (a default_table_config key is checked in every table it reaches)."""
    seen: dict[tuple[Any, ...], ConfigProblem] = {}
    for problem in problems:
        seen.setdefault((problem.file, problem.key, problem.message), problem)
    return list(seen.values())


def _pipeline_files(directory: Path) -> list[Path]:
    """pipelines/*.yml, and the older tool's ``default_pipeline.yml`` beside connections.yml."""
    pipelines_dir = directory / "pipelines"
    files = sorted(pipelines_dir.glob("*.y*ml")) if pipelines_dir.is_dir() else []
    for name in ("default_pipeline.yml", "default_pipeline.yaml"):
        if (directory / name).is_file():
            files.append(directory / name)
    return files


def _declared_name(path: Path) -> str | None:
    """``pipeline.name`` (or the alternative layout's ``name``) of a file, if it can be read at all."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict):
        return None
    section = document.get("pipeline")
    name = section.get("name") if isinstance(section, dict) else document.get("name")
    return name if isinstance(name, str) else None


def _environment_document(reader: _Reader, directory: Path, name: str) -> tuple[dict[str, Any], Path | None]:
    for suffix in (".yml", ".yaml"):
        path = directory / "environments" / f"{name}{suffix}"
        if path.exists():
            document = reader.read_yaml(path) or {}
            for key in document:
                if key in ("pipeline", "tables"):
                    continue
                guess = compat.near_miss(str(key), ["pipeline", "tables"])
                if guess:
                    reader.problem(path, key_path((key,)), f"unknown key `{key}`", f"did you mean `{guess}`?")
                else:
                    reader.warning(
                        path,
                        key_path((key,)),
                        f"unknown key `{key}` in an environment file (not read)",
                        "an environment file may hold `pipeline:` and `tables:` overrides",
                    )
            return {k: v for k, v in document.items() if k in ("pipeline", "tables")}, path
    return {}, None


def _table_files(directory: Path) -> dict[str, Path]:
    return {path.stem: path for path in sorted(directory.glob("*.y*ml"))} if directory.is_dir() else {}


def _normalise_layout(reader: _Reader, path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """The older tool's other shapes rewritten as ``pipeline:`` + ``tables:``; each rewrite is noted.

    - the alternative layout (top-level ``name``, ``connections: {mysql, redshift}``, ``defaults``,
      ``metadata``; tables with a ``backup: {chunk_size}`` block);
    - a top-level ``default_table_config`` or ``processing`` (read under ``pipeline:``);
    - top-level keys the older tool never read (``monitoring``, ``watermarks``), noted as ignored.
    """
    document = dict(raw)
    alternative = "pipeline" not in document and any(k in document for k in ("name", "connections"))
    section = document.get("pipeline")
    pipeline: dict[str, Any] = dict(section) if isinstance(section, dict) else {}
    if alternative:
        for key in ("name", "description"):
            if key in document:
                pipeline[key] = document.pop(key)
        connections = document.pop("connections", None)
        if isinstance(connections, dict):
            for key, value in connections.items():
                field = _ALTERNATIVE_CONNECTIONS.get(str(key))
                if field is None:
                    reader.problem(
                        path,
                        key_path(("connections", key)),
                        f"unknown connection role `{key}`",
                        "use mysql (the source), redshift (the target) and optionally s3",
                    )
                    continue
                pipeline[field] = value
                reader.note_ignored(path, key_path(("connections", key)), f"read as pipeline.{field}", "translated")
        elif connections is not None:
            reader.problem(path, "connections", "must be a mapping", "connections: {mysql: SOURCE, redshift: TARGET}")
        defaults = document.pop("defaults", None)
        if isinstance(defaults, dict):
            _translate_defaults(reader, path, defaults, pipeline)
        for key in ("metadata",):
            if key in document:
                document.pop(key)
                reader.note_ignored(path, key, compat.TOP_LEVEL_IGNORED[key])
        tables = document.get("tables")
        if isinstance(tables, dict):
            document["tables"] = {name: _translate_backup_block(reader, path, name, e) for name, e in tables.items()}
    for key in compat.TOP_LEVEL_ACTED:
        if key in document:
            value = document.pop(key)
            if isinstance(value, dict):
                pipeline[key] = deep_merge(value, pipeline.get(key) or {})
                reason = f"read under pipeline.{key} (the pipeline's own entries win)"
                reader.note_ignored(path, key, reason, "translated")
            else:
                reader.problem(path, key, "must be a mapping", f"move it under pipeline.{key}")
    for key in list(document):
        if key in _PIPELINE_KEYS:
            continue
        if key in compat.TOP_LEVEL_IGNORED:
            document.pop(key)
            reader.note_ignored(path, key_path((key,)), compat.TOP_LEVEL_IGNORED[key])
            continue
        document.pop(key)
        known = [*_PIPELINE_KEYS, *compat.TOP_LEVEL_ACTED, *compat.TOP_LEVEL_IGNORED]
        guess = compat.near_miss(str(key), known)
        if guess:
            reader.problem(path, key_path((key,)), f"unknown top-level key `{key}`", f"did you mean `{guess}`?")
        else:
            reader.warning(
                path,
                key_path((key,)),
                f"unknown top-level key `{key}` (not read)",
                "a pipeline file holds pipeline: and tables:; --strict makes this an error",
            )
    if alternative or pipeline:
        if "pipeline" in raw and not isinstance(raw["pipeline"], dict):
            return document  # reported as misshapen by the caller
        document["pipeline"] = pipeline
    return document


def _translate_defaults(reader: _Reader, path: Path, defaults: dict[str, Any], pipeline: dict[str, Any]) -> None:
    table_defaults: dict[str, Any] = dict(pipeline.get("default_table_config") or {})
    processing: dict[str, Any] = dict(pipeline.get("processing") or {})
    for section, body in defaults.items():
        if not isinstance(body, dict):
            reader.problem(path, key_path(("defaults", section)), "must be a mapping", "defaults: {cdc: {strategy}}")
            continue
        for key, value in body.items():
            where = key_path(("defaults", section, key))
            if section == "cdc" and key == "strategy":
                table_defaults["cdc_strategy"] = value
                reader.note_ignored(path, where, "read as default_table_config.cdc_strategy", "translated")
            elif (section, key) in (("cdc", "batch_size"), ("backup", "chunk_size")):
                processing.setdefault("batch_size", value)
                reader.note_ignored(path, where, "read as pipeline.processing.batch_size", "translated")
            elif section == "backup" and key in ("strategy", "max_chunks"):
                reader.note_ignored(path, where, compat.IGNORED_KEYS[TableConfig]["backup"])
            else:
                hint = "remove it; --strict makes this an error"
                reader.warning(path, where, f"unknown key `{key}` (not read)", hint)
    if table_defaults:
        pipeline["default_table_config"] = table_defaults
    if processing:
        pipeline["processing"] = processing


def _translate_backup_block(reader: _Reader, path: Path, name: Any, entry: Any) -> Any:
    if not isinstance(entry, dict) or not isinstance(entry.get("backup"), dict):
        return entry
    chunk = entry["backup"].get("chunk_size")
    if chunk is not None and not (entry.get("processing") or {}).get("batch_size"):
        entry = {**entry, "processing": {**(entry.get("processing") or {}), "batch_size": chunk}}
        reader.note_ignored(
            path, key_path(("tables", name, "backup", "chunk_size")), "read as processing.batch_size", "translated"
        )
    return entry


def _resolve_staging(reader: _Reader, path: Path, pipeline_doc: dict[str, Any], connections: ConnectionsFile) -> bool:
    """``s3_config`` omitted: the one staging store when there is exactly one; else a problem listing them."""
    if pipeline_doc.get("s3_config"):
        return True
    stores = sorted(connections.s3_configs)
    if len(stores) == 1:
        pipeline_doc["s3_config"] = stores[0]
        reader.note_ignored(path, "pipeline.s3_config", f"not set: the only staging store, `{stores[0]}`", "translated")
        return True
    reader.problem(
        path,
        "pipeline.s3_config",
        "s3_config is not set and connections.yml defines "
        + (f"{len(stores)} staging stores ({', '.join(stores)})" if stores else "no staging store (s3_configs)"),
        f"add s3_config: {stores[0] if stores else '<name>'} under pipeline: (one of {', '.join(stores)})"
        if stores
        else "add an s3_configs entry to connections.yml",
    )
    return False


def _read_pipeline(
    reader: _Reader,
    path: Path,
    connections: ConnectionsFile | None,
    templates: _Templates,
    environment_doc: dict[str, Any],
    environment_file: Path | None,
    table_files: dict[str, Path],
) -> Pipeline | None:
    raw = reader.read_yaml(path)
    if raw is None:
        return None
    before = len(reader.problems)
    raw = _normalise_layout(reader, path, raw)
    document = templates.expand(raw, path, "")
    if environment_doc:
        document = deep_merge(document, environment_doc)
    if "pipeline" not in document:
        reader.problem(
            path,
            "pipeline",
            "required section `pipeline:` is missing",
            "add pipeline: {name, source, target, s3_config} (or the older layout's name: and connections:)",
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
    unresolved = connections is not None and not _resolve_staging(reader, path, pipeline_doc, connections)
    settings = reader.validate(PipelineSettings, pipeline_doc, path, ("pipeline",), None)
    if unresolved:  # already reported with the stores to choose from
        reader.problems[before:] = [
            p for p in reader.problems[before:] if not (p.key == "pipeline.s3_config" and "required" in p.message)
        ]
    if settings is not None and connections is not None:
        _check_references(reader, path, settings, connections)
    defaults = pipeline_doc.get("default_table_config")
    defaults = defaults if isinstance(defaults, dict) else {}

    conns = connections or ConnectionsFile()
    listed: list[tuple[str, TableSpec]] = []  # (key as written, spec), in file order
    duplicates: dict[str, str] = {}  # a key naming a table listed before → that first key
    for written, entry in (document.get("tables") or {}).items():
        written = str(written)
        name_source = _table_identity(reader, path, written, settings, conns, entry)
        if name_source is None:
            continue
        source, name = name_source
        config = _read_table_config(
            reader,
            path,
            defaults,
            templates,
            table_files,
            written,
            name,
            entry,
            environment_file,
            environment_doc,
        )
        if config is None or settings is None or not config.enabled:
            continue
        if config.full_name:
            if not _TABLE_NAME.match(config.full_name):
                reader.problem(path, key_path(("tables", written, "full_name")), "must be schema.table", "")
                continue
            name = config.full_name
        schema, table = name.split(".", 1)
        target = conns.connections.targets.get(settings.target)
        spec = build_table_spec(
            settings,
            conns,
            schema,
            table,
            config,
            target_schema=config.target_schema or (target.schema_ if target else "public"),
            source=source,
        )
        same = next((w for w, s in listed if s.identity == spec.identity), None)
        if same is not None:
            _same_table_twice(reader, path, written, spec, same, dict(listed)[same], duplicates)
            continue
        listed.append((written, spec))
        if isinstance(entry, dict) and entry.get("connection") not in (None, spec.source):
            reader.warning(
                path,
                key_path(("tables", written, "connection")),
                f"says `{entry['connection']}` but the table is read from `{spec.source}` (as the older tool did)",
                f"write the table as {entry['connection']}:{table} to read it from `{entry['connection']}`",
            )
    listed = _scope(listed)
    tables = {spec.name: spec for _, spec in listed}
    aliases = {written: spec.name for written, spec in listed}
    aliases.update({written: aliases[first] for written, first in duplicates.items()})
    if settings is None or len(reader.problems) > before:
        return None
    return Pipeline(
        name=settings.name,
        file=path,
        settings=settings,
        tables=tables,
        environment=environment_file.stem if environment_file else None,
        open_tables=settings.name == "default",
        table_aliases={w: n for w, n in aliases.items() if w != n},
    )


# Table settings that describe a table without changing how it syncs.
_DESCRIPTIVE = frozenset({"description", "owners", "tags", "table_type", "depends_on", "freshness"})


def _same_table_twice(
    reader: _Reader,
    path: Path,
    written: str,
    spec: TableSpec,
    first: str,
    first_spec: TableSpec,
    duplicates: dict[str, str],
) -> None:
    """Two keys naming one source table (``orders`` and ``CONN:orders``): one table when they agree, else an error.

    The older tool kept a watermark per key, so both keys read the same rows into the same target
    (every row twice with its appending COPY). Here a source table is synced once, by one writer.
    """
    key = key_path(("tables", written))
    differ = sorted(
        name
        for name in type(spec.config).model_fields
        if name not in _DESCRIPTIVE and getattr(spec.config, name) != getattr(first_spec.config, name)
    )
    if (spec.target_schema, spec.target_table) != (first_spec.target_schema, first_spec.target_table):
        differ.append("target_name/target_schema")
    if not differ:
        duplicates[written] = first
        reader.warning(
            path,
            key,
            f"names {spec.identity} again (also listed as `{first}`, with the same settings): it is one table, "
            "synced once with one watermark; `-t` accepts either key",
            f"remove `{written}` (or `{first}`) from tables:",
        )
        return
    reader.problem(
        path,
        key,
        f"names {spec.identity} again (also listed as `{first}`) with different settings "
        f"({', '.join(differ)}): one source table is read once, with one watermark",
        f"keep one of `{first}` and `{written}` with the settings you want, and remove the other",
    )


def _replaces(spec: TableSpec) -> bool:
    """The table's loads replace the whole warehouse table (full_sync's default mode, or write_mode: replace)."""
    config = spec.config
    if config.write_mode:
        return config.write_mode == "replace"
    return config.cdc_strategy == "full_sync" and (config.full_sync_mode or "replace") == "replace"


def _scope(listed: list[tuple[str, TableSpec]]) -> list[tuple[str, TableSpec]]:
    """Tables whose ``schema.table`` the pipeline lists from several connections get the connection as scope."""
    sources_of: dict[tuple[str, str], set[str]] = {}
    for _, spec in listed:
        sources_of.setdefault((spec.schema, spec.table), set()).add(spec.source)
    return [
        (written, replace(spec, scope=spec.source) if len(sources_of[(spec.schema, spec.table)]) > 1 else spec)
        for written, spec in listed
    ]


def _written(pipelines: dict[str, Pipeline], spec: TableSpec) -> str:
    """The key the pipeline file lists the table under."""
    aliases = pipelines[spec.pipeline].table_aliases
    return next((w for w, n in aliases.items() if n == spec.name), spec.name)


def _share_targets(reader: _Reader, pipelines: dict[str, Pipeline]) -> set[str]:
    """Mark the tables that load one warehouse table together; the pipelines refused for it.

    Several source tables may load one warehouse table (the older tool's shared ``target_name``, the
    same table from two connections or two pipelines): each stays its own unit of work with its own
    watermark, lock and ledger rows, and every one of them is told the others (``shared_target``).
    A load that replaces the whole target would delete the other sources' rows, so it is refused.
    The same source table loaded into the same warehouse table by two pipelines is refused by
    :func:`sync_platform.orchestration.factory.project_tables` (one writer per source table).
    """
    groups: dict[tuple[str, str, str], list[TableSpec]] = {}
    # The file name in sorted order decides which pipeline owns a table several pipelines list.
    for pipeline in sorted(pipelines.values(), key=_file_order):
        for spec in pipeline.tables.values():
            groups.setdefault((spec.target, spec.target_schema, spec.target_table), []).append(spec)
    shared: dict[tuple[str, str], tuple[str, ...]] = {}
    refused: set[str] = set()
    references: list[tuple[TableSpec, TableSpec]] = []  # (a second pipeline's entry, the owner's)
    for members in groups.values():
        first: dict[str, TableSpec] = {}
        for spec in members:  # the same source table into the same warehouse table from a second pipeline
            before = first.setdefault(spec.identity, spec)
            if before is spec:
                continue
            differ = sync_differences(spec, before)
            pipeline = pipelines[spec.pipeline]
            if not differ:
                references.append((spec, before))
                continue
            warning = ConfigProblem(
                pipeline.file,
                key_path(("tables", _written(pipelines, spec))),
                f"loads {spec.identity} into {spec.target_label}, as `{_written(pipelines, before)}` of "
                f"pipeline {before.pipeline} does, with different settings ({', '.join(differ)}): a sync of it is "
                "refused (one source table into one warehouse table is one table, with one watermark)",
                "give both entries the same settings (the table is then synced once, by either pipeline), or keep "
                "it in one of the two pipelines",
                severity="warning",
            )
            pipelines[spec.pipeline] = replace(pipeline, warnings=[*pipeline.warnings, warning])
        identities = tuple(dict.fromkeys(spec.identity for spec in members))
        if len(identities) < 2:
            continue
        for spec in members:
            shared[(spec.pipeline, spec.name)] = identities
            if not _replaces(spec):
                continue
            pipeline = pipelines[spec.pipeline]
            others = ", ".join(
                f"`{_written(pipelines, o)}`" + ("" if o.pipeline == spec.pipeline else f" of pipeline {o.pipeline}")
                for o in members
                if o.identity != spec.identity
            )
            reader.problem(
                pipeline.file,
                key_path(("tables", _written(pipelines, spec))),
                f"replaces the whole of {spec.target_label} on every load, but {others} load(s) it too: a replace "
                "would delete their rows",
                "set full_sync_mode: paginate (the whole table is re-read and merged by key) or write_mode: "
                "merge, or give it its own target_name",
            )
            refused.add(spec.pipeline)
    for name, pipeline in pipelines.items():
        if any((name, t) in shared for t in pipeline.tables):
            tables = {t: replace(spec, shared_target=shared.get((name, t), ())) for t, spec in pipeline.tables.items()}
            pipelines[name] = replace(pipeline, tables=tables)
    for spec, owner in references:
        if owner.pipeline not in refused:
            _refer(pipelines, spec, owner)
    return refused


def _file_order(pipeline: Pipeline) -> tuple[str, str]:
    return (pipeline.file.name if pipeline.file else "", pipeline.name)


def sync_differences(spec: TableSpec, other: TableSpec) -> list[str]:
    """The settings that make two entries of one source table sync differently (descriptive ones aside).

    Page and file sizes, compression and the staging store change how a table is carried, not what
    reaches the warehouse: the owner's apply.
    """
    differ = sorted(
        name
        for name in type(spec.config).model_fields
        if name not in _NOT_SYNC and getattr(spec.config, name) != getattr(other.config, name)
    )
    if (spec.target, spec.target_schema, spec.target_table) != (other.target, other.target_schema, other.target_table):
        differ.append("target")
    return differ


# Settings that do not change which rows a sync reads and how it writes them.
_NOT_SYNC = _DESCRIPTIVE | {
    "processing",
    "cdc_ordering",
    "timestamp_format",
    "full_name",
    "target_name",
    "target_schema",
}


def _refer(pipelines: dict[str, Pipeline], spec: TableSpec, owner: TableSpec) -> None:
    """``spec``'s pipeline lists the owner's table again: its entry becomes the owner's table (one table,
    one set of assets, one watermark and lock), and both pipelines say so."""
    pipeline, owning = pipelines[spec.pipeline], pipelines[owner.pipeline]
    current = pipelines[owner.pipeline].tables.get(owner.name, owner)
    written, owner_written = _written(pipelines, spec), _written(pipelines, current)
    note = ConfigProblem(
        pipeline.file,
        key_path(("tables", written)),
        f"{spec.identity} into {spec.target_label} is also listed by pipeline {owning.name} (`{owner_written}`, "
        f"{owning.file.name if owning.file else 'generated'}) with the same settings: it is one table, synced with "
        f"one watermark; its assets belong to pipeline {owning.name}, and a sync from either pipeline runs them",
        severity="info",
    )
    tables = {t: (current if t == spec.name else s) for t, s in pipeline.tables.items()}
    aliases = dict(pipeline.table_aliases)
    if current.name != spec.name:  # the owner names it CONN:schema.table, this pipeline schema.table (or back)
        tables = {(current.name if t == spec.name else t): s for t, s in tables.items()}
        aliases = {w: (current.name if n == spec.name else n) for w, n in aliases.items()}
        aliases[spec.name] = current.name
        aliases.pop(current.name, None)
    pipelines[spec.pipeline] = replace(
        pipeline, tables=tables, table_aliases=aliases, warnings=[*pipeline.warnings, note]
    )
    back = ConfigProblem(
        owning.file,
        key_path(("tables", owner_written)),
        f"{owner.identity} into {owner.target_label} is also listed by pipeline {pipeline.name} (`{written}`, "
        f"{pipeline.file.name if pipeline.file else 'generated'}) with the same settings: one table, whose assets "
        "belong to this pipeline",
        severity="info",
    )
    pipelines[owner.pipeline] = replace(owning, warnings=[*owning.warnings, back])


def _table_identity(
    reader: _Reader,
    path: Path,
    written: str,
    settings: PipelineSettings | None,
    connections: ConnectionsFile,
    entry: Any,
) -> tuple[str, str] | None:
    """(source connection, ``schema.table``) of a table key, resolved as the older tool resolved it.

    ``schema.table`` reads from the pipeline's source; a bare ``table`` from the source connection's
    database; ``CONNECTION:table`` (or ``CONNECTION:schema.table``) from that connection.
    """
    key = key_path(("tables", written))
    scope, _, rest = written.rpartition(":") if ":" in written else ("", "", written)
    source = scope or (settings.source if settings else "")
    if scope and scope not in connections.connections.sources:
        known = ", ".join(sorted(connections.connections.sources)) or "none"
        guess = compat.near_miss(scope, list(connections.connections.sources))
        reader.problem(
            path,
            key,
            f"`{scope}` is not a source connection in connections.yml",
            f"did you mean `{guess}`?" if guess else f"sources: {known}",
        )
        return None
    if _TABLE_NAME.match(rest):
        return source, rest
    if _BARE_NAME.match(rest):
        conn = connections.connections.sources.get(source)
        if conn is None:
            return None  # the unknown source is reported with pipeline.source
        return source, f"{conn.database}.{rest}"
    reader.problem(
        path, key, f"table `{written}` must be written schema.table, table or CONNECTION:table", "e.g. shop.orders"
    )
    return None


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
            if name == "default":
                hint += f"(the older tool's v1.0.0 `default` came from .env; define {section}.default) "
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
    table_files: dict[str, Path],
    written: str,
    name: str,
    entry: Any,
    environment_file: Path | None,
    environment_doc: dict[str, Any],
) -> TableConfig | None:
    key = key_path(("tables", written))
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
            file = table_files[file_key]
            document = reader.read_shared_yaml(file)
            if document is None:
                continue
            document = templates.expand(document, file, "")
            sources.append((file, document))
            merged = deep_merge(merged, document)
    expanded = templates.expand(entry, path, key)
    sources.append((path, expanded))
    for env_key in (written, name):
        if environment_file and env_key in (environment_doc.get("tables") or {}):
            sources.append((environment_file, environment_doc["tables"][env_key]))
    merged = deep_merge(merged, expanded)
    config = reader.validate(TableConfig, merged, path, ("tables", written), sources)
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
    source: str | None = None,
) -> TableSpec:
    # The older tool's default isolation prefix: the name, spaces as underscores, lower case.
    prefix = (settings.s3.isolation_prefix or settings.name.replace(" ", "_").lower()).strip("/")
    return TableSpec(
        pipeline=settings.name,
        source=source or settings.source,
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
    pipeline = project.pipelines.get(project.pipeline_name(pipeline_name) or pipeline_name)
    if pipeline is None:
        broken = project.broken_file(pipeline_name)
        if broken is not None:
            raise ConfigError(project.broken[broken])
        known = ", ".join(sorted({*project.pipelines, *project.aliases})) or "none"
        raise ConfigError(
            [
                ConfigProblem(
                    project.config_dir / "pipelines",
                    pipeline_name,
                    f"pipeline `{pipeline_name}` not found",
                    f"known pipelines (by name or file name): {known}",
                )
            ]
        )
    pipeline_name = pipeline.name
    found = pipeline.table_name(table_name)
    if found is not None:
        return pipeline.tables[found]
    if ":" in table_name:  # CONNECTION:table as the older tool's CLI wrote it
        scope, _, rest = table_name.rpartition(":")
        found = pipeline.table_name(rest)
        if found is not None and pipeline.tables[found].source == scope:
            return pipeline.tables[found]
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
