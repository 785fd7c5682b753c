"""Cell values as offices type them, converted to the types of the form schemas.

Every converter returns `(value, ok)`: `value` is None for a blank cell (blank is "not
reported", never 0), and `ok` is False when a non-blank cell could not be understood.
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata

from flows.schemas import Field

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


def _fold(s: str) -> str:
    """Full-width digits and letters to ASCII, no spaces."""
    return _SPACES.sub("", unicodedata.normalize("NFKC", s))


def is_blank(value: object) -> bool:
    if isinstance(value, (int, float)):  # a number is never blank (and this is asked of every cell)
        return False
    t = text_of(value)
    return t is None or _fold(t) in BLANK_TEXTS


def to_code(value: object):
    if isinstance(value, float):
        # A code Excel stored as a number is exact while it has at most 15 digits.
        return (str(int(value)), True) if value.is_integer() and 0 < value < 1e15 else (None, False)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value), True
    s = _fold(str(value))
    return (s, True) if s.isdigit() else (None, False)


def to_text(value: object):
    return text_of(value), True


def _number_text(value: object) -> str | None:
    s = _fold(str(value)).replace(",", "")
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
    s = _fold(text_of(value) or "").upper()
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
    s = _fold(str(value))
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
    n, ok = to_integer(re.sub(r"年$", "", _fold(str(value))) if isinstance(value, str) else value)
    if ok and 1949 <= n <= 2100:
        return n, True
    return None, False


def to_enum(value: object):
    return _fold(text_of(value) or ""), True


def to_multi(value: object, allowed: tuple):
    items = [p for p in _MULTI_SEP.split(_fold(text_of(value) or "")) if p]
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
    if isinstance(value, str) and _fold(value) in _EXCEL_ERRORS:
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
    text = _FILING_DATE_WITH_DATE.sub("", _SPACES.sub("", unicodedata.normalize("NFKC", value)))
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
    text = _SPACES.sub("", unicodedata.normalize("NFKC", value))
    return any(m.end() == len(text) for m in _FILING_DATE.finditer(text))
