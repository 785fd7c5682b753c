"""Faults: a run killed at any stage, a full disk, a read-only warehouse folder. The published
warehouse stays as it was, byte for byte; the error says which folder and what to do; the next run
completes. Runs are real `shegong run` processes, stopped at a stage by flows/warehouse/faults.py."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from conftest import INBOX, PERIOD
from flows.warehouse import faults
from runs import Run, args, building, lock_is_free, month_of, run, sha256


def test_a_run_killed_at_any_stage_leaves_the_published_warehouse_as_it_was(published, month_db, tmp_path):
    inbox, db = published
    before = sha256(db)
    left = []  # building directories a killed run left behind
    for stage in faults.STAGES:
        out = tmp_path / stage
        out.mkdir()
        marker = out / "paused"
        r = Run(args(inbox, db), out, SHEGONG_PAUSE_AT=stage, SHEGONG_PAUSE_FILE=str(marker))
        r.wait_for(marker)
        # Whatever the run before this one left, this one cleared before it started.
        assert not [p for p in left if p.exists()], stage
        killed = r.kill()
        assert killed.returncode == -9
        r.end_session()  # its reader process, which ends by itself once it reads its parent is gone
        if stage == "published":
            # Killed just after the swap: the published file is the whole new month, never a part.
            assert sha256(db) != before
            with duckdb.connect(str(db), read_only=True) as c:
                assert c.execute("select count(*) from ingest.runs").fetchone()[0] == 2
                assert c.execute("select count(*) from ingest.files where period = ?", [PERIOD]).fetchone()[0] == 9
        else:
            assert sha256(db) == before, f"published warehouse changed by a run killed while {stage}"
        assert lock_is_free(db), stage
        left = building(db)
        if stage in ("rolling_up", "publishing", "published"):
            assert left, f"expected the copy a run killed while {stage} was building"

    done = run(args(inbox, db), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "left behind by a run that did not finish" in done.stderr
    assert building(db) == []
    # The month as a clean run of the same files gives it.
    assert month_of(db) == month_of(month_db)


@contextlib.contextmanager
def small_disk(path: Path, size: str):
    """A tmpfs of `size` mounted at path, unmounted afterwards whatever happens."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small or read-only file system needs root (mount -t tmpfs); CI runs as root")
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.fail(f"running as root but cannot mount a tmpfs at {path}: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """Take all free space of the disk but `leave` bytes."""
    fs = os.statvfs(disk)
    size = fs.f_bavail * fs.f_frsize - leave
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)
    return filler


def test_read_only_warehouse_folder_is_a_clear_error_and_the_warehouse_stays(month_db, tmp_path):
    with small_disk(tmp_path / "disk", "64m") as disk:
        db = disk / "warehouse.duckdb"
        shutil.copyfile(month_db, db)
        before = sha256(db)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        shutil.copytree(INBOX, tmp_path / "inbox")
        done = run(args(tmp_path / "inbox", db), tmp_path)
        assert done.returncode == 1
        # One line, nothing else (the English log line shows at SHEGONG_LOG_LEVEL=INFO).
        assert done.stderr == (f"shegong: cannot write in the warehouse folder {disk}: it is on a read-only file "
                               f"system (Read-only file system). The published warehouse is unchanged. Make the "
                               f"folder writable for this user, or pass --db with a folder where the run can write, "
                               f"and run again.\n")
        assert sha256(db) == before


def test_full_disk_is_a_clear_error_and_the_next_run_completes(published, tmp_path):
    inbox, source = published
    with small_disk(tmp_path / "disk", "160m") as disk:
        db = disk / "warehouse.duckdb"
        shutil.copyfile(source, db)
        before = sha256(db)
        filler = fill(disk, leave=1024 * 1024)
        done = run(args(inbox, db), tmp_path)
        assert done.returncode == 1
        assert re.fullmatch(rf"shegong: the warehouse folder {disk} has [01] MB free, and a run needs about "
                            rf"\d+ MB \(a copy of the \d+ MB warehouse to build the month in, and room for the "
                            rf"month\)\. Free space on that disk, or pass --db with a folder on another disk, and "
                            rf"run again; the published warehouse is unchanged\.\n", done.stderr), done.stderr
        assert sha256(db) == before

        filler.unlink()
        done = run(args(inbox, db), tmp_path)
        assert done.returncode == 0, done.stderr
        assert building(db) == []
        with duckdb.connect(str(db), read_only=True) as c:
            assert c.execute("select count(*) from ingest.files where period = ?", [PERIOD]).fetchone()[0] == 9


@pytest.mark.parametrize("leave", ["nothing", "the copy only"])
def test_disk_filling_during_the_run_leaves_the_warehouse_and_no_copy(published, tmp_path, leave):
    inbox, source = published
    with small_disk(tmp_path / "disk", "160m") as disk:
        db = disk / "warehouse.duckdb"
        shutil.copyfile(source, db)
        before = sha256(db)
        marker = tmp_path / "paused"
        # Stopped after its check of free space, before it copies the warehouse: then the disk fills.
        r = Run(args(inbox, db), tmp_path, SHEGONG_PAUSE_AT="validating", SHEGONG_PAUSE_FILE=str(marker))
        r.wait_for(marker)
        fill(disk, leave=64 * 1024 if leave == "nothing" else db.stat().st_size + 256 * 1024)
        marker.unlink()
        done = r.wait()
        assert done.returncode == 1, done.stderr
        assert sha256(db) == before
        assert building(db) == []
        assert lock_is_free(db)
        # Whether the copy fails or DuckDB fails while building the month in it (inside the flow, in
        # a task): said plainly, in one line, without Prefect's traceback.
        assert done.stderr == (f"shegong: cannot write in the warehouse folder {disk}: its disk is full (No space "
                               f"left on device). The published warehouse is unchanged. Free space on that disk, or "
                               f"pass --db with a folder where the run can write, and run again.\n")


def test_disk_filling_after_the_swap_says_the_month_is_published(published, tmp_path):
    inbox, source = published
    with small_disk(tmp_path / "disk", "160m") as disk:
        db = disk / "warehouse.duckdb"
        shutil.copyfile(source, db)
        marker = tmp_path / "paused"
        r = Run(args(inbox, db), tmp_path, SHEGONG_PAUSE_AT="published", SHEGONG_PAUSE_FILE=str(marker))
        r.wait_for(marker)
        fill(disk, leave=64 * 1024)  # no room for the feedback workbooks and the report
        marker.unlink()
        done = r.wait()
        assert (done.returncode, done.stderr) == (1, (
            f"shegong: cannot write in the warehouse folder {disk}: its disk is full (No space left on device). "
            f"{PERIOD} is published, but its feedback, report or validation site could not be written. Free space "
            f"on that disk, or pass --db with a folder where the run can write, and run again.\n"))
        assert building(db) == [] and lock_is_free(db)
        with duckdb.connect(str(db), read_only=True) as c:
            assert c.execute("select count(*) from ingest.files where period = ?", [PERIOD]).fetchone()[0] == 9
