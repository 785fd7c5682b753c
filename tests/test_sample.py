"""The sample inbox, read back from its files: the plan's 2022-08 baseline exactly, faults only where planted."""
from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from python_calamine import CalamineWorkbook

from flows.config import SCHEMAS
from flows.tools.sample import generate_sample
from flows.schemas import load_forms
from flows.ingest.convert import credit_code_valid, id_number_valid, id_sex

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "data" / "registry" / "units.csv"
POPULATION = ROOT / "data" / "registry" / "population.csv"
FORMS = load_forms(SCHEMAS)
CST = timezone(timedelta(hours=8))


def _registry():
    with open(UNITS, encoding="utf-8") as f:
        units = {r["code"]: r for r in csv.DictReader(f)}
    with open(POPULATION, encoding="utf-8") as f:
        population = {r["code"]: int(r["registered_population"]) for r in csv.DictReader(f)}
    return units, population


UNITS_BY_CODE, POPULATION_BY_CODE = _registry()
CITY = next(u for u in UNITS_BY_CODE.values() if u["level"] == "city")
COUNTIES = [c for c, u in UNITS_BY_CODE.items() if u["level"] == "county"]
VILLAGES = [c for c, u in UNITS_BY_CODE.items() if u["level"] == "village"]


@pytest.fixture(scope="module")
def inbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("inbox")
    summary = generate_sample(root, UNITS, POPULATION, start="2022-08", end="2022-09")
    return root, summary


# -- reading the files back, independently of the generator ---------------------------------------
def _decode_csv(raw: bytes) -> tuple[str, str]:
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8"), "utf-8-sig"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("gbk"), "gbk"


def _grids(path: Path) -> list[tuple[str, list[list]]]:
    """(sheet name, rows of cells) of a spreadsheet file; raises if it is not one."""
    if path.suffix == ".csv":
        text, _ = _decode_csv(path.read_bytes())
        return [(path.stem, [[c if c != "" else None for c in row] for row in csv.reader(io.StringIO(text))])]
    wb = CalamineWorkbook.from_path(str(path))
    return [(name, [[None if c == "" else c for c in row] for row in wb.get_sheet_by_name(name).to_python()])
            for name in wb.sheet_names]


def _num(v):
    return None if v is None else float(v)


def read_month(folder: Path):
    """Records per form (field name -> cell, plus where it came from), and the files that are no spreadsheet."""
    records: dict[str, list[dict]] = defaultdict(list)
    unreadable: list[Path] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            grids = _grids(path)
        except Exception:  # noqa: BLE001 - any failure to open is what "not a spreadsheet" means here
            unreadable.append(path)
            continue
        for sheet, grid in grids:
            form_id = grid[1][0].removeprefix("表号：")
            form = FORMS[form_id]
            assert grid[0][0] == CITY["name"] + form.titles[0], (path, sheet)
            assert grid[2][: len(form.fields)] == [f.header for f in form.fields], (path, sheet)
            second = [c for c in grid[1] if c]
            assert second[1].startswith("填报单位：") and second[2] == f"统计期：{folder.name[:4]}年{int(folder.name[5:])}月"
            for i, row in enumerate(grid[3:], start=4):
                if not any(row):
                    break
                rec = dict(zip((f.name for f in form.fields), row))
                rec["_where"] = (path, sheet, i)
                records[form_id].append(rec)
    return records, unreadable


def figures(records) -> dict:
    """The baseline figures by the counting rules, from rows a validator would accept."""
    roster = [r for r in records["SG-02"] if id_number_valid(r["id_number"]) and r["unit_code"] in UNITS_BY_CODE]
    persons = {r["id_number"]: r for r in roster}
    sg01 = [r for r in records["SG-01"] if r["unit_code"] in UNITS_BY_CODE
            and _num(r["community_workers_certified"]) <= _num(r["community_workers"])]
    public = [r for r in records["SG-05"] if r["civil_affairs_public"] == "是"]
    units_of = defaultdict(set)
    for r in roster:
        units_of[r["id_number"]].add(r["unit_code"])
    return {
        "talent_total": len(persons),
        "certified_total": sum(p["certificate_level"] != "无" for p in persons.values()),
        "elderly_talent_total": sum("老年" in p["service_fields"].split("、") for p in persons.values()),
        "minor_talent_total": sum("未成年人" in p["service_fields"].split("、") for p in persons.values()),
        "dual_listed": sum(len(u) > 1 for u in units_of.values()),
        "stations_in_service": sum(r["station_in_service"] == "是" for r in records["SG-03"]),
        "village_rooms": sum(r["has_social_work_room"] == "是" for r in sg01),
        "civil_affairs_public": len(public),
        "civil_affairs_public_with_posts": sum(_num(r["social_work_posts"]) >= 1 for r in public),
        "orgs": len(records["SG-04"]),
        "orgs_incubated": sum(r["incubated_locally"] == "是" for r in records["SG-04"]),
        "orgs_uncovered": sum(r["party_building_form"] == "未覆盖" for r in records["SG-04"]),
    }


@pytest.fixture(scope="module")
def months(inbox):
    root, _ = inbox
    return {m: read_month(root / m) for m in ("2022-08", "2022-09")}


# -- the baseline --------------------------------------------------------------------------------
def test_baseline_figures_are_the_plans(months):
    records, _ = months["2022-08"]
    got = figures(records)
    assert got["talent_total"] == 1740
    assert got["certified_total"] == 528
    assert got["civil_affairs_public"] == 19
    assert got["civil_affairs_public_with_posts"] == 17
    assert got["orgs_incubated"] == 22
    assert got["stations_in_service"] + got["village_rooms"] == 94
    assert 30 <= got["orgs"] <= 40
    assert got["dual_listed"] == 20


def test_county_and_city_summary_rows(months):
    records, _ = months["2022-08"]
    rows = {r["unit_code"]: r for r in records["SG-06"]}
    assert set(rows) == set(COUNTIES) | {CITY["code"]}
    assert all(rows[c]["general_station_in_service"] == "是" for c in COUNTIES)
    city = rows[CITY["code"]]
    assert city["general_station_in_service"] == "否"
    assert _num(city["outstanding_talents"]) == 2
    assert 0 < _num(city["province_pass_rate_pct"]) < 100
    assert all(_num(r["exam_passes_ytd"]) <= _num(r["exam_candidates_ytd"]) for r in rows.values())


def test_every_village_has_one_row_and_populations_add_up(months):
    for month in ("2022-08", "2022-09"):
        records, _ = months[month]
        known = Counter(r["unit_code"] for r in records["SG-01"] if r["unit_code"] in UNITS_BY_CODE)
        assert set(known) == set(VILLAGES) and set(known.values()) == {1}, month
    by_county = Counter()
    for r in months["2022-08"][0]["SG-01"]:
        township = UNITS_BY_CODE[r["unit_code"]]["parent_code"]
        by_county[UNITS_BY_CODE[township]["parent_code"]] += int(_num(r["registered_population"]))
        assert 0.15 <= _num(r["elderly_population"]) / _num(r["registered_population"]) <= 0.25
        assert 3 <= _num(r["community_workers"]) <= 12
    assert by_county == {c: POPULATION_BY_CODE[c] for c in COUNTIES}


def test_organisations_and_institutions_are_consistent(months):
    records, _ = months["2022-08"]
    for r in records["SG-04"]:
        assert credit_code_valid(r["credit_code"]), r["_where"]
        if r["party_building_form"] == "单独建立党组织":
            assert _num(r["party_members"]) >= 3, r["_where"]
        assert _num(r["staff_certified"]) <= _num(r["staff"])
    for r in records["SG-03"]:
        if r["operator_credit_code"]:
            assert credit_code_valid(r["operator_credit_code"])
    private_big = [r for r in records["SG-05"] if r["civil_affairs_public"] == "否"
                   and r["institution_type"] == "养老机构" and _num(r["residents"]) > 100]
    assert len(private_big) >= 2


def test_each_unit_comes_from_one_file_per_form(months):
    # The newest file covering a unit supersedes older ones: two senders must not share a unit.
    for month, (records, _) in months.items():
        for form, rows in records.items():
            files = defaultdict(set)
            for r in rows:
                files[r["unit_code"]].add(r["_where"][0])
            assert all(len(f) == 1 for f in files.values()), (month, form)


# -- persons -------------------------------------------------------------------------------------
def test_ids_are_valid_except_the_planted_faults(inbox, months):
    _, summary = inbox
    for month, (records, _) in months.items():
        bad = [r for r in records["SG-02"] if not id_number_valid(r["id_number"])]
        planted = [f for f in summary["months"][month]["faults"] if "check_digit" in f["kind"]]
        assert len(bad) == len(planted), month
        for r in records["SG-02"]:
            if id_number_valid(r["id_number"]):
                assert r["id_number"].startswith("510499") and id_sex(r["id_number"]) == r["sex"]
                if r["certificate_level"] == "无":
                    assert r["certified_year"] is None and r["registration_start"] is None
                else:
                    assert r["certified_year"] is not None and r["registration_start"] is not None
    # The baseline's one typo is a second listing of a person already on the same roster.
    (typo,) = [r for r in months["2022-08"][0]["SG-02"] if not id_number_valid(r["id_number"])]
    twins = [r for r in months["2022-08"][0]["SG-02"] if r["name"] == typo["name"]
             and r["unit_code"] == typo["unit_code"] and id_number_valid(r["id_number"])]
    assert any(sum(a != b for a, b in zip(t["id_number"], typo["id_number"])) == 1 for t in twins)


def test_same_person_same_id_next_month(months):
    def people(month):
        return {r["id_number"]: (r["name"], r["sex"]) for r in months[month][0]["SG-02"]
                if id_number_valid(r["id_number"]) and r["unit_code"] in UNITS_BY_CODE}
    before, after = people("2022-08"), people("2022-09")
    stayed = before.keys() & after.keys()
    assert len(stayed) > 0.97 * len(before)
    assert all(before[i] == after[i] for i in stayed)


# -- what the summary promises, the files hold ---------------------------------------------------
def test_summary_figures_match_the_files(inbox, months):
    _, summary = inbox
    for month, (records, _) in months.items():
        expected = summary["months"][month]["expected"]
        got = figures(records)
        assert {k: expected[k] for k in got} == got, month


def test_planted_faults_are_where_the_summary_says(inbox, months):
    root, summary = inbox
    records, unreadable = months["2022-08"]
    assert [p.relative_to(root).as_posix() for p in unreadable] == [
        f["file"] for f in summary["months"]["2022-08"]["faults"] if f["kind"] == "not_a_spreadsheet"]
    records, unreadable = months["2022-09"]
    faults = summary["months"]["2022-09"]["faults"]
    assert not unreadable and 2 <= len(faults) <= 4
    where = {(r["_where"][0].relative_to(root).as_posix(), r["_where"][1], r["_where"][2]): (form, r)
             for form, rows in records.items() for r in rows}
    for f in faults:
        form, r = where[(f["file"], f["sheet"], f["row"])]
        assert form == f["form"]
        if f["kind"] == "unknown_unit_code":
            assert r["unit_code"] not in UNITS_BY_CODE
        elif f["kind"] == "certified_gt_workers":
            assert _num(r["community_workers_certified"]) > _num(r["community_workers"])
        else:
            assert not id_number_valid(r["id_number"])


# -- files ---------------------------------------------------------------------------------------
def test_formats_encodings_and_times(inbox):
    root, summary = inbox
    month = root / "2022-08"
    files = sorted(p for p in month.rglob("*") if p.is_file())
    assert len(files) == summary["months"]["2022-08"]["files"]
    encodings = Counter()
    for p in files:
        if p.suffix == ".csv":
            raw = p.read_bytes()
            assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
            encodings[_decode_csv(raw)[1]] += 1
        when = datetime.fromtimestamp(p.stat().st_mtime, CST)
        assert (when.year, when.month) == (2022, 9) and 1 <= when.day <= 5 and 9 <= when.hour < 18, p
        depth = len(p.relative_to(month).parts)
        assert depth in (2, 3)  # county or city files, or township files one level down
    suffixes = Counter(p.suffix for p in files)
    assert suffixes[".xlsx"] > suffixes[".xls"] > 0
    assert encodings["gbk"] >= 3 and encodings["utf-8-sig"] >= 3 and encodings["utf-8"] == 0


def test_same_seed_same_bytes(inbox, tmp_path):
    root, _ = inbox
    again = tmp_path / "again"
    generate_sample(again, UNITS, POPULATION, start="2022-08", end="2022-09")

    def tree(base):
        return {p.relative_to(base).as_posix(): (p.read_bytes(), p.stat().st_mtime)
                for p in base.rglob("*") if p.is_file()}
    assert tree(again) == tree(root)


def test_a_later_start_writes_the_same_month(inbox, tmp_path):
    root, _ = inbox
    generate_sample(tmp_path, UNITS, POPULATION, start="2022-09", end="2022-09")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.*")) == \
        sorted(p.relative_to(root).as_posix() for p in (root / "2022-09").rglob("*.*"))
    for p in (tmp_path / "2022-09").rglob("*.*"):
        assert p.read_bytes() == (root / p.relative_to(tmp_path)).read_bytes()


def test_months_before_the_baseline_are_refused(tmp_path):
    with pytest.raises(ValueError, match="baseline month 2022-08"):
        generate_sample(tmp_path, UNITS, POPULATION, start="2022-07", end="2022-09")
