"""Sample inbox: a deterministic month-by-month set of office reports for a real org-unit tree.

The scenario starts at the plan's 2022-08 baseline, which the files reproduce exactly under the
counting rules of the indicators document, and moves toward the 2025 targets the way a real city
would: some targets met, some missed. Faults are planted so the validator has rows to reject;
those of the baseline month change no figure.

Every person, organisation and credit code is fictitious (see `_ADDRESS_CODE`). Codes and names of
the org units come only from the registry CSVs passed in, never from this file.
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import xlsxwriter
import xlwt

from flows.config import SCHEMAS
from flows.schemas import Form, load_forms

# ---------------------------------------------------------------------------------------------
# The scenario. Pairs are (value at BASELINE_MONTH, value at TARGET_MONTH); the baseline values
# are the plan's own ("截至2022年8月…"), the 2025 ones a plausible outcome against its targets.
# ---------------------------------------------------------------------------------------------
BASELINE_MONTH = "2022-08"
TARGET_MONTH = "2025-12"
TALENTS = (1740, 2150)  # target 2100: met
CERTIFIED = (528, 720)  # target 750: missed
ELDERLY_FIELD_TALENTS = (312, 430)  # target 400: met
MINOR_FIELD_TALENTS = (205, 280)  # target 300: missed
URBAN_COMMUNITY_TALENTS_AVG = (1.55, 2.3)  # target 2: met
RURAL_COMMUNITY_TALENTS_AVG = (0.5, 0.85)  # target 1: missed
STATION_TALENTS_AVG = (2.6, 4.0)  # persons per township station in service
CITY_TALENTS = (150, 175)
COMMUNITY_WORKER_CERTIFIED_SHARE = (0.20, 0.38)  # target 35 %: met
URBAN_SECRETARY_CERTIFIED = (0.45, 0.97)  # reached by end of 2023, target 100 %: missed
RURAL_SECRETARY_CERTIFIED = (0.15, 0.50)
STATIONS_AND_ROOMS_BASELINE = 94
STATIONS_BASELINE = 31  # the rest open 2022-09..2022-12, the plan's deadline: met
STATION_OPENING_MONTHS = 4
ROOMS_AT_TARGET = 215
CHARITY_FUNDS = (12, 90)
PUBLIC_INSTITUTIONS = 19
PUBLIC_INSTITUTIONS_WITH_POSTS = 17  # the other two create posts in 2023-10 and 2025-03
PUBLIC_POSTS_CREATED = (14, 31)  # month offsets from the baseline
ORGS_BASELINE = 35
ORGS_CITY = 7
ORGS_INCUBATED = 22
ORGS_NEW_AT = (6, 11, 17, 23, 29, 35)  # month offsets of newly registered (incubated) orgs
ORGS_UNCOVERED_COVERED_AT = (7, 16, 27, None)  # 4 orgs without party building; one never
PRIVATE_HOMES_BASELINE = 10
PRIVATE_HOMES_NEW_AT = (9, 20, 30)
DUAL_LISTED = 20  # persons on two rosters in a month, counted once
DUAL_LISTED_CITY = 3  # of which county-level persons also listed by the city
MONTHLY_LEAVE_RATE = 0.0045
CITY_SUPPORT_CENTRE_OPENS = "2023-06"
OUTSTANDING_TALENTS = {2022: 2, 2023: 2, 2024: 3, 2025: 4}
PROVINCE_PASS_RATE = {2022: 23.6, 2023: 21.9, 2024: 25.3, 2025: 24.8}  # sample values
EXAM_REGISTRATION_MONTH = 4  # candidates are known from April, results from August
EXAM_RESULTS_MONTH = 8

# Not an issued county code, so no generated ID or credit code can belong to a real person or
# organisation, while it still looks local (5104xx) and passes every check-digit test.
_ADDRESS_CODE = "510499"
_ID_SEQ_REAL = (1, 800)  # sequence codes of the sample's persons; 801-999 are for fault rows
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORGCODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_CST = timezone(timedelta(hours=8))  # Asia/Shanghai has had no DST since 1991
_CREATED = datetime(2022, 10, 17, 9, 0, 0)  # workbook property, fixed for byte-identical files

# Names: common surnames and given-name characters, plus a few Yi names as the area has them.
_SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕"
             "丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏付方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万严武戴向汤")
_GIVEN_F = "丽娟敏静婷雪琳燕芳霞玲倩颖洁萍慧欣悦佳琴红梅兰艳蕾瑶璐薇晶莉雯露怡妍秀英凤丹"
_GIVEN_M = "伟强磊军勇杰涛明超刚平辉鹏华飞斌俊浩宇峰波亮林东健龙鑫凯博文斌成荣"
_GIVEN_FIRST = "小晓文子思雨嘉海春建志永国德家玉金天"
_YI_NAMES = ("吉克阿依", "沙马拉哈", "阿苏石布", "海来木呷", "俄木尔古", "吉克伍沙", "阿约阿呷")

_LEVELS_NEW = (("助理社会工作师", 0.88), ("社会工作师", 0.12))
_LEVELS_OLD = (("助理社会工作师", 0.74), ("社会工作师", 0.25), ("高级社会工作师", 0.01))

# Employer kinds of persons serving at county or city level: post type, employer name pattern,
# fields they naturally serve, weights for the 老年/未成年人 fields and for holding a certificate,
# share of full-timers, share of joiners.
_KINDS = {
    "org": ("社会工作服务机构", None, ("社区治理", "社会救助", "残障康复", "禁毒", "社区矫正"), 1.2, 1.0, 1.25, 0.95, 0.42),
    "public": ("民政事业单位", None, ("社会救助",), 1.0, 1.0, 1.0, 1.0, 0.05),
    "hospital": ("其他事业单位", "{u}人民医院", ("医务",), 0.6, 0.2, 0.6, 0.8, 0.07),
    "mental": ("其他事业单位", "{u}精神卫生服务中心", ("精神卫生", "医务"), 0.4, 0.2, 0.7, 0.9, 0.04),
    "school": ("其他事业单位", "{u}实验学校", ("学校",), 0.02, 3.0, 0.5, 0.6, 0.08),
    "youth": ("群团组织", "共青团{u}委员会", ("其他",), 0.05, 4.0, 0.6, 0.7, 0.04),
    "women": ("群团组织", "{u}妇女联合会", ("其他", "社会救助"), 0.3, 3.0, 0.6, 0.7, 0.05),
    "disabled": ("群团组织", "{u}残疾人联合会", ("残障康复",), 0.3, 0.3, 0.6, 0.7, 0.04),
    "bureau": ("其他", "{u}民政局", ("社会救助", "社区治理"), 0.8, 0.6, 0.8, 0.9, 0.09),
    "justice": ("其他", "{u}司法局", ("社区矫正",), 0.05, 0.3, 0.6, 0.9, 0.05),
    "drugs": ("其他", "{u}禁毒委员会办公室", ("禁毒",), 0.05, 0.5, 0.6, 0.9, 0.04),
    "home": ("其他", None, ("社会救助", "医务"), 6.0, 0.02, 0.6, 1.0, 0.03),
    "village": ("社区专职工作者", None, ("社区治理", "社会救助", "残障康复"), 1.0, 0.8, 1.3, 1.0, 0.0),
    "village_other": ("其他", None, ("社区治理", "社会救助"), 0.8, 0.6, 0.6, 0.4, 0.0),
    "station": ("社工站驻站社工", None, ("社区治理", "社会救助", "残障康复", "社区矫正", "禁毒"), 1.3, 1.2, 1.5, 1.0, 0.0),
    "township": ("其他", None, ("社区治理", "社会救助"), 0.9, 0.6, 0.6, 0.5, 0.0),
}
# Public civil-affairs institutions: type, name pattern, (elderly, minor) field weights.
_PUBLIC_KINDS = {
    "city": (("养老机构", "{u}社会福利院"), ("儿童福利机构", "{u}儿童福利院"),
             ("社会救助服务机构", "{u}救助管理站"), ("殡葬服务机构", "{u}殡仪馆")),
    "county": (("养老机构", "{u}社会福利院"), ("社会救助服务机构", "{u}救助管理站"),
               ("养老机构", "{t}中心敬老院")),
}
_INSTITUTION_WEIGHTS = {"养老机构": (6.0, 0.02), "儿童福利机构": (0.02, 8.0), "未成年人救助保护机构": (0.02, 8.0),
                        "社会救助服务机构": (1.0, 2.0), "殡葬服务机构": (0.5, 0.05)}
_ORG_WORDS = ("阳光", "同心", "益民", "善行", "馨悦", "启航", "和谐", "聚力", "暖阳", "德馨", "康宁", "向日葵",
              "春晖", "心桥", "博爱", "仁爱", "携手", "乐群", "筑梦", "众和", "安心", "明德", "新希望", "绿荫")
_ORG_SUFFIXES = ("社会工作服务中心", "社会工作服务中心", "社会工作发展中心", "社会工作服务社", "社工事务所")
_HOME_WORDS = ("康乐", "颐年", "福寿", "安康", "夕阳红", "松鹤", "馨和", "乐龄", "长青", "金色年华", "怡养", "福康")
_HOME_SUFFIXES = ("养老院", "老年公寓", "颐养中心")
_VILLAGE_STEMS = ("新民", "团结", "和平", "红旗", "胜利", "联合", "光荣", "永丰", "前锋", "跃进")


# ---------------------------------------------------------------------------------------------
# Check characters
# ---------------------------------------------------------------------------------------------
def id_check_digit(body17: str) -> str:
    """GB 11643 check character of the first 17 digits of an ID number."""
    return _ID_CHECK[sum(int(c) * w for c, w in zip(body17, _ID_WEIGHTS)) % 11]


def credit_check_char(body17: str) -> str:
    """GB 32100 check character of the first 17 characters of a unified social credit code."""
    total = sum(_CREDIT_CHARSET.index(c) * w for c, w in zip(body17, _CREDIT_WEIGHTS))
    return _CREDIT_CHARSET[(31 - total % 31) % 31]


def _orgcode_check_char(body8: str) -> str:
    # GB 11714: the organisation code inside a credit code carries its own check character.
    total = sum(int(c, 36) * w for c, w in zip(body8, _ORGCODE_WEIGHTS))
    v = 11 - total % 11
    return "X" if v == 10 else "0" if v == 11 else str(v)


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------
def _month_add(ym: tuple[int, int], n: int) -> tuple[int, int]:
    i = ym[0] * 12 + ym[1] - 1 + n
    return i // 12, i % 12 + 1


def _parse_month(s: str) -> tuple[int, int]:
    try:
        y, m = (int(x) for x in s.split("-"))
    except ValueError:
        raise ValueError(f"month {s!r} is not YYYY-MM; write it like 2022-08") from None
    if not 1 <= m <= 12:
        raise ValueError(f"month {s!r} is not YYYY-MM; write it like 2022-08")
    return y, m


def _month_end(ym: tuple[int, int]) -> date:
    ny, nm = _month_add(ym, 1)
    return date(ny, nm, 1) - timedelta(days=1)


def _traj(pair: tuple[float, float], k: int) -> float:
    """Value k months after the baseline: a gently concave path, flat after the target month."""
    t = min(k / _TARGET_K, 1.0)
    return pair[0] + (pair[1] - pair[0]) * t * (1.2 - 0.2 * t)


def _months_between(a: str, b: str) -> int:
    (ya, ma), (yb, mb) = _parse_month(a), _parse_month(b)
    return (yb - ya) * 12 + mb - ma


_TARGET_K = _months_between(BASELINE_MONTH, TARGET_MONTH)


def _largest_remainder(total: int, weights: list[float]) -> list[int]:
    """Split an integer total in proportion to weights, summing exactly to the total."""
    s = sum(weights)
    raw = [total * w / s for w in weights]
    out = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (out[i] - raw[i], i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def _wsample(rng: random.Random, items: list, weights: list[float], n: int) -> list:
    """Weighted sample without replacement (Efraimidis-Spirakis), order of items kept."""
    keyed = sorted(((rng.random() ** (1.0 / w) if w > 0 else 0.0), i) for i, w in enumerate(weights))
    chosen = sorted(i for _, i in keyed[len(keyed) - n:]) if n > 0 else []
    return [items[i] for i in chosen]


def _pick(rng: random.Random, pairs) -> str:
    r, acc = rng.random(), 0.0
    for value, p in pairs:
        acc += p
        if r < acc:
            return value
    return pairs[-1][0]


def _yn(b: bool | None) -> str | None:
    return None if b is None else ("是" if b else "否")


def _fake_phone(rng: random.Random, prefix: str = "1990001") -> str:
    return prefix + f"{rng.randrange(10000):04d}"


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------
@dataclass
class _Unit:
    code: str
    name: str
    level: str
    parent: str
    urban: bool = False  # villages only: by committee type (居民委员会 = urban)


class _Tree:
    """The org-unit tree and reference population, read from the registry CSVs."""

    def __init__(self, units_csv: Path, population_csv: Path):
        with open(units_csv, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
        with open(population_csv, encoding="utf-8-sig", newline="") as f:
            pop_rows = list(csv.DictReader(f))
        self._build(rows, pop_rows, str(units_csv), str(population_csv))

    @classmethod
    def from_rows(cls, rows: list[dict], pop_rows: list[dict]) -> "_Tree":
        """A tree held in memory: a tile of the generated province."""
        tree = cls.__new__(cls)
        tree._build(rows, pop_rows, "units", "population")
        return tree

    def _build(self, rows: list[dict], pop_rows: list[dict], units_csv: str, population_csv: str):
        self.units = {r["code"]: _Unit(r["code"], r["name"], r["level"], r["parent_code"],
                                       r["name"].endswith("居民委员会")) for r in rows}
        by_level: dict[str, list[_Unit]] = {}
        for u in sorted(self.units.values(), key=lambda u: u.code):
            by_level.setdefault(u.level, []).append(u)
        if len(by_level.get("city", [])) != 1:
            raise ValueError(f"{units_csv} must hold exactly one unit of level 'city'")
        self.city = by_level["city"][0]
        self.counties = by_level.get("county", [])
        self.townships = by_level.get("township", [])
        self.villages = by_level.get("village", [])
        self.children: dict[str, list[_Unit]] = {}
        for u in self.counties + self.townships + self.villages:
            self.children.setdefault(u.parent, []).append(u)
        self.county_of = {}
        for c in self.counties:
            self.county_of[c.code] = c.code
            for t in self.children.get(c.code, []):
                self.county_of[t.code] = c.code
                for v in self.children.get(t.code, []):
                    self.county_of[v.code] = c.code
        pop: dict[str, tuple[int, int]] = {}
        for r in pop_rows:
            year = int(r["year"])
            if r["code"] not in pop or year > pop[r["code"]][0]:
                pop[r["code"]] = (year, int(r["registered_population"]))
        missing = [c.name for c in self.counties if c.code not in pop]
        if missing:
            raise ValueError(f"{population_csv} has no registered population for: {', '.join(missing)}")
        self.population = {code: p for code, (_, p) in pop.items()}

    def villages_of_county(self, county: str) -> list[_Unit]:
        return [v for t in self.children.get(county, []) for v in self.children.get(t.code, [])]

    def folder(self, code: str) -> Path:
        """Inbox sub-folder of a sender: city, county, or county/township."""
        u = self.units[code]
        if u.level == "township":
            return Path(self.units[u.parent].name) / u.name
        return Path(u.name)


# ---------------------------------------------------------------------------------------------
# The world: persons, communities, stations, organisations and institutions over time
# ---------------------------------------------------------------------------------------------
@dataclass
class _Person:
    pid: int
    id_number: str
    name: str
    male: bool
    birth: date
    unit: str
    group: str  # urban, rural, township, county, city
    kind: str
    employer: str
    full_time: bool
    fields: list[str]
    party: bool
    phone: str | None
    edu_rate: float
    hours_blank: bool
    level: str = "无"
    cert_year: int | None = None
    reg0: date | None = None
    also: str | None = None  # a second unit whose roster lists the person too
    joined: int = 0
    w_elderly: float = 1.0
    w_minor: float = 1.0

    def roster_row(self, unit_code: str, ym: tuple[int, int]) -> dict:
        reg, hours = None, None
        if self.reg0 is not None:
            end = _month_end(ym)
            years = (end.year - self.reg0.year) - ((end.month, end.day) < (self.reg0.month, self.reg0.day))
            start = self.reg0.replace(year=self.reg0.year + 3 * (years // 3))
            reg = start.isoformat()
            if not self.hours_blank:
                need = 72 if self.level == "助理社会工作师" else 90
                elapsed = (end.year - start.year) * 12 + end.month - start.month + 1
                hours = min(int(need * self.edu_rate * elapsed / 36), int(need * 1.4))
        return {"unit_code": unit_code, "name": self.name, "id_number": self.id_number,
                "sex": "男" if self.male else "女", "employer": self.employer, "post_type": _KINDS[self.kind][0],
                "full_time": _yn(self.full_time), "certificate_level": self.level, "certified_year": self.cert_year,
                "registration_start": reg, "continuing_education_hours": hours,
                "service_fields": "、".join(self.fields), "party_member": _yn(self.party), "phone": self.phone}


@dataclass
class _Org:
    idx: int
    unit: str
    name: str
    credit_code: str
    founded: date
    start_k: int
    incubated: bool
    size: float
    extra_staff: int
    extra_certified: int
    members: int
    members_inc_k: int
    members_inc: int
    covered_k: int | None  # month offset from which party building covers it; -999 always, None never
    weak_form: str  # form used when < 3 members
    late_standalone_k: int = 0  # a standalone organisation set up late, for the compliance indicator


@dataclass
class _Institution:
    unit: str  # where it stands
    owner: str  # the county or city that reports it
    name: str
    kind: str
    public: bool
    residents: int | None
    posts: int
    posts_k: int  # month offset from which posts exist
    buys_k: int | None
    start_k: int = -999  # month offset it opens; -999 before the baseline


class _World:
    """Persons, communities, stations, organisations and institutions, advanced a month at a time."""

    def __init__(self, tree: _Tree, seed: int, base: tuple[int, int], address: str = _ADDRESS_CODE,
                 phone_prefix: str = "1990000"):
        self.t, self.seed, self.base = tree, seed, base
        # A province is written as many city-sized worlds: each its own ID address code and
        # phone block, so that no two worlds give out the same ID number or phone.
        self.address, self.phone_prefix = address, phone_prefix
        self.rng = random.Random(seed)
        self._ids: set[str] = set()
        self._phones = list(range(10000))
        self.rng.shuffle(self._phones)
        self.persons: dict[int, _Person] = {}
        self._next_pid = 1
        self._index: dict[str, list[_Person]] | None = None
        self._in_post: dict[str, int] = {}  # institution name -> persons holding its posts
        self.n_urban = sum(v.urban for v in tree.villages)
        self.n_rural = len(tree.villages) - self.n_urban
        self._init_villages()
        self._init_orgs()
        self._init_townships()
        self._init_institutions()
        self._init_persons()

    # -- months ------------------------------------------------------------------------------
    def ym(self, k: int) -> tuple[int, int]:
        return _month_add(self.base, k)

    def _date_in(self, k: int, rng: random.Random | None = None) -> date:
        y, m = self.ym(k)
        return date(y, m, (rng or self.rng).randint(1, 28))

    # -- communities -------------------------------------------------------------------------
    def _init_villages(self):
        rng, t = self.rng, self.t
        self.vpop: dict[str, int] = {}
        for c in t.counties:
            vs = t.villages_of_county(c.code)
            weights = [(2.4 if v.urban else 1.0) * rng.lognormvariate(0, 0.35) for v in vs]
            for v, p in zip(vs, _largest_remainder(t.population[c.code], weights)):
                self.vpop[v.code] = p
        self.vp: dict[str, dict] = {}
        for v in t.villages:
            u = v.urban
            self.vp[v.code] = {
                "elderly_share": rng.uniform(0.152, 0.24),  # inside 15-25 % after rounding
                "workers": rng.randint(6, 11) if u else rng.randint(3, 6),
                "workers_inc": rng.choice((0, 0, 1, 1, 2)) if u else rng.choice((0, 0, 1)),
                "cert_dev": rng.uniform(-0.1, 0.1),
                "secretary": rng.random(),
                "orgs": rng.randint(6, 10) if u else rng.randint(2, 4),
                "orgs_inc": rng.uniform(3.0, 6.0) if u else rng.uniform(1.0, 2.6),
                "teams": rng.choice((0, 0, 1, 1, 1, 2)),
                "teams_inc": rng.uniform(0.0, 1.4),
                "phase": rng.random(),  # so that counts step up in different months, not all at once
                "directors": [(0 if rng.random() < 0.45 else rng.randint(1, 46))
                              for _ in range(2 if self.vpop[v.code] > 6000 else 1)],
            }
        codes = [v.code for v in t.villages]
        rooms0 = set(_wsample(rng, codes, [4.0 if t.units[c].urban else 1.0 for c in codes],
                              STATIONS_AND_ROOMS_BASELINE - STATIONS_BASELINE))
        later = [c for c in codes if c not in rooms0]
        rng.shuffle(later)
        n_later = max(0, min(len(later), ROOMS_AT_TARGET - len(rooms0)))
        funds0 = set(_wsample(rng, codes, [3.0 if t.units[c].urban else 1.0 for c in codes], CHARITY_FUNDS[0]))
        for c in codes:
            self.vp[c]["room_k"] = 0 if c in rooms0 else None
            self.vp[c]["fund_k"] = 0 if c in funds0 else None
        for i, c in enumerate(later[:n_later]):
            self.vp[c]["room_k"] = 1 + i * _TARGET_K // max(n_later, 1)
        late = [c for c in codes if c not in funds0]
        for c in rng.sample(late, max(0, min(CHARITY_FUNDS[1] - CHARITY_FUNDS[0], len(late)))):
            self.vp[c]["fund_k"] = rng.randint(1, _TARGET_K)

    # -- organisations -----------------------------------------------------------------------
    def _credit_code(self, idx: int) -> str:
        body = "MJ" + f"{(idx * 7919 + 104729) % 1000000:06d}"
        org = body + _orgcode_check_char(body)
        head = "52" + self.address + org
        return head + credit_check_char(head)

    def _org_name(self, unit: str, used: set[str]) -> str:
        while True:
            name = self.t.units[unit].name + self.rng.choice(_ORG_WORDS) + self.rng.choice(_ORG_SUFFIXES)
            if name not in used:
                used.add(name)
                return name

    def _init_orgs(self):
        rng, t = self.rng, self.t
        counties = [c.code for c in t.counties]
        per_county = _largest_remainder(ORGS_BASELINE - ORGS_CITY, [t.population[c] for c in counties])
        units = [t.city.code] * ORGS_CITY + [c for c, n in zip(counties, per_county) for _ in range(n)]
        incubated = set(rng.sample(range(len(units)), ORGS_INCUBATED))
        used: set[str] = set()
        self.orgs: list[_Org] = []
        for i, u in enumerate(units):
            inc = i in incubated
            y0 = rng.randint(2017, 2022) if inc else rng.randint(2012, 2020)
            founded = date(y0, rng.randint(1, 7 if y0 == 2022 else 12), rng.randint(1, 28))
            self.orgs.append(self._make_org(i, u, founded, -999, inc, used))
        for j, k in enumerate(ORGS_NEW_AT):
            u = rng.choices([t.city.code] + counties, [sum(t.population[c] for c in counties) * 0.2]
                            + [t.population[c] for c in counties])[0]
            org = self._make_org(len(self.orgs), u, self._date_in(k), k, True, used)
            org.covered_k, org.members = k, min(org.members, 2)
            self.orgs.append(org)
        # Orgs without party building at the baseline, covered later (one never is).
        bare = rng.sample([o for o in self.orgs[:ORGS_BASELINE]], len(ORGS_UNCOVERED_COVERED_AT))
        for o, k in zip(bare, ORGS_UNCOVERED_COVERED_AT):
            o.covered_k, o.members, o.members_inc = k, rng.randint(0, 1), 0
        # One org with three members runs a joint branch until 2023-04: the compliance check has a case.
        for o in self.orgs[:ORGS_BASELINE]:
            if o.covered_k == -999 and o.members == 3:
                o.late_standalone_k = 8
                break

    def _make_org(self, idx, unit, founded, start_k, incubated, used) -> _Org:
        rng = self.rng
        return _Org(idx, unit, self._org_name(unit, used), self._credit_code(idx), founded, start_k, incubated,
                    size=rng.uniform(0.5, 2.0), extra_staff=rng.randint(0, 5), extra_certified=rng.randint(0, 2),
                    members=rng.choice((0, 1, 1, 2, 2, 3, 3, 4, 5, 6)), members_inc_k=rng.randint(1, 60),
                    members_inc=rng.choice((0, 0, 1, 1, 2)), covered_k=-999,
                    weak_form=rng.choice(("联合党支部", "联合党支部", "选派党建工作指导员")))

    def _orgs_of(self, unit: str, k: int) -> list[_Org]:
        return [o for o in self.orgs if o.unit == unit and o.start_k <= k]

    # -- township stations -------------------------------------------------------------------
    def _init_townships(self):
        rng, t = self.rng, self.t
        codes = [u.code for u in t.townships]
        urbanish = {c: sum(v.urban for v in t.children.get(c, [])) for c in codes}
        first = set(_wsample(rng, codes, [1.0 + urbanish[c] for c in codes], min(STATIONS_BASELINE, len(codes))))
        rest = [c for c in codes if c not in first]
        rng.shuffle(rest)
        self.tp: dict[str, dict] = {}
        for c in codes:
            if c in first:
                year = rng.randint(2020, 2022)  # opened before the baseline month
                k, opened = 0, date(year, rng.randint(1, 8 if year == 2022 else 12), rng.randint(1, 28))
            else:
                k = 1 + rest.index(c) * STATION_OPENING_MONTHS // max(len(rest), 1)
                opened = self._date_in(k)
            mode = _pick(rng, (("政府购买服务", 0.7), ("自建自营", 0.25), ("其他", 0.05)))
            county = t.county_of[c]
            ops = [o for o in self.orgs if o.unit == county and o.founded < opened] or \
                  [o for o in self.orgs if o.unit == t.city.code and o.founded < opened]
            operator = rng.choice(ops) if mode == "政府购买服务" and ops else None
            if operator is None and mode == "政府购买服务":
                mode = "自建自营"
            self.tp[c] = {"k": k, "opened": opened, "mode": mode, "operator": operator,
                          "services": rng.uniform(60, 140),
                          "supervisors": [(0 if rng.random() < 0.5 else rng.randint(1, 40))
                                          for _ in range(rng.randint(1, 2))]}

    def station_in_service(self, code: str, k: int) -> bool:
        return self.tp[code]["k"] <= k

    # -- institutions ------------------------------------------------------------------------
    def _init_institutions(self):
        rng, t = self.rng, self.t
        queues = [(t.city, list(_PUBLIC_KINDS["city"]))] + [(c, list(_PUBLIC_KINDS["county"])) for c in t.counties]
        self.insts: list[_Institution] = []
        order: list[_Institution] = []
        while len(order) < PUBLIC_INSTITUTIONS and any(q for _, q in queues):
            for owner, q in queues:
                if not q or len(order) == PUBLIC_INSTITUTIONS:
                    continue
                kind, pattern = q.pop(0)
                towns = t.children.get(owner.code, [])
                town = rng.choice(towns) if towns else None
                if owner is t.city:
                    where = owner.code  # sited below, once the counties' sites are known
                elif "{t}" in pattern and town is not None:
                    where = town.code
                else:
                    where = rng.choice((owner.code, towns[0].code if towns else owner.code))
                if kind == "社会救助服务机构" and owner is not t.city and not any(
                        i.kind == "未成年人救助保护机构" for i in order):
                    kind, pattern = "未成年人救助保护机构", "{u}未成年人救助保护中心"
                name = pattern.format(u=owner.name, t=town.name if town else owner.name)
                residents = {"养老机构": rng.randint(60, 220) if "{u}" in pattern else rng.randint(25, 90),
                             "儿童福利机构": rng.randint(20, 60), "殡葬服务机构": None}.get(kind, rng.randint(8, 40))
                posts = rng.randint(2, 5) if pattern == "{u}社会福利院" else rng.randint(1, 3)
                order.append(_Institution(where, owner.code, name, kind, True, residents,
                                          posts, -999, 0 if rng.random() < 0.5 else None))
        n_without = PUBLIC_INSTITUTIONS - PUBLIC_INSTITUTIONS_WITH_POSTS
        for inst, k in zip(reversed(order[-n_without:]) if n_without else [], PUBLIC_POSTS_CREATED):
            inst.posts_k, inst.posts = k, 1
        self.insts.extend(order)
        # Private elder-care homes: four above 100 residents, which the plan's post rule concerns.
        counties = t.counties
        weights = [t.population[c.code] for c in counties]
        used: set[str] = set()
        big_rules = [(1, -999, None), (0, -999, 0), (0, -999, 22), (0, -999, 37)]  # posts, posts_k, buys_k
        for i in range(PRIVATE_HOMES_BASELINE + len(PRIVATE_HOMES_NEW_AT)):
            c = rng.choices(counties, weights)[0]
            towns = t.children.get(c.code, [])
            while True:
                name = c.name + rng.choice(_HOME_WORDS) + rng.choice(_HOME_SUFFIXES)
                if name not in used:
                    used.add(name)
                    break
            if i < len(big_rules):
                posts, posts_k, buys_k = big_rules[i]
                residents = rng.randint(110, 180)
            else:
                posts, posts_k = (1 if rng.random() < 0.3 else 0), -999
                buys_k = 0 if rng.random() < 0.2 else None
                residents = rng.randint(20, 95)
            start = -999 if i < PRIVATE_HOMES_BASELINE else PRIVATE_HOMES_NEW_AT[i - PRIVATE_HOMES_BASELINE]
            where = rng.choice(towns).code if towns else c.code
            self.insts.append(_Institution(where, c.code, name, "养老机构", False, residents, posts, posts_k,
                                           buys_k, start))
        for c in counties:
            towns = t.children.get(c.code, [])
            self.insts.append(_Institution(towns[0].code if towns else c.code, c.code, c.name + "残疾人康复服务中心",
                                           "残疾人福利和服务机构", False, rng.randint(20, 60),
                                           rng.randint(0, 1), -999, None))
        # The city's institutions stand in a township of the most urban county where no county
        # reports one: a unit covered by two senders' files would read as a correction of the older.
        core = max(t.counties, key=lambda c: (sum(v.urban for v in t.villages_of_county(c.code)), c.code))
        taken = {i.unit for i in self.insts if i.owner != t.city.code}
        free = [u.code for u in t.children.get(core.code, []) if u.code not in taken]
        for i in self.insts:
            if i.owner == t.city.code:
                i.unit = free[0] if free else t.city.code

    def _insts_of(self, owner: str, k: int) -> list[_Institution]:
        return [i for i in self.insts if i.owner == owner and i.start_k <= k]

    # -- persons -----------------------------------------------------------------------------
    def _new_id(self, male: bool, birth: date, rng: random.Random, seq_range=_ID_SEQ_REAL) -> str:
        while True:
            seq = rng.randint(*seq_range)
            if (seq % 2 == 1) != male:
                seq = seq + 1 if seq < seq_range[1] else seq - 1
            body = self.address + birth.strftime("%Y%m%d") + f"{seq:03d}"
            full = body + id_check_digit(body)
            if full not in self._ids:
                self._ids.add(full)
                return full

    @staticmethod
    def _name(rng: random.Random, male: bool) -> str:
        if rng.random() < 0.03:
            return rng.choice(_YI_NAMES)
        given = _GIVEN_M if male else _GIVEN_F
        g = rng.choice(given) if rng.random() < 0.35 else rng.choice(_GIVEN_FIRST + given) + rng.choice(given)
        return rng.choice(_SURNAMES) + g

    def _employer(self, unit: str, kind: str, k: int) -> tuple[str, str, float, float]:
        """(kind, employer, w_elderly, w_minor) for a person at a county or city unit."""
        spec = _KINDS[kind]
        if kind == "org":
            orgs = self._orgs_of(unit, k)
            if orgs:
                return kind, self.rng.choices(orgs, [o.size for o in orgs])[0].name, spec[3], spec[4]
        elif kind in ("public", "home"):
            # Institutions fill their posts and no more: the rest serve elsewhere.
            insts = [i for i in self._insts_of(unit, k) if i.public == (kind == "public")
                     and (kind == "public" or i.kind == "养老机构") and i.posts_k <= k
                     and self._in_post.get(i.name, 0) < i.posts]
            if insts:
                inst = self.rng.choices(insts, [i.posts for i in insts])[0]
                self._in_post[inst.name] = self._in_post.get(inst.name, 0) + 1
                we, wm = _INSTITUTION_WEIGHTS.get(inst.kind, (spec[3], spec[4]))
                return kind, inst.name, we, wm
        elif spec[1]:
            return kind, spec[1].format(u=self.t.units[unit].name), spec[3], spec[4]
        named = [(k2, v[7]) for k2, v in _KINDS.items() if v[1] and v[7] > 0]
        return self._employer(unit, self.rng.choices([k2 for k2, _ in named], [w for _, w in named])[0], k)

    def _add_person(self, unit: str, group: str, kind: str, k: int, initial: bool) -> _Person:
        rng = self.rng
        male = rng.random() < 0.32
        top = (53 if not male else 58) if initial else 45
        age = 22 + int(rng.betavariate(1.6, 3.0) * (top - 22 + 1))
        ref = _month_end(self.ym(k))
        birth = date(ref.year - age - 1, rng.randint(1, 12), rng.randint(1, 28))
        if (ref - birth).days // 365 > age:
            birth = birth.replace(year=birth.year + 1)
        if unit in self.t.units and self.t.units[unit].level in ("county", "city"):
            kind, employer, we, wm = self._employer(unit, kind, k)
        else:
            u = self.t.units[unit]
            employer = {"village": u.name, "village_other": u.name,
                        "station": u.name + "社会工作服务站",
                        "township": u.name + ("办事处" if u.name.endswith("街道") else "人民政府")}[kind]
            we, wm = _KINDS[kind][3], _KINDS[kind][4]
        spec = _KINDS[kind]
        fields = rng.sample(spec[2], 1 + (len(spec[2]) > 1 and rng.random() < 0.4))
        pid = self._next_pid
        self._next_pid += 1
        p = _Person(pid, self._new_id(male, birth, rng), self._name(rng, male), male, birth, unit, group, kind,
                    employer, rng.random() < spec[6], fields, rng.random() < 0.3,
                    None if rng.random() < 0.04 else self.phone_prefix + f"{self._phones.pop():04d}",
                    rng.uniform(0.35, 1.5), rng.random() < 0.08, joined=k, w_elderly=we, w_minor=wm)
        self.persons[pid] = p
        return p

    def _certify(self, p: _Person, k: int, old: bool):
        rng = self.rng
        p.level = _pick(rng, _LEVELS_OLD if old else _LEVELS_NEW)
        ref = _month_end(self.ym(k))
        if old:
            p.cert_year = min(ref.year, 2008 + int(rng.betavariate(2.5, 1.2) * (ref.year - 2008 + 1)))
            last = ref.month if p.cert_year == ref.year else 12
            p.reg0 = date(p.cert_year, rng.randint(min(9, last), last) if last >= 9 else rng.randint(1, last),
                          rng.randint(1, 28))
            if p.reg0 > ref:
                p.reg0 = ref.replace(day=1)
        else:
            p.cert_year, p.reg0 = ref.year, self._date_in(k)

    def _w_cert(self, p: _Person) -> float:
        return _KINDS[p.kind][5]

    def _init_persons(self):
        rng, t = self.rng, self.t
        plan: list[tuple[str, str, str]] = []  # unit, group, kind
        for urban, avg in ((True, URBAN_COMMUNITY_TALENTS_AVG[0]), (False, RURAL_COMMUNITY_TALENTS_AVG[0])):
            vs = [v for v in t.villages if v.urban == urban]
            counts = {v.code: 0 for v in vs}
            for _ in range(round(len(vs) * avg)):
                w = [self.vpop[v.code] ** 0.5 / (1 + counts[v.code]) for v in vs]
                counts[rng.choices(vs, w)[0].code] += 1
            for v in vs:
                for _ in range(counts[v.code]):
                    plan.append((v.code, "urban" if urban else "rural",
                                 "village" if rng.random() < 0.9 else "village_other"))
        for tw in t.townships:
            n = rng.choice((2, 2, 3, 3, 4)) if self.station_in_service(tw.code, 0) else rng.choice((0, 1, 1, 2))
            kind = "station" if self.station_in_service(tw.code, 0) else "township"
            plan += [(tw.code, "township", kind)] * n
        plan += [(t.city.code, "city", self._joiner_kind(True)) for _ in range(CITY_TALENTS[0])]
        n_county = TALENTS[0] - len(plan)
        for c, n in zip(t.counties, _largest_remainder(n_county, [t.population[c.code] for c in t.counties])):
            plan += [(c.code, "county", self._joiner_kind(False)) for _ in range(n)]
        people = [self._add_person(u, g, kind, 0, True) for u, g, kind in plan]
        for p in _wsample(rng, people, [self._w_cert(p) for p in people], CERTIFIED[0]):
            self._certify(p, 0, old=True)
        self._fill_field("老年", ELDERLY_FIELD_TALENTS[0], exact=True)
        self._fill_field("未成年人", MINOR_FIELD_TALENTS[0], exact=True)
        self._maintain_dual(0, DUAL_LISTED)

    def _joiner_kind(self, city: bool) -> str:
        kinds = [(k, v[7]) for k, v in _KINDS.items() if v[7] > 0 and not (city and k == "home")]
        s = sum(p for _, p in kinds)
        return _pick(self.rng, [(k, p / s) for k, p in kinds])

    def _fill_field(self, name: str, target: int, exact: bool = False, fresh: int | None = None):
        people = list(self.persons.values())
        have = [p for p in people if name in p.fields]
        attr = "w_elderly" if name == "老年" else "w_minor"
        if len(have) < target:
            lacking = [p for p in people if name not in p.fields]
            w = [getattr(p, attr) * (3.0 if fresh is not None and p.joined == fresh else 1.0) for p in lacking]
            for p in _wsample(self.rng, lacking, w, min(target - len(have), len(lacking))):
                p.fields.append(name)
        elif exact and len(have) > target:
            for p in _wsample(self.rng, have, [1.0 / getattr(p, attr) for p in have], len(have) - target):
                p.fields.remove(name)
                if not p.fields:
                    p.fields.append(_KINDS[p.kind][2][0])

    def _maintain_dual(self, k: int, target: int):
        rng = self.rng
        dual = [p for p in self.persons.values() if p.also]
        city_part = [p for p in dual if p.group == "county"]
        town_part = [p for p in dual if p.group != "county"]
        want_city = min(DUAL_LISTED_CITY, target)
        for part, want, eligible in (
                (city_part, want_city, [p for p in self.persons.values() if p.group == "county" and p.kind == "org"]),
                (town_part, target - want_city,
                 [p for p in self.persons.values() if p.group in ("urban", "rural") and p.kind == "village"
                  and self.station_in_service(self.t.units[p.unit].parent, k)])):
            if len(part) > want:
                for p in rng.sample(part, len(part) - want):
                    p.also = None
            elif len(part) < want:
                free = [p for p in eligible if not p.also]
                for p in rng.sample(free, min(want - len(part), len(free))):
                    p.also = self.t.city.code if p.group == "county" else self.t.units[p.unit].parent

    def step(self, k: int):
        """Advance the world from month k-1 to month k."""
        rng, t = self.rng, self.t
        self._index = None
        ref = _month_end(self.ym(k))
        for pid in sorted(self.persons):
            p = self.persons[pid]
            age = ref.year - p.birth.year - ((ref.month, ref.day) < (p.birth.month, p.birth.day))
            if age >= (60 if p.male else 55) or rng.random() < MONTHLY_LEAVE_RATE:
                del self.persons[pid]
                if p.kind in ("public", "home"):
                    self._in_post[p.employer] -= 1
        for tw in t.townships:
            if self.tp[tw.code]["k"] == k:  # a new station takes on the township's social workers
                for p in self.persons.values():
                    if p.unit == tw.code:
                        p.kind, p.employer, p.full_time = "station", tw.name + "社会工作服务站", True
        counts: dict[str, int] = {}
        groups: dict[str, int] = {}
        for p in self.persons.values():
            counts[p.unit] = counts.get(p.unit, 0) + 1
            groups[p.group] = groups.get(p.group, 0) + 1
        noise = lambda s: rng.gauss(0, s)  # noqa: E731
        total = round(_traj(TALENTS, k) + noise(3))
        urban = round(self.n_urban * _traj(URBAN_COMMUNITY_TALENTS_AVG, k) + noise(1.5))
        rural = round(self.n_rural * _traj(RURAL_COMMUNITY_TALENTS_AVG, k) + noise(1.5))
        town_target = {tw.code: (_traj(STATION_TALENTS_AVG, k) if self.station_in_service(tw.code, k) else 1.0)
                       for tw in t.townships}
        town = round(sum(town_target.values()) + noise(1.5))
        city = round(_traj(CITY_TALENTS, k) + noise(1.5))
        county = total - urban - rural - town - city
        for urb, want in ((True, urban), (False, rural)):
            vs = [v for v in t.villages if v.urban == urb]
            for _ in range(max(0, want - groups.get("urban" if urb else "rural", 0))):
                w = [self.vpop[v.code] ** 0.5 / (1 + counts.get(v.code, 0)) ** 2 for v in vs]
                v = rng.choices(vs, w)[0]
                counts[v.code] = counts.get(v.code, 0) + 1
                self._add_person(v.code, "urban" if urb else "rural",
                                 "village" if rng.random() < 0.9 else "village_other", k, False)
        for _ in range(max(0, town - groups.get("township", 0))):
            tw = max(t.townships, key=lambda u: town_target[u.code] - counts.get(u.code, 0) + rng.random() * 0.5)
            counts[tw.code] = counts.get(tw.code, 0) + 1
            self._add_person(tw.code, "township", "station" if self.station_in_service(tw.code, k) else "township",
                             k, False)
        for _ in range(max(0, city - groups.get("city", 0))):
            self._add_person(t.city.code, "city", self._joiner_kind(True), k, False)
        need = county - groups.get("county", 0)
        if need > 0:
            per = [t.population[c.code] for c in t.counties]
            for _ in range(need):
                c = rng.choices(t.counties, per)[0]
                self._add_person(c.code, "county", self._joiner_kind(False), k, False)
        # Certificates: some joiners bring one, the rest of the month's target comes from passes.
        people = list(self.persons.values())
        certified = sum(p.level != "无" for p in people)
        want_cert = round(_traj(CERTIFIED, k) + noise(2))
        for p in people:
            if p.joined == k and p.level == "无" and certified < want_cert and rng.random() < 0.22:
                self._certify(p, k, old=True)
                certified += 1
        if certified < want_cert:
            plain = [p for p in people if p.level == "无"]
            for p in _wsample(rng, plain, [self._w_cert(p) for p in plain], min(want_cert - certified, len(plain))):
                self._certify(p, k, old=False)
        if rng.random() < 0.4:  # now and then an assistant passes the intermediate exam
            assistants = [p for p in people if p.level == "助理社会工作师" and (p.cert_year or 0) < ref.year - 1]
            if assistants:
                p = rng.choice(assistants)
                p.level, p.cert_year, p.reg0 = "社会工作师", ref.year, self._date_in(k)
        self._fill_field("老年", round(_traj(ELDERLY_FIELD_TALENTS, k) + noise(2)), fresh=k)
        self._fill_field("未成年人", round(_traj(MINOR_FIELD_TALENTS, k) + noise(2)), fresh=k)
        self._maintain_dual(k, DUAL_LISTED + rng.randint(-2, 2))
        self._index = None

    # -- the month's forms -------------------------------------------------------------------
    def listed(self, unit: str) -> list[_Person]:
        """Persons on a unit's roster this month (serving there, or listed there too), by pid."""
        if self._index is None:
            self._index = {}
            for pid in sorted(self.persons):
                p = self.persons[pid]
                self._index.setdefault(p.unit, []).append(p)
                if p.also:
                    self._index.setdefault(p.also, []).append(p)
        return self._index.get(unit, [])

    def based(self, unit: str, kind: str) -> list[_Person]:
        return [p for p in self.listed(unit) if p.unit == unit and p.kind == kind]

    def roster(self, units: list[str], k: int) -> list[dict]:
        """Roster rows of the given units; dual-listed persons appear once per unit."""
        ym = self.ym(k)
        return [p.roster_row(u, ym) for u in sorted(units) for p in self.listed(u)]

    def sg01(self, township: str, k: int, rng: random.Random) -> list[dict]:
        rows = []
        g = min(k / _TARGET_K, 1.0)
        share = _traj(COMMUNITY_WORKER_CERTIFIED_SHARE, k)
        for v in self.t.children.get(township, []):
            vp = self.vp[v.code]
            pop = self.vpop[v.code]
            elderly = round(pop * (vp["elderly_share"] + 0.0025 * k / 12))
            on_roster = self.based(v.code, "village")
            workers = max(min(12, vp["workers"] + round(vp["workers_inc"] * g)), len(on_roster))
            cert = round(workers * min(1.0, max(0.0, share + vp["cert_dev"])))
            cert = min(workers, max(cert, sum(p.level != "无" for p in on_roster)))
            sec = vp["secretary"] < _traj(URBAN_SECRETARY_CERTIFIED if v.urban else RURAL_SECRETARY_CERTIFIED,
                                          min(k * 5 // 2, _TARGET_K) if v.urban else k)
            teams = vp["teams"] + math.floor(vp["teams_inc"] * g + 1 - vp["phase"])
            fund = vp["fund_k"] is not None and vp["fund_k"] <= k
            directors = vp["directors"]
            rows.append({"unit_code": v.code, "unit_name": v.name, "registered_population": pop,
                         "elderly_population": elderly, "community_workers": workers,
                         "community_workers_certified": cert, "party_secretary_certified": _yn(sec),
                         "community_social_orgs": vp["orgs"] + math.floor(vp["orgs_inc"] * g + vp["phase"]),
                         "volunteer_teams": None if rng.random() < 0.02 else teams,
                         "has_social_work_room": _yn(vp["room_k"] is not None and vp["room_k"] <= k),
                         "has_charity_fund": None if rng.random() < 0.01 else _yn(fund),
                         "child_directors": len(directors),
                         "child_directors_trained": sum(d <= k for d in directors)})
        return rows

    def sg03(self, township: str, k: int, rng: random.Random) -> dict:
        u = self.t.units[township]
        tp = self.tp[township]
        sup = tp["supervisors"]
        row = {"unit_code": u.code, "unit_name": u.name, "station_in_service": "否",
               "child_supervisors": len(sup), "child_supervisors_trained": sum(d <= k for d in sup)}
        if not self.station_in_service(township, k):
            return row
        staff = self.based(township, "station")
        ym = self.ym(k)
        season = 0.7 if ym[1] in (1, 2) else 1.15 if ym[1] in (6, 12) else 1.0
        services = round(max(len(staff), 1) * tp["services"] * season * rng.uniform(0.85, 1.15))
        op = tp["operator"]
        row.update({"station_in_service": "是", "station_opened": tp["opened"].isoformat(),
                    "operation_mode": tp["mode"], "operator_name": op.name if op else None,
                    "operator_credit_code": op.credit_code if op else None, "station_workers": len(staff),
                    "station_workers_certified": sum(p.level != "无" for p in staff), "services_month": services})
        for name, lo, hi in (("services_assistance", 0.15, 0.3), ("services_elderly", 0.2, 0.35),
                             ("services_children", 0.15, 0.3)):
            row[name] = round(services * rng.uniform(lo, hi))
        return row

    def sg04(self, unit: str, k: int) -> list[dict]:
        ym = self.ym(k)
        rows = []
        staff_by: dict[str, list[_Person]] = {}
        for p in self.based(unit, "org"):
            staff_by.setdefault(p.employer, []).append(p)
        for o in self._orgs_of(unit, k):
            staff = staff_by.get(o.name, [])
            n_cert = sum(p.level != "无" for p in staff)
            total = len(staff) + o.extra_staff + (1 if not staff else 0)
            uncovered = o.covered_k is None or o.covered_k > k
            members = o.members + (o.members_inc if k >= o.members_inc_k else 0)
            if uncovered:
                form = "未覆盖"
            elif members >= 3 and k >= o.late_standalone_k:
                form = "单独建立党组织"
            else:
                form = o.weak_form
            yr = random.Random(f"{self.seed}/org/{o.idx}/{ym[0]}")
            projects = yr.choice((0, 1, 1, 2, 3, 4, 6))
            amount = round(projects * yr.uniform(4, 25), 1) if projects else 0
            rows.append({"unit_code": unit, "org_name": o.name, "credit_code": o.credit_code,
                         "founded": o.founded.isoformat(), "incubated_locally": _yn(o.incubated), "staff": total,
                         "staff_certified": min(total, n_cert + o.extra_certified), "party_members": members,
                         "party_building_form": form, "purchase_projects": projects,
                         "purchase_amount_10k_yuan": amount})
        return rows

    def sg05(self, owner: str, k: int) -> list[dict]:
        in_post: dict[str, int] = {}
        for c in {i.owner for i in self.insts if i.owner == owner}:
            for p in self.based(c, "public") + self.based(c, "home"):
                in_post[p.employer] = in_post.get(p.employer, 0) + 1
        rows = []
        for i in self._insts_of(owner, k):
            n = in_post.get(i.name, 0)
            posts = i.posts if i.posts_k <= k else 0
            residents = None if i.residents is None else i.residents + (k * 7 + len(i.name)) % 5 - 2
            rows.append({"unit_code": i.unit, "institution_name": i.name, "institution_type": i.kind,
                         "civil_affairs_public": _yn(i.public), "residents": residents, "social_work_posts": posts,
                         "social_workers_in_post": n,
                         "buys_social_work_services": _yn(i.buys_k is not None and i.buys_k <= k)})
        return rows

    def sg06(self, unit: str, k: int) -> dict:
        y, m = self.ym(k)
        yr = random.Random(f"{self.seed}/sg06/{unit}/{y}")
        is_city = unit == self.t.city.code
        pop = self.t.population.get(unit, 0)
        candidates = round(yr.uniform(0.35, 0.55) * (pop / 1000 if not is_city else 60)) \
            if m >= EXAM_REGISTRATION_MONTH else 0
        passes = round(candidates * yr.uniform(0.16, 0.3)) if m >= EXAM_RESULTS_MONTH else 0
        funds = round(yr.uniform(30, 160) * m / 12, 1)
        training = round(yr.uniform(150, 600) * m / 12)
        budgeted = yr.random() < 0.9 or y > 2023
        if is_city:
            built = (y, m) >= _parse_month(CITY_SUPPORT_CENTRE_OPENS)
            rate = PROVINCE_PASS_RATE.get(y) if m >= EXAM_RESULTS_MONTH else None
            outstanding = OUTSTANDING_TALENTS.get(y, max(OUTSTANDING_TALENTS.values()))
        else:
            built, rate, outstanding = True, None, None
        return {"unit_code": unit, "general_station_in_service": _yn(built), "exam_candidates_ytd": candidates,
                "exam_passes_ytd": passes, "province_pass_rate_pct": rate, "purchase_funds_ytd_10k_yuan": funds,
                "budgeted": _yn(budgeted), "training_attendance_ytd": training, "outstanding_talents": outstanding}


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


def _cell_text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:.2f}".rstrip("0")
    return str(v)


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


def _write_xlsx(path: Path, grids: list[tuple[str, list[list]]]):
    wb = xlsxwriter.Workbook(str(path), {"in_memory": True})
    wb.set_properties({"created": _CREATED, "author": "Administrator"})
    for name, grid in grids:
        ws = wb.add_worksheet(name)
        for r, row in enumerate(grid):
            for c, v in enumerate(row):
                if v is None:
                    continue
                if isinstance(v, str):
                    ws.write_string(r, c, v)
                else:
                    ws.write_number(r, c, v)
    wb.close()


def _write_xls(path: Path, grids: list[tuple[str, list[list]]]):
    wb = xlwt.Workbook(encoding="utf-8")
    for name, grid in grids:
        ws = wb.add_sheet(name)
        for r, row in enumerate(grid):
            for c, v in enumerate(row):
                if v is not None:
                    ws.write(r, c, v)
    wb.save(str(path))


def _write_csv(path: Path, grid: list[list], encoding: str):
    buf = io.StringIO()
    # Excel pads every row to the width of the used range and ends lines with CRLF.
    csv.writer(buf, lineterminator="\r\n").writerows([[_cell_text(v) for v in row] for row in grid])
    path.write_bytes(buf.getvalue().encode(encoding))


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


def _assign_formats(tree: _Tree, seed: int) -> dict[str, _Sender]:
    """Which file format each sender uses: stable across months, as office habits are."""
    rng = random.Random(f"{seed}/formats")
    towns = [u.code for u in tree.townships]
    rng.shuffle(towns)
    n = len(towns)
    n_xls, n_gbk, n_bom = round(n * 0.15), round(n * 0.10), (2 if n >= 20 else 1 if n >= 5 else 0)
    fmts = ["xls"] * n_xls + ["csv-gbk"] * n_gbk + ["csv-bom"] * n_bom
    senders = {c: _Sender(c, fmts[i] if i < len(fmts) else "xlsx", rng.randrange(6)) for i, c in enumerate(towns)}
    for u in [tree.city] + tree.counties:
        senders[u.code] = _Sender(u.code, "xlsx", rng.randrange(6))
    return senders


class _Month:
    """Writes one month's inbox and records what it planted."""

    def __init__(self, world: _World, forms: dict[str, Form], senders: dict[str, _Sender], inbox: Path, k: int):
        self.w, self.forms, self.senders, self.k = world, forms, senders, k
        self.ym = world.ym(k)
        self.label = f"{self.ym[0]}-{self.ym[1]:02d}"
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
        y, m = _month_add(self.ym, 1)
        return datetime(y, m, r.randint(1, 5), r.randint(9, 17), r.randint(0, 58), r.randint(0, 59),
                        tzinfo=_CST).timestamp()

    # -- sheets per sender -------------------------------------------------------------------
    def township_sheets(self, code: str) -> list[_Sheet]:
        w, k = self.w, self.k
        r = self.rng(code, "rows")
        units = [code] + [v.code for v in w.t.children.get(code, [])]
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
                          address: str = _ADDRESS_CODE) -> dict:
        """A person not otherwise listed: sequence codes 801-999 are never given to the sample's persons."""
        male = r.random() < 0.4
        seq = r.randrange(801, 999, 2) + (0 if male else 1)
        body = address + f"{r.randint(1970, 1999)}{r.randint(1, 12):02d}{r.randint(1, 28):02d}{seq:03d}"
        check = id_check_digit(body)
        if bad_check:
            check = r.choice([c for c in "0123456789X" if c != check])
        return {"unit_code": unit, "name": _World._name(r, male), "id_number": body + check,
                "sex": "男" if male else "女", "employer": employer, "post_type": "社区专职工作者", "full_time": "是",
                "certificate_level": "无", "service_fields": "社区治理", "party_member": "否",
                "phone": "1990002" + f"{r.randrange(10000):04d}"}

    def _unknown_village(self, r: random.Random, township: str) -> tuple[str, str]:
        known = self.w.t.units
        names = {u.name for u in known.values()}
        while True:
            code = township[:9] + f"{r.randint(150, 399):03d}"
            name = r.choice(_VILLAGE_STEMS) + "村民委员会"
            if code not in known and name not in names:
                return code, name

    def plant_faults(self, sheets_by_sender: dict[str, list[_Sheet]]):
        """Rows the validator must reject. In the baseline month only ones that change no figure."""
        r = self.rng("faults")
        towns = sorted(c for c, s in sheets_by_sender.items() if self.w.t.units[c].level == "township")
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
                v = r.choice(self.w.t.children.get(code, []) or [self.w.t.units[code]])
                i = r.randint(0, len(sg02.rows))
                sg02.rows.insert(i, self._fault_person_row(r, v.code, v.name, True, self.w.address))
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
        unit = self.w.t.units[code]
        folder = self.root / self.w.t.folder(code)
        folder.mkdir(parents=True, exist_ok=True)
        r = self.rng(code, "file")
        y, m = self.ym
        names = {"t": unit.name, "y": y, "m": m, "mm": f"{m:02d}"}
        footer = None
        when = self.mtime(code)
        if r.random() < 0.5:
            filler_male = r.random() < 0.3
            footer = (f"填报人：{_World._name(r, filler_male)}  联系电话：{_fake_phone(r)}  "
                      f"填报日期：{datetime.fromtimestamp(when, _CST).date().isoformat()}")
        offset = 1 + s.style % 2
        layout_style = s.style % 3
        grids = []
        for j, sh in enumerate(sheets):
            sh.name = f"Sheet{j + 1}" if layout_style == 1 else _SHEET_NAMES[layout_style][sh.form]
            grids.append((sh.name, _layout(self.forms[sh.form], sh, self.w.t.city.name, unit.name, self.period,
                                           offset, footer)))
        written: list[tuple[Path, list[_Sheet]]] = []
        if s.fmt in ("xlsx", "xls"):
            pattern = (_COUNTY_NAMES[s.style % 3] if unit.level != "township" else
                       _XLSX_NAMES[s.style] if s.fmt == "xlsx" else _XLS_NAMES[s.style % 3])
            if unit.level == "city":
                pattern = "市本级社会工作报表{y}年{m}月.xlsx"
            path = folder / pattern.format(**names)
            (_write_xlsx if s.fmt == "xlsx" else _write_xls)(path, grids)
            os.utime(path, (when, when))
            written.append((path, sheets))
        else:
            encoding = "gbk" if s.fmt == "csv-gbk" else "utf-8-sig"
            for j, (sh, (_, grid)) in enumerate(zip(sheets, grids)):
                path = folder / _CSV_NAMES[s.style % 3][j].format(**names)
                _write_csv(path, grid, encoding)
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
        county = self.w.t.counties[0]
        folder = self.root / self.w.t.folder(county.code)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "关于报送社会工作月报表的说明.xlsx"
        text = (f"关于报送{self.period}社会工作月报表的说明\r\n\r\n"
                f"各乡镇（街道）：本月报表请于次月5日前报送。台账中身份证号码请核对无误后再报。\r\n"
                f"{county.name}民政局\r\n")
        path.write_bytes(text.encode("utf-8"))
        when = self.mtime(county.code + "/note")
        os.utime(path, (when, when))
        self.files.append(path)
        self.formats["text"] = self.formats.get("text", 0) + 1
        self.faults.append({"kind": "not_a_spreadsheet", "form": None, "sheet": None, "row": None,
                            "file": path.relative_to(self.root.parent).as_posix()})


def _expected(world: _World, sheets_by_sender: dict[str, list[_Sheet]]) -> dict:
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


def _write_month(world: _World, forms: dict[str, Form], senders: dict[str, _Sender], inbox: Path, k: int,
                 root_files: bool = True) -> tuple[_Month, dict[str, list[_Sheet]]]:
    """One month's files of a world; without `root_files` the root unit sends nothing (a tile of
    the province other than the first: the province's own files come once)."""
    tree = world.t
    month = _Month(world, forms, senders, inbox, k)
    sheets = {u.code: month.township_sheets(u.code) for u in tree.townships}
    sheets.update({u.code: month.upper_sheets(u.code) for u in tree.counties + [tree.city]})
    month.plant_faults(sheets)
    for code in sorted(sheets):
        if root_files or code != tree.city.code:
            month.write(code, sheets[code])
    if k == 0:
        month.write_note()
    return month, sheets


def generate_sample(inbox: Path, units_csv: Path, population_csv: Path, *, seed: int = 20221017,
                    start: str = "2022-08", end: str = "2025-12") -> dict:
    """Write <inbox>/<YYYY-MM>/... for every month; return a summary dict (files written per month, ...)."""
    base, first, last = _parse_month(BASELINE_MONTH), _parse_month(start), _parse_month(end)
    if first < base:
        raise ValueError(f"the sample starts at its baseline month {BASELINE_MONTH}; start={start} is before it")
    if last < first:
        raise ValueError(f"end={end} is before start={start}")
    inbox = Path(inbox)
    tree = _Tree(Path(units_csv), Path(population_csv))
    world = _World(tree, seed, base)
    senders = _assign_formats(tree, seed)
    forms = load_forms(SCHEMAS)
    summary: dict = {"seed": seed, "start": start, "end": end, "files_written": 0,
                     "formats": {tree.folder(c).as_posix(): s.fmt for c, s in sorted(senders.items())}, "months": {}}
    k = 0
    while True:
        ym = world.ym(k)
        if ym > last:
            break
        if k > 0:
            world.step(k)
        if ym >= first:
            month, sheets = _write_month(world, forms, senders, inbox, k)
            summary["months"][month.label] = {
                "files": len(month.files),
                "by_format": dict(sorted(month.formats.items())),
                "expected": _expected(world, sheets),
                "faults": month.faults,
            }
            summary["files_written"] += len(month.files)
        k += 1
    return summary


# ---------------------------------------------------------------------------------------------
# A province: a generated tree of Sichuan's size, written as city-sized tiles
# ---------------------------------------------------------------------------------------------
# Sichuan: 21 prefecture cities, 183 counties, about 3,100 townships and 30,000 villages. The
# pipeline knows four levels (city, county, township, village); the province is its root, of level
# 'city', and the counties hang from it directly. The prefecture stays in the codes (digits 3-4),
# not as a unit: no form is sent by a prefecture, and a fifth level would change every roll-up
# for nothing the benchmark measures.
PROVINCE = {"prefectures": 21, "counties": 183, "townships": 3100, "villages": 30000,
            "population": 90_000_000}
_PREFECTURE_CODES = (1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 32, 33, 34)
_NAME_CHARS = ("安宝北昌成崇川大德东峨富高广汉和华江金锦景井九康乐雷临龙泸罗马茂美米绵明南宁彭平蒲"
               "青清邛渠仁荣三沙射石双顺松泰天通旺威文武西喜仙新兴叙雅盐阳仪营永长中资梓遂")
TILE_VILLAGES = 300  # counties are grouped into tiles of at least this many villages: Panzhihua has 336


def _names(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    """n two-character place stems, none in `taken` (which they join)."""
    out = []
    while len(out) < n:
        stem = rng.choice(_NAME_CHARS) + rng.choice(_NAME_CHARS)
        if stem[0] != stem[1] and stem not in taken:
            taken.add(stem)
            out.append(stem)
    return out


def province_tree(seed: int = 20221017, size: dict | None = None) -> tuple[list[dict], list[dict]]:
    """(units rows, population rows) of a synthetic province, deterministic from the seed."""
    size = size or PROVINCE
    rng = random.Random(f"{seed}/province")
    root = {"code": "510000000000", "name": "样例省", "level": "city", "parent_code": "000000000000",
            "urban_rural_code": ""}
    units, pops = [root], []
    n_pref = size["prefectures"]
    per_pref = _largest_remainder(size["counties"], [rng.uniform(0.5, 1.5) for _ in range(n_pref)])
    county_is_district = []
    for n in per_pref:
        districts = max(1, round(n * rng.uniform(0.15, 0.45)))
        county_is_district += [i < districts for i in range(n)]
    n_counties = len(county_is_district)
    towns_per = _largest_remainder(size["townships"], [rng.lognormvariate(0, 0.35) for _ in range(n_counties)])
    county_pop = _largest_remainder(size["population"], [rng.lognormvariate(0, 0.4) for _ in range(n_counties)])
    taken: set[str] = set()
    county_stems, town_stems = _names(rng, n_counties, taken), _names(rng, size["townships"], taken)
    kinds = []  # per township: 街道, 镇 or 乡
    i = 0
    for c, n in enumerate(towns_per):
        for _ in range(n):
            r = rng.random()
            kinds.append("街道" if r < (0.5 if county_is_district[c] else 0.08) else
                         "镇" if r < (0.9 if county_is_district[c] else 0.7) else "乡")
            i += 1
    vill_per = [max(1, v) for v in _largest_remainder(
        size["villages"], [rng.lognormvariate(0, 0.3) * (0.8 if k == "街道" else 1.0) for k in kinds])]
    t = c = 0
    for pref_i, n in enumerate(per_pref):
        pref = _PREFECTURE_CODES[pref_i % len(_PREFECTURE_CODES)] + 40 * (pref_i // len(_PREFECTURE_CODES))
        seq = {True: 2, False: 21}
        for _ in range(n):
            district = county_is_district[c]
            ccode = f"51{pref:02d}{seq[district]:02d}000000"
            seq[district] += 1
            units.append({"code": ccode, "name": county_stems[c] + ("区" if district else "县"), "level": "county",
                          "parent_code": root["code"], "urban_rural_code": ""})
            pops.append({"code": ccode, "name": units[-1]["name"], "year": 2022,
                         "registered_population": county_pop[c]})
            tseq = {"街道": 1, "镇": 101, "乡": 201}
            for _ in range(towns_per[c]):
                kind = kinds[t]
                tcode = ccode[:6] + f"{tseq[kind]:03d}000"
                tseq[kind] += 1
                units.append({"code": tcode, "name": town_stems[t] + kind, "level": "township",
                              "parent_code": ccode, "urban_rural_code": ""})
                share = {"街道": 0.9, "镇": 0.25, "乡": 0.05}[kind]
                vseq, used = {True: 1, False: 201}, set()
                for stem in range(vill_per[t]):
                    urban = rng.random() < share
                    while (name := rng.choice(_NAME_CHARS) + rng.choice(_NAME_CHARS)) in used:
                        pass
                    used.add(name)
                    units.append({"code": tcode[:9] + f"{vseq[urban]:03d}",
                                  "name": name + ("社区居民委员会" if urban else "村民委员会"), "level": "village",
                                  "parent_code": tcode,
                                  "urban_rural_code": ("111" if kind == "街道" else "121") if urban else "220"})
                    vseq[urban] += 1
                t += 1
            c += 1
    pops.insert(0, {"code": root["code"], "name": root["name"], "year": 2022,
                    "registered_population": sum(county_pop)})
    return units, pops


def _tiles(units: list[dict]) -> list[list[str]]:
    """Counties grouped, in code order, into tiles of at least TILE_VILLAGES villages."""
    parent = {u["code"]: u["parent_code"] for u in units}
    villages: dict[str, int] = {}
    for u in units:
        if u["level"] == "village":
            county = parent[u["parent_code"]]
            villages[county] = villages.get(county, 0) + 1
    tiles, current, n = [], [], 0
    for code in sorted(u["code"] for u in units if u["level"] == "county"):
        current.append(code)
        n += villages.get(code, 0)
        if n >= TILE_VILLAGES:
            tiles.append(current)
            current, n = [], 0
    if current:
        (tiles[-1].extend if tiles else tiles.append)(current)
    return tiles


def _write_tile(job: tuple) -> tuple[int, dict[str, int], list[dict]]:
    """One tile of the province: the root and its counties as a city-sized world, one month written."""
    i, units, pops, counties, inbox, seed, period = job
    keep = set(counties)
    parent = {u["code"]: u["parent_code"] for u in units}
    root = next(u for u in units if u["level"] == "city")

    def county_of(code: str) -> str | None:
        while code in parent and code not in keep:
            code = parent[code]
        return code if code in keep else None
    rows = [root] + [u for u in units if u["level"] != "city" and county_of(u["code"])]
    pop_rows = [p for p in pops if p["code"] == root["code"] or p["code"] in keep]
    tree = _Tree.from_rows(rows, pop_rows)
    base = _parse_month(BASELINE_MONTH)
    world = _World(tree, seed * 1000 + i, base, address=f"59{i:04d}", phone_prefix=f"199{i:04d}")
    senders = _assign_formats(tree, seed * 1000 + i)
    forms = load_forms(SCHEMAS)
    last = _parse_month(period)
    k = 0
    while world.ym(k) < last:
        k += 1
        world.step(k)
    month, _ = _write_month(world, forms, senders, Path(inbox), k, root_files=(i == 0))
    return len(month.files), month.formats, month.faults


def generate_province(out: Path, period: str = "2025-06", *, seed: int = 20221017, workers: int | None = None,
                      size: dict | None = None) -> dict:
    """A province-sized month: <out>/registry (units.csv, population.csv), <out>/plan, <out>/settings.toml
    and <out>/<period>/... Run it with SHEGONG_SETTINGS=<out>/settings.toml."""
    import shutil
    from concurrent.futures import ProcessPoolExecutor
    from flows.config import DATA
    _parse_month(period)
    out = Path(out)
    units, pops = province_tree(seed, size)
    (out / "registry").mkdir(parents=True, exist_ok=True)
    for name, rows in (("units.csv", units), ("population.csv", pops)):
        with open(out / "registry" / name, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    shutil.rmtree(out / "plan", ignore_errors=True)
    shutil.copytree(DATA / "plan", out / "plan")
    settings = (DATA / "settings.toml").read_text(encoding="utf-8")
    (out / "settings.toml").write_text(
        "# A generated province (shegong sample --scale province): use with SHEGONG_SETTINGS=<this file>.\n"
        "# The plan's targets are the city's, so statuses mean nothing here; the load does.\n" + settings,
        encoding="utf-8")
    shutil.rmtree(out / period, ignore_errors=True)  # a month is written whole, never on top of another
    tiles = _tiles(units)
    jobs = [(i, units, pops, counties, str(out), seed, period) for i, counties in enumerate(tiles)]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    # Tiles are independent and each is deterministic from its own seed: the pool changes the
    # order they are written in, never what.
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_write_tile, jobs))
    else:
        results = [_write_tile(j) for j in jobs]
    formats: dict[str, int] = {}
    for _, f, _ in results:
        for k, v in f.items():
            formats[k] = formats.get(k, 0) + v
    levels = {lv: sum(u["level"] == lv for u in units) for lv in ("county", "township", "village")}
    return {"seed": seed, "period": period, "tiles": len(tiles), "units": levels,
            "files_written": sum(n for n, _, _ in results), "by_format": dict(sorted(formats.items())),
            "faults": sum(len(x) for _, _, x in results), "settings": str(out / "settings.toml")}
