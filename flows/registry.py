"""Reference data: the org-unit tree, the reference population and the plan's indicators."""
from __future__ import annotations

import tomllib
from pathlib import Path

import polars as pl

from .errors import ConfigError

LEVELS = ("city", "county", "township", "village")


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


def load_indicators(path: Path) -> pl.DataFrame:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))["indicator"]
    rows = []
    for d in raw:
        for k in ("id", "name_zh", "numerator", "levels"):
            if k not in d:
                raise ConfigError(f"{path}: indicator {d.get('id')!r} lacks {k!r}")
        rows.append({
            "id": d["id"], "headline": d.get("headline", 0), "name_zh": d["name_zh"], "name_en": d.get("name_en"),
            "definition": d.get("definition"), "numerator": d["numerator"], "denominator": d.get("denominator"),
            "scale": float(d.get("scale", 1)), "unit": d.get("unit"),
            "target": float(d["target"]) if "target" in d else None, "comparison": d.get("comparison", ">="),
            "target_type": d.get("target_type"), "deadline": d.get("deadline"),
            "levels": d["levels"], "target_levels": d.get("target_levels", []),
        })
    frame = pl.DataFrame(rows, schema={
        "id": pl.String, "headline": pl.Int32, "name_zh": pl.String, "name_en": pl.String,
        "definition": pl.String, "numerator": pl.String, "denominator": pl.String, "scale": pl.Float64,
        "unit": pl.String, "target": pl.Float64, "comparison": pl.String, "target_type": pl.String,
        "deadline": pl.String, "levels": pl.List(pl.String), "target_levels": pl.List(pl.String)})
    return frame.with_columns(pl.col("deadline").str.to_date())


def unit_index(units: pl.DataFrame) -> dict[str, tuple[str, str]]:
    """code -> (name, level), for validation."""
    return {c: (n, lv) for c, n, lv in units.select("code", "name", "level").iter_rows()}
