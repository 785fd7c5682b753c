"""Rolling up: the SQL of `sql/intermediate` and `sql/marts`, in dependency order.

Each file is a query named after the table it builds. A query with a `period` column builds
that month's rows (the month's old rows are deleted first); one without is rebuilt whole.
A sibling `.toml` holds the table's and columns' comments for analysts.
"""
from __future__ import annotations

import tomllib

import duckdb

from .config import SQL
from .load import literal

ORDER = (
    "intermediate/units",
    "intermediate/unit_closure",
    "intermediate/talent_assignments",
    "intermediate/unit_facts",
    "intermediate/unit_rollup",
    "intermediate/indicator_figures",
    "marts/indicator_values",
    "marts/indicator_history",
    "marts/reporting_completeness",
)
# Appended by every run and never cleared: the history of what each run computed.
APPEND_ONLY = {"marts/indicator_history"}


def table_name(step: str) -> str:
    folder, name = step.split("/")
    return f"{'mart' if folder == 'marts' else folder}.{name}"


def build(con: duckdb.DuckDBPyConnection, period: str, community_rule: str, run_id: str = "",
          run_at: str | None = None, deadline_utc: str | None = None) -> None:
    con.execute("set variable period = ?", [period])
    con.execute("set variable community_rule = ?", [community_rule])
    con.execute("set variable run_id = ?", [run_id])
    con.execute("set variable run_at = coalesce(?, current_timestamp::timestamp::varchar)", [run_at])
    con.execute("set variable deadline_utc = ?", [deadline_utc])
    for step in ORDER:
        table = table_name(step)
        query = (SQL / f"{step}.sql").read_text(encoding="utf-8")
        columns = [d[0] for d in con.execute(f"describe {query}").fetchall()]
        if "period" not in columns:
            con.execute(f"create or replace table {table} as {query}")
        else:
            con.execute(f"create table if not exists {table} as select * from ({query}) limit 0")
            if step not in APPEND_ONLY:
                con.execute(f"delete from {table} where period = ?", [period])
            con.execute(f"insert into {table} by name {query}")
        _comment(con, step, table)


def _comment(con, step: str, table: str) -> None:
    doc = SQL / f"{step}.toml"
    if not doc.exists():
        return
    meta = tomllib.loads(doc.read_text(encoding="utf-8"))
    con.execute(f"comment on table {table} is {literal(meta['table'])}")
    for col, text in meta.get("columns", {}).items():
        con.execute(f'comment on column {table}."{col}" is {literal(text)}')


def month_on_month(con: duckdb.DuckDBPyConnection, period: str, run_id: str, form) -> int:
    """Warnings for figures that doubled or halved since last month; returns how many."""
    query = (SQL / "checks" / "month_on_month.sql").read_text(encoding="utf-8")
    rows = con.execute(query).fetchall()
    names = {f.name: f.header for f in form.fields}
    for form_id, path, sheet, excel_row, unit_code, field, now, before in rows:
        if field == "talents":
            header, what = "", f"本单位本月台账在册人才 {now:g} 人，上月 {before:g} 人"
        else:
            header, what = names[field], f"「{names[field]}」本月为 {now:g}，上月为 {before:g}"
        detail = f"{what}，变化超过一倍；如填报无误可忽略此提示，否则请更正后重新报送"
        message = f"文件「{path}」工作表「{sheet}」第 {excel_row} 行：{detail}"
        con.execute("insert into ingest.failures (period, form, path, sheet, excel_row, field, column_header, value, "
                    "rule, severity, message_zh, detail_zh, run_id) values (?, ?, ?, ?, ?, ?, ?, ?, 'month_on_month', "
                    "'warning', ?, ?, ?)",
                    [period, form_id, path, sheet, excel_row, field, header, f"{now:g}", message, detail, run_id])
    return len(rows)
