"""Which pipeline a ``-t schema.table`` (or ``CONN:schema.table``) on the command line means."""

from __future__ import annotations

from sync_platform.configuration import ConfigError, ConfigProblem, Project, TableSpec, table_spec


def resolve_table(project: Project, name: str, pipeline: str | None = None) -> TableSpec:
    """The table's spec: in ``pipeline`` when given, else the one pipeline listing it, else ``default``.

    Several pipelines listing the table is an error asking for ``-p`` (the older tool guessed).
    """
    source, _, table = name.rpartition(":") if ":" in name else ("", "", name)
    if pipeline:
        spec = table_spec(project, pipeline, name)
        if source and spec.source != source:
            raise _problem(name, f"pipeline {pipeline} reads {table} from `{spec.source}`, not `{source}`")
        return spec
    found = {
        p.name: p.table_name(name) or p.table_name(table)
        for p in project.pipelines.values()
        if p.table_name(name) or p.table_name(table)
    }
    listing = [n for n, t in found.items() if not source or project.pipelines[n].tables[t].source == source]
    if len(listing) == 1:
        return project.pipelines[listing[0]].tables[found[listing[0]]]
    if len(listing) > 1:
        raise _problem(name, f"{table} is in several pipelines ({', '.join(sorted(listing))}); name one with -p")
    if "default" in project.pipelines and project.pipelines["default"].open_tables:
        return table_spec(project, "default", table)
    known = ", ".join(sorted(project.pipelines)) or "none"
    raise _problem(name, f"no pipeline lists {table} (pipelines: {known}); add it to a pipeline or pass -p")


def _problem(name: str, message: str) -> ConfigError:
    return ConfigError([ConfigProblem(None, f"-t {name}", message)])
