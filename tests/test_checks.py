"""Checks across rows, forms and months that the fixture month does not exercise."""
from __future__ import annotations


import duckdb

from fixtures.build_fixtures import P1, SG01, SG02, SG04, credit_code, roster, write_xlsx
from flows.monthly import monthly_rollup


def test_month_on_month_jump_is_a_warning_and_the_row_still_counts(tmp_path):
    inbox = tmp_path / "inbox"
    base = ["510402001002", "大渡口街社区居民委员会", 5000, 900, 8, 3, "是", 10, 2, "是", "否", 1, 1]
    write_xlsx(inbox / "2024-04" / "a.xlsx", [("月报", [SG01, base])])
    halved = base[:2] + [2400] + base[3:]  # population halved: likely a typo
    write_xlsx(inbox / "2024-05" / "a.xlsx", [("月报", [SG01, halved])])
    db = tmp_path / "w.duckdb"
    monthly_rollup(period="2024-04", inbox=str(inbox), db=str(db))
    monthly_rollup(period="2024-05", inbox=str(inbox), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select period, excel_row, column_header, value, rule, severity, detail_zh "
                           "from ingest.failures where rule = 'month_on_month'").fetchall()
        assert rows == [("2024-05", 2, "户籍人口", "2400", "month_on_month", "warning",
                         "「户籍人口」本月为 2400，上月为 5000，变化超过一倍；如填报无误可忽略此提示，否则请更正后重新报送")]
        assert con.execute("select counted from staging.sg01 where period = '2024-05'").fetchone() == (True,)


def test_sex_must_agree_with_the_id_number_and_credit_codes_their_check_character(tmp_path):
    month = tmp_path / "inbox" / "2024-05"
    write_xlsx(month / "a.xlsx", [
        ("台账", [SG02, roster("510402001002", "赵一", P1, "女", "社区专职工作者", "无", None, None, None, "老年", "否")]),
        ("机构", [SG04, ["510402000000", "甲中心", credit_code("52510402MJ0000011")[:-1] + "0", "2018-05-01", "是",
                         3, 1, 0, "联合党支部", 0, 0]]),
    ])
    db = tmp_path / "w.duckdb"
    monthly_rollup(period="2024-05", inbox=str(tmp_path / "inbox"), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select form, rule, value, detail_zh from ingest.failures order by form").fetchall()
        assert rows == [
            ("SG-02", "sex_matches_id", "女", "「性别」为「女」，与公民身份号码（第17位）表示的性别不符；请核对性别或号码"),
            ("SG-04", "check_digit", rows[1][2], f"「统一社会信用代码」{rows[1][2]} 不是有效的统一社会信用代码（校验码不对）；请核对"),
        ]
        assert rows[1][2].endswith("0") and len(rows[1][2]) == 18
