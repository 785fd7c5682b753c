"""The layout of a sheet: its tables, each table's form and header, the title rows above it (the
month they state, the sender they name), footers and totals below, and the cells of error type
that the spreadsheet reader would give as blank."""
from __future__ import annotations

import datetime as dt
import functools
import html
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field

from flows.errors import FileRejected
from flows.ingest.convert import BLANK_TEXTS, fold, is_blank, no_spaces, text_of
from flows.ingest.guard import ERROR_TYPE
from flows.schemas import Field, Form, normalise_header

HEAD_ROWS = 25  # title rows and headers are looked for in the first rows only
# Footers name people and phones: they are never data, never stored, never quoted back.
_FOOTER = re.compile(r"^(填报人|填表人|制表人|审核人|审核|负责人|单位负责人|联系人|经办人|统计人|联系电话|电话|手机|"
                     r"填报日期|制表日期|注[:：]|说明[:：]|备注[:：])")
_TOTAL = re.compile(r"^(合计|总计|小计|累计)")
_FORM_NO = re.compile(r"SG-?0?([1-6])", re.I)
_SENDER = re.compile(r"填报单位[:：]\s*([^\s:：]+)")

# --- error cells ----------------------------------------------------------------------------------
# Formula text holds no raw '<' (XML escapes it), so [^<]* keeps this linear on any input.
_ERROR_CELL = re.compile(rb'<c r="([A-Z]+)(\d+)"[^>]*?t="e"[^>]*>(?:<f[^>]*>[^<]*</f>|<f[^>]*/>)?<v>([^<]*)</v>')


def error_cells(data: bytes, flagged: set[str]) -> dict[str, dict[tuple[int, int], str]]:
    """Cells holding an error value (#DIV/0!, #N/A, ...) per sheet of an xlsx, looked for in the
    parts check_container flagged: the spreadsheet reader gives them as blank, which would
    silently turn a broken formula into "not reported"."""
    out: dict[str, dict[tuple[int, int], str]] = {}
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        book = z.read("xl/workbook.xml")
        rels = z.read("xl/_rels/workbook.xml.rels")
    except (KeyError, zipfile.BadZipFile):
        return out
    targets = dict(re.findall(rb'<Relationship[^>]*?Id="([^"]+)"[^>]*?Target="([^"]+)"', rels))
    targets |= {k: v for v, k in re.findall(rb'<Relationship[^>]*?Target="([^"]+)"[^>]*?Id="([^"]+)"', rels)}
    for name, rid in re.findall(rb'<sheet [^>]*?name="([^"]+)"[^>]*?r:id="([^"]+)"', book):
        target = targets.get(rid, b"").decode().lstrip("/")
        path = target if target.startswith("xl/") else f"xl/{target}"
        if path not in flagged:
            continue
        try:
            xml = z.read(path)
        except KeyError:
            continue
        if ERROR_TYPE not in xml:
            continue
        cells = {}
        for col, row, value in _ERROR_CELL.findall(xml):
            c = 0
            for ch in col.decode():
                c = c * 26 + ord(ch) - 64
            cells[(int(row) - 1, c - 1)] = value.decode()
        out[html.unescape(name.decode())] = cells
    return out


# --- recognising the form and its header ----------------------------------------------------------

@dataclass
class Layout:
    form: Form
    header_start: int  # index into rows
    header_rows: int
    columns: dict[int, Field]  # column index -> field
    headers: dict[str, str]  # field name -> header text as sent

    @functools.cached_property  # asked of every row of the table
    def code_column(self) -> int | None:
        return next((i for i, f in self.columns.items() if f.name == "unit_code"), None)


def _labels(texts: _Texts, r: int, two: bool) -> list[list[str]]:
    """Candidate labels of each column for a header starting at row r (one or two rows); `texts`
    are the head rows' cells as text ("" for blank)."""
    top = texts[r]
    if not two:
        return [[t] for t in top]
    bottom = texts[r + 1] if r + 1 < len(texts) else []
    width = max(len(top), len(bottom))
    filled, last = [], ""
    for i in range(width):  # a merged parent cell is written in its first column only
        t = top[i] if i < len(top) else ""
        last = t or last
        filled.append(last)
    out = []
    for i in range(width):
        b = bottom[i] if i < len(bottom) else ""
        t = top[i] if i < len(top) else ""
        out.append([filled[i] + b, b, filled[i] + b + "人数", b + "人数"] if b else [t])
    return out


def _match(form: Form, labels: list[list[str]]) -> tuple[dict[int, Field], dict[str, str]]:
    words = form.match_words
    columns, headers = {}, {}
    for i, cands in enumerate(labels):
        for c in cands:
            f = words.get(normalise_header(c))
            if f and f.name not in headers:
                # As the sender reads it in a message: a line break inside the cell is not a word.
                columns[i], headers[f.name] = f, re.sub(r"[\r\n]+", "", c).strip()
                break
    return columns, headers


class _Texts:
    """The head rows' cells as text ("" for blank), each row made when first looked at: the
    header is usually found in the first few rows, and the rest are never needed."""

    def __init__(self, rows: list[list]):
        self.rows, self.done = rows, {}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, r: int) -> list[str]:
        texts = self.done.get(r)
        if texts is None:
            texts = self.done[r] = [text_of(c) or "" for c in self.rows[r]]
        return texts


def _hints(row: list, forms: dict[str, Form], numbered: set[str], titled: set[str]) -> None:
    """Forms a title row names: by 表号 (SG-0n) into `numbered`, by a form's title into `titled`."""
    # Only text can name a form; folded, a blank cell is "" or a placeholder such as "-".
    for c in row:
        if not isinstance(c, str) or (t := normalise_header(c)) in BLANK_TEXTS:
            continue
        m = _FORM_NO.search(t)
        if m and ("表号" in t or t.upper().startswith("SG")):
            numbered.add(f"SG-0{m.group(1)}")
        for form in forms.values():
            if any(normalise_header(title) in t for title in form.titles):
                titled.add(form.id)


def _best_at(cells: _Texts, r: int, forms: list[Form]) -> tuple[Layout, float] | None:
    """The best reading of row r as a header (one row, or two with the next) among `forms`, if
    one names enough of its form's fields to be a header at all."""
    best, best_score = None, 0.0
    if r >= len(cells):
        return None
    for form in forms:
        for two in (False, True):
            columns, headers = _match(form, _labels(cells, r, two))
            if len(columns) < min(3, len(form.fields)):
                continue
            score = len(columns) - (0.5 if two else 0)  # prefer one header row on a tie
            if score > best_score:
                best, best_score = Layout(form, r, 2 if two else 1, columns, headers), score
    return (best, best_score) if best else None


def _field_words(forms: dict[str, Form]) -> frozenset[str]:
    """Every folded header word of every form."""
    return frozenset(w for form in forms.values() for w in form.match_words)


def _header_at(cells: _Texts, r: int, forms: dict[str, Form], hinted: set[str],
               words: frozenset[str]) -> Layout | None:
    """The header starting at row r or the row below, if row r begins one. Forms named by the
    title rows above are preferred (several forms share header words); failing them, any form.
    The row below is looked at too: of a two-row header, its lower row may name more fields."""
    # A header names a field in its top row or the one below (title rows never do): any other
    # row is passed over without matching every form against it.
    if not any(t and normalise_header(t) in words for row in (r, r + 1) if row < len(cells) for t in cells[row]):
        return None
    preferred = [forms[f] for f in sorted(hinted) if f in forms]
    for candidates in ([preferred, list(forms.values())] if preferred else [list(forms.values())]):
        here = _best_at(cells, r, candidates)
        if here is None:
            continue
        below = _best_at(cells, r + 1, candidates)
        return below[0] if below and below[1] > here[1] else here[0]
    return None


def recognise(rows: list[list], forms: dict[str, Form], start: int = 0, cells: _Texts | None = None,
              words: frozenset[str] | None = None) -> Layout | None:
    """The form and header of the first table at or after row `start`, from the content: the
    first row (of the next HEAD_ROWS) whose header words name enough of a form's fields, the form
    decided by 表号 or title above it where several match."""
    # Every candidate form, row and header depth looks at the same few hundred head texts:
    # schemas.normalise_header folds each once per process.
    cells = cells or _Texts(rows)
    words = words or _field_words(forms)
    numbered, titled = set(), set()
    for r in range(start, min(len(rows), start + HEAD_ROWS)):
        layout = _header_at(cells, r, forms, numbered or titled, words)
        if layout is not None:
            return layout
        _hints(rows[r], forms, numbered, titled)
    return None


@dataclass
class Table:
    """One table of a sheet: its header, the rows above it that are its titles, and the indexes
    (into the sheet's rows) of the rows below it up to the next table."""
    layout: Layout
    titles: list[list]
    rows: list[int] = field(default_factory=list)


# A label that divides a table into sections (二、农村社区, （一）城市社区, 第二部分): not data.
_SECTION = re.compile(r"^(第?[一二三四五六七八九十]+[、.．]|第[一二三四五六七八九十]+部分|[(（][一二三四五六七八九十\d]+[)）]|"
                      r"\d{1,2}[、．](?!\d))")
TITLE_CELLS = 3  # a row of at most this many different values may be a title row of the next table


def _code_like(value) -> bool:
    """A cell that holds a code: the mark of a data row, which is never a header or a title."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    t = text_of(value)
    return t is not None and unicodedata.normalize("NFKC", t).replace(" ", "").isdigit()


def _values(row: list) -> set[str]:
    return {t for c in row if (t := text_of(c)) is not None}


def tables_of(rows: list[list], forms: dict[str, Form]) -> list[Table]:
    """Every table of a sheet, each under its own header, whatever its form. A table's rows end
    where the next header begins; the short rows just above that header (its title, 表号,
    填报单位) are the next table's titles, not data; a section label is never data; a header
    repeated with the same columns continues the table it repeats."""
    cells = _Texts(rows)
    words = _field_words(forms)
    first = recognise(rows, forms, 0, cells, words)
    if first is None:
        return []
    tables = [Table(first, rows[:first.header_start])]
    i = first.header_start + first.header_rows
    pending: list[int] = []  # blank and short rows that are data, or the titles of a table below
    while i < len(rows):
        table, row = tables[-1], rows[i]
        code = table.layout.code_column
        if code is not None and code < len(row) and _code_like(row[code]):
            table.rows += pending + [i]
            pending, i = [], i + 1
            continue
        values = _values(row)
        if not values:
            pending.append(i)
            i += 1
            continue
        if len(values) == 1 and _SECTION.match(no_spaces(next(iter(values)))):
            i += 1
            continue
        if len({normalise_header(t) for t in values} & words) >= 3:
            numbered, titled = set(), set()
            for j in pending:
                _hints(rows[j], forms, numbered, titled)
            found = _header_at(cells, i, forms, numbered or titled, words)
            if found is not None:
                # The same header again (under a section label, on a new page): the table goes on.
                if not (found.form is table.layout.form and found.columns == table.layout.columns):
                    tables.append(Table(found, [rows[j] for j in pending]))
                pending, i = [], found.header_start + found.header_rows
                continue
        if len(values) <= TITLE_CELLS:
            pending.append(i)
        else:
            table.rows += pending + [i]
            pending = []
        i += 1
    tables[-1].rows += pending  # footers and the like: judged as rows of the last table
    return tables


# --- what surrounds a table: its titles, footers and totals; why it cannot be taken ---------------

def stated_period(title_rows: list[list]) -> str | None:
    """The month the title rows state, if they state one (see stated_month); the date
    beside a 填报日期 label is when the sheet was filled in, not the month it reports."""
    for row in title_rows:
        after_label = False
        for c in row:
            if is_blank(c):
                continue
            month = None if after_label else stated_month(c)
            if month:
                return month
            after_label = is_filing_date_label(c)
    return None


def sender(title_rows: list[list]) -> str | None:
    for row in title_rows:
        for c in row:
            m = _SENDER.search(text_of(c) or "")
            if m:
                return m.group(1)
    return None


def is_footer_or_total(row: list, layout: Layout) -> bool:
    first = next((text_of(c) for c in row if not is_blank(c)), "") or ""
    first = no_spaces(first)
    if _FOOTER.match(first):
        return True
    if _TOTAL.match(first):
        return True
    code_col = layout.code_column
    code = "" if code_col is None or code_col >= len(row) else no_spaces(text_of(row[code_col]) or "")
    return not code.isdigit() and any(_TOTAL.match(no_spaces(text_of(c) or "")) for c in row[:4])


def table_refusal(layout: Layout, stated: str | None, data: list[list], period: str) -> FileRejected | None:
    """Why a recognised table cannot be taken at all, if it cannot."""
    form = layout.form
    if stated and stated != period:
        return FileRejected(f"表内填报月份为 {stated}，与报送月份 {period} 不符（可能是上月文件重复报送）；请核对后重新报送",
                            f"stated period {stated} differs from inbox period {period}")
    missing = [f.header for f in form.required_fields if f.name not in layout.headers]
    if missing:
        return FileRejected(f"识别为 {form.id} {form.name}，但缺少必填列：{'、'.join(missing)}；请按模板补齐表头",
                            f"{form.id}: required columns missing: {missing}")
    lost = _lost_codes(layout, data)
    if lost:
        return FileRejected(f"「{lost}」列的代码被 Excel 显示成了科学计数法（如 5.10402E+11），原来的12位代码已无法恢复；"
                            f"请把该列设为文本格式，重新填写完整代码后报送",
                            f"codes in column {lost!r} are in scientific notation: digits lost")
    return None


_SCIENTIFIC = re.compile(r"^\d(\.\d+)?E\+\d+$", re.I)


def _lost_codes(layout: Layout, data: list[list]) -> str | None:
    """The header of a code column that Excel turned into 5.10402E+11, which no one can undo."""
    for i, f in layout.columns.items():
        if f.type in ("code", "id_number", "credit_code"):
            for row in data:
                if i < len(row) and isinstance(row[i], str) and _SCIENTIFIC.match(row[i].strip()):
                    return layout.headers[f.name]
    return None


# --- the month a title states -------------------------------------------------------------------
# Offices write the month of a report in many ways: 2025年5月, 2025年05月份, 二〇二五年五月,
# 二零二五年五月, 25年5月, 2025.5, 2025-05, 2025/5, or an Excel date cell. Each pattern names
# the year and month groups; the earliest match in a text wins.
_CN_DIGITS = {c: i for i, c in enumerate("〇一二三四五六七八九")} | {"零": 0, "○": 0, "Ｏ": 0, "O": 0}
_CN_YEAR = "[〇零○一二三四五六七八九]"
_CN_MONTH = "十[一二]?|[一二三四五六七八九]"
_MONTH_PATTERNS = (
    # 2025年5月, 2025年05月份, 25年5月, 二〇二五年五月, 2025年十二月 (not the 5 of 2025年1-5月)
    re.compile(rf"(?<![\d{_CN_YEAR[1:-1]}])(\d{{4}}|\d{{2}}|{_CN_YEAR}{{4}}|{_CN_YEAR}{{2}})年"
               rf"(\d{{1,2}}|{_CN_MONTH})月"),
    # 2025.5, 2025-05, 2025/5, 2025.05.31 (a day says its month too)
    re.compile(r"(?<![\d.])((?:19|20)\d{2})[-./](\d{1,2})(?![\d])"),
)
# A label before a date that is not the month reported on: when the sheet was filled in or printed.
_FILING_DATE = re.compile(r"(填报|填表|制表|报送|打印|审核)(日期|时间)[:：]?")
_FILING_DATE_WITH_DATE = re.compile(_FILING_DATE.pattern + r"[\d年月日号./\-〇零○一二三四五六七八九十]*")


def _cn_number(text: str) -> int:
    """一 .. 十二, or digit by digit (二〇二五)."""
    if text.startswith("十"):
        return 10 + (_CN_DIGITS[text[1]] if len(text) > 1 else 0)
    n = 0
    for ch in text:
        n = n * 10 + _CN_DIGITS[ch]
    return n


def _year_month(year: str, month: str) -> str | None:
    y = int(year) if year.isdigit() else _cn_number(year)
    m = int(month) if month.isdigit() else _cn_number(month)
    if len(year) == 2:
        y += 2000  # 25年5月: no report of this pipeline is from the last century
    return f"{y:04d}-{m:02d}" if 1 <= m <= 12 and 1949 <= y <= 2100 else None


def stated_month(value: object) -> str | None:
    """The month (YYYY-MM) a title cell states, if it states one: a date cell, or text in any of
    the ways offices write a month. A filing date (填报日期：…) states none."""
    if isinstance(value, (dt.date, dt.datetime)):
        return f"{value.year:04d}-{value.month:02d}"
    if not isinstance(value, str):
        return None
    text = _FILING_DATE_WITH_DATE.sub("", fold(value))
    found = [m for p in _MONTH_PATTERNS if (m := p.search(text))]
    for m in sorted(found, key=lambda m: m.start()):
        month = _year_month(m.group(1), m.group(2))
        if month:
            return month
    return None


def is_filing_date_label(value: object) -> bool:
    """A cell that ends with 填报日期： and the like: the next cell holds the date the sheet was filled
    in, not the month it reports."""
    if not isinstance(value, str):
        return False
    text = fold(value)
    return any(m.end() == len(text) for m in _FILING_DATE.finditer(text))
