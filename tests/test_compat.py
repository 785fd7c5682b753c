"""The published warehouse opens in older DuckDB releases and in the command-line client.

data/settings.toml promises readers from DuckDB 1.1.0 on (warehouse.storage_version). `make
test` installs that release into .tools/ (OLD_DUCKDB_PATH) and the `duckdb` command-line client
(1.5.6, from the duckdb-cli package) into .venv; each reads every table and view of the fixture
warehouse and must see what DuckDB 2 sees."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

from conftest import INBOX, PERIOD
from flows.warehouse.publish import storage_of

QUESTION = """select county_name, round(value, 4) as value, target, round(gap, 4) as gap
              from analysis.indicators
              where period = '{period}' and unit_level = 'county' and indicator_id = 'urban_community_talent_avg'
              order by gap desc, county_name"""


def _relations(con) -> list[str]:
    return [f"{s}.{t}" for s, t in con.execute(
        "select schema_name, table_name from duckdb_tables() where not internal union all "
        "select schema_name, view_name from duckdb_views() where not internal order by 1").fetchall()]


def _counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {r: con.execute(f"select count(*) from {r}").fetchone()[0] for r in _relations(con)}
    finally:
        con.close()


OLD_CLIENT = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
rel = [f"{s}.{t}" for s, t in con.execute(
    "select schema_name, table_name from duckdb_tables() where not internal union all "
    "select schema_name, view_name from duckdb_views() where not internal order by 1").fetchall()]
print(json.dumps({"version": duckdb.__version__,
                  "counts": {r: con.execute(f"select count(*) from {r}").fetchone()[0] for r in rel},
                  "comments": con.execute("select count(*) from duckdb_columns() where comment is not null").fetchone()[0],
                  "answer": con.execute(sys.argv[2]).fetchall()}))
"""


def _old_duckdb() -> Path:
    path = os.environ.get("OLD_DUCKDB_PATH")
    assert path and Path(path, "duckdb").is_dir(), (
        "the older DuckDB release is missing: run the tests with `make test`, which installs it into .tools/")
    return Path(path)


def test_the_warehouse_is_written_for_duckdb_1_1_readers(month_db):
    con = duckdb.connect(str(month_db), read_only=True)
    try:
        tag = con.execute("select tags['storage_version'] from duckdb_databases() "
                          "where database_name = current_database()").fetchone()[0]
    finally:
        con.close()
    assert tag == "v1.0.0+"  # the storage format of releases 1.0.0 to 1.1 and later


def test_duckdb_1_1_reads_every_table_and_view(month_db):
    question = QUESTION.format(period=PERIOD)
    out = subprocess.run([sys.executable, "-c", OLD_CLIENT, str(month_db), question], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(_old_duckdb())}, timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["version"] == "1.1.0"
    assert seen["counts"] == _counts(month_db)
    con = duckdb.connect(str(month_db), read_only=True)
    try:
        assert seen["comments"] == con.execute(
            "select count(*) from duckdb_columns() where comment is not null").fetchone()[0]
        assert [tuple(r) for r in seen["answer"]] == con.execute(question).fetchall()
    finally:
        con.close()


def test_the_command_line_client_reads_it(month_db):
    cli = Path(sys.executable).with_name("duckdb")
    assert cli.exists(), "the duckdb command-line client comes with `make install` (duckdb-cli in requirements.lock)"
    version = subprocess.run([str(cli), "-version"], capture_output=True, text=True, timeout=60).stdout
    assert version.startswith("v1.5.6")
    out = subprocess.run([str(cli), "-readonly", "-json", str(month_db), "-c", QUESTION.format(period=PERIOD)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [(r["county_name"], r["value"], r["target"], r["gap"]) for r in json.loads(out.stdout)]
    con = duckdb.connect(str(month_db), read_only=True)
    try:
        assert rows == con.execute(QUESTION.format(period=PERIOD)).fetchall()
    finally:
        con.close()
    assert len(rows) == 5


def test_a_warehouse_in_duckdb_2_format_is_converted_by_the_next_run(month_db, tmp_path):
    """A warehouse written with DuckDB 2's default format (as before this setting existed) is
    converted once, whole, by the next run, and then opens in DuckDB 1.1."""
    from flows.monthly import monthly_rollup
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect()
    con.execute(f"attach '{month_db}' as published (read_only)")
    con.execute(f"attach '{db}' as newer (storage_version 'v2.0.0')")
    con.execute("copy from database published to newer")
    con.close()
    before = _counts(db)
    assert storage_of(db) == "v2.0.0+"
    inbox = tmp_path / "inbox"
    shutil.copytree(INBOX, inbox)
    # A month with no files: the run carries nothing new, so every table keeps its rows.
    monthly_rollup(period="2024-04", inbox=str(inbox), db=str(db))
    assert storage_of(db) == "v1.0.0+"
    out = subprocess.run([sys.executable, "-c", OLD_CLIENT, str(db), "select count(*) from ingest.runs"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(_old_duckdb())},
                         timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["answer"] == [[2]]
    assert seen["counts"]["ref.units"] == before["ref.units"]
    assert seen["counts"]["staging.sg02"] >= before["staging.sg02"]
