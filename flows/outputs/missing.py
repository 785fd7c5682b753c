"""The missing list (催报): who still owes what for a month, from the view analysis.missing, as the
terminal prints it (`shegong missing`) and as every workbook lays it out (the report's 未报送清单
sheet and the workbook per county the bureau sends on, flows/outputs/workbook.py)."""
from __future__ import annotations

from pathlib import Path

import duckdb

from flows.config import Settings, add_months, load_settings
from flows.errors import ConfigError
from flows.outputs.report import LEVEL_ZH, _pad, display_width, month_zh, read_published

STATUSES_ZH = {"not_received": "未报送", "refused": "报送被拒收", "carried": "沿用往月数据"}
OWN = "市本级"  # the county column of the city's own forms
# A workbook row: what the bureau reads out on the phone, in this order.
HEAD = ("序号", "县（区）", "乡镇（街道）", "单位代码", "单位名称", "层级", "报表", "报表名称", "应报送单位", "情况",
        "连续未按时月数", "自何月起", "最近报送", "说明")
_COLUMNS = ("county_code, county_name, township_code, township_name, unit_code, unit_name, unit_level, form, "
            "form_name, sender_code, sender_name, status, status_zh, detail_zh, months_in_row, missing_since, "
            "last_received, carried_from, refused_path, refused_sheet")


def read(con: duckdb.DuckDBPyConnection, period: str, unit: str | None = None) -> list[dict]:
    """The month's missing list (of `unit`'s subtree if given), the city's own forms first, then by
    county, township, unit and form."""
    cur = con.execute(f"""
        select {_COLUMNS} from analysis.missing as m
        where period = ?
          and (?::varchar is null or exists (select 1 from intermediate.unit_closure as c
                                             where c.ancestor_code = ? and c.descendant_code = m.unit_code))
        order by county_code nulls first, township_code nulls first, unit_code, form""", [period, unit, unit])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def cells(row: dict, n: int) -> list:
    """The workbook cells of one entry (HEAD), numbered n."""
    return [n, row["county_name"] or OWN, row["township_name"] or "—", row["unit_code"], row["unit_name"],
            LEVEL_ZH[row["unit_level"]], row["form"], row["form_name"], row["sender_name"], row["status_zh"],
            row["months_in_row"], row["missing_since"], row["last_received"] or "—", row["detail_zh"]]


def counts_line(rows: list[dict]) -> str:
    """共 N 项（未报送 a，报送被拒收 b，沿用往月数据 c）"""
    by = {s: sum(r["status"] == s for r in rows) for s in STATUSES_ZH}
    return f"共 {len(rows)} 项（" + "，".join(f"{zh} {by[s]}" for s, zh in STATUSES_ZH.items()) + "）"


def run_line(db: Path, period: str, reminders: list[str]) -> str:
    """What `shegong run` prints of the month's list: the counts and where the county lists are."""
    rows = read_published(db, period, read)
    where = f"，各县区催报表 {len(reminders)} 份：{Path(reminders[0]).parent}/" if reminders else ""
    return f"未报送清单：{counts_line(rows)}{where}（明细：shegong missing --period {period}）"


def deadline_zh(period: str, settings: Settings | None = None) -> str:
    """The month's reporting deadline in words: 2024年4月5日. A run passes its own settings; a
    command on its own reads them."""
    return f"{month_zh(add_months(period, 1))}{(settings or load_settings()).deadline_day}日"


def table(db: Path, period: str, unit: str | None = None) -> str:
    """The missing list as `shegong missing` prints it: a title, the counts, a row per entry."""
    def gather(con, period):
        if unit is not None and con.execute("select 1 from ref.units where code = ?", [unit]).fetchone() is None:
            raise ConfigError(f"unit {unit} is not in the registry")
        if not con.execute("select 1 from mart.reporting_completeness where period = ? limit 1", [period]).fetchone():
            raise ConfigError(f"the warehouse has no reports for {period}; run `shegong run --period {period}`")
        name = con.execute("select name from ref.units where code = coalesce(?, (select code from ref.units "
                           "where level = 'city' order by code limit 1))", [unit]).fetchone()[0]
        return name, read(con, period, unit)

    name, rows = read_published(db, period, gather)
    lines = [f"{name} {period} 未报送清单（报送期限 {deadline_zh(period)}）：{counts_line(rows)}"]
    if not rows:
        return "\n".join(lines + ["应报报表均已收到。"])
    head = ["县（区）", "乡镇（街道）", "单位代码", "单位名称", "报表", "情况", "连续月数", "最近报送", "说明"]
    body = [[r["county_name"] or OWN, r["township_name"] or "—", r["unit_code"], r["unit_name"], r["form"],
             r["status_zh"], str(r["months_in_row"]), r["last_received"] or "—", r["detail_zh"]] for r in rows]
    widths = [max(display_width(b[i]) for b in [head] + body) for i in range(len(head) - 1)]
    line = lambda b: "  ".join([_pad(c, widths[i], right=i == 6) for i, c in enumerate(b[:-1])] + [b[-1]])
    lines += [line(head), "  ".join("-" * w for w in widths + [4])] + [line(b) for b in body]
    lines.append("连续月数：连同本月，连续未按时报送（未报送或逾期）的月数；说明：被拒收的文件及原因，或暂沿用的往月数据。")
    return "\n".join(lines)
