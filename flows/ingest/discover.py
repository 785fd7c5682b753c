"""Discovery: the month's files in the inbox, links that are not followed, and the records that
say what became of each file and sheet."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

from flows.errors import FileRejected, printable

log = logging.getLogger("shegong")

SPREADSHEET = {".xlsx", ".xlsm", ".xls", ".xlsb", ".ods"}
TEXT = {".csv", ".txt"}


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


def link_refusal(path: Path, root: Path) -> FileRejected | None:
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


def refused_unread(rel: str, size: int, mtime: float, fmt: str, refusal: FileRejected
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

