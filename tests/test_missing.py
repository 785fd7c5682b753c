"""The missing list (催报): who still owes what, computed by hand for the fixture month and for
three months of late, refused and carried reports, against the view analysis.missing, the
terminal (`shegong missing`), the report's 未报送清单 sheet and the county workbooks, read back
cell by cell with openpyxl."""
from __future__ import annotations

import csv
import datetime as dt
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import openpyxl
import pytest

from conftest import INBOX, PERIOD
from flows.config import DATA, SCHEMAS
from flows.outputs.report import LEVEL_ZH
from flows.schemas import load_forms
from flows.outputs.workbook import SHEETS

SHEGONG = Path(sys.executable).parent / "shegong"
UNITS = {r["code"]: r for r in csv.DictReader(open(DATA / "registry" / "units.csv", encoding="utf-8"))}
FORM_NAMES = {f.id: f.name for f in load_forms(SCHEMAS).values()}
# Who is expected to report each form (schemas: SG-01, SG-03 a row per village or township; SG-06 a
# row per county and the city; SG-02, SG-04, SG-05 a list from each sending unit).
EXPECTED = {"SG-01": ("village",), "SG-02": ("township", "county", "city"), "SG-03": ("township",),
            "SG-04": ("county", "city"), "SG-05": ("county", "city"), "SG-06": ("county", "city")}
# What the fixture month brings, read off tests/fixtures/build_fixtures.py: 大渡口街道's four
# communities and 攀莲镇's three (南山社区's sheet is last month's, refused, and was sent by 东区,
# which does not send SG-01); the rosters of 东区, 大渡口街道 and 攀莲镇; both towns' stations;
# the lists of organisations of the city and 东区, 东区's institutions, the summaries of both.
RECEIVED = {"SG-01": {"510402001002", "510402001004", "510402001005", "510402001006",
                      "510421100001", "510421100200", "510421100201"},
            "SG-02": {"510402000000", "510402001000", "510421100000"},
            "SG-03": {"510402001000", "510421100000"},
            "SG-04": {"510400000000", "510402000000"},
            "SG-05": {"510402000000"},
            "SG-06": {"510400000000", "510402000000"}}


def up(code: str, level: str) -> str | None:
    """The unit of `level` above `code` (or `code` itself), from the registry file."""
    while code in UNITS:
        if UNITS[code]["level"] == level:
            return code
        code = UNITS[code]["parent_code"]
    return None


def entry(code: str, form: str, status="not_received", months=1, since=PERIOD, last=None, carried=None,
          refused=None) -> dict:
    county, township = up(code, "county"), up(code, "township")
    sender = up(code, "township") if form == "SG-01" else code
    return {"county_code": county, "county_name": UNITS[county]["name"] if county else None,
            "township_code": township, "township_name": UNITS[township]["name"] if township else None,
            "unit_code": code, "unit_name": UNITS[code]["name"], "unit_level": UNITS[code]["level"],
            "form": form, "sender_code": sender, "sender_name": UNITS[sender]["name"], "status": status,
            "months_in_row": months, "missing_since": since, "last_received": last, "carried_from": carried,
            "refused_path": refused}


def order(e: dict) -> tuple:
    return (e["county_code"] is not None, e["county_code"] or "", e["township_code"] is not None,
            e["township_code"] or "", e["unit_code"], e["form"])


BY_HAND = sorted((entry(code, form) for form, levels in EXPECTED.items()
                  for code, u in UNITS.items() if u["level"] in levels and code not in RECEIVED[form]), key=order)
FIELDS = list(BY_HAND[0])


def view(db: Path, period: str) -> list[dict]:
    with duckdb.connect(str(db), read_only=True) as con:
        cur = con.execute(f"select {', '.join(FIELDS)} from analysis.missing where period = ?", [period])
        return sorted((dict(zip(FIELDS, r)) for r in cur.fetchall()), key=order)


def status_zh(e: dict) -> str:
    return {"not_received": "未报送", "refused": "报送被拒收", "carried": "沿用往月数据"}[e["status"]]


def workbook_cells(e: dict, n: int, detail: str) -> tuple:
    return (n, e["county_name"] or "市本级", e["township_name"] or "—", e["unit_code"], e["unit_name"],
            LEVEL_ZH[e["unit_level"]], e["form"], FORM_NAMES[e["form"]], e["sender_name"], status_zh(e),
            e["months_in_row"], e["missing_since"], e["last_received"] or "—", detail)


def counts(entries: list[dict]) -> str:
    n = {s: sum(e["status"] == s for e in entries) for s in ("not_received", "refused", "carried")}
    return f"共 {len(entries)} 项（未报送 {n['not_received']}，报送被拒收 {n['refused']}，沿用往月数据 {n['carried']}）"


def shegong(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SHEGONG), *args], capture_output=True, text=True, timeout=300)


# -- the fixture month ---------------------------------------------------------------------------
def test_the_fixture_months_list_by_hand_is_the_view(month_db):
    assert len(BY_HAND) == 329 + 52 + 47 + 4 + 5 + 4
    assert view(month_db, PERIOD) == BY_HAND


def test_the_terminal_prints_the_list_by_hand(month_db):
    p = shegong("missing", "--period", PERIOD, "--db", str(month_db))
    assert p.returncode == 0 and p.stderr == ""
    lines = p.stdout.splitlines()
    assert lines[0] == f"攀枝花市 {PERIOD} 未报送清单（报送期限 2024年4月5日）：{counts(BY_HAND)}"
    assert re.split(r" {2,}", lines[1]) == ["县（区）", "乡镇（街道）", "单位代码", "单位名称", "报表", "情况", "连续月数",
                                          "最近报送", "说明"]
    printed = [tuple(re.split(r" {2,}", line.strip())) for line in lines[3:-1]]
    assert printed == [(e["county_name"] or "市本级", e["township_name"] or "—", e["unit_code"], e["unit_name"],
                        e["form"], "未报送", "1", "—", "本月未报送") for e in BY_HAND]
    # One township's share: 攀莲镇's seven communities that sent nothing.
    p = shegong("missing", "--period", PERIOD, "--unit", "510421100000", "--db", str(month_db))
    mine = [e for e in BY_HAND if e["township_code"] == "510421100000"]
    assert len(mine) == 7 and p.stdout.splitlines()[0] == f"攀莲镇 {PERIOD} 未报送清单（报送期限 2024年4月5日）：{counts(mine)}"
    assert [line.split()[2] for line in p.stdout.splitlines()[3:-1]] == [e["unit_code"] for e in mine]
    p = shegong("missing", "--period", PERIOD, "--unit", "510499000000", "--db", str(month_db))
    assert p.returncode == 1 and p.stderr.strip() == "shegong: unit 510499000000 is not in the registry"


def test_each_countys_workbook_is_its_share_of_the_list_cell_by_cell(month_db):
    folder = month_db.parent / "reports" / PERIOD / "催报"
    areas: dict[str, list[dict]] = {}
    for e in BY_HAND:
        areas.setdefault(e["county_code"] or "510400000000", []).append(e)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{c}-{UNITS[c]['name']}.xlsx" for c in areas)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for code, entries in areas.items():
        path = folder / f"{code}-{UNITS[code]['name']}.xlsx"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        book = openpyxl.load_workbook(path)
        assert book.sheetnames == ["未报送清单"]
        sheet = book["未报送清单"]
        name = UNITS[code]["name"] + ("（市本级）" if code == "510400000000" else "")
        assert sheet["A1"].value == f"{name} 2024年3月 未报送清单（催报）"
        assert sheet["A2"].value == (f"报送期限：2024年4月5日。{counts(entries)}。请督促以下单位尽快报送；"
                                     f"被拒收的请按说明更正后重新报送。")
        rows = list(sheet.iter_rows(min_row=3, values_only=True))
        assert rows[0] == ("序号", "县（区）", "乡镇（街道）", "单位代码", "单位名称", "层级", "报表", "报表名称",
                           "应报送单位", "情况", "连续未按时月数", "自何月起", "最近报送", "说明")
        assert rows[1:] == [workbook_cells(e, n, "本月未报送") for n, e in enumerate(entries, start=1)]


def test_the_reports_sheet_and_page_list_every_entry(month_db):
    report = month_db.parent / "reports" / PERIOD
    sheet = openpyxl.load_workbook(report / f"report-{PERIOD}.xlsx")[SHEETS[4]]
    assert SHEETS[4] == "未报送清单" and sheet["A1"].value == "攀枝花市 2024年3月 未报送清单（催报）"
    assert list(sheet.iter_rows(min_row=4, values_only=True)) == [
        workbook_cells(e, n, "本月未报送") for n, e in enumerate(BY_HAND, start=1)]
    page = (report / f"report-{PERIOD}.html").read_text(encoding="utf-8")
    listed = re.findall(r'<tr data-unit="(\d+)" data-form="(SG-0\d)" data-status="(\w+)">', page)
    assert listed == [(e["unit_code"], e["form"], "not_received") for e in BY_HAND]
    assert f"报送期限 2024年4月5日；{counts(BY_HAND)}。" in page


# -- refused, carried, late: three months ----------------------------------------------------------
def _stamp(path: Path, when: dt.datetime) -> None:
    t = when.replace(tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (t, t))


@pytest.fixture(scope="module")
def three_months(tmp_path_factory) -> Path:
    """March as the fixture; April: 东区民政局's file again but after the deadline, the city's, and
    from 攀莲镇 a file that is no spreadsheet (大渡口街道 sends nothing); May: the city's only."""
    from flows.monthly import monthly_rollup
    inbox = tmp_path_factory.mktemp("missing-inbox")
    shutil.copytree(INBOX, inbox, dirs_exist_ok=True)
    _stamp(inbox / PERIOD, dt.datetime(2024, 4, 3, 10))  # on time (a checkout's files are as new as it)
    april, may = inbox / "2024-04", inbox / "2024-05"
    (april / "东区").mkdir(parents=True)
    shutil.copy2(INBOX / PERIOD / "东区" / "东区民政局3月.xlsx", april / "东区" / "东区民政局4月.xlsx")
    _stamp(april / "东区" / "东区民政局4月.xlsx", dt.datetime(2024, 5, 10, 9))  # the deadline was 5 May
    (april / "米易县" / "攀莲镇").mkdir(parents=True)
    (april / "米易县" / "攀莲镇" / "报表.xlsx").write_text("4月报表见微信。\n", encoding="utf-8")
    for month, day in ((april, dt.datetime(2024, 5, 3, 9)), (may, dt.datetime(2024, 6, 3, 9))):
        shutil.copytree(INBOX / PERIOD / "市本级", month / "市本级")
        _stamp(month / "市本级", day)
    _stamp(april / "米易县", dt.datetime(2024, 5, 3, 9))
    db = tmp_path_factory.mktemp("missing-wh") / "warehouse.duckdb"
    for month in (PERIOD, "2024-04", "2024-05"):
        monthly_rollup(period=month, inbox=str(inbox), db=str(db))
    return db


REFUSED = "米易县/攀莲镇/报表.xlsx"
WHY = "文件扩展名是.xlsx，但内容不是电子表格；请用 Excel 或 WPS 另存为 .xlsx 后重新报送"


def test_refused_carried_and_late_months_in_a_row(three_months):
    april = {(e["form"], e["unit_code"]): e for e in view(three_months, "2024-04")}
    may = {(e["form"], e["unit_code"]): e for e in view(three_months, "2024-05")}
    got = lambda month, form, code: {k: month[(form, code)][k] for k in FIELDS}
    # 攀莲镇 sent a file that could not be read: every form it owes is refused, with March's rows
    # standing in where it sent some.
    assert got(april, "SG-01", "510421100001") == entry("510421100001", "SG-01", "refused", 1, "2024-04", "2024-03",
                                                       "2024-03", REFUSED)
    assert got(april, "SG-02", "510421100000") == entry("510421100000", "SG-02", "refused", 1, "2024-04", "2024-03",
                                                       "2024-03", REFUSED)
    assert got(april, "SG-01", "510421100002") == entry("510421100002", "SG-01", "refused", 2, PERIOD, None, None,
                                                       REFUSED)
    # 大渡口街道 sent nothing: its communities' March rows are carried; 南山社区 was never received.
    assert got(april, "SG-01", "510402001002") == entry("510402001002", "SG-01", "carried", 1, "2024-04", "2024-03",
                                                       "2024-03")
    assert got(april, "SG-01", "510402001007") == entry("510402001007", "SG-01", "not_received", 2, PERIOD)
    # 东区's lists came late in April: received, so not owed; but late, so May's absence is the second month.
    assert not any(code == "510402000000" for _, code in april)
    assert got(may, "SG-04", "510402000000") == entry("510402000000", "SG-04", "carried", 2, "2024-04", "2024-04",
                                                     "2024-04")
    assert got(may, "SG-01", "510402001007") == entry("510402001007", "SG-01", "not_received", 3, PERIOD)
    assert got(may, "SG-01", "510402001002") == entry("510402001002", "SG-01", "carried", 2, "2024-04", "2024-03",
                                                     "2024-03")
    assert got(may, "SG-01", "510421100001") == entry("510421100001", "SG-01", "carried", 2, "2024-04", "2024-03",
                                                     "2024-03")
    with duckdb.connect(str(three_months), read_only=True) as con:
        details = dict(((f, c), d) for f, c, d in con.execute(
            "select form, unit_code, detail_zh from analysis.missing where period = '2024-04'").fetchall())
    assert details[("SG-01", "510421100001")] == f"文件「{REFUSED}」：{WHY}；暂沿用 2024-03 的数据"
    assert details[("SG-01", "510421100002")] == f"文件「{REFUSED}」：{WHY}"
    assert details[("SG-01", "510402001002")] == "本月未报送，暂沿用 2024-03 的数据"


def test_the_county_workbook_and_terminal_say_the_same(three_months):
    entries = [e for e in view(three_months, "2024-04") if e["county_code"] == "510421000000"]
    with duckdb.connect(str(three_months), read_only=True) as con:
        details = [con.execute("select detail_zh from analysis.missing where period = '2024-04' and unit_code = ? "
                               "and form = ?", [e["unit_code"], e["form"]]).fetchone()[0] for e in entries]
    sheet = openpyxl.load_workbook(three_months.parent / "reports" / "2024-04" / "催报" / "510421000000-米易县.xlsx")
    rows = list(sheet["未报送清单"].iter_rows(min_row=4, values_only=True))
    assert rows == [workbook_cells(e, n, d) for n, (e, d) in enumerate(zip(entries, details), start=1)]
    assert ("米易县", "攀莲镇", "510421100001") == rows[[r[3] for r in rows].index("510421100001")][1:4]
    p = shegong("missing", "--period", "2024-04", "--unit", "510421000000", "--db", str(three_months))
    printed = [re.split(r" {2,}", line.strip()) for line in p.stdout.splitlines()[3:-1]]
    assert [(r[2], r[4], r[5], r[6], r[7], r[8]) for r in printed] == [
        (e["unit_code"], e["form"], status_zh(e), str(e["months_in_row"]), e["last_received"] or "—", d)
        for e, d in zip(entries, details)]
