"""The published warehouse and the people around it: an analyst's read-write session (before a run,
during each stage, and what it leaves behind), a warehouse reached through links, and the one line
a refused run prints. Runs are real `shegong run` processes; analysts are Python processes of their
own holding DuckDB connections (tests/runs.py)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from conftest import PERIOD
from flows.warehouse import faults
from runs import Analyst, Run, args, building, lock_is_free, month_of, sha256

DUCKDB_CLI = Path(sys.executable).with_name("duckdb")
HELD = ("shegong: the warehouse {db} is open read-write in another process (PID {pid}), so a run cannot publish "
        "a month in it. Ask whoever has it open to close it, and run again; analysts open it read-only (duckdb "
        "-readonly, or duckdb.connect(path, read_only=True)). The published warehouse is unchanged.\n")
WAL = ("shegong: {db}.wal lies beside the warehouse: changes made read-write by a process that did not close it "
       "(an analyst's session, killed or still open) are not in {db} yet, and publishing a month would lose them. "
       "To keep them, open the warehouse read-write once and close it (.venv/bin/duckdb {db} -c checkpoint); to "
       "drop them, delete {db}.wal. Then run again; the published warehouse is unchanged.\n")
NOTES = "create table main.analyst_notes as select 42 as answer"


def files_of(db: Path) -> int:
    with duckdb.connect(str(db), read_only=True) as c:
        return c.execute("select count(*) from ingest.files where period = ?", [PERIOD]).fetchone()[0]


@dataclass
class Paused:
    """A run started by the `started` fixture, on its own copy, going to its first pause point."""
    inbox: Path
    db: Path
    marker: Path
    run: Run


@pytest.fixture(scope="module", autouse=True)
def started(published_once, tmp_path_factory) -> dict[str, Paused]:
    """The runs that get past their start, started together with the module's first test: their
    start-up (seconds each) overlaps, and each test finds its run waiting at its pause point."""
    tmp = tmp_path_factory.mktemp("analysts")
    runs = {}
    for name, stages in (("stages", ",".join(faults.STAGES)), ("wal", "publishing"), ("replaced", "publishing"),
                         ("links", "validating")):
        d = tmp / name
        inbox, db = d / "inbox", d / "wh" / "warehouse.duckdb"
        shutil.copytree(published_once[0], inbox)
        db.parent.mkdir()
        shutil.copy2(published_once[1], db)
        if name == "stages":  # an analyst's table, committed and closed before the run
            with duckdb.connect(str(db)) as c:
                c.execute(NOTES)
        given = db
        if name == "links":  # run through a link in another folder
            given = d / "a" / "warehouse.duckdb"
            given.parent.mkdir()
            given.symlink_to(db)
        marker = d / "paused"
        runs[name] = Paused(inbox, db, marker, Run(args(inbox, given), d, SHEGONG_PAUSE_AT=stages,
                                                   SHEGONG_PAUSE_FILE=str(marker), SHEGONG_PAUSE_SECONDS="1800"))
    yield runs
    for p in runs.values():
        if p.run.proc.poll() is None:
            p.run.kill()
        p.run.end_session()


def test_a_read_write_session_stops_a_run_in_one_line_and_keeps_its_work(published, tmp_path):
    inbox, db = published
    before = sha256(db)
    analyst = Analyst()
    try:
        analyst.ok("open", db)
        analyst.ok("sql", NOTES)
        r = Run(args(inbox, db), tmp_path)
        done = r.wait()
        assert (done.returncode, done.stdout) == (1, "")
        assert done.stderr == HELD.format(db=db, pid=analyst.pid)
        assert r.left() == []
        # At DEBUG the same line comes last, after the traceback.
        debug = Run(args(inbox, db), tmp_path, SHEGONG_LOG_LEVEL="DEBUG").wait()
        assert debug.returncode == 1 and "Traceback" in debug.stderr
        assert debug.stderr.splitlines()[-1] + "\n" == HELD.format(db=db, pid=analyst.pid)
        assert sha256(db) == before  # their table is in their .wal until they close
        analyst.ok("close")
    finally:
        analyst.kill()
    # Closed, their table is in the warehouse (a run keeps it: the next test).
    assert lock_is_free(db)
    with duckdb.connect(str(db), read_only=True) as c:
        assert c.execute("select answer from analyst_notes").fetchall() == [(42,)]


def test_a_wal_left_by_a_killed_session_stops_runs_until_it_is_checkpointed(published, tmp_path):
    inbox, db = published
    analyst = Analyst()
    analyst.ok("open", db)
    analyst.ok("sql", NOTES)
    analyst.kill()
    wal = db.with_name(db.name + ".wal")
    before = sha256(db), sha256(wal)

    r = Run(args(inbox, db), tmp_path)
    done = r.wait()
    assert (done.returncode, done.stdout, done.stderr) == (1, "", WAL.format(db=db))
    assert (sha256(db), sha256(wal)) == before
    assert lock_is_free(db) and building(db) == [] and r.left() == []

    # What the line says to do keeps the analyst's work.
    subprocess.run([str(DUCKDB_CLI), str(db), "-c", "checkpoint"], check=True, capture_output=True, timeout=60)
    assert not wal.exists()
    with duckdb.connect(str(db), read_only=True) as c:
        assert c.execute("select answer from analyst_notes").fetchall() == [(42,)]


def test_during_a_run_analysts_read_the_published_month_and_cannot_open_it_read_write(started):
    p = started["stages"]
    analyst = Analyst()
    try:
        for stage in faults.STAGES:
            p.run.wait_for(p.marker)
            assert p.marker.read_text().split()[1] == stage
            kind, message = analyst.do("open", p.db)
            assert kind == "error", stage
            assert message.startswith(f'IO Error: Could not set lock on file "{p.db}"'), (stage, message)
            # Read-only, as analysts open it: the month as published before the run, until the swap.
            analyst.ok("open_ro", p.db)
            seen = analyst.ok("query", f"select count(*) from ingest.files where period = '{PERIOD}'")
            assert seen == [[9 if stage == "published" else 7]], stage
            analyst.ok("close")
            p.marker.unlink()
        done = p.run.wait()
    finally:
        analyst.kill()
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert lock_is_free(p.db) and building(p.db) == [] and p.run.left() == []
    # The table an analyst committed before the run is in the month it published.
    with duckdb.connect(str(p.db), read_only=True) as c:
        assert c.execute("select answer from analyst_notes").fetchall() == [(42,)]


@pytest.mark.parametrize("change", ["wal", "replaced"])
def test_the_swap_never_replaces_a_file_changed_under_the_run(started, tmp_path, change):
    """A program that ignores DuckDB's locks (a client on another machine over a network share, a
    copy) can still write a .wal or replace the file: the run does not publish over it."""
    p = started[change]
    p.run.wait_for(p.marker)
    db, wal = p.db, p.db.with_name(p.db.name + ".wal")
    if change == "wal":
        wal.write_bytes(b"changes not yet in the file")
        expected = WAL.format(db=db)
    else:
        shutil.copy2(db, tmp_path / "other.duckdb")
        os.replace(tmp_path / "other.duckdb", db)
        expected = (f"shegong: the warehouse {db} was replaced or changed by another program while the month was "
                    f"built, so the month was not published (it would undo that change). Run again; the published "
                    f"warehouse is as that program left it.\n")
    before = sha256(db)
    p.marker.unlink()
    done = p.run.wait()
    # Refused inside the flow, by a task: one line all the same.
    assert (done.returncode, done.stdout, p.run.said_since_pause()) == (1, "", expected)
    assert "Traceback" not in done.stderr
    assert sha256(db) == before and files_of(db) == 7
    assert building(db) == [] and lock_is_free(db) and p.run.left() == []
    assert wal.exists() == (change == "wal")


def test_runs_through_links_publish_the_real_file_one_at_a_time(started):
    p = started["links"]
    db, first = p.db, p.marker.parent / "a" / "warehouse.duckdb"
    second = p.marker.parent / "b" / "w.duckdb"
    second.parent.mkdir()
    second.symlink_to(db)
    p.run.wait_for(p.marker)
    # Through the other link, the same file: the same lock.
    b = Run(args(p.inbox, second), second.parent)
    refused = b.wait()
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (f"shegong: another run is writing {db} (lock {db}.lock is held); wait for it to "
                              f"finish and run again\n")
    assert b.left() == []
    p.marker.unlink()
    done = p.run.wait()
    assert done.returncode == 0, done.stderr
    # The links are still links, to the real file, which has the month; nothing of the run lies
    # beside them but the month's feedback and report.
    assert first.is_symlink() and second.is_symlink()
    assert first.resolve() == second.resolve() == db
    assert files_of(db) == 9 and month_of(first) == month_of(db)
    assert sorted(x.name for x in first.parent.iterdir()) == ["feedback", "reports", "validation", "warehouse.duckdb"]
    assert sorted(x.name for x in second.parent.iterdir()) == ["stderr.txt", "stdout.txt", "w.duckdb"]
    assert sorted(x.name for x in db.parent.iterdir()) == ["warehouse.duckdb", "warehouse.duckdb.lock"]
    assert lock_is_free(db) and p.run.left() == []
