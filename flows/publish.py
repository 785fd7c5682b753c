"""Publishing: a run builds the new warehouse beside the published one and swaps it in.

DuckDB allows one writer or many read-only processes per file, so a run never opens the
published file for writing: it copies it, builds the month in the copy, and `os.replace`s it.
An analyst's open read-only connection keeps reading the old file (its inode) undisturbed and
never sees a half-built month; the next connection sees the new one.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from .errors import RunLockedError


@contextlib.contextmanager
def run_lock(db: Path):
    """One run per warehouse at a time: a second one stops at once with a clear message."""
    db.parent.mkdir(parents=True, exist_ok=True)
    lock_path = db.with_name(db.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(f"another run is writing {db} (lock {lock_path} is held); "
                                 f"wait for it to finish and run again") from None
        yield
    finally:
        os.close(fd)


def building_path(db: Path, run_id: str) -> Path:
    # Inside a directory only the owner may enter: the copy holds everything the warehouse does,
    # whatever mode DuckDB or the copy give the file itself.
    return db.parent / f".{db.name}.{run_id}.building" / db.name


def prepare(db: Path, run_id: str) -> Path:
    """A private copy of the published warehouse (or nothing, on the first run) to build in."""
    tmp = building_path(db, run_id)
    discard(tmp)
    tmp.parent.mkdir(mode=0o700)
    if db.exists():
        shutil.copyfile(db, tmp)
    return tmp


def swap(tmp: Path, db: Path) -> None:
    """Make the built file the published one, atomically and durably."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, db)
    dir_fd = os.open(db.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def discard(tmp: Path) -> None:
    for p in (tmp, tmp.with_name(tmp.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    with contextlib.suppress(FileNotFoundError, OSError):
        tmp.parent.rmdir()
