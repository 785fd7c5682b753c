"""Months rerun after late or corrected files: the new figures replace the old in
mart.indicator_values, and every run's figures stay in mart.indicator_history."""
from __future__ import annotations

import shutil

import duckdb

from conftest import INBOX, PERIOD
from flows.monthly import monthly_rollup

LATE = "米易县/SG-02台账.csv"


def test_late_file_changes_the_month_and_history_keeps_the_first_revision(tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(INBOX, inbox)
    late = inbox / PERIOD / LATE
    held = tmp_path / "late.csv"
    shutil.move(late, held)
    db = tmp_path / "w.duckdb"
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    shutil.move(held, late)  # 米易县's roster arrives after the first run
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        now = con.execute("select value from mart.indicator_values where unit_code = '510400000000' "
                          "and indicator_id = 'talent_total'").fetchone()[0]
        assert now == 9  # R1, R2, R3 join the six of 东区
        history = con.execute("""
            select h.value, r.files
            from mart.indicator_history h join ingest.runs r using (run_id)
            where h.unit_code = '510400000000' and h.indicator_id = 'talent_total'
            order by h.computed_at""").fetchall()
        assert history == [(6.0, 8), (9.0, 9)]
        per_run = con.execute("select count(*) from mart.indicator_history group by run_id").fetchall()
        assert per_run == [(6966,), (6966,)]
