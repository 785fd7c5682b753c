"""Cell values as offices type them, converted to the types of the form schemas: each cell, the
check digits of codes, and a table's rows, to a frame of the form's columns.

Every converter returns `(value, ok)`: `value` is None for a blank cell (blank is "not
reported", never 0), and `ok` is False when a non-blank cell could not be understood.
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import TYPE_CHECKING

from flows import pii
from flows.schemas import Field, Form

if TYPE_CHECKING:
    from flows.ingest.layout import Layout

# What offices write in a cell that means "nothing to report", once folded.
BLANK_TEXTS = {"", "-", "—", "/", "\\", "无数据"}
_EXCEL_ERRORS = {"#DIV/0!", "#N/A", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#NULL!"}
_YES = {"是", "有", "√", "✓", "✔", "Y", "YES", "TRUE", "1", "对"}
_NO = {"否", "无", "×", "✗", "N", "NO", "FALSE", "0"}
# Units offices write after a count: 12人, 3个, 1,234人次.
_COUNT_SUFFIX = re.compile(r"(人次|人|个|名|户|支|家|所|次|小时|学时|万元|元)$")
_MULTI_SEP = re.compile(r"[、,，;；/／\s]+")
_EXCEL_EPOCH = dt.date(1899, 12, 30)


def text_of(value: object) -> str | None:
    """The cell as the sender sees it, or None when blank. Integral floats lose their '.0'."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    s = str(value).strip()
    return None if s == "" else s


_SPACES = re.compile(r"\s+")


def fold(s: str) -> str:
    """Full-width digits and letters to ASCII, no spaces."""
    return _SPACES.sub("", unicodedata.normalize("NFKC", s))


def is_blank(value: object) -> bool:
    if isinstance(value, (int, float)):  # a number is never blank (and this is asked of every cell)
        return False
    t = text_of(value)
    return t is None or fold(t) in BLANK_TEXTS


def to_code(value: object):
    if isinstance(value, float):
        # A code Excel stored as a number is exact while it has at most 15 digits.
        return (str(int(value)), True) if value.is_integer() and 0 < value < 1e15 else (None, False)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value), True
    s = fold(str(value))
    return (s, True) if s.isdigit() else (None, False)


def to_text(value: object):
    return text_of(value), True


def _number_text(value: object) -> str | None:
    s = fold(str(value)).replace(",", "")
    s = _COUNT_SUFFIX.sub("", s)
    return s or None


def to_integer(value: object):
    if isinstance(value, bool):
        return None, False
    if isinstance(value, int):
        return value, True
    if isinstance(value, float):
        return (int(value), True) if value.is_integer() else (None, False)
    s = _number_text(value)
    if s and re.fullmatch(r"-?\d+(\.0+)?", s):
        return int(float(s)), True
    return None, False


def to_number(value: object):
    if isinstance(value, bool):
        return None, False
    if isinstance(value, (int, float)):
        return float(value), True
    s = _number_text(value)
    if s and s.endswith(("%", "％")):
        s = s[:-1]
    try:
        return float(s), True
    except (TypeError, ValueError):
        return None, False


def to_yesno(value: object):
    if isinstance(value, bool):
        return value, True
    s = fold(text_of(value) or "").upper()
    if s in _YES:
        return True, True
    if s in _NO:
        return False, True
    return None, False


def to_date(value: object):
    if isinstance(value, dt.datetime):
        return value.date(), True
    if isinstance(value, dt.date):
        return value, True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # An Excel serial date that the reader did not convert (a cell without date format).
        if 1 <= value < 80000:
            return _EXCEL_EPOCH + dt.timedelta(days=int(value)), True
        return None, False
    s = fold(str(value))
    m = (re.fullmatch(r"(\d{4})[-/.年](\d{1,2})(?:[-/.月](\d{1,2})日?|月)?", s)
         or re.fullmatch(r"(\d{4})(\d{2})(\d{2})", s))
    if not m:
        return None, False
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)
    try:
        return dt.date(y, mo, d), True
    except ValueError:
        return None, False


def to_year(value: object):
    if isinstance(value, (dt.date, dt.datetime)):
        return value.year, True
    n, ok = to_integer(re.sub(r"年$", "", fold(str(value))) if isinstance(value, str) else value)
    if ok and 1949 <= n <= 2100:
        return n, True
    return None, False


def to_enum(value: object):
    return fold(text_of(value) or ""), True


def to_multi(value: object, allowed: tuple):
    items = [p for p in _MULTI_SEP.split(fold(text_of(value) or "")) if p]
    if not items or any(i not in allowed for i in items):
        return None, False
    return sorted(set(items), key=allowed.index), True


# What Excel and chat programs leave in a pasted ID number or credit code: the apostrophe that
# forces a cell to text, zero-width spaces and joiners, the byte-order mark, non-breaking and
# full-width spaces. None of them is a character of the code.
_PASTE_LEAD = re.compile(r"^['‘’`]+")
_INVISIBLE = re.compile(r"[\s\u00a0\u200b-\u200f\u2060\u3000\ufeff]+")


def clean_pasted_code(text: str) -> str:
    """A code as pasted, without the artefacts of pasting: upper case, nothing invisible."""
    return _PASTE_LEAD.sub("", _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))).upper()


def to_upper_code(value: object):
    """ID numbers and credit codes: text, upper case, no spaces. A number lost its digits."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return None, False
    return clean_pasted_code(str(value)), True


def to_present(value: object):
    """Personal fields other than the ID number: only whether they were filled in survives."""
    return "已填", True


CONVERTERS = {
    "code": to_code, "text": to_text, "integer": to_integer, "number": to_number,
    "percent": to_number, "yesno": to_yesno, "date": to_date, "year": to_year, "enum": to_enum,
    "id_number": to_upper_code, "credit_code": to_upper_code, "personal": to_present,
}


def convert(field: Field, value: object):
    """(typed value or None, understood?) for one cell of a field."""
    if is_blank(value):
        return None, True
    if isinstance(value, str) and fold(value) in _EXCEL_ERRORS:
        return None, False
    if field.type == "multi":
        return to_multi(value, field.values)
    return CONVERTERS[field.type](value)


# --- check digits -----------------------------------------------------------------------------

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_number_valid(s: str | None) -> bool:
    """GB 11643-1999: 17 digits, a real birth date, and the ISO 7064 MOD 11-2 check character."""
    if not s or not re.fullmatch(r"\d{17}[\dX]", s):
        return False
    try:
        dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    total = sum(int(c) * w for c, w in zip(s[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == s[17]


def id_number_old(s: str | None) -> bool:
    """A first-generation ID number of 15 digits (no century, no check character): to be sent
    again as its 18-character successor, not judged by the 18-character rules."""
    return bool(s) and re.fullmatch(r"\d{15}", s) is not None


def id_sex(s: str) -> str:
    """Sex from the 17th character: odd is male."""
    return "男" if int(s[16]) % 2 else "女"


_CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code_valid(s: str | None) -> bool:
    """GB 32100-2015: 18 characters of the code set, the last a MOD 31 check character."""
    if not s or len(s) != 18 or any(c not in _CREDIT_CHARS for c in s):
        return False
    total = sum(_CREDIT_CHARS.index(c) * w for c, w in zip(s[:17], _CREDIT_WEIGHTS))
    return _CREDIT_CHARS[(31 - total % 31) % 31] == s[17]


# --- a table's rows -------------------------------------------------------------------------------

_TICKS = {"√", "✓", "✔"}


def checkbox_columns(layout: Layout, data: list[list]) -> set[int]:
    """Yes/no columns filled in the tick style (√ or blank): there a blank means 否, not missing."""
    out = set()
    for i, f in layout.columns.items():
        if f.type != "yesno":
            continue
        texts = {(text_of(row[i]) or "").strip() for row in data if i < len(row)} - {""}
        if texts and texts <= _TICKS:
            out.add(i)
    return out


class _Column:
    """How one column of a sheet becomes fields of a row: the field, the names of what it yields,
    and the conversions already made in this sheet. Offices repeat the same few values down a
    column (是/否, small counts, the same township), and conversion is the costliest step of
    reading; the memo is keyed by type as well as value, since True == 1 == 1.0 in Python."""
    __slots__ = ("index", "field", "name", "ok", "raw", "valid", "old", "checkbox", "memo")

    def __init__(self, index: int, f: Field, checkbox: bool):
        self.index, self.field, self.checkbox = index, f, checkbox
        # One string object per name for the whole sheet: rows pickle smaller and faster.
        self.name, self.ok, self.raw, self.valid = f.name, f"{f.name}__ok", f"{f.name}__raw", f"{f.name}__valid"
        self.old = f"{f.name}__old"
        # ID numbers are unique per row, and are not kept a moment longer than their row needs.
        self.memo: dict | None = None if f.type == "id_number" else {}


def columns_of(layout: Layout, checkbox: set[int] = frozenset()) -> list[_Column]:
    return [_Column(i, f, i in checkbox) for i, f in layout.columns.items()]


def convert_row(columns: list[_Column], row: list, key: bytes) -> dict:
    out = {}
    width = len(row)
    for col in columns:
        value = row[col.index] if col.index < width else None
        if col.checkbox and is_blank(value):
            value = "否"
        f = col.field
        if col.memo is None:
            typed, ok = convert(f, value)
            # Hash at once: the ID number itself goes no further than this function.
            out[col.name] = pii.person_key(key, typed) if typed else None
            # An old 15-digit number has its own message; the 18-character rules do not judge it.
            old = id_number_old(typed) if typed else None
            valid = None if not typed or old else id_number_valid(typed)
            out[col.valid] = valid
            out[col.old] = old
            out["sex_from_id"] = id_sex(typed) if valid else None
            out["birth_year"] = int(typed[6:10]) if valid else None
            out[col.ok] = ok
            out[col.raw] = None if ok else "（已隐去）"
            continue
        memo_key = (type(value), value)
        done = col.memo.get(memo_key)
        if done is None:
            typed, ok = convert(f, value)
            done = (typed, ok, None if ok else ("（已隐去）" if f.personal else text_of(value)),
                    (credit_code_valid(typed) if typed else None) if f.type == "credit_code" else None)
            col.memo[memo_key] = done
        out[col.name] = done[0] if f.type != "multi" else (list(done[0]) if done[0] is not None else None)
        if f.type == "credit_code":
            out[col.valid] = done[3]
        out[col.ok] = done[1]
        out[col.raw] = done[2]
    return out


# --- frames -------------------------------------------------------------------------------------

def _dtype(f: Field):
    import polars as pl
    return {"integer": pl.Int64, "number": pl.Float64, "percent": pl.Float64, "yesno": pl.Boolean,
            "date": pl.Date, "year": pl.Int64, "multi": pl.List(pl.String)}.get(f.type, pl.String)


def frame_schema(form: Form) -> dict:
    """Columns of a form's month frame: meta, typed fields, and per-field reading flags."""
    import polars as pl
    schema = {"_file": pl.String, "_sheet": pl.String, "_row": pl.Int64, "_header_row": pl.Int64,
              "_received_at": pl.Datetime("us")}
    for f in form.fields:
        schema[f.name] = _dtype(f)
        if f.type in ("id_number", "credit_code"):
            schema[f"{f.name}__valid"] = pl.Boolean
        if f.type == "id_number":
            schema[f"{f.name}__old"] = pl.Boolean
            schema["sex_from_id"] = pl.String
            schema["birth_year"] = pl.Int64
    for f in form.fields:
        schema[f"{f.name}__ok"] = pl.Boolean
        schema[f"{f.name}__raw"] = pl.String
    return schema


def rows_frame(form: Form, rows: list[dict]):
    """Rows as read_file gives them as a frame of the form's columns (no row index). A column a
    sheet did not have is missing in its rows, never 0; its reading flag is True (nothing to
    misread). Built by Polars from the dicts: a province's month is 180,000 rows."""
    import polars as pl
    schema = frame_schema(form)
    frame = pl.from_dicts(rows, schema=schema) if rows else pl.DataFrame(schema=schema)
    return frame.with_columns(pl.col(n).fill_null(True) for n in schema if n.endswith("__ok"))


def to_frame(form: Form, rows: list[dict]):
    """The month's rows of one form as a Polars frame, with the `_row_id` validation reports by."""
    return rows_frame(form, rows).with_row_index("_row_id")

