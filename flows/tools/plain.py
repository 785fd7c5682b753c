"""The plain baseline of `make bench`: the script a competent analyst writes for the month's ten
headline indicators of the city, with pandas and python-calamine, file by file, no validation.
It knows the city's templates (title, form number, header on the third row) and nothing of ours:
it imports nothing from shegong, so its time is what a user's own script costs.

    python -m flows.tools.plain INBOX/YYYY-MM units.csv population.csv [out.json]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd


def read_sheets(path: Path) -> dict[str, pd.DataFrame]:
    if path.suffix == ".csv":
        try:
            return {path.stem: pd.read_csv(path, header=None, dtype=str, encoding="utf-8-sig")}
        except UnicodeDecodeError:
            return {path.stem: pd.read_csv(path, header=None, dtype=str, encoding="gbk")}
    return pd.read_excel(path, sheet_name=None, header=None, engine="calamine")


def month_forms(root: Path) -> dict[str, pd.DataFrame]:
    """Every sheet's rows, stacked per form (read from the form number on the second row)."""
    parts: dict[str, list[pd.DataFrame]] = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".xlsx", ".xls", ".csv")):
        try:
            sheets = read_sheets(path)
        except Exception:  # noqa: BLE001 - a file that is no spreadsheet: skipped
            continue
        for raw in sheets.values():
            if raw.shape[0] < 4:
                continue
            form = str(raw.iat[1, 0]).replace("表号：", "").strip()
            rows = raw.iloc[3:]
            rows.columns = [str(c) for c in raw.iloc[2]]
            first = rows.iloc[:, 0]
            parts.setdefault(form, []).append(rows[first.notna() & ~first.astype(str).str.startswith("填报人")])
    return {form: pd.concat(p, ignore_index=True) for form, p in parts.items()}


def headline(root: Path, units_csv: Path, population_csv: Path) -> dict[str, float | None]:
    units = pd.read_csv(units_csv, dtype=str)
    population = pd.read_csv(population_csv, dtype={"code": str})
    city = units.loc[units["level"] == "city", "code"].iloc[0]
    villages = units[units["level"] == "village"]
    urban = set(villages.loc[villages["name"].str.endswith("居民委员会"), "code"])
    rural = set(villages["code"]) - urban
    townships = (units["level"] == "township").sum()
    pop = population[population["code"] == city].sort_values("year")["registered_population"].iloc[-1]

    forms = month_forms(root)
    roster, sg01, sg03, sg04 = (forms.get(f, pd.DataFrame()) for f in ("SG-02", "SG-01", "SG-03", "SG-04"))
    ids = roster["公民身份号码"].astype(str).str.strip().str.upper()
    people = roster.assign(id=ids).drop_duplicates("id")
    fields = people["服务领域"].fillna("").astype(str)
    serving = roster.assign(id=ids, unit=roster["服务单位代码"].astype(str).str.strip())
    workers = pd.to_numeric(sg01["社区专职工作者人数"], errors="coerce").sum()
    certified_workers = pd.to_numeric(sg01["其中持证人数"], errors="coerce").sum()
    forms_known = sg04["党建形式"].dropna()

    def ratio(a, b, scale=1.0):
        return float(a) * scale / float(b) if b else None
    return {
        "talent_total": float(len(people)),
        "talent_per_mille": ratio(len(people), pop, 1000),
        "certified_total": float((people["职业水平等级"].fillna("无") != "无").sum()),
        "community_worker_certified_share": ratio(certified_workers, workers, 100),
        "urban_community_talent_avg": ratio(serving[serving["unit"].isin(urban)]["id"].nunique(), len(urban)),
        "rural_community_talent_avg": ratio(serving[serving["unit"].isin(rural)]["id"].nunique(), len(rural)),
        "elderly_talent_total": float(fields.str.contains("老年").sum()),
        "minor_talent_total": float(fields.str.contains("未成年人").sum()),
        "org_party_coverage": ratio((forms_known != "未覆盖").sum(), len(forms_known), 100),
        "township_station_coverage": ratio((sg03["是否建成社工站"] == "是").sum(), townships, 100),
    }


def main(argv: list[str]) -> int:
    root, units_csv, population_csv = (Path(a) for a in argv[:3])
    out = json.dumps(headline(root, units_csv, population_csv), ensure_ascii=False)
    if len(argv) > 3:
        Path(argv[3]).write_text(out)
    else:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
