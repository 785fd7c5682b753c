"""Why a number is what it is: the units, rows and files behind an indicator's numerator and
denominator for one unit and month. Reads the published warehouse read-only; shows where each
row is in the sender's file, never who the person is."""
from __future__ import annotations

from pathlib import Path

from flows.errors import ConfigError
from flows.warehouse.load import fact_sources, made_of
from flows.outputs.report import LEVEL_ZH, STATUS_ZH, fmt, read_published


def explain(db: Path, indicator: str, unit: str, period: str, limit: int | None = None) -> str:
    return read_published(db, period, lambda con, period: _explain(con, indicator, unit, period, limit))


def _explain(con, indicator: str, unit: str, period: str, limit: int | None) -> str:
    # Its definition in the plan the month was judged against (what it counts is the same in every plan).
    d = con.execute("select name_zh, definition, numerator, denominator, scale, unit from ref.indicators where id = ? "
                    "order by plan_id is not distinct from (select any_value(plan_id) from mart.indicator_values "
                    "where period = ? and indicator_id = ?) desc, plan_id limit 1",
                    [indicator, period, indicator]).fetchone()
    if d is None:
        ids = ", ".join(r[0] for r in con.execute("select distinct id from ref.indicators order by id").fetchall())
        raise ConfigError(f"no indicator {indicator!r}; the indicators are: {ids}")
    name, definition, numerator, denominator, scale, value_unit = d
    v = con.execute("select unit_name, unit_level, value, numerator, denominator, target, status "
                    "from mart.indicator_values where indicator_id = ? and unit_code = ? and period = ?",
                    [indicator, unit, period]).fetchone()
    if v is None:
        raise ConfigError(f"no value of {indicator} for unit {unit} in {period}: check the code, the month "
                          f"(`shegong run --period {period}`) and the levels the indicator applies to")
    unit_name, level, value, num, den, target, status = v
    out = [f"{name}（{indicator}）— {unit_name}（{LEVEL_ZH[level]}，{unit}），{period}",
           f"口径：{definition}",
           f"值 = {fmt(value, value_unit)} {value_unit}"
           + (f" = {fmt(num, None)} × {scale:g} ÷ {fmt(den, None)}" if denominator else f" = {fmt(num, None)} × {scale:g}")
           + (f"；目标 {fmt(target, value_unit)}，{STATUS_ZH.get(status, '—')}" if target is not None else "")]
    files: dict[str, tuple] = {}
    for role, figure in (("分子", numerator), ("分母", denominator)):
        if figure:
            out += _figure(con, role, figure, unit, period, limit, files)
    if files:
        out.append("")
        out.append(f"涉及文件（{len(files)} 个）：")
        for path, (received, status) in sorted(files.items()):
            out.append(f"  {path}    收到 {received:%Y-%m-%d %H:%M} UTC    {status}")
    return "\n".join(out)


def _figure(con, role: str, figure: str, unit: str, period: str, limit: int | None, files: dict) -> list[str]:
    parts = made_of().get(figure, [figure])
    facts = {r[0] for r in con.execute("select column_name from information_schema.columns where table_schema = "
                                       "'intermediate' and table_name = 'unit_facts'").fetchall()}
    out = ["", f"{role}：{figure}"]
    if figure == "population":
        level = con.execute("select level from ref.units where code = ?", [unit]).fetchone()[0]
        if level in ("city", "county"):
            ref = con.execute("select year, registered_population from ref.population where code = ? and year <= ? "
                              "order by year desc limit 1", [unit, int(period[:4])]).fetchone()
            return out + [f"  参考户籍人口（data/registry/population.csv，{ref[0]} 年）：{ref[1]:,}" if ref
                          else "  无参考户籍人口"]
    for part in parts:
        if part not in facts:
            continue
        rows = con.execute(f"""
            select u.code, u.name, u.level, f."{part}"
            from intermediate.unit_closure c
            join intermediate.unit_facts f on f.unit_code = c.descendant_code and f.period = ?
            join ref.units u on u.code = c.descendant_code
            where c.ancestor_code = ? and f."{part}" is not null and f."{part}" <> 0
            order by u.code""", [period, unit]).fetchall()
        total = sum(r[3] for r in rows)
        out.append(f"  {part}：{len(rows)} 个单位，合计 {fmt(float(total), None)}")
        for code, name, level, amount in rows[:limit]:
            out.append(f"    {code}  {name}（{LEVEL_ZH[level]}）  {fmt(float(amount), None)}")
        if limit is not None and len(rows) > limit:
            out.append(f"    …… 另有 {len(rows) - limit} 个单位（--limit 调整）")
        source = fact_sources().get(part)
        if source == "registry":
            out.append("    来源：区划登记册（data/registry/units.csv），每个单位计 1，无论是否报送")
        elif source:
            out += _rows(con, source, [r[0] for r in rows], period, limit, files)
    return out


def _rows(con, source: str, units: list[str], period: str, limit: int | None, files: dict) -> list[str]:
    if not units:
        return []
    rows = con.execute(f"""
        select s.source_file, s.source_sheet, s.excel_row, s.unit_code
        from {source} s
        where s.period = ? and s.unit_code in (select unnest(?::varchar[]))
          {"and s.counted" if source.startswith("staging.") else ""}
        order by s.source_file, s.source_sheet, s.excel_row""", [period, units]).fetchall()
    kind = "台账行（每人一行，按计数规则归属的单位）" if "talent" in source else "报表行"
    out = [f"    来源：{source}，{len(rows)} 条{kind}"]
    for path, sheet, row, code in rows[:limit]:
        out.append(f"      {path} ［{sheet}］ 第 {row} 行  {code}")
    if limit is not None and len(rows) > limit:
        out.append(f"      …… 另有 {len(rows) - limit} 行")
    for path in {r[0] for r in rows}:
        if path not in files:
            f = con.execute("select received_at, status from ingest.files where period = ? and path = ?",
                            [period, path]).fetchone()
            files[path] = f or (None, "?")
    return out
