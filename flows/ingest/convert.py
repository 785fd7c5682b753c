"""Cell values as offices type them, converted to the types of the form schemas: each cell, the
check digits of codes, and a table's rows, to a frame of the form's columns.

Every converter returns `(value, ok)`: `value` is None for a blank cell (blank is "not
reported", never 0), and `ok` is False when a non-blank cell could not be understood.
"""
from __future__ import annotations

import datetime as dt
import itertools
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flows import pii
from flows.schemas import Field, Form

if TYPE_CHECKING:
    import polars as pl

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
    if type(value) is str:  # most cells: asked first (a province month asks this 3 million times)
        s = value.strip()
        return s or None
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


def no_spaces(text: str) -> str:
    """`text` without whitespace: what re.sub(r"\\s+", "", text) gives (both go by str.isspace)."""
    return text if text.isalnum() else "".join(text.split())


def fold(s: str) -> str:
    """Full-width digits and letters to ASCII, no spaces."""
    # Text that is normal already (most cells) is not normalised again.
    return no_spaces(s if unicodedata.is_normalized("NFKC", s) else unicodedata.normalize("NFKC", s))


# Text cells already judged by is_blank: offices repeat the same few texts down a sheet and across
# a month's files. Bounded: cleared when full.
_BLANK_SEEN: dict[str, bool] = {}
_BLANK_SEEN_MAX = 100_000


def is_blank(value: object) -> bool:
    if type(value) is str:
        seen = _BLANK_SEEN.get(value)
        if seen is None:
            if len(_BLANK_SEEN) >= _BLANK_SEEN_MAX:
                _BLANK_SEEN.clear()
            t = value.strip()
            seen = _BLANK_SEEN[value] = not t or fold(t) in BLANK_TEXTS
        return seen
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


@dataclass
class TableRows:
    """A table's data rows, read but not yet converted: its layout, its rows (footers, totals and
    blank rows left out), the columns in the tick style, and `meta`: the columns that are not
    cells (_file, _sheet, _header_row, _received_at, and _row, the rows' Excel row numbers)."""
    layout: Layout
    rows: list[list]
    checkbox: set[int]
    meta: dict


_ABSENT = object()  # the cell of a column the table does not have: null, and nothing misread


def form_frame(form: Form, tables: list[TableRows], key: bytes) -> "pl.DataFrame":
    """The rows of a form's tables (of one file or many) as one frame of its columns
    (frame_schema), converted column by column. Offices repeat the same few values down a column
    (是/否, small counts, the same township): each distinct cell of a column is converted once, by
    the rules above, and the column is gathered from those conversions in Polars; distinct is by
    type as well as value, since True == 1 == 1.0 in Python. ID numbers are checked by Polars
    expressions over the column and hashed once each. A column a table does not have is null
    in its rows, never 0, and its reading flag True (nothing to misread)."""
    import polars as pl
    if not tables:
        return rows_frame(form, [])
    schema = frame_schema(form)
    cells: dict[str, list] = {f.name: [] for f in form.fields}
    meta: dict[str, list] = {name: [] for name in ("_file", "_sheet", "_row", "_header_row", "_received_at")}
    for table in tables:
        height = len(table.rows)
        where = {f.name: i for i, f in table.layout.columns.items()}
        # The table by column, at C speed: rows padded to the widest column read, then transposed.
        width = max(where.values(), default=-1) + 1
        by_column = list(zip(*(row if len(row) >= width else [*row, *itertools.repeat(None, width - len(row))]
                               for row in table.rows))) if height else []
        for f in form.fields:
            i = where.get(f.name)
            if i is None:
                cells[f.name].extend([_ABSENT] * height)
                continue
            column = by_column[i] if height else ()
            if i in table.checkbox:  # the tick style: a blank is 否
                column = ["否" if is_blank(v) else v for v in column]
            cells[f.name].extend(column)
        for name, values in meta.items():
            value = table.meta[name]
            values.extend(value if name == "_row" else [value] * height)
    columns = {name: pl.Series(name, values, dtype=schema[name]) for name, values in meta.items()}
    # Per field: the index of each row's value among the field's distinct values, and what each
    # distinct value converts to; the rows' columns are then gathered in one Polars select.
    codes, distinct_columns = {}, {}
    for f in form.fields:
        # Each cell's (type, value), its distinct ones in first-seen order, and each cell's index
        # among them: map, zip and dict in C rather than a Python loop over the cells.
        column = cells.pop(f.name)
        keys = list(zip(map(type, column), column))
        distinct = dict(zip(dict.fromkeys(keys), itertools.count()))
        codes[f.name] = list(map(distinct.__getitem__, keys))
        values = [v for _, v in distinct]
        done = [(None, True) if v is _ABSENT else convert(f, v) for v in values]
        typed = [t for t, _ in done]
        ok = [k for _, k in done]
        if f.type == "id_number":
            # The ID number itself goes no further than this function: only its hash is kept.
            found = id_columns(f.name, typed, key)
            raw = [None if k else "（已隐去）" for k in ok]
        else:
            if f.type == "multi":
                typed = [list(t) if t is not None else None for t in typed]
            found = {f.name: pl.Series(typed, dtype=schema[f.name])}
            if f.type == "credit_code":
                found[f"{f.name}__valid"] = pl.Series([credit_code_valid(t) if t else None for t in typed],
                                                      dtype=pl.Boolean)
            raw = [None if k else ("（已隐去）" if f.personal else text_of(v)) for v, k in zip(values, ok)]
        found[f"{f.name}__ok"] = pl.Series(ok, dtype=pl.Boolean)
        found[f"{f.name}__raw"] = pl.Series(raw, dtype=pl.String)
        distinct_columns.update({name: (series, f.name) for name, series in found.items()})
    rows = pl.DataFrame({name: pl.Series(values, dtype=pl.UInt32) for name, values in codes.items()})
    gathered = rows.select(pl.lit(series).gather(pl.col(code)).alias(name)
                           for name, (series, code) in distinct_columns.items())
    columns.update(gathered.to_dict())
    return pl.DataFrame([columns[name].alias(name) for name in schema])


def id_columns(field: str, ids: list[str | None], key: bytes) -> dict[str, "pl.Series"]:
    """For ID numbers as read (distinct, cleaned, None for blank): their keyed hashes, whether
    each is valid (GB 11643-1999) or an old 15-digit number, and the sex and birth year of a
    valid one. Polars expressions over the column, by the rules of id_number_valid, id_number_old
    and id_sex (the tests hold them to it); the hash is taken once per distinct number."""
    import polars as pl
    s = pl.col("id")
    filled = s.is_not_null() & (s != "")
    old = s.str.contains(r"^\d{15}$")
    digit = [s.str.slice(k, 1).cast(pl.Int64, strict=False) for k in range(17)]
    total = pl.sum_horizontal(d * w for d, w in zip(digit, _ID_WEIGHTS))
    check = (total % 11).replace_strict(dict(enumerate(_ID_CHECK)), return_dtype=pl.String, default=None)
    born = pl.concat_str([s.str.slice(6, 4), s.str.slice(10, 2), s.str.slice(12, 2)], separator="-")
    valid = (s.str.contains(r"^[0-9]{17}[0-9X]$") & (s.str.slice(6, 4) != "0000")
             & born.str.to_date("%Y-%m-%d", strict=False).is_not_null() & (check == s.str.slice(17, 1)))
    valid = pl.when(filled & ~old).then(valid)
    out = pl.DataFrame({"id": ids}, schema={"id": pl.String}).select(
        old=pl.when(filled).then(old),
        valid=valid,
        sex=pl.when(valid).then(pl.when(digit[16] % 2 == 1).then(pl.lit("男")).otherwise(pl.lit("女"))),
        birth_year=pl.when(valid).then(s.str.slice(6, 4).cast(pl.Int64, strict=False)),
        # Digits of another script (\d is every script's digits): by the functions themselves.
        other=s.str.contains(r"^\d{17}[\dX]$") & ~s.str.contains(r"^[0-9]{17}[0-9X]$"))
    if out["other"].any():
        fixed = {c: out[c].to_list() for c in ("valid", "sex", "birth_year")}
        for i in out["other"].arg_true().to_list():
            ok = id_number_valid(ids[i])
            fixed["valid"][i], fixed["sex"][i] = ok, id_sex(ids[i]) if ok else None
            fixed["birth_year"][i] = int(ids[i][6:10]) if ok else None
        out = out.with_columns(pl.Series(c, v, dtype=out[c].dtype) for c, v in fixed.items())
    return {field: pl.Series([pii.person_key(key, t) if t else None for t in ids], dtype=pl.String),
            f"{field}__valid": out["valid"], f"{field}__old": out["old"],
            "sex_from_id": out["sex"], "birth_year": out["birth_year"]}


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

