"""Publishing: a run builds the new warehouse beside the published one and swaps it in.

DuckDB allows one writer or many read-only processes per file, so a run never opens the
published file for writing: it copies it, builds the month in the copy, and `os.replace`s it.
An analyst's open read-only connection keeps reading the old file (its inode) undisturbed and
never sees a half-built month; the next connection sees the new one.

An analyst who opens the file read-write (the default of `duckdb.connect` and of the duckdb CLI)
writes their changes to a write-ahead log beside it (`<db>.wal`) until they close. Swapped in
under them, the new file would lose those changes, and DuckDB 2.0 refuses to open a file whose
.wal belongs to the file it replaced. So a run holds a read lock on the published file from its
start to its end, the kind DuckDB takes for a read-only connection (fcntl, whole file): read-only
connections come and go as before, a read-write open fails at once with DuckDB's "Could not set
lock on file", and a run does not start while the file is held read-write or a .wal lies beside
it. Before the swap the run takes the same lock on the built file, so that the published file
stays held under its new inode until the run ends (feedback and reports read it). The lock is
an open file description lock (F_OFD_SETLK): a plain POSIX lock would be dropped as soon as this
process closes any other descriptor of the file, as a copy or a DuckDB connection does.

`--db` may be a link: everything here works on the real file, so that the link stays a link and
two links to one file share its lock.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import logging
import os
import shutil
import struct
import tempfile
import threading
import time
from pathlib import Path

import duckdb

from flows.warehouse import faults
from flows.errors import Interrupted, RunLockedError, StorageError, WarehouseOpenError

log = logging.getLogger("shegong")
# Free space a run needs beside the published file, besides the copy it builds in: the month's
# rows, DuckDB's write-ahead log and checkpoint. Half the warehouse, and never less than this.
MIN_HEADROOM = 64 * 1024 * 1024
# What each failure to write means for whoever runs the month.
_STORAGE = {errno.ENOSPC: "its disk is full", errno.EDQUOT: "the disk quota is used up",
            errno.EROFS: "it is on a read-only file system", errno.EACCES: "this user may not write in it",
            errno.EPERM: "this user may not write in it"}
# struct flock for fcntl (Linux, 64-bit): type, whence, start, length (0: to the end), pid.
_FLOCK = struct.Struct("hhqqi4x")

# This process's runs, for the clean-up of an interrupted one (flows/stopping.py): the copies being
# built, the read locks held, and the swap under way. `_guard` orders a swap against an interrupt.
_guard = threading.Lock()
_building: set[Path] = set()
_held: dict[Path, "_Held"] = {}
_swapping: list[tuple[Path, tuple]] = []  # (warehouse, identity of the file swapped in)
_stopped = False


def published_path(db: Path) -> Path:
    """The file a run publishes: `db` with its links resolved."""
    return Path(os.path.realpath(db))


@contextlib.contextmanager
def run_lock(db: Path):
    """One run per warehouse at a time: a second one stops at once with a clear message. While
    the block runs, the published file is held read-only (see the module docstring)."""
    db = published_path(db)
    lock_path = db.with_name(db.name + ".lock")
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise storage_error(db, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(f"another run is writing {db} (lock {lock_path} is held); "
                                 f"wait for it to finish and run again") from None
        discard_stale(db)
        held = _Held(db)
        try:
            check_room(db)
            yield
        finally:
            held.release()
    finally:
        os.close(fd)


class _Held:
    """The run's read lock on the published file (none before the first run), and what the file
    was when the run started: the swap replaces only that file."""

    def __init__(self, db: Path):
        self.db = db
        try:
            self.fd = os.open(db, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self.fd = None
        except OSError as exc:
            raise (storage_error(db, exc) or exc) from None
        if self.fd is not None and not _read_lock(self.fd):
            pid = _holder(self.fd)
            os.close(self.fd)
            raise WarehouseOpenError(
                f"the warehouse {db} is open read-write in another process"
                + (f" (PID {pid})" if pid > 0 else "") + ", so a run cannot publish a month in it. "
                "Ask whoever has it open to close it, and run again; analysts open it read-only "
                "(duckdb -readonly, or duckdb.connect(path, read_only=True)). The published warehouse is unchanged.")
        try:
            refuse_wal(db)
        except WarehouseOpenError:
            self.release()
            raise
        self.identity = _identity(os.fstat(self.fd)) if self.fd is not None else None
        _held[db] = self

    def release(self) -> None:
        if _held.get(self.db) is self:
            del _held[self.db]
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _read_lock(fd: int) -> bool:
    """A shared lock on the whole file, False if a writer holds it."""
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0))
        return True
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise


def _holder(fd: int) -> int:
    """The process holding the write lock that stops ours (DuckDB's lock is a POSIX one, which
    tells its holder; -1 when it cannot be told)."""
    try:
        found = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _FLOCK.pack(fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0))
        return _FLOCK.unpack(found)[4]
    except OSError:
        return -1


def _identity(st: os.stat_result) -> tuple:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def refuse_wal(db: Path) -> None:
    """Stop when a write-ahead log lies beside the published file: changes made read-write by a
    process that did not close (killed, crashed), not yet in the file."""
    wal = db.with_name(db.name + ".wal")
    if os.path.lexists(wal):
        raise WarehouseOpenError(
            f"{wal} lies beside the warehouse: changes made read-write by a process that did not close "
            f"it (an analyst's session, killed or still open) are not in {db} yet, and publishing a month "
            f"would lose them. To keep them, open the warehouse read-write once and close it "
            f"(.venv/bin/duckdb {db} -c checkpoint); to drop them, delete {wal}. Then run again; the "
            f"published warehouse is unchanged.")


def discard_stale(db: Path) -> None:
    """Remove the building copies of runs that died (killed, machine stopped): only the holder of
    the lock may call this, so no live run is building there."""
    for d in db.parent.glob(f".{glob.escape(db.name)}.*.building"):
        if d.is_dir() and not d.is_symlink():
            shutil.rmtree(d, ignore_errors=True)
            log.warning("removed %s, left behind by a run that did not finish", d)


def check_room(db: Path) -> None:
    """Stop before any work when the warehouse folder cannot take a run: not writable, or too
    little free space for the copy a run builds in."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f".{db.name}.", suffix=".probe", dir=db.parent))
    except OSError as exc:
        raise storage_error(db, exc) from None
    size = db.stat().st_size if db.exists() else 0
    needed = size + max(MIN_HEADROOM, size // 2)
    fs = os.statvfs(db.parent)
    free = fs.f_bavail * fs.f_frsize
    if free < needed:
        mb = 1024 * 1024
        log.info("warehouse folder %s: %d MB free, a run needs about %d MB", db.parent, free // mb, -(-needed // mb))
        raise StorageError(f"the warehouse folder {db.parent} has {free // mb} MB free, and a run needs about "
                           f"{-(-needed // mb)} MB (a copy of the {size // mb} MB warehouse to build the month in, "
                           f"and room for the month). Free space on that disk, or pass --db with a folder on "
                           f"another disk, and run again; the published warehouse is unchanged.")


def storage_error(db: Path, exc: BaseException, published: str | None = None) -> StorageError | None:
    """The run's failure to write beside the warehouse (full, read-only, not allowed) as a clear
    StorageError, logged; None when `exc` is something else. `published`: the month, when it was
    published before the failure (its feedback or report could not be written)."""
    code = storage_errno(exc)
    if code is None:
        return None
    folder = published_path(db).parent
    why = _STORAGE[code]
    log.info("cannot write in the warehouse folder %s: %s (%s)", folder, why, os.strerror(code))
    done = (f"{published} is published, but its feedback, report or validation site could not be written."
            if published else "The published warehouse is unchanged.")
    return StorageError(f"cannot write in the warehouse folder {folder}: {why} ({os.strerror(code)}). {done} "
                        + ("Free space on that disk" if code in (errno.ENOSPC, errno.EDQUOT) else
                           "Make the folder writable for this user")
                        + ", or pass --db with a folder where the run can write, and run again.")


@contextlib.contextmanager
def writing(db: Path, published: str | None = None):
    """Failures to write beside the warehouse in the block, as StorageError (see storage_error)."""
    try:
        yield
    except Exception as exc:
        if (clear := storage_error(db, exc, published)) is None:
            raise
        raise clear from exc


def storage_errno(exc: BaseException) -> int | None:
    """The errno of a failure to write that the operator can mend (see _STORAGE), or None. DuckDB's
    IOException carries no errno, only the system's message, so both are looked at; a library's own
    error may wrap the OSError (xlsxwriter's FileCreateError holds it in its args), so are they."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code = getattr(exc, "errno", None)
        if code in _STORAGE:
            return code
        if isinstance(exc, (OSError, duckdb.Error)):
            if (code := next((c for c in _STORAGE if os.strerror(c) in str(exc)), None)) is not None:
                return code
        exc = next((a for a in getattr(exc, "args", ()) if isinstance(a, BaseException)), None) \
            or exc.__cause__ or exc.__context__
    return None


def building_path(db: Path, run_id: str) -> Path:
    # Inside a directory only the owner may enter: the copy holds everything the warehouse does,
    # whatever mode DuckDB or the copy give the file itself.
    return db.parent / f".{db.name}.{run_id}.building" / db.name


def prepare(db: Path, run_id: str, storage_version: str) -> Path:
    """A private copy of the published warehouse (or nothing, on the first run) to build in,
    in the storage format `storage_version` that the analysts' DuckDB releases can read."""
    db = published_path(db)
    tmp = building_path(db, run_id)
    discard(tmp)
    with _guard:
        if _stopped:
            raise Interrupted()
        _building.add(tmp.parent)
    try:
        tmp.parent.mkdir(mode=0o700)
        if db.exists():
            if _release(storage_of(db)) <= _release(storage_version):
                shutil.copyfile(db, tmp)
            else:
                convert(db, tmp, storage_version)
    except (OSError, duckdb.IOException) as exc:
        discard(tmp)
        raise (storage_error(db, exc) or exc) from exc
    return tmp


def storage_of(db: Path) -> str | None:
    """The storage format a warehouse file is written in, as DuckDB tags it ('v1.0.0+')."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("select tags['storage_version'] from duckdb_databases() "
                           "where database_name = current_database()").fetchone()[0]
    finally:
        con.close()


def _release(tag: str | None) -> tuple[int, ...]:
    """'v1.0.0+' or 'v1.1.0' as (1, 0, 0) or (1, 1, 0). DuckDB tags a file with the oldest release
    of its storage format, so a file written for v1.1.0 readers is tagged 'v1.0.0+'."""
    return tuple(int(x) for x in (tag or "v0.0.0").strip("v+").split("."))


def convert(db: Path, out: Path, storage_version: str) -> None:
    """A copy of the whole warehouse (tables, views, comments) in another storage format: once,
    when a warehouse written by a newer DuckDB default must become readable by older clients."""
    con = duckdb.connect()
    try:
        con.execute(f"attach '{_path_literal(db)}' as published (read_only)")
        con.execute(f"attach '{_path_literal(out)}' as building (storage_version '{storage_version}')")
        con.execute("copy from database published to building")
    finally:
        con.close()


def _path_literal(path: Path) -> str:
    # ATTACH takes no parameters; the path is ours (the --db option), quoted all the same.
    return str(path).replace("'", "''")


def swap(tmp: Path, db: Path) -> None:
    """Make the built file the published one, atomically and durably; only the file the run
    started from, with no .wal beside it, is replaced."""
    db = published_path(db)
    try:
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        held = _held.get(db)
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC) if held else None
    except OSError as exc:
        raise (storage_error(db, exc) or exc) from exc
    try:
        if fd is not None and not _read_lock(fd):  # nobody else knows the copy's name
            raise RuntimeError(f"cannot lock {tmp}, which only this run opens")
        faults.checkpoint("publishing")
        with _guard:
            if _stopped:
                raise Interrupted()
            refuse_wal(db)
            if held:
                _refuse_changed(db, held)
            _swapping.append((db, _identity(os.stat(tmp))))
            os.replace(tmp, db)
            if held:  # from now on the lock is on the new file, under the published name
                if held.fd is not None:
                    os.close(held.fd)
                held.fd, fd = fd, None
                held.identity = _identity(os.fstat(held.fd))
    except OSError as exc:
        raise (storage_error(db, exc) or exc) from exc
    finally:
        if fd is not None:
            os.close(fd)
    faults.checkpoint("published")
    dir_fd = os.open(db.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _refuse_changed(db: Path, held: _Held) -> None:
    """Stop when the published file is no longer the one the run copied: replaced, written to in
    place by a program that ignores DuckDB's locks, or created since a first run began."""
    try:
        now = _identity(os.stat(db))
    except FileNotFoundError:
        now = None
    if now != held.identity:
        raise WarehouseOpenError(f"the warehouse {db} was replaced or changed by another program while the month "
                                 f"was built, so the month was not published (it would undo that change). "
                                 f"Run again; the published warehouse is as that program left it.")


def discard(tmp: Path) -> None:
    """Remove a building copy with its directory: write-ahead log and DuckDB's spill files too."""
    if tmp.parent.name.endswith(".building"):
        shutil.rmtree(tmp.parent, ignore_errors=True)
        with _guard:
            _building.discard(tmp.parent)


def stop() -> int:
    """For an interrupted run (flows/stopping.py): no swap starts after this call, and the copies
    this process was building are removed. Returns how many swaps this process made."""
    global _stopped
    # Bounded: a swap under way takes milliseconds; if the guard cannot be had, the file tells.
    got = _guard.acquire(timeout=5)
    try:
        _stopped = True
        building = sorted(_building)
    finally:
        if got:
            _guard.release()
    for d in building:
        # A DuckDB thread of the run may still create a file in it until the process exits.
        deadline = time.monotonic() + 2
        while os.path.lexists(d) and time.monotonic() < deadline:
            shutil.rmtree(d, ignore_errors=True)
    if not _swapping:
        return 0
    # Swaps follow one another, so all but the last are done; the last is if its file is in place.
    db, identity = _swapping[-1]
    try:
        last = _identity(os.stat(db)) == identity
    except OSError:
        last = False
    return len(_swapping) - (not last)
