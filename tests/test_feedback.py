"""Feedback workbooks for senders, read back as a sender's Excel would show them."""
from __future__ import annotations

import shutil
import zipfile

import duckdb
import openpyxl
import pytest

from flows.errors import ConfigError
from flows.outputs.feedback import safe_file_name, write_feedback

PERIOD = "2024-03"
FILE_A = "东区/大渡口街道/新建 Microsoft Excel 工作表.xlsx"
FIXTURE_BOOKS = ["510402000000-东区.xlsx", "510402001000-大渡口街道.xlsx", "510421100000-攀莲镇.xlsx"]
HEADER = ("文件", "工作表", "行号", "列", "填写的值", "问题及应填内容", "类别")


def conflict(where: str, counted: str) -> str:
    return f"此人本月同时列在{where}的台账中；按计数规则只计一次，计入「{counted}」。如已调离，请从相应台账中删除"


@pytest.fixture
def warehouse(month_db, tmp_path):
    """A writable copy of the fixture month, for tests that change its problems."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(month_db, copy)
    return copy


def problem_rows(path):
    ws = openpyxl.load_workbook(path)["问题清单"]
    return [tuple(c.value for c in row) for row in ws.iter_rows(min_row=4, max_col=7)]


def test_fixture_month_writes_one_workbook_per_sender_with_problems(month_db, tmp_path):
    paths = write_feedback(month_db, PERIOD, tmp_path)
    assert [p.name for p in paths] == FIXTURE_BOOKS
    assert all(p.parent == tmp_path / PERIOD for p in paths)
    # The city (市本级) sent clean files: no workbook.
    assert sorted(p.name for p in (tmp_path / PERIOD).iterdir()) == FIXTURE_BOOKS


def test_layout_title_counts_header_and_notes(month_db, tmp_path):
    path = write_feedback(month_db, PERIOD, tmp_path)[1]
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["问题清单", "说明"]
    ws = wb["问题清单"]
    assert ws["A1"].value == "大渡口街道（510402001000）2024年3月 报送数据问题清单"
    assert ws["A2"].value.startswith("错误 3 条，警告 3 条。错误所在的行")
    assert "请更正后在本月内重新报送整份文件" in ws["A2"].value
    assert tuple(c.value for c in ws[3]) == HEADER
    assert ws.freeze_panes == "A4"
    assert ws["F4"].alignment.wrap_text
    assert all(ws.column_dimensions[c].width >= 6 for c in "ABCDEFG")
    assert ws.column_dimensions["F"].width >= 40
    notes = [r[0] for r in wb["说明"].iter_rows(values_only=True)]
    assert any("重新报送整份文件" in n for n in notes)
    assert wb.properties.created.isoformat() == "2024-03-01T00:00:00"


def test_every_cell_of_the_street_problems(month_db, tmp_path):
    path = write_feedback(month_db, PERIOD, tmp_path)[1]
    assert path.name == "510402001000-大渡口街道.xlsx"
    # By file, sheet, row; errors before warnings; "取证年份" was left blank, so no value.
    assert problem_rows(path) == [
        (FILE_A, "人才台账", 4, "公民身份号码", "（已隐去）",
         conflict("大渡口街道（510402001000）", "大渡口街社区居民委员会"), "警告"),
        (FILE_A, "人才台账", 6, "公民身份号码", "（已隐去）",
         conflict("水塘村村民委员会（510421100201）", "东方红社区居民委员会"), "警告"),
        (FILE_A, "人才台账", 8, "公民身份号码", "（已隐去）",
         conflict("大渡口街社区居民委员会（510402001002）", "大渡口街社区居民委员会"), "警告"),
        (FILE_A, "人才台账", 9, "公民身份号码", "（已隐去）",
         "「公民身份号码」不是有效的公民身份号码（出生日期或校验位不对）；请核对（号码不在此显示）", "错误"),
        (FILE_A, "人才台账", 11, "取证年份", None,
         "「取证年份」在「职业水平等级」为“助理社会工作师、社会工作师、高级社会工作师”时必须填写", "错误"),
        (FILE_A, "村社区月报", 8, "其中持证人数", "5", "「其中持证人数」（5）不能大于「社区专职工作者人数」（4）", "错误"),
    ]
    # Text from the warehouse is text; only our row number is a number.
    ws = openpyxl.load_workbook(path)["问题清单"]
    for row in ws.iter_rows(min_row=1, max_col=7):
        for cell in row:
            if cell.value is not None:
                assert cell.data_type == ("n" if cell.column == 3 and cell.row >= 4 else "s"), cell.coordinate


def test_whole_file_and_whole_sheet_problems_have_no_row_or_column(month_db, tmp_path):
    path = write_feedback(month_db, PERIOD, tmp_path)[0]
    assert problem_rows(path) == [
        ("东区/上月报表.xlsx", "村社区月报", None, None, None,
         "表内填报月份为 2024-02，与报送月份 2024-03 不符（可能是上月文件重复报送）；请核对后重新报送", "错误"),
        ("东区/东区民政局3月.xlsx", "机构", 6, "正式党员人数", "2",
         "「正式党员人数」为 2；「党建形式」为“单独建立党组织”时应不少于 3", "错误"),
        ("东区/照片.jpg", None, None, None, None, "不是电子表格（.jpg）；请报送 .xlsx、.xls、.ods 或 .csv 文件", "错误"),
        ("东区/说明.xlsx", None, None, None, None,
         "文件扩展名是.xlsx，但内容不是电子表格；请用 Excel 或 WPS 另存为 .xlsx 后重新报送", "错误"),
    ]
    # Only warnings: the sender is told the rows count.
    ws = openpyxl.load_workbook(tmp_path / PERIOD / FIXTURE_BOOKS[2])["问题清单"]
    assert ws["A2"].value.startswith("错误 0 条，警告 1 条。数据已纳入汇总")


def test_a_formula_typed_by_a_sender_stays_text(warehouse, tmp_path):
    values = ['=HYPERLINK("http://x","y")', "+1", "-2", "@SUM(A1)"]
    with duckdb.connect(str(warehouse)) as con:
        for i, v in enumerate(values):
            con.execute("insert into ingest.failures (period, form, path, sheet, excel_row, field, column_header, "
                        "value, rule, severity, message_zh, detail_zh, run_id) values (?, 'SG-01', ?, '村社区月报', ?, "
                        "'unit_name', '村（社区）名称', ?, 'type', 'error', 'm', 'd', 'r')",
                        [PERIOD, FILE_A, 20 + i, v])
    path = [p for p in write_feedback(warehouse, PERIOD, tmp_path) if p.name == FIXTURE_BOOKS[1]][0]
    ws = openpyxl.load_workbook(path)["问题清单"]
    cells = [ws.cell(r, 5) for r in range(4, ws.max_row + 1) if ws.cell(r, 3).value in (20, 21, 22, 23)]
    assert [c.value for c in cells] == values
    assert all(c.data_type == "s" for c in cells)
    with zipfile.ZipFile(path) as z:
        assert "<f>" not in z.read("xl/worksheets/sheet1.xml").decode()


def test_rerun_removes_feedback_of_a_sender_now_clean(warehouse, tmp_path):
    out = tmp_path / "out"
    assert [p.name for p in write_feedback(warehouse, PERIOD, out)] == FIXTURE_BOOKS
    (out / PERIOD / "510400000000-攀枝花市.xlsx").write_bytes(b"left from an older run")
    (out / "2024-02").mkdir()
    (out / "2024-02" / "510421100000-攀莲镇.xlsx").write_bytes(b"another month")
    # 攀莲镇 resent its roster without the person listed twice.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("delete from ingest.failures where path = '米易县/SG-02台账.csv'")
    paths = write_feedback(warehouse, PERIOD, out)
    assert [p.name for p in paths] == FIXTURE_BOOKS[:2]
    assert sorted(p.name for p in (out / PERIOD).iterdir()) == FIXTURE_BOOKS[:2]
    assert (out / "2024-02" / "510421100000-攀莲镇.xlsx").exists()  # other months untouched


def test_rerun_gives_identical_bytes(month_db, tmp_path):
    first = {p.name: p.read_bytes() for p in write_feedback(month_db, PERIOD, tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in write_feedback(month_db, PERIOD, tmp_path / "b")}
    assert first == second


def test_unknown_sender_unrecognised_sheet_and_unsafe_names(warehouse, tmp_path):
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update ingest.files set sender_code = null where path = '米易县/SG-02台账.csv'")
        con.execute("update ref.units set name = 'a/b\\c:d*e?f\"g<h>i|j\x07k' where code = '510402000000'")
        # A sheet we could not recognise may hold data: a warning. An empty sheet is no problem.
        for sheet, reason_zh, reason_en in [("Sheet3", "未识别出报表", "no form recognised"),
                                            ("Sheet4", "空工作表", "empty sheet")]:
            con.execute("insert into ingest.sheets (period, path, sheet, data_rows, rows_rejected, status, reason_zh, "
                        "reason_en, run_id) values (?, '市本级/市综合.csv', ?, 0, 0, 'skipped', ?, ?, 'r')",
                        [PERIOD, sheet, reason_zh, reason_en])
    names = [p.name for p in write_feedback(warehouse, PERIOD, tmp_path)]
    assert names == ["000000000000-未识别报送单位.xlsx", "510400000000-攀枝花市.xlsx",
                     "510402000000-a_b_c_d_e_f_g_h_i_j_k.xlsx", "510402001000-大渡口街道.xlsx"]
    assert problem_rows(tmp_path / PERIOD / names[1]) == [
        ("市本级/市综合.csv", "Sheet3", None, None, None, "未识别出报表。如本工作表不含报送数据，可忽略此条", "警告")]
    assert problem_rows(tmp_path / PERIOD / names[0])[0][:3] == ("米易县/SG-02台账.csv", "SG-02台账", 6)


def test_safe_file_name_and_bad_arguments(month_db, tmp_path):
    assert safe_file_name("510402001000-大渡口街道") == "510402001000-大渡口街道"
    assert safe_file_name("1-x/y. ") == "1-x_y"
    with pytest.raises(ConfigError):
        write_feedback(month_db, "2024-3", tmp_path)
    with pytest.raises(ConfigError):
        write_feedback(month_db, "2024-04", tmp_path)  # never rolled up
    with pytest.raises(ConfigError):
        write_feedback(tmp_path / "missing.duckdb", PERIOD, tmp_path)


def test_rerun_writes_again_only_the_lists_that_changed(warehouse, tmp_path):
    out = tmp_path / "out"
    write_feedback(warehouse, PERIOD, out)
    month = out / PERIOD
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in month.iterdir()}
    # 东区's list edited by hand: it is not the file written then, so it is written again.
    (month / FIXTURE_BOOKS[0]).write_bytes(b"edited")
    # 大渡口街道 corrected row 8 of its workbook: its list loses that problem.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("delete from ingest.failures where path = ? and excel_row = 8 and rule = 'le'", [FILE_A])
    paths = write_feedback(warehouse, PERIOD, out)
    assert [p.name for p in paths] == FIXTURE_BOOKS
    fresh = {p.name: p.read_bytes() for p in write_feedback(warehouse, PERIOD, tmp_path / "fresh")}
    assert {p.name: p.read_bytes() for p in month.iterdir()} == fresh
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in month.iterdir()}
    # 攀莲镇's problems are as they were: its file is the same file, untouched.
    assert after[FIXTURE_BOOKS[2]] == before[FIXTURE_BOOKS[2]][:2]
    assert after[FIXTURE_BOOKS[1]] != before[FIXTURE_BOOKS[1]][:2]
    assert fresh[FIXTURE_BOOKS[1]] != before[FIXTURE_BOOKS[1]][2]
    assert len(problem_rows(month / FIXTURE_BOOKS[1])) == len(problem_rows_of(before[FIXTURE_BOOKS[1]][2])) - 1


def problem_rows_of(body: bytes):
    import io
    ws = openpyxl.load_workbook(io.BytesIO(body))["问题清单"]
    return [tuple(c.value for c in row) for row in ws.iter_rows(min_row=4, max_col=7)]


def test_many_lists_are_written_by_the_pool_as_this_process_writes_them(month_db, tmp_path, monkeypatch):
    """From POOL_MIN_WORKBOOKS lists on (a province month's 1,177), the read pool's processes make
    the workbooks: the same bytes, names and manifest as when this process makes them."""
    from flows.ingest import sandbox
    from flows.outputs import feedback
    here = write_feedback(month_db, PERIOD, tmp_path / "here")
    monkeypatch.setattr(feedback, "POOL_MIN_WORKBOOKS", 1)
    monkeypatch.setattr(feedback, "POOL_BATCH", 1)  # a batch per list: the order must hold across batches
    calls = []
    try:
        pooled = write_feedback(month_db, PERIOD, tmp_path / "pooled",
                                lambda fn, batches: calls.append(len(batches)) or sandbox.map_in_pool(fn, batches))
    finally:
        sandbox.close_pool()
    assert calls == [len(here)] and len(here) > 1
    assert [p.name for p in pooled] == [p.name for p in here]
    assert [p.read_bytes() for p in pooled] == [p.read_bytes() for p in here]
    assert ((tmp_path / "pooled" / ".lists" / f"{PERIOD}.json").read_bytes()
            == (tmp_path / "here" / ".lists" / f"{PERIOD}.json").read_bytes())


def test_a_pool_that_is_up_makes_lists_however_few(month_db, tmp_path):
    """A month that read its files on the pool (sandbox.pool_up) has its lists made there whatever
    their number, the same bytes; with no pool up, below POOL_MIN_WORKBOOKS, here."""
    from flows.ingest import sandbox
    from flows.outputs import feedback
    here = write_feedback(month_db, PERIOD, tmp_path / "here")
    assert 1 < len(here) < feedback.POOL_MIN_WORKBOOKS and not sandbox.pool_up()
    calls = []

    def counted(fn, batches):
        calls.append(len(batches))
        return sandbox.map_in_pool(fn, batches)

    write_feedback(month_db, PERIOD, tmp_path / "cold", counted, sandbox.pool_up())
    assert calls == []
    try:
        assert sandbox.map_in_pool(len, [[1, 2]]) == [2] and sandbox.pool_up()
        pooled = write_feedback(month_db, PERIOD, tmp_path / "pooled", counted, sandbox.pool_up())
    finally:
        sandbox.close_pool()
    assert calls == [1] and not sandbox.pool_up()
    assert [p.read_bytes() for p in pooled] == [p.read_bytes() for p in here]
