"""Files as offices really send them (tests/fixtures/messy, built by build_messy.py): each case
is read correctly or refused with its reason, and a messy month equals the same month sent clean."""
from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import pytest

from conftest import FIXTURES
from flows.monthly import monthly_rollup

SG01_FIELDS = ["unit_code", "unit_name", "registered_population", "elderly_population", "community_workers",
               "community_workers_certified", "party_secretary_certified", "community_social_orgs", "volunteer_teams",
               "has_social_work_room", "has_charity_fund", "child_directors", "child_directors_trained"]
A = ("510402001002", "大渡口街社区居民委员会", 5000, 900, 8, 3, True, 10, 2, True, False, 1, 1)
B = ("510402001004", "东方红社区居民委员会", 4000, 1100, 6, 2, False, 6, 1, False, False, 1, 0)


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    inbox = tmp_path_factory.mktemp("messy")
    shutil.copytree(FIXTURES / "messy", inbox, dirs_exist_ok=True)
    db = inbox / "w.duckdb"
    monthly_rollup(period="2024-03", inbox=str(inbox), db=str(db))
    con = duckdb.connect(str(db), read_only=True)
    yield con
    con.close()


def sg01_rows(con, path, sheet=None):
    q = f"select excel_row, {', '.join(SG01_FIELDS)}, accepted from staging.sg01 where source_file = ?"
    args = [path]
    if sheet:
        q += " and source_sheet = ?"
        args.append(sheet)
    return con.execute(q + " order by excel_row", args).fetchall()


@pytest.mark.parametrize("path, rows", [
    ("01_title_rows.xlsx", [(6, *A, True), (7, *B, True)]),               # four title rows
    ("02_merged_header.xlsx", [(4, *A, True), (5, *B, True)]),            # 社区专职工作者 over 人数 / 其中持证
    ("03_header_variants.xlsx", [(2, *A, True), (3, *B, True)]),          # (人), 半角括号, 空格, 换行, 统一代码
    ("04_totals_and_footer.xlsx", [(3, *A, True), (6, *B, True)]),        # 小计, blank rows, 合 计, footer
    ("05_numbers_as_text.xlsx", [(2, *A, True), (3, *B, True)]),          # ５０００, 900人, " 8 ", 4,000
    ("06_codes_as_numbers.xlsx", [(2, *A, True), (3, *B, True)]),
    ("09_libreoffice.xls", [(4, *A, True), (5, *B, True)]),
    ("10_libreoffice.ods", [(4, *A, True), (5, *B, True)]),
    ("11_excel_gbk.csv", [(2, *A, True), (3, *B, True)]),
    ("12_utf8.csv", [(2, *A, True), (3, *B, True)]),
    ("13_utf8_bom.csv", [(2, *A, True), (3, *B, True)]),
    ("14_gb18030.csv", [(2, A[0], "大渡口街社区\U00020000", *A[2:], True), (3, *B, True)]),
    ("25_huge_blank_range.xlsx", [(2, *A, True), (3, *B, True)]),          # 100,000 formatted blank rows
])
def test_read_exactly(messy, path, rows):
    assert sg01_rows(messy, path) == rows


def test_yes_no_variants(messy):
    # 有/无, Y/N, n
    assert sg01_rows(messy, "07_yes_no_variants.xlsx", "有无") == [(2, *A, True), (3, *B, True)]
    # √ or blank: a blank in a ticked column is 否; a column with no tick at all stays unknown.
    ticks = sg01_rows(messy, "07_yes_no_variants.xlsx", "打勾")
    assert ticks == [(2, *A[:10], None, *A[11:], True), (3, *B[:10], None, *B[11:], True)]


def test_date_variants(messy):
    rows = messy.execute("select unit_code, station_opened from staging.sg03 where source_file = "
                         "'08_date_variants.xlsx' order by excel_row").fetchall()
    assert [r[1] for r in rows] == [dt.date(2021, 3, 1)] * 5  # Excel date, 2021-03-01, 2021/3/1, 2021年3月, 2021.03


def test_formulas_and_error_values(messy):
    # =2500*2 and =6/2 give their results; =1/0 is #DIV/0!, reported, never taken as blank or 0.
    rows = sg01_rows(messy, "26_formulas_and_errors.xlsx")
    assert rows[0] == (2, *A, True)
    assert rows[1][:4] == (3, B[0], B[1], None) and rows[1][-1] is False
    msg = messy.execute("select message_zh from ingest.failures where path = '26_formulas_and_errors.xlsx'").fetchall()
    assert msg == [("文件「26_formulas_and_errors.xlsx」工作表「formulas」第 3 行：「户籍人口」的值「#DIV/0!」无法识别，"
                    "应为不小于0的整数",)]


@pytest.mark.parametrize("path, status, reason", [
    ("20_empty.xlsx", "rejected", "空文件（0 字节）；请重新报送"),
    ("21_not_a_spreadsheet.xlsx", "rejected", "文件扩展名是.xlsx，但内容不是电子表格；请用 Excel 或 WPS 另存为 .xlsx 后重新报送"),
    ("22_password.xlsx", "rejected", "文件设置了打开密码，无法读取；请取消密码后重新报送"),
    ("23_corrupt.xlsx", "rejected", "文件已损坏或不是有效的电子表格，无法打开；请重新导出后报送"),
    ("01_title_rows.xlsx", "read", None),
])
def test_whole_files_refused_with_their_reason(messy, path, status, reason):
    assert messy.execute("select status, reason_zh from ingest.files where path = ?", [path]).fetchone() == (status, reason)


@pytest.mark.parametrize("path, status, reason", [
    ("24_scientific_codes.csv", "rejected",
     "「村（社区）代码」列的代码被 Excel 显示成了科学计数法（如 5.10402E+11），原来的12位代码已无法恢复；"
     "请把该列设为文本格式，重新填写完整代码后报送"),
    ("27_last_month_again.xlsx", "rejected",
     "表内填报月份为 2024-02，与报送月份 2024-03 不符（可能是上月文件重复报送）；请核对后重新报送"),
    ("28_notes_only.xlsx", "skipped", "说明页，不含报送数据"),
])
def test_whole_sheets_refused_with_their_reason(messy, path, status, reason):
    assert messy.execute("select status, reason_zh from ingest.sheets where path = ?", [path]).fetchone() == (status, reason)
    assert messy.execute("select count(*) from staging.sg01 where source_file = ?", [path]).fetchone()[0] == 0


def test_every_file_of_the_corpus_is_recorded(messy):
    files = messy.execute("select count(*), count(*) filter (where status = 'rejected') from ingest.files").fetchone()
    assert files == (23, 4)


def test_gb18030_name_is_a_warning_not_mojibake(messy):
    rows = messy.execute("select rule, severity, value from ingest.failures where path = '14_gb18030.csv'").fetchall()
    assert rows == [("registry_name", "warning", "大渡口街社区\U00020000")]


def test_sender_named_with_office_words_is_resolved(messy):
    # 填报单位：大渡口街道办事处 → 大渡口街道
    assert messy.execute("select sender_code from ingest.sheets where path = '01_title_rows.xlsx'").fetchone() == (
        "510402001000",)


def test_messy_month_gives_the_same_indicators_as_the_clean_one(tmp_path):
    clean, messy = tmp_path / "clean.duckdb", tmp_path / "messy.duckdb"
    monthly_rollup(period="2024-03", inbox=str(FIXTURES / "inbox"), db=str(clean))
    monthly_rollup(period="2024-03", inbox=str(FIXTURES / "messy_month"), db=str(messy))
    q = ("select unit_code, indicator_id, value, numerator, denominator, target, met, gap "
         "from mart.indicator_values order by unit_code, indicator_id")
    with duckdb.connect(str(clean), read_only=True) as a, duckdb.connect(str(messy), read_only=True) as b:
        expected, got = a.execute(q).fetchall(), b.execute(q).fetchall()
        assert len(got) == 6966 and got == expected
        # Same rows rejected, for the same reasons, though the files and row numbers differ.
        rules = "select form, rule, count(*) from ingest.failures where severity = 'error' group by all order by all"
        assert b.execute(rules).fetchall() == a.execute(rules).fetchall()
        formats = b.execute("select format, count(*) from ingest.files group by all order by all").fetchall()
        assert formats == [("jpg", 1), ("ods", 3), ("xls", 2), ("xlsx", 3)]
