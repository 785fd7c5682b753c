"""Reference data: the org-unit tree, the reference population and the plan's indicators."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import polars as pl

from flows.errors import ConfigError

LEVELS = ("city", "county", "township", "village")
LEVEL_ZH = {"city": "市", "county": "县（区）", "township": "乡镇（街道）", "village": "村（社区）"}


def load_units(path: Path) -> pl.DataFrame:
    # Codes stay text: a 12-digit code read as a number loses nothing here but would invite
    # arithmetic and lose leading zeros in other cities' trees.
    units = pl.read_csv(path, infer_schema=False).select("code", "name", "level", "parent_code", "urban_rural_code")
    bad = units.filter(~pl.col("level").is_in(LEVELS))
    if bad.height:
        raise ConfigError(f"{path}: unknown level {bad['level'][0]!r} for {bad['code'][0]}; use one of {LEVELS}")
    if units["code"].n_unique() != units.height:
        raise ConfigError(f"{path}: duplicate unit codes")
    return units


def load_population(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, schema_overrides={"code": pl.String, "name": pl.String, "year": pl.Int32,
                                               "registered_population": pl.Int64})


def load_indicators(path: Path, plan_id: str = "") -> pl.DataFrame:
    """One plan's indicators (the [[indicator]] tables of its indicators.toml), a row each."""
    raw = _read_toml(path).get("indicator", [])
    rows = []
    for d in raw:
        for k in ("id", "name_zh", "numerator", "levels"):
            if k not in d:
                raise ConfigError(f"{path}: indicator {d.get('id')!r} lacks {k!r}")
        rows.append({
            "id": d["id"], "headline": d.get("headline", 0), "name_zh": d["name_zh"], "name_en": d.get("name_en"),
            "definition": d.get("definition"), "numerator": d["numerator"], "denominator": d.get("denominator"),
            "scale": float(d.get("scale", 1)), "unit": d.get("unit"),
            "target": float(d["target"]) if "target" in d else None, "target_figure": d.get("target_figure"),
            "meeting": d.get("meeting"), "comparison": d.get("comparison", ">="),
            "target_type": d.get("target_type"), "deadline": d.get("deadline"),
            "levels": d["levels"], "target_levels": d.get("target_levels", []), "plan_id": plan_id,
        })
    frame = pl.DataFrame(rows, schema={
        "id": pl.String, "headline": pl.Int32, "name_zh": pl.String, "name_en": pl.String,
        "definition": pl.String, "numerator": pl.String, "denominator": pl.String, "scale": pl.Float64,
        "unit": pl.String, "target": pl.Float64, "target_figure": pl.String, "meeting": pl.String,
        "comparison": pl.String, "target_type": pl.String,
        "deadline": pl.String, "levels": pl.List(pl.String), "target_levels": pl.List(pl.String),
        "plan_id": pl.String})
    return frame.with_columns(pl.col("deadline").str.to_date())


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


# What an indicator counts: the same in every plan that has it, so that its months compare across
# plans (a plan may change a target, deadline, type or levels; counting otherwise is a new id).
_DEFINITION = ("numerator", "denominator", "scale", "meeting", "unit")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def load_plans(folder: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every plan under `folder` (one <plan id>/indicators.toml each): the plans, a row each with
    the months they judge, and all their indicators, a row per plan and indicator."""
    plans, indicators = [], []
    for path in sorted(Path(folder).glob("*/indicators.toml")):
        plan_id = path.parent.name
        head = _read_toml(path).get("plan", {})
        missing = [k for k in ("name", "from", "to") if k not in head]
        if missing:
            raise ConfigError(f"{path}: the [plan] table needs {', '.join(missing)} (name, and the months it "
                              f"judges as YYYY-MM: from = \"2026-01\", to = \"2030-12\")")
        start, end = str(head["from"]), str(head["to"])
        if not (_MONTH.match(start) and _MONTH.match(end)) or start > end:
            raise ConfigError(f"{path}: [plan] from {start!r} to {end!r} is not a span of months; "
                              f"write them as YYYY-MM, from before to")
        plans.append({"plan_id": plan_id, "name": str(head["name"]), "from_period": start, "to_period": end})
        indicators.append(load_indicators(path, plan_id))
    if not plans:
        raise ConfigError(f"no plan in {folder}: put each plan in {folder}/<plan id>/indicators.toml")
    ordered = sorted(plans, key=lambda p: p["from_period"])
    for a, b in zip(ordered, ordered[1:]):
        if b["from_period"] <= a["to_period"]:
            raise ConfigError(f"plans {a['plan_id']} ({a['from_period']}..{a['to_period']}) and {b['plan_id']} "
                              f"({b['from_period']}..{b['to_period']}) both cover {b['from_period']}: a month is "
                              f"judged against one plan; make their months follow each other")
    frame = pl.concat(indicators)
    for ind, defs in frame.group_by("id"):
        if defs.select(_DEFINITION).unique().height > 1:
            raise ConfigError(f"indicator {ind[0]!r} counts differently in plans {', '.join(sorted(defs['plan_id']))} "
                              f"({', '.join(_DEFINITION)} must be the same): give the new way of counting a new id")
    return pl.DataFrame(ordered, schema={"plan_id": pl.String, "name": pl.String, "from_period": pl.String,
                                         "to_period": pl.String}), frame


def plan_for(plans: list[tuple[str, str, str]], period: str) -> tuple[str | None, str]:
    """For a month, the plan in force (None when no plan covers it) and the plan whose indicators
    it is computed with: the one in force, else the last that ended before it, else the first."""
    ordered = sorted(plans, key=lambda p: p[1])
    for plan_id, start, end in ordered:
        if start <= period <= end:
            return plan_id, plan_id
    before = [p for p in ordered if p[2] < period]
    return None, (before[-1] if before else ordered[0])[0]


# Words offices add after their unit's name: 东区民政局, 大渡口街道办事处, 攀莲镇人民政府.
_OFFICE = re.compile(r"(人民政府|政府|办事处|民政局|民政办|社会事务办公室|社会事务办|社事办|便民服务中心|党委)$")


class Tree:
    """The registry as the checks need it: names, levels, parents, subtrees."""

    def __init__(self, units: pl.DataFrame):
        self.name, self.level, self.parent, self.children = {}, {}, {}, {}
        for code, name, level, parent in units.select("code", "name", "level", "parent_code").iter_rows():
            self.name[code], self.level[code], self.parent[code] = name, level, parent
        for code in sorted(self.name):
            self.children.setdefault(self.parent[code], []).append(code)
        roots = [c for c in sorted(self.name) if self.parent[c] not in self.name]
        self.order = [c for r in roots for c in self.subtree(r)]  # parents before children
        self.city = next((c for c in self.order if self.level[c] == "city"), None)
        by_name: dict[str, set[str]] = {}
        for code, name in self.name.items():
            for alias in {name, name.removesuffix("居民委员会").removesuffix("村民委员会")}:
                by_name.setdefault(alias, set()).add(code)
        # A name shared by two units (two 新村 in different towns) identifies neither.
        self.by_name = {n: next(iter(c)) for n, c in by_name.items() if len(c) == 1}

    def subtree(self, code: str) -> list[str]:
        """The unit and everything under it, parents before children, codes in order."""
        out, stack = [], [code]
        while stack:
            c = stack.pop()
            out.append(c)
            stack.extend(reversed(self.children.get(c, [])))
        return out

    def ancestors(self, code: str) -> list[str]:
        out = []
        while code in self.name:
            out.append(code)
            code = self.parent.get(code)
        return out

    def within(self, code: str, ancestor: str) -> bool:
        return ancestor in self.ancestors(code)

    def resolve(self, text: str | None) -> str | None:
        """A unit code from a sender's words, or None when they name no unit unambiguously."""
        if not text:
            return None
        s = re.sub(r"\s+", "", text)
        while True:
            if s in self.by_name:
                return self.by_name[s]
            shorter = _OFFICE.sub("", s)
            if shorter == s:
                break
            s = shorter
        # 东区民政局社会事务科: the longest registry name it starts with.
        for n in sorted((n for n in self.by_name if s.startswith(n)), key=len, reverse=True):
            return self.by_name[n]
        return None

    def common_ancestor(self, codes: set[str]) -> str | None:
        chains = [self.ancestors(c) for c in codes if c in self.name]
        if not chains:
            return None
        shared = set(chains[0]).intersection(*chains[1:])
        return next((c for c in chains[0] if c in shared), None)


