"""The month's HTML page: its numbers are the warehouse's, it has a chart for everything it should,
and a browser with no network draws every chart without asking for anything.

Three sample months (2025-10..2025-12) are rolled up once for the module; the pages of 2025-10
(one month of history), 2025-11 (before the deadline: on track / at risk) and 2025-12 (the
deadline: met / not met) are written from that one warehouse.
"""
from __future__ import annotations

import io
import re
import shutil
import stat
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import pytest

from conftest import PERIOD
from flows.outputs.charts import NO_STATUS, STATUS_COLOURS, share_colour
from flows.config import load_settings
from flows.errors import ConfigError
from flows.outputs.report import STATUS_ZH, fmt
from flows.outputs.webpage import write_page

MONTHS = ("2025-10", "2025-11", "2025-12")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    from flows.monthly import monthly_rollup
    from flows.tools.sample import generate_sample
    s = load_settings()
    inbox = tmp_path_factory.mktemp("web-inbox")
    generate_sample(inbox, s.units_csv, s.population_csv, start=MONTHS[0], end=MONTHS[-1])
    db = tmp_path_factory.mktemp("web-wh") / "warehouse.duckdb"
    for month in MONTHS:
        monthly_rollup(period=month, inbox=str(inbox), db=str(db))
    return db


@pytest.fixture(scope="module")
def pages(warehouse, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("web-out") / "reports"
    return {m: write_page(warehouse, m, out / m) for m in MONTHS}


def sql(db: Path, query: str, params=()) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(query, list(params)).fetchall()


def parse(path: Path) -> ET.Element:
    """The page is written as well-formed XML under its doctype, so the standard library reads it."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>\n")
    return ET.fromstring(text.split("\n", 1)[1])


def text(el: ET.Element) -> str:
    return "".join(el.itertext()).strip()


def figures(root: ET.Element, kind: str) -> dict[str, ET.Element]:
    found = [f for f in root.iter("figure") if f.get("data-chart") == kind]
    by_id = {f.get("data-indicator"): f for f in found}
    assert len(by_id) == len(found), f"two {kind} charts for one indicator"
    return by_id


def shown(v, unit) -> str:
    return f"{fmt(v, unit)} {unit or ''}".strip()


def county_target_indicators(db: Path, period: str) -> list[str]:
    return [r[0] for r in sql(db, """
        select distinct indicator_id from mart.indicator_values
        where period = ? and unit_level = 'county' and target is not null order by 1""", [period])]


def city_target_indicators(db: Path, period: str) -> list[str]:
    return [r[0] for r in sql(db, """
        select indicator_id from mart.indicator_values
        where period = ? and unit_level = 'city' and target is not null order by 1""", [period])]


# -- the file -------------------------------------------------------------------------------------
def test_page_is_written_owner_only_with_nothing_left_beside_it(pages, warehouse):
    for month, path in pages.items():
        assert path.name == f"report-{month}.html"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert [p.name for p in path.parent.iterdir()] == [path.name]
    city = sql(warehouse, "select name from ref.units where level = 'city'")[0][0]
    root = parse(pages["2025-12"])
    assert text(root.find("head/title")) == f"{city}社会工作专业人才队伍建设月报 2025年12月"
    assert text(root.find(".//h1")).startswith(f"{city}社会工作专业人才队伍建设月报")


def test_page_loads_nothing_from_anywhere(pages):
    raw = pages["2025-12"].read_text(encoding="utf-8")
    root = parse(pages["2025-12"])
    csp = [m.get("content") for m in root.iter("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp == ["default-src 'none'; style-src 'unsafe-inline'; img-src data:"]
    for tag in ("script", "link", "img", "iframe", "object", "embed"):
        assert not list(root.iter(tag)), f"<{tag}> in the page"
    assert not re.search(r"https?:|//[a-z]|@import|@font-face", raw)
    assert re.findall(r"url\(([^)]*)\)", raw) == ["#share-gradient"]  # an in-page SVG gradient only
    for el in root.iter():
        assert not {"src", "href"} & set(el.attrib) or el.get("href", "").startswith("#")


def test_refuses_a_month_the_warehouse_does_not_have(warehouse, tmp_path):
    with pytest.raises(ConfigError, match="no figures for 2025-09"):
        write_page(warehouse, "2025-09", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="not a month"):
        write_page(warehouse, "2025-13", tmp_path / "out")


def test_header_counts_the_city_statuses_and_gives_the_run(pages, warehouse):
    for month, path in pages.items():
        root = parse(path)
        counts = dict(sql(warehouse, """
            select status, count(*) from mart.indicator_values
            where period = ? and unit_level = 'city' and status is not null group by status""", [month]))
        cards = {c.get("class").split()[1][2:]: int(text(c.find("span")))
                 for c in root.iter("div") if (c.get("class") or "").startswith("card ")}
        assert cards == {s: counts.get(s, 0) for s in STATUS_ZH}
        summary = text(next(p for p in root.iter("p") if p.get("class") == "summary"))
        assert (f"有目标的 {sum(counts.values())} 项指标中，达标 {counts.get('met', 0)} 项、未达标 "
                f"{counts.get('not_met', 0)} 项、进度正常 {counts.get('on_track', 0)} 项、有风险 "
                f"{counts.get('at_risk', 0)} 项") in summary
        files, rejected, rows, rows_rejected = sql(warehouse, """
            select files, files_rejected, rows_read, rows_rejected from ingest.runs where period = ?
            order by finished_at desc limit 1""", [month])[0]
        meta = text(next(p for p in root.iter("p") if p.get("class") == "meta"))
        assert (f"本月文件 {files:,} 个（无法读取 {rejected:,} 个），数据行 {rows:,} 行"
                f"（未通过校验 {rows_rejected:,} 行）") in meta


# -- section 2: progress by county ------------------------------------------------------------------
def test_every_indicator_with_a_county_target_has_a_bar_per_county(pages, warehouse):
    counties = [r[0] for r in sql(warehouse, "select code from ref.units where level = 'county' order by code")]
    for month, path in pages.items():
        charts = figures(parse(path), "progress")
        expected = county_target_indicators(warehouse, month)
        assert expected and sorted(charts) == expected
        for indicator in expected:
            rows = sql(warehouse, """
                select unit_code, unit_level, value, unit, target, status from mart.indicator_values
                where period = ? and indicator_id = ? and unit_level in ('city', 'county')
                  and (unit_level = 'county' or target is not null)
                order by unit_level <> 'city', unit_code""", [month, indicator])
            bars = [r for r in charts[indicator].iter("rect") if r.get("class") == "bar"]
            assert [b.get("data-unit") for b in bars] == [r[0] for r in rows]
            assert sorted(b.get("data-unit") for b in bars if b.get("data-unit") in counties) == counties
            labels = {t.get("data-unit"): text(t) for t in charts[indicator].iter("text") if t.get("class") == "value"}
            for (code, _, value, unit, _, status), bar in zip(rows, bars):
                assert labels[code] == (shown(value, unit) if value is not None else "—")
                assert bar.get("fill") == STATUS_COLOURS.get(status, NO_STATUS)
                assert bar.get("data-status") == (status or "")
            assert len([ln for ln in charts[indicator].iter("line") if ln.get("class") == "target"]) >= 1


def test_progress_captions_name_the_county_furthest_from_the_urban_staffing_target(pages, warehouse):
    for month, path in pages.items():
        root = parse(path)
        (name, value, unit, gap), = sql(warehouse, """
            select unit_name, value, unit, gap from mart.indicator_values
            where period = ? and unit_level = 'county' and indicator_id = 'urban_community_talent_avg'
            order by gap / target desc, unit_code limit 1""", [month])
        caption = text(figures(root, "progress")["urban_community_talent_avg"].find("figcaption"))
        assert name in caption and shown(value, unit) in caption
        # ...and so does the table of the headline indicators' furthest counties under the gaps.
        furthest = next(t for t in root.iter("table") if t.get("class") == "furthest")
        row = next(r for r in furthest.iter("tr") if r.get("data-indicator") == "urban_community_talent_avg")
        cells = [text(td) for td in row.findall("td")]
        assert cells[1:3] == [name, shown(value, unit)] and cells[4] == ("0" if gap <= 0 else fmt(gap, unit))


# -- section 3: trends ------------------------------------------------------------------------------
def test_every_city_target_has_a_trend_with_a_point_per_month(pages, warehouse):
    city = sql(warehouse, "select code from ref.units where level = 'city'")[0][0]
    for month, path in pages.items():
        charts = figures(parse(path), "trend")
        expected = city_target_indicators(warehouse, month)
        assert expected and sorted(charts) == expected
        for indicator in expected:
            periods = [r[0] for r in sql(warehouse, """
                select period from mart.indicator_values where unit_code = ? and indicator_id = ?
                  and period <= ? and value is not null order by period""", [city, indicator, month])]
            points = [c for c in charts[indicator].iter("circle") if c.get("class") == "point"]
            assert [p.get("data-period") for p in points] == periods
            value, unit, status, projected = sql(warehouse, """
                select value, unit, status, projected from mart.indicator_values
                where period = ? and unit_code = ? and indicator_id = ?""", [month, city, indicator])[0]
            assert points[-1].get("fill") == STATUS_COLOURS.get(status, NO_STATUS)
            label = next(t for t in charts[indicator].iter("text") if t.get("class") == "value")
            assert text(label) == shown(value, unit)
            lines = {el.get("class") for el in charts[indicator].iter() if el.tag in ("line", "polyline")}
            assert "target" in lines
            assert ("actual" in lines) == (len(periods) > 1)
            assert ("projection" in lines) == (status in ("on_track", "at_risk") and projected is not None)
    # One month of history is one dot; the months of the x axis run to the current month.
    one = figures(parse(pages["2025-10"]), "trend")["talent_total"]
    assert [c.get("data-period") for c in one.iter("circle") if c.get("class") == "point"] == ["2025-10"]


# -- section 4: completeness heatmap ----------------------------------------------------------------
def test_heatmap_has_a_cell_per_unit_and_month_with_the_exact_counts(pages, warehouse):
    units = sql(warehouse, "select level, count(*) from ref.units where level <> 'village' group by level")
    rows = sum(n for _, n in units)  # every township (with its villages), every county's and the city's own
    for i, (month, path) in enumerate(pages.items()):
        heat = figures(parse(path), "heatmap")["reporting_completeness"]
        cells = [r for r in heat.iter("rect") if r.get("class") == "cell"]
        months = list(MONTHS[:i + 1])
        assert len(cells) == rows * len(months)
        assert sorted({c.get("data-period") for c in cells}) == months
        assert len({c.get("data-unit") for c in cells}) == rows
    # A township's cell counts its own reports and its villages'.
    township, name = sql(warehouse, "select code, name from ref.units where level = 'township' order by code")[0]
    expected, received, on_time = sql(warehouse, """
        select count(*), count(*) filter (where received), count(*) filter (where on_time)
        from mart.reporting_completeness r
        join intermediate.unit_closure c on c.descendant_code = r.unit_code and c.ancestor_code = ?
        where r.period = '2025-12'""", [township])[0]
    heat = figures(parse(pages["2025-12"]), "heatmap")["reporting_completeness"]
    cell = next(r for r in heat.iter("rect") if r.get("data-unit") == township and r.get("data-period") == "2025-12")
    assert text(cell).endswith(f"{name} 2025-12：应报 {expected} 份，已报 {received} 份"
                               f"（{received * 100 / expected:.1f}%），按时 {on_time} 份")
    assert cell.get("fill") == share_colour(received / expected)


def test_heatmap_of_a_month_with_missing_reports_shows_them(month_db, tmp_path):
    path = write_page(month_db, PERIOD, tmp_path)
    heat = figures(parse(path), "heatmap")["reporting_completeness"]
    shares = sql(month_db, """
        select count(*) filter (where received) * 1.0 / count(*) from mart.reporting_completeness
        where period = ? and unit_level in ('county', 'city') group by unit_code""", [PERIOD])
    fills = {r.get("fill") for r in heat.iter("rect") if r.get("class") == "cell"}
    assert {share_colour(float(s)) for (s,) in shares} <= fills
    assert len(fills) > 2  # the fixture month is far from complete: several shades, not one


# -- section 5: gaps ---------------------------------------------------------------------------------
def test_gaps_table_lists_every_shortfall_worst_first_with_the_warehouse_figures(pages, warehouse):
    listed = {}
    for month, path in pages.items():
        expected = sql(warehouse, """
            select unit_code, indicator_id, unit_name, indicator_name, value, unit, target, comparison, gap,
                   strftime(deadline, '%Y-%m'), status
            from mart.indicator_values
            where period = ? and unit_level in ('city', 'county') and status in ('not_met', 'at_risk')
            order by gap / target desc, unit_code, indicator_id""", [month])
        table = next(t for t in parse(path).iter("table") if t.get("class") == "gaps")
        rows = table.findall("tbody/tr")
        assert [(r.get("data-unit"), r.get("data-indicator")) for r in rows] == [e[:2] for e in expected]
        for r, (_, _, unit_name, name, value, unit, target, comparison, gap, deadline, status) in zip(rows, expected):
            cells = r.findall("td")
            assert cells[0].text == unit_name
            assert text(cells[1]) == name
            assert text(cells[2]) == shown(value, unit)
            assert text(cells[3]) == ("≤" if comparison == "<=" else "≥") + fmt(target, unit)
            assert text(cells[4].find("span")) == ("0" if gap <= 0 else fmt(gap, unit))
            assert text(cells[5]) == deadline
            assert text(cells[6]) == STATUS_ZH[status]
        heads = [h.text for h in table.findall("thead/tr/th")]
        assert heads == ["单位", "指标", "当前值", "目标", "差距", "期限", "状态"]
        listed[month] = len(rows)
    # Both kinds of shortfall were there to list (the sample misses some targets on purpose).
    assert listed["2025-11"] > 5 and listed["2025-12"] > 5


def test_texts_from_the_warehouse_are_escaped(warehouse, tmp_path):
    db = tmp_path / "w.duckdb"
    shutil.copy(warehouse, db)
    evil = '东区<script>alert("x")</script>&'
    with duckdb.connect(str(db)) as con:
        con.execute("update ref.units set name = ? where code = '510402000000'", [evil])
        con.execute("update mart.indicator_values set unit_name = ? where unit_code = '510402000000'", [evil])
        con.execute("update mart.reporting_completeness set unit_name = ? where unit_code = '510402000000'", [evil])
    root = parse(write_page(db, "2025-12", tmp_path / "out"))
    assert not list(root.iter("script"))
    assert any(evil in text(el) for el in root.iter("td"))


# -- a real browser, offline ---------------------------------------------------------------------------
def _colour_present(img, hex_colour: str) -> bool:
    want = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    colours = img.getcolors(maxcolors=1 << 24)
    return any(n >= 20 and max(abs(a - b) for a, b in zip(c, want)) <= 3 for n, c in colours)


def only(url: str, attempted: list):
    """A route handler letting the page's own file through and recording and refusing the rest."""
    def handle(route):
        if route.request.url == url:
            route.continue_()
        else:
            attempted.append(route.request.url)
            route.abort()
    return handle


def test_browser_draws_every_chart_without_a_network(pages, warehouse, tmp_path):
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package before the tests "
                    f"(apt-get install chromium)")
    fonts = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True).stdout
    assert fonts.strip(), ("no Chinese font, the charts would show boxes: `make test` installs Debian's "
                           "fonts-noto-cjk (apt-get install fonts-noto-cjk)")
    from PIL import Image
    from playwright.sync_api import sync_playwright

    attempted, problems = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
            for month in ("2025-11", "2025-12"):
                url = pages[month].resolve().as_uri()
                page = context.new_page()

                page.route("**/*", only(url, attempted))
                page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.goto(url)

                figs = page.locator("figure.chart")
                expected = {"progress": len(county_target_indicators(warehouse, month)),
                            "trend": len(city_target_indicators(warehouse, month)), "heatmap": 1}
                assert figs.count() == sum(expected.values())
                for kind, n in expected.items():
                    assert page.locator(f'figure.chart[data-chart="{kind}"]').count() == n
                statuses = dict(sql(warehouse, """
                    select indicator_id, list(distinct coalesce(status, 'none')) from mart.indicator_values
                    where period = ? and unit_level in ('city', 'county')
                      and (unit_level = 'county' or target is not null) group by indicator_id""", [month]))
                for i in range(figs.count()):
                    fig = figs.nth(i)
                    svg = fig.locator("svg")
                    assert svg.is_visible()
                    box = svg.bounding_box()
                    assert box and box["width"] > 100 and box["height"] > 50
                    assert svg.get_attribute("role") == "img" and svg.get_attribute("aria-label")
                    assert svg.locator("title").count() >= 1 and fig.locator("figcaption").inner_text().strip()
                    img = Image.open(io.BytesIO(svg.screenshot())).convert("RGB")
                    inked = sum(img.convert("L").histogram()[:245])
                    assert inked > 0.02 * img.width * img.height, f"{fig.get_attribute('data-indicator')} looks blank"
                    if fig.get_attribute("data-chart") == "progress":
                        for s in statuses[fig.get_attribute("data-indicator")]:
                            assert _colour_present(img, STATUS_COLOURS.get(s, NO_STATUS)), \
                                f"{s} bar colour missing from {fig.get_attribute('data-indicator')}"
                shot = tmp_path / f"report-{month}.png"
                page.screenshot(path=str(shot), full_page=True)
                assert Image.open(shot).height > 3000
                page.close()
        finally:
            browser.close()
    assert attempted == [], f"the page tried to load {attempted}"
    assert problems == []
