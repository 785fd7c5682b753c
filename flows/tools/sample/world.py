"""The simulated city: persons, communities, stations, organisations and institutions of a real
org-unit tree, advanced a month at a time, and the rows of the month's forms they give.

The scenario starts at the plan's 2022-08 baseline, which the files reproduce exactly under the
counting rules of the indicators document, and moves toward the 2025 targets the way a real city
would: some targets met, some missed.

Every person, organisation and credit code is fictitious (see `scenario.ADDRESS_CODE`). Codes and
names of the org units come only from the registry passed in, never from this file.
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from flows.config import add_months, check_period
from flows.ingest.convert import credit_code_valid, id_number_valid
from flows.registry import Tree, load_population, load_units
from flows.tools.sample.scenario import (ADDRESS_CODE, BASELINE_MONTH, CERTIFIED, CHARITY_FUNDS,
                                         CITY_SUPPORT_CENTRE_OPENS, CITY_TALENTS,
                                         COMMUNITY_WORKER_CERTIFIED_SHARE, DUAL_LISTED, DUAL_LISTED_CITY,
                                         ELDERLY_FIELD_TALENTS, EXAM_REGISTRATION_MONTH, EXAM_RESULTS_MONTH,
                                         GIVEN_F, GIVEN_FIRST, GIVEN_M, HOME_SUFFIXES, HOME_WORDS, ID_SEQ_REAL,
                                         INSTITUTION_WEIGHTS, KINDS, LEVELS_NEW, LEVELS_OLD,
                                         MINOR_FIELD_TALENTS, MONTHLY_LEAVE_RATE, ORGCODE_WEIGHTS,
                                         ORGS_BASELINE, ORGS_CITY, ORGS_INCUBATED, ORGS_NEW_AT,
                                         ORGS_UNCOVERED_COVERED_AT, ORG_SUFFIXES, ORG_WORDS,
                                         OUTSTANDING_TALENTS, PRIVATE_HOMES_BASELINE, PRIVATE_HOMES_NEW_AT,
                                         PROVINCE_PASS_RATE, PUBLIC_INSTITUTIONS,
                                         PUBLIC_INSTITUTIONS_WITH_POSTS, PUBLIC_KINDS, PUBLIC_POSTS_CREATED,
                                         ROOMS_AT_TARGET, RURAL_COMMUNITY_TALENTS_AVG,
                                         RURAL_SECRETARY_CERTIFIED, STATIONS_AND_ROOMS_BASELINE,
                                         STATIONS_BASELINE, STATION_OPENING_MONTHS, STATION_TALENTS_AVG,
                                         SURNAMES, TALENTS, TARGET_MONTH, URBAN_COMMUNITY_TALENTS_AVG,
                                         URBAN_SECRETARY_CERTIFIED, YI_NAMES)

# ---------------------------------------------------------------------------------------------
# Check characters: the one the reader's own check accepts (flows/ingest/convert.py), so that the
# sample and the validator cannot disagree about what a valid number is.
# ---------------------------------------------------------------------------------------------
def id_check_digit(body17: str) -> str:
    """GB 11643 check character of the first 17 digits of an ID number (a real birth date)."""
    return next(c for c in "0123456789X" if id_number_valid(body17 + c))


def credit_check_char(body17: str) -> str:
    """GB 32100 check character of the first 17 characters of a unified social credit code."""
    return next(c for c in string.digits + string.ascii_uppercase if credit_code_valid(body17 + c))


def _orgcode_check_char(body8: str) -> str:
    # GB 11714: the organisation code inside a credit code carries its own check character.
    total = sum(int(c, 36) * w for c, w in zip(body8, ORGCODE_WEIGHTS))
    v = 11 - total % 11
    return "X" if v == 10 else "0" if v == 11 else str(v)


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------
def year_month(period: str) -> tuple[int, int]:
    y, m = check_period(period).split("-")
    return int(y), int(m)


def month_end(period: str) -> date:
    return date.fromisoformat(add_months(period, 1) + "-01") - timedelta(days=1)


def months_between(a: str, b: str) -> int:
    (ya, ma), (yb, mb) = year_month(a), year_month(b)
    return (yb - ya) * 12 + mb - ma


def _traj(pair: tuple[float, float], k: int) -> float:
    """Value k months after the baseline: a gently concave path, flat after the target month."""
    t = min(k / _TARGET_K, 1.0)
    return pair[0] + (pair[1] - pair[0]) * t * (1.2 - 0.2 * t)


_TARGET_K = months_between(BASELINE_MONTH, TARGET_MONTH)


def largest_remainder(total: int, weights: list[float]) -> list[int]:
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


def fake_phone(rng: random.Random, prefix: str = "1990001") -> str:
    return prefix + f"{rng.randrange(10000):04d}"


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

    def roster_row(self, unit_code: str, period: str) -> dict:
        reg, hours = None, None
        if self.reg0 is not None:
            end = month_end(period)
            years = (end.year - self.reg0.year) - ((end.month, end.day) < (self.reg0.month, self.reg0.day))
            start = self.reg0.replace(year=self.reg0.year + 3 * (years // 3))
            reg = start.isoformat()
            if not self.hours_blank:
                need = 72 if self.level == "助理社会工作师" else 90
                elapsed = (end.year - start.year) * 12 + end.month - start.month + 1
                hours = min(int(need * self.edu_rate * elapsed / 36), int(need * 1.4))
        return {"unit_code": unit_code, "name": self.name, "id_number": self.id_number,
                "sex": "男" if self.male else "女", "employer": self.employer, "post_type": KINDS[self.kind][0],
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


# ---------------------------------------------------------------------------------------------
# The registry: the product's own tree (flows/registry.py) and each county's latest population
# ---------------------------------------------------------------------------------------------
def read_registry(units_csv: Path, population_csv: Path) -> tuple[Tree, dict[str, int]]:
    return _registry(load_units(Path(units_csv)), load_population(Path(population_csv)), units_csv, population_csv)


def registry_from_rows(rows: list[dict], pop_rows: list[dict]) -> tuple[Tree, dict[str, int]]:
    """A registry held in memory: a tile of the generated province."""
    units = pl.DataFrame(rows, schema={k: pl.String for k in ("code", "name", "level", "parent_code",
                                                             "urban_rural_code")})
    return _registry(units, pl.DataFrame(pop_rows), "units", "population")


def _registry(units: pl.DataFrame, population: pl.DataFrame, units_name, population_name):
    tree = Tree(units)
    if sum(level == "city" for level in tree.level.values()) != 1:
        raise ValueError(f"{units_name} must hold exactly one unit of level 'city'")
    latest = population.sort("year", descending=True, maintain_order=True).group_by("code", maintain_order=True).first()
    pop = dict(zip(latest["code"].to_list(), (int(p) for p in latest["registered_population"])))
    missing = [tree.name[c] for c in sorted(tree.name) if tree.level[c] == "county" and c not in pop]
    if missing:
        raise ValueError(f"{population_name} has no registered population for: {', '.join(missing)}")
    return tree, pop


class World:
    """Persons, communities, stations, organisations and institutions, advanced a month at a time."""

    def __init__(self, tree: Tree, population: dict[str, int], seed: int, base: str = BASELINE_MONTH,
                 address: str = ADDRESS_CODE, phone_prefix: str = "1990000"):
        self.t, self.population, self.seed, self.base = tree, population, seed, base
        self.counties, self.townships, self.villages = (
            sorted(c for c, lv in tree.level.items() if lv == level) for level in ("county", "township", "village"))
        # By committee type: a 居民委员会 is an urban community, a 村民委员会 a rural one.
        self.urban = {v for v in self.villages if tree.name[v].endswith("居民委员会")}
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
        self.n_urban = len(self.urban)
        self.n_rural = len(self.villages) - self.n_urban
        self._init_villages()
        self._init_orgs()
        self._init_townships()
        self._init_institutions()
        self._init_persons()

    def villages_of_county(self, county: str) -> list[str]:
        return [v for t in self.t.children.get(county, []) for v in self.t.children.get(t, [])]

    def folder(self, code: str) -> Path:
        """Inbox sub-folder of a sender: city, county, or county/township."""
        if self.t.level[code] == "township":
            return Path(self.t.name[self.t.parent[code]]) / self.t.name[code]
        return Path(self.t.name[code])

    # -- months ------------------------------------------------------------------------------
    def period(self, k: int) -> str:
        return add_months(self.base, k)

    def _date_in(self, k: int, rng: random.Random | None = None) -> date:
        y, m = year_month(self.period(k))
        return date(y, m, (rng or self.rng).randint(1, 28))

    # -- communities -------------------------------------------------------------------------
    def _init_villages(self):
        rng = self.rng
        self.vpop: dict[str, int] = {}
        for c in self.counties:
            vs = self.villages_of_county(c)
            weights = [(2.4 if v in self.urban else 1.0) * rng.lognormvariate(0, 0.35) for v in vs]
            for v, p in zip(vs, largest_remainder(self.population[c], weights)):
                self.vpop[v] = p
        self.vp: dict[str, dict] = {}
        for v in self.villages:
            u = v in self.urban
            self.vp[v] = {
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
                              for _ in range(2 if self.vpop[v] > 6000 else 1)],
            }
        codes = self.villages
        rooms0 = set(_wsample(rng, codes, [4.0 if c in self.urban else 1.0 for c in codes],
                              STATIONS_AND_ROOMS_BASELINE - STATIONS_BASELINE))
        later = [c for c in codes if c not in rooms0]
        rng.shuffle(later)
        n_later = max(0, min(len(later), ROOMS_AT_TARGET - len(rooms0)))
        funds0 = set(_wsample(rng, codes, [3.0 if c in self.urban else 1.0 for c in codes], CHARITY_FUNDS[0]))
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
            name = self.t.name[unit] + self.rng.choice(ORG_WORDS) + self.rng.choice(ORG_SUFFIXES)
            if name not in used:
                used.add(name)
                return name

    def _init_orgs(self):
        rng, t = self.rng, self.t
        counties = self.counties
        per_county = largest_remainder(ORGS_BASELINE - ORGS_CITY, [self.population[c] for c in counties])
        units = [t.city] * ORGS_CITY + [c for c, n in zip(counties, per_county) for _ in range(n)]
        incubated = set(rng.sample(range(len(units)), ORGS_INCUBATED))
        used: set[str] = set()
        self.orgs: list[_Org] = []
        for i, u in enumerate(units):
            inc = i in incubated
            y0 = rng.randint(2017, 2022) if inc else rng.randint(2012, 2020)
            founded = date(y0, rng.randint(1, 7 if y0 == 2022 else 12), rng.randint(1, 28))
            self.orgs.append(self._make_org(i, u, founded, -999, inc, used))
        for j, k in enumerate(ORGS_NEW_AT):
            u = rng.choices([t.city] + counties, [sum(self.population[c] for c in counties) * 0.2]
                            + [self.population[c] for c in counties])[0]
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
        codes = self.townships
        urbanish = {c: sum(v in self.urban for v in t.children.get(c, [])) for c in codes}
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
            county = t.parent[c]
            ops = [o for o in self.orgs if o.unit == county and o.founded < opened] or \
                  [o for o in self.orgs if o.unit == t.city and o.founded < opened]
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
        queues = [(t.city, list(PUBLIC_KINDS["city"]))] + [(c, list(PUBLIC_KINDS["county"])) for c in self.counties]
        self.insts: list[_Institution] = []
        order: list[_Institution] = []
        while len(order) < PUBLIC_INSTITUTIONS and any(q for _, q in queues):
            for owner, q in queues:
                if not q or len(order) == PUBLIC_INSTITUTIONS:
                    continue
                kind, pattern = q.pop(0)
                towns = t.children.get(owner, [])
                town = rng.choice(towns) if towns else None
                if owner == t.city:
                    where = owner  # sited below, once the counties' sites are known
                elif "{t}" in pattern and town is not None:
                    where = town
                else:
                    where = rng.choice((owner, towns[0] if towns else owner))
                if kind == "社会救助服务机构" and owner != t.city and not any(
                        i.kind == "未成年人救助保护机构" for i in order):
                    kind, pattern = "未成年人救助保护机构", "{u}未成年人救助保护中心"
                name = pattern.format(u=t.name[owner], t=t.name[town or owner])
                residents = {"养老机构": rng.randint(60, 220) if "{u}" in pattern else rng.randint(25, 90),
                             "儿童福利机构": rng.randint(20, 60), "殡葬服务机构": None}.get(kind, rng.randint(8, 40))
                posts = rng.randint(2, 5) if pattern == "{u}社会福利院" else rng.randint(1, 3)
                order.append(_Institution(where, owner, name, kind, True, residents,
                                          posts, -999, 0 if rng.random() < 0.5 else None))
        n_without = PUBLIC_INSTITUTIONS - PUBLIC_INSTITUTIONS_WITH_POSTS
        for inst, k in zip(reversed(order[-n_without:]) if n_without else [], PUBLIC_POSTS_CREATED):
            inst.posts_k, inst.posts = k, 1
        self.insts.extend(order)
        # Private elder-care homes: four above 100 residents, which the plan's post rule concerns.
        counties = self.counties
        weights = [self.population[c] for c in counties]
        used: set[str] = set()
        big_rules = [(1, -999, None), (0, -999, 0), (0, -999, 22), (0, -999, 37)]  # posts, posts_k, buys_k
        for i in range(PRIVATE_HOMES_BASELINE + len(PRIVATE_HOMES_NEW_AT)):
            c = rng.choices(counties, weights)[0]
            towns = t.children.get(c, [])
            while True:
                name = t.name[c] + rng.choice(HOME_WORDS) + rng.choice(HOME_SUFFIXES)
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
            where = rng.choice(towns) if towns else c
            self.insts.append(_Institution(where, c, name, "养老机构", False, residents, posts, posts_k,
                                           buys_k, start))
        for c in counties:
            towns = t.children.get(c, [])
            self.insts.append(_Institution(towns[0] if towns else c, c, t.name[c] + "残疾人康复服务中心",
                                           "残疾人福利和服务机构", False, rng.randint(20, 60),
                                           rng.randint(0, 1), -999, None))
        # The city's institutions stand in a township of the most urban county where no county
        # reports one: a unit covered by two senders' files would read as a correction of the older.
        core = max(self.counties, key=lambda c: (sum(v in self.urban for v in self.villages_of_county(c)), c))
        taken = {i.unit for i in self.insts if i.owner != t.city}
        free = [u for u in t.children.get(core, []) if u not in taken]
        for i in self.insts:
            if i.owner == t.city:
                i.unit = free[0] if free else t.city

    def _insts_of(self, owner: str, k: int) -> list[_Institution]:
        return [i for i in self.insts if i.owner == owner and i.start_k <= k]

    # -- persons -----------------------------------------------------------------------------
    def _new_id(self, male: bool, birth: date, rng: random.Random, seq_range=ID_SEQ_REAL) -> str:
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
    def person_name(rng: random.Random, male: bool) -> str:
        if rng.random() < 0.03:
            return rng.choice(YI_NAMES)
        given = GIVEN_M if male else GIVEN_F
        g = rng.choice(given) if rng.random() < 0.35 else rng.choice(GIVEN_FIRST + given) + rng.choice(given)
        return rng.choice(SURNAMES) + g

    def _employer(self, unit: str, kind: str, k: int) -> tuple[str, str, float, float]:
        """(kind, employer, w_elderly, w_minor) for a person at a county or city unit."""
        spec = KINDS[kind]
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
                we, wm = INSTITUTION_WEIGHTS.get(inst.kind, (spec[3], spec[4]))
                return kind, inst.name, we, wm
        elif spec[1]:
            return kind, spec[1].format(u=self.t.name[unit]), spec[3], spec[4]
        named = [(k2, v[7]) for k2, v in KINDS.items() if v[1] and v[7] > 0]
        return self._employer(unit, self.rng.choices([k2 for k2, _ in named], [w for _, w in named])[0], k)

    def _add_person(self, unit: str, group: str, kind: str, k: int, initial: bool) -> _Person:
        rng = self.rng
        male = rng.random() < 0.32
        top = (53 if not male else 58) if initial else 45
        age = 22 + int(rng.betavariate(1.6, 3.0) * (top - 22 + 1))
        ref = month_end(self.period(k))
        birth = date(ref.year - age - 1, rng.randint(1, 12), rng.randint(1, 28))
        if (ref - birth).days // 365 > age:
            birth = birth.replace(year=birth.year + 1)
        if self.t.level.get(unit) in ("county", "city"):
            kind, employer, we, wm = self._employer(unit, kind, k)
        else:
            name = self.t.name[unit]
            employer = {"village": name, "village_other": name,
                        "station": name + "社会工作服务站",
                        "township": name + ("办事处" if name.endswith("街道") else "人民政府")}[kind]
            we, wm = KINDS[kind][3], KINDS[kind][4]
        spec = KINDS[kind]
        fields = rng.sample(spec[2], 1 + (len(spec[2]) > 1 and rng.random() < 0.4))
        pid = self._next_pid
        self._next_pid += 1
        p = _Person(pid, self._new_id(male, birth, rng), self.person_name(rng, male), male, birth, unit, group, kind,
                    employer, rng.random() < spec[6], fields, rng.random() < 0.3,
                    None if rng.random() < 0.04 else self.phone_prefix + f"{self._phones.pop():04d}",
                    rng.uniform(0.35, 1.5), rng.random() < 0.08, joined=k, w_elderly=we, w_minor=wm)
        self.persons[pid] = p
        return p

    def _certify(self, p: _Person, k: int, old: bool):
        rng = self.rng
        p.level = _pick(rng, LEVELS_OLD if old else LEVELS_NEW)
        ref = month_end(self.period(k))
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
        return KINDS[p.kind][5]

    def _init_persons(self):
        rng, t = self.rng, self.t
        plan: list[tuple[str, str, str]] = []  # unit, group, kind
        for urban, avg in ((True, URBAN_COMMUNITY_TALENTS_AVG[0]), (False, RURAL_COMMUNITY_TALENTS_AVG[0])):
            vs = [v for v in self.villages if (v in self.urban) == urban]
            counts = {v: 0 for v in vs}
            for _ in range(round(len(vs) * avg)):
                w = [self.vpop[v] ** 0.5 / (1 + counts[v]) for v in vs]
                counts[rng.choices(vs, w)[0]] += 1
            for v in vs:
                for _ in range(counts[v]):
                    plan.append((v, "urban" if urban else "rural",
                                 "village" if rng.random() < 0.9 else "village_other"))
        for tw in self.townships:
            n = rng.choice((2, 2, 3, 3, 4)) if self.station_in_service(tw, 0) else rng.choice((0, 1, 1, 2))
            kind = "station" if self.station_in_service(tw, 0) else "township"
            plan += [(tw, "township", kind)] * n
        plan += [(t.city, "city", self._joiner_kind(True)) for _ in range(CITY_TALENTS[0])]
        n_county = TALENTS[0] - len(plan)
        for c, n in zip(self.counties, largest_remainder(n_county, [self.population[c] for c in self.counties])):
            plan += [(c, "county", self._joiner_kind(False)) for _ in range(n)]
        people = [self._add_person(u, g, kind, 0, True) for u, g, kind in plan]
        for p in _wsample(rng, people, [self._w_cert(p) for p in people], CERTIFIED[0]):
            self._certify(p, 0, old=True)
        self._fill_field("老年", ELDERLY_FIELD_TALENTS[0], exact=True)
        self._fill_field("未成年人", MINOR_FIELD_TALENTS[0], exact=True)
        self._maintain_dual(0, DUAL_LISTED)

    def _joiner_kind(self, city: bool) -> str:
        kinds = [(k, v[7]) for k, v in KINDS.items() if v[7] > 0 and not (city and k == "home")]
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
                    p.fields.append(KINDS[p.kind][2][0])

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
                  and self.station_in_service(self.t.parent[p.unit], k)])):
            if len(part) > want:
                for p in rng.sample(part, len(part) - want):
                    p.also = None
            elif len(part) < want:
                free = [p for p in eligible if not p.also]
                for p in rng.sample(free, min(want - len(part), len(free))):
                    p.also = self.t.city if p.group == "county" else self.t.parent[p.unit]

    def step(self, k: int):
        """Advance the world from month k-1 to month k."""
        rng, t = self.rng, self.t
        self._index = None
        ref = month_end(self.period(k))
        for pid in sorted(self.persons):
            p = self.persons[pid]
            age = ref.year - p.birth.year - ((ref.month, ref.day) < (p.birth.month, p.birth.day))
            if age >= (60 if p.male else 55) or rng.random() < MONTHLY_LEAVE_RATE:
                del self.persons[pid]
                if p.kind in ("public", "home"):
                    self._in_post[p.employer] -= 1
        for tw in self.townships:
            if self.tp[tw]["k"] == k:  # a new station takes on the township's social workers
                for p in self.persons.values():
                    if p.unit == tw:
                        p.kind, p.employer, p.full_time = "station", t.name[tw] + "社会工作服务站", True
        counts: dict[str, int] = {}
        groups: dict[str, int] = {}
        for p in self.persons.values():
            counts[p.unit] = counts.get(p.unit, 0) + 1
            groups[p.group] = groups.get(p.group, 0) + 1
        noise = lambda s: rng.gauss(0, s)  # noqa: E731
        total = round(_traj(TALENTS, k) + noise(3))
        urban = round(self.n_urban * _traj(URBAN_COMMUNITY_TALENTS_AVG, k) + noise(1.5))
        rural = round(self.n_rural * _traj(RURAL_COMMUNITY_TALENTS_AVG, k) + noise(1.5))
        town_target = {tw: (_traj(STATION_TALENTS_AVG, k) if self.station_in_service(tw, k) else 1.0)
                       for tw in self.townships}
        town = round(sum(town_target.values()) + noise(1.5))
        city = round(_traj(CITY_TALENTS, k) + noise(1.5))
        county = total - urban - rural - town - city
        for urb, want in ((True, urban), (False, rural)):
            vs = [v for v in self.villages if (v in self.urban) == urb]
            for _ in range(max(0, want - groups.get("urban" if urb else "rural", 0))):
                w = [self.vpop[v] ** 0.5 / (1 + counts.get(v, 0)) ** 2 for v in vs]
                v = rng.choices(vs, w)[0]
                counts[v] = counts.get(v, 0) + 1
                self._add_person(v, "urban" if urb else "rural",
                                 "village" if rng.random() < 0.9 else "village_other", k, False)
        for _ in range(max(0, town - groups.get("township", 0))):
            tw = max(self.townships, key=lambda u: town_target[u] - counts.get(u, 0) + rng.random() * 0.5)
            counts[tw] = counts.get(tw, 0) + 1
            self._add_person(tw, "township", "station" if self.station_in_service(tw, k) else "township",
                             k, False)
        for _ in range(max(0, city - groups.get("city", 0))):
            self._add_person(t.city, "city", self._joiner_kind(True), k, False)
        need = county - groups.get("county", 0)
        if need > 0:
            per = [self.population[c] for c in self.counties]
            for _ in range(need):
                c = rng.choices(self.counties, per)[0]
                self._add_person(c, "county", self._joiner_kind(False), k, False)
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
        period = self.period(k)
        return [p.roster_row(u, period) for u in sorted(units) for p in self.listed(u)]

    def sg01(self, township: str, k: int, rng: random.Random) -> list[dict]:
        rows = []
        g = min(k / _TARGET_K, 1.0)
        share = _traj(COMMUNITY_WORKER_CERTIFIED_SHARE, k)
        for v in self.t.children.get(township, []):
            urban = v in self.urban
            vp = self.vp[v]
            pop = self.vpop[v]
            elderly = round(pop * (vp["elderly_share"] + 0.0025 * k / 12))
            on_roster = self.based(v, "village")
            workers = max(min(12, vp["workers"] + round(vp["workers_inc"] * g)), len(on_roster))
            cert = round(workers * min(1.0, max(0.0, share + vp["cert_dev"])))
            cert = min(workers, max(cert, sum(p.level != "无" for p in on_roster)))
            sec = vp["secretary"] < _traj(URBAN_SECRETARY_CERTIFIED if urban else RURAL_SECRETARY_CERTIFIED,
                                          min(k * 5 // 2, _TARGET_K) if urban else k)
            teams = vp["teams"] + math.floor(vp["teams_inc"] * g + 1 - vp["phase"])
            fund = vp["fund_k"] is not None and vp["fund_k"] <= k
            directors = vp["directors"]
            rows.append({"unit_code": v, "unit_name": self.t.name[v], "registered_population": pop,
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
        tp = self.tp[township]
        sup = tp["supervisors"]
        row = {"unit_code": township, "unit_name": self.t.name[township], "station_in_service": "否",
               "child_supervisors": len(sup), "child_supervisors_trained": sum(d <= k for d in sup)}
        if not self.station_in_service(township, k):
            return row
        staff = self.based(township, "station")
        month = year_month(self.period(k))[1]
        season = 0.7 if month in (1, 2) else 1.15 if month in (6, 12) else 1.0
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
        year = year_month(self.period(k))[0]
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
            yr = random.Random(f"{self.seed}/org/{o.idx}/{year}")
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
        y, m = year_month(self.period(k))
        yr = random.Random(f"{self.seed}/sg06/{unit}/{y}")
        is_city = unit == self.t.city
        pop = self.population.get(unit, 0)
        candidates = round(yr.uniform(0.35, 0.55) * (pop / 1000 if not is_city else 60)) \
            if m >= EXAM_REGISTRATION_MONTH else 0
        passes = round(candidates * yr.uniform(0.16, 0.3)) if m >= EXAM_RESULTS_MONTH else 0
        funds = round(yr.uniform(30, 160) * m / 12, 1)
        training = round(yr.uniform(150, 600) * m / 12)
        budgeted = yr.random() < 0.9 or y > 2023
        if is_city:
            built = self.period(k) >= CITY_SUPPORT_CENTRE_OPENS
            rate = PROVINCE_PASS_RATE.get(y) if m >= EXAM_RESULTS_MONTH else None
            outstanding = OUTSTANDING_TALENTS.get(y, max(OUTSTANDING_TALENTS.values()))
        else:
            built, rate, outstanding = True, None, None
        return {"unit_code": unit, "general_station_in_service": _yn(built), "exam_candidates_ytd": candidates,
                "exam_passes_ytd": passes, "province_pass_rate_pct": rate, "purchase_funds_ytd_10k_yuan": funds,
                "budgeted": _yn(budgeted), "training_attendance_ytd": training, "outstanding_talents": outstanding}
