"""Reading the fixture files: forms recognised from content, headers found, values converted."""
from __future__ import annotations

import datetime as dt

import pytest

from conftest import INBOX, PERIOD
from flows import pii
from flows.config import SCHEMAS
from flows.ingest.discover import discover
from flows.ingest.read import read_file
from flows.ingest.sandbox import decode_text
from flows.schemas import load_forms, normalise_header
from flows.ingest.convert import convert, credit_code_valid, id_number_valid
from flows.schemas import Field

FORMS = load_forms(SCHEMAS)
ROOT = INBOX / PERIOD


def read(rel: str):
    return read_file(ROOT / rel, ROOT, PERIOD, FORMS, pii.load_key())


def test_discover_finds_every_file_in_subfolders():
    assert [p.relative_to(ROOT).as_posix() for p in discover(INBOX, PERIOD)] == [
        "东区/上月报表.xlsx", "东区/东区民政局3月.xlsx", "东区/大渡口街道/新建 Microsoft Excel 工作表.xlsx",
        "东区/照片.jpg", "东区/说明.xlsx", "市本级/市级机构.csv", "市本级/市综合.csv", "米易县/SG-02台账.csv",
        "米易县/攀莲镇2024年3月社工报表.xls"]


def test_xlsx_with_title_rows_total_row_and_footer():
    record, rows = read("东区/大渡口街道/新建 Microsoft Excel 工作表.xlsx")
    assert record.status == "read" and len(record.sha256) == 64
    sheets = {s.sheet: (s.form, s.header_row, s.data_rows, s.sender) for s in record.sheets}
    assert sheets == {"村社区月报": ("SG-01", 4, 4, "大渡口街道"), "人才台账": ("SG-02", 3, 8, "大渡口街道"),
                      "社工站": ("SG-03", 3, 1, "大渡口街道")}
    sg01 = rows["SG-01"]
    # The 合计 row and the footer (with a name and a phone number) are not data.
    assert [r["unit_code"] for r in sg01] == ["510402001002", "510402001004", "510402001005", "510402001006"]
    assert [r["_row"] for r in sg01] == [5, 6, 7, 8]
    assert sg01[2]["registered_population"] == 3000  # "３０００人"
    assert sg01[2]["community_workers_certified"] is None  # blank stays missing
    assert sg01[0]["has_social_work_room"] is True and sg01[1]["has_social_work_room"] is False


def test_roster_holds_no_personal_data_after_reading():
    _, rows = read("东区/大渡口街道/新建 Microsoft Excel 工作表.xlsx")
    r = rows["SG-02"][0]
    assert r["name"] == "已填" and r["phone"] == "已填"
    assert len(r["id_number"]) == 32 and r["id_number__valid"] is True
    assert r["sex_from_id"] == "男" and r["birth_year"] == 1985
    assert r["service_fields"] == ["老年", "社区治理"]
    assert rows["SG-02"][6]["service_fields"] == ["老年", "未成年人"]  # "老年/未成年人"
    assert rows["SG-02"][6]["registration_start"] == dt.date(2024, 1, 1)  # "2024/1/1"


def test_xls_with_code_stored_as_number_and_numbers_as_text():
    record, rows = read("米易县/攀莲镇2024年3月社工报表.xls")
    assert record.format == "xls" and [s.form for s in record.sheets] == ["SG-01", "SG-03"]
    third = rows["SG-01"][2]
    assert third["unit_code"] == "510421100201"  # stored as a number by the sender's Excel
    assert third["registered_population"] == 1200 and third["community_workers"] == 3  # "1,200", "3人"
    assert rows["SG-03"][0]["station_in_service"] is False and rows["SG-03"][0]["station_opened"] is None


def test_gbk_csv_is_decoded_not_mangled():
    record, rows = read("米易县/SG-02台账.csv")
    assert record.sheets[0].form == "SG-02" and record.sheets[0].data_rows == 4
    assert rows["SG-02"][2]["registration_start"] == dt.date(2021, 9, 1)  # "2021年9月"
    assert rows["SG-02"][1]["certificate_level"] == "助理社会工作师"


def test_utf8_bom_csv_without_title():
    record, rows = read("市本级/市综合.csv")
    assert record.sheets[0].form == "SG-06" and record.sheets[0].header_row == 1
    assert rows["SG-06"][0]["province_pass_rate_pct"] == 20.5


@pytest.mark.parametrize("rel, zh", [
    ("东区/说明.xlsx", "文件扩展名是.xlsx，但内容不是电子表格；请用 Excel 或 WPS 另存为 .xlsx 后重新报送"),
    ("东区/照片.jpg", "不是电子表格（.jpg）；请报送 .xlsx、.xls、.ods 或 .csv 文件"),
])
def test_unreadable_files_are_recorded_with_the_reason(rel, zh):
    record, rows = read(rel)
    assert (record.status, record.reason_zh, rows) == ("rejected", zh, {})
    assert record.size_bytes > 0 and len(record.sha256) == 64


def test_sheet_stating_another_month_is_refused():
    record, rows = read("东区/上月报表.xlsx")
    sheet = record.sheets[0]
    assert (sheet.form, sheet.status) == ("SG-01", "rejected")
    assert sheet.reason_zh == "表内填报月份为 2024-02，与报送月份 2024-03 不符（可能是上月文件重复报送）；请核对后重新报送"
    assert rows == {}


def test_decode_text_encodings():
    text = "村（社区）代码,户籍人口"
    assert decode_text(text.encode("gbk")) == text
    assert decode_text(text.encode("gb18030")) == text
    assert decode_text(b"\xef\xbb\xbf" + text.encode()) == text
    assert decode_text(text.encode()) == text


@pytest.mark.parametrize("raw, norm", [
    ("户籍人口（人）", "户籍人口"), ("村(社区)代码", "村(社区)代码"), ("村（社区）\n代码", "村(社区)代码"),
    (" 社区专职工作者 人数 ", "社区专职工作者人数"), ("承接政府购买服务金额（万元）", "承接政府购买服务金额"),
])
def test_normalise_header(raw, norm):
    assert normalise_header(raw) == norm


@pytest.mark.parametrize("type_, raw, expected", [
    ("integer", "１２", (12, True)), ("integer", "12人", (12, True)), ("integer", "1,234", (1234, True)),
    ("integer", 7.0, (7, True)), ("integer", "七", (None, False)), ("integer", "", (None, True)),
    ("integer", None, (None, True)), ("integer", "#DIV/0!", (None, False)),
    ("yesno", "是", (True, True)), ("yesno", "有", (True, True)), ("yesno", "√", (True, True)),
    ("yesno", "N", (False, True)), ("yesno", "无", (False, True)), ("yesno", "也许", (None, False)),
    ("date", "2021-03-01", (dt.date(2021, 3, 1), True)), ("date", "2021/3/1", (dt.date(2021, 3, 1), True)),
    ("date", "2021年3月", (dt.date(2021, 3, 1), True)), ("date", "2021.03", (dt.date(2021, 3, 1), True)),
    ("date", 44256.0, (dt.date(2021, 3, 1), True)), ("date", "2021-02-30", (None, False)),
    ("code", "510402001002", ("510402001002", True)), ("code", 510402001002.0, ("510402001002", True)),
    ("code", "5.10402E+11", (None, False)), ("percent", "35%", (35.0, True)),
])
def test_convert(type_, raw, expected):
    assert convert(Field("f", "f", type_), raw) == expected


def test_check_digits():
    assert id_number_valid("11010519491231002X")
    assert not id_number_valid("110105194912310021")  # wrong check character
    assert not id_number_valid("110105194913310028")  # no 13th month
    assert credit_code_valid("91350100M000100Y43")
    assert not credit_code_valid("91350100M000100Y44")


def test_a_link_out_of_the_inbox_is_refused_and_the_month_goes_on(tmp_path):
    import shutil
    root = tmp_path / "inbox" / PERIOD
    shutil.copytree(ROOT, root)
    secret = tmp_path / "outside.csv"
    secret.write_text("村（社区）代码,户籍人口\n510402001002,1\n", encoding="utf-8")
    (root / "东区" / "link.csv").symlink_to(secret)
    record, rows = read_file(root / "东区" / "link.csv", root, PERIOD, FORMS, pii.load_key())
    assert (record.status, record.reason_zh, rows) == (
        "rejected", "文件是指向收件目录之外的链接，不予读取；请直接报送文件本身", {})
    assert "东区/link.csv" in [p.relative_to(root).as_posix() for p in discover(tmp_path / "inbox", PERIOD)]


def test_a_reader_panic_rejects_the_file_only(monkeypatch, tmp_path):
    import python_calamine
    path = tmp_path / "x.xlsx"
    path.write_bytes((ROOT / "东区" / "东区民政局3月.xlsx").read_bytes())

    class Panic(BaseException):  # what pyo3 raises when the Rust reader panics
        pass

    def boom(*args, **kwargs):
        raise Panic("index out of bounds")
    monkeypatch.setattr(python_calamine.CalamineWorkbook, "from_filelike", boom)
    # Parsing itself, as the reader process runs it (a reader that dies outright is
    # test_hostile's test_a_reader_that_dies_rejects_its_file_only_and_the_next_file_is_read).
    from flows.ingest.sandbox import FileRejected, parse_workbook
    with pytest.raises(FileRejected) as exc:
        parse_workbook(".xlsx", path.read_bytes())
    assert exc.value.en == "spreadsheet reader failed: Panic: index out of bounds"


def test_footers_naming_contacts_are_not_data_and_semicolon_csv_is_read(tmp_path):
    root = tmp_path / PERIOD
    root.mkdir()
    header = "村（社区）代码;村（社区）名称;户籍人口;社区专职工作者人数;其中持证人数"
    lines = [header, "510402001002;大渡口街社区居民委员会;5000;8;3", "联系人：王五 13812345678",
             "经办人：赵六;电话;13900001111"]
    (root / "a.csv").write_bytes("\r\n".join(lines).encode("gbk"))
    record, rows = read_file(root / "a.csv", root, PERIOD, FORMS, pii.load_key())
    assert record.sheets[0].form == "SG-01" and record.sheets[0].data_rows == 1
    assert [(r["unit_code"], r["registered_population"], r["community_workers_certified"]) for r in rows["SG-01"]] == [
        ("510402001002", 5000, 3)]


@pytest.mark.parametrize("cell, month", [
    ("二〇二五年五月社会工作月报表", "2025-05"), ("二零二五年十二月", "2025-12"), ("2025年十一月", "2025-11"),
    ("25年5月", "2025-05"), ("2025年05月份", "2025-05"), ("２０２５年５月", "2025-05"), ("统计期：2025.5", "2025-05"),
    ("2025-05", "2025-05"), ("报告期 2025/5", "2025-05"), ("截至2025.05.31", "2025-05"),
    (dt.date(2025, 5, 1), "2025-05"), (dt.datetime(2025, 5, 1), "2025-05"),
    # A filing date is when the sheet was filled in, not its month; neither a range nor a year is a month.
    ("统计期：2025年5月 填报日期：2025年6月3日", "2025-05"), ("填报日期：2025-06-03", None), ("2025年1-5月", None),
    ("2025年度", None), ("二〇二五年", None), ("十二月", None), ("电话：13900000000", None), (20250501.0, None),
])
def test_the_month_a_title_cell_states(cell, month):
    from flows.ingest.layout import stated_month
    assert stated_month(cell) == month


@pytest.mark.parametrize("pasted", ["'510499198503124113", "510499\u200b198503124113", "5104991985\u00a003124113",
                                    " 510499198503124113\ufeff", "‘510499198503124113"])
def test_id_numbers_as_pasted_are_cleaned(pasted):
    from flows.ingest.convert import clean_pasted_code, id_number_old
    assert clean_pasted_code(pasted) == "510499198503124113"
    assert not id_number_old(clean_pasted_code(pasted)) and id_number_old("510499850312411")


def test_id_numbers_checked_by_column_as_one_by_one():
    """The ID check as Polars expressions over a column (convert.id_columns) says what the
    functions say of each number: valid, old, sex and birth year; the hash is the keyed one."""
    from flows.ingest.convert import id_columns, id_number_old, id_sex
    # Valid, a wrong check character, no 13th month, a leap day, no 30 February and no year 0
    # (each with its right check character), old 15-digit, lower-case x, too short, too long.
    ids = ["11010519491231002X", "110105194912310021", "110105194913310028", "510499198503124110",
           "510499198503124123", "510499200002294111", "510499200002304113", "000000000000000001",
           "510499850312411", "51049919850312411x", "5104991985031241",
           "5104991985031241134", "ABCDEFGHIJKLMNOPQR", "",
           # Arabic-Indic digits: \d in both regex engines, not castable in Polars.
           "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X", None]
    key = b"k" * 32
    got = id_columns("id_number", ids, key)
    want_old = [id_number_old(s) if s else None for s in ids]
    want_valid = [None if not s or id_number_old(s) else id_number_valid(s) for s in ids]
    assert got["id_number__old"].to_list() == want_old
    assert got["id_number__valid"].to_list() == want_valid
    assert want_valid.count(True) == 4  # the fixtures above hold valid numbers, not only invalid ones
    assert got["sex_from_id"].to_list() == [id_sex(s) if v else None for s, v in zip(ids, want_valid)]
    assert got["birth_year"].to_list() == [int(s[6:10]) if v else None for s, v in zip(ids, want_valid)]
    assert got["id_number"].to_list() == [pii.person_key(key, s) if s else None for s in ids]


def test_one_reader_process_reads_file_after_file():
    """The sandboxed reader process is started once and kept across files (a file that kills it
    costs only its own process: test_hostile)."""
    from flows.ingest import sandbox
    pids = []
    for rel in ("东区/东区民政局3月.xlsx", "东区/大渡口街道/新建 Microsoft Excel 工作表.xlsx", "米易县/攀莲镇2024年3月社工报表.xls"):
        record, _ = read(rel)
        assert record.status == "read"
        pids.append(sandbox._READER.proc.pid)
    assert len(set(pids)) == 1 and sandbox._READER.proc.poll() is None
