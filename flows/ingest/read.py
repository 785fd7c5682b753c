"""Reading: discover the month's files, recognise each sheet's form, find its header, convert.

Nothing here decides whether a value is acceptable (that is validation); reading only says what
the sender wrote, in the schema's types, and which cells could not be understood at all.
"""
from __future__ import annotations

import atexit
import codecs
import csv
import datetime as dt
import functools
import hashlib
import html
import io
import logging
import os
import pickle
import re
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import python_calamine

from flows.errors import ConfigError, FileRejected, printable
from flows.schemas import Field, Form, normalise_header
from flows.ingest.values import (BLANK_TEXTS, convert, credit_code_valid, id_number_old, id_number_valid, id_sex, is_blank,
                     is_filing_date_label, stated_month, text_of)
from flows import pii

log = logging.getLogger("shegong")

SPREADSHEET = {".xlsx", ".xlsm", ".xls", ".xlsb", ".ods"}
TEXT = {".csv", ".txt"}
HEAD_ROWS = 25  # title rows and headers are looked for in the first rows only
BLANK_RUN_LIMIT = 500  # a sheet ends after this many blank rows, however far its formatting goes
# What one file may cost, so that a broken or hostile file is refused instead of stopping the month.
# Generous: a real month's report is far below each.
MAX_FILE_BYTES = 64 * 1024 * 1024  # on disk
MAX_ROWS = 250_000  # rows of one sheet
MAX_COLUMNS = 256  # columns looked at: no form has more than 20, a stray far cell is not data
MAX_LINE_CHARS = 64 * 1024  # one line of a CSV
MAX_PARTS = 10_000  # parts of a zip container (.xlsx, .ods)
MAX_PART_BYTES = 256 * 1024 * 1024  # one part inflated (a sheet's XML: 100,000 roster rows are ~90 MB)
MAX_INFLATED_BYTES = 512 * 1024 * 1024  # all parts inflated
ZIPPED = {".xlsx", ".xlsm", ".xlsb", ".ods"}
# Footers name people and phones: they are never data, never stored, never quoted back.
_FOOTER = re.compile(r"^(填报人|填表人|制表人|审核人|审核|负责人|单位负责人|联系人|经办人|统计人|联系电话|电话|手机|"
                     r"填报日期|制表日期|注[:：]|说明[:：]|备注[:：])")
_TOTAL = re.compile(r"^(合计|总计|小计|累计)")
_FORM_NO = re.compile(r"SG-?0?([1-6])", re.I)
_INSTRUCTIONS = re.compile(r"^(填表说明|填报说明|说明|下拉选项)$")
_SENDER = re.compile(r"填报单位[:：]\s*([^\s:：]+)")
# Magic numbers: an .xlsx is a zip; an OLE container is an .xls, or an .xlsx with a password.
_ZIP, _OLE = b"PK\x03\x04", b"\xd0\xcf\x11\xe0"


@dataclass
class SheetRecord:
    path: str
    sheet: str
    form: str | None = None
    header_row: int | None = None
    data_rows: int = 0
    status: str = "read"  # read | skipped | rejected
    reason_zh: str | None = None
    reason_en: str | None = None
    sender: str | None = None  # 填报单位 as written in the sheet
    sender_code: str | None = None  # the registry unit it names, if one
    headers: dict[str, str] = field(default_factory=dict)  # field -> header text as sent


@dataclass
class FileRecord:
    path: str
    sha256: str
    size_bytes: int
    received_at: dt.datetime
    format: str
    status: str = "read"  # read | rejected
    reason_zh: str | None = None
    reason_en: str | None = None
    sender_code: str | None = None  # the unit that sent it (see senders.py)
    sheets: list[SheetRecord] = field(default_factory=list)


def discover(inbox: Path, period: str) -> list[Path]:
    """Every regular file under <inbox>/<period>/, sub-folders included, in a stable order."""
    root = inbox / period
    if not root.is_dir():
        return []
    return sorted((p for p in root.rglob("*") if (p.is_file() or p.is_symlink()) and not p.is_dir()
                   and not p.name.startswith((".", "~$"))),
                  key=lambda p: p.relative_to(root).as_posix())


# --- raw rows -----------------------------------------------------------------------------------

# A sheet as the reader gives it: its name, the Excel row number of its first row, its rows (merged
# ranges filled in), and how it is shown in the workbook.
VISIBLE, HIDDEN, VERY_HIDDEN = "visible", "hidden", "very hidden"
RawSheet = tuple[str, int, list[list], str]


def _sheets_of(path: Path, data: bytes) -> list[RawSheet]:
    """Each sheet of a file, as RawSheet."""
    ext = path.suffix.lower()
    if ext in TEXT:
        return [(path.stem, 1, _csv_rows(data), VISIBLE)]
    if ext in (".xlsx", ".xlsm") and data.startswith(_OLE):
        raise FileRejected("文件设置了打开密码，无法读取；请取消密码后重新报送",
                           "workbook is an encrypted OLE container (password-protected)")
    if ext in (".xlsx", ".xlsm", ".ods") and not data.startswith(_ZIP):
        raise FileRejected(f"文件扩展名是{ext}，但内容不是电子表格；请用 Excel 或 WPS 另存为 .xlsx 后重新报送",
                           f"{ext} file is not a zip container")
    return _READER.parse(ext, data)


def parse_workbook(ext: str, data: bytes) -> list[RawSheet]:
    """The sheets of a workbook, as _sheets_of gives them; runs in the reader process. Hidden
    sheets are listed but not parsed: they are not part of what the sender submits."""
    flagged = check_container(data) if ext in ZIPPED else set()
    try:
        wb = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        errors = _xlsx_error_cells(data, flagged) if ext in (".xlsx", ".xlsm") and flagged else {}
        shown = {m.name: _visibility(m.visible) for m in wb.sheets_metadata}
        ods_merged = _ods_merged_ranges(data) if ext == ".ods" else {}
        out, budget = [], MAX_MERGED_CELLS
        for name in wb.sheet_names:
            if shown.get(name, VISIBLE) != VISIBLE:
                out.append((name, 1, [], shown[name]))
                continue
            sheet = wb.get_sheet_by_name(name)
            top, left = sheet.start or (0, 0)
            rows = _bounded(sheet.iter_rows(), name)
            # Rows start at the sheet's first used cell; pad on the left so that indexes are columns.
            if left:
                rows = [[""] * left + r for r in rows]
            for (r, c), text in errors.get(name, {}).items():
                if 0 <= r - top < len(rows) and c < len(rows[r - top]):
                    rows[r - top][c] = text
            # calamine gives the merged ranges of .xlsx and .xls (None for .ods, read from its XML).
            merged = sheet.merged_cell_ranges if ext != ".ods" else ods_merged.get(name)
            budget = fill_merged(rows, merged or (), top, budget)
            out.append((name, top + 1, rows, VISIBLE))
        return out
    except FileRejected:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except MemoryError:
        raise FileRejected(_TOO_BIG_ZH, "spreadsheet reader ran out of memory") from None
    except BaseException as exc:  # noqa: BLE001 - calamine raises several types, and a Rust panic
        # arrives as pyo3's PanicException, a BaseException: a broken file must not stop the month.
        raise FileRejected("文件已损坏或不是有效的电子表格，无法打开；请重新导出后报送",
                           f"spreadsheet reader failed: {type(exc).__name__}: {exc}") from None


def _visibility(value) -> str:
    """How calamine says a sheet is shown (its enum is not hashable, so compared one by one)."""
    enum = python_calamine.SheetVisibleEnum
    return HIDDEN if value == enum.Hidden else VERY_HIDDEN if value == enum.VeryHidden else VISIBLE


MAX_MERGED_CELLS = 2_000_000  # cells of merged ranges filled in, per workbook: a real report merges a few hundred


def fill_merged(rows: list[list], ranges, top: int, budget: int) -> int:
    """Every cell of a merged range gets the range's value, as the sender sees it in each: a unit
    code merged down the rows of its unit is that unit's code on every row. `ranges` are
    ((first row, first column), (last row, last column)) in sheet coordinates; `budget` the
    cells the workbook may still fill (a range over a whole sheet is not a report), returned less
    what this sheet filled."""
    for (r0, c0), (r1, c1) in ranges:
        r0, r1 = r0 - top, min(r1 - top, len(rows) - 1)
        c1 = min(c1, MAX_COLUMNS - 1)
        if r0 < 0 or r0 >= len(rows) or c0 >= len(rows[r0]) or r1 < r0 or c1 < c0:
            continue
        value = rows[r0][c0]
        if value is None or value == "":
            continue
        budget -= (r1 - r0 + 1) * (c1 - c0 + 1)
        if budget < 0:
            raise FileRejected(_TOO_BIG_ZH, f"merged ranges cover more than {MAX_MERGED_CELLS} cells")
        for r in range(r0, r1 + 1):
            row = rows[r]
            if len(row) <= c1:
                row.extend([""] * (c1 + 1 - len(row)))
            for c in range(c0, c1 + 1):
                if row[c] is None or row[c] == "":
                    row[c] = value
    return budget


_ODS_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"


def _ods_merged_ranges(data: bytes) -> dict[str, list]:
    """Merged ranges of each sheet of an .ods (a cell spanning rows or columns), from its
    content.xml: calamine does not give them for this format. check_container has already
    refused DTDs and bounded the part's size."""
    import xml.etree.ElementTree as ET
    t = _ODS_TABLE
    out: dict[str, list] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)).open("content.xml") as fh:
            ranges, row, col, repeat, depth = None, 0, 0, 1, 0
            for event, el in ET.iterparse(fh, events=("start", "end")):
                tag = el.tag
                if event == "start":
                    if tag == t + "table":
                        depth += 1
                        if depth == 1:  # a sub-table's cells are not the sheet's
                            ranges, row = out.setdefault(el.get(t + "name", ""), []), 0
                    elif depth == 1 and tag == t + "table-row":
                        col, repeat = 0, int(el.get(t + "number-rows-repeated", "1"))
                    elif depth == 1 and tag in (t + "table-cell", t + "covered-table-cell"):
                        rows_spanned = int(el.get(t + "number-rows-spanned", "1"))
                        cols_spanned = int(el.get(t + "number-columns-spanned", "1"))
                        if tag == t + "table-cell" and (rows_spanned > 1 or cols_spanned > 1):
                            ranges.append(((row, col), (row + rows_spanned - 1, col + cols_spanned - 1)))
                        col += int(el.get(t + "number-columns-repeated", "1"))
                elif tag == t + "table":
                    depth -= 1
                elif depth == 1 and tag == t + "table-row":
                    row += repeat
                    el.clear()  # a sheet's rows are not kept: only the ranges are needed
    except (KeyError, ValueError, ET.ParseError, zipfile.BadZipFile):
        return {}  # calamine has read the file; without its ranges, merged cells stay as they are
    return out


_TOO_BIG_ZH = ("文件的表格范围过大或结构异常，读取所需内存超过上限，不予读取；请删除多余的行和列"
               "（或把数据复制到新文件）后重新报送")
_BOMB_ZH = ("文件解压后过大（超过 {mb} MB），不是正常的报表，不予读取；请检查文件，删除多余的行、列和图片后"
            "重新报送")
# A DOCTYPE or ENTITY declaration, in UTF-8 or UTF-16: Excel, WPS and LibreOffice never write one,
# and entities that expand into entities are how a few KB of XML become gigabytes.
_DTD = re.compile(rb"<\x00?!\x00?(?:[Dd]\x00?[Oo]\x00?[Cc]|[Ee]\x00?[Nn]\x00?[Tt])")


def check_container(data: bytes) -> set[str]:
    """Refuse a zip container (.xlsx, .ods) whose parts inflate beyond what any report needs, or
    whose XML declares a DTD, before the spreadsheet reader inflates and parses it. Sizes are
    measured by inflating, not taken from the headers, which a crafted file can state falsely.
    Returns the parts that hold a cell of error type (t="e"), noted on the way: only those are
    inflated again to find the error cells."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        parts = z.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError):
        raise FileRejected("文件已损坏或不是有效的电子表格，无法打开；请重新导出后报送",
                           "zip container cannot be opened") from None
    mb = MAX_INFLATED_BYTES // 1024 // 1024
    if len(parts) > MAX_PARTS:
        raise FileRejected(_BOMB_ZH.format(mb=mb), f"zip container has {len(parts)} parts")
    names = [p.filename for p in parts]
    if len(set(names)) < len(names):
        # Two parts of one name: which one a reader takes is up to the reader.
        raise FileRejected("文件已损坏或不是有效的电子表格，无法打开；请重新导出后报送",
                           "zip container has two parts of the same name")
    stated = sum(p.file_size for p in parts)
    big = max(parts, key=lambda p: p.file_size, default=None)
    if big is not None and (big.file_size > MAX_PART_BYTES or stated > MAX_INFLATED_BYTES):
        raise FileRejected(_BOMB_ZH.format(mb=mb), f"zip container states {stated} bytes inflated "
                                                   f"(part {big.filename!r}: {big.file_size} bytes)")
    inflated, flagged = 0, set()
    for part in parts:
        name = part.filename.lower()
        if part.is_dir() or not name.endswith((".xml", ".rels", ".vml", ".bin")):
            continue  # pictures and the like: the reader never opens them
        try:
            with z.open(part) as fh:
                tail = b""
                while chunk := fh.read(1 << 20):
                    inflated += len(chunk)
                    if inflated > MAX_INFLATED_BYTES:
                        raise FileRejected(_BOMB_ZH.format(mb=mb), f"zip container inflates beyond {mb} MB")
                    window = b"" if name.endswith(".bin") else tail + chunk
                    if _ERROR_TYPE in window:
                        flagged.add(part.filename)
                    if _DTD.search(window):
                        raise FileRejected(
                            "文件内含有 XML 文档类型定义（DOCTYPE/ENTITY），正常的 Excel、WPS 文件不会包含，"
                            "可能是被恶意构造的文件，不予读取；请用 Excel 或 WPS 另存为 .xlsx 后重新报送",
                            f"XML part {part.filename!r} declares a DOCTYPE or ENTITY (entity expansion)")
                    tail = chunk[-16:]
        except FileRejected:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError) as exc:
            # A bad CRC is also how a part longer than its header says shows itself.
            raise FileRejected("文件已损坏或不是有效的电子表格，无法打开；请重新导出后报送",
                               f"zip part {part.filename!r} cannot be inflated: {exc}") from None
    return flagged


# Formula text holds no raw '<' (XML escapes it), so [^<]* keeps this linear on any input.
_ERROR_CELL = re.compile(rb'<c r="([A-Z]+)(\d+)"[^>]*?t="e"[^>]*>(?:<f[^>]*>[^<]*</f>|<f[^>]*/>)?<v>([^<]*)</v>')


_ERROR_TYPE = b't="e"'


def _xlsx_error_cells(data: bytes, flagged: set[str]) -> dict[str, dict[tuple[int, int], str]]:
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
        if b't="e"' not in xml:
            continue
        cells = {}
        for col, row, value in _ERROR_CELL.findall(xml):
            c = 0
            for ch in col.decode():
                c = c * 26 + ord(ch) - 64
            cells[(int(row) - 1, c - 1)] = value.decode()
        out[html.unescape(name.decode())] = cells
    return out


def _bounded(rows, sheet: str) -> list[list]:
    """Rows up to the last non-blank one, MAX_COLUMNS wide at most, stopping after a long run of
    blank rows; a sheet of more than MAX_ROWS rows is refused."""
    out, blanks = [], 0
    for row in rows:
        row = list(row[:MAX_COLUMNS])
        if all(is_blank(c) for c in row):
            blanks += 1
            if blanks > BLANK_RUN_LIMIT:
                break
        else:
            blanks = 0
        out.append(row)
        if len(out) > MAX_ROWS + BLANK_RUN_LIMIT:
            break
    while out and all(is_blank(c) for c in out[-1]):
        out.pop()
    if len(out) > MAX_ROWS:
        raise FileRejected(f"工作表「{sheet}」超过 {MAX_ROWS:,} 行，超出单份报表的上限；请拆分为多个文件报送",
                           f"sheet {sheet!r} has more than {MAX_ROWS} rows")
    return out


# --- the reader process ---------------------------------------------------------------------------
# The spreadsheet reader (calamine, in Rust) allocates a sheet's whole used range at once, blanks
# included: one cell at XFD1048576 in a 2 KB .xlsx (or at column 65535 of an .xls, or a repeated
# cell of an .ods) asks for hundreds of GB, and the failed allocation aborts the process, which no
# `except` can catch. So workbooks are parsed in a child process with a memory limit and a
# deadline; when it dies or overruns, only its file is refused and the next file gets a new one.
READER_MEMORY = 1024 * 1024 * 1024  # address space of the reader process
READER_SECONDS = 60  # to parse one workbook
READER_RETIRE = 256 * 1024 * 1024  # a reader process this large after a workbook is replaced
_FRAME = struct.Struct("<Q")


class _Reader:
    """The reader process, started on first use and again after it dies; one request at a time."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def parse(self, ext: str, data: bytes) -> list[RawSheet]:
        request = pickle.dumps((ext, data), protocol=pickle.HIGHEST_PROTOCOL)
        with self.lock:
            proc = self._start()
            try:
                proc.stdin.write(_FRAME.pack(len(request)) + request)
                proc.stdin.flush()
                kind, *reply = pickle.loads(_receive(proc.stdout.fileno(), READER_SECONDS))
            except TimeoutError:
                self.close()
                raise FileRejected(f"文件读取超时（超过 {READER_SECONDS} 秒），结构异常，不予读取；"
                                   f"请用 Excel 或 WPS 另存为新的 .xlsx 文件后重新报送",
                                   f"spreadsheet reader took longer than {READER_SECONDS} s") from None
            except (EOFError, OSError):  # it died: killed at its memory limit, or crashed
                code = self.close()
                how = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
                raise FileRejected(_TOO_BIG_ZH, f"spreadsheet reader process ended ({how}) reading this file "
                                                f"(memory limit {READER_MEMORY // 1024 // 1024} MB)") from None
            if _resident(proc.pid) > READER_RETIRE:
                self.close()  # the memory a large workbook took is not kept for the rest of the run
        if kind == "rejected":
            raise FileRejected(*reply)
        return reply[0]

    def _start(self) -> subprocess.Popen:
        if self.proc is not None and self.proc.poll() is None:
            return self.proc
        # The key is not the reader's business.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHEGONG_ID_KEY")}
        self.proc = subprocess.Popen([sys.executable, "-m", "flows.ingest.read"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, bufsize=0)
        try:
            if _receive(self.proc.stdout.fileno(), 60) != b"ready":
                raise EOFError
        except (EOFError, TimeoutError, OSError):
            self.close()
            raise ConfigError(f"the spreadsheet reader process ({sys.executable} -m flows.ingest.read) did not "
                              f"start; check that the package is installed in this environment") from None
        return self.proc

    def close(self) -> int | None:
        """Stop the process (if any); its exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            return proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


def _resident(pid: int) -> int:
    """Resident memory of a process, in bytes (0 where /proc cannot tell)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _receive(fd: int, seconds: float) -> bytes:
    """One length-prefixed frame from fd, within `seconds`."""
    deadline = time.monotonic() + seconds

    def exactly(n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, min(n - len(buf), 1 << 20))
            if not chunk:
                raise EOFError
            buf += chunk
        return bytes(buf)
    return exactly(_FRAME.unpack(exactly(_FRAME.size))[0])


def _serve() -> None:
    """The reader process: parse each workbook it is sent, reply with its sheets or its refusal."""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (READER_MEMORY, READER_MEMORY))
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stdout carries the replies and nothing else

    def send(body: bytes) -> None:
        out.write(_FRAME.pack(len(body)) + body)
        out.flush()
    send(b"ready")
    while head := inp.read(_FRAME.size):
        ext, data = pickle.loads(inp.read(_FRAME.unpack(head)[0]))
        try:
            reply = pickle.dumps(("ok", parse_workbook(ext, data)), protocol=pickle.HIGHEST_PROTOCOL)
        except FileRejected as exc:
            reply = pickle.dumps(("rejected", exc.zh, exc.en))
        except MemoryError:
            reply = pickle.dumps(("rejected", _TOO_BIG_ZH, "spreadsheet reader ran out of memory"))
        del data
        send(reply)


_READER = _Reader()
atexit.register(_READER.close)


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with its BOM (Excel's "Unicode 文本", tab-separated),
    or GB18030 (a superset of GBK), never a lossy guess."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")  # the BOM says the byte order, and is dropped
        except UnicodeDecodeError:
            raise FileRejected("文本文件以 UTF-16（Unicode 文本）开头，但内容不完整或已损坏，无法读取；"
                               "请用 Excel 重新另存为 .xlsx 后报送", "utf-16 text with a BOM cannot be decoded") from None
    for enc in ("utf-8", "gb18030"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise FileRejected("CSV 文件的文字编码无法识别（应为 UTF-8、GBK 或 Unicode 文本）；请用 Excel 另存为 .xlsx 后重新报送",
                       "csv is neither utf-8 nor gb18030")


def _csv_rows(data: bytes) -> list[list]:
    text = decode_text(data)
    lines = text.splitlines()
    if max(map(len, lines), default=0) > MAX_LINE_CHARS:
        n = next(i for i, line in enumerate(lines, start=1) if len(line) > MAX_LINE_CHARS)
        raise FileRejected(f"CSV 文件第 {n} 行超过 {MAX_LINE_CHARS // 1024} KB，不是正常的报表行，不予读取；"
                           f"请用 Excel 另存为 .xlsx 后重新报送",
                           f"csv line {n} is longer than {MAX_LINE_CHARS} characters")
    del lines
    # A quoted field may span lines; no field may be longer than a line may.
    csv.field_size_limit(MAX_LINE_CHARS)
    try:
        return _bounded(csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text)), "CSV")
    except csv.Error as exc:
        raise FileRejected("CSV 文件格式有误（引号不成对或字段过长），无法读取；请用 Excel 另存为 .xlsx 后重新报送",
                           f"csv cannot be parsed: {exc}") from None


def _delimiter(text: str) -> str:
    """Comma, unless the first lines are plainly separated by semicolons or tabs (some regional
    Excel settings save CSV with ';')."""
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    counts = {d: sum(line.count(d) for line in lines) for d in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] > counts[","] else ","


# --- recognising the form and its header ----------------------------------------------------------

@dataclass
class Layout:
    form: Form
    header_start: int  # index into rows
    header_rows: int
    columns: dict[int, Field]  # column index -> field
    headers: dict[str, str]  # field name -> header text as sent

    @property
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


def _match(form: Form, labels: list[list[str]], norm) -> tuple[dict[int, Field], dict[str, str]]:
    words = form.match_words
    columns, headers = {}, {}
    for i, cands in enumerate(labels):
        for c in cands:
            f = words.get(norm(c))
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


def _hints(row: list, forms: dict[str, Form], norm, numbered: set[str], titled: set[str]) -> None:
    """Forms a title row names: by 表号 (SG-0n) into `numbered`, by a form's title into `titled`."""
    # Only text can name a form; folded, a blank cell is "" or a placeholder such as "-".
    for c in row:
        if not isinstance(c, str) or (t := norm(c)) in BLANK_TEXTS:
            continue
        m = _FORM_NO.search(t)
        if m and ("表号" in t or t.upper().startswith("SG")):
            numbered.add(f"SG-0{m.group(1)}")
        for form in forms.values():
            if any(normalise_header(title) in t for title in form.titles):
                titled.add(form.id)


def _best_at(cells: _Texts, r: int, forms: list[Form], norm) -> tuple[Layout, float] | None:
    """The best reading of row r as a header (one row, or two with the next) among `forms`, if
    one names enough of its form's fields to be a header at all."""
    best, best_score = None, 0.0
    if r >= len(cells):
        return None
    for form in forms:
        for two in (False, True):
            columns, headers = _match(form, _labels(cells, r, two), norm)
            if len(columns) < min(3, len(form.fields)):
                continue
            score = len(columns) - (0.5 if two else 0)  # prefer one header row on a tie
            if score > best_score:
                best, best_score = Layout(form, r, 2 if two else 1, columns, headers), score
    return (best, best_score) if best else None


def _field_words(forms: dict[str, Form]) -> frozenset[str]:
    """Every folded header word of every form."""
    return frozenset(w for form in forms.values() for w in form.match_words)


def _header_at(cells: _Texts, r: int, forms: dict[str, Form], hinted: set[str], norm,
               words: frozenset[str]) -> Layout | None:
    """The header starting at row r or the row below, if row r begins one. Forms named by the
    title rows above are preferred (several forms share header words); failing them, any form.
    The row below is looked at too: of a two-row header, its lower row may name more fields."""
    # A header names a field in its top row or the one below (title rows never do): any other
    # row is passed over without matching every form against it.
    if not any(t and norm(t) in words for row in (r, r + 1) if row < len(cells) for t in cells[row]):
        return None
    preferred = [forms[f] for f in sorted(hinted) if f in forms]
    for candidates in ([preferred, list(forms.values())] if preferred else [list(forms.values())]):
        here = _best_at(cells, r, candidates, norm)
        if here is None:
            continue
        below = _best_at(cells, r + 1, candidates, norm)
        return below[0] if below and below[1] > here[1] else here[0]
    return None


def recognise(rows: list[list], forms: dict[str, Form], start: int = 0, cells: _Texts | None = None,
              norm=None) -> Layout | None:
    """The form and header of the first table at or after row `start`, from the content: the
    first row (of the next HEAD_ROWS) whose header words name enough of a form's fields, the form
    decided by 表号 or title above it where several match."""
    # Every candidate form, row and header depth looks at the same few hundred head texts: each
    # is folded once per sheet.
    norm = norm or functools.cache(normalise_header)
    cells = cells or _Texts(rows)
    words = _field_words(forms)
    numbered, titled = set(), set()
    for r in range(start, min(len(rows), start + HEAD_ROWS)):
        layout = _header_at(cells, r, forms, numbered or titled, norm, words)
        if layout is not None:
            return layout
        _hints(rows[r], forms, norm, numbered, titled)
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
    norm = functools.cache(normalise_header)
    cells = _Texts(rows)
    first = recognise(rows, forms, 0, cells, norm)
    if first is None:
        return []
    tables = [Table(first, rows[:first.header_start])]
    words = _field_words(forms)
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
        if len(values) == 1 and _SECTION.match(re.sub(r"\s+", "", next(iter(values)))):
            i += 1
            continue
        if len({norm(t) for t in values} & words) >= 3:
            numbered, titled = set(), set()
            for j in pending:
                _hints(rows[j], forms, norm, numbered, titled)
            found = _header_at(cells, i, forms, numbered or titled, norm, words)
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


# --- one file ---------------------------------------------------------------------------------

def _stated_period(title_rows: list[list]) -> str | None:
    """The month the title rows state, if they state one (see values.stated_month); the date
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


def _sender(title_rows: list[list]) -> str | None:
    for row in title_rows:
        for c in row:
            m = _SENDER.search(text_of(c) or "")
            if m:
                return m.group(1)
    return None


def _is_footer_or_total(row: list, layout: Layout) -> bool:
    first = next((text_of(c) for c in row if not is_blank(c)), "") or ""
    first = re.sub(r"\s+", "", first)
    if _FOOTER.match(first):
        return True
    if _TOTAL.match(first):
        return True
    code_col = layout.code_column
    code = "" if code_col is None or code_col >= len(row) else re.sub(r"\s+", "", text_of(row[code_col]) or "")
    return not code.isdigit() and any(_TOTAL.match(re.sub(r"\s+", "", text_of(c) or "")) for c in row[:4])


_SCIENTIFIC = re.compile(r"^\d(\.\d+)?E\+\d+$", re.I)
_TICKS = {"√", "✓", "✔"}


def _refusal(layout: Layout, stated: str | None, data: list[list], period: str) -> FileRejected | None:
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


def _lost_codes(layout: Layout, data: list[list]) -> str | None:
    """The header of a code column that Excel turned into 5.10402E+11, which no one can undo."""
    for i, f in layout.columns.items():
        if f.type in ("code", "id_number", "credit_code"):
            for row in data:
                if i < len(row) and isinstance(row[i], str) and _SCIENTIFIC.match(row[i].strip()):
                    return layout.headers[f.name]
    return None


def _checkbox_columns(layout: Layout, data: list[list]) -> set[int]:
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


def _columns(layout: Layout, checkbox: set[int] = frozenset()) -> list[_Column]:
    return [_Column(i, f, i in checkbox) for i, f in layout.columns.items()]


def _convert_row(columns: list[_Column], row: list, key: bytes) -> dict:
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


def _too_large(size: int) -> FileRejected:
    mb = 1024 * 1024
    return FileRejected(f"文件过大（{size / mb:.0f} MB，上限 {MAX_FILE_BYTES // mb} MB），不是正常的月报表，不予读取；"
                        f"请只报送本月报表，必要时拆分为多个文件",
                        f"file of {size} bytes is larger than {MAX_FILE_BYTES} bytes")


def _link_refusal(path: Path, root: Path) -> FileRejected | None:
    """Why a symbolic link in the inbox is not followed, if it is not."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):  # dangling, or a loop
        return FileRejected("文件是无法打开的链接（指向不存在的文件或循环链接），不予读取；请直接报送文件本身",
                            "symbolic link that cannot be followed (dangling or a loop)")
    if not target.is_relative_to(root.resolve()):
        # A link out of the inbox would let a sender's folder read any file of this machine.
        return FileRejected("文件是指向收件目录之外的链接，不予读取；请直接报送文件本身",
                            "symbolic link pointing outside the inbox")
    if not target.is_file():  # a pipe or a device would block or never end
        return FileRejected("文件是指向非普通文件的链接，不予读取；请直接报送文件本身",
                            "symbolic link to something other than a regular file")
    return None


def _refused_unread(rel: str, size: int, mtime: float, fmt: str, refusal: FileRejected
                    ) -> tuple[FileRecord, dict[str, list[dict]]]:
    """The record of a file refused before its bytes were read (a link not followed, a file too large)."""
    record = FileRecord(path=rel, sha256="", size_bytes=size,
                        received_at=dt.datetime.fromtimestamp(mtime, dt.UTC).replace(tzinfo=None), format=fmt,
                        status="rejected", reason_zh=refusal.zh, reason_en=refusal.en)
    log.warning("file rejected: %s: %s", printable(rel), record.reason_en)
    return record, {}


def file_time(path: Path) -> dt.datetime:
    """When a file was received: its modification time, as naive UTC."""
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).replace(tzinfo=None)


def read_file(path: Path, root: Path, period: str, forms: dict[str, Form], key: bytes
              ) -> tuple[FileRecord, dict[str, list[dict]]]:
    """Read one file: its record (always) and its rows per form (when it could be read)."""
    rel = path.relative_to(root).as_posix()
    if path.is_symlink() and (refusal := _link_refusal(path, root)):
        return _refused_unread(rel, 0, path.lstat().st_mtime, "link", refusal)
    stat = path.stat()
    if stat.st_size > MAX_FILE_BYTES:  # not read at all: its bytes are never held
        return _refused_unread(rel, stat.st_size, stat.st_mtime, path.suffix.lower().lstrip(".") or "none",
                               _too_large(stat.st_size))
    data = path.read_bytes()
    record = FileRecord(path=rel, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                        received_at=file_time(path), format=path.suffix.lower().lstrip(".") or "none")
    rows_by_form: dict[str, list[dict]] = {}
    try:
        if not data:
            raise FileRejected("空文件（0 字节）；请重新报送", "empty file")
        if path.suffix.lower() not in SPREADSHEET | TEXT:
            raise FileRejected(f"不是电子表格（{path.suffix or '无扩展名'}）；请报送 .xlsx、.xls、.ods 或 .csv 文件",
                               f"not a spreadsheet extension: {path.suffix!r}")
        sheets = _sheets_of(path, data)
    except FileRejected as exc:
        record.status, record.reason_zh, record.reason_en = "rejected", exc.zh, exc.en
        log.warning("file rejected: %s: %s", printable(rel), printable(exc.en))
        return record, rows_by_form

    for name, first_row, rows, shown in sheets:
        # The template's own instruction and list sheets (the list sheet is hidden): expected,
        # not a problem to report.
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
            record.sheets.append(_read_table(table, rows, top_titles, rel, name, first_row, period, key,
                                             record.received_at, rows_by_form))
    return record, rows_by_form


HIDDEN_ZH = {
    HIDDEN: "隐藏的工作表，不属于报送内容，未读取；如其中是本月数据，请取消隐藏（或复制到可见的工作表）后重新报送",
    VERY_HIDDEN: "深度隐藏的工作表（在 Excel 中无法直接取消隐藏），不属于报送内容，未读取；如其中是本月数据，"
                 "请复制到可见的工作表后重新报送",
}


def _read_table(table: Table, rows: list[list], top_titles: list[list], rel: str, name: str, first_row: int,
                period: str, key: bytes, received_at: dt.datetime, rows_by_form: dict[str, list[dict]]
                ) -> SheetRecord:
    """One table of a sheet: its record, and its rows converted into rows_by_form."""
    layout, form = table.layout, table.layout.form
    header_row = first_row + layout.header_start
    sheet = SheetRecord(path=rel, sheet=name, form=form.id, header_row=header_row, headers=layout.headers)
    # A table's own titles say its month and sender; failing them, the sheet's top titles do.
    sheet.sender = _sender(table.titles) or _sender(top_titles)
    data = [rows[i] for i in table.rows]
    stated = _stated_period(table.titles) or _stated_period(top_titles)
    refusal = _refusal(layout, stated, data, period)
    if refusal:
        sheet.status, sheet.reason_zh, sheet.reason_en = "rejected", refusal.zh, refusal.en
        log.warning("sheet rejected: %s [%s]: %s", printable(rel), printable(name), printable(refusal.en))
        return sheet
    columns = _columns(layout, _checkbox_columns(layout, data))
    out = rows_by_form.setdefault(form.id, [])
    for i, row in zip(table.rows, data):
        if all(is_blank(row[c]) for c in layout.columns if c < len(row)):
            continue
        if _is_footer_or_total(row, layout):
            continue
        values = _convert_row(columns, row, key)
        values.update(_file=rel, _sheet=name, _row=first_row + i, _header_row=header_row, _received_at=received_at)
        out.append(values)
        sheet.data_rows += 1
    return sheet


# --- what decides what a file yields ---------------------------------------------------------------
# Besides its bytes: the form schemas (titles, header words, aliases, types, rules), this code and
# the libraries that decode cells, the registry, and the hashing key. The rerun cache takes a
# file's rows from the month's last run only when every one of them is the same (load.read_cache).
# Paths under the package folder (flows/).
READING_CODE = ("ingest/read.py", "ingest/values.py", "schemas.py", "pii.py", "ingest/readpool.py")
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


if __name__ == "__main__":  # python -m flows.ingest.read: the reader process
    _serve()
