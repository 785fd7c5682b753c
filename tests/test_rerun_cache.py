"""A rerun equals a first run, whatever changed: the rerun cache (ingest.read_sgNN) gives a file's
rows only when the file and everything that decides what it yields are as they were (the form
schemas, the reading and conversion code, the registry, the hashing key). For each kind of change
the rerun's warehouse equals a run from scratch, table by table, and the run says in one line why
it read every file again; with nothing changed, every file is taken from the last run."""
from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from conftest import INBOX, PERIOD, assert_same_tables
from fixtures.build_fixtures import SG01, SG03, write_xlsx
from flows.config import DATA, PROJECT, SCHEMAS
from flows.monthly import monthly_rollup
from runs import run

# A township office of 西区 writes 社工站建成情况 for the template's 是否建成社工站, a header the schema
# does not know yet, and adds a column of its own (网格员人数) to the village table.
WEST = "西区/西区社工站月报.xlsx"
TOWNSHIPS = ["510403001000", "510403002000", "510403003000", "510403004000", "510403006000", "510403100000"]
SG03_WEST = [("社工站建成情况" if h == "是否建成社工站" else h) for h in SG03]
STATION = "select value, numerator, denominator from mart.indicator_values where unit_code = '510400000000' " \
          "and indicator_id = 'township_station_coverage'"


def reused(db: Path) -> list[int]:
    with duckdb.connect(str(db), read_only=True) as con:
        return [n for (n,) in con.execute("select files_reused from ingest.runs order by finished_at").fetchall()]


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """The fixture month with 西区's file, run once under a copy of the schemas and the registry
    (settings naming them): the warehouse each change is rerun on."""
    root = tmp_path_factory.mktemp("rerun-cache")
    inbox = root / "inbox"
    shutil.copytree(INBOX, inbox, copy_function=shutil.copy2)
    write_xlsx(inbox / PERIOD / WEST, [
        ("社工站", [["西区乡镇（街道）社工站月报表"], SG03_WEST,
                 *[[code, None, "是", "2023-06-01", "政府购买服务", None, None, 2, 1] for code in TOWNSHIPS]]),
        ("村社区", [["西区村（社区）社会工作月报表"], SG01 + ["网格员人数"],
                 ["510403001003", "杨家坪社区居民委员会", 4000, 700, 6, 2, "是", 5, 1, "是", "否", 1, 0, 12],
                 ["510403001004", "大水井社区居民委员会", 3000, 500, 5, 1, "否", 4, 1, "否", "否", 1, 0, 9]]),
    ])
    data = settings_copy(root / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHEGONG_SETTINGS", str(data / "settings.toml"))
        db = root / "first.duckdb"
        monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    return inbox, data, db


def settings_copy(data: Path) -> Path:
    """This city's settings, registry, plan and form schemas in a folder of their own."""
    for part in ("registry", "plan"):
        shutil.copytree(DATA / part, data / part)
    shutil.copytree(SCHEMAS, data / "schemas")
    (data / "settings.toml").write_text((DATA / "settings.toml").read_text(encoding="utf-8")
                                        + '\n[forms]\nschemas = "schemas"\n', encoding="utf-8")
    return data


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def rerun_and_scratch(first, tmp_path, monkeypatch, caplog, change) -> tuple[Path, Path]:
    """The first run's warehouse rerun after `change(data folder)`, and a run from scratch under
    the change; they must be the same."""
    inbox, data, first_db = first
    changed = tmp_path / "data"
    shutil.copytree(data, changed)
    change(changed)
    monkeypatch.setenv("SHEGONG_SETTINGS", str(changed / "settings.toml"))
    rerun, scratch = tmp_path / "rerun.duckdb", tmp_path / "scratch.duckdb"
    shutil.copy(first_db, rerun)
    with caplog.at_level(logging.WARNING, logger="shegong"):
        monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(rerun))
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(scratch))
    assert_same_tables(rerun, scratch)
    assert reused(rerun) == [0, 0]
    return rerun, scratch


def why(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "read again" in r.getMessage()]


def test_an_alias_added_reads_the_file_again(first, tmp_path, monkeypatch, caplog):
    # The README's advice for a header nobody knew: add the sender's wording to the field's aliases.
    rerun, _ = rerun_and_scratch(first, tmp_path, monkeypatch, caplog, lambda data: edit(
        data / "schemas" / "sg03.toml", 'aliases = ["是否建成乡镇（街道）社工站", "社工站是否建成"]',
        'aliases = ["是否建成乡镇（街道）社工站", "社工站是否建成", "社工站建成情况"]'))
    with duckdb.connect(str(first[2]), read_only=True) as before, duckdb.connect(str(rerun), read_only=True) as after:
        # 西区's six townships were not covered (their column unread); now they are, with 大渡口街道: 7 of 49.
        assert before.execute(STATION).fetchone() == (100 * 1 / 49, 1, 49)
        assert after.execute(STATION).fetchone() == (100 * 7 / 49, 7, 49)
    assert why(caplog) == [f"{PERIOD}: all 10 files read again, none taken from the month's last run: "
                           f"the form schemas changed (sg03.toml)"]


def test_a_field_added_is_read_and_does_not_crash_the_rerun(first, tmp_path, monkeypatch, caplog):
    rerun, _ = rerun_and_scratch(first, tmp_path, monkeypatch, caplog, lambda data: (
        (data / "schemas" / "sg01.toml").open("a", encoding="utf-8").write(
            '\n[[fields]]\nname = "grid_workers"\nheader = "网格员人数"\ntype = "integer"\n'
            'comment = "Grid workers"\n')))
    with duckdb.connect(str(rerun), read_only=True) as con:
        assert con.execute("select unit_code, grid_workers from staging.sg01 where grid_workers is not null "
                           "order by all").fetchall() == [("510403001003", 12), ("510403001004", 9)]
    assert why(caplog) == [f"{PERIOD}: all 10 files read again, none taken from the month's last run: "
                           f"the form schemas changed (sg01.toml)"]


def test_a_header_renamed_reads_the_file_again(first, tmp_path, monkeypatch, caplog):
    # 户籍人口 renamed 户籍登记人口, the old wording kept by nobody: no file's column is that field now.
    rerun, _ = rerun_and_scratch(first, tmp_path, monkeypatch, caplog, lambda data: edit(
        data / "schemas" / "sg01.toml", 'header = "户籍人口"', 'header = "户籍登记人口"'))
    with duckdb.connect(str(rerun), read_only=True) as con:
        assert con.execute("select count(registered_population), count(*) from staging.sg01").fetchone() == (0, 9)


def test_a_registry_change_reads_every_file_again(first, tmp_path, monkeypatch, caplog):
    # (and makes the warehouse's tables and reference again: load.built_with; the rerun equals
    # a run from scratch, ref.units included)
    rerun, _ = rerun_and_scratch(first, tmp_path, monkeypatch, caplog, lambda data: edit(
        data / "registry" / "units.csv", "青皮村村民委员会", "青山村村民委员会"))
    with duckdb.connect(str(rerun), read_only=True) as con:
        assert con.execute("select path, excel_row, value from ingest.failures where rule = 'registry_name' "
                           "and value = '青皮村村民委员会'").fetchall() == [("米易县/攀莲镇2024年3月社工报表.xls", 5,
                                                                        "青皮村村民委员会")]
    assert why(caplog) == [f"{PERIOD}: all 10 files read again, none taken from the month's last run: "
                           f"the registry changed"]


def test_a_rerun_with_nothing_changed_takes_every_file_from_the_last_run(first, tmp_path, monkeypatch, caplog):
    inbox, data, first_db = first
    monkeypatch.setenv("SHEGONG_SETTINGS", str(data / "settings.toml"))
    rerun = tmp_path / "rerun.duckdb"
    shutil.copy(first_db, rerun)
    # Its tables and reference are as the first run made them (load.built_with): not made again.
    from flows.warehouse import load
    made = []
    monkeypatch.setattr(load, "ensure_tables", lambda *a, _real=load.ensure_tables: made.append(1) or _real(*a))
    with caplog.at_level(logging.WARNING, logger="shegong"):
        monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(rerun))
    assert reused(rerun) == [0, 10] and why(caplog) == [] and made == []
    assert_same_tables(first_db, rerun)


def test_a_conversion_changed_and_full(first, tmp_path, monkeypatch):
    """The reading code changed on disk (a copy of the project whose count suffixes no longer
    include 人, so ３０００人 is not a number): `shegong run` reads every file again and says why,
    and gives what a run from scratch gives; `shegong run --full` reads everything though nothing
    changed."""
    inbox, data, first_db = first
    # The project as checked out (its code, schemas, SQL, pinned asset list), without what runs make.
    code = tmp_path / "code"
    shutil.copytree(PROJECT, code, ignore=shutil.ignore_patterns(
        ".*", "__pycache__", "*.egg-info", "tests", "inbox", "province", "feedback", "reports", "templates",
        "validation", "*.duckdb*"))
    edit(code / "flows" / "ingest" / "convert.py", 'r"(人次|人|个|', 'r"(人次|个|')
    # Run from elsewhere: `python -m flows.ingest.sandbox` (the reader process) looks in its working folder first.
    monkeypatch.chdir(tmp_path)
    env = {"PYTHONPATH": str(code), "SHEGONG_SETTINGS": str(data / "settings.toml")}
    rerun, scratch, full = tmp_path / "rerun.duckdb", tmp_path / "scratch.duckdb", tmp_path / "full.duckdb"
    shutil.copy(first_db, rerun)
    shutil.copy(first_db, full)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    args = ["run", "--period", PERIOD, "--inbox", str(inbox), "--db"]
    a = run(args + [str(rerun)], tmp_path / "a", **env)
    assert a.returncode == 0, a.stderr
    assert re.findall(r"WARNING shegong: (.*read again.*)", a.stderr) == [
        f"{PERIOD}: all 10 files read again, none taken from the month's last run: "
        f"the reading code or its libraries changed"]
    b = run(args + [str(scratch)], tmp_path / "b", **env)
    assert b.returncode == 0, b.stderr
    assert_same_tables(rerun, scratch)
    with duckdb.connect(str(rerun), read_only=True) as con:
        # The changed conversion took effect: 金福社区's ３０００人 is no number now.
        assert con.execute("select rule, value from ingest.failures where path like '%新建 Microsoft Excel 工作表.xlsx' "
                           "and field = 'registered_population'").fetchall() == [("type", "３０００人")]
    # Nothing changed, the old code: --full still takes nothing from the last run.
    c = run(args + [str(full), "--full"], tmp_path / "c", SHEGONG_SETTINGS=str(data / "settings.toml"))
    assert c.returncode == 0, c.stderr
    assert re.findall(r"WARNING shegong: (.*read again.*)", c.stderr) == [
        f"{PERIOD}: all 10 files read again, none taken from the month's last run: asked for (--full)"]
    assert reused(full) == [0, 0]
    assert_same_tables(first_db, full)


def test_a_month_whose_cached_rows_were_dropped_is_read_again(first, tmp_path, monkeypatch, caplog):
    """A field added, another month run (the read cache tables are rebuilt for the new columns),
    the field taken out again: the first month's last run read under today's schemas, but its
    cached rows are gone. The rerun reads its files again rather than roll up a month without rows."""
    inbox, data, first_db = first
    db = tmp_path / "w.duckdb"
    shutil.copy(first_db, db)
    added = tmp_path / "added"
    shutil.copytree(data, added)
    with (added / "schemas" / "sg01.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[[fields]]\nname = "grid_workers"\nheader = "网格员人数"\ntype = "integer"\ncomment = "Grid workers"\n')
    april = tmp_path / "inbox"
    shutil.copytree(inbox / PERIOD / "市本级", april / "2024-04" / "市本级", copy_function=shutil.copy2)
    monkeypatch.setenv("SHEGONG_SETTINGS", str(added / "settings.toml"))
    monthly_rollup(period="2024-04", inbox=str(april), db=str(db))
    monkeypatch.setenv("SHEGONG_SETTINGS", str(data / "settings.toml"))
    with caplog.at_level(logging.WARNING, logger="shegong"):
        monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    assert why(caplog) == [f"{PERIOD}: all 10 files read again, none taken from the month's last run: "
                           f"the read cache of SG-01 does not hold the rows the last run read"]
    query = "select * from mart.indicator_values where period = ? order by all"
    with duckdb.connect(str(first_db), read_only=True) as a, duckdb.connect(str(db), read_only=True) as b:
        assert b.execute(query, [PERIOD]).fetchall() == a.execute(query, [PERIOD]).fetchall()
        assert b.execute("select count(*) from staging.sg01 where period = ?", [PERIOD]).fetchone() == (9,)


def test_a_rerun_rewrites_the_read_rows_of_changed_files_only_and_equals_a_run_from_scratch(first, tmp_path,
                                                                                               monkeypatch):
    """One file corrected, another only touched (a day later, same bytes): the rerun parses the
    first, keeps the other's stored rows but for their time of receipt, which it rewrites, and
    leaves every other file's rows in the read cache as they were. Its warehouse is a first run's."""
    import datetime as dt
    import os
    inbox, data, first_db = first
    monkeypatch.setenv("SHEGONG_SETTINGS", str(data / "settings.toml"))
    moved = tmp_path / "inbox"
    shutil.copytree(inbox, moved, copy_function=shutil.copy2)
    corrected = moved / PERIOD / "市本级" / "市综合.csv"
    corrected.write_bytes(corrected.read_bytes().replace(b",2\r\n", b",3\r\n"))  # outstanding talents 2 -> 3
    touched = moved / PERIOD / "米易县" / "SG-02台账.csv"
    later = touched.stat().st_mtime + 86400
    os.utime(touched, (later, later))
    rerun, scratch = tmp_path / "rerun.duckdb", tmp_path / "scratch.duckdb"
    shutil.copy(first_db, rerun)
    monthly_rollup(period=PERIOD, inbox=str(moved), db=str(rerun))
    monthly_rollup(period=PERIOD, inbox=str(moved), db=str(scratch))
    assert reused(rerun) == [0, 9]
    assert_same_tables(rerun, scratch)
    with duckdb.connect(str(rerun), read_only=True) as con:
        times = con.execute("select distinct _received_at from ingest.read_sg02 where _file = '米易县/SG-02台账.csv'"
                            ).fetchall()
        value = con.execute("select value from mart.indicator_values where unit_code = '510400000000' and "
                            "indicator_id = 'outstanding_talent_total'").fetchone()[0]
    assert len(times) == 1 and abs((times[0][0] - dt.datetime.fromtimestamp(later, dt.UTC).replace(tzinfo=None))
                                   .total_seconds()) < 1
    assert value == 3
