"""What a run prints: a unit's indicators for a month, with target and gap, read from the
published warehouse through a read-only connection (so analysts' connections are no obstacle)."""
from __future__ import annotations

import contextlib
import os
import threading
import unicodedata
from pathlib import Path
from typing import Callable, TypeVar

import duckdb

from flows.config import check_period
from flows.errors import ConfigError
from flows.registry import LEVEL_ZH

T = TypeVar("T")

STATUS_ZH = {"met": "达标", "not_met": "未达标", "on_track": "进度正常", "at_risk": "有风险"}
# Every status as shown in a cell: those judged against a target, and a month no plan covers.
STATUS_WORDS = STATUS_ZH | {"no_plan": "无规划"}


def display_width(text: str) -> int:
    """Character cells a text takes in a terminal or an Excel column: a Chinese character two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(s: str, w: int, right: bool = False) -> str:
    gap = " " * max(0, w - display_width(s))
    return gap + s if right else s + gap


def month_zh(period: str) -> str:
    return f"{int(period[:4])}年{int(period[5:])}月"


def latest_run(con: duckdb.DuckDBPyConnection, period: str) -> dict | None:
    """The month's latest run as ingest.runs records it: its times and counts."""
    cur = con.execute("""select started_at, finished_at, files, files_rejected, rows_read, rows_rejected
                         from ingest.runs where period = ?
                         order by finished_at desc nulls last, started_at desc limit 1""", [period])
    row = cur.fetchall()
    return dict(zip([d[0] for d in cur.description], row[0])) if row else None


def plan_of(con: duckdb.DuckDBPyConnection, period: str) -> dict | None:
    """The plan the month was judged against (id, name, from, to), or None when no plan covers it."""
    cur = con.execute("""
        select p.plan_id, p.name, p.from_period, p.to_period
        from ref.plans as p
        where p.plan_id = (select any_value(plan_id) from mart.indicator_values where period = ?)
           -- a month computed before plans were named: the plan whose months include it
           or (not exists (select 1 from mart.indicator_values where period = ? and (plan_id is not null
                                                                                    or status = 'no_plan'))
               and ? between p.from_period and p.to_period)""", [period, period, period])
    row = cur.fetchone()
    return dict(zip(("id", "name", "from", "to"), row)) if row else None


def plan_line(plan: dict | None) -> str:
    """Which plan the month's targets are from, in the words every report uses."""
    if plan is None:
        return "对照规划：无（本月不在任何规划的期限内），各项指标只列当前值，没有目标和期限（状态为“无规划”）"
    return f"对照规划：{plan['name']}（{plan['from']} 至 {plan['to']}）"


def run_line(run: dict) -> str:
    """What the month's run took in, in the words every report uses."""
    return (f"本月文件 {run['files']:,} 个（无法读取 {run['files_rejected']:,} 个），"
            f"数据行 {run['rows_read']:,} 行（未通过校验 {run['rows_rejected']:,} 行）")


def fmt(v: float | None, unit: str | None) -> str:
    if v is None:
        return "—"
    if unit in ("人", "个") or (unit is None and float(v).is_integer()):
        return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"
    return f"{v:.2f}"


def indicator_table(db: Path, period: str, unit_code: str | None = None) -> str:
    def read(con, period):
        unit = con.execute(
            "select code, name, level from ref.units where code = coalesce(?, (select code from ref.units "
            "where level = 'city' order by code limit 1))", [unit_code]).fetchone()
        if unit is None:
            raise ConfigError(f"unit {unit_code} is not in the registry")
        rows = con.execute(
            """select headline, indicator_name, value, unit, target, comparison, gap, status, share_meeting,
                      projected, strftime(deadline, '%Y-%m')
               from mart.indicator_values where period = ? and unit_code = ?
               order by headline = 0, headline, target is null, indicator_id""", [period, unit[0]]).fetchall()
        return unit, rows, latest_run(con, period), plan_of(con, period) if rows else None

    unit, rows, run, plan = read_published(db, period, read)
    if not rows:
        raise ConfigError(f"the warehouse has no figures for {period}; run `shegong run --period {period}`")
    head = ["序号", "指标", "当前值", "目标", "差距", "期限", "预计到期", "状态", "单独达标社区"]
    body = []
    for headline, name, value, u, target, comp, gap, status, share, projected, deadline in rows:
        has_target = target is not None
        body.append([
            str(headline) if headline else "·", name, f"{fmt(value, u)} {u or ''}".strip(),
            f"{comp}{fmt(target, u)}" if has_target else "—",
            "—" if gap is None else ("0" if gap <= 0 else fmt(gap, u)),
            deadline if has_target else "—",
            fmt(projected, u) if has_target and status in ("on_track", "at_risk") else "—",
            STATUS_WORDS.get(status, "—"),
            "—" if share is None else f"{share:.1f}%",
        ])
    widths = [max(display_width(r[i]) for r in [head] + body) for i in range(len(head))]
    lines = [f"{unit[1]}（{LEVEL_ZH[unit[2]]}，{unit[0]}）{period} 社会工作专业人才队伍建设指标", plan_line(plan)]
    if run:
        lines.append(run_line(run))
    fmt_row = lambda r: "  ".join(_pad(c, widths[i], right=i in (2, 3, 4, 6, 8)) for i, c in enumerate(r))
    lines.append(fmt_row(head))
    lines.append("  ".join("-" * w for w in widths))
    for i, r in enumerate(body):
        if rows[i][0] == 0 and (i == 0 or rows[i - 1][0] != 0):
            lines.append("  规划正文中的其他指标与基数：")
        lines.append(fmt_row(r))
    lines.append("差距 = 目标 − 当前值（正数为尚差）；未到期的按近 12 个月趋势预计到期值，判断进度正常或有风险；"
                 "单独达标社区 = 平均数所涉社区中自身达到标准的比例；“—”表示该层级无目标或无数据。")
    return "\n".join(lines)


def completeness_table(db: Path, period: str) -> str:
    """Expected, received and on-time reports per county (and the city's own), all forms."""
    rows = read_published(db, period, lambda con, period: con.execute("""
            select coalesce(c.county_code, c.unit_code) as code, u.name,
                   count(*), count(*) filter (where received), count(*) filter (where on_time)
            from mart.reporting_completeness c
            join ref.units u on u.code = coalesce(c.county_code, c.unit_code)
            where c.period = ?
            group by all order by code""", [period]).fetchall())
    head = ["单位", "应报", "已报", "按时", "报送率", "及时率"]
    body = [[name, str(n), str(got), str(on_time), f"{got * 100 / n:.1f}%", f"{on_time * 100 / n:.1f}%"]
            for _, name, n, got, on_time in rows]
    widths = [max(display_width(r[i]) for r in [head] + body) for i in range(len(head))]
    line = lambda r: "  ".join(_pad(c, widths[i], right=i > 0) for i, c in enumerate(r))
    out = [f"{period} 报送情况（各报表应报单位合计；市本级只含市级报表）", line(head), "  ".join("-" * w for w in widths)]
    return "\n".join(out + [line(r) for r in body])


def summary(db: Path, period: str, files: dict[str, str] | None = None) -> tuple[str, list[dict]]:
    """The month in short, for the run's Prefect artifacts: a markdown page (status counts, the
    largest gaps of the city and counties, completeness, where the reports are) and a table of
    the city's and counties' indicators that have a target."""
    rows, counts, completeness, run, plan = read_published(db, period, _summary_rows)
    table = [{"单位": name, "指标": ind, "当前值": None if v is None else round(v, 2), "计量单位": u or "",
              "目标": f"{comp}{fmt(t, u)}", "差距": None if gap is None else round(gap, 2),
              "状态": STATUS_ZH.get(status, "—")}
             for name, level, ind, v, u, t, comp, gap, ratio, status in rows]
    gaps = sorted((r for r in rows if r[9] in ("not_met", "at_risk") and r[8] is not None),
                  key=lambda r: -r[8])[:10]
    md = [f"# {period} 社会工作专业人才队伍建设月报", "", plan_line(plan) + "。"]
    if run:
        md.append(run_line(run) + "。")
    md.append("全市指标：" + "，".join(f"{STATUS_ZH[s]} {counts.get(s, 0)} 项" for s in STATUS_ZH) + "。")
    md += ["", "## 差距最大的指标（市、县区，按相对差距排序）", "",
           "| 单位 | 指标 | 当前值 | 目标 | 差距 | 状态 |", "|---|---|---:|---:|---:|---|"]
    md += [f"| {r[0]} | {r[2]} | {fmt(r[3], r[4])} | {r[6]}{fmt(r[5], r[4])} | {fmt(r[7], r[4])} | {STATUS_ZH[r[9]]} |"
           for r in gaps] or ["| — | 无 | | | | |"]
    md += ["", "## 报送情况", "", "| 县（区） | 应报 | 已报 | 按时 |", "|---|---:|---:|---:|"]
    md += [f"| {name} | {n} | {got} | {on_time} |" for name, n, got, on_time in completeness]
    if files:
        md += ["", "## 报告文件", ""] + [f"- {label}：`{path}`" for label, path in files.items()]
    return "\n".join(md), table


def _summary_rows(con: duckdb.DuckDBPyConnection, period: str):
    rows = con.execute("""
        select unit_name, unit_level, indicator_name, value, unit, target, comparison, gap, gap_ratio, status
        from analysis.indicators
        where period = ? and unit_level in ('city', 'county') and target is not null
        order by unit_level <> 'city', unit_code, headline = 0, headline, indicator_id""", [period]).fetchall()
    counts = dict(con.execute("""select status, count(*) from analysis.indicators
                                 where period = ? and unit_level = 'city' and status is not null
                                 group by status""", [period]).fetchall())
    completeness = con.execute("""select area_name, sum(expected), sum(received), sum(on_time)
                                  from analysis.completeness where period = ?
                                  group by area_code, area_name order by area_code""", [period]).fetchall()
    return rows, counts, completeness, latest_run(con, period), plan_of(con, period)


def read_published(db: Path, period: str, read: Callable[[duckdb.DuckDBPyConnection, str], T]) -> T:
    """What `read(con, period)` finds in the published warehouse, through a read-only connection
    (analysts' connections are no obstacle) that is closed before the caller draws anything:
    a cursor of the one `published(db)` holds open, if a block of it is running."""
    check_period(period)
    with _held_lock:
        held = _held.get(Path(db).resolve())
        # A cursor per reader: the month's outputs are written by tasks on other threads.
        con = held.cursor() if held is not None else None
    if con is None:
        con = _open_read_only(db, period)
    try:
        return read(con, period)
    finally:
        con.close()


def _open_read_only(db: Path, period: str) -> duckdb.DuckDBPyConnection:
    if not Path(db).exists():
        raise ConfigError(f"no warehouse at {db}; run `shegong run --period {period}` first")
    try:
        return duckdb.connect(str(db), read_only=True)
    except duckdb.Error as exc:
        raise ConfigError(f"cannot open {db} read-only: {exc}") from exc


_held: dict[Path, duckdb.DuckDBPyConnection] = {}
_held_lock = threading.Lock()


@contextlib.contextmanager
def published(db: Path, period: str):
    """The published warehouse held open read-only for the block: every read_published of it
    in the block takes a cursor instead of opening the file again (a month's outputs read it
    six times; each open reads the catalog anew). Within a block of the same file, none."""
    key = Path(db).resolve()
    with _held_lock:
        nested = key in _held
    if nested:
        yield
        return
    con = _open_read_only(db, period)
    with _held_lock:
        _held[key] = con
    try:
        yield
    finally:
        with _held_lock:
            _held.pop(key, None)
        con.close()


@contextlib.contextmanager
def owner_only_file(path: Path):
    """A temporary name beside `path` to write to; swapped in whole when the block ends, so that
    a reader never opens half a report, and readable by the owner only, since reports name units
    and their shortfalls and are for the bureau."""
    _private_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # Created owner-only before anything is written into it (writers keep an existing file's mode).
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a leftover file of the same name
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _private_dirs(folder: Path) -> None:
    """Create `folder` and any missing parent owner-only (mkdir's mode applies to the last only)."""
    if folder.is_dir():
        return
    _private_dirs(folder.parent)
    folder.mkdir(mode=0o700, exist_ok=True)
