"""The month's report as an xlsx workbook for the bureau, in Chinese: the plan's indicators for
the city and each county with target, value, gap and a coloured status; the same as a county
comparison; completeness by county; the files rejected and their senders.

Everything is read from the published warehouse through its analysis views (read-only), so the
workbook shows exactly what analysts query. Values are written rounded to DECIMALS places, not to
what is displayed: Excel keeps 15 significant digits, so a cell holds exactly round(value, 10) of
the warehouse, while a number format shows it the way the plan writes it.
"""
from __future__ import annotations

import io
from pathlib import Path

import xlsxwriter

from flows.outputs import missing
from flows.outputs.feedback import MapBatches
from flows.errors import ConfigError
from flows.config import Settings
from flows.outputs.report import LEVEL_ZH, STATUS_WORDS, latest_run, month_zh, owner_only_file, plan_line, plan_of, read_published, run_line

# Status fills, shared with the HTML page's colours: green met, blue on track, orange at risk, red missed.
STATUS_FILL = {"met": "#C8E6C9", "on_track": "#BBDEFB", "at_risk": "#FFE0B2", "not_met": "#FFCDD2"}
NO_STATUS_FILL = "#EEEEEE"
DECIMALS = 10
SHEETS = ("全市及各县区指标", "县区对比", "报送情况", "未通过文件", "未报送清单", "说明")
REMINDERS = "催报"  # the folder of the workbooks per county, beside the report


def report_dir(db: Path, period: str) -> Path:
    return Path(db).parent / "reports" / period


def write_workbook(db: Path, period: str, out_dir: Path, settings: Settings | None = None,
                   map_batches: MapBatches | None = None, pool_up: bool = False) -> Path:
    """Write out_dir/report-<period>.xlsx from the published warehouse; return its path.
    `map_batches(fn, batches)`: where a large report is made (the run's read pool); `pool_up`: it
    is up already, so the report is made there whatever its size."""
    data = read_published(db, period, _gather)
    if not data["indicators"]:
        raise ConfigError(f"the warehouse has no figures for {period}; run `shegong run --period {period}`")
    path = Path(out_dir) / f"report-{period}.xlsx"
    if map_batches is None or (sum(len(v) for v in data.values() if isinstance(v, list)) < POOL_MIN_ROWS
                               and not pool_up):
        body = _book(period, data, settings)
    else:
        body = map_batches(_book_of, [(period, data, settings)])[0]
    with owner_only_file(path) as tmp:
        tmp.write_bytes(body)
    return path


# A report of this many rows or more (a province's: 1.5 s of the run's one core) is made on the
# read pool's processes, while this one writes the month's other outputs (monthly.roll_up); any
# report is, when the pool is up already.
POOL_MIN_ROWS = 2000


def _book_of(args: tuple) -> bytes:
    return _book(*args)


def _book(period: str, data: dict, settings: Settings | None) -> bytes:
    """The report's bytes from what _gather read."""
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False})
    try:
        fmt = _formats(book)
        _indicator_sheet(book, fmt, period, data)
        _comparison_sheet(book, fmt, period, data)
        _completeness_sheet(book, fmt, period, data)
        _rejected_sheet(book, fmt, period, data)
        _missing_sheet(book.add_worksheet(SHEETS[4]), fmt, period, data["city"][1], data["missing"], settings)
        _notes_sheet(book, fmt, period, data)
    finally:
        book.close()
    return buf.getvalue()


def _gather(con, period: str) -> dict:
    city = con.execute("select code, name from ref.units where level = 'city' order by code limit 1").fetchone()
    indicators = con.execute("""
        select unit_code, unit_name, unit_level, headline, indicator_id, indicator_name, value, unit, target,
               comparison, gap, gap_ratio, deadline, projected, status, share_meeting, units_carried
        from analysis.indicators
        where period = ? and unit_level in ('city', 'county')
        order by unit_level <> 'city', unit_code, headline = 0, headline, target is null, indicator_id""",
        [period]).fetchall()
    completeness = con.execute("""
        select area_code, area_name, form, expected, received, on_time, received_pct, on_time_pct,
               data_rows, rows_rejected
        from analysis.completeness where period = ? order by area_code, form""", [period]).fetchall()
    rejected = con.execute("""
        select f.path, f.sender_code, u.name, f.format, f.received_at, f.reason_zh
        from ingest.files as f left join ref.units as u on u.code = f.sender_code
        where f.period = ? and f.status = 'rejected' order by f.path""", [period]).fetchall()
    rows_rejected = con.execute("""
        select f.sender_code, u.name, s.path, s.sheet, s.form, s.rows_rejected
        from ingest.sheets as s
        join ingest.files as f on f.period = s.period and f.path = s.path
        left join ref.units as u on u.code = f.sender_code
        where s.period = ? and s.rows_rejected > 0 order by f.sender_code, s.path, s.sheet""", [period]).fetchall()
    run = latest_run(con, period)
    return {"city": city, "indicators": indicators, "completeness": completeness, "rejected": rejected,
            "rows_rejected": rows_rejected, "run": run, "plan": plan_of(con, period),
            "missing": missing.read(con, period)}


def _formats(book) -> dict:
    base = {"font_name": "宋体", "font_size": 10, "valign": "vcenter"}
    f = {
        "title": book.add_format(base | {"bold": True, "font_size": 14}),
        "note": book.add_format(base | {"italic": True, "font_color": "#555555"}),
        "head": book.add_format(base | {"bold": True, "bg_color": "#DDE3EA", "border": 1, "text_wrap": True,
                                        "align": "center"}),
        "text": book.add_format(base | {"border": 1}),
        "wrap": book.add_format(base | {"border": 1, "text_wrap": True}),
        "int": book.add_format(base | {"border": 1, "num_format": "#,##0"}),
        "num": book.add_format(base | {"border": 1, "num_format": "#,##0.00"}),
        "pct1": book.add_format(base | {"border": 1, "num_format": "0.0"}),
        "ratio": book.add_format(base | {"border": 1, "num_format": "0.0%"}),
        "time": book.add_format(base | {"border": 1, "num_format": "yyyy-mm-dd hh:mm"}),
    }
    for status, colour in STATUS_FILL.items():
        f[f"status:{status}"] = book.add_format(base | {"border": 1, "bg_color": colour, "align": "center"})
        f[f"value:{status}"] = book.add_format(base | {"border": 1, "bg_color": colour, "num_format": "#,##0.00"})
    f["status:none"] = book.add_format(base | {"border": 1, "bg_color": NO_STATUS_FILL, "align": "center"})
    f["value:none"] = book.add_format(base | {"border": 1, "num_format": "#,##0.00"})
    return f


def _fill(status: str | None) -> str:
    """The status whose colour a cell takes: none for no status and for a month no plan covers."""
    return status if status in STATUS_FILL else "none"


def _number(sheet, row: int, col: int, value, fmt: dict, key: str = "num") -> None:
    if value is None:
        sheet.write_string(row, col, "—", fmt["text"])
    else:
        sheet.write_number(row, col, round(value, DECIMALS), fmt[key])


def _indicator_sheet(book, fmt, period: str, data: dict) -> None:
    sheet = book.add_worksheet(SHEETS[0])
    sheet.write_string(0, 0, f"{data['city'][1]}社会工作专业人才队伍建设指标 {month_zh(period)}（市及各县区）", fmt["title"])
    sheet.write_string(1, 0, plan_line(data["plan"]), fmt["note"])
    head = ["单位", "层级", "序号", "指标", "当前值", "计量单位", "目标", "差距", "相对差距", "期限", "预计到期值",
            "状态", "单独达标社区", "沿用往月数据单位数", "指标编号"]
    sheet.write_row(2, 0, head, fmt["head"])
    r = 3
    for (code, name, level, headline, ind, ind_name, value, unit, target, comp, gap, ratio, deadline,
         projected, status, share, carried) in data["indicators"]:
        sheet.write_string(r, 0, name, fmt["text"])
        sheet.write_string(r, 1, LEVEL_ZH[level], fmt["text"])
        sheet.write_string(r, 2, str(headline) if headline else "·", fmt["text"])
        sheet.write_string(r, 3, ind_name, fmt["wrap"])
        # Counts of persons and units show as whole numbers, rates and averages with two decimals.
        key = "int" if unit in ("人", "个") else "num"
        _number(sheet, r, 4, value, fmt, key)
        sheet.write_string(r, 5, unit or "", fmt["text"])
        _number(sheet, r, 6, target, fmt, key)
        _number(sheet, r, 7, gap, fmt, key)
        _number(sheet, r, 8, ratio, fmt, "ratio")
        sheet.write_string(r, 9, deadline.strftime("%Y-%m") if target is not None and deadline else "—", fmt["text"])
        _number(sheet, r, 10, projected if status in ("on_track", "at_risk") else None, fmt, key)
        sheet.write_string(r, 11, STATUS_WORDS.get(status, "—"), fmt[f"status:{_fill(status)}"])
        _number(sheet, r, 12, share, fmt, "pct1")
        sheet.write_number(r, 13, carried or 0, fmt["int"])
        sheet.write_string(r, 14, ind, fmt["text"])
        r += 1
    sheet.autofilter(2, 0, r - 1, len(head) - 1)
    sheet.freeze_panes(3, 4)
    for col, width in enumerate([12, 10, 5, 44, 11, 8, 9, 9, 9, 9, 11, 9, 11, 10, 34]):
        sheet.set_column(col, col, width)
    sheet.write_string(r + 1, 0, "差距 = 目标 − 当前值（“不超过”类指标为 当前值 − 目标），正数为尚差；相对差距 = 差距 ÷ 目标。"
                       "未到期的指标按近 12 个月趋势预计到期值，判断“进度正常”或“有风险”。", fmt["note"])


def _comparison_sheet(book, fmt, period: str, data: dict) -> None:
    """Indicators down, the city and counties across: value coloured by status, then the gaps."""
    sheet = book.add_worksheet(SHEETS[1])
    units = []
    for code, name, level, *_ in data["indicators"]:
        if (code, name) not in units:
            units.append((code, name))
    by = {(row[0], row[4]): row for row in data["indicators"]}
    # Indicators that have a target for at least one county: the ones a county can be compared on.
    ids = []
    for row in data["indicators"]:
        if row[2] == "county" and row[8] is not None and row[4] not in ids:
            ids.append(row[4])
    city_code = data["city"][0]
    names = {row[4]: (row[3], row[5], row[7]) for row in data["indicators"]}
    ids.sort(key=lambda i: (names[i][0] == 0, names[i][0], i))
    sheet.write_string(0, 0, f"各县区指标对比 {month_zh(period)}：单元格底色为状态（绿 达标，蓝 进度正常，橙 有风险，红 未达标）", fmt["title"])
    n = len(units)
    sheet.write_row(2, 0, ["指标", "计量单位", "县区目标"], fmt["head"])
    sheet.merge_range(1, 3, 1, 2 + n, "当前值", fmt["head"])
    sheet.merge_range(1, 3 + n, 1, 2 + 2 * n, "差距（正数为尚差）", fmt["head"])
    for j, (_, name) in enumerate(units):
        sheet.write_string(2, 3 + j, name, fmt["head"])
        sheet.write_string(2, 3 + n + j, name, fmt["head"])
    for i, ind in enumerate(ids):
        r = 3 + i
        sheet.write_string(r, 0, names[ind][1], fmt["wrap"])
        sheet.write_string(r, 1, names[ind][2] or "", fmt["text"])
        county_target = next((by[(c, ind)][8] for c, _ in units if c != city_code and (c, ind) in by), None)
        _number(sheet, r, 2, county_target, fmt)
        for j, (code, _) in enumerate(units):
            row = by.get((code, ind))
            value, gap, status = (row[6], row[10], row[14]) if row else (None, None, None)
            if value is None:
                sheet.write_string(r, 3 + j, "—", fmt["status:none"])
            else:
                sheet.write_number(r, 3 + j, round(value, DECIMALS), fmt[f"value:{_fill(status)}"])
            _number(sheet, r, 3 + n + j, gap, fmt)
    sheet.freeze_panes(3, 1)
    sheet.set_column(0, 0, 40)
    sheet.set_column(1, 2, 9)
    sheet.set_column(3, 2 + 2 * n, 10)


def _completeness_sheet(book, fmt, period: str, data: dict) -> None:
    sheet = book.add_worksheet(SHEETS[2])
    sheet.write_string(0, 0, f"{month_zh(period)} 报送情况（按县区、报表；市本级只含市级报表）", fmt["title"])
    head = ["县（区）", "报表", "应报单位", "已报单位", "按时报送", "报送率（%）", "及时率（%）", "数据行", "未通过校验行"]
    sheet.write_row(2, 0, head, fmt["head"])
    r = 3
    totals: dict[str, list[int]] = {}
    for code, name, form, expected, received, on_time, received_pct, on_time_pct, rows, rejected in data["completeness"]:
        sheet.write_string(r, 0, name, fmt["text"])
        sheet.write_string(r, 1, form, fmt["text"])
        for c, v in enumerate((expected, received, on_time), start=2):
            sheet.write_number(r, c, v, fmt["int"])
        sheet.write_number(r, 5, received_pct, fmt["pct1"])
        sheet.write_number(r, 6, on_time_pct, fmt["pct1"])
        sheet.write_number(r, 7, rows, fmt["int"])
        sheet.write_number(r, 8, rejected, fmt["int"])
        t = totals.setdefault(name, [0, 0, 0])
        t[0], t[1], t[2] = t[0] + expected, t[1] + received, t[2] + on_time
        r += 1
    r += 1
    sheet.write_row(r, 0, ["县（区）", "全部报表", "应报合计", "已报合计", "按时合计", "报送率（%）", "及时率（%）"], fmt["head"])
    for name, (expected, received, on_time) in totals.items():
        r += 1
        sheet.write_string(r, 0, name, fmt["text"])
        sheet.write_string(r, 1, "合计", fmt["text"])
        for c, v in enumerate((expected, received, on_time), start=2):
            sheet.write_number(r, c, v, fmt["int"])
        sheet.write_number(r, 5, round(100 * received / expected, 1), fmt["pct1"])
        sheet.write_number(r, 6, round(100 * on_time / expected, 1), fmt["pct1"])
    sheet.freeze_panes(3, 0)
    sheet.set_column(0, 0, 14)
    sheet.set_column(1, 8, 11)


def _rejected_sheet(book, fmt, period: str, data: dict) -> None:
    sheet = book.add_worksheet(SHEETS[3])
    sheet.write_string(0, 0, f"{month_zh(period)} 无法读取的文件（{len(data['rejected'])} 个），请相应单位更正后重新报送",
                       fmt["title"])
    head = ["文件", "报送单位", "单位代码", "格式", "收到时间（UTC）", "原因"]
    sheet.write_row(2, 0, head, fmt["head"])
    r = 3
    for path, code, name, form, received_at, reason in data["rejected"]:
        sheet.write_string(r, 0, path, fmt["wrap"])
        sheet.write_string(r, 1, name or "（未能识别）", fmt["text"])
        sheet.write_string(r, 2, code or "", fmt["text"])
        sheet.write_string(r, 3, form or "", fmt["text"])
        sheet.write_datetime(r, 4, received_at, fmt["time"])
        sheet.write_string(r, 5, reason or "", fmt["wrap"])
        r += 1
    if not data["rejected"]:
        sheet.write_string(r, 0, "本月没有无法读取的文件。", fmt["note"])
        r += 1
    r += 1
    sheet.write_string(r, 0, "含未通过校验数据行的工作表（详见各单位的问题反馈表）", fmt["title"])
    r += 1
    sheet.write_row(r, 0, ["文件", "报送单位", "单位代码", "工作表", "报表", "未通过校验行"], fmt["head"])
    for code, name, path, sh, form, n in data["rows_rejected"]:
        r += 1
        sheet.write_string(r, 0, path, fmt["wrap"])
        sheet.write_string(r, 1, name or "（未能识别）", fmt["text"])
        sheet.write_string(r, 2, code or "", fmt["text"])
        sheet.write_string(r, 3, sh, fmt["text"])
        sheet.write_string(r, 4, form or "", fmt["text"])
        sheet.write_number(r, 5, n, fmt["int"])
    sheet.set_column(0, 0, 46)
    sheet.set_column(1, 4, 14)
    sheet.set_column(5, 5, 70)


def _missing_sheet(sheet, fmt, period: str, area: str, rows: list[dict], settings: Settings | None) -> None:
    """The missing list of an area (the city, or one county): the report's sheet and each county's
    workbook alike, so that what the bureau sends on is what it reads."""
    sheet.write_string(0, 0, f"{area} {month_zh(period)} 未报送清单（催报）", fmt["title"])
    sheet.write_string(1, 0, f"报送期限：{missing.deadline_zh(period, settings)}。{missing.counts_line(rows)}。"
                             f"请督促以下单位尽快报送；被拒收的请按说明更正后重新报送。", fmt["note"])
    sheet.write_row(2, 0, missing.HEAD, fmt["head"])
    for i, row in enumerate(rows, start=1):
        for c, value in enumerate(missing.cells(row, i)):
            if isinstance(value, int):
                sheet.write_number(2 + i, c, value, fmt["int"])
            else:
                sheet.write_string(2 + i, c, value, fmt["wrap" if c == len(missing.HEAD) - 1 else "text"])
    if not rows:
        sheet.write_string(3, 0, "应报报表均已收到。", fmt["note"])
    else:
        sheet.autofilter(2, 0, 2 + len(rows), len(missing.HEAD) - 1)
    sheet.freeze_panes(3, 0)
    for col, width in enumerate([6, 10, 14, 14, 24, 10, 7, 20, 14, 12, 8, 9, 9, 60]):
        sheet.set_column(col, col, width)


def write_reminders(db: Path, period: str, out_dir: Path, settings: Settings | None = None) -> list[Path]:
    """A missing list per county, and one of the city's own forms, for the bureau to send on:
    out_dir/<code>-<name>.xlsx for each that still owes something. Lists of a county that now owes
    nothing are removed, so the folder always holds this month's."""
    def gather(con, period):
        city = con.execute("select code, name from ref.units where level = 'city' order by code limit 1").fetchone()
        return city, missing.read(con, period)

    (city_code, city_name), rows = read_published(db, period, gather)
    by_area: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        area = (row["county_code"], row["county_name"]) if row["county_code"] else (city_code, city_name)
        by_area.setdefault(area, []).append(row)
    written = []
    for (code, name), area_rows in by_area.items():
        path = Path(out_dir) / f"{code}-{name}.xlsx"
        with owner_only_file(path) as tmp:
            book = xlsxwriter.Workbook(str(tmp), {"strings_to_formulas": False, "strings_to_urls": False})
            try:
                label = f"{name}（{missing.OWN}）" if code == city_code else name
                _missing_sheet(book.add_worksheet("未报送清单"), _formats(book), period, label, area_rows, settings)
            finally:
                book.close()
        written.append(path)
    if Path(out_dir).is_dir():
        for old in Path(out_dir).glob("*.xlsx"):
            if old not in written:
                old.unlink()
    return written


def _notes_sheet(book, fmt, period: str, data: dict) -> None:
    sheet = book.add_worksheet(SHEETS[5])
    run = data["run"]
    lines = [f"{data['city'][1]}社会工作专业人才队伍建设月报 {month_zh(period)}", plan_line(data["plan"]) + "。"]
    if run:
        lines.append(f"{run_line(run)}，汇总完成于 {run['finished_at']:%Y-%m-%d %H:%M}（UTC）。")
    lines += [
        "状态：达标 = 到期月份已达到目标；未达标 = 到期月份未达到目标；进度正常 / 有风险 = 尚未到期，按近 12 个月（至少 3 个月）"
        "的趋势预计到期值是否能达到目标；无规划 = 本月不在任何规划的期限内，没有目标。",
        "差距：正数为尚差多少，0 或负数为已达到；相对差距 = 差距 ÷ 目标，可用于比较不同指标。",
        "单独达标社区：平均数类指标中，自身达到标准的社区所占比例。",
        "沿用往月数据单位数：本月未报送、沿用最近一次报送（至多 3 个月）的单位数。",
        "数据来源：数据仓库 analysis.indicators、analysis.completeness 视图及 ingest.files、ingest.sheets 表。",
    ]
    for i, line in enumerate(lines):
        sheet.write_string(i, 0, line, fmt["title"] if i == 0 else fmt["text"])
    sheet.set_column(0, 0, 120)
