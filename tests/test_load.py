"""Load: a large roster runs within bounded memory, and DuckDB within the memory the settings give
it. The full figures (100,000 rows; a month of 5,000 files) come from tests/load_figures.py, which
takes minutes; this is its small version."""
from __future__ import annotations

import shutil

import duckdb
import pytest

from conftest import INBOX, PERIOD
from flows.config import load_settings
from flows.errors import ConfigError
from flows.monthly import monthly_rollup
from flows.warehouse import load
from load_figures import write_roster
from runs import building, run, sha256
from test_rerun_cache import edit, settings_copy

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


def test_duckdb_builds_the_month_within_the_memory_the_settings_give_it(tmp_path, monkeypatch):
    """warehouse.memory_limit is DuckDB's limit while a run builds the month (its own default is
    80 % of the machine's memory, which it fills as it likes); a limit too small for the month
    stops the run with what to change, leaving the published warehouse as it was."""
    assert load_settings().memory_limit == "512MB"
    with load.connect(tmp_path / "limited.duckdb", "v1.1.0", "300MB") as con:
        assert con.execute("select current_setting('memory_limit')").fetchone() == ("286.1 MiB",)
    data = settings_copy(tmp_path / "data")
    monkeypatch.setenv("SHEGONG_SETTINGS", str(data / "settings.toml"))
    shutil.copytree(INBOX, tmp_path / "inbox")
    db = tmp_path / "wh" / "warehouse.duckdb"
    monthly_rollup(period=PERIOD, inbox=str(tmp_path / "inbox"), db=str(db))
    before = sha256(db)
    edit(data / "settings.toml", 'memory_limit = "512MB"', 'memory_limit = "1MB"')
    with pytest.raises(ConfigError) as err:
        monthly_rollup(period=PERIOD, inbox=str(tmp_path / "inbox"), db=str(db))
    assert str(err.value) == (f"DuckDB ran out of the memory warehouse.memory_limit gives it (1MB) while building "
                              f"{PERIOD}; raise it in {data / 'settings.toml'} and run the month again (the "
                              f"published warehouse is unchanged)")
    assert sha256(db) == before and building(db) == []
    edit(data / "settings.toml", 'memory_limit = "1MB"', 'memory_limit = "half"')
    with pytest.raises(ConfigError, match=r'warehouse.memory_limit must be a size such as "512MB" or "2GiB", '
                                          r"found 'half'"):
        load_settings()
