"""A file's bytes to its raw sheets, safely. Workbooks are parsed by a reader process that a
hostile file can kill without harm (memory limit, deadline), kept alive across files; text files
are decoded here. The month's files are read on every core by a pool of worker processes, each
with its own reader process.
"""
from __future__ import annotations

import atexit
import codecs
import csv
import hashlib
import io
import logging
import multiprocessing
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import python_calamine

from flows import pii, procs
from flows.config import load_settings
from flows.errors import ConfigError, FileRejected
from flows.ingest.convert import form_frame, rows_frame
from flows.ingest.discover import TEXT, FileRecord
from flows.ingest.guard import (MAX_COLUMNS, MAX_MERGED_CELLS, TOO_BIG_ZH, ZIPPED, bounded, check_container,
                                check_lines, check_magic, MAX_LINE_CHARS)
from flows.ingest.layout import error_cells
from flows.schemas import load_forms

if TYPE_CHECKING:
    import polars as pl

# --- raw rows -----------------------------------------------------------------------------------

# A sheet as the reader gives it: its name, the Excel row number of its first row, its rows (merged
# ranges filled in), and how it is shown in the workbook.
VISIBLE, HIDDEN, VERY_HIDDEN = "visible", "hidden", "very hidden"
RawSheet = tuple[str, int, list[list], str]


def sheets_of(path: Path, data: bytes) -> list[RawSheet]:
    """Each sheet of a file, as RawSheet."""
    ext = path.suffix.lower()
    if ext in TEXT:
        return [(path.stem, 1, _csv_rows(data), VISIBLE)]
    check_magic(ext, data)
    return _READER.parse(ext, data)


def parse_workbook(ext: str, data: bytes) -> list[RawSheet]:
    """The sheets of a workbook, as sheets_of gives them; runs in the reader process. Hidden
    sheets are listed but not parsed: they are not part of what the sender submits."""
    flagged = check_container(data) if ext in ZIPPED else set()
    try:
        wb = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        errors = error_cells(data, flagged) if ext in (".xlsx", ".xlsm") and flagged else {}
        shown = {m.name: _visibility(m.visible) for m in wb.sheets_metadata}
        ods_merged = _ods_merged_ranges(data) if ext == ".ods" else {}
        out, budget = [], MAX_MERGED_CELLS
        for name in wb.sheet_names:
            if shown.get(name, VISIBLE) != VISIBLE:
                out.append((name, 1, [], shown[name]))
                continue
            sheet = wb.get_sheet_by_name(name)
            top, left = sheet.start or (0, 0)
            rows = bounded(sheet.iter_rows(), name)
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
        raise FileRejected(TOO_BIG_ZH, "spreadsheet reader ran out of memory") from None
    except BaseException as exc:  # noqa: BLE001 - calamine raises several types, and a Rust panic
        # arrives as pyo3's PanicException, a BaseException: a broken file must not stop the month.
        raise FileRejected("文件已损坏或不是有效的电子表格，无法打开；请重新导出后报送",
                           f"spreadsheet reader failed: {type(exc).__name__}: {exc}") from None


def _visibility(value) -> str:
    """How calamine says a sheet is shown (its enum is not hashable, so compared one by one)."""
    enum = python_calamine.SheetVisibleEnum
    return HIDDEN if value == enum.Hidden else VERY_HIDDEN if value == enum.VeryHidden else VISIBLE


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
            raise FileRejected(TOO_BIG_ZH, f"merged ranges cover more than {MAX_MERGED_CELLS} cells")
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
                _write_all(proc.stdin, _FRAME.pack(len(request)) + request)
                kind, *reply = pickle.loads(_receive(proc.stdout.fileno(), READER_SECONDS))
            except TimeoutError:
                self.close()
                raise FileRejected(f"文件读取超时（超过 {READER_SECONDS} 秒），结构异常，不予读取；"
                                   f"请用 Excel 或 WPS 另存为新的 .xlsx 文件后重新报送",
                                   f"spreadsheet reader took longer than {READER_SECONDS} s") from None
            except (EOFError, OSError):  # it died: killed at its memory limit, or crashed
                code = self.close()
                how = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
                raise FileRejected(TOO_BIG_ZH, f"spreadsheet reader process ended ({how}) reading this file "
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
        self.proc = subprocess.Popen([sys.executable, "-m", "flows.ingest.sandbox"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, bufsize=0)
        try:
            if _receive(self.proc.stdout.fileno(), 60) != b"ready":
                raise EOFError
        except (EOFError, TimeoutError, OSError):
            self.close()
            raise ConfigError(f"the spreadsheet reader process ({sys.executable} -m flows.ingest.sandbox) did not "
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


def _write_all(pipe, data: bytes) -> None:
    """Every byte of `data` into the reader's pipe, unbuffered: a write may take only part of a
    workbook when the pipe is full and a signal comes (a profiler attaching, say); the reader,
    still waiting for the rest, would otherwise let the file time out as unreadable."""
    view = memoryview(data)
    while view:
        view = view[pipe.write(view) or 0:]


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
            reply = pickle.dumps(("rejected", TOO_BIG_ZH, "spreadsheet reader ran out of memory"))
        del data
        send(reply)


_READER = _Reader()
atexit.register(_READER.close)


# --- text files ---------------------------------------------------------------------------------------

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
    check_lines(text)
    # A quoted field may span lines; no field may be longer than a line may.
    csv.field_size_limit(MAX_LINE_CHARS)
    try:
        return bounded(csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text)), "CSV")
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


# --- the pool ---------------------------------------------------------------------------------------
# Files parsed at once by one worker of the pool: at least CHUNK_FILES, and up to CHUNK_FILES_MAX
# while each worker still gets 8 chunks, so that a slow file does not leave the other worker idle
# at the end. Cells are converted by column once per chunk, at a fixed cost per form: a province's
# month goes in chunks of 64 files, a city's in chunks of 8.
CHUNK_FILES, CHUNK_FILES_MAX = 8, 64
# Files per Prefect task on a distributed runner. Submitting a task costs the flow's process about
# 0.3 s (prefect-dask serialises the run's context, Dask tokenizes the task): 66 tasks of 64 files
# made a province month 10 s slower than 17 tasks of 256, which still spread over the workers.
TASK_FILES = 256
POOL_MIN_FILES = 24  # fewer files than this are parsed in this process: a pool costs ~1 s to start


Parsed = tuple[list[FileRecord], dict[str, "pl.DataFrame"]]


def parse_files(paths: list[Path], root: Path, period: str, done: Callable[[int], None] | None = None) -> Parsed:
    """Each file parsed: the files' records, in order, and their rows as a frame per form (in
    file order). Runs in a pool worker, a Dask worker, or this process; frames travel back, made
    here, on the worker's core. `done(n)` hears of files parsed (this process)."""
    from flows.ingest.read import read_tables  # the stage's entry, which reads through this module
    forms = load_forms(load_settings().schemas)
    key = pii.load_key()  # each process loads it: it never travels with the work
    records, tables = [], {form_id: [] for form_id in forms}
    for path in paths:
        # read_tables reads the bytes itself, after its checks of links and size: a file over the
        # size limit is never held in memory.
        record, by_form = read_tables(path, root, period, forms)
        if done:
            done(1)
        records.append(record)
        for form_id, found in by_form.items():
            tables[form_id].extend(found)
    # Converted once per form for all the files: conversion is by column, and its cost is per column.
    return records, {form_id: form_frame(forms[form_id], found, key) for form_id, found in tables.items()}


def combine(parts: list[Parsed]) -> Parsed:
    """Parts parsed separately, as one: records and rows in the parts' order."""
    import polars as pl
    records = [r for part_records, _ in parts for r in part_records]
    forms = load_forms(load_settings().schemas)
    frames = {form_id: pl.concat([frames[form_id] for _, frames in parts]) if parts
              else rows_frame(form, []) for form_id, form in forms.items()}
    return records, frames


def parse_in_pool(paths: list[Path], root: Path, period: str, workers: int | None = None,
                  done: Callable[[int], None] | None = None) -> Parsed:
    """The files parsed on every core, results in the order of `paths` (the same as one process
    gives: the rerun cache and the newest-file-wins rule depend on that order); `done(n)` hears
    of each chunk of n files parsed."""
    workers = workers or min(os.cpu_count() or 1, max(1, len(paths) // CHUNK_FILES))
    if workers < 2 or len(paths) < POOL_MIN_FILES:
        return parse_files(paths, root, period, done)
    size = min(CHUNK_FILES_MAX, max(CHUNK_FILES, len(paths) // (workers * 8)))
    chunks = [paths[i:i + size] for i in range(0, len(paths), size)]
    pool = _pool(workers)
    try:
        parts = []
        for chunk, part in zip(chunks, pool.map(parse_files, chunks, [root] * len(chunks), [period] * len(chunks))):
            parts.append(part)
            if done:
                done(len(chunk))
        return combine(parts)
    except BaseException:
        # A worker that died, or a run stopped mid-month: the next month gets new workers.
        close_pool()
        raise


def map_in_pool(fn: Callable, batches: list) -> list:
    """`fn` over each batch on the read pool's processes (the month's pool when it is still up,
    else one started for it), results in the order of `batches`: for pure work of the month's
    own (the senders' feedback workbooks, a large report) that would keep one core busy while the
    other waits.
    `fn` must be a module-level function, its batches and results picklable."""
    pool = _pool(os.cpu_count() or 1)
    try:
        return list(pool.map(fn, batches))
    except BaseException:
        close_pool()
        raise


def pool_up() -> bool:
    """Whether the read pool `map_in_pool` would use is up already (the month read its files on it,
    or an earlier month of this process did): work sent to it then costs its pickling only, not
    the ~1 s of a pool's start, so a month's outputs of any size are made on it, beside this
    process's own (a city month's senders' lists and report: ~0.8 s of a core)."""
    with _POOL_LOCK:
        return _POOL is not None and _POOL[0] == _terms(os.cpu_count() or 1, dict(os.environ), os.getcwd(),
                                                        _log_setup())


# The pool, kept for the next month of this process (a backfill, make demo): starting it, its
# workers and their reader processes, cost a month about 1 s. Kept only while everything that
# decides what a worker does is as it was when it started (`terms` in _pool).
_POOL: tuple[str, ProcessPoolExecutor] | None = None
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ProcessPoolExecutor:
    global _POOL
    env, cwd, logs = dict(os.environ), os.getcwd(), _log_setup()
    terms = _terms(workers, env, cwd, logs)
    with _POOL_LOCK:
        if _POOL is not None and _POOL[0] == terms:
            return _POOL[1]
        _close_pool_locked()
        # forkserver, not fork: this process runs Prefect's threads, which a fork would copy mid-flight.
        # The server imports this module once; each worker forked from it starts with it loaded.
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_preload())
        # The server keeps the environment and folder it started with: each worker takes this
        # process's own, so settings, key and log level are the run's.
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_like,
                                   initargs=(*logs, env, cwd, (os.getpid(), procs.started(os.getpid()))))
        _POOL = (terms, pool)
        return pool


def _terms(workers: int, env: dict, cwd: str, logs: tuple) -> str:
    """Everything that decides what a pool's worker does, as a digest."""
    return hashlib.sha256(repr((workers, _preload(), logs, sorted(env.items()), cwd)).encode()).hexdigest()


def close_pool() -> None:
    """End the kept pool's workers (and so their reader processes), if there is one."""
    with _POOL_LOCK:
        _close_pool_locked()


def _close_pool_locked() -> None:
    global _POOL
    if _POOL is not None:
        _, pool = _POOL
        _POOL = None
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(close_pool)


def _preload() -> list[str]:
    """What the pool's server imports before forking the workers: this module, and the package of
    this process's main module. Each worker runs the main module again (multiprocessing does, so
    that what it defines can be unpickled); in a flow run that Prefect started (served, or by a
    worker) that is `prefect.engine`, and importing the `prefect` package it needs took seconds in
    each worker. Imported once in the server, it is loaded in every worker forked from it."""
    name = getattr(sys.modules["__main__"].__spec__, "name", None) or ""  # None: a script (`shegong`)
    package = name.rpartition(".")[0]
    # The package, not the module: runpy warns when the module it runs is imported already. A
    # package's __main__ (python -m pytest) is never run by workers.
    mine = [__name__, "flows.ingest.read"]
    return mine + [package] if package and not name.endswith("__main__") else mine


def _log_setup() -> tuple[int, list[tuple[str | None, str | None]]]:
    """The level and stderr formats of the "shegong" logger here, for the workers to copy."""
    log = logging.getLogger("shegong")
    formats = [(h.formatter._fmt if h.formatter else None, h.formatter.datefmt if h.formatter else None)
               for h in log.handlers if isinstance(h, logging.StreamHandler) and h.stream is sys.stderr]
    return log.level, formats


ORPHAN_CHECK = 1.0  # seconds between a worker's looks at the process whose pool it serves


def _end_with(owner: tuple[int, str | None]) -> None:
    """End this worker once the process whose pool it is has gone. Its workers are the
    forkserver's children, and each holds the pool's queues open, so none of them sees that
    process die (killed with SIGKILL, or by the memory limit): they, the forkserver and their
    reader processes would wait for work forever."""
    pid, started = owner
    while procs.started(pid) == started is not None:
        time.sleep(ORPHAN_CHECK)
    os._exit(0)


def _worker_like(level: int, formats: list[tuple[str | None, str | None]], env: dict[str, str], cwd: str,
                 owner: tuple[int, str | None]) -> None:
    """A worker set up as its parent: environment, folder, and the "shegong" logger ("file
    rejected" warnings read the same either way); it ends when `owner` (pid, start time) does."""
    threading.Thread(target=_end_with, args=(owner,), name="shegong-owner", daemon=True).start()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    log = logging.getLogger("shegong")
    log.setLevel(level)
    for fmt, datefmt in formats:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(fmt, datefmt))
        log.addHandler(handler)
    if formats:
        log.propagate = False


if __name__ == "__main__":  # python -m flows.ingest.sandbox: the reader process
    _serve()
