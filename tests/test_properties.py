"""Properties of the roll-up on random months: children and own figures sum to the parent,
shares stay within 0-100, a person counts once, and missing is never zero."""
from __future__ import annotations

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.warehouse import load, rollup
from flows.config import SCHEMAS, load_settings
from flows.registry import Tree, load_plans, load_population, load_units
from flows.schemas import load_forms

SETTINGS = load_settings()
FORMS = load_forms(SCHEMAS)
UNITS = load_units(SETTINGS.units_csv)
TREE = Tree(UNITS)
# A corner of the tree keeps each example fast: 大渡口街道, 攀莲镇 and their parents.
VILLAGES = [c for c in TREE.order if TREE.level[c] == "village" and TREE.parent[c] in ("510402001000", "510421100000")]
TOWNSHIPS = ["510402001000", "510421100000", "510402002000"]
ANY_UNIT = VILLAGES + TOWNSHIPS + ["510402000000", "510421000000", "510400000000"]
LEVELS = ["无", "助理社会工作师", "社会工作师", "高级社会工作师"]
FIELDS = ["老年", "未成年人", "社区治理"]


def maybe(strategy):
    return st.one_of(st.none(), strategy)


@st.composite
def months(draw):
    sg01 = []
    for code in draw(st.lists(st.sampled_from(VILLAGES), unique=True)):
        workers = draw(maybe(st.integers(0, 12)))
        certified = draw(maybe(st.integers(0, workers if workers is not None else 12)))
        directors = draw(maybe(st.integers(0, 3)))
        sg01.append(dict(unit_code=code, registered_population=draw(maybe(st.integers(0, 9000))),
                         elderly_population=draw(maybe(st.integers(0, 1500))), community_workers=workers,
                         community_workers_certified=certified, party_secretary_certified=draw(maybe(st.booleans())),
                         community_social_orgs=draw(maybe(st.integers(0, 15))), volunteer_teams=draw(maybe(st.integers(0, 3))),
                         has_social_work_room=draw(maybe(st.booleans())), has_charity_fund=draw(maybe(st.booleans())),
                         child_directors=directors,
                         child_directors_trained=draw(maybe(st.integers(0, directors if directors is not None else 3)))))
    sg02 = [dict(unit_code=draw(st.sampled_from(ANY_UNIT)), person_key=f"p{draw(st.integers(0, 25))}",
                 certificate_level=draw(maybe(st.sampled_from(LEVELS))),
                 service_fields=draw(st.lists(st.sampled_from(FIELDS), unique=True)),
                 post_type="社区专职工作者", full_time=draw(st.booleans()))
            for _ in range(draw(st.integers(0, 30)))]
    sg03 = [dict(unit_code=code, station_in_service=draw(maybe(st.booleans())),
                 station_workers=2, station_workers_certified=draw(st.integers(0, 2)))
            for code in draw(st.lists(st.sampled_from(TOWNSHIPS), unique=True))]
    return sg01, sg02, sg03


def build(con, sg01, sg02, sg03):
    for table, rows in (("sg01", sg01), ("sg02", sg02), ("sg03", sg03)):
        for i, r in enumerate(rows):
            cols = ["period", "source_file", "source_sheet", "excel_row", "accepted", "superseded", "counted", *r]
            con.execute(f"insert into staging.{table} ({', '.join(cols)}) values ({', '.join('?' * len(cols))})",
                        ["2024-03", "f.xlsx", "S", i + 2, True, False, True, *r.values()])
    rollup.build(con, "2024-03", "committee_name")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("prop") / "base.duckdb"
    con = duckdb.connect(str(path))
    load.ensure_tables(con, FORMS)
    load.load_reference(con, UNITS, load_population(SETTINGS.population_csv), load_plans(SETTINGS.plans_dir),
                        FORMS)
    con.close()
    return path


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(month=months())
def test_rollup_invariants(base, tmp_path, month):
    import shutil
    db = tmp_path / "m.duckdb"
    shutil.copyfile(base, db)
    con = duckdb.connect(str(db))
    try:
        sg01, sg02, sg03 = month
        build(con, sg01, sg02, sg03)
        values = {(u, i): (v, n, d) for u, i, v, n, d in con.execute(
            "select unit_code, indicator_id, value, numerator, denominator from mart.indicator_values").fetchall()}
        facts = {r[0]: r[1:] for r in con.execute(
            "select unit_code, talents, certified_talents, community_workers from intermediate.unit_facts").fetchall()}
        # A person counts once, wherever listed and however often.
        persons = {r["person_key"] for r in sg02}
        assert values[("510400000000", "talent_total")][0] == len(persons)
        # Children and the unit's own figures sum to the parent, at every level.
        for parent in ("510402001000", "510421100000", "510402000000", "510421000000", "510400000000"):
            for ind, pos in (("talent_total", 0), ("certified_total", 1)):
                children = [c for c in TREE.children.get(parent, [])]
                total = facts[parent][pos] + sum(values[(c, ind)][0] for c in children)
                assert values[(parent, ind)][0] == total
        # Shares stay within 0 and 100.
        shares = con.execute("select indicator_id, unit_code, value from mart.indicator_values "
                             "where unit = '%' and value is not null and (value < 0 or value > 100)").fetchall()
        assert shares == []
        # Missing is not zero: a community that sent no SG-01 row has no population and no share.
        reported = {r["unit_code"] for r in sg01}
        for v in VILLAGES:
            if v not in reported:
                assert values[(v, "community_worker_certified_share")] == (None, None, None)
                assert facts[v][2] is None
        # ...and a township whose communities reported no workers has no share rather than 0 %.
        for t in ("510402001000", "510421100000"):
            known = [r for r in sg01 if TREE.parent[r["unit_code"]] == t
                     and r["community_workers"] is not None and r["community_workers_certified"] is not None]
            v, n, d = values[(t, "community_worker_certified_share")]
            if not known:
                assert v is None and n is None
            else:
                assert n == sum(r["community_workers_certified"] for r in known)
                assert d == sum(r["community_workers"] for r in known)
    finally:
        con.close()
