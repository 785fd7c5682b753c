"""Monthly templates: one workbook per reporting unit, its own rows filled in, so files come back clean.

Everything a sheet carries (title, 表号, header words, types, enum values) comes from schemas/,
and every code and name from the registry, so another city's data gives that city's templates.
The layout is the one `ingest/layout.py` recognises: title row, a row with 表号/填报单位/统计期, the header.
"""
from __future__ import annotations

import datetime as dt
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import xlsxwriter
from xlsxwriter.utility import xl_range_abs

from flows.config import SCHEMAS, add_months, check_period, load_settings
from flows.errors import ConfigError
from flows.outputs.report import display_width, read_published
from flows.registry import LEVEL_ZH, LEVELS, Tree, load_units
from flows.schemas import Field, Form, load_forms


ROSTER_ROWS = 200  # blank rows of a roster: more than any unit's talents
LIST_EXTRA_ROWS = 50  # blank rows below last month's organisations/institutions, for new ones
LIST_LIMIT = 255  # Excel's limit on an inline dropdown list, commas included
INSTRUCTIONS = "填表说明"
LISTS_SHEET = "下拉选项"
HEAD = 3  # title, 表号 row, header: data starts on Excel row 4
_UNSAFE = re.compile(r'[\\/:*?"<>|\s]+')


def _senders_of(form: Form) -> tuple[str, ...]:
    return form.senders


def _responsible(tree: Tree, code: str, form: Form) -> str | None:
    """The nearest unit at or above `code` that sends this form: the one that reports its rows."""
    levels = _senders_of(form)
    return next((a for a in tree.ancestors(code) if tree.level[a] in levels), None)


def _scope(tree: Tree, sender: str, form: Form) -> list[str]:
    """Codes the sender may put in the form's unit_code column.

    Where a unit's rows are replaced whole by the newest file covering it (replace_by unit_code),
    only the units no nearer sender reports: a county listing a township's code would supersede
    that township's own roster. Otherwise (SG-05, per institution) the whole subtree.
    """
    units = [c for c in tree.subtree(sender) if tree.level[c] in form.unit_levels]
    if tuple(form.replace_by) == ("unit_code",):
        units = [c for c in units if _responsible(tree, c, form) == sender]
    return units


def _forms_of(tree: Tree, sender: str, forms: dict[str, Form]) -> list[Form]:
    return [f for f in forms.values() if tree.level[sender] in _senders_of(f) and _scope(tree, sender, f)]


# --- last month's values ---------------------------------------------------------------------------

def _previous(db: Path | None, forms: dict[str, Form], period: str) -> dict[str, list[dict]]:
    """Last month's counted rows per form id (personal fields never stored, so never read)."""
    if db is None or not Path(db).is_file():
        return {}
    return read_published(db, add_months(period, -1), lambda con, prev: _previous_rows(con, forms, prev))


def _previous_rows(con, forms: dict[str, Form], prev: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    columns: dict[tuple[str, str], set[str]] = {}
    for schema, table, column in con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where table_schema in ('staging', 'ingest')").fetchall():
        columns.setdefault((schema, table), set()).add(column)
    file_cols = columns.get(("ingest", "files"), set())
    for form in forms.values():
        cols = columns.get(("staging", form.table), set())
        if not {"period", "counted", "unit_code"} <= cols or form.roster:
            continue
        # This month's flows (本月…, 本年度…) are never carried over: a template sent back
        # unchanged would report last month's figures as this month's.
        names = [f.name for f in form.fields if not f.personal and not f.flow and f.name in cols]
        select = ", ".join(f's."{n}"' for n in names)
        params: list = []
        # Who sent each row, where the warehouse recorded it: keeps the city's SG-05
        # institutions out of a county's template, and the other way round.
        if "source_file" in cols and {"period", "path", "sender_code"} <= file_cols:
            join = ("left join (select path, any_value(sender_code) as sender_code from ingest.files "
                    "where period = ? group by path) f on f.path = s.source_file")
            sender = "f.sender_code"
            params.append(prev)
        else:
            join, sender = "", "null"
        if {"source_file", "source_sheet", "excel_row"} <= cols:
            order = "s.source_file, s.source_sheet, s.excel_row"  # last month's own order
        else:
            order = ", ".join(f's."{k}"' for k in form.key if k in cols) or 's."unit_code"'
        params.append(prev)
        cur = con.execute(f"select {select}, {sender} as _sender_code from staging.{form.table} s {join} "
                          f"where s.period = ? and s.counted order by {order} nulls last", params)
        keys = [d[0] for d in cur.description]
        rows = [dict(zip(keys, r)) for r in cur.fetchall()]
        for r in rows:
            r["unit_code"] = None if r["unit_code"] is None else str(r["unit_code"])
        out[form.id] = rows
    return out


# --- cells ------------------------------------------------------------------------------------------

def _cell(f: Field, value):
    """A stored value as the sender would type it; None stays blank (never 0)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "、".join(map(str, value))
    if f.type in ("integer", "year"):
        return int(value)
    if f.type in ("number", "percent"):
        return float(value)
    return str(value)


_DEFAULT_WIDTH = {"code": 15, "id_number": 21, "credit_code": 21, "date": 12, "year": 8, "integer": 9,
                  "number": 10, "percent": 9, "yesno": 7, "multi": 24, "personal": 13, "text": 16, "enum": 8}


def _column_width(f: Field, values: list) -> int:
    longest = max([display_width(str(v)) for v in values if v is not None]
                  + [display_width(v) for v in f.values[:40]] + [0])
    width = max(math.ceil(display_width(f.header) / 2) + 2, _DEFAULT_WIDTH.get(f.type, 12), longest + 2)
    return min(width, 40)


class _Book:
    """One workbook being written: shared formats and the hidden sheet of long dropdown lists."""

    def __init__(self, path: Path, period: str):
        self.wb = xlsxwriter.Workbook(str(path), {"in_memory": True})
        y, m = map(int, period.split("-"))
        # A fixed 'created' (the zip entries are fixed by in_memory): the same month, the same bytes.
        self.wb.set_properties({"created": dt.datetime(y, m, 1), "title": f"{y}年{m}月社会工作月报表"})
        wb = self.wb
        base = {"font_name": "宋体", "font_size": 11, "valign": "vcenter"}
        cell = base | {"border": 1, "border_color": "#A6A6A6", "locked": False}
        self.title = wb.add_format(base | {"bold": True, "font_size": 16, "align": "center", "locked": True})
        self.meta = wb.add_format(base | {"locked": True})
        self.header = wb.add_format(base | {"bold": True, "text_wrap": True, "align": "center", "border": 1,
                                            "bg_color": "#D9E1F2", "locked": True})
        self.text = wb.add_format(cell | {"num_format": "@"})
        self.integer = wb.add_format(cell | {"num_format": "0"})
        self.number = wb.add_format(cell | {"num_format": "General"})
        self.note = wb.add_format(base | {"text_wrap": True, "valign": "top", "locked": True})
        self.note_head = wb.add_format(base | {"bold": True, "text_wrap": True, "border": 1,
                                               "bg_color": "#D9E1F2", "locked": True})
        self.note_cell = wb.add_format(base | {"text_wrap": True, "valign": "top", "border": 1,
                                               "border_color": "#A6A6A6", "locked": True, "num_format": "@"})
        self.bold = wb.add_format(base | {"bold": True, "locked": True})
        self.lists: dict[tuple[str, ...], str] = {}

    def data_format(self, f: Field):
        if f.type in ("integer", "year"):
            return self.integer
        if f.type in ("number", "percent"):
            return self.number
        return self.text  # codes, ID numbers, dates and words: text, so Excel converts nothing

    def list_source(self, values: list[str]):
        """Inline list when it fits Excel's 255 characters, else a range of the hidden sheet."""
        if len(",".join(values)) <= LIST_LIMIT:
            return list(values)
        key = tuple(values)
        if key not in self.lists:
            self.lists[key] = f"='{LISTS_SHEET}'!" + xl_range_abs(0, len(self.lists), len(values) - 1, len(self.lists))
        return self.lists[key]

    def close(self):
        if self.lists:
            ws = self.wb.add_worksheet(LISTS_SHEET)
            for col, values in enumerate(self.lists):
                for row, v in enumerate(values):
                    ws.write_string(row, col, v)
            ws.hide()
            ws.protect()
        self.wb.close()


# --- validation per column --------------------------------------------------------------------------

def _validation(book: _Book, f: Field, codes: list[str], year: int) -> dict | None:
    blank = "不清楚的请留空（空白表示未报告，不要填 0）。"
    if f.name == "unit_code":
        return {"validate": "list", "source": book.list_source(codes),
                "input_title": "单位代码", "input_message": "请从下拉列表选择12位代码（本单位及下辖单位）；已是文本格式，不会变成科学计数法。",
                "error_title": "代码不在本单位范围内",
                "error_message": "请从下拉列表中选择本单位或下辖单位的12位代码；代码见“填表说明”工作表。"}
    if f.type == "yesno":
        return {"validate": "list", "source": ["是", "否"], "input_title": "是/否",
                "input_message": "请从下拉列表选择“是”或“否”。" + blank,
                "error_title": "只能填“是”或“否”", "error_message": "请从下拉列表选择“是”或“否”。"}
    if f.type == "enum":
        return {"validate": "list", "source": book.list_source([str(v) for v in f.values]),
                "input_title": "请选择", "input_message": "请从下拉列表选择一项。",
                "error_title": "不在可选项中", "error_message": "请从下拉列表选择：" + "、".join(map(str, f.values))[:200]}
    if f.type == "integer":
        return {"validate": "integer", "criteria": ">=", "value": 0, "input_title": "整数",
                "input_message": "请填写不小于 0 的整数，数量为零请填 0。" + blank,
                "error_title": "应为不小于 0 的整数", "error_message": "请填写不小于 0 的整数（不要带单位或文字）。"}
    if f.type == "number":
        return {"validate": "decimal", "criteria": ">=", "value": 0, "input_title": "数字",
                "input_message": "请填写不小于 0 的数字。" + blank,
                "error_title": "应为不小于 0 的数字", "error_message": "请填写不小于 0 的数字（不要带单位或文字）。"}
    if f.type == "percent":
        return {"validate": "decimal", "criteria": "between", "minimum": 0, "maximum": 100,
                "input_title": "百分数", "input_message": "请填写 0 到 100 之间的数字，不带 % 号，如 35.5。" + blank,
                "error_title": "应在 0 到 100 之间", "error_message": "请填写 0 到 100 之间的数字，不带 % 号。"}
    if f.type == "year":
        return {"validate": "integer", "criteria": "between", "minimum": 1949, "maximum": year,
                "input_title": "年份", "input_message": "请填写4位年份，如 2021。",
                "error_title": "年份不对", "error_message": f"请填写 1949 到 {year} 之间的4位年份，如 2021。"}
    if f.type in ("id_number", "credit_code"):
        what = "公民身份号码" if f.type == "id_number" else "统一社会信用代码"
        return {"validate": "length", "criteria": "==", "value": 18, "input_title": what,
                "input_message": f"请填写18位{what}（已是文本格式，末位 X 用大写）。",
                "error_title": "应为18位", "error_message": f"{what}应为18位，请核对。"}
    if f.type == "date":
        return {"validate": "any", "input_title": "日期",
                "input_message": "请按“年-月-日”填写，如 2021-03-01。" + blank}
    if f.type == "multi":
        return {"validate": "any", "input_title": "可填多项",
                "input_message": ("可填一项或多项，用“、”分隔，如“老年、社区治理”。可选：" + "、".join(map(str, f.values)))[:255]}
    if f.type == "personal":
        return {"validate": "any", "input_title": "个人信息",
                "input_message": "仅用于识别同一人员，不进入数据库；请妥善保管本文件。"}
    return None


# --- one sheet ---------------------------------------------------------------------------------------

@dataclass
class _Plan:
    """What one form's sheet holds for one sender."""
    form: Form
    codes: list[str]  # the unit_code dropdown
    rows: list[dict]  # filled rows
    blank_rows: int  # formatted empty rows below them
    mode: str  # unit (one row per unit), roster, list
    prefilled: int = 0


def _plan(tree: Tree, sender: str, form: Form, prev: dict[str, list[dict]], holders: set[str]) -> _Plan:
    codes = _scope(tree, sender, form)
    last = prev.get(form.id, [])
    if form.roster:
        return _Plan(form, codes, [], ROSTER_ROWS, "roster")
    has_name = any(f.name == "unit_name" for f in form.fields)
    if tuple(form.key) == ("unit_code",):
        by_code = {r["unit_code"]: r for r in last}
        rows = []
        for c in codes:
            r = dict(by_code.get(c, {}))
            r["unit_code"] = c
            if has_name:
                r["unit_name"] = tree.name[c]  # the registry's name is the one validation expects
            rows.append(r)
        return _Plan(form, codes, rows, 0, "unit", sum(c in by_code for c in codes))
    allowed = set(codes)
    # Rows another template holder sent last month are theirs to send again, not ours.
    rows = [r for r in last if r["unit_code"] in allowed
            and (r.get("_sender_code") in (None, sender) or r.get("_sender_code") not in holders)]
    return _Plan(form, codes, rows, LIST_EXTRA_ROWS, "list", len(rows))


def _sheet_name(form: Form) -> str:
    return re.sub(r"[\[\]:*?/\\]", "", f"{form.id} {form.name}")[:31]


def _write_sheet(book: _Book, plan: _Plan, city: str, sender_name: str, period: str) -> None:
    form = plan.form
    y, m = map(int, period.split("-"))
    ws = book.wb.add_worksheet(_sheet_name(form))
    fields = list(form.fields)
    last_col = len(fields) - 1
    meta = [f"表号：{form.id}", f"填报单位：{sender_name}", f"统计期：{y}年{m}月"]

    cells = [[_cell(f, r.get(f.name)) for f in fields] for r in plan.rows]
    for c, f in enumerate(fields):
        width = _column_width(f, [row[c] for row in cells])
        if c < len(meta):
            width = max(width, display_width(meta[c]) + 2)
        # The column's own format reaches rows below the formatted block: a code typed there stays text.
        ws.set_column(c, c, min(width, 40), book.data_format(f))

    ws.merge_range(0, 0, 0, last_col, city + form.titles[0], book.title)
    ws.set_row(0, 30)
    for c in range(last_col + 1):
        if c < len(meta):
            ws.write_string(1, c, meta[c], book.meta)
        else:
            ws.write_blank(1, c, None, book.meta)  # locked, though the column below is not
        ws.write_string(2, c, fields[c].header, book.header)
    ws.set_row(2, 45)

    first, n = HEAD, len(cells) + plan.blank_rows
    formats = [book.data_format(f) for f in fields]
    for i in range(n):
        row = cells[i] if i < len(cells) else [None] * len(fields)
        for c, v in enumerate(row):
            if v is None:
                ws.write_blank(first + i, c, None, formats[c])
            elif isinstance(v, str):
                ws.write_string(first + i, c, v, formats[c])
            else:
                ws.write_number(first + i, c, v, formats[c])
    if n:
        for c, f in enumerate(fields):
            options = _validation(book, f, plan.codes, y)
            if options:
                ws.data_validation(first, c, first + n - 1, c, options)

    ws.freeze_panes(HEAD, 0)
    ws.set_landscape()
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(0, HEAD - 1)
    # Data cells are unlocked; title and header stay locked. No password: the lock prevents
    # accidents, not a determined office, and a forgotten password would block a correction.
    ws.protect("", {"insert_rows": True, "delete_rows": True, "format_columns": True, "format_rows": True})


# --- the instruction sheet ---------------------------------------------------------------------------

def _row_height(text: str, width: int) -> float:
    lines = sum(max(1, math.ceil(display_width(part) / max(width - 1, 1))) for part in text.split("\n"))
    return 15 * lines + 3


def _describe(tree: Tree, sender: str, plan: _Plan) -> str:
    form = plan.form
    if plan.mode == "unit":
        filled = "代码和名称" if any(f.name == "unit_name" for f in form.fields) else "代码"
        if plan.codes == [sender]:
            text = f"本单位一行，{filled}已填好。"
        else:
            levels = "、".join(dict.fromkeys(LEVEL_ZH[tree.level[c]] for c in plan.codes))
            text = f"所辖每个{levels}一行（共 {len(plan.codes)} 行），{filled}已填好。"
    elif plan.mode == "roster":
        levels = "、".join(dict.fromkeys(LEVEL_ZH[tree.level[c]] for c in plan.codes))
        where = "本单位" if plan.codes == [sender] else f"本单位及所辖{levels}"
        text = (f"在{where}服务的社会工作专业人才，每人一行。本月名单就是全部名单："
                f"已离开的人员不再列入，仍在岗的人员每月都要列入。")
    else:
        key = "＋".join(f"「{form.field(k).header}」" for k in form.key if k != "unit_code") or \
              "＋".join(f"「{form.field(k).header}」" for k in form.key)
        where = "本单位" if plan.codes == [sender] else "本单位及下辖单位"
        text = f"{where}的全部记录，每条一行，以{key}区分；新增的在下方空行填写，已撤销或不再主管的请清空该行。"
    if plan.prefilled:
        text += f"已预填上月数据 {plan.prefilled} 行，请逐项核对并更新为本月数据。"
    return text


def _write_instructions(book: _Book, tree: Tree, sender: str, plans: list[_Plan], period: str) -> None:
    ws = book.wb.add_worksheet(INSTRUCTIONS)
    widths = [10, 30, 62, 34]
    for c, w in enumerate(widths):
        ws.set_column(c, c, w)
    y, m = map(int, period.split("-"))
    ny, nm = map(int, add_months(period, 1).split("-"))
    city = tree.name.get(tree.city, "")
    row = 0

    def para(text: str, fmt=None):
        nonlocal row
        ws.merge_range(row, 0, row, len(widths) - 1, text, fmt or book.note)
        ws.set_row(row, _row_height(text, sum(widths)))
        row += 1

    ws.merge_range(row, 0, row, len(widths) - 1, f"{city}社会工作月报表 填表说明", book.title)
    ws.set_row(row, 30)
    row += 1
    para(f"报送单位：{tree.name[sender]}（{sender}）    统计期：{y}年{m}月    报送截止：{ny}年{nm}月{load_settings().deadline_day}日", book.bold)
    row += 1
    for c, text in enumerate(("表号", "报表", "由谁填、填什么", "必填列")):
        ws.write_string(row, c, text, book.note_head)
    row += 1
    for p in plans:
        required = "、".join(f.header for f in p.form.required_fields)
        texts = [p.form.id, p.form.name, f"由{tree.name[sender]}填报：" + _describe(tree, sender, p),
                 f"必填：{required}" if required else "无"]
        for c, text in enumerate(texts):
            ws.write_string(row, c, text, book.note_cell)
        ws.set_row(row, max(_row_height(t, widths[c]) for c, t in enumerate(texts)))
        row += 1
    row += 1
    para("填写规则", book.bold)
    fields = [f for p in plans for f in p.form.fields]
    rules = [
        "每张报表一个工作表，请在对应工作表的表头下方填写；表名、标题行和表头已锁定，不要增加、删除、改名或调换列。行不够时可在下方空行继续填写。",
        "必填列（见上表）每行都要填写，否则该行会被退回。",
        "单位代码是12位数字，单元格已设为文本格式，请从下拉列表选择或照抄下方代码表；不要改成数值格式，否则会变成 5.10402E+11 这样的科学计数法，代码无法恢复。"
        + ("公民身份号码、统一社会信用代码同样按文本填写。" if any(f.type in ("id_number", "credit_code") for f in fields) else ""),
        "“是否……”列只填“是”或“否”，请从下拉列表选择；有可选项的列也请从下拉列表选择。",
        "日期按“年-月-日”填写，如 2021-03-01；年份填4位数字，如 2021。",
        "空白表示未报告，不等于 0：数量为零请填 0，不清楚的请留空，不要用 0 代替。数字列只填数字，不要带“人”“个”等单位。",
    ]
    rules += [f"「{f.header}」可填多项，用“、”分隔，可选：" + "、".join(map(str, f.values)) + "。"
              for f in dict.fromkeys(f for f in fields if f.type == "multi")]
    rules.append(f"每月一个工作簿：本工作簿只填报 {y}年{m}月 的数据，不要填入其他月份，也不要把上月文件改个名字再报。")
    if any(p.prefilled for p in plans):
        rules.append("表中预填的是上月数据，请逐项核对并更新；标有“本月”“本年度”的数字不预填，请按实际填写。")
    personal = "、".join(dict.fromkeys(f.header for f in fields if f.personal))
    if personal:
        rules.append(f"{personal}只用于识别同一人员，读取后即加密或删除，不进入数据库；请妥善保管本文件，不要在公开渠道传送。")
    rules.append(f"请用 Excel 或 WPS 直接填写并保存为 .xlsx，于 {ny}年{nm}月{load_settings().deadline_day}日 前报送{city}民政局。")
    rules = [f"{i}. {text}" for i, text in enumerate(rules, 1)]
    for text in rules:
        para(text)
    row += 1
    para("本单位可填报的单位代码（填写代码列时请照抄）", book.bold)
    for c, text in enumerate(("序号", "名称", "代码（12位）", "层级")):
        ws.write_string(row, c, text, book.note_head)
    row += 1
    codes = [c for c in tree.subtree(sender) if any(c in p.codes for p in plans)]
    for i, code in enumerate(codes, 1):
        ws.write_number(row, 0, i, book.note_cell)
        ws.write_string(row, 1, tree.name[code], book.note_cell)
        ws.write_string(row, 2, code, book.note_cell)
        ws.write_string(row, 3, LEVEL_ZH[tree.level[code]], book.note_cell)
        row += 1
    ws.protect()
    ws.activate()


# --- the workbooks ----------------------------------------------------------------------------------

def file_name(code: str, name: str) -> str:
    return f"{code}-{_UNSAFE.sub('_', name)}.xlsx"


def write_templates(period: str, out_dir: Path, *, db: Path | None = None, unit: str | None = None) -> list[Path]:
    """Write out_dir/<period>/<unit code>-<unit name>.xlsx for every reporting unit (or just `unit`); return the paths."""
    check_period(period)
    forms = load_forms(SCHEMAS)
    tree = Tree(load_units(load_settings().units_csv))
    levels = {lv for f in forms.values() for lv in _senders_of(f)}
    senders = [c for c in tree.order if tree.level[c] in levels and _forms_of(tree, c, forms)]
    if unit is not None:
        if unit not in tree.name:
            raise ConfigError(f"unit {unit} is not in the registry ({load_settings().units_csv})")
        if unit not in senders:
            raise ConfigError(f"unit {unit} ({tree.name[unit]}) is a {tree.level[unit]}, which sends no form; "
                              f"templates go to the levels {sorted(levels, key=LEVELS.index)}")
        senders = [unit]
    prev = _previous(db, forms, period)
    holders = {f.id: {c for c in tree.order if tree.level[c] in _senders_of(f)} for f in forms.values()}
    city = tree.name.get(tree.city, "")
    folder = Path(out_dir) / period
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for sender in senders:
        path = folder / file_name(sender, tree.name[sender])
        tmp = path.with_name(f".{path.name}.tmp")
        plans = [_plan(tree, sender, f, prev, holders[f.id]) for f in _forms_of(tree, sender, forms)]
        try:
            book = _Book(tmp, period)
            _write_instructions(book, tree, sender, plans, period)
            for p in plans:
                _write_sheet(book, p, city, tree.name[sender], period)
            book.close()
            os.replace(tmp, path)  # never a half-written template under the real name
        finally:
            tmp.unlink(missing_ok=True)
        paths.append(path)
    return paths
