"""The SQL of `sql/` and the comments beside it: what each file reads, the order the roll-up
builds them in, and the one way a table, a view and their columns are commented.

Every relation of the warehouse has a `.toml` under `sql/` named after it
(`sql/<folder>/<name>.toml`, the folder being its schema, `marts` for `mart`): its comment
(`table`) and its columns' (`[columns]`), English for analysts, then ` | ` and Chinese. The
forms' tables (`staging.<table>` and the read cache `ingest.read_<table>`, one per form) share
one file each, `sql/staging/form.toml` and `sql/ingest/read_form.toml`, whose `[fields]` say
how a form's own fields are commented from its schema (`schemas/*.toml`).
"""
from __future__ import annotations

import graphlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import duckdb

from flows.config import SQL
from flows.errors import ConfigError
from flows.schemas import Form

# Schema -> its folder of sql/.
FOLDERS = {"ref": "ref", "ingest": "ingest", "staging": "staging", "intermediate": "intermediate",
           "mart": "marts", "analysis": "analysis"}
# The folders whose queries the roll-up builds, each query the table (or, in analysis, the view)
# named after its file.
BUILT = ("intermediate", "marts", "analysis")
# The forms' own tables, one per form and schema: schema -> (what the table's name adds before
# the form's `table`, the .toml that comments all of them).
FORM_TABLES = {"staging": ("", "form"), "ingest": ("read_", "read_form")}

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_REFERENCE = re.compile(rf"\b({'|'.join(FOLDERS)})\s*\.\s*({_NAME})\b", re.IGNORECASE)
# What is not SQL text: comments and string literals (a name in them is no reference).
_NOT_CODE = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'", re.DOTALL)


def literal(text: str) -> str:
    """A SQL string literal of our own text (COMMENT ON takes no parameters). Never file input."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Step:
    """A query of sql/ and the relation it builds."""
    path: Path

    @property
    def relation(self) -> str:
        schema = next(s for s, folder in FOLDERS.items() if folder == self.path.parent.name)
        return f"{schema}.{self.path.stem}"

    @property
    def kind(self) -> str:
        return "view" if self.path.parent.name == "analysis" else "table"

    def query(self) -> str:
        return self.path.read_text(encoding="utf-8")


def references(query: str) -> set[str]:
    """The schema.table names a query reads (lower case), its comments and strings left out."""
    return {f"{s}.{t}".lower() for s, t in _REFERENCE.findall(_NOT_CODE.sub(" ", query))}


def query_of(relation: str) -> Path | None:
    """The query of sql/ that builds `relation`, if one does."""
    schema, name = relation.split(".")
    path = SQL / FOLDERS.get(schema, schema) / f"{name}.sql"
    return path if path.exists() else None


def tables_read(relation: str) -> set[str]:
    """Every relation `relation` is made of: what its query reads, what their queries read, and
    so on (the relations no query of sql/ builds end the chain)."""
    out: set[str] = set()
    todo = [relation]
    while todo:
        path = query_of(todo.pop())
        new = references(path.read_text(encoding="utf-8")) - out if path else set()
        out |= new
        todo += sorted(new)
    return out


def build_order(have: set[str]) -> list[Step]:
    """The queries of the BUILT folders, each after those whose relations it reads. `have` is
    what the warehouse holds before the roll-up (ref, ingest, staging): a query reading
    anything else that no query builds, or queries reading each other in a circle, are an error."""
    steps = {s.relation: s for folder in BUILT for s in map(Step, sorted((SQL / folder).glob("*.sql")))}
    graph = {}
    for relation, step in steps.items():
        reads = references(step.query()) - {relation}
        unknown = sorted(reads - set(steps) - have)
        if unknown:
            raise ConfigError(f"{_shown(step.path)} reads {', '.join(unknown)}, which no query of sql/ builds "
                              f"and the warehouse does not have: correct the name, or add sql/<folder>/<name>.sql")
        graph[relation] = reads & set(steps)
    sorter = graphlib.TopologicalSorter(graph)
    try:
        sorter.prepare()
    except graphlib.CycleError as e:
        raise ConfigError(f"the queries of sql/ read each other in a circle ({' -> '.join(e.args[1])}): "
                          f"one of them must not read the other") from None
    order = []
    while sorter.is_active():
        # Sorted within each round: the same files always build in the same order.
        ready = sorted(sorter.get_ready(), key=lambda r: (BUILT.index(steps[r].path.parent.name), r))
        order += [steps[r] for r in ready]
        sorter.done(*ready)
    return order


def relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every table and view of the warehouse but DuckDB's own, as schema.name."""
    return {r for (r,) in con.execute(
        "select schema_name || '.' || table_name from duckdb_tables() where not internal union all "
        "select schema_name || '.' || view_name from duckdb_views() where not internal").fetchall()}


def toml_path(relation: str, form: Form | None = None) -> Path:
    """The .toml that comments `relation` (a form's table: the one of all forms' tables)."""
    schema, name = relation.split(".")
    if form is not None:
        return SQL / FOLDERS[schema] / f"{FORM_TABLES[schema][1]}.toml"
    return SQL / FOLDERS.get(schema, schema) / f"{name}.toml"


def form_of(relation: str, forms: dict[str, Form]) -> Form | None:
    """The form whose table `relation` is, if it is one (staging.sg01, ingest.read_sg01)."""
    schema, name = relation.split(".")
    if schema not in FORM_TABLES:
        return None
    return next((f for f in forms.values() if name == FORM_TABLES[schema][0] + f.table), None)


def comments(relation: str, form: Form | None = None) -> tuple[str, dict[str, str]]:
    """`relation`'s comment and its columns' from its .toml. `like` names another .toml whose
    column comments apply where this one says nothing; a form's fields are commented by the
    `[fields]` patterns of their type ("*": every type), with {field}, {header} and {comment}
    of the form's schema, and {form} and {name} in the table's comment."""
    path = toml_path(relation, form)
    if not path.exists():
        raise ConfigError(f"{relation} has no comments: write {_shown(path)} (its comment as `table`, each column's "
                          f"under [columns], English | Chinese)")
    meta = tomllib.loads(path.read_text(encoding="utf-8"))
    columns = comments(meta["like"])[1] if "like" in meta else {}
    columns |= meta.get("columns", {})
    text = meta["table"]
    if form is not None:
        text = _fill(text, form=form.id, name=form.name)
        patterns = meta.get("fields", {})
        for f in form.fields:
            for column, pattern in (patterns.get("*", {}) | patterns.get(f.type, {})).items():
                columns[_fill(column, field=f.name)] = _fill(pattern, field=f.name, header=f.header,
                                                             comment=f.comment)
    return text, columns


def _fill(text: str, **values: str) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def apply_comments(con: duckdb.DuckDBPyConnection, relation: str, form: Form | None = None) -> None:
    """Comment `relation` and those of its columns its .toml names (the docs test checks that
    none is left out)."""
    text, columns = comments(relation, form)
    schema, name = relation.split(".")
    # Only what differs is written: each COMMENT is a catalog change, and a month built on a copy
    # of the published warehouse finds most of them there already (0.3 s a month otherwise).
    kind, now = con.execute("select 'view', comment from duckdb_views() where schema_name = $1 and view_name = $2 "
                            "union all select 'table', comment from duckdb_tables() "
                            "where schema_name = $1 and table_name = $2", [schema, name]).fetchone()
    if now != text:
        con.execute(f"comment on {kind} {relation} is {literal(text)}")
    have = dict(con.execute("select column_name, comment from duckdb_columns() where schema_name = ? and table_name = ?",
                            [schema, name]).fetchall())
    for column, text in columns.items():
        if column in have and have[column] != text:
            con.execute(f'comment on column {relation}."{column}" is {literal(text)}')


def _shown(path: Path) -> str:
    return str(path.relative_to(SQL.parent)) if path.is_relative_to(SQL.parent) else str(path)
