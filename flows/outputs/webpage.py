"""The month's report as one self-contained HTML page for the bureau: progress of every county
toward its targets, the city's trends, reporting completeness and the gaps, worst first.

Read from the published warehouse through a read-only connection, like the printed table
(flows/outputs/report.py), whose number formats and status words the page shares. Everything is inline
(CSS, SVG charts from flows/outputs/charts.py) and a Content-Security-Policy forbids fetching anything,
so the page reads the same offline, attached to a mail or printed.
"""
from __future__ import annotations

import datetime as dt
from html import escape
from pathlib import Path
from zoneinfo import ZoneInfo


from flows.outputs import charts, missing
from flows.config import Settings, load_settings
from flows.errors import ConfigError
from flows.outputs.report import (LEVEL_ZH, STATUS_WORDS, STATUS_ZH, fmt, latest_run, month_zh, owner_only_file, plan_line, plan_of,
                     read_published, run_line)

STATUSES = ("met", "not_met", "on_track", "at_risk")
COMPARISON_ZH = {">=": "不低于", "<=": "不高于"}
HEATMAP_MONTHS = 24
# In the heatmap a county's and the city's own reports are a row of their own under their name.
OWN_ROW = {"city": "市本级", "county": "县本级"}
# The plan's table of headline indicators orders the page, as it orders the printed table.
INDICATOR_ORDER = "headline = 0, headline, indicator_id"


# ---------------------------------------------------------------------------------------------
# Formatting shared by the charts and tables (and by the tests, which compare the page with SQL)
# ---------------------------------------------------------------------------------------------
def value_text(v: float | None, unit: str | None) -> str:
    """A value with its unit, as the printed table shows it: `2.28 名/社区`, `2,151 人`."""
    return "—" if v is None else f"{fmt(v, unit)} {unit or ''}".strip()


def target_text(comparison: str | None, target: float | None, unit: str | None) -> str:
    if target is None:
        return "—"
    return ("≤" if comparison == "<=" else "≥") + fmt(target, unit)


def gap_text(gap: float | None, unit: str | None) -> str:
    # As in the printed table: a target reached is a gap of 0, never a negative one.
    return "—" if gap is None else ("0" if gap <= 0 else fmt(gap, unit))


def chip(status: str | None) -> str:
    return f'<span class="chip s-{status or "none"}">{escape(STATUS_WORDS.get(status, "—"))}</span>'


# ---------------------------------------------------------------------------------------------
# Reading the warehouse
# ---------------------------------------------------------------------------------------------
_IV_COLUMNS = ("unit_code, unit_name, unit_level, indicator_id, indicator_name, value, unit, target, comparison, "
               "strftime(deadline, '%Y-%m') as deadline, headline, gap, projected, status")


def _rows(con, sql: str, params: list) -> list[dict]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def read_month(con, period: str) -> dict:
    """Everything the page shows, as plain rows."""
    city = con.execute("select code, name from ref.units where level = 'city' order by code limit 1").fetchone()
    if city is None:
        raise ConfigError("the warehouse has no unit of level 'city' in ref.units")
    values = _rows(con, f"""
        select {_IV_COLUMNS} from mart.indicator_values
        where period = ? and unit_level in ('city', 'county')
        order by {INDICATOR_ORDER}, unit_level <> 'city', unit_code""", [period])
    if not values:
        raise ConfigError(f"the warehouse has no figures for {period}; run `shegong run --period {period}`")
    history = _rows(con, """
        select indicator_id, period, value, target from mart.indicator_values
        where unit_code = ? and period <= ? and value is not null
        order by indicator_id, period""", [city[0], period])
    # Worst first: the gap relative to the target, so that persons, per-mille and percent compare.
    gaps = _rows(con, f"""
        select {_IV_COLUMNS} from mart.indicator_values
        where period = ? and unit_level in ('city', 'county') and status in ('not_met', 'at_risk')
        order by gap / nullif(target, 0) desc nulls last, unit_code, indicator_id""", [period])
    months = [r[0] for r in con.execute("""
        select distinct period from mart.reporting_completeness where period <= ?
        order by period desc limit ?""", [period, HEATMAP_MONTHS]).fetchall()][::-1]
    return {"city": city, "values": values, "history": history, "run": latest_run(con, period), "gaps": gaps,
            "plan": plan_of(con, period), "missing": missing.read(con, period),
            "months": months, "completeness": read_completeness(con, months)}


def read_completeness(con, months: list[str]) -> list[dict]:
    """Expected, received and on-time reports per row unit and month.

    The table has a row per expected unit; villages are many and tiny (one SG-01 row each), so
    each is counted with its township. A county's and the city's own sheets make a row of their
    own ('本级'), so that every expected report is in exactly one row."""
    if not months:
        return []
    return _rows(con, f"""
        with townships as (
            select c.descendant_code as unit_code, c.ancestor_code as township_code
            from intermediate.unit_closure as c
            join ref.units as u on u.code = c.ancestor_code and u.level = 'township'
        ),
        placed as (
            select r.*, coalesce(t.township_code, r.unit_code) as row_code
            from mart.reporting_completeness as r
            left join townships as t on t.unit_code = r.unit_code
            where r.period in ({", ".join("?" for _ in months)})
        )
        select p.row_code, u.name as row_name, u.level as row_level, p.county_code, g.name as county_name,
               p.period, count(*) as expected, count(*) filter (where p.received) as received,
               count(*) filter (where p.on_time) as on_time
        from placed as p
        join ref.units as u on u.code = p.row_code
        left join ref.units as g on g.code = p.county_code
        group by p.row_code, u.name, u.level, p.county_code, g.name, p.period
        order by p.county_code nulls first, u.level <> 'county', p.row_code, p.period""", months)


# ---------------------------------------------------------------------------------------------
# The sections
# ---------------------------------------------------------------------------------------------
def _header(data: dict, period: str, tz: ZoneInfo) -> str:
    city_code, city_name = data["city"]
    city_rows = [r for r in data["values"] if r["unit_code"] == city_code and r["status"] in STATUSES]
    counts = {s: sum(r["status"] == s for r in city_rows) for s in STATUSES}
    headline = [r for r in city_rows if r["headline"]]
    run = data["run"]
    if run:
        local = lambda t: t.replace(tzinfo=dt.UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M") if t else "—"
        zone = "北京时间" if tz.key == "Asia/Shanghai" else tz.key
        meta = (f"汇总运行 {local(run['started_at'])} 至 {local(run['finished_at'])}（{escape(zone)}）；"
                + run_line(run))
    else:
        meta = "本月没有运行记录"
    summary = (f"截至{month_zh(period)}，{escape(city_name)}市级有目标的 {len(city_rows)} 项指标中，"
               f"达标 {counts['met']} 项、未达标 {counts['not_met']} 项、进度正常 {counts['on_track']} 项、"
               f"有风险 {counts['at_risk']} 项")
    if headline:
        summary += f"；规划主要指标 {len(headline)} 项中达标 {sum(r['status'] == 'met' for r in headline)} 项"
    county_gaps = [g for g in data["gaps"] if g["unit_level"] == "county"]
    summary += f"。各县（区）未达标或有风险的指标共 {len(county_gaps)} 项"
    if data["gaps"]:
        w = data["gaps"][0]
        summary += (f"；离目标最远（按差距占目标的比例）的是{escape(w['unit_name'])}的“{escape(w['indicator_name'])}”，"
                    f"当前 {escape(value_text(w['value'], w['unit']))}，目标 "
                    f"{escape(target_text(w['comparison'], w['target'], w['unit']))}")
    summary += "。"
    cards = "".join(f'<div class="card s-{s}"><span class="n">{counts[s]}</span>'
                    f'<span class="w">{STATUS_ZH[s]}</span></div>' for s in STATUSES)
    return (f'<header><h1>{escape(city_name)}社会工作专业人才队伍建设月报 <span class="period">{month_zh(period)}</span>'
            f'</h1><p class="meta">统计月份 {period}；{meta}</p><p class="plan">{escape(plan_line(data["plan"]))}</p>'
            f'<div class="cards" aria-label="市级指标状态">{cards}</div><p class="summary">{summary}</p></header>')


def _figure(kind: str, indicator: str, svg: str, caption: str) -> str:
    return (f'<figure class="chart" data-chart="{kind}" data-indicator="{escape(indicator)}">{svg}'
            f"<figcaption>{caption}</figcaption></figure>")


def _by_indicator(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["indicator_id"], []).append(r)
    return out


def furthest_county(rows: list[dict]) -> dict | None:
    """The county furthest from its target (or, all having reached it, with the least to spare)."""
    counties = [r for r in rows if r["unit_level"] == "county" and r["gap"] is not None and r["target"]]
    # By code first, so that of two equally far the first in the registry is named.
    return max(sorted(counties, key=lambda r: r["unit_code"]), key=lambda r: r["gap"] / r["target"], default=None)


def furthest_sentence(r: dict | None) -> str:
    if r is None:
        return ""
    if r["gap"] > 0:
        return (f"距目标最远的县（区）：{escape(r['unit_name'])}（{escape(value_text(r['value'], r['unit']))}，"
                f"尚差 {escape(gap_text(r['gap'], r['unit']))}）。")
    return (f"各县（区）均已达到目标，余量最小的是{escape(r['unit_name'])}"
            f"（{escape(value_text(r['value'], r['unit']))}）。")


def _progress(data: dict) -> str:
    """Section 2: for every indicator with county targets, a bar per county (the city first)."""
    figures = []
    for indicator, rows in _by_indicator(data["values"]).items():
        counties = [r for r in rows if r["unit_level"] == "county"]
        if not any(r["target"] is not None for r in counties):
            continue
        shown = [r for r in rows if r["unit_level"] == "city" and r["target"] is not None] + counties
        first = counties[0]
        unit, comparison = first["unit"], first["comparison"]
        county_target = next(r["target"] for r in counties if r["target"] is not None)
        target_label = "目标 " + target_text(comparison, county_target, unit)
        bars = [charts.Bar(
            code=r["unit_code"], name=r["unit_name"], value=r["value"], target=r["target"], status=r["status"],
            label=value_text(r["value"], unit),
            tooltip=(f"{r['unit_name']}：{value_text(r['value'], unit)}，目标 "
                     f"{target_text(comparison, r['target'], unit)}，差距 {gap_text(r['gap'], unit)}，"
                     f"{STATUS_ZH.get(r['status'], '无状态')}"),
            emphasis=r["unit_level"] == "city") for r in shown]
        name = first["indicator_name"]
        svg = charts.progress_chart(bars, target_label, f"{name}：各县（区）当前值与目标")
        caption = (f"<b>{escape(name)}</b>（{escape(unit or '')}）：目标{COMPARISON_ZH.get(comparison, '')} "
                   f"{escape(fmt(county_target, unit))}，期限 {escape(first['deadline'] or '—')}。"
                   f"{furthest_sentence(furthest_county(rows))}")
        figures.append(_figure("progress", indicator, svg, caption))
    body = "".join(figures) or '<p class="empty">本月没有在县（区）一级设定目标的指标。</p>'
    return (f'<section id="progress"><h2>各县（区）目标进度</h2>'
            f'<p class="note">每项指标一图：条长为当前值，虚线为目标，颜色为状态（{_status_legend()}）；'
            f'第一条为全市。</p><div class="grid">{body}</div></section>')


def _status_legend() -> str:
    swatches = [f'<span class="sw s-{s}"></span>{STATUS_ZH[s]}' for s in ("met", "on_track", "at_risk", "not_met")]
    return "、".join(swatches + ['<span class="sw s-none"></span>无状态'])


def _trends(data: dict, period: str) -> str:
    """Section 3: the city's value month by month, the target, and where the trend leads."""
    city_code = data["city"][0]
    history = _by_indicator(data["history"])
    figures = []
    for r in data["values"]:
        if r["unit_code"] != city_code or r["target"] is None:
            continue
        unit, name = r["unit"], r["indicator_name"]
        if r["indicator_id"] not in history:
            svg = charts.no_data_chart(f"{name}：全市没有数据", "全市至本月没有可计算的值")
            figures.append(_figure("trend", r["indicator_id"], svg, f"<b>{escape(name)}</b>：全市至本月没有可计算的值。"))
            continue
        points = [charts.Point(h["period"], h["value"], h["target"], f"{h['period']}：{value_text(h['value'], unit)}"
                               + (f"，目标 {target_text(r['comparison'], h['target'], unit)}"
                                  if h["target"] is not None else "")) for h in history[r["indicator_id"]]]
        projection = None
        sentence = f"现为 {escape(value_text(r['value'], unit))}，{escape(STATUS_ZH.get(r['status'], '无状态'))}。"
        if r["projected"] is not None and r["status"] in ("on_track", "at_risk") and r["deadline"] \
                and r["deadline"] >= points[-1].period:
            projection = charts.Projection(r["deadline"], r["projected"], r["status"],
                                           f"预计 {fmt(r['projected'], unit)}")
            sentence = (f"按近 12 个月趋势，预计 {escape(r['deadline'])} 达到 "
                        f"{escape(value_text(r['projected'], unit))}（{escape(STATUS_ZH[r['status']])}）。")
        svg = charts.trend_chart(points, projection, r["status"], value_text(r["value"], unit),
                                 "目标 " + target_text(r["comparison"], r["target"], unit), unit or "",
                                 f"{name}：{points[0].period} 至 {period} 全市逐月值")
        span = points[0].period if len(points) == 1 else f"{points[0].period} 至 {points[-1].period}"
        caption = (f"<b>{escape(name)}</b>（{escape(unit or '')}）：全市 {span}，{len(points)} 个月；目标"
                   f"{COMPARISON_ZH.get(r['comparison'], '')} {escape(fmt(r['target'], unit))}，"
                   f"期限 {escape(r['deadline'] or '—')}；{sentence}")
        figures.append(_figure("trend", r["indicator_id"], svg, caption))
    body = "".join(figures) or '<p class="empty">本月没有在市一级设定目标的指标。</p>'
    return (f'<section id="trends"><h2>市级指标逐月走势</h2>'
            f'<p class="note">实线为全市逐月值，虚线为目标，点线为按近 12 个月趋势推算到期限月份的预计值'
            f'（仅未到期的指标）；最后一点的颜色为本月状态。</p><div class="grid">{body}</div></section>')


def _completeness(data: dict, city_name: str) -> str:
    """Section 4: reporting completeness, units by month."""
    rows, cells = [], {}
    for c in data["completeness"]:
        if not rows or rows[-1].code != c["row_code"]:
            group = city_name if c["county_code"] is None else c["county_name"]
            rows.append(charts.HeatRow(c["row_code"], OWN_ROW.get(c["row_level"], c["row_name"]), group))
        cells[(c["row_code"], c["period"])] = charts.HeatCell(c["expected"], c["received"], c["on_time"])
    if not rows:
        return '<section id="completeness"><h2>报送完整性</h2><p class="empty">没有报送记录。</p></section>'
    months = data["months"]

    def title(row, month, cell):
        where = f"{row.group} {row.name}" if row.group != row.name else row.name
        if cell is None or not cell.expected:
            return f"{where} {month}：无应报"
        return (f"{where} {month}：应报 {cell.expected} 份，已报 {cell.received} 份"
                f"（{cell.received * 100 / cell.expected:.1f}%），按时 {cell.on_time} 份")

    svg = charts.heatmap(rows, months, cells, title, f"报送完整性：{len(rows)} 个单位 × {len(months)} 个月")
    span = months[0] if len(months) == 1 else f"{months[0]} 至 {months[-1]}"
    caption = (f"各乡镇（街道）及其所辖村（社区）、各县（区）本级和市本级应报报表中已报送的比例，{span}"
               f"（颜色越深报送越全；灰色为该月无应报）。鼠标停在格子上可看应报、已报、按时份数。")
    fig = _figure("heatmap", "reporting_completeness", svg, caption)
    return f'<section id="completeness"><h2>报送完整性</h2><div class="wide">{fig}</div></section>'


def _gaps(data: dict) -> str:
    """Section 5: every unit and indicator not met or at risk, furthest from its target first."""
    head = "".join(f"<th>{h}</th>" for h in ("单位", "指标", "当前值", "目标", "差距", "期限", "状态"))
    body = []
    for g in data["gaps"]:
        rel = g["gap"] / g["target"] if g["target"] else None
        bar = (f'<span class="rel" title="差距占目标 {rel:.1%}"><span style="width:{min(max(rel, 0), 1) * 100:.1f}%">'
               f'</span></span>') if rel is not None else ""
        body.append(
            f'<tr data-unit="{escape(g["unit_code"])}" data-indicator="{escape(g["indicator_id"])}">'
            f'<td class="unit">{escape(g["unit_name"])}<small>{escape(LEVEL_ZH[g["unit_level"]])}</small></td>'
            f'<td class="ind">{escape(g["indicator_name"])}</td>'
            f'<td class="num value">{escape(value_text(g["value"], g["unit"]))}</td>'
            f'<td class="num target">{escape(target_text(g["comparison"], g["target"], g["unit"]))}</td>'
            f'<td class="num gap"><span class="g">{escape(gap_text(g["gap"], g["unit"]))}</span>{bar}</td>'
            f'<td class="deadline">{escape(g["deadline"] or "—")}</td><td>{chip(g["status"])}</td></tr>')
    table = (f'<div class="scroll"><table class="gaps"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
             '</table></div>'
             if body else '<p class="empty">本月市、县（区）两级没有未达标或有风险的指标。</p>')

    # The question the bureau asks first: for each headline indicator, which county is furthest.
    furthest = []
    for indicator, rows in _by_indicator(data["values"]).items():
        r = furthest_county(rows)
        if r is None or not r["headline"]:
            continue
        furthest.append(
            f'<tr data-indicator="{escape(indicator)}" data-unit="{escape(r["unit_code"])}">'
            f'<td class="ind">{escape(r["indicator_name"])}</td><td class="unit">{escape(r["unit_name"])}</td>'
            f'<td class="num value">{escape(value_text(r["value"], r["unit"]))}</td>'
            f'<td class="num target">{escape(target_text(r["comparison"], r["target"], r["unit"]))}</td>'
            f'<td class="num gap">{escape(gap_text(r["gap"], r["unit"]))}</td><td>{chip(r["status"])}</td></tr>')
    extra = ""
    if furthest:
        extra = ('<h3>主要指标：各县（区）中距目标最远的</h3><p class="note">每项主要指标中差距占目标比例最大的县（区）；'
                 '都已达标时为余量最小的。</p><div class="scroll"><table class="furthest"><thead><tr><th>指标</th><th>县（区）</th>'
                 '<th>当前值</th><th>目标</th><th>差距</th><th>状态</th></tr></thead>'
                 f'<tbody>{"".join(furthest)}</tbody></table></div>')
    return (f'<section id="gaps"><h2>差距：从最远的开始</h2><p class="note">市、县（区）两级未达标或有风险的指标，'
            f'按差距占目标的比例从大到小排列（条长为这一比例）。</p>{table}{extra}</section>')


def _missing(data: dict, period: str, settings: Settings) -> str:
    """Section 6: who still owes what (催报): counts by county, then every entry."""
    rows = data["missing"]
    if not rows:
        return ('<section id="missing"><h2>未报送清单（催报）</h2><p class="empty">本月应报报表均已收到。</p></section>')
    areas: dict[str, dict] = {}
    for r in rows:
        a = areas.setdefault(r["county_name"] or missing.OWN, {s: 0 for s in missing.STATUSES_ZH} | {"long": 0})
        a[r["status"]] += 1
        a["long"] += r["months_in_row"] >= 3
    head = "".join(f"<th>{h}</th>" for h in ["县（区）", *missing.STATUSES_ZH.values(), "合计", "连续 3 个月及以上"])
    summary = "".join(
        f'<tr data-area="{escape(name)}"><td class="unit">{escape(name)}</td>'
        + "".join(f'<td class="num">{a[s]}</td>' for s in missing.STATUSES_ZH)
        + f'<td class="num">{sum(a[s] for s in missing.STATUSES_ZH)}</td><td class="num">{a["long"]}</td></tr>'
        for name, a in areas.items())
    cols = ["县（区）", "乡镇（街道）", "单位", "报表", "情况", "连续月数", "最近报送", "说明"]
    body = "".join(
        f'<tr data-unit="{escape(r["unit_code"])}" data-form="{escape(r["form"])}" data-status="{escape(r["status"])}">'
        f'<td>{escape(r["county_name"] or missing.OWN)}</td><td>{escape(r["township_name"] or "—")}</td>'
        f'<td class="unit">{escape(r["unit_name"])}<small>{escape(r["unit_code"])}</small></td>'
        f'<td>{escape(r["form"])}</td><td>{escape(r["status_zh"])}</td><td class="num">{r["months_in_row"]}</td>'
        f'<td>{escape(r["last_received"] or "—")}</td><td>{escape(r["detail_zh"])}</td></tr>' for r in rows)
    return (f'<section id="missing"><h2>未报送清单（催报）</h2>'
            f'<p class="note">报送期限 {escape(missing.deadline_zh(period, settings))}；{escape(missing.counts_line(rows))}。'
            f'各县（区）的清单另见 催报/ 文件夹中的工作簿。</p>'
            f'<div class="scroll"><table class="missing-summary"><thead><tr>{head}</tr></thead>'
            f'<tbody>{summary}</tbody></table></div>'
            f'<details><summary>全部 {len(rows)} 项</summary><div class="scroll"><table class="missing">'
            f'<thead><tr>{"".join(f"<th>{h}</th>" for h in cols)}</tr></thead><tbody>{body}</tbody></table></div>'
            f'</details></section>')


def _footer(db: Path) -> str:
    return ('<footer><h2>说明</h2><dl>'
            f'<dt>{chip("met")}</dt><dd>已到期限月份，当前值达到目标。</dd>'
            f'<dt>{chip("not_met")}</dt><dd>已到期限月份，当前值未达到目标。</dd>'
            f'<dt>{chip("on_track")}</dt><dd>未到期限：按近 12 个月趋势（至少 3 个月）推算的到期值能达到目标，'
            '或当前值已达到且没有下降。</dd>'
            f'<dt>{chip("at_risk")}</dt><dd>未到期限：按趋势推算到期时达不到目标（不足 3 个月时按当前值判断）。</dd>'
            '</dl><p>差距 = 目标 − 当前值（“不高于”的指标为当前值 − 目标），正数为尚差；已达到目标的差距记为 0。'
            '“—”表示该层级无目标或无数据。县（区）的值为本县（区）全部下属单位汇总；平均数按登记册中的全部社区计算。</p>'
            f'<p class="source">数据来源：{escape(db.name)}（mart.indicator_values、mart.reporting_completeness、'
            'ingest.runs、analysis.missing），本页由 shegong 生成，不含任何外部资源。</p></footer>')


CSS = """
:root { --met: #2e7d32; --on_track: #1565c0; --at_risk: #ef6c00; --not_met: #c62828; --none: #9e9e9e; }
* { box-sizing: border-box; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0; background: #f4f5f7; color: #212121; line-height: 1.6; font-size: 15px;
       font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC", sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 20px 24px 32px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; line-height: 1.3; }
h1 .period { color: #1565c0; white-space: nowrap; }
h2 { font-size: 20px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #1565c0; }
h3 { font-size: 16px; margin: 24px 0 4px; }
nav { margin: 12px 0 0; font-size: 14px; }
nav a { color: #1565c0; margin-right: 16px; text-decoration: none; }
.meta, .note, .source { color: #616161; font-size: 13px; margin: 4px 0 8px; }
.plan { font-size: 14px; margin: 4px 0; }
.summary { font-size: 15px; margin: 8px 0; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0; }
.card { flex: 1 1 120px; border-radius: 6px; padding: 6px 12px; color: #fff; display: flex;
        align-items: baseline; gap: 8px; }
.card .n { font-size: 28px; font-weight: bold; }
.card.s-met { background: var(--met); } .card.s-not_met { background: var(--not_met); }
.card.s-on_track { background: var(--on_track); } .card.s-at_risk { background: var(--at_risk); }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 500px), 1fr)); gap: 14px; }
figure.chart { margin: 0; padding: 10px 10px 6px; border: 1px solid #e0e0e0; border-radius: 6px;
               break-inside: avoid; page-break-inside: avoid; background: #fff; }
figure.chart svg { display: block; max-width: 100%; height: auto; margin: 0 auto; overflow: visible; }
figcaption { font-size: 13px; color: #424242; margin-top: 6px; }
.wide figure.chart { overflow-x: auto; } .wide figure.chart svg { margin: 0; }
.sw { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin: 0 3px 0 2px; }
.sw.s-met, .chip.s-met { background: var(--met); } .sw.s-on_track, .chip.s-on_track { background: var(--on_track); }
.sw.s-at_risk, .chip.s-at_risk { background: var(--at_risk); }
.sw.s-not_met, .chip.s-not_met { background: var(--not_met); }
.sw.s-none, .chip.s-none, .chip.s-no_plan { background: var(--none); }
.chip { display: inline-block; color: #fff; border-radius: 10px; padding: 0 9px; font-size: 13px;
        white-space: nowrap; line-height: 1.6; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { padding: 5px 8px; border-bottom: 1px solid #e0e0e0; text-align: left; vertical-align: middle; }
th { background: #f5f5f5; font-weight: bold; white-space: nowrap; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.unit { white-space: nowrap; } td.unit small { color: #757575; margin-left: 4px; }
td.gap .g { display: inline-block; min-width: 3.5em; }
.rel { display: inline-block; width: 60px; height: 8px; background: #eeeeee; margin-left: 6px; vertical-align: middle; }
.rel span { display: block; height: 100%; background: #c62828; }
tbody tr:nth-child(even) { background: #fafafa; }
footer { margin-top: 32px; font-size: 13px; color: #424242; }
footer dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 12px; margin: 8px 0; }
footer dt, footer dd { margin: 0; }
.empty { color: #757575; }
td.ind { min-width: 9em; }
details summary { cursor: pointer; margin: 8px 0; color: #1565c0; }
@media (max-width: 640px) { main { padding: 12px; } h1 { font-size: 21px; } }
@media print {
  body { background: #fff; font-size: 12px; } main { max-width: none; padding: 0; }
  nav { display: none; } h2 { break-after: avoid; page-break-after: avoid; }
  .grid { grid-template-columns: 1fr 1fr; } tr { break-inside: avoid; }
  @page { size: A4; margin: 14mm 12mm; }
}
"""


CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def render_page(db: Path, period: str, settings: Settings | None = None) -> str:
    """The page's HTML, read through a read-only connection that is closed before drawing. A run
    passes its own settings; `shegong report` reads them."""
    settings = settings or load_settings()
    data = read_published(db, period, read_month)
    tz = ZoneInfo(settings.timezone)
    city_name = data["city"][1]
    title = f"{city_name}社会工作专业人才队伍建设月报 {month_zh(period)}"
    nav = ('<nav><a href="#progress">各县（区）目标进度</a><a href="#trends">市级逐月走势</a>'
           '<a href="#completeness">报送完整性</a><a href="#gaps">差距</a><a href="#missing">未报送清单</a></nav>')
    # Written as well-formed XML under the doctype (every element closed, attributes quoted), so
    # that the tests read it with the standard library.
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8"/>'
        # Nothing may be fetched: inline styles and data: images only (there are none of the latter).
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}"/>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>'
        f'<title>{escape(title)}</title><style>{CSS}</style></head>\n'
        f'<body><main>{_header(data, period, tz)}{nav}\n{_progress(data)}\n{_trends(data, period)}\n'
        f'{_completeness(data, city_name)}\n{_gaps(data)}\n{_missing(data, period, settings)}\n{_footer(db)}</main></body></html>\n')


def write_page(db: Path, period: str, out_dir: Path, settings: Settings | None = None) -> Path:
    """Write out_dir/report-<period>.html from the published warehouse; return its path."""
    page = render_page(Path(db), period, settings)
    path = Path(out_dir) / f"report-{period}.html"
    with owner_only_file(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
