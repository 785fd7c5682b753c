"""The month's report workbook and the run's Prefect artifacts, for the fixture month 2024-03.

The fixture's figures are computed by hand in test_rollup.py and test_indicators.py (9 talents
in the city, 2 rejected files in 东区, ...); here every cell of the workbook is checked against
the warehouse, read back with openpyxl (another program than the one that wrote it)."""
from __future__ import annotations

import json
import stat
import uuid

import openpyxl
import pytest

from conftest import PERIOD
from flows.outputs.report import STATUS_ZH
from flows.outputs.workbook import DECIMALS, SHEETS, write_workbook

CITY = "510400000000"


@pytest.fixture(scope="module")
def book(month_db):
    """The workbook the run itself wrote beside the warehouse."""
    path = month_db.parent / "reports" / PERIOD / f"report-{PERIOD}.xlsx"
    assert path.is_file(), "the run writes the report workbook"
    return openpyxl.load_workbook(path)


def _r(value):
    """What a cell holds: the warehouse's value to DECIMALS places (Excel keeps 15 digits)."""
    return None if value is None else round(value, DECIMALS)


def _rows(sheet, first: int):
    return [r for r in sheet.iter_rows(min_row=first, values_only=True)]


def test_the_run_writes_both_reports_for_the_owner_only(month_db):
    folder = month_db.parent / "reports" / PERIOD
    # ...and the missing list of each county, in 催报/ (tests/test_missing.py).
    assert sorted(p.name for p in folder.iterdir()) == [f"report-{PERIOD}.html", f"report-{PERIOD}.xlsx", "催报"]
    for p in folder.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_sheets(book):
    assert book.sheetnames == list(SHEETS)


def test_indicator_sheet_equals_the_warehouse(book, con):
    sheet = book[SHEETS[0]]
    assert _rows(sheet, 3)[0][:5] == ("单位", "层级", "序号", "指标", "当前值")
    expected = {(name, ind): (_r(value), _r(target), _r(gap), status) for name, ind, value, target, gap, status in con.execute(
        """select unit_name, indicator_id, value, target, gap, status from mart.indicator_values
           where period = ? and unit_level in ('city', 'county')""", [PERIOD]).fetchall()}
    got = {}
    for row in _rows(sheet, 4):
        if row[14] is None:
            continue
        dash = lambda v: None if v == "—" else v
        got[(row[0], row[14])] = (dash(row[4]), dash(row[6]), dash(row[7]),
                                  {v: k for k, v in STATUS_ZH.items()}.get(row[11]))
    assert got == expected
    # Hand-computed (test_rollup): 9 talents in the city against 2,100, so 2,091 short.
    assert got[("攀枝花市", "talent_total")][:3] == (9, 2100, 2091)


def test_status_cells_are_coloured_by_status(book):
    sheet = book[SHEETS[0]]
    fills = {}
    for row in sheet.iter_rows(min_row=4):
        if row[14].value is None:
            continue
        fills.setdefault(row[11].value, set()).add(row[11].fill.fgColor.rgb)
    colours = {"达标": "FFC8E6C9", "进度正常": "FFBBDEFB", "有风险": "FFFFE0B2", "未达标": "FFFFCDD2", "—": "FFEEEEEE"}
    assert fills and all(fills[status] == {colours[status]} for status in fills)


def test_comparison_sheet_equals_the_warehouse(book, con):
    sheet = book[SHEETS[1]]
    rows = _rows(sheet, 3)
    units = [u for u in rows[0][3:] if u][: (len(rows[0]) - 3) // 2]
    assert units == ["攀枝花市", "东区", "西区", "仁和区", "米易县", "盐边县"]
    names = dict(con.execute("select indicator_name, indicator_id from mart.indicator_values").fetchall())
    compared = {r[0] for r in con.execute(
        """select indicator_name from mart.indicator_values
           where period = ? and unit_level = 'county' and target is not null""", [PERIOD]).fetchall()}
    assert {r[0] for r in rows[1:]} == compared
    values = {(u, i): (v, g) for u, i, v, g in con.execute(
        """select unit_name, indicator_id, value, gap from mart.indicator_values
           where period = ? and unit_level in ('city', 'county')""", [PERIOD]).fetchall()}
    n = len(units)
    for row in rows[1:]:
        for j, unit in enumerate(units):
            value, gap = values[(unit, names[row[0]])]
            assert row[3 + j] == ("—" if value is None else _r(value))
            assert row[3 + n + j] == ("—" if gap is None else _r(gap))


def test_completeness_sheet_equals_the_view(book, con):
    rows = [r for r in _rows(book[SHEETS[2]], 4) if r[1] and r[1].startswith("SG-")]
    assert [r[:9] for r in rows] == [tuple(r) for r in con.execute(
        """select area_name, form, expected, received, on_time, received_pct, on_time_pct, data_rows, rows_rejected
           from analysis.completeness where period = ? order by area_code, form""", [PERIOD]).fetchall()]


def test_rejected_files_and_their_senders(book):
    rows = _rows(book[SHEETS[3]], 4)
    rejected = [(r[0], r[1], r[2]) for r in rows[:2]]
    assert rejected == [("东区/照片.jpg", "东区", "510402000000"), ("东区/说明.xlsx", "东区", "510402000000")]
    assert rows[0][5].startswith("不是电子表格")


def test_a_formula_like_unit_text_stays_text(month_db, tmp_path):
    """Text from files (paths, reasons) is written as text, never as a live formula or link."""
    path = write_workbook(month_db, PERIOD, tmp_path)
    for sheet in openpyxl.load_workbook(path):
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f"


def test_the_run_publishes_a_summary_and_a_table_as_artifacts(month_db, con):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run_id = con.execute("select flow_run_id from ingest.runs where period = ?", [PERIOD]).fetchone()[0]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(flow_run_id)])))
    by_key = {a.key: a for a in artifacts}
    assert set(by_key) >= {f"summary-{PERIOD}", f"indicators-{PERIOD}"}
    table = by_key[f"indicators-{PERIOD}"].data
    table = json.loads(table) if isinstance(table, str) else table
    n = con.execute("""select count(*) from mart.indicator_values where period = ? and unit_level in ('city', 'county')
                       and target is not null""", [PERIOD]).fetchone()[0]
    assert len(table) == n
    status = con.execute("select status from mart.indicator_values where period = ? and unit_code = ? "
                         "and indicator_id = 'talent_total'", [PERIOD, CITY]).fetchone()[0]
    assert table[0] == {"单位": "攀枝花市", "指标": "社会工作专业人才队伍总量", "当前值": 9, "计量单位": "人",
                        "目标": ">=2,100", "差距": 2091, "状态": STATUS_ZH[status]}
    markdown = by_key[f"summary-{PERIOD}"].data
    assert markdown.startswith(f"# {PERIOD} 社会工作专业人才队伍建设月报")
    assert "本月文件 9 个（无法读取 2 个）" in markdown
    assert f"report-{PERIOD}.xlsx" in markdown and f"report-{PERIOD}.html" in markdown


def test_shegong_report_writes_the_month_again(month_db, tmp_path, capsys):
    from flows.cli import main
    assert main(["report", "--period", PERIOD, "--db", str(month_db), "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"report-{PERIOD}.html", f"report-{PERIOD}.xlsx"]
    assert capsys.readouterr().out.startswith("月报：")
    assert main(["report", "--period", "2024-13", "--db", str(month_db)]) == 1


def test_a_months_outputs_read_the_published_file_through_one_connection(month_db, tmp_path):
    """Within `published`, every read is a cursor of the connection opened when the block began:
    a file moved away meanwhile is still read (and, as the run's outputs are, is the month as
    published); outside a block each read opens the file, and finds none."""
    from flows.errors import ConfigError
    from flows.outputs.report import published, read_published
    db = tmp_path / "w.duckdb"
    db.write_bytes(month_db.read_bytes())
    count = "select count(*) from mart.indicator_values where period = ?"
    with published(db, PERIOD):
        moved = db.rename(tmp_path / "moved.duckdb")
        with published(db, PERIOD):  # a block within a block of the same file: the same connection
            inner = read_published(db, PERIOD, lambda con, period: con.execute(count, [period]).fetchone()[0])
        outer = read_published(db, PERIOD, lambda con, period: con.execute(count, [period]).fetchone()[0])
    assert inner == outer == 6966
    with pytest.raises(ConfigError, match="no warehouse at"):
        read_published(db, PERIOD, lambda con, period: None)
    assert read_published(moved, PERIOD, lambda con, period: con.execute(count, [period]).fetchone()[0]) == 6966


def test_a_large_report_is_made_by_the_pool_as_this_process_makes_it(month_db, tmp_path, monkeypatch):
    """From POOL_MIN_ROWS rows on (a province's report), the run's read pool makes the workbook:
    every cell and format the same as this process makes them."""
    from flows.ingest import sandbox
    from flows.outputs import workbook
    here = openpyxl.load_workbook(write_workbook(month_db, PERIOD, tmp_path / "here"))
    monkeypatch.setattr(workbook, "POOL_MIN_ROWS", 1)
    calls = []
    try:
        path = write_workbook(month_db, PERIOD, tmp_path / "pooled", None,
                              lambda fn, batches: calls.append(len(batches)) or sandbox.map_in_pool(fn, batches))
    finally:
        sandbox.close_pool()
    pooled = openpyxl.load_workbook(path)
    assert calls == [1] and pooled.sheetnames == here.sheetnames == list(SHEETS)
    for name in SHEETS:
        cells = [[(c.value, c.number_format, c.fill.fgColor.rgb) for c in row] for row in here[name].iter_rows()]
        assert [[(c.value, c.number_format, c.fill.fgColor.rgb) for c in row] for row in pooled[name].iter_rows()] == cells
        assert len(cells) > 1


def test_a_pool_that_is_up_makes_the_report_whatever_its_size(month_db, tmp_path):
    """A month that read its files on the pool has its report made there (sandbox.pool_up), the
    same cells; with no pool up, a report below POOL_MIN_ROWS is made here."""
    from flows.ingest import sandbox
    here = openpyxl.load_workbook(write_workbook(month_db, PERIOD, tmp_path / "here"))
    calls = []

    def counted(fn, batches):
        calls.append(len(batches))
        return sandbox.map_in_pool(fn, batches)

    write_workbook(month_db, PERIOD, tmp_path / "cold", None, counted, sandbox.pool_up())
    assert calls == []
    try:
        assert sandbox.map_in_pool(len, [[1]]) == [1] and sandbox.pool_up()
        path = write_workbook(month_db, PERIOD, tmp_path / "pooled", None, counted, sandbox.pool_up())
    finally:
        sandbox.close_pool()
    assert calls == [1]
    pooled = openpyxl.load_workbook(path)
    for name in SHEETS:
        assert ([[c.value for c in row] for row in pooled[name].iter_rows()]
                == [[c.value for c in row] for row in here[name].iter_rows()])
