"""The warehouse as analysts meet it: every table, view and column commented in English and
Chinese from the .toml under sql/ named after it, and the analysis views agreeing with the
tables they summarise (fixture month 2024-03, whose hand-computed figures are in test_rollup.py
and test_indicators.py); and the roll-up's build order, derived from what each query reads."""
from __future__ import annotations

import datetime as dt
import re

import duckdb
import pytest

from conftest import PERIOD
from flows.config import SQL, load_settings
from flows.errors import ConfigError
from flows.schemas import load_forms
from flows.warehouse import sqlfiles

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


def test_every_table_and_view_has_its_toml_naming_every_column(con):
    forms = load_forms(load_settings().schemas)
    relations = sorted(sqlfiles.relations(con))
    without = [r for r in relations if not sqlfiles.toml_path(r, sqlfiles.form_of(r, forms)).exists()]
    assert without == []
    unnamed = []
    for relation in relations:
        columns = sqlfiles.comments(relation, sqlfiles.form_of(relation, forms))[1]
        unnamed += [f"{relation}.{c}" for (c,) in con.execute(f"select column_name from (describe {relation})")
                    .fetchall() if c not in columns]
    assert unnamed == []
    # The forms' own tables are commented from their schema, through one .toml for all of them.
    assert sqlfiles.toml_path("staging.sg03", forms["SG-03"]).name == "form.toml"
    assert con.execute("select comment from duckdb_columns() where schema_name = 'staging' and table_name = 'sg03' "
                       "and column_name = 'station_in_service'").fetchone()[0] == \
        f"{forms['SG-03'].field('station_in_service').comment} | {forms['SG-03'].field('station_in_service').header}"


def test_a_table_without_its_toml_is_refused(tmp_path, monkeypatch):
    (tmp_path / "intermediate").mkdir()
    (tmp_path / "intermediate" / "orphan.sql").write_text("select 1 as x", encoding="utf-8")
    monkeypatch.setattr(sqlfiles, "SQL", tmp_path)
    con = duckdb.connect()
    con.execute("create schema intermediate")
    con.execute("create table intermediate.orphan as select 1 as x")
    with pytest.raises(ConfigError, match=r"intermediate\.orphan has no comments: write .*orphan\.toml"):
        sqlfiles.apply_comments(con, "intermediate.orphan")


def test_build_order_follows_what_each_query_reads():
    steps = [sqlfiles.Step(p) for folder in sqlfiles.BUILT for p in (SQL / folder).glob("*.sql")]
    given = set().union(*(sqlfiles.references(s.query()) for s in steps)) - {s.relation for s in steps}
    # What the queries read and none builds is what loading fills.
    assert {r.split(".")[0] for r in given} == {"ref", "ingest", "staging"}
    built = []
    for step in sqlfiles.build_order(given):
        assert sqlfiles.references(step.query()) - {step.relation} <= given | set(built), step.relation
        built.append(step.relation)
    assert sorted(built) == sorted(s.relation for s in steps)
    # A comment or a string naming a table is no reference; a join is.
    assert sqlfiles.references("-- from mart.x\nselect 'ref.y' from intermediate.units as u "
                               "join Staging.SG01 as s on true") == {"intermediate.units", "staging.sg01"}


def _order_of(tmp_path, monkeypatch, files: dict[str, str], have=frozenset()):
    for name, query in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(query, encoding="utf-8")
    for folder in sqlfiles.BUILT:
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(sqlfiles, "SQL", tmp_path)
    return [s.relation for s in sqlfiles.build_order(set(have))]


def test_build_order_refuses_a_circle_and_an_unknown_table(tmp_path, monkeypatch):
    assert _order_of(tmp_path / "a", monkeypatch, {
        "marts/b.sql": "select * from intermediate.a join ref.units on true",
        "intermediate/a.sql": "select * from intermediate.c",
        "intermediate/c.sql": "select 1"}, {"ref.units"}) == ["intermediate.c", "intermediate.a", "mart.b"]
    with pytest.raises(ConfigError, match=r"read each other in a circle \((intermediate\.[ab]( -> )?){3}\)"):
        _order_of(tmp_path / "b", monkeypatch, {"intermediate/a.sql": "select * from intermediate.b",
                                                "intermediate/b.sql": "select * from intermediate.a"})
    with pytest.raises(ConfigError, match=r"intermediate/a\.sql reads ref\.nowhere, which no query of sql/ builds"):
        _order_of(tmp_path / "c", monkeypatch, {"intermediate/a.sql": "select * from ref.nowhere"})


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


def test_period_start_is_the_first_day_of_period_wherever_period_is(con):
    tables = con.execute(
        "select schema_name || '.' || table_name from duckdb_columns() where column_name = 'period' "
        "and schema_name in ('staging', 'intermediate', 'mart') order by 1").fetchall()
    assert len(tables) >= 13
    for (table,) in tables:
        wrong = con.execute(f"select count(*) from {table} "
                            f"where period_start is distinct from cast(period || '-01' as date)").fetchone()[0]
        assert (table, wrong) == (table, 0)
    assert con.execute("select distinct period_start from mart.indicator_values").fetchall() == \
        [(dt.date(2024, 3, 1),)]


def test_an_older_warehouse_gains_period_start_for_its_months():
    from flows.warehouse.load import add_new_columns
    con = duckdb.connect()
    con.execute("create table t as select * from (values ('2024-01', 1), ('2023-12', 2)) as v(period, x)")
    add_new_columns(con, "t", "select '2024-02' as period, date '2024-02-01' as period_start, 3 as x, 'y' as y")
    assert con.execute("select period, period_start, x, y from t order by x").fetchall() == [
        ("2024-01", dt.date(2024, 1, 1), 1, None), ("2023-12", dt.date(2023, 12, 1), 2, None)]
