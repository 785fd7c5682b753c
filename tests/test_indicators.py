"""Every indicator of the plan on the fixture month, by hand (see test_rollup.py's docstring
for who is counted where, and build_fixtures.py for the rows), and their status."""
from __future__ import annotations

import duckdb
import pytest

from conftest import value_of

CITY, DONGQU, MIYI = "510400000000", "510402000000", "510421000000"
DADUKOU, PANLIAN = "510402001000", "510421100000"

# The ids of the plan's indicators.md: the ten, then the further targets.
PLAN_IDS = [
    "talent_total", "talent_per_mille", "certified_total", "community_worker_certified_share",
    "urban_community_talent_avg", "rural_community_talent_avg", "elderly_talent_total", "minor_talent_total",
    "org_party_coverage", "township_station_coverage",
    "elder_institution_post_coverage", "elderly_1000_community_coverage", "child_worker_exam_training_share",
    "urban_community_certified_ge2_share", "urban_party_secretary_certified_share", "urban_community_social_org_avg",
    "rural_community_social_org_avg", "community_volunteer_team_avg", "civil_affairs_institution_post_coverage",
    "org_party_form_compliance", "county_station_coverage", "station_certified_staffing_share",
    "continuing_education_on_track_share", "exam_pass_rate", "community_allowance_monthly_yuan",
]


def test_every_indicator_of_the_plan_has_a_row_for_every_unit_of_its_levels(con):
    got = dict(con.execute("select indicator_id, count(*) from mart.indicator_values where period = '2024-03' "
                           "group by all").fetchall())
    assert set(PLAN_IDS) <= set(got)
    per_level = {"city": 1, "county": 5, "township": 49, "village": 336}
    for ind, levels in con.execute("select id, levels from ref.indicators").fetchall():
        assert got[ind] == sum(per_level[lv] for lv in levels), ind


@pytest.mark.parametrize("unit, indicator, expected", [
    # children: directors (SG-01, where trained is known too) + supervisors (SG-03)
    (CITY, "child_worker_exam_training_share", (4 + 1) * 100 / (7 + 3)),
    (DONGQU, "child_worker_exam_training_share", (1 + 1) * 100 / (3 + 1)),
    (MIYI, "child_worker_exam_training_share", (3 + 0) * 100 / (4 + 2)),
    (DADUKOU, "child_worker_exam_training_share", 50.0), (PANLIAN, "child_worker_exam_training_share", 50.0),
    # allowance: P1 社会工作师 300 + P3 助理 100 + P6 高级 500 + R2 助理 100
    (CITY, "community_allowance_monthly_yuan", 1000), (DONGQU, "community_allowance_monthly_yuan", 900),
    (DADUKOU, "community_allowance_monthly_yuan", 900), (MIYI, "community_allowance_monthly_yuan", 100),
    # volunteer teams over communities reporting them
    (CITY, "community_volunteer_team_avg", 8 / 6), (DONGQU, "community_volunteer_team_avg", 4 / 3),
    (MIYI, "community_volunteer_team_avg", 4 / 3), (DADUKOU, "community_volunteer_team_avg", 4 / 3),
    # continuing education, pro rata at 2024-03: only P6 (高级, from 2024-01, 10 h >= 7.5 h) is on track
    (CITY, "continuing_education_on_track_share", 100 / 6), (DONGQU, "continuing_education_on_track_share", 25.0),
    (MIYI, "continuing_education_on_track_share", 0.0), (DADUKOU, "continuing_education_on_track_share", 25.0),
    # county general stations: 东区 only
    (CITY, "county_station_coverage", 20.0), (DONGQU, "county_station_coverage", 100.0),
    (MIYI, "county_station_coverage", 0.0),
    # elder-care homes over 100 residents: 东区社会福利院 (posts) and 颐年养老院 (none)
    (CITY, "elder_institution_post_coverage", 50.0), (DONGQU, "elder_institution_post_coverage", 50.0),
    (DADUKOU, "elder_institution_post_coverage", None),
    # communities over 1000 elderly: 东方红 (P3) and 城北 (R1)
    (CITY, "elderly_1000_community_coverage", 100.0), (DONGQU, "elderly_1000_community_coverage", 100.0),
    (MIYI, "elderly_1000_community_coverage", 100.0), ("510402001002", "elderly_1000_community_coverage", None),
    # exam pass rate: own SG-06 rows
    (CITY, "exam_pass_rate", 80 * 100 / 300), (DONGQU, "exam_pass_rate", 12 * 100 / 40), (MIYI, "exam_pass_rate", None),
    # organisations with 3+ members: only 东区甲 (standalone)
    (CITY, "org_party_form_compliance", 100.0), (DONGQU, "org_party_form_compliance", 100.0),
    (MIYI, "org_party_form_compliance", None),
    (CITY, "station_certified_staffing_share", 100.0), (MIYI, "station_certified_staffing_share", None),
    (DADUKOU, "station_certified_staffing_share", 100.0), (PANLIAN, "station_certified_staffing_share", None),
    # urban communities: 2+ certified workers (大渡口街, 东方红, 城北); certified secretary (大渡口街, 金福, 城北)
    (CITY, "urban_community_certified_ge2_share", 3 * 100 / 106), (DONGQU, "urban_community_certified_ge2_share", 5.0),
    (DADUKOU, "urban_community_certified_ge2_share", 40.0), (MIYI, "urban_community_certified_ge2_share", 100 / 13),
    (PANLIAN, "urban_community_certified_ge2_share", 25.0),
    (CITY, "urban_party_secretary_certified_share", 3 * 100 / 106), (DONGQU, "urban_party_secretary_certified_share", 5.0),
    (DADUKOU, "urban_party_secretary_certified_share", 40.0), (PANLIAN, "urban_party_secretary_certified_share", 25.0),
    # community social organisations over communities reporting them
    (CITY, "urban_community_social_org_avg", (10 + 6 + 5 + 12) / 4), (DONGQU, "urban_community_social_org_avg", 7.0),
    (MIYI, "urban_community_social_org_avg", 12.0), (CITY, "rural_community_social_org_avg", 1.5),
    (DONGQU, "rural_community_social_org_avg", None),
    (DONGQU, "civil_affairs_institution_post_coverage", 50.0),
    (CITY, "city_support_centre_built", 0),
    # the rest of the city / county / township grid
    (DADUKOU, "community_worker_certified_share", 5 * 100 / 14), (PANLIAN, "community_worker_certified_share", 31.25),
    (DADUKOU, "elderly_talent_total", 3), (PANLIAN, "elderly_talent_total", 1),
    (DADUKOU, "minor_talent_total", 3), (PANLIAN, "minor_talent_total", 0),
    (DADUKOU, "elderly_1000_community_coverage", 100.0), (DONGQU, "station_certified_staffing_share", 100.0),
    (DADUKOU, "urban_community_social_org_avg", 7.0), (PANLIAN, "rural_community_social_org_avg", 1.5),
    (DONGQU, "county_station_total", 1), (MIYI, "county_station_total", 0),
    (DONGQU, "station_and_room_total", 3), (DADUKOU, "station_and_room_total", 3), (PANLIAN, "station_and_room_total", 1),
    (DONGQU, "charity_fund_total", 1), (DADUKOU, "charity_fund_total", 1), (PANLIAN, "charity_fund_total", 0),
    (MIYI, "incubated_org_total", 0), (PANLIAN, "community_allowance_monthly_yuan", 100),
])
def test_further_indicator_values(con, unit, indicator, expected):
    value = value_of(con, unit, indicator)[0]
    assert value == (None if expected is None else pytest.approx(expected, rel=1e-12))


@pytest.mark.parametrize("unit, indicator, share", [
    (CITY, "urban_community_talent_avg", 100 / 106),       # only 大渡口街社区 has 2 talents
    (CITY, "rural_community_talent_avg", 100 / 230),       # only 青皮村 has 1
    (DADUKOU, "urban_community_talent_avg", 20.0),
    (CITY, "urban_community_social_org_avg", 25.0),        # 城北 has 12
    (CITY, "rural_community_social_org_avg", 0.0),
    (CITY, "community_volunteer_team_avg", 100.0),
    (CITY, "talent_total", None),                           # not an average
])
def test_share_of_communities_meeting_the_bar_beside_each_average(con, unit, indicator, share):
    got = con.execute("select share_meeting from mart.indicator_values where unit_code = ? and indicator_id = ?",
                      [unit, indicator]).fetchone()[0]
    assert got == (None if share is None else pytest.approx(share, rel=1e-12))


def test_status_when_due_is_met_or_not(con):
    rows = dict(con.execute("select unit_code, status from mart.indicator_values where period = '2024-03' and "
                            "indicator_id = 'township_station_coverage' and unit_code in (?, ?)",
                            [CITY, DADUKOU]).fetchall())
    assert rows == {CITY: "not_met", DADUKOU: "met"}  # due 2022-12


def _status(rows: list[tuple], period: str, target=20.0, deadline="2024-12-31", comparison=">="):
    """The mart's status and projection for one unit's made-up monthly values."""
    from flows.config import SQL
    con = duckdb.connect()
    con.execute("create schema intermediate")
    # The mart also reads carried rows and indicator sources: empty here.
    for schema in ("staging", "ref"):
        con.execute(f"create schema {schema}")
    con.execute("create table staging.form_rows (form varchar, period varchar, unit_code varchar, "
                "carried_from varchar, counted boolean)")
    con.execute("create table ref.indicators (id varchar, numerator varchar, denominator varchar, meeting varchar)")
    con.execute("create table ref.figure_sources (figure varchar, source varchar, form varchar)")
    con.execute("create table intermediate.unit_closure (ancestor_code varchar, descendant_code varchar)")
    con.execute("create table intermediate.indicator_figures (period varchar, period_start date, unit_code varchar, "
                "indicator_id varchar, value double, target double, comparison varchar, deadline date, met boolean)")
    for p, v in rows:
        con.execute("insert into intermediate.indicator_figures values (?, ?, 'u', 'i', ?, ?, ?, ?, ?)",
                    [p, f"{p}-01", v, target, comparison, deadline, v >= target if comparison == ">=" else v <= target])
    con.execute("set variable period = ?", [period])
    con.execute("set variable period_start = ?::date", [f"{period}-01"])
    q = (SQL / "marts" / "indicator_values.sql").read_text(encoding="utf-8")
    return con.execute(f"select status, projected, slope_per_month from ({q})").fetchone()


def test_projection_to_the_deadline_decides_on_track_or_at_risk():
    # 10, 12, 14 by March: +2 a month, 9 months to December: 14 + 18 = 32 >= 20.
    assert _status([("2024-01", 10), ("2024-02", 12), ("2024-03", 14)], "2024-03") == ("on_track", 32.0, 2.0)
    # 10, 10.5, 11: 11 + 0.5 * 9 = 15.5 < 20.
    assert _status([("2024-01", 10), ("2024-02", 10.5), ("2024-03", 11)], "2024-03") == ("at_risk", 15.5, 0.5)
    # Already met and not falling.
    assert _status([("2024-01", 21), ("2024-02", 21), ("2024-03", 22)], "2024-03")[0] == "on_track"
    # Met but falling below the target by the deadline.
    assert _status([("2024-01", 30), ("2024-02", 26), ("2024-03", 22)], "2024-03") == ("at_risk", -14.0, -4.0)
    # Fewer than three months: no trend, the value as it stands.
    assert _status([("2024-02", 10), ("2024-03", 14)], "2024-03") == ("at_risk", 14.0, None)
    # Due: met or not, whatever the trend.
    assert _status([("2024-11", 10), ("2024-12", 19), ("2025-01", 25)], "2025-01")[0] == "met"
    assert _status([("2024-11", 10), ("2024-12", 19)], "2024-12")[0] == "not_met"
    # An "at most" target.
    assert _status([("2024-01", 30), ("2024-02", 28), ("2024-03", 26)], "2024-03", comparison="<=")[0] == "on_track"


def test_explain_traces_a_county_urban_average_to_rosters_and_files(month_db):
    from flows.outputs.explain import explain
    text = explain(month_db, "urban_community_talent_avg", DONGQU, "2024-03")
    lines = text.splitlines()
    assert lines[0] == "城市社区平均社会工作专业人才（urban_community_talent_avg）— 东区（县（区），510402000000），2024-03"
    assert lines[2] == "值 = 0.10 名/社区 = 4 × 1 ÷ 40；目标 2.00，有风险"
    f = "东区/大渡口街道/新建 Microsoft Excel 工作表.xlsx"
    assert lines[4:13] == [
        "分子：urban_community_talents",
        "  urban_community_talents：3 个单位，合计 4",
        "    510402001002  大渡口街社区居民委员会（村（社区））  2",
        "    510402001004  东方红社区居民委员会（村（社区））  1",
        "    510402001005  金福社区居民委员会（村（社区））  1",
        "    来源：intermediate.talent_assignments，4 条台账行（每人一行，按计数规则归属的单位）",
        f"      {f} ［人才台账］ 第 4 行  510402001002",
        f"      {f} ［人才台账］ 第 5 行  510402001002",
        f"      {f} ［人才台账］ 第 6 行  510402001004",
    ]
    assert "  urban_communities：40 个单位，合计 40" in lines
    assert "    来源：区划登记册（data/registry/units.csv），每个单位计 1，无论是否报送" in lines
    assert lines[-2] == "涉及文件（1 个）："
    assert lines[-1].startswith(f"  {f}    收到 ")
    for secret in ("赵一", "钱二", "孙三", "吴六"):
        assert secret not in text
