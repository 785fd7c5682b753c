"""Reading: one file to its tables. The file's bytes become raw sheets (sandbox), each sheet's
tables are found (layout) and their cells converted (convert); guards refuse what a file may not
cost, and discover says which files there are.

Nothing here decides whether a value is acceptable (that is validation); reading only says what
the sender wrote, in the schema's types, and which cells could not be understood at all.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from pathlib import Path

from flows import pii
from flows.errors import FileRejected, printable
from flows.ingest.convert import TableRows, checkbox_columns, form_frame, is_blank
from flows.ingest.discover import SPREADSHEET, TEXT, FileRecord, SheetRecord, file_time, link_refusal, refused_unread
from flows.ingest.guard import MAX_FILE_BYTES, too_large
from flows.ingest.layout import Table, is_footer_or_total, sender, stated_period, table_refusal, tables_of
from flows.ingest.sandbox import HIDDEN, VERY_HIDDEN, VISIBLE, sheets_of
from flows.schemas import Form

log = logging.getLogger("shegong")
# The template's own instruction and list sheets (the list sheet is hidden): expected, not a
# problem to report.
_INSTRUCTIONS = re.compile(r"^(填表说明|填报说明|说明|下拉选项)$")


def read_file(path: Path, root: Path, period: str, forms: dict[str, Form], key: bytes
              ) -> tuple[FileRecord, dict[str, list[dict]]]:
    """Read one file: its record (always) and its rows per form (when it could be read), as dicts."""
    record, tables = read_tables(path, root, period, forms)
    return record, {form_id: form_frame(forms[form_id], found, key).to_dicts() for form_id, found in tables.items()}


def read_tables(path: Path, root: Path, period: str, forms: dict[str, Form]
                ) -> tuple[FileRecord, dict[str, list[TableRows]]]:
    """Read one file: its record (always) and its tables per form (when it could be read), their
    rows not yet converted: convert.form_frame converts the tables of many files at once."""
    rel = path.relative_to(root).as_posix()
    if path.is_symlink() and (refusal := link_refusal(path, root)):
        return refused_unread(rel, 0, path.lstat().st_mtime, "link", refusal)
    stat = path.stat()
    if stat.st_size > MAX_FILE_BYTES:  # not read at all: its bytes are never held
        return refused_unread(rel, stat.st_size, stat.st_mtime, path.suffix.lower().lstrip(".") or "none",
                               too_large(stat.st_size))
    data = path.read_bytes()
    record = FileRecord(path=rel, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                        received_at=file_time(path), format=path.suffix.lower().lstrip(".") or "none")
    tables_by_form: dict[str, list[TableRows]] = {}
    try:
        if not data:
            raise FileRejected("空文件（0 字节）；请重新报送", "empty file")
        if path.suffix.lower() not in SPREADSHEET | TEXT:
            raise FileRejected(f"不是电子表格（{path.suffix or '无扩展名'}）；请报送 .xlsx、.xls、.ods 或 .csv 文件",
                               f"not a spreadsheet extension: {path.suffix!r}")
        sheets = sheets_of(path, data)
    except FileRejected as exc:
        record.status, record.reason_zh, record.reason_en = "rejected", exc.zh, exc.en
        log.warning("file rejected: %s: %s", printable(rel), printable(exc.en))
        return record, {}

    for name, first_row, rows, shown in sheets:
        instructions = SheetRecord(path=rel, sheet=name, status="skipped", reason_zh="说明页，不含报送数据",
                                   reason_en="instructions sheet")
        if shown != VISIBLE:
            # Not part of what the office submits (often last month's copy kept for reference).
            record.sheets.append(instructions if _INSTRUCTIONS.search(name) else SheetRecord(
                path=rel, sheet=name, status="skipped", reason_en=f"{shown} sheet", reason_zh=HIDDEN_ZH[shown]))
            continue
        if not rows:
            record.sheets.append(SheetRecord(path=rel, sheet=name, status="skipped", reason_zh="空工作表",
                                             reason_en="empty sheet"))
            continue
        tables = tables_of(rows, forms)
        if not tables:
            sheet = SheetRecord(path=rel, sheet=name, status="skipped")
            if _INSTRUCTIONS.search(name):
                sheet = instructions
            else:
                sheet.reason_zh = "未识别出报表（SG-01 至 SG-06）：找不到表头；请使用统一模板的表头"
                sheet.reason_en = "no form recognised"
            record.sheets.append(sheet)
            continue
        top_titles = tables[0].titles
        for table in tables:
            record.sheets.append(_read_table(table, rows, top_titles, rel, name, first_row, period,
                                             record.received_at, tables_by_form))
    return record, tables_by_form


HIDDEN_ZH = {
    HIDDEN: "隐藏的工作表，不属于报送内容，未读取；如其中是本月数据，请取消隐藏（或复制到可见的工作表）后重新报送",
    VERY_HIDDEN: "深度隐藏的工作表（在 Excel 中无法直接取消隐藏），不属于报送内容，未读取；如其中是本月数据，"
                 "请复制到可见的工作表后重新报送",
}


def _read_table(table: Table, rows: list[list], top_titles: list[list], rel: str, name: str, first_row: int,
                period: str, received_at: dt.datetime, tables_by_form: dict[str, list[TableRows]]) -> SheetRecord:
    """One table of a sheet: its record, and its data rows added to tables_by_form."""
    layout, form = table.layout, table.layout.form
    header_row = first_row + layout.header_start
    sheet = SheetRecord(path=rel, sheet=name, form=form.id, header_row=header_row, headers=layout.headers)
    # A table's own titles say its month and sender; failing them, the sheet's top titles do.
    sheet.sender = sender(table.titles) or sender(top_titles)
    data = [rows[i] for i in table.rows]
    stated = stated_period(table.titles) or stated_period(top_titles)
    refused = table_refusal(layout, stated, data, period)
    if refused:
        sheet.status, sheet.reason_zh, sheet.reason_en = "rejected", refused.zh, refused.en
        log.warning("sheet rejected: %s [%s]: %s", printable(rel), printable(name), printable(refused.en))
        return sheet
    kept, numbers = [], []
    for i, row in zip(table.rows, data):
        if all(is_blank(row[c]) for c in layout.columns if c < len(row)):
            continue
        if is_footer_or_total(row, layout):
            continue
        kept.append(row)
        numbers.append(first_row + i)
    meta = {"_file": rel, "_sheet": name, "_row": numbers, "_header_row": header_row, "_received_at": received_at}
    tables_by_form.setdefault(form.id, []).append(TableRows(layout, kept, checkbox_columns(layout, data), meta))
    sheet.data_rows = len(kept)
    return sheet


# --- what decides what a file yields ---------------------------------------------------------------
# Besides its bytes: the form schemas (titles, header words, aliases, types, rules), this code and
# the libraries that decode cells, the registry, and the hashing key. The rerun cache takes a
# file's rows from the month's last run only when every one of them is the same (load.read_cache).
# Paths under the package folder (flows/).
READING_CODE = ("ingest/read.py", "ingest/discover.py", "ingest/guard.py", "ingest/sandbox.py", "ingest/layout.py",
                "ingest/convert.py", "schemas.py", "pii.py")
READING_LIBRARIES = ("python-calamine", "polars")


def reading_fingerprint(forms: dict[str, Form], units_csv: Path, key: bytes) -> dict:
    """A digest of each thing that decides what a file yields, by name (JSON-able)."""
    import importlib.metadata
    code = hashlib.sha256()
    for name in READING_CODE:
        code.update(hashlib.sha256((Path(__file__).parents[1] / name).read_bytes()).digest())
    for dist in READING_LIBRARIES:
        code.update(f"{dist}=={importlib.metadata.version(dist)}".encode())
    return {"schemas": {(f.path.name if f.path else f.id):
                        hashlib.sha256(f.path.read_bytes() if f.path else repr(f).encode()).hexdigest()
                        for f in forms.values()},
            "code": code.hexdigest(), "registry": hashlib.sha256(units_csv.read_bytes()).hexdigest(),
            "key": pii.key_id(key)}


def reading_changes(before: dict | None, now: dict) -> str | None:
    """What changed since `before` (a fingerprint of the month's last run), in a few words; None
    when nothing did."""
    if not before:
        return "the month's last run recorded no reading fingerprint"
    why = []
    schemas = sorted(n for n in before.get("schemas", {}).keys() | now["schemas"].keys()
                     if before.get("schemas", {}).get(n) != now["schemas"].get(n))
    if schemas:
        why.append(f"the form schemas changed ({', '.join(schemas)})")
    if before.get("code") != now["code"]:
        why.append("the reading code or its libraries changed")
    if before.get("registry") != now["registry"]:
        why.append("the registry changed")
    if before.get("key") != now["key"]:
        why.append("the hashing key changed")
    return ", ".join(why) or None
