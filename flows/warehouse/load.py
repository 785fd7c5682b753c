"""Loading: the month's file records, failures and validated rows into the warehouse.

A month is loaded whole: its earlier rows are deleted first, so a rerun gives the same warehouse
as a first run. Two kinds of rows a rerun would write again as they are stay instead: the read
cache's rows of files unchanged since the last run, and the indicators of units whose inputs did
not change (rollup.keep_month). Personal fields stop here: names and phones are dropped, the ID
number is already a keyed hash (`person_key`).
"""
from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path

import duckdb
import polars as pl

from flows.config import SQL
from flows.ingest.convert import frame_schema, rows_frame, to_frame
from flows.ingest.discover import FileRecord
from flows.schemas import Form
from flows.warehouse.sqlfiles import apply_comments, literal, tables_read

SCHEMAS = ("ref", "ingest", "staging", "intermediate", "mart")
INGEST_TABLES = ("runs", "files", "sheets", "failures")
_META = {"_file": "source_file", "_sheet": "source_sheet", "_row": "excel_row", "_received_at": "received_at"}


def connect(path: Path, storage_version: str, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    # The storage format applies when the file is created (a first run); publish.prepare keeps
    # or converts an existing file to the same format. DuckDB's own memory limit is 80 % of the
    # machine's memory, which it fills as it likes: building a province month took 0.9 GB more
    # at its peak than with 512 MB, at the same speed (it spills to <file>.tmp when it must).
    config = {"storage_compatibility_version": storage_version}
    if memory_limit:
        config["memory_limit"] = memory_limit
    return duckdb.connect(str(path), config=config)


def ensure_tables(con: duckdb.DuckDBPyConnection, forms: dict[str, Form]) -> None:
    for s in SCHEMAS:
        con.execute(f"create schema if not exists {s}")
    for t in INGEST_TABLES:
        con.execute((SQL / "ingest" / f"{t}.sql").read_text(encoding="utf-8"))
        apply_comments(con, f"ingest.{t}")
    for form in forms.values():
        empty = staging_frame(form, to_frame(form, []).with_columns(accepted=pl.lit(True)), "")
        con.register("empty_frame", empty)
        con.execute(f"create table if not exists staging.{form.table} as select * from empty_frame limit 0")
        add_new_columns(con, f"staging.{form.table}", "select * from empty_frame")
        con.unregister("empty_frame")
        apply_comments(con, f"staging.{form.table}", form)
        cache = rows_frame(form, [])
        con.register("empty_frame", cache)
        # Rows read under another form schema are never taken again (their runs' reading
        # fingerprint differs): a table of other columns is replaced, not patched.
        wanted = [("period", "VARCHAR")] + [tuple(r[:2]) for r in
                                            con.execute("describe select * from empty_frame").fetchall()]
        have = [tuple(r[:2]) for r in con.execute(
            "select column_name, data_type from information_schema.columns where table_schema = 'ingest' "
            "and table_name = ? order by ordinal_position", [read_cache_table(form).split(".")[1]]).fetchall()]
        if have != wanted:
            con.execute(f"create or replace table {read_cache_table(form)} as "
                        f"select ''::varchar as period, * from empty_frame limit 0")
        con.unregister("empty_frame")
        apply_comments(con, read_cache_table(form), form)


def built_with(con: duckdb.DuckDBPyConnection, rolled_with: str) -> bool:
    """Whether the warehouse's tables, comments and reference are what ensure_tables and
    load_reference would make of them now: the last run to finish, of any month, was rolled up
    under the same `rolled_with` (rollup.fingerprint: the SQL and its comments, this code, the
    forms, the registry, population and plans, DuckDB's release), and so made them so. A month of a
    backfill then skips both (0.25 s of a city month's 4 s); a new warehouse, or one last built by
    other rules, gets them."""
    if con.execute("select count(*) from duckdb_columns() where schema_name = 'ingest' and table_name = 'runs' "
                   "and column_name = 'rolled_with'").fetchone()[0] == 0:
        return False
    last = con.execute("select rolled_with from ingest.runs order by finished_at desc limit 1").fetchone()
    return last is not None and last[0] == rolled_with


def add_new_columns(con: duckdb.DuckDBPyConnection, table: str, query: str) -> None:
    """A warehouse from before a column was added to a table gains it, empty for earlier months,
    rather than failing; but for `period_start`, which is every month's first day."""
    have = {d[0] for d in con.execute(f"describe {table}").fetchall()}
    for name, dtype, *_ in con.execute(f"describe {query}").fetchall():
        if name not in have:
            con.execute(f'alter table {table} add column "{name}" {dtype}')
            if name == "period_start":
                con.execute(f"update {table} set period_start = cast(period || '-01' as date)")


def staging_frame(form: Form, frame: pl.DataFrame, period: str) -> pl.DataFrame:
    """The warehouse's rows of a form: no reading flags, no personal fields, superseding marked."""
    # Reading's own columns (flags, the table's header row) stay in the read cache.
    keep = [c for c in frame_schema(form) if "__" not in c and (c in _META or not c.startswith("_"))]
    drop_personal = [f.name for f in form.fields if f.type == "personal"]
    out = (frame.select([c for c in keep if c not in drop_personal] + ["accepted"])
           .rename(_META))
    if "id_number" in out.columns:
        out = out.rename({"id_number": "person_key"})
    # Corrections: for each unit (each `replace_by` key of the form), the newest file of the
    # month that covers it wins, whole: a roster resent without a person means the person left.
    key = list(form.replace_by)
    newest = (out.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in key))
              .sort("received_at", "source_file", "source_sheet")
              .group_by(key)
              .agg(pl.col("source_file").last().alias("newest_file")))
    out = (out.join(newest, on=key, how="left", nulls_equal=False)
           .with_columns(superseded=pl.col("newest_file").is_not_null()
                         & (pl.col("newest_file") != pl.col("source_file")))
           .drop("newest_file"))
    # One counted row per form key (a unit, a person on a roster, an organisation): where an
    # accepted row repeats a key, the last one read counts.
    key = list(form.key)
    # Read order never decides: the same files give the same counted rows on a rerun.
    order = pl.int_range(pl.len()).over(key, order_by=["received_at", "source_file", "source_sheet", "excel_row"])
    last = pl.len().over(key) - 1
    live = out.filter(pl.col("accepted") & ~pl.col("superseded")).with_row_index("_i")
    repeated = live.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in key)).filter(order < last)
    out = (out.join(repeated.select("source_file", "source_sheet", "excel_row").with_columns(_rep=pl.lit(True)),
                    on=["source_file", "source_sheet", "excel_row"], how="left")
           .with_columns(superseded=pl.col("superseded") | pl.col("_rep").fill_null(False))
           .drop("_rep")
           .with_columns(counted=pl.col("accepted") & ~pl.col("superseded")))
    return out.select(pl.lit(period).alias("period"), pl.lit(month_start(period), pl.Date).alias("period_start"),
                      pl.all(),
                      pl.lit(None, pl.String).alias("carried_from"), pl.lit(None, pl.Int32).alias("stale_months"))


def month_start(period: str) -> dt.date | None:
    """The first day of a YYYY-MM month (the `period_start` of its rows); None for none."""
    return dt.date.fromisoformat(f"{period}-01") if period else None


def carry_forward(con, period: str, forms: dict[str, Form], months: int) -> int:
    """Copy forward the latest earlier submission of each sender that sent nothing this month;
    returns the number of rows carried. Which rows, for every form at once, is
    sql/staging/carry_forward.sql (over staging.form_rows); here they are copied, form by form."""
    if months <= 0:
        return 0
    con.execute("set variable period = ?", [period])
    con.execute("set variable period_start = ?::date", [month_start(period)])
    con.execute("set variable carry_months = ?", [months])
    con.execute("create or replace temp table carried as "
                + (SQL / "staging" / "carry_forward.sql").read_text(encoding="utf-8"))
    try:
        for form in forms.values():
            con.execute(f"""insert into staging.{form.table} by name
                            select r.* exclude (carried_from, stale_months)
                                       replace (? as period, ?::date as period_start, false as superseded,
                                                true as counted),
                                   c.carried_from, c.stale_months
                            from staging.{form.table} as r
                            join carried as c
                              on c.form = ? and c.carried_from = r.period and c.source_file = r.source_file
                             and c.source_sheet = r.source_sheet and c.excel_row = r.excel_row""",
                        [period, month_start(period), form.id])
            # Another sender may have sent this month what the missing one sent before (a county
            # reporting for its towns): a fresh row for the same key wins over the carried one.
            same = " and ".join(f'c."{k}" = f."{k}"' for k in form.replace_by)
            con.execute(f"""update staging.{form.table} as c set counted = false, superseded = true
                            where c.period = ? and c.carried_from is not null and exists (
                                select 1 from staging.{form.table} as f
                                where f.period = c.period and f.carried_from is null and f.counted and {same})""",
                        [period])
        return con.execute("select count(*) from carried").fetchone()[0]
    finally:
        con.execute("drop table carried")


def read_cache_table(form: Form) -> str:
    return f"ingest.read_{form.table}"


def read_cache(db: Path, period: str, forms: dict[str, Form], fingerprint: dict
               ) -> tuple[dict[str, FileRecord], dict[str, pl.DataFrame], str | None]:
    """The month's files as the last run read them: their records by path, and their rows as a
    frame per form, so that a rerun parses only new or changed files; and why none can be taken,
    if the last run read under another `fingerprint` (read.reading_fingerprint: schemas, code,
    registry, key). Empty, without a reason, when the month has no run yet."""
    from flows.ingest.discover import SheetRecord
    from flows.ingest.read import reading_changes
    if not db.exists():
        return {}, {}, None
    con = duckdb.connect(str(db), read_only=True)
    try:
        have = {f"{a}.{b}" for a, b in con.execute("select table_schema, table_name from information_schema.tables")
                .fetchall()}
        if not {"ingest.runs", "ingest.files", "ingest.sheets"} <= have:
            return {}, {}, None
        columns = {r[0] for r in con.execute("select column_name from information_schema.columns "
                                             "where table_schema = 'ingest' and table_name = 'runs'").fetchall()}
        last = con.execute("select " + ("read_with" if "read_with" in columns else "null") + " from ingest.runs "
                           "where period = ? order by finished_at desc limit 1", [period]).fetchall()
        if not last:
            return {}, {}, None
        why = reading_changes(json.loads(last[0][0]) if last[0][0] else None, fingerprint)
        if why is None and any(read_cache_table(f) not in have for f in forms.values()):
            why = "the read cache of the month is missing"
        if why:
            return {}, {}, why
        records: dict[str, FileRecord] = {}
        for path, sha, size, received, fmt, status, zh, en in con.execute(
                "select path, sha256, size_bytes, received_at, format, status, reason_zh, reason_en "
                "from ingest.files where period = ?", [period]).fetchall():
            records[path] = FileRecord(path=path, sha256=sha, size_bytes=size, received_at=received, format=fmt,
                                       status=status, reason_zh=zh, reason_en=en)
        for path, sheet, form, header_row, sender, rows, status, zh, en, headers in con.execute(
                "select path, sheet, form, header_row, sender, data_rows, status, reason_zh, reason_en, headers "
                "from ingest.sheets where period = ? order by path, rowid", [period]).fetchall():
            if path in records:
                records[path].sheets.append(SheetRecord(path=path, sheet=sheet, form=form, header_row=header_row,
                                                        data_rows=rows, status=status, reason_zh=zh, reason_en=en,
                                                        sender=sender, headers=json.loads(headers or "{}")))
        read_rows = dict(con.execute("select form, sum(data_rows) from ingest.sheets where period = ? "
                                     "and status = 'read' group by form", [period]).fetchall())
        frames = {}
        for form in forms.values():
            # Through Arrow, whole: a province's month is 180,000 rows.
            schema = frame_schema(form)
            frame = con.sql(f"select * exclude (period) from {read_cache_table(form)} where period = ? "
                            f"order by _file, _sheet, _row", params=[period]).pl()
            # Never a crash, never a month short of rows: the cache must hold what the run read
            # (a table replaced under another schema holds none of the months read before).
            if set(schema) - set(frame.columns) or frame.height != read_rows.get(form.id, 0):
                return {}, {}, f"the read cache of {form.id} does not hold the rows the last run read"
            frames[form.id] = frame.select(pl.col(n).cast(t) for n, t in schema.items())
        return records, frames, None
    finally:
        con.close()


def settled_failures(db: Path, period: str, fingerprint: str, files: set[str], forms: dict[str, Form],
                     skip_rules: tuple[str, ...]) -> dict[str, tuple[set[str], pl.DataFrame]]:
    """form id -> (files, their failures) for the unchanged `files` of the month, when its last run
    validated with the same `fingerprint` (suites.fingerprint); else nothing, and every row is
    validated again. `skip_rules` are the warnings the roll-up adds, which it adds again."""
    from flows.validate.suites import FAILURE_SCHEMA
    if not files or not db.exists():
        return {}
    con = duckdb.connect(str(db), read_only=True)
    try:
        have = {r[0] for r in con.execute("select column_name from information_schema.columns "
                                          "where table_schema = 'ingest' and table_name = 'runs'").fetchall()}
        if "validated_with" not in have:
            return {}
        # fetchall, not fetchone: DuckDB 2 refuses the next statement while a result is unfinished.
        last = con.execute("select validated_with from ingest.runs where period = ? order by finished_at desc "
                           "limit 1", [period]).fetchall()
        if not last or last[0][0] != fingerprint:
            return {}
        con.register("settled_files", pl.DataFrame({"path": sorted(files)}, schema={"path": pl.String}))
        failures = con.sql(f"select {', '.join(FAILURE_SCHEMA)} from ingest.failures "
                           f"where period = ? and path in (select path from settled_files) "
                           f"and rule not in (select unnest(?)) order by all",
                           params=[period, list(skip_rules)]).pl()
    finally:
        con.close()
    return {form_id: (files, failures.filter(pl.col("form") == form_id)) for form_id in forms}


def clear_month(con: duckdb.DuckDBPyConnection, period: str, stored: set[str] = frozenset(),
                keep: frozenset[str] = frozenset()) -> None:
    """Delete the month's rows (ingest.runs and the history aside); in the read cache, but the
    rows of the `stored` files; in the tables `keep`, none (the roll-up replaces them unit by unit)."""
    tables = con.execute("select table_schema || '.' || table_name from information_schema.columns "
                         "join information_schema.tables using (table_schema, table_name) "
                         "where column_name = 'period' and table_type = 'BASE TABLE' "
                         "and table_schema in ('ingest','staging','intermediate','mart') "
                         "and not (table_schema = 'ingest' and table_name = 'runs') "
                         "and not (table_schema = 'mart' and table_name = 'indicator_history')").fetchall()
    kept = pl.DataFrame({"path": sorted(stored)}, schema={"path": pl.String})
    con.register("kept_files", kept)
    try:
        for (t,) in tables:
            if t in keep:
                continue
            if t.startswith("ingest.read_") and stored:
                # A rerun reloads only the rows of the files it parsed (or whose time moved).
                con.execute(f"delete from {t} where period = ? and _file not in (select path from kept_files)",
                            [period])
            else:
                con.execute(f"delete from {t} where period = ?", [period])
    finally:
        con.unregister("kept_files")


def load_month(con, period: str, run_id: str, records: list[FileRecord],
               staged: dict[str, tuple[Form, pl.DataFrame, pl.DataFrame]], stored: set[str] = frozenset(),
               keep: frozenset[str] = frozenset()) -> None:
    """Replace the month's rows: files, sheets, failures, each form's staging rows, and its rows
    as read (the read cache) but those of the `stored` files, which are already there as read.
    The month's rows in the tables `keep` stay for the roll-up to replace (rollup.keep_month)."""
    clear_month(con, period, stored, keep)
    files = pl.DataFrame([{"period": period, "path": r.path, "sha256": r.sha256, "size_bytes": r.size_bytes,
                           "received_at": r.received_at, "format": r.format, "status": r.status,
                           "reason_zh": r.reason_zh, "reason_en": r.reason_en, "sender_code": r.sender_code,
                           "run_id": run_id}
                          for r in records],
                         schema={"period": pl.String, "path": pl.String, "sha256": pl.String,
                                 "size_bytes": pl.Int64, "received_at": pl.Datetime("us"), "format": pl.String,
                                 "status": pl.String, "reason_zh": pl.String, "reason_en": pl.String,
                                 "sender_code": pl.String, "run_id": pl.String})
    _insert(con, "ingest.files", files)
    rejected_by_table: dict[tuple[str, str, int], int] = {}
    failures = []
    for form, frame, fails in staged.values():
        if frame.height:
            counts = frame.filter(~pl.col("accepted")).group_by("_file", "_sheet", "_header_row").len()
            for f, s, h, n in counts.iter_rows():
                rejected_by_table[(f, s, h)] = n
        if fails.height:
            failures.append(fails)
        _insert(con, f"staging.{form.table}", staging_frame(form, frame, period))
        # The rows as read, flags included, for the next rerun of the month (see read_cache).
        fresh = frame.filter(~pl.col("_file").is_in(list(stored))) if stored else frame
        _insert(con, read_cache_table(form), fresh.select(pl.lit(period).alias("period"), *frame_schema(form)))
    sheets = pl.DataFrame([{"period": period, "path": s.path, "sheet": s.sheet, "form": s.form,
                            "header_row": s.header_row, "sender": s.sender, "sender_code": s.sender_code,
                            "headers": json.dumps(s.headers, ensure_ascii=False),
                            "data_rows": s.data_rows,
                            "rows_rejected": rejected_by_table.get((s.path, s.sheet, s.header_row), 0),
                            "status": s.status,
                            "reason_zh": s.reason_zh, "reason_en": s.reason_en, "run_id": run_id}
                           for r in records for s in r.sheets],
                          schema={"period": pl.String, "path": pl.String, "sheet": pl.String, "form": pl.String,
                                  "header_row": pl.Int32, "sender": pl.String, "sender_code": pl.String,
                                  "headers": pl.String,
                                  "data_rows": pl.Int32,
                                  "rows_rejected": pl.Int32, "status": pl.String, "reason_zh": pl.String,
                                  "reason_en": pl.String, "run_id": pl.String})
    _insert(con, "ingest.sheets", sheets)
    if failures:
        fails = pl.concat(failures).select(pl.lit(period).alias("period"), pl.all(), pl.lit(run_id).alias("run_id"))
        _insert(con, "ingest.failures", fails)


def _insert(con, table: str, frame: pl.DataFrame) -> None:
    if frame.height == 0:
        return
    con.register("incoming", frame)
    try:
        con.execute(f"insert into {table} by name select * from incoming")
    finally:
        con.unregister("incoming")


def made_of() -> dict[str, list[str]]:
    """Figures unit_rollup combines from unit_facts columns (sql/intermediate/unit_rollup.toml)."""
    return tomllib.loads((SQL / "intermediate" / "unit_rollup.toml").read_text(encoding="utf-8")).get("made_of", {})


def fact_sources() -> dict[str, str]:
    """unit_facts column -> the table whose counted rows make it up (sql/intermediate/unit_facts.toml)."""
    return tomllib.loads((SQL / "intermediate" / "unit_facts.toml").read_text(encoding="utf-8")).get("sources", {})


def figure_sources(forms: dict[str, Form]) -> list[tuple[str, str, str | None]]:
    """(figure, table whose rows make it up, form whose staging rows are under that table) for
    every figure, combined ones by their parts: a staging table is its form's, a table built by
    sql/ is of the forms whose staging tables its query reads (talent_assignments: SG-02); the
    registry, of none."""
    direct = fact_sources()
    pairs = list(direct.items())
    for figure, parts in made_of().items():
        pairs += sorted({(figure, direct[p]) for p in parts if p in direct})
    staging = {f"staging.{f.table}": f.id for f in forms.values()}
    out = []
    for figure, source in pairs:
        read = {source} | tables_read(source) if "." in source else set()
        out += [(figure, source, form) for form in sorted(staging[t] for t in read if t in staging) or [None]]
    return out


def load_reference(con, units: pl.DataFrame, population: pl.DataFrame, plans: tuple[pl.DataFrame, pl.DataFrame],
                   forms: dict[str, Form]) -> None:
    """The registry, reference population, plans with their indicators (registry.load_plans) and
    forms, replaced by every run that does not find them so (built_with); and the view of every
    form's staging rows over ref.forms."""
    form_rows = pl.DataFrame([{"form": f.id, "table_name": f"staging.{f.table}", "name": f.name,
                               "unit_levels": list(f.unit_levels), "senders": list(f.senders), "expected": f.expected}
                              for f in forms.values()],
                             schema={"form": pl.String, "table_name": pl.String, "name": pl.String,
                                     "unit_levels": pl.List(pl.String), "senders": pl.List(pl.String),
                                     "expected": pl.String})
    sources = pl.DataFrame([{"figure": figure, "source": source, "form": form}
                            for figure, source, form in figure_sources(forms)],
                           schema={"figure": pl.String, "source": pl.String, "form": pl.String})
    for name, frame in (("units", units), ("population", population), ("plans", plans[0]), ("indicators", plans[1]),
                        ("forms", form_rows), ("figure_sources", sources)):
        con.register("incoming", frame)
        con.execute(f"create or replace table ref.{name} as select * from incoming")
        con.unregister("incoming")
        apply_comments(con, f"ref.{name}")
    stack_forms(con)


def stack_forms(con: duckdb.DuckDBPyConnection) -> None:
    """staging.form_rows (sql/staging/form_rows.sql): the staging tables of ref.forms stacked,
    each row with its form and the columns every one of them has (same name and type)."""
    tables = con.execute("select form, table_name from ref.forms order by form").fetchall()
    shared = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema || '.' || table_name in (select table_name from ref.forms) "
        "group by all having count(*) = (select count(*) from ref.forms) order by min(ordinal_position), column_name"
    ).fetchall()
    columns = ", ".join(f'"{name}"' for name, _ in shared)
    stacked = "\n    union all\n    ".join(f"select {literal(form)} as form, {columns} from {table}"
                                          for form, table in tables)
    query = (SQL / "staging" / "form_rows.sql").read_text(encoding="utf-8")
    con.execute(f"create or replace view staging.form_rows as\nwith form_tables as (\n    {stacked}\n)\n"
                f"select * from (\n{query}\n)")
    apply_comments(con, "staging.form_rows")
