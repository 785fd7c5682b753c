"""Months rerun after late or corrected files: the new figures replace the old in
mart.indicator_values, and mart.indicator_history keeps what each run changed."""
from __future__ import annotations

import shutil

import duckdb

from conftest import INBOX, PERIOD, assert_same_tables, assert_same_warehouse
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
    first = tmp_path / "first.duckdb"
    shutil.copyfile(db, first)
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
        # The first run's every value; the rerun's only those that changed: the rows of 米易县's
        # units (its roster's villages, its townships, the county) and the city, counted here
        # from the two runs' published values.
        per_run = con.execute("select count(*) from mart.indicator_history h join ingest.runs r using (run_id) "
                              "group by r.finished_at order by r.finished_at").fetchall()
        con.execute(f"attach '{first}' as first (read_only)")
        changed = con.execute("select count(*) from (select * from mart.indicator_values except all "
                              "select * from first.mart.indicator_values)").fetchone()[0]
        assert per_run == [(6966,), (changed,)] and changed == 38
        # The latest row of each unit and indicator is what is published now.
        assert con.execute("""
            select count(*) from (
                select * exclude (run_id, computed_at) from mart.indicator_history
                qualify row_number() over (partition by period, unit_code, indicator_id order by computed_at desc) = 1
                except all select * from mart.indicator_values)""").fetchone()[0] == 0
        con.execute("detach first")
        # The rerun parsed only the late file; the eight unchanged ones came from the first run.
        assert con.execute("select files_reused from ingest.runs order by finished_at").fetchall() == [(0,), (8,)]
    # ...and gives the same warehouse as a run from scratch on the same files.
    scratch = tmp_path / "scratch.duckdb"
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(scratch))
    assert_same_warehouse(db, scratch)


def test_a_changed_file_is_read_again_and_another_key_reads_everything(tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    shutil.copytree(INBOX, inbox)
    db = tmp_path / "w.duckdb"
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    csv = inbox / PERIOD / "市本级" / "市综合.csv"
    csv.write_bytes(csv.read_bytes().replace(b",2\r\n", b",3\r\n"))  # outstanding talents 2 -> 3
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    monkeypatch.setenv("SHEGONG_ID_KEY", "another-key-" + "fedcba9876543210" * 3)
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select files_reused from ingest.runs order by finished_at").fetchall() == [(0,), (8,), (0,)]
        assert con.execute("select value from mart.indicator_values where unit_code = '510400000000' and "
                           "indicator_id = 'outstanding_talent_total'").fetchone() == (3.0,)


def test_a_sender_that_sent_nothing_is_carried_forward_marked_stale_up_to_the_limit(tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(INBOX, inbox)
    for month in ("2024-04", "2024-08"):  # only 东区民政局 and the city send; both towns send nothing
        (inbox / month / "东区").mkdir(parents=True)
        shutil.copy(INBOX / PERIOD / "东区" / "东区民政局3月.xlsx", inbox / month / "东区")
        shutil.copytree(INBOX / PERIOD / "市本级", inbox / month / "市本级")
    db = tmp_path / "w.duckdb"
    for month in (PERIOD, "2024-04", "2024-08"):
        monthly_rollup(period=month, inbox=str(inbox), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        sg01 = con.execute("select unit_code, carried_from, stale_months, counted from staging.sg01 "
                           "where period = '2024-04' order by unit_code").fetchall()
        assert sg01 == [(c, "2024-03", 1, True) for c in
                        ("510402001002", "510402001004", "510402001005", "510421100001", "510421100200", "510421100201")]
        value = "select value, units_carried from mart.indicator_values where period = ? and unit_code = ? and indicator_id = ?"
        assert con.execute(value, ["2024-04", "510400000000", "talent_total"]).fetchone() == (9.0, 8)
        assert con.execute(value, ["2024-04", "510402000000", "community_worker_certified_share"]).fetchone() == (
            5 * 100 / 14, 3)
        assert con.execute(value, [PERIOD, "510400000000", "talent_total"]).fetchone() == (9.0, 0)
        # Carried rows are not received: completeness still says the towns sent nothing.
        got = con.execute("select count(*) filter (where received) from mart.reporting_completeness "
                          "where period = '2024-04' and form in ('SG-01', 'SG-03')").fetchone()[0]
        assert got == 0
        # Five months on, past the three-month limit: nothing is carried; only 东区's own person counts.
        assert con.execute("select count(*) from staging.sg01 where period = '2024-08'").fetchone()[0] == 0
        assert con.execute(value, ["2024-08", "510400000000", "talent_total"]).fetchone() == (1.0, 0)


def test_completeness_never_exceeds_a_hundred_percent(month_db):
    with duckdb.connect(str(month_db), read_only=True) as con:
        rows = con.execute("""
            select form, count(*), count(*) filter (where received), count(*) filter (where on_time)
            from mart.reporting_completeness where period = '2024-03' group by form order by form""").fetchall()
    # SG-01: 7 of 336 communities (南山's sheet was last month's); SG-02 from 大渡口街道, 攀莲镇 and 东区.
    assert [(f, n, got) for f, n, got, _ in rows] == [
        ("SG-01", 336, 7), ("SG-02", 55, 3), ("SG-03", 49, 2), ("SG-04", 6, 2), ("SG-05", 6, 1), ("SG-06", 6, 2)]
    assert all(on_time <= got <= n for _, n, got, on_time in rows)


def test_a_carried_row_never_doubles_a_row_another_sender_sent(tmp_path):
    from fixtures.build_fixtures import SG01, write_xlsx
    inbox = tmp_path / "inbox"
    shutil.copytree(INBOX, inbox)
    # April: 攀莲镇 sends nothing, but its county sends one of its communities' rows.
    write_xlsx(inbox / "2024-04" / "米易县" / "县汇总.xlsx", [("Sheet1", [
        ["表号：SG-01", "填报单位：米易县"], SG01,
        ["510421100001", "城北社区居民委员会", 6100, 1200, 10, 5, "是", 12, 2, "是", "否", 2, 2]])])
    db = tmp_path / "w.duckdb"
    for month in (PERIOD, "2024-04"):
        monthly_rollup(period=month, inbox=str(inbox), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select unit_code, carried_from, counted from staging.sg01 where period = '2024-04' "
                           "and unit_code like '5104211002%' or (period = '2024-04' and unit_code = '510421100001') "
                           "order by unit_code, carried_from nulls first").fetchall()
        assert rows == [("510421100001", None, True), ("510421100001", "2024-03", False),
                        ("510421100200", "2024-03", True), ("510421100201", "2024-03", True)]
        facts = con.execute("select sg01_registered_population, urban_communities from intermediate.unit_facts "
                            "where period = '2024-04' and unit_code = '510421100001'").fetchone()
        assert facts == (6100, 1)


def test_an_urban_community_that_did_not_report_does_not_meet_the_bar(month_db):
    with duckdb.connect(str(month_db), read_only=True) as con:
        row = con.execute("select value, numerator, denominator, status from mart.indicator_values where "
                          "unit_code = '510402002000' and indicator_id = 'urban_community_certified_ge2_share'").fetchone()
    assert row == (0.0, 0.0, 8.0, "not_met")  # 炳草岗街道: 8 urban communities, none reported; due 2023-12


def test_a_rerun_validates_every_file_again_when_the_registry_changed(tmp_path, monkeypatch):
    """Unchanged files keep the last run's validation only while the rules, forms and registry are
    the same: a renamed village is checked against its new name, as a run from scratch would."""
    from flows.config import load_settings
    inbox = tmp_path / "inbox"
    shutil.copytree(INBOX, inbox)
    db = tmp_path / "w.duckdb"
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    data, ours = tmp_path / "data", load_settings().units_csv.parents[1]
    for part in ("registry", "plan"):
        shutil.copytree(ours / part, data / part)
    shutil.copy(ours / "settings.toml", data)
    units = data / "registry" / "units.csv"
    units.write_text(units.read_text(encoding="utf-8").replace("青皮村村民委员会", "青山村村民委员会"), encoding="utf-8")
    monkeypatch.setenv("SHEGONG_SETTINGS", str(data / "settings.toml"))
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    scratch = tmp_path / "scratch.duckdb"
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(scratch))
    warning = ("米易县/攀莲镇2024年3月社工报表.xls", 5, "registry_name", "青皮村村民委员会")
    query = "select path, excel_row, rule, value from ingest.failures where rule = 'registry_name' order by all"
    with duckdb.connect(str(db), read_only=True) as a, duckdb.connect(str(scratch), read_only=True) as b:
        # The registry is part of what reading depends on too: every file was read again.
        assert a.execute("select files_reused from ingest.runs order by finished_at").fetchall() == [(0,), (0,)]
        assert warning in a.execute(query).fetchall()
        first, second = a.execute("select validated_with from ingest.runs order by finished_at").fetchall()
        assert first != second
        q = "select * exclude (run_id) from ingest.failures order by all"
        assert a.execute(q).fetchall() == b.execute(q).fetchall()


def test_a_rerun_keeps_the_validation_of_unchanged_files(tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(INBOX, inbox)
    db = tmp_path / "w.duckdb"
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    # The last run's verdicts on unchanged files stand: one taken away shows that they were not
    # looked at again (a real rerun never finds the warehouse changed under it like this).
    with duckdb.connect(str(db)) as con:
        con.execute("delete from ingest.failures where rule = 'le' and excel_row = 8")
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from ingest.failures where rule = 'le'").fetchall() == [(0,)]
        first, second = con.execute("select validated_with from ingest.runs order by finished_at").fetchall()
        assert first == second and len(first[0]) == 64


def test_a_rerun_recomputes_the_indicators_of_the_units_it_changed_only(tmp_path):
    """A person leaves a village's roster: the rerun recomputes the indicators of that village and
    its ancestors (township, county, city), keeps every other unit's, and gives the warehouse a
    run from scratch gives. With nothing changed, it recomputes none."""
    inbox = tmp_path / "inbox"
    shutil.copytree(INBOX, inbox)
    db = tmp_path / "w.duckdb"
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:  # nothing changed: nothing added to the history
        assert con.execute("select count(*) from mart.indicator_history").fetchall() == [(6966,)]
    roster = inbox / PERIOD / LATE
    lines = roster.read_bytes().split(b"\r\n")
    left = [line for line in lines if "冯八".encode("gbk") in line]
    assert len(left) == 1 and left[0].startswith(b"510421100001,")
    roster.write_bytes(b"\r\n".join(line for line in lines if line not in left))
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    scratch = tmp_path / "scratch.duckdb"
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(scratch))
    with duckdb.connect(str(db), read_only=True) as con:
        units = con.execute("select count(*) from intermediate.units").fetchone()[0]
        ancestors = con.execute("select count(*) from intermediate.unit_closure "
                                "where descendant_code = '510421100001'").fetchone()[0]
        runs = con.execute("select units_rerolled from ingest.runs order by finished_at").fetchall()
    assert ancestors == 4  # the village itself, 攀莲镇, 米易县, the city
    assert runs == [(units,), (0,), (ancestors,)]
    assert_same_tables(db, scratch)


def test_a_rerun_after_an_earlier_month_changed_recomputes_every_unit(tmp_path):
    """The trend of a month's indicators reads the eleven months before it: once one of them has
    been run since, a rerun of the month recomputes every unit, as a run from scratch does."""
    inbox = tmp_path / "inbox"
    shutil.copytree(INBOX, inbox)
    db = tmp_path / "w.duckdb"
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    monthly_rollup(period="2024-02", inbox=str(inbox), db=str(db))  # nothing received that month
    monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        units = con.execute("select count(*) from intermediate.units").fetchone()[0]
        runs = con.execute("select period, files_reused, units_rerolled from ingest.runs order by finished_at").fetchall()
    assert runs == [(PERIOD, 0, units), ("2024-02", 0, units), (PERIOD, 9, units)]
