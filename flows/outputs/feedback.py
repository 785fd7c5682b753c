"""Feedback for senders: one Chinese workbook per sender and month listing every problem found in
their files (file, sheet, Excel row, column, the value as typed, what was expected), so that each
office knows exactly what to correct and resend.

Read from the published warehouse through a read-only connection, like report.py, so a run in
progress or an analyst's session is no obstacle.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Callable

import duckdb
import xlsxwriter

from flows.errors import ConfigError, printable
from flows.outputs.report import display_width, owner_only_file, read_published

UNKNOWN_CODE = "000000000000"
UNKNOWN_NAME = "未识别报送单位"
# Not allowed in file names on Windows (where senders open them), plus control characters.
_UNSAFE = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f]')

HEADER = ["文件", "工作表", "行号", "列", "填写的值", "问题及应填内容", "类别"]
# (min, max) column widths in Excel character units; text beyond the max wraps.
WIDTHS = [(12, 40), (8, 16), (6, 6), (8, 20), (10, 24), (40, 70), (6, 6)]
SEVERITY_ZH = {"error": "错误", "warning": "警告"}
FIRST_DATA_ROW = 3  # 0-based: title, counts line, header, then problems

NOTES = [
    "如何使用本清单",
    "1. “问题清单”每行是一个问题：文件、工作表、行号（Excel 左侧显示的行号）、列（表头文字）、填写的值，以及问题和应填内容。"
    "行号和列为空的，是整个工作表或整个文件的问题。",
    "2. 类别为“错误”的：该行（或整个工作表、整个文件）未纳入本月汇总，请在原文件中逐条更正。",
    "3. 类别为“警告”的：数据已纳入汇总，但请核对；确认无误的可不修改。",
    "4. 更正后，请在本月内重新报送整份文件（不要只报送改过的几行）。同一单位的数据以最新收到的文件为准，"
    "人才台账以新文件整体替换旧文件。",
    "5. 整个文件无法读取的，请用 Excel 或 WPS 打开后另存为 .xlsx 再报送；照片、说明等不是报表的文件无需报送。",
    "6. 为保护个人信息，公民身份号码等内容不在清单中显示（显示为“（已隐去）”），请按文件、工作表和行号在原文件中查找。",
    "7. 重新报送并汇总后会重新生成本清单；问题全部更正后，本单位将不再收到清单。",
]


# Sheets skipped that the sender is told of (by the reading's English reason), and what follows
# the reason: the rest (empty sheets, the template's instructions) are expected.
SKIPPED_TOLD = {"no form recognised": "。如本工作表不含报送数据，可忽略此条",
                "hidden sheet": "", "very hidden sheet": ""}


@dataclass(frozen=True)
class Problem:
    path: str
    sheet: str | None
    excel_row: int | None
    column: str | None
    value: str | None
    text: str
    severity: str  # 'error' or 'warning'
    sender: str

    def sort_key(self):
        # Whole-file problems first in their file, whole-sheet ones first in their sheet;
        # then by row, errors before warnings, and the rest only to make reruns byte-identical.
        return (self.path, self.sheet is not None, self.sheet or "", self.excel_row is not None,
                self.excel_row or 0, self.severity != "error", self.column or "", self.value or "", self.text)


def _problems_and_senders(con: duckdb.DuckDBPyConnection, period: str) -> tuple[list[Problem], dict[str, str]]:
    # Without a run of the month we cannot tell "no problems" from "not rolled up": refuse
    # rather than delete feedback that may still be right.
    if not con.execute("select count(*) from ingest.runs where period = ?", [period]).fetchone()[0]:
        raise ConfigError(f"the warehouse has no run for {period}; run `shegong run --period {period}` first")
    problems = _problems(con, period)
    codes = sorted({p.sender for p in problems} - {UNKNOWN_CODE})
    names = dict(con.execute("select code, name from ref.units where code in (select unnest(?))",
                             [codes]).fetchall()) if codes else {}
    return problems, names


def write_feedback(db: Path, period: str, out_dir: Path, map_batches: MapBatches | None = None,
                   pool_up: bool = False) -> list[Path]:
    """Write out_dir/<period>/<code>-<name>.xlsx for each sender with problems in the month, from the
    published warehouse (opened read-only); replace that month's earlier feedback files; return the paths.
    `map_batches(fn, batches)`: where many workbooks are made (the run's read pool), see _bodies;
    `pool_up`: it is up already, so any number are made there."""
    problems, names = read_published(Path(db), period, _problems_and_senders)

    month_dir = Path(out_dir) / period
    by_sender: dict[str, list[Problem]] = {}
    for p in problems:
        by_sender.setdefault(p.sender, []).append(p)
    year, month = map(int, period.split("-"))
    lists = {}
    for code in sorted(by_sender):
        name = UNKNOWN_NAME if code == UNKNOWN_CODE else names.get(code, UNKNOWN_NAME)
        lists[f"{safe_file_name(f'{code}-{name}')}.xlsx"] = (code, name, sorted(by_sender[code], key=Problem.sort_key))
    before = _manifest(month_dir)
    # A sender who is clean after a correction must not keep last run's list.
    if month_dir.is_dir():
        for old in sorted(month_dir.glob("*.xlsx")):
            if old.name not in lists:
                old.unlink()
    if not lists:
        _manifest_path(month_dir).unlink(missing_ok=True)
        return []
    # Owner-only, like the warehouse: the lists quote what senders typed, row by row.
    for d in (Path(out_dir), month_dir):
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(d, 0o700)
    manifest, todo = {}, []
    for file_name, (code, name, sender_problems) in lists.items():
        made_of = _fingerprint(code, name, year, month, sender_problems)
        kept = before.get(file_name)
        # A rerun after a few corrections leaves most senders' lists as they were: a list made of
        # the same problems (by the same code) is left alone if it is still the file written then.
        if kept and kept[0] == made_of and _sha256(month_dir / file_name) == kept[1]:
            manifest[file_name] = kept
        else:
            manifest[file_name] = made_of
            todo.append((file_name, (code, name, year, month, sender_problems)))
    for (file_name, _), body in zip(todo, _bodies([args for _, args in todo], map_batches, pool_up)):
        with owner_only_file(month_dir / file_name) as tmp:
            tmp.write_bytes(body)
        manifest[file_name] = (manifest[file_name], hashlib.sha256(body).hexdigest())
    written = [month_dir / file_name for file_name in lists]
    with owner_only_file(_manifest_path(month_dir)) as tmp:
        tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=0, sort_keys=True), encoding="utf-8")
    return written


# A function that maps a module-level function over batches in other processes, results in order.
MapBatches = Callable[[Callable, list], list]
# Workbooks written on the read pool's processes from this many on (a province month has 1,177, 3.5 s
# on one core); below it, in this process, since a pool not already up costs ~1 s to start (one
# that is up takes any number: see _bodies).
POOL_MIN_WORKBOOKS = 200
POOL_BATCH = 50


def _bodies(todo: list[tuple], map_batches: MapBatches | None, pool_up: bool = False) -> list[bytes]:
    """The workbooks of `todo` (_workbook's arguments each), in order: by `map_batches` in batches
    when there are many or its pool is up (the run passes its read pool's, ingest.sandbox.map_in_pool),
    else here."""
    if map_batches is None or not todo or (len(todo) < POOL_MIN_WORKBOOKS and not pool_up):
        return _workbooks(todo)
    batches = [todo[i:i + POOL_BATCH] for i in range(0, len(todo), POOL_BATCH)]
    return [body for bodies in map_batches(_workbooks, batches) for body in bodies]


def _workbooks(batch: list[tuple]) -> list[bytes]:
    return [_workbook(*args) for args in batch]


# What a sender's list is made of, besides its problems: this module's code and the writer's
# version, so that a change to either writes every list again.
_MAKER = hashlib.sha256(Path(__file__).read_bytes() + xlsxwriter.__version__.encode()).hexdigest()


def _fingerprint(code: str, name: str, year: int, month: int, problems: list[Problem]) -> str:
    h = hashlib.sha256(_MAKER.encode())
    h.update(json.dumps([code, name, year, month, [list(astuple(p)) for p in problems]],
                        ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()


def _manifest_path(month_dir: Path) -> Path:
    """Beside the month's folder, not in it: the folder holds the lists and nothing else."""
    return month_dir.parent / ".lists" / f"{month_dir.name}.json"


def _manifest(month_dir: Path) -> dict[str, tuple[str, str]]:
    """file name -> (fingerprint of what it was made of, SHA-256 of its bytes) of the last run's lists."""
    try:
        raw = json.loads(_manifest_path(month_dir).read_text(encoding="utf-8"))
        return {k: (v[0], v[1]) for k, v in raw.items()}
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return {}  # none yet, or unreadable: every list is written


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def safe_file_name(stem: str) -> str:
    """A file name stem with characters Windows or the shell refuse replaced by '_'."""
    s = _UNSAFE.sub("_", stem).strip().rstrip(". ")  # Windows drops trailing dots and spaces
    return s or "_"


def _problems(con, period: str) -> list[Problem]:
    rows = []
    # A file that could not be read at all: one error for the whole file.
    rows += con.execute(
        """select path, null, null, null, null, reason_zh, 'error', sender_code
           from ingest.files where period = ? and status = 'rejected'""", [period]).fetchall()
    # A refused sheet is an error; a sheet with no recognisable form may hold data we missed, and
    # a hidden one was not read at all: the sender is told of both, as warnings.
    for path, sheet, status, reason_zh, reason_en, sender in con.execute(
            """select s.path, s.sheet, s.status, s.reason_zh, s.reason_en, f.sender_code
               from ingest.sheets as s left join ingest.files as f using (period, path)
               where s.period = ? and (s.status = 'rejected'
                                       or (s.status = 'skipped' and s.reason_en in (select unnest(?))))""",
            [period, list(SKIPPED_TOLD)]).fetchall():
        if status == "rejected":
            rows.append((path, sheet, None, None, None, reason_zh or "整个工作表未能读取；请按模板填写后重新报送",
                         "error", sender))
        else:
            rows.append((path, sheet, None, None, None, (reason_zh or "未读取") + SKIPPED_TOLD[reason_en],
                         "warning", sender))
    # Failed checks: detail_zh omits the location, which the other columns give.
    rows += con.execute(
        """select x.path, x.sheet, x.excel_row, x.column_header, x.value, coalesce(x.detail_zh, x.message_zh),
                  x.severity, f.sender_code
           from ingest.failures as x left join ingest.files as f using (period, path)
           where x.period = ?""", [period]).fetchall()
    return [Problem(path=p, sheet=s, excel_row=r, column=c, value=v, text=t or "", severity=sev,
                    sender=(code or "").strip() or UNKNOWN_CODE)
            for p, s, r, c, v, t, sev, code in rows]


def _counts_line(errors: int, warnings: int) -> str:
    head = f"错误 {errors} 条，警告 {warnings} 条。"
    if errors:
        return head + ("错误所在的行（或整个工作表、整个文件）未纳入汇总，请更正后在本月内重新报送整份文件；"
                       "警告请核对，确认无误可不修改。详见“说明”工作表。")
    return head + "数据已纳入汇总；请核对警告，确认无误可不修改，有误请更正后在本月内重新报送整份文件。详见“说明”工作表。"


def _workbook(code: str, name: str, year: int, month: int, problems: list[Problem]) -> bytes:
    buf = io.BytesIO()
    # No automatic conversion of strings, belt and braces with write_string below: a sender's
    # "=HYPERLINK(...)" must stay text. in_memory gives fixed zip timestamps.
    wb = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_formulas": False,
                                   "strings_to_numbers": False, "strings_to_urls": False})
    # A fixed creation time (the month's first day) so reruns give identical bytes.
    wb.set_properties({"title": f"{name}（{code}）{year}年{month}月 报送数据问题清单",
                       "created": dt.datetime(year, month, 1)})
    f_title = wb.add_format({"bold": True, "font_size": 14})
    f_note = wb.add_format({"font_color": "#C00000"})
    f_head = wb.add_format({"bold": True, "bg_color": "#D9E1F2", "border": 1, "align": "center",
                            "valign": "vcenter"})
    f_cell = wb.add_format({"border": 1, "valign": "top", "text_wrap": True})
    f_num = wb.add_format({"border": 1, "valign": "top", "align": "center"})
    f_error = wb.add_format({"border": 1, "valign": "top", "align": "center", "font_color": "#C00000",
                             "bold": True})
    f_warn = wb.add_format({"border": 1, "valign": "top", "align": "center", "font_color": "#9C5700"})

    ws = wb.add_worksheet("问题清单")
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    ws.write_string(0, 0, f"{name}（{code}）{year}年{month}月 报送数据问题清单", f_title)
    ws.write_string(1, 0, _counts_line(errors, warnings), f_note)
    for c, h in enumerate(HEADER):
        ws.write_string(2, c, h, f_head)
    widths = [display_width(h) for h in HEADER]
    for i, p in enumerate(problems):
        r = FIRST_DATA_ROW + i
        # File and sheet names are the sender's: a control character in one is shown, not obeyed.
        cells = [printable(p.path), printable(p.sheet) if p.sheet else None, None, p.column, p.value, p.text,
                 SEVERITY_ZH.get(p.severity, "警告")]
        for c, v in enumerate(cells):
            if c == 2:
                continue
            fmt = (f_error if p.severity == "error" else f_warn) if c == 6 else f_cell
            # Every text from the warehouse as a string: it may come from a sender's cell.
            if v:
                ws.write_string(r, c, v, fmt)
                widths[c] = max(widths[c], max(display_width(line) for line in v.splitlines() or [""]))
            else:
                ws.write_blank(r, c, None, fmt)
        # The row number is ours (an integer), written as a number so Excel shows no
        # "number stored as text" marks.
        if p.excel_row is not None:
            ws.write_number(r, 2, p.excel_row, f_num)
        else:
            ws.write_blank(r, 2, None, f_num)
    for c, (lo, hi) in enumerate(WIDTHS):
        ws.set_column(c, c, min(max(widths[c] + 2, lo), hi))
    ws.freeze_panes(FIRST_DATA_ROW, 0)
    ws.autofilter(2, 0, 2 + len(problems), len(HEADER) - 1)
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(2)

    notes = wb.add_worksheet("说明")
    notes.set_column(0, 0, 110)
    f_wrap = wb.add_format({"text_wrap": True, "valign": "top"})
    notes.write_string(0, 0, NOTES[0], f_title)
    for i, line in enumerate(NOTES[1:], start=1):
        notes.write_string(i, 0, line, f_wrap)
    wb.close()
    return buf.getvalue()
