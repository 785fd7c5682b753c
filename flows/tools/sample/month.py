"""A month's inbox: the simulated city's forms laid out as the city's templates, written by each
sender in its own format and with its own habits (file and sheet names, title rows, a footer),
with faults planted for the validator to reject and the figures the accepted rows must give."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from flows.config import SCHEMAS, add_months, check_period
from flows.schemas import Form, load_forms
from flows.tools.sample.files import write_csv, write_xls, write_xlsx
from flows.tools.sample.scenario import ADDRESS_CODE, BASELINE_MONTH
from flows.tools.sample.world import World, fake_phone, id_check_digit, read_registry, year_month

_CST = timezone(timedelta(hours=8))  # Asia/Shanghai has had no DST since 1991
_VILLAGE_STEMS = ("新民", "团结", "和平", "红旗", "胜利", "联合", "光荣", "永丰", "前锋", "跃进")


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
@dataclass
class _Sheet:
    form: str
    name: str
    rows: list[dict]
    fault_rows: dict[int, str] = field(default_factory=dict)  # index in rows -> fault kind


@dataclass
class _Sender:
    code: str
    fmt: str  # xlsx, xls, csv-gbk, csv-bom
    style: int  # naming and layout habit, stable per sender


def _layout(form: Form, sheet: _Sheet, city: str, sender: str, period: str, offset: int,
            footer: str | None) -> list[list]:
    """The cells of a sheet laid out like the city's template (title, form number, header), top to bottom."""
    width = len(form.fields)
    second = [f"表号：{form.id}"] + [None] * (offset - 1) + [f"填报单位：{sender}", f"统计期：{period}"]
    out = [[city + form.titles[0]], second, [f.header for f in form.fields]]
    out += [[row.get(f.name) for f in form.fields] for row in sheet.rows]
    if footer:
        out += [[], [footer]]
    return [r + [None] * (width - len(r)) for r in out]


_XLSX_NAMES = ("新建 Microsoft Excel 工作表.xlsx", "{t}{y}年{m}月社工报表.xlsx", "{t}社会工作月报表（{m}月）.xlsx",
               "附件：社会工作月报表.xlsx", "{t}-{y}.{mm}-社工报表.xlsx", "新建 Microsoft Excel 工作表 (2).xlsx")
_XLS_NAMES = ("{t}{y}年{m}月社工报表.xls", "Book1.xls", "社工报表{y}{mm}.xls")
_CSV_NAMES = (("SG-01.csv", "SG-02台账.csv", "SG-03.csv"), ("村社区月报.csv", "人才台账.csv", "社工站月报.csv"),
              ("{t}村（社区）月报{m}月.csv", "{t}台账{m}月.csv", "{t}社工站{m}月.csv"))
_COUNTY_NAMES = ("{t}{y}年{m}月社会工作报表.xlsx", "{t}民政局社工报表（{y}年{m}月）.xlsx", "新建 Microsoft Excel 工作表.xlsx")
_SHEET_NAMES = {
    0: {"SG-01": "村社区月报", "SG-02": "人才台账", "SG-03": "社工站", "SG-04": "机构名录", "SG-05": "民政服务机构",
        "SG-06": "综合情况"},
    2: {"SG-01": "村（社区）", "SG-02": "台账", "SG-03": "社工站月报", "SG-04": "社工机构", "SG-05": "岗位情况",
        "SG-06": "Sheet1"},
}


def assign_formats(world: World, seed: int) -> dict[str, _Sender]:
    """Which file format each sender uses: stable across months, as office habits are."""
    rng = random.Random(f"{seed}/formats")
    towns = list(world.townships)
    rng.shuffle(towns)
    n = len(towns)
    n_xls, n_gbk, n_bom = round(n * 0.15), round(n * 0.10), (2 if n >= 20 else 1 if n >= 5 else 0)
    fmts = ["xls"] * n_xls + ["csv-gbk"] * n_gbk + ["csv-bom"] * n_bom
    senders = {c: _Sender(c, fmts[i] if i < len(fmts) else "xlsx", rng.randrange(6)) for i, c in enumerate(towns)}
    for u in [world.t.city] + world.counties:
        senders[u] = _Sender(u, "xlsx", rng.randrange(6))
    return senders


class _Month:
    """Writes one month's inbox and records what it planted."""

    def __init__(self, world: World, forms: dict[str, Form], senders: dict[str, _Sender], inbox: Path, k: int):
        self.w, self.forms, self.senders, self.k = world, forms, senders, k
        self.label = world.period(k)
        self.ym = year_month(self.label)
        self.root = inbox / self.label
        self.period = f"{self.ym[0]}年{self.ym[1]}月"
        self.faults: list[dict] = []
        self.files: list[Path] = []
        self.formats: dict[str, int] = {}

    def rng(self, *parts) -> random.Random:
        return random.Random("/".join([str(self.w.seed), self.label, *map(str, parts)]))

    def mtime(self, code: str) -> float:
        """A working-hours moment in the first five days of the following month."""
        r = self.rng(code, "mtime")
        y, m = year_month(add_months(self.label, 1))
        return datetime(y, m, r.randint(1, 5), r.randint(9, 17), r.randint(0, 58), r.randint(0, 59),
                        tzinfo=_CST).timestamp()

    # -- sheets per sender -------------------------------------------------------------------
    def township_sheets(self, code: str) -> list[_Sheet]:
        w, k = self.w, self.k
        r = self.rng(code, "rows")
        units = [code] + w.t.children.get(code, [])
        return [_Sheet("SG-01", "", w.sg01(code, k, r)),
                _Sheet("SG-02", "", w.roster(units, k)),
                _Sheet("SG-03", "", [w.sg03(code, k, r)])]

    def upper_sheets(self, code: str) -> list[_Sheet]:
        w, k = self.w, self.k
        return [_Sheet("SG-02", "", w.roster([code], k)),
                _Sheet("SG-04", "", w.sg04(code, k)),
                _Sheet("SG-05", "", w.sg05(code, k)),
                _Sheet("SG-06", "", [w.sg06(code, k)])]

    # -- faults ------------------------------------------------------------------------------
    @staticmethod
    def _fault_person_row(r: random.Random, unit: str, employer: str, bad_check: bool,
                          address: str = ADDRESS_CODE) -> dict:
        """A person not otherwise listed: sequence codes 801-999 are never given to the sample's persons."""
        male = r.random() < 0.4
        seq = r.randrange(801, 999, 2) + (0 if male else 1)
        body = address + f"{r.randint(1970, 1999)}{r.randint(1, 12):02d}{r.randint(1, 28):02d}{seq:03d}"
        check = id_check_digit(body)
        if bad_check:
            check = r.choice([c for c in "0123456789X" if c != check])
        return {"unit_code": unit, "name": World.person_name(r, male), "id_number": body + check,
                "sex": "男" if male else "女", "employer": employer, "post_type": "社区专职工作者", "full_time": "是",
                "certificate_level": "无", "service_fields": "社区治理", "party_member": "否",
                "phone": "1990002" + f"{r.randrange(10000):04d}"}

    def _unknown_village(self, r: random.Random, township: str) -> tuple[str, str]:
        known = self.w.t.name
        names = set(known.values())
        while True:
            code = township[:9] + f"{r.randint(150, 399):03d}"
            name = r.choice(_VILLAGE_STEMS) + "村民委员会"
            if code not in known and name not in names:
                return code, name

    def plant_faults(self, sheets_by_sender: dict[str, list[_Sheet]]):
        """Rows the validator must reject. In the baseline month only ones that change no figure."""
        r = self.rng("faults")
        towns = sorted(c for c, s in sheets_by_sender.items() if self.w.t.level[c] == "township")
        if self.k == 0:
            # A person listed twice by one township, the second time with a mistyped ID number.
            for code in r.sample(towns, len(towns)):
                sg02 = sheets_by_sender[code][1]
                if sg02.rows:
                    i = r.randrange(len(sg02.rows))
                    dup = dict(sg02.rows[i])
                    pos = r.choice((14, 15))  # keep the sex digit, so only the check fails
                    idn = dup["id_number"]
                    typo = r.choice([d for d in "0123456789" if d != idn[pos]])
                    dup["id_number"] = idn[:pos] + typo + idn[pos + 1:]
                    sg02.rows.insert(i + 1, dup)
                    self._shift(sg02, i + 1)
                    sg02.fault_rows[i + 1] = "duplicate_bad_check_digit"
                    break
            return
        for _ in range(r.randint(2, 4)):
            code = r.choice(towns)
            sg01, sg02 = sheets_by_sender[code][0], sheets_by_sender[code][1]
            kind = r.choice(("bad_check_digit", "certified_gt_workers", "unknown_unit_code", "unknown_unit_code"))
            if kind == "certified_gt_workers":
                ok = [i for i in range(len(sg01.rows)) if i not in sg01.fault_rows]
                if not ok:
                    continue
                i = r.choice(ok)
                sg01.rows[i]["community_workers_certified"] = sg01.rows[i]["community_workers"] + r.randint(1, 3)
                sg01.fault_rows[i] = kind
            elif kind == "bad_check_digit":
                v = r.choice(self.w.t.children.get(code, []) or [code])
                i = r.randint(0, len(sg02.rows))
                sg02.rows.insert(i, self._fault_person_row(r, v, self.w.t.name[v], True, self.w.address))
                self._shift(sg02, i)
                sg02.fault_rows[i] = kind
            elif r.random() < 0.5:
                vcode, vname = self._unknown_village(r, code)
                pop = r.randint(800, 3000)
                sg01.rows.append({"unit_code": vcode, "unit_name": vname, "registered_population": pop,
                                  "elderly_population": round(pop * 0.2), "community_workers": 4,
                                  "community_workers_certified": 1, "party_secretary_certified": "否",
                                  "community_social_orgs": 3, "volunteer_teams": 1, "has_social_work_room": "否",
                                  "has_charity_fund": "否", "child_directors": 1, "child_directors_trained": 0})
                sg01.fault_rows[len(sg01.rows) - 1] = kind
            else:
                vcode, vname = self._unknown_village(r, code)
                i = r.randint(0, len(sg02.rows))
                sg02.rows.insert(i, self._fault_person_row(r, vcode, vname, False, self.w.address))
                self._shift(sg02, i)
                sg02.fault_rows[i] = kind

    @staticmethod
    def _shift(sheet: _Sheet, at: int):
        sheet.fault_rows = {(i + 1 if i >= at else i): v for i, v in sheet.fault_rows.items()}

    # -- writing -----------------------------------------------------------------------------
    def write(self, code: str, sheets: list[_Sheet]):
        s = self.senders[code]
        name, level = self.w.t.name[code], self.w.t.level[code]
        folder = self.root / self.w.folder(code)
        folder.mkdir(parents=True, exist_ok=True)
        r = self.rng(code, "file")
        y, m = self.ym
        names = {"t": name, "y": y, "m": m, "mm": f"{m:02d}"}
        footer = None
        when = self.mtime(code)
        if r.random() < 0.5:
            filler_male = r.random() < 0.3
            footer = (f"填报人：{World.person_name(r, filler_male)}  联系电话：{fake_phone(r)}  "
                      f"填报日期：{datetime.fromtimestamp(when, _CST).date().isoformat()}")
        offset = 1 + s.style % 2
        layout_style = s.style % 3
        grids = []
        for j, sh in enumerate(sheets):
            sh.name = f"Sheet{j + 1}" if layout_style == 1 else _SHEET_NAMES[layout_style][sh.form]
            grids.append((sh.name, _layout(self.forms[sh.form], sh, self.w.t.name[self.w.t.city], name, self.period,
                                           offset, footer)))
        written: list[tuple[Path, list[_Sheet]]] = []
        if s.fmt in ("xlsx", "xls"):
            pattern = (_COUNTY_NAMES[s.style % 3] if level != "township" else
                       _XLSX_NAMES[s.style] if s.fmt == "xlsx" else _XLS_NAMES[s.style % 3])
            if level == "city":
                pattern = "市本级社会工作报表{y}年{m}月.xlsx"
            path = folder / pattern.format(**names)
            (write_xlsx if s.fmt == "xlsx" else write_xls)(path, grids)
            os.utime(path, (when, when))
            written.append((path, sheets))
        else:
            encoding = "gbk" if s.fmt == "csv-gbk" else "utf-8-sig"
            for j, (sh, (_, grid)) in enumerate(zip(sheets, grids)):
                path = folder / _CSV_NAMES[s.style % 3][j].format(**names)
                write_csv(path, grid, encoding)
                os.utime(path, (when + 7 * j, when + 7 * j))
                sh.name = path.stem  # a CSV holds one sheet, named after its file as Excel does
                written.append((path, [sh]))
        for path, shs in written:
            self.files.append(path)
            self.formats[s.fmt] = self.formats.get(s.fmt, 0) + 1
            for sh in shs:
                for i, kind in sorted(sh.fault_rows.items()):
                    self.faults.append({"kind": kind, "form": sh.form, "sheet": sh.name, "row": 4 + i,
                                        "file": path.relative_to(self.root.parent).as_posix()})

    def write_note(self):
        """A text note saved with an .xlsx name: a file that is not a spreadsheet at all."""
        county = self.w.counties[0]
        folder = self.root / self.w.folder(county)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "关于报送社会工作月报表的说明.xlsx"
        text = (f"关于报送{self.period}社会工作月报表的说明\r\n\r\n"
                f"各乡镇（街道）：本月报表请于次月5日前报送。台账中身份证号码请核对无误后再报。\r\n"
                f"{self.w.t.name[county]}民政局\r\n")
        path.write_bytes(text.encode("utf-8"))
        when = self.mtime(county + "/note")
        os.utime(path, (when, when))
        self.files.append(path)
        self.formats["text"] = self.formats.get("text", 0) + 1
        self.faults.append({"kind": "not_a_spreadsheet", "form": None, "sheet": None, "row": None,
                            "file": path.relative_to(self.root.parent).as_posix()})


def _expected(world: World, sheets_by_sender: dict[str, list[_Sheet]]) -> dict:
    """The month's figures under the counting rules, from the rows that should be accepted."""
    def accepted(form):
        for sheets in sheets_by_sender.values():
            for sh in sheets:
                if sh.form == form:
                    yield from (row for i, row in enumerate(sh.rows) if i not in sh.fault_rows)

    people = list(world.persons.values())
    sg01 = list(accepted("SG-01"))
    workers = sum(r["community_workers"] for r in sg01)
    sg04 = list(accepted("SG-04"))
    public = [r for r in accepted("SG-05") if r["civil_affairs_public"] == "是"]
    by_group = {g: sum(p.group == g for p in people) for g in ("urban", "rural")}
    return {
        "talent_total": len(people),
        "certified_total": sum(p.level != "无" for p in people),
        "elderly_talent_total": sum("老年" in p.fields for p in people),
        "minor_talent_total": sum("未成年人" in p.fields for p in people),
        "dual_listed": sum(p.also is not None for p in people),
        "urban_community_talent_avg": by_group["urban"] / max(world.n_urban, 1),
        "rural_community_talent_avg": by_group["rural"] / max(world.n_rural, 1),
        "community_worker_certified_share":
            100.0 * sum(r["community_workers_certified"] for r in sg01) / workers if workers else None,
        "stations_in_service": sum(r["station_in_service"] == "是" for r in accepted("SG-03")),
        "village_rooms": sum(r["has_social_work_room"] == "是" for r in sg01),
        "civil_affairs_public": len(public),
        "civil_affairs_public_with_posts": sum(r["social_work_posts"] >= 1 for r in public),
        "orgs": len(sg04),
        "orgs_incubated": sum(r["incubated_locally"] == "是" for r in sg04),
        "orgs_uncovered": sum(r["party_building_form"] == "未覆盖" for r in sg04),
    }


def write_month(world: World, forms: dict[str, Form], senders: dict[str, _Sender], inbox: Path, k: int,
                 root_files: bool = True) -> tuple[_Month, dict[str, list[_Sheet]]]:
    """One month's files of a world; without `root_files` the root unit sends nothing (a tile of
    the province other than the first: the province's own files come once)."""
    tree = world.t
    month = _Month(world, forms, senders, inbox, k)
    sheets = {u: month.township_sheets(u) for u in world.townships}
    sheets.update({u: month.upper_sheets(u) for u in world.counties + [tree.city]})
    month.plant_faults(sheets)
    for code in sorted(sheets):
        if root_files or code != tree.city:
            month.write(code, sheets[code])
    if k == 0:
        month.write_note()
    return month, sheets


def generate_sample(inbox: Path, units_csv: Path, population_csv: Path, *, seed: int = 20221017,
                    start: str = "2022-08", end: str = "2025-12") -> dict:
    """Write <inbox>/<YYYY-MM>/... for every month; return a summary dict (files written per month, ...)."""
    first, last = check_period(start), check_period(end)
    if first < BASELINE_MONTH:
        raise ValueError(f"the sample starts at its baseline month {BASELINE_MONTH}; start={start} is before it")
    if last < first:
        raise ValueError(f"end={end} is before start={start}")
    inbox = Path(inbox)
    world = World(*read_registry(units_csv, population_csv), seed)
    senders = assign_formats(world, seed)
    forms = load_forms(SCHEMAS)
    summary: dict = {"seed": seed, "start": start, "end": end, "files_written": 0,
                     "formats": {world.folder(c).as_posix(): s.fmt for c, s in sorted(senders.items())}, "months": {}}
    k = 0
    while True:
        period = world.period(k)
        if period > last:
            break
        if k > 0:
            world.step(k)
        if period >= first:
            month, sheets = write_month(world, forms, senders, inbox, k)
            summary["months"][month.label] = {
                "files": len(month.files),
                "by_format": dict(sorted(month.formats.items())),
                "expected": _expected(world, sheets),
                "faults": month.faults,
            }
            summary["files_written"] += len(month.files)
        k += 1
    return summary

