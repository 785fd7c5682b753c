"""Plans as data: each month is judged against the plan in force that month, a month no plan covers
has values and no targets (status no_plan), and the reports name the plan.

The 2021-2025 plan is the shipped one (data/plan/2021-2025/); beside it a fictitious 2026-2030 plan
that lives in the tests only (tests/fixtures/plans/2026-2030/). Months on both sides of the
boundary and one after every plan are rolled up through the real SQL, on rosters made up here:
the city's talents are the number of persons listed, so every value is known in advance.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import openpyxl
import pytest

from flows.warehouse import load, rollup
from flows.config import DATA, SCHEMAS, load_settings
from flows.errors import ConfigError
from flows.registry import load_plans, load_population, load_units
from flows.outputs.report import indicator_table
from flows.schemas import load_forms
from flows.outputs.webpage import write_page
from flows.outputs.workbook import SHEETS, write_workbook

FIXTURE_PLAN = Path(__file__).parent / "fixtures" / "plans" / "2026-2030"
CITY, DONGQU = "510400000000", "510402000000"
# Month -> persons on 东区's roster (so the city's talent_total); in the order they are rolled up.
MONTHS = {"2025-11": 10, "2025-12": 12, "2026-01": 13, "2026-02": 15, "2031-01": 20}
FICTITIOUS = "（虚构，仅供测试）社会工作专业人才队伍建设“十五五”规划"
FOURTEENTH = "攀枝花市社会工作专业人才队伍建设“十四五”规划"


def data_with_both_plans(root: Path) -> Path:
    """A copy of data/ whose plan folder holds the shipped plan and the fictitious one: a new plan
    is one more folder, nothing else changes."""
    shutil.copytree(DATA / "registry", root / "registry")
    shutil.copy(DATA / "settings.toml", root / "settings.toml")
    shutil.copytree(DATA / "plan", root / "plan")
    shutil.copytree(FIXTURE_PLAN, root / "plan" / "2026-2030")
    return root


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    settings = load_settings(data_with_both_plans(tmp_path_factory.mktemp("data")))
    forms = load_forms(SCHEMAS)
    db = tmp_path_factory.mktemp("plans") / "w.duckdb"
    con = duckdb.connect(str(db))
    try:
        load.ensure_tables(con, forms)
        load.load_reference(con, load_units(settings.units_csv), load_population(settings.population_csv),
                            load_plans(settings.plans_dir), forms)
        for month, persons in MONTHS.items():
            for i in range(persons):
                con.execute("insert into staging.sg02 (period, source_file, source_sheet, excel_row, accepted, "
                            "superseded, counted, unit_code, person_key, certificate_level) "
                            "values (?, 'f.xlsx', 'S', ?, true, false, true, ?, ?, '社会工作师')",
                            [month, i + 2, DONGQU, f"p{i}"])
            rollup.build(con, month, settings.community_rule)
    finally:
        con.close()
    return db


def rows(db: Path, query: str, params=()) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(query, list(params)).fetchall()


def city(db: Path, month: str, indicator: str) -> tuple:
    return rows(db, """select plan_id, plan_name, value, target, strftime(deadline, '%Y-%m'), status
                       from mart.indicator_values where period = ? and unit_code = ? and indicator_id = ?""",
                [month, CITY, indicator])[0]


def test_both_plans_are_reference_data(warehouse):
    assert rows(warehouse, "select plan_id, name, from_period, to_period from ref.plans order by 1") == [
        ("2021-2025", FOURTEENTH, "2021-01", "2025-12"), ("2026-2030", FICTITIOUS, "2026-01", "2030-12")]
    assert rows(warehouse, "select plan_id, count(*) from ref.indicators group by 1 order by 1") == [
        ("2021-2025", 31), ("2026-2030", 3)]


def test_the_months_before_the_boundary_are_judged_against_the_old_plan(warehouse):
    assert city(warehouse, "2025-11", "talent_total") == ("2021-2025", FOURTEENTH, 10, 2100, "2025-12", "at_risk")
    # The old plan's deadline month: met or not met, as before plans were data.
    assert city(warehouse, "2025-12", "talent_total") == ("2021-2025", FOURTEENTH, 12, 2100, "2025-12", "not_met")
    assert rows(warehouse, "select count(distinct indicator_id) from mart.indicator_values where period = '2025-12'"
                ) == [(31,)]


def test_the_months_from_the_boundary_are_judged_against_the_new_plan(warehouse):
    # Its own target and deadline, never the old plan's passed one: 13 and 15 of 3,000 by 2030-12.
    assert city(warehouse, "2026-01", "talent_total") == ("2026-2030", FICTITIOUS, 13, 3000, "2030-12", "at_risk")
    assert city(warehouse, "2026-02", "talent_total") == ("2026-2030", FICTITIOUS, 15, 3000, "2030-12", "at_risk")
    assert city(warehouse, "2026-02", "certified_total") == ("2026-2030", FICTITIOUS, 15, 1200, "2028-12", "at_risk")
    # Only the new plan's indicators, with its targets where it sets them (a county share of 3,000 here).
    assert rows(warehouse, """select distinct indicator_id from mart.indicator_values where period = '2026-01'
                              order by 1""") == [("certified_total",), ("talent_total",), ("urban_community_talent_avg",)]
    assert rows(warehouse, """select value, target from mart.indicator_values where period = '2026-01'
                              and unit_code = ? and indicator_id = 'talent_total'""", [DONGQU]) == [(13, 3000)]
    # The trend runs across the boundary (the indicator counts the same in both plans): 10, 12, 13, 15.
    slope, projected = rows(warehouse, """select slope_per_month, projected from mart.indicator_values
        where period = '2026-02' and unit_code = ? and indicator_id = 'talent_total'""", [CITY])[0]
    assert slope == pytest.approx(1.6) and projected == pytest.approx(15 + 1.6 * 58)


def test_a_month_no_plan_covers_has_values_and_no_targets(warehouse):
    got = rows(warehouse, """select plan_id, plan_name, status, count(*), count(value), count(target), count(deadline),
                                    count(comparison), count(target_type), count(met), count(gap), count(projected)
                             from mart.indicator_values where period = '2031-01' group by all""")
    n = rows(warehouse, "select count(*) from mart.indicator_values where period = '2026-01'")[0][0]
    # Every row no_plan, with its value (those of the latest plan's indicators) and nothing to judge it by.
    assert got == [(None, None, "no_plan", n, got[0][4], 0, 0, 0, 0, 0, 0, 0)] and got[0][4] > 0
    assert city(warehouse, "2031-01", "talent_total") == (None, None, 20, None, None, "no_plan")
    assert rows(warehouse, """select status_zh, plan_name from analysis.indicators where period = '2031-01'
                              and unit_code = ? and indicator_id = 'talent_total'""", [CITY]) == [("无规划", None)]
    assert rows(warehouse, """select status_zh, plan_id from analysis.indicators where period = '2026-01'
                              and unit_code = ? and indicator_id = 'talent_total'""", [CITY]) == [("有风险", "2026-2030")]
    # The community bar is the plan's in force: 2 then 3 in urban communities, none without a plan.
    assert rows(warehouse, """select period, max(bar) from analysis.community_staffing where community_type = 'urban'
                              group by 1 order by 1""") == [("2025-11", 2), ("2025-12", 2), ("2026-01", 3),
                                                            ("2026-02", 3), ("2031-01", None)]


def test_the_printed_table_and_the_workbook_name_the_plan(warehouse, tmp_path):
    # Projected to 2030-12 from 10, 12, 13 (+1.5 a month): 13 + 1.5 x 59 = 101.5.
    table = indicator_table(warehouse, "2026-01").splitlines()
    assert table[1] == f"对照规划：{FICTITIOUS}（2026-01 至 2030-12）"
    assert next(line for line in table if "社会工作专业人才队伍总量" in line).split() == [
        "1", "社会工作专业人才队伍总量", "13", "人", ">=3,000", "2,987", "2030-12", "101.50", "有风险", "—"]
    table = indicator_table(warehouse, "2031-01").splitlines()
    assert table[1] == "对照规划：无（本月不在任何规划的期限内），各项指标只列当前值，没有目标和期限（状态为“无规划”）"
    assert next(line for line in table if "社会工作专业人才队伍总量" in line).split() == [
        "1", "社会工作专业人才队伍总量", "20", "人", "—", "—", "—", "—", "无规划", "—"]
    assert indicator_table(warehouse, "2025-12").splitlines()[1] == f"对照规划：{FOURTEENTH}（2021-01 至 2025-12）"
    sheet = openpyxl.load_workbook(write_workbook(warehouse, "2031-01", tmp_path))[SHEETS[0]]
    assert sheet["A2"].value == table[1]
    statuses = {r[11] for r in sheet.iter_rows(min_row=4, values_only=True) if r[14]}
    assert statuses == {"无规划"}
    for month, line in (("2031-01", table[1]), ("2026-01", f"对照规划：{FICTITIOUS}（2026-01 至 2030-12）")):
        page = write_page(warehouse, month, tmp_path / month).read_text(encoding="utf-8")
        assert f'<p class="plan">{line}</p>' in page


def test_plans_must_follow_each_other_and_an_id_keeps_its_meaning(tmp_path):
    root = data_with_both_plans(tmp_path / "data")
    plan = root / "plan" / "2026-2030" / "indicators.toml"
    text = plan.read_text(encoding="utf-8")
    plan.write_text(text.replace('from = "2026-01"', 'from = "2025-07"'), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"plans 2021-2025 \(2021-01..2025-12\) and 2026-2030 \(2025-07..2030-12\) "
                                          r"both cover 2025-07"):
        load_plans(root / "plan")
    plan.write_text(text.replace('numerator = "certified_talents"', 'numerator = "talents"'), encoding="utf-8")
    with pytest.raises(ConfigError, match="indicator 'certified_total' counts differently in plans 2021-2025, "
                                          "2026-2030 .* give the new way of counting a new id"):
        load_plans(root / "plan")
    plan.write_text(text.replace('to = "2030-12"\n', ""), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"the \[plan\] table needs to"):
        load_plans(root / "plan")
