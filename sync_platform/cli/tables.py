"""Which pipeline a ``-t schema.table`` (or ``CONN:schema.table``) on the command line means."""

from __future__ import annotations

import difflib

from sync_platform.configuration import ConfigError, ConfigProblem, Project, TableSpec, table_spec


def resolve_table(project: Project, name: str, pipeline: str | None = None) -> TableSpec:
    """The table's spec: in ``pipeline`` when given, else the one pipeline listing it, else ``default``.

    Several pipelines listing the table is an error asking for ``-p`` (the older tool guessed). A name
    that no pipeline lists, or one without its schema, gets the configured names closest to it.
    """
    source, _, table = name.rpartition(":") if ":" in name else ("", "", name)
    if pipeline:
        try:
            spec = table_spec(project, pipeline, name)
        except ConfigError:
            chosen = project.pipelines.get(pipeline)
            if chosen is not None and not chosen.open_tables and not chosen.table_name(name):
                message = f"table `{table}` is not part of pipeline `{pipeline}`"
                raise _problem(name, message, list(chosen.tables)) from None
            raise
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
    configured = sorted({t for p in project.pipelines.values() for t in p.tables})
    if "." not in table:
        raise _problem(name, f"`{table}` has no schema: write tables as schema.table", configured)
    if "default" in project.pipelines and project.pipelines["default"].open_tables:
        return table_spec(project, "default", table)
    known = ", ".join(sorted(project.pipelines)) or "none"
    raise _problem(name, f"no pipeline lists {table} (pipelines: {known}); add it to a pipeline or pass -p", configured)


def closest_tables(name: str, configured: list[str]) -> list[str]:
    """Configured tables the user probably meant: the same table in another schema, or a near spelling."""
    bare = name.rpartition(".")[2].lower()
    same_table = [t for t in configured if t.rpartition(".")[2].lower() == bare]
    near = difflib.get_close_matches(name, configured, n=3, cutoff=0.75)
    return list(dict.fromkeys([*same_table, *near]))[:3]


def _problem(name: str, message: str, configured: list[str] | None = None) -> ConfigError:
    table = name.rpartition(":")[2]
    guesses = closest_tables(table, configured or [])
    hint = "did you mean " + " or ".join(f"`{g}`" for g in guesses) + "?" if guesses else ""
    return ConfigError([ConfigProblem(None, f"-t {name}", message, hint)])
