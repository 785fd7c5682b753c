"""Publishing: an analyst's open read-only connection neither blocks a run nor sees a half-built
month; a failed run leaves the published warehouse as it was; runs never interleave."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import textwrap

import duckdb
import pytest

from conftest import INBOX, PERIOD
from flows.warehouse import rollup
from flows.errors import RunLockedError
from flows.monthly import monthly_rollup
from flows.warehouse.publish import run_lock

ANALYST = textwrap.dedent("""
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    q = "select count(*) from ingest.files where period = '2024-03'"
    print(con.execute(q).fetchone()[0], flush=True)
    sys.stdin.readline()                      # hold the connection open while the run goes on
    print(con.execute(q).fetchone()[0], flush=True)
""")


@pytest.fixture
def inbox(tmp_path):
    shutil.copytree(INBOX, tmp_path / "inbox")
    return tmp_path / "inbox"


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_open_read_only_connection_does_not_block_a_run(inbox, tmp_path):
    db = tmp_path / "warehouse.duckdb"
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    analyst = subprocess.Popen([sys.executable, "-c", ANALYST, str(db)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert analyst.stdout.readline().strip() == "9"
        (inbox / PERIOD / "东区" / "照片.jpg").unlink()  # a late change: one file fewer
        monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
        analyst.stdin.write("\n")
        analyst.stdin.flush()
        # The open connection still reads the warehouse it opened, whole: never a half-built month.
        assert analyst.stdout.readline().strip() == "9"
    finally:
        analyst.stdin.close()
        analyst.wait(timeout=30)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from ingest.files where period = '2024-03'").fetchone()[0] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feedback", "inbox", "reports", "validation", "warehouse.duckdb",
                                                         "warehouse.duckdb.lock"]


def test_failed_run_leaves_published_warehouse_intact(inbox, tmp_path, monkeypatch):
    db = tmp_path / "warehouse.duckdb"
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    before = sha(db)

    seen = []

    def broken(con, *args, **kwargs):
        # The copy being built sits in a directory only its owner may enter.
        [building] = [p for p in tmp_path.iterdir() if p.name.endswith(".building")]
        seen.append(oct(building.stat().st_mode & 0o777))
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(rollup, "build", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    assert sha(db) == before
    assert seen == ["0o700"]
    assert not [p for p in tmp_path.iterdir() if "building" in p.name]


def test_second_run_on_the_same_warehouse_is_refused(inbox, tmp_path):
    db = tmp_path / "warehouse.duckdb"
    with run_lock(db):
        with pytest.raises(RunLockedError, match="another run is writing"):
            monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    assert not db.exists()


def test_rerun_gives_the_same_indicators(inbox, tmp_path):
    db = tmp_path / "warehouse.duckdb"
    query = "select * exclude (period) from mart.indicator_values order by unit_code, indicator_id"
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        first = con.execute(query).fetchall()
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute(query).fetchall() == first
        assert con.execute("select count(*) from ingest.runs").fetchone()[0] == 2
        assert con.execute("select count(*) from ingest.files").fetchone()[0] == 9
