"""Load: a large roster runs within bounded memory. The full figures (100,000 rows; a month of
5,000 files) come from tests/load_figures.py, which takes minutes; this is its small version."""
from __future__ import annotations

import duckdb

from conftest import PERIOD
from load_figures import write_roster
from runs import run

ROWS = 10_000


def test_a_large_roster_runs_within_bounded_memory(tmp_path):
    write_roster(tmp_path / "inbox" / PERIOD / "东区" / "台账.xlsx", ROWS)
    db = tmp_path / "warehouse.duckdb"
    done = run(["run", "--period", PERIOD, "--inbox", str(tmp_path / "inbox"), "--db", str(db)], tmp_path)
    assert done.returncode == 0, done.stderr
    # A safety bound, not a target (measured: about 0.6 GB for 10,000 rows, 0.7 GB for 20,000).
    assert done.peak_rss_mb < 1200, done.peak_rss_mb
    with duckdb.connect(str(db), read_only=True) as c:
        assert c.execute("select count(*) from staging.sg02 where period = ? and counted", [PERIOD]).fetchone() == (
            ROWS,)
        assert c.execute("select value from mart.indicator_values where period = ? and unit_code = '510400000000' "
                         "and indicator_id = 'talent_total'", [PERIOD]).fetchone() == (ROWS,)
