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
    "select * exclude (run_id) from ingest.sheets order by path, sheet, header_row",
    "select * from staging.sg02 order by source_file, excel_row",
    "select * from mart.reporting_completeness order by form, unit_code",
]


def assert_same_warehouse(a: Path, b: Path, queries: list[str] | None = None, every_one_filled: bool = True) -> None:
    """Two warehouses of the same month hold the same rows (run ids aside), none of them empty
    unless `every_one_filled` is False."""
    import duckdb
    with duckdb.connect(str(a), read_only=True) as ca, duckdb.connect(str(b), read_only=True) as cb:
        for q in queries or WAREHOUSE_QUERIES:
            expected = ca.execute(q).fetchall()
            assert (expected or not every_one_filled) and cb.execute(q).fetchall() == expected, q


# What differs between two runs of the same files: which run, when it ran, and how much it could
# take from the month's last run.
RUN_COLUMNS = ("run_id", "flow_run_id", "started_at", "finished_at", "computed_at", "files_reused", "units_rerolled")
# Tables that keep every run's rows: of them, the latest run's are the month's.
EVERY_RUN = ("ingest.runs",)


def every_table_query(db: Path) -> list[str]:
    """A query for each table and view of a warehouse, every column but RUN_COLUMNS (by name: a
    column added to an older warehouse comes last), all rows in order."""
    import duckdb
    from flows.warehouse.rollup import APPEND_ONLY
    with duckdb.connect(str(db), read_only=True) as con:
        relations = con.execute(
            "select schema_name, table_name from duckdb_tables() where schema_name <> 'main' union all "
            "select schema_name, view_name from duckdb_views() where not internal and schema_name <> 'main' "
            "order by all").fetchall()
        # The same tables, views and columns, then the same rows in each.
        queries = ["select schema_name, table_name, column_name, data_type from duckdb_columns() "
                   "where schema_name <> 'main' order by all"]
        for schema, name in relations:
            columns = [c for (c,) in con.execute("select column_name from duckdb_columns() where schema_name = ? "
                                                 "and table_name = ? order by column_name", [schema, name]).fetchall()
                       if c not in RUN_COLUMNS]
            listed = ", ".join(f'"{c}"' for c in columns)
            # Of the tables that keep what each run changed (APPEND_ONLY), each key's latest row.
            latest = (" where run_id = (select run_id from ingest.runs order by finished_at desc limit 1)"
                      if f"{schema}.{name}" in EVERY_RUN else
                      f" qualify row_number() over (partition by {', '.join(('period', *APPEND_ONLY[f'{schema}.{name}']))} "
                      "order by computed_at desc) = 1"
                      if f"{schema}.{name}" in APPEND_ONLY else "")
            queries.append(f"select {listed} from {schema}.{name}{latest} order by all")
    return queries


def assert_same_tables(a: Path, b: Path) -> None:
    """Two warehouses of the same month are equal table by table and view by view, row for row, but
    for which run built them and when (RUN_COLUMNS; of the tables keeping every run, the latest
    run's rows; of those keeping changes, each key's latest). A table or view may be empty (a month in which every unit sent everything misses nothing), as
    long as it is in both; the month's own rows (WAREHOUSE_QUERIES) may not."""
    assert_same_warehouse(a, b)
    assert_same_warehouse(a, b, every_table_query(a), every_one_filled=False)
