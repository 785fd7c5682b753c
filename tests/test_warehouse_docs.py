"""The warehouse as analysts meet it: every table, view and column commented in English and
Chinese, and the analysis views agreeing with the tables they summarise (fixture month 2024-03,
whose hand-computed figures are in test_rollup.py and test_indicators.py)."""
from __future__ import annotations

import re

from conftest import PERIOD

CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]{2}")
VIEWS = {"indicators", "township_coverage", "community_staffing", "completeness", "missing"}


def _bilingual(text: str | None) -> bool:
    return bool(text) and bool(CJK.search(text)) and bool(LATIN.search(text))


def test_every_table_and_view_is_commented_in_both_languages(con):
    relations = con.execute(
        "select schema_name, table_name, comment from duckdb_tables() where not internal "
        "union all select schema_name, view_name, comment from duckdb_views() where not internal").fetchall()
    assert len(relations) > 30
    missing = [f"{s}.{t}" for s, t, c in relations if not _bilingual(c)]
    assert missing == []


def test_every_column_is_commented_in_both_languages(con):
    columns = con.execute(
        "select schema_name, table_name, column_name, comment from duckdb_columns() "
        "where not internal and schema_name not in ('information_schema', 'pg_catalog')").fetchall()
    assert len(columns) > 500
    missing = [f"{s}.{t}.{c}" for s, t, c, text in columns if not _bilingual(text)]
    assert missing == []


def test_the_analysis_views_are_there(con):
    views = {r[0] for r in con.execute(
        "select view_name from duckdb_views() where schema_name = 'analysis'").fetchall()}
    assert views == VIEWS


def test_indicators_view_is_the_mart_with_county_and_relative_gap(con):
    assert con.execute("select count(*) from analysis.indicators").fetchone()[0] == \
        con.execute("select count(*) from mart.indicator_values").fetchone()[0]
    # The city has no county; a county is its own; a township's and a village's is the registry's.
    wrong = con.execute("""
        select i.unit_level, count(*) from analysis.indicators as i
        join ref.units as u on u.code = i.unit_code
        left join ref.units as p on p.code = u.parent_code
        left join ref.units as g on g.code = p.parent_code
        where i.county_code is distinct from case i.unit_level when 'city' then null when 'county' then u.code
                                                when 'township' then p.code else g.code end
           or i.county_name is distinct from case i.unit_level when 'city' then null when 'county' then u.name
                                                when 'township' then p.name else g.name end
        group by all""").fetchall()
    assert wrong == []
    value, target, gap, ratio, status, status_zh = con.execute(
        """select value, target, gap, gap_ratio, status, status_zh from analysis.indicators
           where period = ? and unit_code = '510400000000' and indicator_id = 'talent_total'""", [PERIOD]).fetchone()
    assert ratio == gap / target
    assert status_zh == {"met": "达标", "not_met": "未达标", "on_track": "进度正常", "at_risk": "有风险"}[status]


def test_community_staffing_has_every_community_once_a_month(con):
    n_villages = con.execute("select count(*) from ref.units where level = 'village'").fetchone()[0]
    rows = con.execute("select count(*), count(distinct community_code) from analysis.community_staffing "
                       "where period = ?", [PERIOD]).fetchone()
    assert rows == (n_villages, n_villages)
    # The view's communities meeting the bar are the ones unit_rollup counts for the city.
    urban_ok, rural_ok = con.execute(
        """select count(*) filter (where community_type = 'urban' and meets_bar),
                  count(*) filter (where community_type = 'rural' and meets_bar)
           from analysis.community_staffing where period = ?""", [PERIOD]).fetchone()
    assert (urban_ok, rural_ok) == con.execute(
        """select urban_communities_talent_ge2, rural_communities_talent_ge1 from intermediate.unit_rollup
           where period = ? and unit_code = '510400000000'""", [PERIOD]).fetchone()
    assert {r[0] for r in con.execute("select distinct bar from analysis.community_staffing").fetchall()} == {1, 2}


def test_township_coverage_agrees_with_the_indicator(con):
    covered, townships = con.execute(
        """select count(*) filter (where station_in_service), count(*) from analysis.township_coverage
           where period = ?""", [PERIOD]).fetchone()
    numerator, denominator = con.execute(
        """select numerator, denominator from mart.indicator_values
           where period = ? and unit_code = '510400000000' and indicator_id = 'township_station_coverage'""",
        [PERIOD]).fetchone()
    assert (covered, townships) == (numerator, denominator)
    assert townships == con.execute("select count(*) from ref.units where level = 'township'").fetchone()[0]


def test_completeness_view_sums_the_mart(con):
    view = con.execute("select sum(expected), sum(received), sum(on_time) from analysis.completeness "
                       "where period = ?", [PERIOD]).fetchone()
    mart = con.execute("select count(*), count(*) filter (where received), count(*) filter (where on_time) "
                       "from mart.reporting_completeness where period = ?", [PERIOD]).fetchone()
    assert view == mart
    areas = {r[0] for r in con.execute("select distinct area_name from analysis.completeness").fetchall()}
    assert areas == {r[0] for r in con.execute(
        "select name from ref.units where level in ('city', 'county')").fetchall()}
