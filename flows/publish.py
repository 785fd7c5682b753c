"""Publishing: a run builds the new warehouse beside the published one and swaps it in.

DuckDB allows one writer or many read-only processes per file, so a run never opens the
published file for writing: it copies it, builds the month in the copy, and `os.replace`s it.
An analyst's open read-only connection keeps reading the old file (its inode) undisturbed and
never sees a half-built month; the next connection sees the new one.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import logging
import os
import shutil
import tempfile
from pathlib import Path

import duckdb

from . import faults
from .errors import RunLockedError, StorageError

log = logging.getLogger("shegong")
# Free space a run needs beside the published file, besides the copy it builds in: the month's
# rows, DuckDB's write-ahead log and checkpoint. Half the warehouse, and never less than this.
MIN_HEADROOM = 64 * 1024 * 1024
# What each failure to write means for whoever runs the month.
_STORAGE = {errno.ENOSPC: "its disk is full", errno.EDQUOT: "the disk quota is used up",
            errno.EROFS: "it is on a read-only file system", errno.EACCES: "this user may not write in it",
            errno.EPERM: "this user may not write in it"}


@contextlib.contextmanager
def run_lock(db: Path):
    """One run per warehouse at a time: a second one stops at once with a clear message."""
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
        check_room(db)
        yield
    finally:
        os.close(fd)


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
        log.error("warehouse folder %s: %d MB free, a run needs about %d MB", db.parent, free // mb, -(-needed // mb))
        raise StorageError(f"the warehouse folder {db.parent} has {free // mb} MB free, and a run needs about "
                           f"{-(-needed // mb)} MB (a copy of the {size // mb} MB warehouse to build the month in, "
                           f"and room for the month). Free space on that disk, or pass --db with a folder on "
                           f"another disk, and run again; the published warehouse is unchanged.")


def storage_error(db: Path, exc: BaseException) -> StorageError | None:
    """The run's failure to write beside the warehouse (full, read-only, not allowed) as a clear
    StorageError, logged; None when `exc` is something else. DuckDB's IOException carries no errno,
    only the system's message, so both are looked at."""
    code = getattr(exc, "errno", None)
    if code not in _STORAGE:
        text = str(exc)
        code = next((c for c in _STORAGE if os.strerror(c) in text), None)
        if code is None:
            return None
    why = _STORAGE[code]
    log.error("cannot write in the warehouse folder %s: %s (%s)", db.parent, why, os.strerror(code))
    return StorageError(f"cannot write in the warehouse folder {db.parent}: {why} ({os.strerror(code)}). "
                        f"The published warehouse is unchanged. "
                        + ("Free space on that disk" if code in (errno.ENOSPC, errno.EDQUOT) else
                           "Make the folder writable for this user")
                        + ", or pass --db with a folder where the run can write, and run again.")


def building_path(db: Path, run_id: str) -> Path:
    # Inside a directory only the owner may enter: the copy holds everything the warehouse does,
    # whatever mode DuckDB or the copy give the file itself.
    return db.parent / f".{db.name}.{run_id}.building" / db.name


def prepare(db: Path, run_id: str, storage_version: str) -> Path:
    """A private copy of the published warehouse (or nothing, on the first run) to build in,
    in the storage format `storage_version` that the analysts' DuckDB releases can read."""
    tmp = building_path(db, run_id)
    discard(tmp)
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
    """Make the built file the published one, atomically and durably."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    faults.checkpoint("publishing")
    os.replace(tmp, db)
    faults.checkpoint("published")
    dir_fd = os.open(db.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def discard(tmp: Path) -> None:
    """Remove a building copy with its directory: write-ahead log and DuckDB's spill files too."""
    if tmp.parent.name.endswith(".building"):
        shutil.rmtree(tmp.parent, ignore_errors=True)
