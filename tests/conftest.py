"""Shared fixtures: a fixed hashing key, Prefect's test harness, and the fixture month rolled up once."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ["SHEGONG_ID_KEY"] = "test-key-" + "0123456789abcdef" * 3
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

FIXTURES = Path(__file__).parent / "fixtures"
INBOX = FIXTURES / "inbox"
PERIOD = "2024-03"


@pytest.fixture(scope="session", autouse=True)
def prefect_harness():
    """A throwaway Prefect API for the whole session (the real engine, a temporary database)."""
    from prefect.testing.utilities import prefect_test_harness
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def month_db(tmp_path_factory) -> Path:
    """The fixture month (tests/fixtures/inbox/2024-03) rolled up once into a fresh warehouse."""
    from flows.monthly import monthly_rollup
    inbox = tmp_path_factory.mktemp("inbox")
    shutil.copytree(INBOX, inbox, dirs_exist_ok=True)
    db = tmp_path_factory.mktemp("wh") / "warehouse.duckdb"
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    return db


# Files that "arrived late": the month is published without them, so that a rerun reads them again
# (a CSV in this process, a workbook in a reader process).
LATE = [Path("市本级") / "市综合.csv", Path("东区") / "东区民政局3月.xlsx"]


@pytest.fixture(scope="session")
def published_once(tmp_path_factory) -> tuple[Path, Path]:
    """The fixture month published without the LATE files, which have arrived since: (inbox, warehouse)."""
    from flows.monthly import monthly_rollup
    tmp = tmp_path_factory.mktemp("published")
    inbox = tmp / "inbox"
    shutil.copytree(INBOX, inbox)
    held = {path: (inbox / PERIOD / path).read_bytes() for path in LATE}
    for path in LATE:
        (inbox / PERIOD / path).unlink()
    db = tmp / "wh" / "warehouse.duckdb"
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    for path, data in held.items():
        (inbox / PERIOD / path).write_bytes(data)
        shutil.copystat(INBOX / PERIOD / path, inbox / PERIOD / path)
    return inbox, db


@pytest.fixture
def published(published_once, tmp_path) -> tuple[Path, Path]:
    """A copy of it for one test."""
    inbox, db = tmp_path / "inbox", tmp_path / "wh" / "warehouse.duckdb"
    shutil.copytree(published_once[0], inbox)
    db.parent.mkdir()
    shutil.copy2(published_once[1], db)
    return inbox, db


@pytest.fixture
def con(month_db):
    import duckdb
    c = duckdb.connect(str(month_db), read_only=True)
    yield c
    c.close()


def value_of(con, unit: str, indicator: str, period: str = PERIOD):
    row = con.execute("select value, numerator, denominator, target, met from mart.indicator_values "
                      "where period = ? and unit_code = ? and indicator_id = ?", [period, unit, indicator]).fetchone()
    assert row is not None, f"no row for {unit} {indicator}"
    return row


# What a month's warehouse holds, in an order that does not depend on how it was built.
WAREHOUSE_QUERIES = [
    "select * from mart.indicator_values order by unit_code, indicator_id",
    "select * exclude (run_id) from ingest.failures order by all",
    "select * exclude (run_id) from ingest.files order by path",
    "select * exclude (run_id) from ingest.sheets order by path, sheet",
    "select * from staging.sg02 order by source_file, excel_row",
    "select * from mart.reporting_completeness order by form, unit_code",
]


def assert_same_warehouse(a: Path, b: Path) -> None:
    """Two warehouses of the same month hold the same rows (run ids aside), none of them empty."""
    import duckdb
    with duckdb.connect(str(a), read_only=True) as ca, duckdb.connect(str(b), read_only=True) as cb:
        for q in WAREHOUSE_QUERIES:
            expected = ca.execute(q).fetchall()
            assert expected and cb.execute(q).fetchall() == expected, q
