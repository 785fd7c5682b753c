"""A province: a generated tree of Sichuan's size, its month written as city-sized tiles.

Sichuan: 21 prefecture cities, 183 counties, about 3,100 townships and 30,000 villages. The
pipeline knows four levels (city, county, township, village); the province is its root, of level
'city', and the counties hang from it directly. The prefecture stays in the codes (digits 3-4),
not as a unit: no form is sent by a prefecture, and a fifth level would change every roll-up
for nothing the benchmark measures.
"""
from __future__ import annotations

import csv
import multiprocessing
import os
import random
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from flows.config import DATA, SCHEMAS, check_period
from flows.schemas import load_forms
from flows.tools.sample.month import assign_formats, write_month
from flows.tools.sample.world import World, largest_remainder, registry_from_rows

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
    per_pref = largest_remainder(size["counties"], [rng.uniform(0.5, 1.5) for _ in range(n_pref)])
    county_is_district = []
    for n in per_pref:
        districts = max(1, round(n * rng.uniform(0.15, 0.45)))
        county_is_district += [i < districts for i in range(n)]
    n_counties = len(county_is_district)
    towns_per = largest_remainder(size["townships"], [rng.lognormvariate(0, 0.35) for _ in range(n_counties)])
    county_pop = largest_remainder(size["population"], [rng.lognormvariate(0, 0.4) for _ in range(n_counties)])
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
    vill_per = [max(1, v) for v in largest_remainder(
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


def tiles(units: list[dict]) -> list[list[str]]:
    """Counties grouped, in code order, into tiles of at least TILE_VILLAGES villages."""
    parent = {u["code"]: u["parent_code"] for u in units}
    villages: dict[str, int] = {}
    for u in units:
        if u["level"] == "village":
            county = parent[u["parent_code"]]
            villages[county] = villages.get(county, 0) + 1
    out, current, n = [], [], 0
    for code in sorted(u["code"] for u in units if u["level"] == "county"):
        current.append(code)
        n += villages.get(code, 0)
        if n >= TILE_VILLAGES:
            out.append(current)
            current, n = [], 0
    if current:
        (out[-1].extend if out else out.append)(current)
    return out


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
    world = World(*registry_from_rows(rows, pop_rows), seed * 1000 + i, address=f"59{i:04d}",
                  phone_prefix=f"199{i:04d}")
    senders = assign_formats(world, seed * 1000 + i)
    forms = load_forms(SCHEMAS)
    k = 0
    while world.period(k) < period:
        k += 1
        world.step(k)
    month, _ = write_month(world, forms, senders, Path(inbox), k, root_files=(i == 0))
    return len(month.files), month.formats, month.faults


def generate_province(out: Path, period: str = "2025-06", *, seed: int = 20221017, workers: int | None = None,
                      size: dict | None = None) -> dict:
    """A province-sized month: <out>/registry (units.csv, population.csv), <out>/plan, <out>/settings.toml
    and <out>/<period>/... Run it with SHEGONG_SETTINGS=<out>/settings.toml."""
    check_period(period)
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
    groups = tiles(units)
    jobs = [(i, units, pops, counties, str(out), seed, period) for i, counties in enumerate(groups)]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    # Tiles are independent and each is deterministic from its own seed: the pool changes the
    # order they are written in, never what.
    if workers > 1:
        # Spawned, not forked: a process that used Polars (the benchmark, after its city phases)
        # holds its thread pool's locks, and a forked child waits on them for ever.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_write_tile, jobs))
    else:
        results = [_write_tile(j) for j in jobs]
    formats: dict[str, int] = {}
    for _, f, _ in results:
        for k, v in f.items():
            formats[k] = formats.get(k, 0) + v
    levels = {lv: sum(u["level"] == lv for u in units) for lv in ("county", "township", "village")}
    return {"seed": seed, "period": period, "tiles": len(groups), "units": levels,
            "files_written": sum(n for n, _, _ in results), "by_format": dict(sorted(formats.items())),
            "faults": sum(len(x) for _, _, x in results), "settings": str(out / "settings.toml")}
