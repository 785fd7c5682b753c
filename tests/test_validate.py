"""Validation failures of the fixture month, word for word as the sender reads them."""
from __future__ import annotations

FILE_A = "东区/大渡口街道/新建 Microsoft Excel 工作表.xlsx"


def test_failures_name_file_sheet_row_column_value_and_fix(con):
    rows = con.execute("select form, path, sheet, excel_row, column_header, value, rule, severity, message_zh "
                       "from ingest.failures where period = '2024-03' order by form, excel_row").fetchall()
    assert rows == [
        ("SG-01", FILE_A, "村社区月报", 8, "其中持证人数", "5", "le", "error",
         f"文件「{FILE_A}」工作表「村社区月报」第 8 行：「其中持证人数」（5）不能大于「社区专职工作者人数」（4）"),
        ("SG-02", FILE_A, "人才台账", 9, "公民身份号码", "（已隐去）", "check_digit", "error",
         f"文件「{FILE_A}」工作表「人才台账」第 9 行：「公民身份号码」不是有效的公民身份号码（出生日期或校验位不对）；"
         f"请核对（号码不在此显示）"),
        ("SG-02", FILE_A, "人才台账", 11, "取证年份", "", "required_when", "error",
         f"文件「{FILE_A}」工作表「人才台账」第 11 行：「取证年份」在「职业水平等级」为“助理社会工作师、社会工作师、"
         f"高级社会工作师”时必须填写"),
        ("SG-04", "东区/东区民政局3月.xlsx", "机构", 6, "正式党员人数", "2", "min_when", "error",
         "文件「东区/东区民政局3月.xlsx」工作表「机构」第 6 行：「正式党员人数」为 2；「党建形式」为“单独建立党组织”时应不少于 3"),
    ]


def test_registry_type_enum_and_warning_failures():
    from flows.config import SCHEMAS, load_settings
    from flows.read import to_frame
    from flows.registry import load_units, unit_index
    from flows.schemas import load_forms
    from flows.validate import validate

    form = load_forms(SCHEMAS)["SG-03"]
    units = unit_index(load_units(load_settings().units_csv))
    base = {"_file": "a.xlsx", "_sheet": "S", "_received_at": None}
    rows = [
        dict(base, _row=4, unit_code="510402001000", unit_name="大渡口街道", station_in_service=True,
             station_opened=None, operation_mode="外包"),
        # A village's code on the township form; its short name (no 居民委员会) is not a mismatch.
        dict(base, _row=5, unit_code="510402001002", unit_name="大渡口街社区", station_in_service=False),
        dict(base, _row=6, unit_code="510402002000", unit_name="炳草岗", station_in_service=None,
             station_in_service__ok=False, station_in_service__raw="建设中"),
    ]
    frame, failures = validate(form, to_frame(form, rows), units, {("a.xlsx", "S"): {"operation_mode": "运营模式"}})
    got = sorted(failures.select("excel_row", "rule", "severity", "message_zh").iter_rows())
    prefix = "文件「a.xlsx」工作表「S」第 {} 行："
    assert got == [
        (4, "enum", "error", prefix.format(4) + "「运营模式」为「外包」，应为以下之一：政府购买服务、自建自营、其他"),
        (4, "required_when", "error", prefix.format(4) + "「建站日期」在「是否建成社工站」为“是”时必须填写"),
        (5, "registry", "error", prefix.format(5) + "「乡镇（街道）代码」510402001002 不是区划登记册中的乡镇（街道）代码；"
                                                    "请填写12位统计用区划代码"),
        (6, "registry_name", "warning", prefix.format(6) + "「乡镇（街道）名称」「炳草岗」与登记册中该代码的名称不一致；请核对代码和名称"),
        (6, "type", "error", prefix.format(6) + "「是否建成社工站」的值「建设中」无法识别，应为“是”或“否”"),
    ]
    assert frame["accepted"].to_list() == [False, False, False]
