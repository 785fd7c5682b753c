"""Monthly templates: filled in as a sender would, they read back exactly; dropdowns, protection,
last month's values, and one workbook per reporting unit."""
from __future__ import annotations

import datetime as dt
import hashlib

import duckdb
import openpyxl
import pytest
from openpyxl.utils import get_column_letter, range_boundaries

from flows import pii
from flows.config import SCHEMAS, load_settings
from flows.errors import ConfigError
from flows.ingest.read import read_file
from flows.registry import load_units
from flows.schemas import load_forms
from flows.outputs.templates import INSTRUCTIONS, LISTS_SHEET, write_templates

FORMS = load_forms(SCHEMAS)
UNITS = load_units(load_settings().units_csv)
NAME = dict(zip(UNITS["code"], UNITS["name"]))
LEVEL = dict(zip(UNITS["code"], UNITS["level"]))
KEY = b"k" * 40
PERIOD = "2024-03"
TOWN = "510402001000"
COUNTY = "510402000000"
CITY = next(c for c, lv in LEVEL.items() if lv == "city")
VILLAGES = sorted(UNITS.filter(UNITS["parent_code"] == TOWN)["code"].to_list())


def subtree(code: str) -> set[str]:
    out, todo = set(), [code]
    while todo:
        c = todo.pop()
        out.add(c)
        todo += UNITS.filter(UNITS["parent_code"] == c)["code"].to_list()
    return out


def id_number(body: str) -> str:
    """A fictitious ID number with a valid GB 11643 check character."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, weights)) % 11]


def credit_code(body: str) -> str:
    """A fictitious unified social credit code with a valid GB 32100 check character."""
    chars = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    return body + chars[(31 - sum(chars.index(c) * w for c, w in zip(body, weights)) % 31) % 31]


def form_sheets(wb) -> dict:
    """form id -> worksheet, from the 表号 cell, as the reader finds it."""
    return {ws["A2"].value.split("：")[1]: ws for ws in wb.worksheets if str(ws["A2"].value).startswith("表号")}


def columns(ws, form) -> dict[str, int]:
    """field name -> column number, from the header row."""
    by_header = {ws.cell(3, c).value: c for c in range(1, ws.max_column + 1)}
    return {f.name: by_header[f.header] for f in form.fields}


def fill(ws, form, excel_row: int, values: dict) -> None:
    cols = columns(ws, form)
    for name, v in values.items():
        ws.cell(excel_row, cols[name]).value = v


# --- 1. a filled-in template reads back exactly ----------------------------------------------------

SG01 = {  # village index -> what the sender types (None: left blank)
    0: {"registered_population": 3200, "elderly_population": 810, "community_workers": 9,
        "community_workers_certified": 3, "party_secretary_certified": "是", "community_social_orgs": 5,
        "volunteer_teams": 2, "has_social_work_room": "是", "has_charity_fund": "否", "child_directors": 1,
        "child_directors_trained": 1},
    1: {"registered_population": 2100, "elderly_population": 400, "community_workers": 7,
        "community_workers_certified": None, "party_secretary_certified": "否", "has_social_work_room": "否",
        "child_directors": 0},
    3: {"community_workers": 0, "has_charity_fund": "是"},
}
PERSONS = [
    {"unit_code": TOWN, "name": "测试甲", "id_number": id_number("51049919850612123"), "sex": "男",
     "employer": "大渡口街道社工站", "post_type": "社工站驻站社工", "full_time": "是",
     "certificate_level": "社会工作师", "certified_year": 2019, "registration_start": "2022-01-01",
     "continuing_education_hours": 24.5, "service_fields": "老年、社区治理", "party_member": "否",
     "phone": "13800000000"},
    {"unit_code": VILLAGES[0], "name": "测试乙", "id_number": id_number("51049919900315024"), "sex": "女",
     "employer": None, "post_type": "社区专职工作者", "full_time": "否", "certificate_level": "无",
     "certified_year": None, "registration_start": None, "continuing_education_hours": None,
     "service_fields": "未成年人", "party_member": "是", "phone": None},
]
SG03 = {"station_in_service": "是", "station_opened": "2021-03-01", "operation_mode": "政府购买服务",
        "operator_name": "测试社会工作服务中心", "operator_credit_code": credit_code("52510400MJ1234567"),
        "station_workers": 4, "station_workers_certified": 2, "services_month": 130, "services_assistance": 40,
        "services_elderly": 55, "services_children": 20, "child_supervisors": 1, "child_supervisors_trained": None}


def typed(form_id: str, name: str, v):
    """What the reader should make of a typed value, per the schema's type."""
    f = FORMS[form_id].field(name)
    if v is None:
        return None
    if f.type == "yesno":
        return v == "是"
    if f.type == "date":
        return dt.date.fromisoformat(v)
    if f.type == "multi":
        return v.split("、")
    if f.type == "personal":
        return "已填"
    if f.type == "id_number":
        return pii.person_key(KEY, v)
    if f.type == "number":
        return float(v)
    return v


def test_filled_in_template_reads_back_exactly(tmp_path):
    [path] = write_templates(PERIOD, tmp_path, unit=TOWN)
    assert path == tmp_path / PERIOD / f"{TOWN}-{NAME[TOWN]}.xlsx"
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames[0] == INSTRUCTIONS
    sheets = form_sheets(wb)
    assert set(sheets) == {"SG-01", "SG-02", "SG-03"}

    ws = sheets["SG-01"]
    cols = columns(ws, FORMS["SG-01"])
    # One row per village of the township, code and name filled in, as text.
    assert [ws.cell(4 + i, cols["unit_code"]).value for i in range(len(VILLAGES))] == VILLAGES
    assert [ws.cell(4 + i, cols["unit_name"]).value for i in range(len(VILLAGES))] == [NAME[v] for v in VILLAGES]
    assert ws.cell(4 + len(VILLAGES), cols["unit_code"]).value is None
    for i, values in SG01.items():
        fill(ws, FORMS["SG-01"], 4 + i, values)
    for i, person in enumerate(PERSONS):
        fill(sheets["SG-02"], FORMS["SG-02"], 4 + i, person)
    assert sheets["SG-03"].cell(4, columns(sheets["SG-03"], FORMS["SG-03"])["unit_code"]).value == TOWN
    fill(sheets["SG-03"], FORMS["SG-03"], 4, SG03)
    wb.save(path)

    record, rows = read_file(path, path.parent, PERIOD, FORMS, KEY)
    assert record.status == "read"
    by_sheet = {s.sheet: s for s in record.sheets}
    assert by_sheet[INSTRUCTIONS].form is None and by_sheet[INSTRUCTIONS].status == "skipped"
    read = {s.form: s for s in record.sheets if s.form}
    assert set(read) == {"SG-01", "SG-02", "SG-03"}
    for s in read.values():
        assert (s.status, s.header_row, s.sender, s.reason_en) == ("read", 3, NAME[TOWN], None)
        assert set(s.headers) == {f.name for f in FORMS[s.form].fields}
    # No rows lost: every village row (code filled in) is read, and nothing else.
    assert read["SG-01"].data_rows == len(VILLAGES) and read["SG-02"].data_rows == 2
    assert read["SG-03"].data_rows == 1

    sg01 = rows["SG-01"]
    assert [r["unit_code"] for r in sg01] == VILLAGES and [r["_row"] for r in sg01] == list(range(4, 4 + len(VILLAGES)))
    for i, r in enumerate(sg01):
        typed_in = SG01.get(i, {})
        for f in FORMS["SG-01"].fields:
            assert r[f"{f.name}__ok"], (VILLAGES[i], f.name)
            if f.name == "unit_name":
                assert r[f.name] == NAME[VILLAGES[i]]
            elif f.name != "unit_code":
                assert r[f.name] == typed("SG-01", f.name, typed_in.get(f.name)), (VILLAGES[i], f.name)
    assert sg01[1]["community_workers_certified"] is None  # blank stays blank, not 0
    assert sg01[3]["community_workers"] == 0  # and 0 stays 0

    for r, person in zip(rows["SG-02"], PERSONS):
        for f in FORMS["SG-02"].fields:
            assert r[f"{f.name}__ok"], f.name
            assert r[f.name] == typed("SG-02", f.name, person[f.name]), f.name
        assert r["id_number__valid"] is True and r["sex_from_id"] == person["sex"]
        assert r["birth_year"] == int(person["id_number"][6:10])

    [sg03] = rows["SG-03"]
    assert sg03["unit_code"] == TOWN and sg03["unit_name"] == NAME[TOWN]
    for name, v in SG03.items():
        assert sg03[f"{name}__ok"] and sg03[name] == typed("SG-03", name, v), name
    assert sg03["operator_credit_code__valid"] is True

    # The stated month (统计期：2024年3月) is read: the same file sent as April's is refused.
    record, rows = read_file(path, path.parent, "2024-04", FORMS, KEY)
    assert rows == {}
    assert {s.form: s.status for s in record.sheets if s.form} == dict.fromkeys(("SG-01", "SG-02", "SG-03"), "rejected")
    assert all("2024-03" in s.reason_en for s in record.sheets if s.form)


# --- 2. dropdowns and protection -------------------------------------------------------------------

def validations(ws) -> dict[str, object]:
    """column letter -> its data validation (one per column)."""
    out = {}
    for dv in ws.data_validations.dataValidation:
        for rng in str(dv.sqref).split():
            col = "".join(ch for ch in rng.split(":")[0] if ch.isalpha())
            assert col not in out
            out[col] = dv
    return out


def listed(wb, dv) -> list[str]:
    """The values a list validation offers, inline or from the hidden sheet."""
    if dv.formula1.startswith('"'):
        return dv.formula1.strip('"').split(",")
    sheet, rng = dv.formula1.split("!")
    assert sheet.strip("'") == LISTS_SHEET and wb[LISTS_SHEET].sheet_state == "hidden"
    return [c.value for row in wb[LISTS_SHEET][rng.replace("$", "")] for c in row]


def test_dropdowns_formats_and_protection(tmp_path):
    paths = {p.name.split("-")[0]: p for p in
             write_templates(PERIOD, tmp_path, unit=TOWN) + write_templates(PERIOD, tmp_path, unit=COUNTY)}
    expected_codes = {TOWN: {"SG-01": VILLAGES, "SG-02": [TOWN] + VILLAGES, "SG-03": [TOWN]},
                      COUNTY: {"SG-02": [COUNTY], "SG-04": [COUNTY],
                               "SG-05": sorted(subtree(COUNTY)), "SG-06": [COUNTY]}}
    for unit, path in paths.items():
        wb = openpyxl.load_workbook(path)
        assert wb[INSTRUCTIONS].protection.sheet
        for form_id, ws in form_sheets(wb).items():
            form = FORMS[form_id]
            cols = columns(ws, form)
            dvs = validations(ws)
            assert ws.protection.sheet and ws.freeze_panes == "A4"
            assert ws["A1"].value.endswith(form.titles[0]) and ws["A1"].value.startswith(NAME[CITY])
            assert (ws["B2"].value, ws["C2"].value) == (f"填报单位：{NAME[unit]}", "统计期：2024年3月")
            for f in form.fields:
                col = get_column_letter(cols[f.name])
                assert ws[f"{col}1"].protection.locked and ws[f"{col}2"].protection.locked
                assert ws[f"{col}3"].protection.locked and ws[f"{col}3"].value == f.header
                # Every formatted data row is open to typing (the column format carries on below it).
                assert not ws[f"{col}4"].protection.locked and not ws[f"{col}{ws.max_row}"].protection.locked
                if f.type in ("code", "text", "id_number", "credit_code", "date", "enum", "yesno", "personal"):
                    assert ws[f"{col}4"].number_format == ws[f"{col}{ws.max_row}"].number_format == "@", f.name
                dv = dvs.get(col)
                if f.name == "unit_code":
                    assert dv.type == "list" and sorted(listed(wb, dv)) == sorted(expected_codes[unit][form_id])
                elif f.type == "yesno":
                    assert dv.type == "list" and listed(wb, dv) == ["是", "否"]
                elif f.type == "enum":
                    assert dv.type == "list" and listed(wb, dv) == list(f.values)
                elif f.type == "integer":
                    assert (dv.type, dv.operator, dv.formula1) == ("whole", "greaterThanOrEqual", "0")
                elif f.type == "date":
                    assert dv.showInputMessage and "2021-03-01" in dv.prompt
                if dv is not None:
                    # From the first data row down to the last formatted one (a roster: 200 rows).
                    min_col, min_row, max_col, max_row = range_boundaries(str(dv.sqref))
                    assert (min_col, max_col, min_row) == (cols[f.name], cols[f.name], 4)
                    assert max_row == ws.max_row >= (203 if form.roster else 4)
    # A county's SG-05 list (its whole subtree) is longer than Excel's 255 characters: a hidden range.
    wb = openpyxl.load_workbook(paths[COUNTY])
    ws = form_sheets(wb)["SG-05"]
    assert validations(ws)["A"].formula1.startswith(f"'{LISTS_SHEET}'!")


# --- 3. last month's values ------------------------------------------------------------------------

SQL_TYPE = {"code": "varchar", "text": "varchar", "enum": "varchar", "integer": "bigint", "number": "double",
            "percent": "double", "yesno": "boolean", "date": "date", "year": "bigint", "credit_code": "varchar"}


def make_staging(db, form_id: str, rows: list[dict], extra: dict[str, str] | None = None) -> None:
    form = FORMS[form_id]
    cols = {"period": "varchar", "counted": "boolean"} | (extra or {}) | \
        {f.name: SQL_TYPE[f.type] for f in form.fields if not f.personal}
    with duckdb.connect(str(db)) as con:
        con.execute("create schema if not exists staging")
        con.execute(f"create table staging.{form.table} ({', '.join(f'{c} {t}' for c, t in cols.items())})")
        for r in rows:
            con.execute(f"insert into staging.{form.table} ({', '.join(r)}) values ({', '.join('?' * len(r))})",
                        list(r.values()))


def test_template_prefills_last_months_counted_rows(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    v0, v1, v2 = VILLAGES[:3]
    full = {"registered_population": 3100, "elderly_population": None, "community_workers": 8,
            "community_workers_certified": 2, "party_secretary_certified": True, "community_social_orgs": 4,
            "volunteer_teams": 0, "has_social_work_room": False, "has_charity_fund": None, "child_directors": 1,
            "child_directors_trained": 0}
    make_staging(db, "SG-01", [
        {"period": "2024-02", "counted": True, "unit_code": v0, "unit_name": "简称", **full},
        {"period": "2024-02", "counted": True, "unit_code": v1, "registered_population": 1500},
        {"period": "2024-02", "counted": False, "unit_code": v2, "registered_population": 9999},  # superseded
        {"period": "2024-01", "counted": True, "unit_code": v2, "registered_population": 8888},  # older month
        {"period": "2024-02", "counted": True, "unit_code": "510402002001", "registered_population": 7777},
    ])
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    [path] = write_templates(PERIOD, tmp_path / "out", db=db, unit=TOWN)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before  # opened read-only

    ws = form_sheets(openpyxl.load_workbook(path))["SG-01"]
    cols = columns(ws, FORMS["SG-01"])
    assert ws.cell(4, cols["elderly_population"]).value is None  # unknown stays blank, never 0
    assert ws.cell(4, cols["volunteer_teams"]).value == 0
    assert ws.cell(4, cols["party_secretary_certified"]).value == "是"
    assert ws.cell(4, cols["has_social_work_room"]).value == "否"

    # Returned unchanged, the template says exactly what was counted last month.
    record, rows = read_file(path, path.parent, PERIOD, FORMS, KEY)
    sg01 = {r["unit_code"]: r for r in rows["SG-01"]}
    assert list(sg01) == VILLAGES
    assert sg01[v0]["unit_name"] == NAME[v0]  # the registry's name, not last month's spelling
    for name, v in full.items():
        assert sg01[v0][name] == v, name
    assert sg01[v1]["registered_population"] == 1500 and sg01[v1]["community_workers"] is None
    assert all(sg01[v][f.name] is None for v in VILLAGES[2:] for f in FORMS["SG-01"].fields
               if f.name not in ("unit_code", "unit_name"))
    # No staging table for the other forms: codes and names only.
    [sg03] = rows["SG-03"]
    assert sg03["unit_code"] == TOWN and sg03["station_in_service"] is None
    assert rows.get("SG-02", []) == []


def test_no_warehouse_tables_means_codes_and_names_only(tmp_path):
    db = tmp_path / "empty.duckdb"
    duckdb.connect(str(db)).close()
    [a] = write_templates(PERIOD, tmp_path / "a", db=db, unit=TOWN)
    [b] = write_templates(PERIOD, tmp_path / "b", db=tmp_path / "absent.duckdb", unit=TOWN)
    [c] = write_templates(PERIOD, tmp_path / "c", unit=TOWN)
    assert a.read_bytes() == b.read_bytes() == c.read_bytes()


def test_institutions_go_to_the_sender_that_listed_them(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    row = {"period": "2024-02", "counted": True, "institution_type": "养老机构", "civil_affairs_public": True,
           "residents": 40, "social_work_posts": 1, "social_workers_in_post": 1, "buys_social_work_services": False}
    make_staging(db, "SG-05", [
        {**row, "unit_code": VILLAGES[0], "institution_name": "县管敬老院", "source_file": "东区/a.xlsx",
         "source_sheet": "S", "excel_row": 4},
        {**row, "unit_code": TOWN, "institution_name": "市管福利院", "source_file": "市本级/b.xlsx",
         "source_sheet": "S", "excel_row": 4, "residents": None},
    ], extra={"source_file": "varchar", "source_sheet": "varchar", "excel_row": "bigint"})
    with duckdb.connect(str(db)) as con:
        con.execute("create schema ingest")
        con.execute("create table ingest.files (period varchar, path varchar, sender_code varchar)")
        con.execute("insert into ingest.files values ('2024-02', '东区/a.xlsx', ?), ('2024-02', '市本级/b.xlsx', ?)",
                    [COUNTY, CITY])
    out = tmp_path / "out"
    county = write_templates(PERIOD, out, db=db, unit=COUNTY)[0]
    city = write_templates(PERIOD, out, db=db, unit=CITY)[0]
    for path, name in ((county, "县管敬老院"), (city, "市管福利院")):
        _, rows = read_file(path, path.parent, PERIOD, FORMS, KEY)
        assert [r["institution_name"] for r in rows["SG-05"]] == [name]
    _, rows = read_file(city, city.parent, PERIOD, FORMS, KEY)
    [r] = rows["SG-05"]
    assert (r["unit_code"], r["residents"], r["civil_affairs_public"]) == (TOWN, None, True)


# --- 4. every reporting unit -----------------------------------------------------------------------

def test_one_workbook_per_reporting_unit(tmp_path):
    paths = write_templates(PERIOD, tmp_path / "a")
    senders = sorted(c for c, lv in LEVEL.items() if lv in ("city", "county", "township"))
    assert len(paths) == len(senders) == 55
    assert sorted(p.name.split("-")[0] for p in paths) == senders
    assert all(p.name == f"{c}-{NAME[c]}.xlsx" and p.parent == tmp_path / "a" / PERIOD
               for p, c in zip(paths, (p.name.split("-")[0] for p in paths)))
    # Byte for byte the same on a second run.
    again = write_templates(PERIOD, tmp_path / "b")
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]
    # Returned blank, every one reads without a rejected sheet, with the forms its level sends.
    expected = {"township": {"SG-01", "SG-02", "SG-03"}, "county": {"SG-02", "SG-04", "SG-05", "SG-06"},
                "city": {"SG-02", "SG-04", "SG-05", "SG-06"}}
    for p in paths:
        code = p.name.split("-")[0]
        record, rows = read_file(p, p.parent, PERIOD, FORMS, KEY)
        assert {s.form for s in record.sheets if s.form} == expected[LEVEL[code]], p.name
        assert all(s.status == "read" for s in record.sheets if s.form), p.name
        assert all(s.status == "skipped" for s in record.sheets if not s.form), p.name
        # The template's own sheets, its hidden dropdown lists too, are nothing to tell the sender of.
        assert {s.reason_en for s in record.sheets if not s.form} == {"instructions sheet"}, p.name
        assert [r["unit_code"] for r in rows.get("SG-03", []) + rows.get("SG-06", [])] == [code]
    city = next(p for p in paths if p.name.startswith(CITY))
    lists = [s for s in read_file(city, city.parent, PERIOD, FORMS, KEY)[0].sheets if s.sheet == LISTS_SHEET]
    assert [(s.status, s.reason_en) for s in lists] == [("skipped", "instructions sheet")]  # hidden in the workbook


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="YYYY-MM"):
        write_templates("2024-3", tmp_path)
    with pytest.raises(ConfigError, match="not in the registry"):
        write_templates(PERIOD, tmp_path, unit="510499999999")
    with pytest.raises(ConfigError, match="sends no form"):
        write_templates(PERIOD, tmp_path, unit=VILLAGES[0])
