"""Guards: what one file may cost, so that a broken or hostile file is refused instead of stopping
the month. Sizes on disk, containers that inflate too far or declare a DTD, sheets too long or
too wide, CSV lines too long."""
from __future__ import annotations

import io
import re
import zipfile
import zlib

from flows.errors import FileRejected
from flows.ingest.convert import is_blank

BLANK_RUN_LIMIT = 500  # a sheet ends after this many blank rows, however far its formatting goes
# Generous: a real month's report is far below each.
MAX_FILE_BYTES = 64 * 1024 * 1024  # on disk
MAX_ROWS = 250_000  # rows of one sheet
MAX_COLUMNS = 256  # columns looked at: no form has more than 20, a stray far cell is not data
MAX_LINE_CHARS = 64 * 1024  # one line of a CSV
MAX_PARTS = 10_000  # parts of a zip container (.xlsx, .ods)
MAX_PART_BYTES = 256 * 1024 * 1024  # one part inflated (a sheet's XML: 100,000 roster rows are ~90 MB)
MAX_INFLATED_BYTES = 512 * 1024 * 1024  # all parts inflated
ZIPPED = {".xlsx", ".xlsm", ".xlsb", ".ods"}
MAX_MERGED_CELLS = 2_000_000  # cells of merged ranges filled in, per workbook: a real report merges a few hundred

TOO_BIG_ZH = ("文件的表格范围过大或结构异常，读取所需内存超过上限，不予读取；请删除多余的行和列"
               "（或把数据复制到新文件）后重新报送")
_BOMB_ZH = ("文件解压后过大（超过 {mb} MB），不是正常的报表，不予读取；请检查文件，删除多余的行、列和图片后"
            "重新报送")
# Magic numbers: an .xlsx is a zip; an OLE container is an .xls, or an .xlsx with a password.
_ZIP, _OLE = b"PK\x03\x04", b"\xd0\xcf\x11\xe0"


def check_magic(ext: str, data: bytes) -> None:
    """Refuse a workbook whose bytes are not of the container its extension says."""
    if ext in (".xlsx", ".xlsm") and data.startswith(_OLE):
        raise FileRejected("文件设置了打开密码，无法读取；请取消密码后重新报送",
                           "workbook is an encrypted OLE container (password-protected)")
    if ext in (".xlsx", ".xlsm", ".ods") and not data.startswith(_ZIP):
        raise FileRejected(f"文件扩展名是{ext}，但内容不是电子表格；请用 Excel 或 WPS 另存为 .xlsx 后重新报送",
                           f"{ext} file is not a zip container")


# A DOCTYPE or ENTITY declaration, in UTF-8 or UTF-16: Excel, WPS and LibreOffice never write one,
# and entities that expand into entities are how a few KB of XML become gigabytes.
_DTD = re.compile(rb"<\x00?!\x00?(?:[Dd]\x00?[Oo]\x00?[Cc]|[Ee]\x00?[Nn]\x00?[Tt])")

# A cell of error type (#DIV/0!, #N/A) in a sheet's XML: noted while inflating (see layout.error_cells).
ERROR_TYPE = b't="e"'


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
                    if ERROR_TYPE in window:
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


def bounded(rows, sheet: str) -> list[list]:
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


def too_large(size: int) -> FileRejected:
    mb = 1024 * 1024
    return FileRejected(f"文件过大（{size / mb:.0f} MB，上限 {MAX_FILE_BYTES // mb} MB），不是正常的月报表，不予读取；"
                        f"请只报送本月报表，必要时拆分为多个文件",
                        f"file of {size} bytes is larger than {MAX_FILE_BYTES} bytes")


def check_lines(text: str) -> None:
    """Refuse a CSV with a line longer than any report row."""
    lines = text.splitlines()
    if max(map(len, lines), default=0) > MAX_LINE_CHARS:
        n = next(i for i, line in enumerate(lines, start=1) if len(line) > MAX_LINE_CHARS)
        raise FileRejected(f"CSV 文件第 {n} 行超过 {MAX_LINE_CHARS // 1024} KB，不是正常的报表行，不予读取；"
                           f"请用 Excel 另存为 .xlsx 后重新报送",
                           f"csv line {n} is longer than {MAX_LINE_CHARS} characters")
