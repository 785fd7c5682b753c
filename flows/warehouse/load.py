"""Loading: the month's file records, failures and validated rows into the warehouse.

A month is always loaded whole: its earlier rows are deleted first, so a rerun gives the same
warehouse as a first run. Personal fields stop here: names and phones are dropped, the ID
number is already a keyed hash (`person_key`).
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import duckdb
import polars as pl

from flows.config import SQL
from flows.ingest.convert import frame_schema, rows_frame, to_frame
from flows.ingest.discover import FileRecord
from flows.schemas import Form

SCHEMAS = ("ref", "ingest", "staging", "intermediate", "mart")
INGEST_TABLES = ("runs", "files", "sheets", "failures")
_META = {"_file": "source_file", "_sheet": "source_sheet", "_row": "excel_row", "_received_at": "received_at"}


def literal(text: str) -> str:
    """A SQL string literal of our own text (COMMENT ON takes no parameters). Never file input."""
    return "'" + text.replace("'", "''") + "'"


def connect(path: Path, storage_version: str) -> duckdb.DuckDBPyConnection:
    # The storage format applies when the file is created (a first run); publish.prepare keeps
    # or converts an existing file to the same format.
    return duckdb.connect(str(path), config={"storage_compatibility_version": storage_version})


def ensure_tables(con: duckdb.DuckDBPyConnection, forms: dict[str, Form]) -> None:
    for s in SCHEMAS:
        con.execute(f"create schema if not exists {s}")
    for t in INGEST_TABLES:
        con.execute((SQL / "ingest" / f"{t}.sql").read_text(encoding="utf-8"))
    for form in forms.values():
        empty = staging_frame(form, to_frame(form, []).with_columns(accepted=pl.lit(True)), "")
        con.register("empty_frame", empty)
        con.execute(f"create table if not exists staging.{form.table} as select * from empty_frame limit 0")
        # A warehouse from before a column was added gains it, empty, rather than failing.
        have = {r[0] for r in con.execute("select column_name from information_schema.columns where "
                                          "table_schema = 'staging' and table_name = ?", [form.table]).fetchall()}
        for name, dtype, *_ in con.execute("describe select * from empty_frame").fetchall():
            if name not in have:
                con.execute(f'alter table staging.{form.table} add column "{name}" {dtype}')
        con.unregister("empty_frame")
        _comment_staging(con, form)
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
        _comment_read_cache(con, form)


def _comment_staging(con, form: Form) -> None:
    t = f"staging.{form.table}"
    con.execute(f"comment on table {t} is {literal(f'{form.id} {form.name}: every row read, with whether it counts | {form.id} {form.name}（全部读入行）')}")
    comments = {
        "period": "Month, YYYY-MM | 报送月份",
        "source_file": "File path below <inbox>/<period>/ | 来源文件",
        "source_sheet": "Sheet name | 工作表",
        "excel_row": "Row number as the sender sees it in Excel | Excel 行号",
        "received_at": "Modification time of the file, UTC | 收到时间（UTC）",
        "accepted": "No validation error on this row | 通过校验",
        "superseded": "A newer file of the month covers this row's unit, or a later row repeats its key | 已被更新的文件或行替代",
        "counted": "accepted and not superseded: the row counts in the roll-up | 纳入汇总",
        "carried_from": "Month this row was carried forward from, its sender having sent nothing this month | 沿用月份",
        "stale_months": "Age in months of a carried row | 沿用月数",
        "person_key": "Keyed hash (HMAC-SHA256) of the ID number: the same person has the same key | 身份证号的加密哈希",
        "sex_from_id": "Sex derived from the ID number before hashing | 由身份证号得出的性别",
        "birth_year": "Birth year derived from the ID number before hashing | 由身份证号得出的出生年份",
    }
    for f in form.fields:
        if not f.personal:
            comments[f.name] = f"{f.comment} | {f.header}"
    cols = {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema = 'staging' and table_name = ?",
        [form.table]).fetchall()}
    for col, text in comments.items():
        if col in cols:
            con.execute(f'comment on column {t}."{col}" is {literal(text)}')


def _comment_read_cache(con, form: Form) -> None:
    t = read_cache_table(form)
    con.execute(f"comment on table {t} is {literal(f'{form.id} rows as last read, with reading flags, so that a rerun parses only new or changed files | {form.id} 读取缓存')}")
    comments = {
        "period": "Month, YYYY-MM | 报送月份",
        "_file": "File path below <inbox>/<period>/ | 来源文件",
        "_sheet": "Sheet name | 工作表",
        "_row": "Row number as the sender sees it in Excel | Excel 行号",
        "_header_row": "Excel row number of the header of the table the row was read under (a sheet may hold several) | 所在表格的表头行号",
        "_received_at": "Modification time of the file when read, UTC | 收到时间（UTC）",
        "sex_from_id": "Sex derived from the ID number before hashing | 由身份证号得出的性别",
        "birth_year": "Birth year derived from the ID number before hashing | 由身份证号得出的出生年份",
    }
    for f in form.fields:
        if f.type == "id_number":
            comments[f.name] = f"Keyed hash (HMAC-SHA256) of the ID number, never the number | {f.header}（加密哈希）"
            comments[f"{f.name}__valid"] = "The ID number's check digit and date are valid (GB 11643) | 身份证号校验是否通过"
            comments[f"{f.name}__old"] = "An old 15-digit ID number, to be sent again as 18 characters | 是否旧 15 位身份证号码"
        elif f.personal:
            comments[f.name] = f"Only whether the cell was filled (已填); the value is never kept | {f.header}（仅记是否填写）"
        else:
            comments[f.name] = f"{f.comment} | {f.header}"
        if f.type == "credit_code":
            comments[f"{f.name}__valid"] = "The credit code's check character is valid (GB 32100) | 统一社会信用代码校验是否通过"
        comments[f"{f.name}__ok"] = f"The cell converted to the field's type | {f.header}是否可识别"
        comments[f"{f.name}__raw"] = (f"The cell's text when it did not convert, for the sender's feedback; "
                                      f"（已隐去） for personal fields | {f.header}原始内容（无法识别时）")
    cols = {r[0] for r in con.execute("describe " + t).fetchall()}
    for col, text in comments.items():
        if col in cols:
            con.execute(f'comment on column {t}."{col}" is {literal(text)}')


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
    return out.select(pl.lit(period).alias("period"), pl.all(),
                      pl.lit(None, pl.String).alias("carried_from"), pl.lit(None, pl.Int32).alias("stale_months"))


def carry_forward(con, period: str, forms: dict[str, Form], months: int) -> int:
    """Copy forward the latest earlier submission of each sender that sent nothing this month
    (sql/staging/carry_forward.sql); returns the number of rows carried."""
    if months <= 0:
        return 0
    query = (SQL / "staging" / "carry_forward.sql").read_text(encoding="utf-8")
    con.execute("set variable period = ?", [period])
    con.execute("set variable carry_months = ?", [months])
    carried = 0
    for form in forms.values():
        con.execute("set variable form = ?", [form.id])
        con.execute("set variable senders = ?::varchar[]", [list(form.senders)])
        con.execute("set variable staging_table = ?", [f"staging.{form.table}"])
        carried += con.execute(f"insert into staging.{form.table} by name {query}").fetchone()[0]
        # Another sender may have sent this month what the missing one sent before (a county
        # reporting for its towns): a fresh row for the same key wins over the carried one.
        same = " and ".join(f'c."{k}" = f."{k}"' for k in form.replace_by)
        con.execute(f"""update staging.{form.table} as c set counted = false, superseded = true
                        where c.period = ? and c.carried_from is not null and exists (
                            select 1 from staging.{form.table} as f
                            where f.period = c.period and f.carried_from is null and f.counted and {same})""",
                    [period])
    return carried


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


def clear_month(con: duckdb.DuckDBPyConnection, period: str) -> None:
    tables = con.execute("select table_schema || '.' || table_name from information_schema.columns "
                         "where column_name = 'period' and table_schema in ('ingest','staging','intermediate','mart') "
                         "and not (table_schema = 'ingest' and table_name = 'runs') "
                         "and not (table_schema = 'mart' and table_name = 'indicator_history')").fetchall()
    for (t,) in tables:
        con.execute(f"delete from {t} where period = ?", [period])


def load_month(con, period: str, run_id: str, records: list[FileRecord],
               staged: dict[str, tuple[Form, pl.DataFrame, pl.DataFrame]]) -> None:
    """Replace the month's rows: files, sheets, failures, and each form's staging rows."""
    clear_month(con, period)
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
        _insert(con, read_cache_table(form), frame.select(pl.lit(period).alias("period"), *frame_schema(form)))
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


def figure_sources() -> list[tuple[str, str]]:
    """(figure, table whose rows make it up) for every figure, combined ones by their parts."""
    direct = fact_sources()
    out = list(direct.items())
    for figure, parts in made_of().items():
        out += sorted({(figure, direct[p]) for p in parts if p in direct})
    return out


def load_reference(con, units: pl.DataFrame, population: pl.DataFrame, plans: tuple[pl.DataFrame, pl.DataFrame],
                   forms: dict[str, Form]) -> None:
    """The registry, reference population, plans with their indicators (registry.load_plans) and
    forms, replaced on every run."""
    form_rows = pl.DataFrame([{"form": f.id, "table_name": f"staging.{f.table}", "name": f.name,
                               "unit_levels": list(f.unit_levels), "senders": list(f.senders), "expected": f.expected}
                              for f in forms.values()],
                             schema={"form": pl.String, "table_name": pl.String, "name": pl.String,
                                     "unit_levels": pl.List(pl.String), "senders": pl.List(pl.String),
                                     "expected": pl.String})
    sources = pl.DataFrame([{"figure": figure, "source": source} for figure, source in figure_sources()],
                           schema={"figure": pl.String, "source": pl.String})
    for name, frame in (("units", units), ("population", population), ("plans", plans[0]), ("indicators", plans[1]),
                        ("forms", form_rows), ("figure_sources", sources)):
        con.register("incoming", frame)
        con.execute(f"create or replace table ref.{name} as select * from incoming")
        con.unregister("incoming")
    con.execute((SQL / "reference_comments.sql").read_text(encoding="utf-8"))
