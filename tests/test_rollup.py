"""Indicator values of the fixture month, each computed by hand from the rows of
tests/fixtures/build_fixtures.py.

Accepted persons (rule 1 assignment): P1 → 510402001002 (also on the township roster),
P2 → 510402001002, P3 → 510402001004 (also on 攀莲镇's 510421100201 roster: both villages,
smaller code wins), P4 → 510402001000 (township station), P6 → 510402001005, R1 → 510421100001,
R2 → 510421100200 (rural), R3 → 510421100000 (township), C1 → 510402000000 (county).
Rejected: P5 (ID check digit), P7 (certified without 取证年份).
Certified: P1 P3 P4 P6 R2 R3. 老年: P1 P3 P6 R2 C1. 未成年人: P2 P4 P6.
Registry (committee rule): city 106 urban / 230 rural communities, 49 townships, 5 counties;
东区 40 urban / 7 rural / 6 townships; 米易县 13 / 73 / 11; 大渡口街道 5 urban; 攀莲镇 4 / 6.
"""
from __future__ import annotations

import pytest

from conftest import value_of

CITY, DONGQU, MIYI = "510400000000", "510402000000", "510421000000"
DADUKOU, PANLIAN = "510402001000", "510421100000"


@pytest.mark.parametrize("unit, indicator, expected", [
    # talent_total: 9 persons in the city; 东区 P1 P2 P3 P4 P6 C1; 米易县 R1 R2 R3.
    (CITY, "talent_total", 9), (DONGQU, "talent_total", 6), (MIYI, "talent_total", 3),
    (DADUKOU, "talent_total", 5), (PANLIAN, "talent_total", 3),
    ("510402001002", "talent_total", 2), ("510421100201", "talent_total", 0),
    # certified_total
    (CITY, "certified_total", 6), (DONGQU, "certified_total", 4), (MIYI, "certified_total", 2),
    (DADUKOU, "certified_total", 4),
    # elderly / minors
    (CITY, "elderly_talent_total", 5), (DONGQU, "elderly_talent_total", 4), (MIYI, "elderly_talent_total", 1),
    (CITY, "minor_talent_total", 3), (DONGQU, "minor_talent_total", 3), (MIYI, "minor_talent_total", 0),
    # per mille: reference population for city and counties, SG-01 sums below.
    (CITY, "talent_per_mille", 9 * 1000 / 1069100), (DONGQU, "talent_per_mille", 6 * 1000 / 271700),
    (MIYI, "talent_per_mille", 3 * 1000 / 228961),
    (DADUKOU, "talent_per_mille", 5 * 1000 / (5000 + 4000 + 3000)),  # 001006 rejected, 001007 refused
    (PANLIAN, "talent_per_mille", 3 * 1000 / (6000 + 1500 + 1200)),
    ("510402001002", "talent_per_mille", 2 * 1000 / 5000),
    # community workers: only communities reporting both figures (001005's certified is blank).
    (CITY, "community_worker_certified_share", (3 + 2 + 4 + 0 + 1) * 100 / (8 + 6 + 10 + 3 + 3)),
    (DONGQU, "community_worker_certified_share", 5 * 100 / 14),
    (MIYI, "community_worker_certified_share", 5 * 100 / 16),
    ("510402001004", "community_worker_certified_share", 2 * 100 / 6),
    # community averages count every community of the registry, reported or not.
    (CITY, "urban_community_talent_avg", 5 / 106), (CITY, "rural_community_talent_avg", 1 / 230),
    (DONGQU, "urban_community_talent_avg", 4 / 40), (DONGQU, "rural_community_talent_avg", 0 / 7),
    (MIYI, "urban_community_talent_avg", 1 / 13), (MIYI, "rural_community_talent_avg", 1 / 73),
    (DADUKOU, "urban_community_talent_avg", 4 / 5), (PANLIAN, "urban_community_talent_avg", 1 / 4),
    (PANLIAN, "rural_community_talent_avg", 1 / 6),
    ("510402001002", "urban_community_talent_avg", 2.0),
    # organisations: 东区 O1 O2 O3 (O4 rejected: standalone party organisation with 2 members),
    # the city adds its own O5 (选派). Covered: all but 未覆盖.
    (CITY, "org_party_coverage", 3 * 100 / 4), (DONGQU, "org_party_coverage", 2 * 100 / 3),
    # stations: only 大渡口街道 in service.
    (CITY, "township_station_coverage", 1 * 100 / 49), (DONGQU, "township_station_coverage", 1 * 100 / 6),
    (MIYI, "township_station_coverage", 0.0), (DADUKOU, "township_station_coverage", 100.0),
    (PANLIAN, "township_station_coverage", 0.0),
    # further figures
    (CITY, "civil_affairs_institution_post_coverage", 50.0), (CITY, "county_station_coverage", 20.0),
    (CITY, "county_station_total", 1), (CITY, "incubated_org_total", 3), (DONGQU, "incubated_org_total", 2),
    (CITY, "station_and_room_total", 4), (CITY, "charity_fund_total", 1), (CITY, "outstanding_talent_total", 2),
])
def test_indicator_values(con, unit, indicator, expected):
    value = value_of(con, unit, indicator)[0]
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_targets_and_met(con):
    # City totals carry the plan's target; a county's total has none, its shares do.
    assert value_of(con, CITY, "talent_total")[3:] == (2100.0, False)
    assert value_of(con, DONGQU, "talent_total")[3:] == (None, None)
    assert value_of(con, DONGQU, "community_worker_certified_share")[3:] == (35.0, True)   # 35.71 %
    assert value_of(con, MIYI, "community_worker_certified_share")[3:] == (35.0, False)    # 31.25 %
    assert value_of(con, DADUKOU, "township_station_coverage")[3:] == (100.0, True)
    row = con.execute("select target_type, deadline::varchar, gap from mart.indicator_values where unit_code = ? "
                      "and indicator_id = 'township_station_coverage' and period = '2024-03'", [CITY]).fetchone()
    assert row[0] == "约束性" and row[1] == "2022-12-31" and row[2] == pytest.approx(100 - 100 / 49)


def test_one_row_per_period_unit_indicator(con):
    dupes = con.execute("select count(*) from (select period, unit_code, indicator_id from mart.indicator_values "
                        "group by all having count(*) > 1)").fetchone()[0]
    assert dupes == 0
    # every unit of each level has each indicator computed at that level: 1 + 5 + 49 + 336 units
    n = dict(con.execute("select indicator_id, count(*) from mart.indicator_values group by all").fetchall())
    assert n["talent_total"] == 391 and n["township_station_coverage"] == 55 and n["org_party_coverage"] == 6


def test_person_on_two_rosters_counted_once_at_the_most_local_unit(con):
    rows = con.execute("select unit_code, roster_count from intermediate.talent_assignments "
                       "where period = '2024-03' order by unit_code").fetchall()
    assert len(rows) == 9
    # P1 (village 001002 and the township) and P3 (two villages) are the two with 2 rosters.
    assert sorted(r for r in rows if r[1] == 2) == [("510402001002", 2), ("510402001004", 2)]
    assert ("510402001000", 1) in rows  # P4 stays at the township: not on any village roster


@pytest.mark.parametrize("figure", ["talents", "certified_talents", "elderly_talents", "minor_talents",
                                    "urban_community_talents", "townships_with_station", "service_orgs"])
def test_children_and_own_figures_sum_to_parent(con, figure):
    # A unit's roll-up is its own figure plus its children's roll-ups, at every level.
    bad = con.execute(f"""
        select r.unit_code
        from intermediate.unit_rollup r
        join intermediate.unit_facts f on f.unit_code = r.unit_code and f.period = r.period
        left join intermediate.units u on u.parent_code = r.unit_code
        left join intermediate.unit_rollup c on c.unit_code = u.code and c.period = r.period
        where r.period = '2024-03'
        group by r.unit_code, r.{figure}, f.{figure}
        having r.{figure} <> f.{figure} + coalesce(sum(c.{figure}), 0)
    """).fetchall()
    assert bad == []


def test_missing_is_not_zero(con):
    # 001007 sent nothing accepted: no population, no community-worker figures: NULL, not 0.
    v = value_of(con, "510402001007", "community_worker_certified_share")
    assert v[0] is None and v[1] is None and v[2] is None
    assert value_of(con, "510402001007", "talent_per_mille")[0] is None
    # ...but it still counts as an urban community with 0 talents in its township's average (rule 2).
    assert value_of(con, "510402001007", "urban_community_talent_avg")[0] == 0.0
    # 001005 reported workers but left certified blank: left out of numerator and denominator alike.
    assert value_of(con, "510402001005", "community_worker_certified_share")[0] is None
    # A county with no organisations has no party-building coverage rather than 0 %.
    assert value_of(con, MIYI, "org_party_coverage")[0] is None


def test_rejected_rows_count_nowhere(con):
    # 001006's SG-01 row was rejected (其中持证 5 > 4): its population and workers count nowhere.
    assert value_of(con, "510402001006", "talent_per_mille")[0] is None
    counted = con.execute("select count(*) from staging.sg02 where period = '2024-03' and counted").fetchone()[0]
    assert counted == 11  # 13 rows read, 2 rejected
