"""Rolling up: the queries of `sql/intermediate`, `sql/marts` and `sql/analysis`, each after what
it reads (sqlfiles.build_order).

Each file is a query named after the table (the view, in analysis) it builds. A query with a
`period` column builds that month's rows (the month's old rows are deleted first; in a rerun's
PER_UNIT tables, those of the units it changed); one without is rebuilt whole. The analysts'
views take no variables, so that any client, older DuckDB releases included, can query them. A
sibling `.toml` holds the comments for analysts.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import polars as pl

from flows.config import SQL
from flows.registry import plan_for
from flows.warehouse import sqlfiles
from flows.warehouse.load import add_new_columns, month_start

# Appended and never cleared: the history of what the runs computed. A run appends the rows of its
# query that differ (any column but RUN_STAMP, NULLs equal) from the latest row of their key in the
# month (by computed_at): every row on the month's first run, none when nothing changed. So the
# latest row of each key is what was published last, a key's row as of a day is its latest row
# computed by then, and the table grows with what changed, not with every run's copy of the month
# (583,538 rows a province rerun). Table -> its key besides the period.
APPEND_ONLY = {"mart.indicator_history": ("unit_code", "indicator_id")}
RUN_STAMP = ("run_id", "computed_at")
# The warnings the roll-up adds to ingest.failures (sql/checks), beside validation's: a rerun
# takes validation's results from the last run, never these, which the roll-up adds again.
MONTH_ON_MONTH, POPULATION_SHARE, ROSTER_CONFLICT = "month_on_month", "population_share", "roster_conflict"
CHECK_RULES = (MONTH_ON_MONTH, POPULATION_SHARE, ROSTER_CONFLICT)

# The roll-up's tables of a row per unit and indicator (most of a province month's rows: 33,000
# units times 17 indicators), with what each query reads. A unit's rows of the month are made of
# that unit's rows of the month in these relations, the carried rows of its subtree (in
# staging.form_rows), and what a rerun of the month cannot change while its `rolled_with` is
# the same (the registry, plans and indicators, the SQL, the code) and no run of an earlier month
# has finished since (their figures make the trend). So a rerun rebuilds them for the units
# whose roll-up row or carried rows changed, and their ancestors, only (`changed_units`). A query
# that reads anything not listed here is rebuilt whole, for every unit, as a first run does.
PER_UNIT = {
    "intermediate.indicator_figures": {"intermediate.unit_rollup", "intermediate.units", "ref.indicators",
                                       "ref.plans"},
    "mart.indicator_values": {"intermediate.indicator_figures", "intermediate.unit_closure", "ref.figure_sources",
                              "ref.indicators", "staging.form_rows"},
}
# How far back the trend of mart.indicator_values reads a unit's figures (sql/marts/indicator_values.sql).
TREND_MONTHS = 11
# The roll-up's code, and the code that makes the tables it reads (their columns and comments):
# load.built_with takes a warehouse last built under the same fingerprint as it stands.
_CODE = [Path(__file__), Path(__file__).with_name("load.py"), Path(__file__).with_name("sqlfiles.py"),
         Path(__file__).parents[1] / "registry.py", Path(__file__).parents[1] / "schemas.py",
         Path(__file__).parents[1] / "ingest" / "convert.py"]


def fingerprint(settings, forms: dict, frames: list[pl.DataFrame]) -> str:
    """What decides the roll-up besides the month's rows: every file of sql/, the roll-up's code,
    DuckDB's release, the settings it reads, the forms and the reference frames (registry,
    population, plans, indicators). Recorded as ingest.runs.rolled_with: the same for the same
    month whichever way it runs (CLI, served, on Dask)."""
    h = hashlib.sha256(duckdb.__version__.encode())
    for path in sorted(p for p in SQL.rglob("*") if p.is_file()):
        h.update(path.relative_to(SQL).as_posix().encode() + b"\0" + path.read_bytes())
    for path in _CODE:
        h.update(path.read_bytes())
    # The settings the roll-up reads; not how or when the month runs (task runner, schedule).
    h.update(repr((settings.community_rule, settings.carry_forward_months, settings.deadline_day,
                   settings.timezone)).encode() + repr(sorted(forms.items())).encode())
    for frame in frames:
        # Values as text, column names and types with them: 20 ms for a province's 33,000 units.
        # (Arrow IPC bytes are not canonical: equal frames built differently differ in them.)
        h.update(repr(frame.schema).encode() + frame.write_json().encode())
    return h.hexdigest()


def keep_month(con: duckdb.DuckDBPyConnection, period: str, rolled_with: str) -> bool:
    """Whether this run may rebuild the month's PER_UNIT tables for changed units only: the month's
    last run rolled up under the same `rolled_with`, no run of the TREND_MONTHS before it finished
    since, and the queries read what PER_UNIT says. If so, call before the month's rows are
    replaced: its roll-up rows and carried rows as they stand are kept aside for `changed_units`."""
    if any(sqlfiles.references(sqlfiles.query_of(t).read_text(encoding="utf-8")) - {t} != reads
           for t, reads in PER_UNIT.items()):
        return False
    if "rolled_with" not in {r[0] for r in con.execute("select column_name from information_schema.columns "
                                                       "where table_schema = 'ingest' and table_name = 'runs'")
                             .fetchall()}:
        return False
    last = con.execute("select rolled_with, finished_at from ingest.runs where period = ? "
                       "order by finished_at desc limit 1", [period]).fetchall()
    if not last or last[0][0] != rolled_with:
        return False
    first = con.execute("select strftime(?::date - to_months(?), '%Y-%m')",
                        [month_start(period), TREND_MONTHS]).fetchone()[0]
    if con.execute("select count(*) from ingest.runs where period >= ? and period < ? and finished_at > ?",
                   [first, period, last[0][1]]).fetchone()[0]:
        return False
    con.execute("create or replace temp table prior_rollup as select * exclude (period, period_start) "
                "from intermediate.unit_rollup where period = ?", [period])
    con.execute("create or replace temp table prior_carried as select distinct form, unit_code "
                "from staging.form_rows where period = ? and carried_from is not null and counted", [period])
    return True


def changed_units(con: duckdb.DuckDBPyConnection) -> int:
    """The units whose PER_UNIT rows this run must rebuild (temp table changed_units), once the
    month's roll-up is built: those whose roll-up row is not what it was (any column, a unit new
    or gone included), and the ancestors of units whose carried rows changed (mart.indicator_values
    counts the carried units of a subtree). Returns how many."""
    con.execute("""
        create or replace temp table changed_units as
        with now as (
            select * exclude (period, period_start) from intermediate.unit_rollup
            where period = getvariable('period')
        ),
        now_carried as (
            select distinct form, unit_code from staging.form_rows
            where period = getvariable('period') and carried_from is not null and counted
        ),
        carried_changed as (
            (select * from now_carried except select * from prior_carried)
            union
            (select * from prior_carried except select * from now_carried)
        )
        select coalesce(n.unit_code, o.unit_code) as unit_code
        from now as n
        full join prior_rollup as o on o.unit_code = n.unit_code
        where n is distinct from o
        union
        select c.ancestor_code
        from intermediate.unit_closure as c
        join carried_changed as d on d.unit_code = c.descendant_code""")
    return con.execute("select count(*) from changed_units").fetchone()[0]


def append_changed(con: duckdb.DuckDBPyConnection, table: str, query: str, columns: list[str],
                   key: tuple[str, ...], units: str | None = None) -> None:
    """Append the rows of `query` (of `columns`) that are not already the latest of their key in the
    month (APPEND_ONLY); `units`: a table of the only unit_codes whose rows may have changed."""
    compared = [c for c in columns if c not in RUN_STAMP]
    only = f"unit_code in (select unit_code from {units})" if units else "true"
    con.execute(f"""
        insert into {table} by name
        with new as (select * from ({query}) where {only}),
        latest as (
            select * from {table}
            where period = getvariable('period') and {only}
            qualify row_number() over (partition by {', '.join(key)} order by computed_at desc) = 1
        )
        select * from new as n
        where not exists (
            select 1 from latest as l
            where {' and '.join(f'l."{c}" is not distinct from n."{c}"' for c in compared)}
        )""")


def build(con: duckdb.DuckDBPyConnection, period: str, community_rule: str, run_id: str = "",
          run_at: str | None = None, deadline_utc: str | None = None, kept: bool = False) -> int:
    """The month's roll-up. `kept` (keep_month said so): PER_UNIT tables rebuilt for the changed
    units only. Returns how many units their rows were rebuilt for (every unit's, unless kept)."""
    con.execute("set variable period = ?", [period])
    con.execute("set variable period_start = ?::date", [month_start(period)])
    con.execute("set variable community_rule = ?", [community_rule])
    con.execute("set variable run_id = ?", [run_id])
    con.execute("set variable run_at = coalesce(?, current_timestamp::timestamp::varchar)", [run_at])
    con.execute("set variable deadline_utc = ?", [deadline_utc])
    # The plan the month is judged against (none: values without targets, status no_plan) and
    # the plan whose indicators it is computed with (registry.plan_for).
    in_force, indicators = plan_for(con.execute("select plan_id, from_period, to_period from ref.plans").fetchall(),
                                    period)
    con.execute("set variable plan_id = ?", [in_force])
    con.execute("set variable indicator_plan = ?", [indicators])
    con.execute("set variable no_plan = ?", [in_force is None])
    con.execute("create schema if not exists analysis")
    changed = None
    for step in sqlfiles.build_order(sqlfiles.relations(con)):
        table, query = step.relation, step.query()
        if step.kind == "view":
            con.execute(f"create or replace view {table} as {query}")
        elif "period" not in (columns := [d[0] for d in con.execute(f"describe {query}").fetchall()]):
            con.execute(f"create or replace table {table} as {query}")
        else:
            con.execute(f"create table if not exists {table} as select * from ({query}) limit 0")
            add_new_columns(con, table, query)
            if kept and table in PER_UNIT:
                if changed is None:  # every relation PER_UNIT queries read is built by now
                    changed = changed_units(con)
                if changed:  # none: the month's rows stand as they are
                    con.execute(f"delete from {table} where period = ? and unit_code in "
                                f"(select unit_code from changed_units)", [period])
                    con.execute(f"insert into {table} by name select * from ({query}) "
                                f"where unit_code in (select unit_code from changed_units)")
            elif table in APPEND_ONLY:
                # A rerun that rebuilt the PER_UNIT rows of some units: only theirs can have changed.
                if not (kept and changed == 0):
                    append_changed(con, table, query, columns, APPEND_ONLY[table],
                                   "changed_units" if kept and changed else None)
            else:
                con.execute(f"delete from {table} where period = ?", [period])
                con.execute(f"insert into {table} by name {query}")
        sqlfiles.apply_comments(con, table)
    return changed if kept else con.execute("select count(*) from intermediate.units").fetchone()[0]


def soft_bounds(con: duckdb.DuckDBPyConnection, period: str, run_id: str, forms: dict) -> int:
    """Warnings of the forms' soft bounds that need other months or the registry (month_on_month,
    population_share); returns how many."""
    return sum(month_on_month(con, period, run_id, form) + population_share(con, period, run_id, form)
               for form in forms.values())


def month_on_month(con: duckdb.DuckDBPyConnection, period: str, run_id: str, form) -> int:
    """Warnings for a form's figures that changed beyond their factor since last month (the
    schema's warn_change), and for villages' talents that doubled or halved; returns how many."""
    fields = [{"field": f.name, "factor": f.bounds.warn_change, "base": f.bounds.warn_change_from}
              for f in form.fields if f.bounds.warn_change]
    if not fields and form.id != "SG-01":  # SG-01's rows also carry the talents check
        return 0
    names = {f.name: f.header for f in form.fields}
    _check_variables(con, form, "change_fields", "struct(field varchar, factor double, base double)[]", fields)
    factors = {f["field"]: f["factor"] for f in fields} | {"talents": 2}
    warnings = []
    for form_id, path, sheet, excel_row, unit_code, field, now, before in con.execute(_check("month_on_month")).fetchall():
        if field == "talents":
            header, what = "", f"本单位本月台账在册人才 {now:g} 人，上月 {before:g} 人"
        else:
            header, what = names[field], f"「{names[field]}」本月为 {now:g}，上月为 {before:g}"
        change = "变化超过一倍" if factors[field] == 2 else f"变化达到 {factors[field]:g} 倍以上"
        warnings.append((form_id, path, sheet, excel_row, field, header, f"{now:g}", MONTH_ON_MONTH,
                         f"{what}，{change}；如填报无误可忽略此提示，否则请更正后重新报送"))
    return _warn(con, period, run_id, warnings)


def population_share(con: duckdb.DuckDBPyConnection, period: str, run_id: str, form) -> int:
    """Warnings for a form's figures above their share of the county's registered population
    (the schema's warn_population_share); returns how many."""
    fields = [{"field": f.name, "share": f.bounds.warn_population_share}
              for f in form.fields if f.bounds.warn_population_share]
    if not fields:
        return 0
    names = {f.name: f.header for f in form.fields}
    _check_variables(con, form, "share_fields", "struct(field varchar, share double)[]", fields)
    warnings = [(form_id, path, sheet, excel_row, field, names[field], f"{value:g}", POPULATION_SHARE,
                 f"「{names[field]}」为 {value:g}，超过所在县（区）「{county}」户籍人口（{population:,} 人）的 "
                 f"{share * 100:g}%；如填报无误可忽略此提示，否则请更正后重新报送")
                for form_id, path, sheet, excel_row, _, field, value, share, county, population
                in con.execute(_check("population_share")).fetchall()]
    return _warn(con, period, run_id, warnings)


def _check_variables(con, form, name: str, sql_type: str, fields: list[dict]) -> None:
    """The variables a check of sql/checks reads: the form, its staging table, its bounds; and
    `month_rows`, the form's counted rows of the month."""
    con.execute("set variable form = ?", [form.id])
    con.execute("set variable staging_table = ?", [f"staging.{form.table}"])
    con.execute(f"create or replace temp view month_rows as select * from staging.{form.table} "
                f"where period = getvariable('period') and counted")
    con.execute(f"set variable {name} = ?::{sql_type}", [fields])


def roster_conflicts(con: duckdb.DuckDBPyConnection, period: str, run_id: str, form) -> int:
    """A warning on each roster row of a person listed by several units; returns how many."""
    headers = {(p, s): json.loads(h or "{}") for p, s, h in con.execute(
        "select path, sheet, headers from ingest.sheets where period = ? and form = ?", [period, form.id]).fetchall()}
    default = form.field("id_number").header
    warnings = [(form.id, path, sheet, excel_row, "id_number", headers.get((path, sheet), {}).get("id_number", default),
                 "（已隐去）", ROSTER_CONFLICT,
                 f"此人本月同时列在{others}的台账中；按计数规则只计一次，计入「{counted_at}」。如已调离，请从相应台账中删除")
                for path, sheet, excel_row, others, counted_at in con.execute(_check("roster_conflicts")).fetchall()]
    return _warn(con, period, run_id, warnings)


def _check(name: str) -> str:
    return (SQL / "checks" / f"{name}.sql").read_text(encoding="utf-8")


def _warn(con, period: str, run_id: str, warnings: list[tuple]) -> int:
    """Warnings into ingest.failures: (form, path, sheet, row, field, header, value, rule, detail)."""
    if warnings:
        # One insert for all: a province's month has thousands, and a statement each took seconds.
        names = ("form", "path", "sheet", "excel_row", "field", "column_header", "value", "rule", "detail_zh")
        frame = pl.DataFrame(warnings, schema=dict.fromkeys(names, pl.String) | {"excel_row": pl.Int64},
                             orient="row")
        frame = frame.with_columns(
            period=pl.lit(period), severity=pl.lit("warning"), run_id=pl.lit(run_id),
            message_zh=pl.format("文件「{}」工作表「{}」第 {} 行：{}", "path", "sheet", "excel_row", "detail_zh"))
        con.register("incoming_warnings", frame)
        try:
            con.execute("insert into ingest.failures by name select * from incoming_warnings")
        finally:
            con.unregister("incoming_warnings")
    return len(warnings)
