"""A unit's rows resent in a newer file of the month replace the older ones, whole; the older
file stays recorded. Other senders' rows for other keys are untouched."""
from __future__ import annotations

import os

import duckdb

from fixtures.build_fixtures import P1, P2, SG02, SG05, roster, write_xlsx
from flows.monthly import monthly_rollup


def test_newest_file_wins_per_unit_and_key(tmp_path):
    month = tmp_path / "inbox" / "2024-05"
    old, new, city = month / "a" / "first.xlsx", month / "a" / "again.xlsx", month / "city.xlsx"
    write_xlsx(old, [("台账", [SG02,
                                roster("510402001002", "赵一", P1, "男", "社区专职工作者", "无", None, None, None, "老年", "否"),
                                roster("510402001002", "钱二", P2, "女", "社区专职工作者", "无", None, None, None, "老年", "否")])])
    # The correction: 钱二 has left, so the resent roster lists 赵一 only.
    write_xlsx(new, [("台账", [SG02,
                                roster("510402001002", "赵一", P1, "男", "社区专职工作者", "无", None, None, None, "老年", "否")])])
    # Institutions standing in the same street, listed by the county (in `old`) and by the city.
    write_xlsx(old.with_name("inst.xlsx"), [("岗位", [SG05, ["510402001000", "甲福利院", "养老机构", "是", 50, 1, 1, "否"]])])
    write_xlsx(city, [("岗位", [SG05, ["510402001000", "乙救助站", "社会救助服务机构", "是", 20, 0, 0, "否"]])])
    for i, p in enumerate([old, old.with_name("inst.xlsx"), city, new]):
        os.utime(p, (1_714_600_000 + i * 3600, 1_714_600_000 + i * 3600))
    db = tmp_path / "w.duckdb"
    monthly_rollup(period="2024-05", inbox=str(tmp_path / "inbox"), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select source_file, superseded, counted from staging.sg02 order by source_file, excel_row").fetchall()
        assert rows == [("a/again.xlsx", False, True), ("a/first.xlsx", True, False), ("a/first.xlsx", True, False)]
        talents = con.execute("select value from mart.indicator_values where unit_code = '510402001002' "
                              "and indicator_id = 'talent_total'").fetchone()[0]
        assert talents == 1
        assert con.execute("select count(*) from ingest.files where status = 'read'").fetchone()[0] == 4
        coverage = con.execute("select numerator, denominator from mart.indicator_values where unit_code = "
                               "'510400000000' and indicator_id = 'civil_affairs_institution_post_coverage'").fetchone()
        assert coverage == (1.0, 2.0)


def test_a_unit_repeated_in_one_file_counts_once_with_its_last_row(tmp_path):
    from fixtures.build_fixtures import SG01
    month = tmp_path / "inbox" / "2024-05"
    write_xlsx(month / "t.xlsx", [("月报", [SG01,
        ["510402001002", "大渡口街社区居民委员会", 5000, 900, 8, 3, "是", 10, 2, "是", "否", 1, 1],
        ["510402001002", "大渡口街社区居民委员会", 5100, 900, 9, 4, "是", 10, 2, "是", "否", 1, 1]])])
    db = tmp_path / "w.duckdb"
    monthly_rollup(period="2024-05", inbox=str(tmp_path / "inbox"), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select excel_row, superseded, counted from staging.sg01 order by excel_row").fetchall() == [
            (2, True, False), (3, False, True)]
        assert con.execute("select numerator, denominator from mart.indicator_values where unit_code = "
                           "'510402001000' and indicator_id = 'community_worker_certified_share'").fetchone() == (4.0, 9.0)
