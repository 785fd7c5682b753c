"""A month of files written the way township offices write them (tests/fixtures/offices, built by
build_offices.py with XlsxWriter and LibreOffice): the month counts what its files say for that
month, and nothing else. Each case used to change the month's figures without a word; here the
exact staging rows, the indicator values (computed by hand below) and the line each sender gets
back are asserted."""
from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import pytest
import python_calamine

from conftest import FIXTURES
from fixtures.build_offices import A, B, C, D_OLD, E, Q1, Q2, Q3, R1, R2, S1, S2, S3, S4, T1, T2, T3, T4, T5
from flows import pii
from flows.monthly import monthly_rollup

PERIOD = "2024-03"
DADUKOU = "东区/大渡口街道/大渡口街道2024年3月报表.xlsx"
CORRECTION = "东区/大渡口街道/大渡口街道2024年3月报表（更正）.xlsx"
BINGCAOGANG = "东区/炳草岗街道/炳草岗街道社会工作报表.xlsx"
PANLIAN_TXT, PANLIAN_CSV = "米易县/攀莲镇月报.txt", "米易县/攀莲镇台账.csv"
QINGXIANGPING = "西区/清香坪街道.xlsx"
DAHE_XLS, DAHE_ODS = "仁和区/大河中路街道台账.xls", "仁和区/大河中路街道台账.ods"
LAST_MONTH_AGAIN = "表内填报月份为 2024-02，与报送月份 2024-03 不符（可能是上月文件重复报送）；请核对后重新报送"
HIDDEN = "隐藏的工作表，不属于报送内容，未读取；如其中是本月数据，请取消隐藏（或复制到可见的工作表）后重新报送"
VERY_HIDDEN = ("深度隐藏的工作表（在 Excel 中无法直接取消隐藏），不属于报送内容，未读取；如其中是本月数据，"
               "请复制到可见的工作表后重新报送")
SG01 = ("unit_code, unit_name, registered_population, elderly_population, community_workers, "
        "community_workers_certified, party_secretary_certified, community_social_orgs, volunteer_teams, "
        "has_social_work_room, has_charity_fund, child_directors, child_directors_trained")


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    """The offices' month rolled up once, on an empty warehouse (its first month)."""
    root = tmp_path_factory.mktemp("offices")
    shutil.copytree(FIXTURES / "offices", root / "inbox", copy_function=shutil.copy2)
    db = root / "warehouse.duckdb"
    summary = monthly_rollup(period=PERIOD, inbox=str(root / "inbox"), db=str(db))
    con = duckdb.connect(str(db), read_only=True)
    yield con, summary, root / "feedback" / PERIOD
    con.close()


def value(con, unit: str, indicator: str):
    return con.execute("select value, numerator, denominator from mart.indicator_values "
                       "where period = ? and unit_code = ? and indicator_id = ?", [PERIOD, unit, indicator]).fetchone()


def sg01(con, path: str):
    return con.execute(f"select source_sheet, excel_row, {SG01}, accepted, counted from staging.sg01 "
                       f"where source_file = ? order by source_sheet, excel_row", [path]).fetchall()


def roster(con, path: str):
    return con.execute("select source_sheet, excel_row, unit_code, person_key, certificate_level, accepted "
                       "from staging.sg02 where source_file = ? order by source_sheet, excel_row", [path]).fetchall()


def key(id_number: str) -> str:
    return pii.person_key(pii.load_key(), id_number)


def feedback(folder, name: str) -> list[tuple]:
    """The problem lines of a sender's workbook: file, sheet, row, column, value, text, 错误/警告."""
    rows = python_calamine.CalamineWorkbook.from_path(folder / name).get_sheet_by_name("问题清单").to_python()
    return [tuple(int(c) if isinstance(c, float) else (c or None) for c in r) for r in rows[3:]]


def sheets(con, path: str):
    return con.execute("select sheet, form, header_row, data_rows, rows_rejected, status, reason_zh from ingest.sheets "
                       "where path = ? order by sheet, header_row", [path]).fetchall()


DADUKOU_ROWS = [
    ("村社区月报", 4, "510402001002", "大渡口街社区居民委员会", 5000, 900, 8, 3, True, 10, 2, True, False, 1, 1, True, True),
    ("村社区月报", 5, "510402001004", "东方红社区居民委员会", 4000, 1100, 6, 2, False, 6, 1, False, False, 1, 0, True, True),
    ("村社区月报", 6, "510402001005", "金福社区居民委员会", 3000, 500, 5, 1, True, 5, 1, True, True, 1, 0, True, True),
    ("村社区月报", 7, "510402001006", "光明社区居民委员会", 2000, 300, 4, 2, False, 3, 1, False, False, 1, 0, True, True),
]


def test_1_last_months_copy_is_refused_however_its_title_states_the_month(month):
    con, _, _ = month
    # Eight sheets of the "更正" file: 二〇二四年二月, 统计期：2024.2, 24年2月, 2024年02月份, an Excel date cell
    # (2024年2月), 二零二四年二月, 报告期：2024-02, （2024/2): each refused with the month it states.
    assert sheets(con, CORRECTION) == [
        (f"Sheet{i}", "SG-01", 3 if i in (2, 5, 7) else 2, 0, 0, "rejected", LAST_MONTH_AGAIN) for i in range(2, 9)
    ] + [("村社区月报", "SG-01", 2, 0, 0, "rejected", LAST_MONTH_AGAIN)]
    # This month's titles in the same ways are read: 二〇二四年三月, （2024.3）, 2024年03月份, an Excel date
    # cell (2024年3月), 24年3月.
    read = con.execute("select path, count(*) from ingest.sheets where status = 'read' and path <> ? "
                       "group by path order by path", [CORRECTION]).fetchall()
    assert read == [(DADUKOU, 2), (BINGCAOGANG, 3), (DAHE_ODS, 1), (DAHE_XLS, 1), (PANLIAN_CSV, 1), (PANLIAN_TXT, 1),
                    (QINGXIANGPING, 3)]
    # The newest file does not replace this month's rows: the township's figures are this month's.
    assert sg01(con, DADUKOU) == DADUKOU_ROWS
    assert con.execute("select count(*) from staging.sg01 where source_file = ?", [CORRECTION]).fetchone() == (0,)
    # 大渡口街道: certified 3 + 2 + 1 + 2 = 8 of 8 + 6 + 5 + 4 = 23 workers (last month's copy: 0 of 23).
    assert value(con, "510402001000", "community_worker_certified_share") == (100 * 8 / 23, 8, 23)


def test_2_hidden_sheets_are_not_read_and_the_sender_is_told(month):
    con, _, folder = month
    assert sheets(con, DADUKOU) == [
        ("人才台账", "SG-02", 2, 5, 1, "read", None),
        ("台账备份", None, None, 0, 0, "skipped", VERY_HIDDEN),
        ("村社区月报", "SG-01", 3, 4, 0, "read", None),
        ("村社区月报 (2)", None, None, 0, 0, "skipped", HIDDEN),
    ]
    # The hidden copy (nobody certified) sorts after the visible sheet and used to win; the very
    # hidden backup roster listed a sixth person of 南山社区.
    assert con.execute("select count(*) from staging.sg01 where source_sheet = '村社区月报 (2)'").fetchone() == (0,)
    assert con.execute("select count(*) from staging.sg02 where unit_code = '510402001007'").fetchone() == (0,)
    lines = feedback(folder, "510402001000-大渡口街道.xlsx")
    assert (DADUKOU, "台账备份", None, None, None, VERY_HIDDEN, "警告") in lines
    assert (DADUKOU, "村社区月报 (2)", None, None, None, HIDDEN, "警告") in lines
    assert [line for line in lines if line[0] == CORRECTION] == [
        (CORRECTION, f"Sheet{i}", None, None, None, LAST_MONTH_AGAIN, "错误") for i in range(2, 9)
    ] + [(CORRECTION, "村社区月报", None, None, None, LAST_MONTH_AGAIN, "错误")]


def test_3_each_table_of_a_sheet_is_read_under_its_own_header(month):
    con, _, _ = month
    # One sheet, three tables: the village table, the roster below it, and two more communities
    # under a header whose columns are in another order (name, code, certified, workers, ...).
    assert sheets(con, BINGCAOGANG) == [("Sheet1", "SG-01", 3, 2, 0, "read", None),
                                        ("Sheet1", "SG-02", 9, 3, 0, "read", None),
                                        ("Sheet1", "SG-01", 15, 2, 0, "read", None)]
    assert sg01(con, BINGCAOGANG) == [
        ("Sheet1", 4, "510402002001", "竹湖园社区居民委员会", 6000, 1000, 10, 4, True, 12, 3, True, False, 1, 1, True, True),
        ("Sheet1", 5, "510402002002", "西海岸社区居民委员会", 5000, 800, 8, 2, False, 9, 2, True, False, 1, 0, True, True),
        ("Sheet1", 16, "510402002003", "二街坊社区居民委员会", 3000, 600, 5, 1, False, 4, 1, False, False, 1, 0, True, True),
        ("Sheet1", 17, "510402002004", "红星社区居民委员会", 2500, 400, 4, 2, True, 3, 1, True, False, 1, 1, True, True),
    ]
    assert roster(con, BINGCAOGANG) == [
        ("Sheet1", 10, "510402002001", key(Q1), "社会工作师", True),
        ("Sheet1", 11, "510402002001", key(Q2), "无", True),
        ("Sheet1", 12, "510402002002", key(Q3), "助理社会工作师", True),
    ]
    # Section labels (一、城市社区, 二、农村社区) and the header repeated under them are not data.
    assert sheets(con, PANLIAN_TXT) == [("攀莲镇月报", "SG-01", 4, 4, 0, "read", None)]
    assert [r[1:3] for r in sg01(con, PANLIAN_TXT)] == [(5, "510421100001"), (6, "510421100002"),
                                                        (9, "510421100200"), (10, "510421100201")]
    assert con.execute("select count(*) from ingest.failures where path in (?, ?)",
                       [BINGCAOGANG, PANLIAN_TXT]).fetchone() == (0,)
    # 炳草岗街道: certified 4 + 2 + 1 + 2 = 9 of 10 + 8 + 5 + 4 = 27; 3 talents over its 8 urban communities.
    assert value(con, "510402002000", "community_worker_certified_share") == (100 * 9 / 27, 9, 27)
    assert value(con, "510402002000", "urban_community_talent_avg") == (3 / 8, 3, 8)
    # 攀莲镇: 5 + 3 + 1 + 0 = 9 of 10 + 6 + 3 + 3 = 22.
    assert value(con, "510421100000", "community_worker_certified_share") == (100 * 9 / 22, 9, 22)


def test_4_a_merged_cell_gives_every_cell_of_its_range_its_value(month):
    con, _, _ = month
    # The unit code merged down the rows of its unit: in .xlsx (XlsxWriter), .xls and .ods (LibreOffice).
    assert [r[:3] for r in roster(con, DADUKOU)] == [
        ("人才台账", 3, "510402001002"), ("人才台账", 4, "510402001002"), ("人才台账", 5, "510402001002"),
        ("人才台账", 6, "510402001004"), ("人才台账", 7, "510402001004")]
    assert roster(con, DAHE_XLS) == [("台账", 3, "510411001001", key(T1), "助理社会工作师", True),
                                     ("台账", 4, "510411001001", key(T2), "无", True)]
    assert roster(con, DAHE_ODS) == [("台账", 3, "510411001002", key(T3), "无", True),
                                     ("台账", 4, "510411001002", key(T4), "无", True),
                                     ("台账", 5, "510411001002", key(T5), "无", True)]
    assert con.execute("select count(*) from ingest.failures where path in (?, ?) or rule = 'required'",
                       [DAHE_XLS, DAHE_ODS]).fetchone() == (0,)
    # 大河中路街道: five talents over its six urban communities.
    assert value(con, "510411001000", "talent_total")[0] == 5
    assert value(con, "510411001000", "urban_community_talent_avg") == (5 / 6, 5, 6)


def test_5_values_no_office_could_mean_are_refused_or_warned_on_a_first_month(month):
    con, summary, folder = month
    assert con.execute("select count(*) from ingest.runs").fetchone() == (1,)  # no earlier month to compare with
    assert sg01(con, QINGXIANGPING) == [
        ("月报", 4, "510403001003", "杨家坪社区居民委员会", 12000000, 900, 6, 2, True, 5, 1, True, False, 1, 0, False, False),
        ("月报", 5, "510403001004", "大水井社区居民委员会", 4200, 700, 300, 2, False, 4, 1, False, False, 1, 0, False, False),
        ("月报", 6, "510403001005", "路北社区居民委员会", 40000, 6000, 7, 3, True, 8, 2, True, False, 1, 1, True, True),
        ("月报", 7, "510403001006", "路南社区居民委员会", 3800, 600, 5, 2, False, 150, 1, False, False, 1, 0, True, True),
    ]
    assert [r[1:] for r in roster(con, QINGXIANGPING)] == [
        (2, "510403001003", key(S1), "社会工作师", False),  # certified in 2031
        (3, "510403001003", key(S2), "助理社会工作师", False),  # registration from 2031, 0 hours
        (4, "510403001005", key(S3), "社会工作师", True),
        (5, "510403001006", key(S4), "无", True),
    ]
    assert con.execute("select station_opened, accepted from staging.sg03 where source_file = ?",
                       [QINGXIANGPING]).fetchall() == [(dt.date(2031, 5, 1), False)]
    assert feedback(folder, "510403001000-清香坪街道.xlsx") == [
        (QINGXIANGPING, "台账", 2, "取证年份", "2031",
         "「取证年份」为 2031，晚于报送月份（2024年3月）；年份不能在报送月份之后，请核对", "错误"),
        (QINGXIANGPING, "台账", 3, "登记有效期起始日期", "2031-01-01",
         "「登记有效期起始日期」为 2031-01-01，晚于报送月份（2024年3月）；日期不能在报送月份之后，请核对", "错误"),
        (QINGXIANGPING, "月报", 4, "户籍人口", "12000000",
         "「户籍人口」为 12000000，超出合理范围（不应大于 300000），不可能是实际数字；请核对后更正", "错误"),
        (QINGXIANGPING, "月报", 5, "社区专职工作者人数", "300",
         "「社区专职工作者人数」为 300，超出合理范围（不应大于 100），不可能是实际数字；请核对后更正", "错误"),
        (QINGXIANGPING, "月报", 6, "户籍人口", "40000",
         "「户籍人口」为 40000，超过所在县（区）「西区」户籍人口（116,700 人）的 20%；如填报无误可忽略此提示，否则请更正后重新报送",
         "警告"),
        (QINGXIANGPING, "月报", 7, "社区社会组织数", "150",
         "「社区社会组织数」为 150，明显偏大（一般不超过 100）；如填报无误可忽略此提示，否则请更正后重新报送", "警告"),
        (QINGXIANGPING, "社工站", 2, "建站日期", "2031-05-01",
         "「建站日期」为 2031-05-01，晚于报送月份（2024年3月）；日期不能在报送月份之后，请核对", "错误"),
    ]
    # 清香坪街道: the two warned rows count, 3 + 2 = 5 certified of 7 + 5 = 12 workers.
    assert value(con, "510403001000", "community_worker_certified_share") == (100 * 5 / 12, 5, 12)
    # A station "opened" in 2031 does not cover 清香坪街道: none of 西区's six townships is covered.
    assert value(con, "510403000000", "township_station_coverage") == (0.0, 0, 6)
    # Continuing education, certified persons whose start and hours are known (pro rata of 72 or 90 h
    # over 36 months, months elapsed counted to the end of March 2024):
    #   A 助理 2023-01 40 h >= 72*15/36 = 30 on track; B 社会工作师 2022-07 60 >= 90*21/36 = 52.5 on track;
    #   Q1 2022-01 90 >= 67.5 on track; Q3 助理 2021-10 72 >= 60 on track; R1 助理 2022-09 20 < 38 not;
    #   S3 2023-07 30 >= 22.5 on track; T1 助理 2023-03 12 < 26 not. 5 of 7. (The registration from
    #   2031 with 0 hours used to count as on track: 6 of 8.)
    assert value(con, "510400000000", "continuing_education_on_track_share") == (100 * 5 / 7, 5, 7)
    assert summary["rows_rejected"] == 6


def test_6_id_numbers_as_pasted_are_cleaned_and_an_old_one_has_its_own_message(month):
    con, _, folder = month
    # 'A (apostrophe), B with a zero-width space, C with a no-break space: the same persons as typed clean.
    assert roster(con, DADUKOU) == [
        ("人才台账", 3, "510402001002", key(A), "助理社会工作师", True),
        ("人才台账", 4, "510402001002", key(B), "社会工作师", True),
        ("人才台账", 5, "510402001002", key(C), "无", True),
        ("人才台账", 6, "510402001004", key(D_OLD), "无", False),  # the 15-digit number
        ("人才台账", 7, "510402001004", key(E), "无", True),
    ]
    assert (DADUKOU, "人才台账", 6, "公民身份号码", "（已隐去）", "「公民身份号码」是旧 15 位身份证号码，请改为 18 位（号码不在此显示）",
            "错误") in feedback(folder, "510402001000-大渡口街道.xlsx")
    assert con.execute("select count(*) from ingest.failures where rule = 'check_digit'").fetchone() == (0,)
    # 大渡口街道: A, B, C and E count (A and B certified); 4 talents over its 5 urban communities.
    assert value(con, "510402001000", "talent_total")[0] == 4
    assert value(con, "510402001000", "certified_total")[0] == 2
    assert value(con, "510402001000", "urban_community_talent_avg") == (4 / 5, 4, 5)


def test_7_excels_unicode_text_is_read_as_txt_and_as_csv(month):
    con, _, _ = month
    files = con.execute("select path, format, status from ingest.files where path in (?, ?) order by path",
                        [PANLIAN_CSV, PANLIAN_TXT]).fetchall()
    assert files == [(PANLIAN_CSV, "csv", "read"), (PANLIAN_TXT, "txt", "read")]
    assert sg01(con, PANLIAN_TXT) == [
        ("攀莲镇月报", 5, "510421100001", "城北社区居民委员会", 6100, 1200, 10, 5, True, 12, 2, True, False, 2, 2, True, True),
        ("攀莲镇月报", 6, "510421100002", "城南社区居民委员会", 4000, 700, 6, 3, False, 8, 1, False, False, 1, 1, True, True),
        ("攀莲镇月报", 9, "510421100200", "青皮村村民委员会", 1500, 300, 3, 1, False, 2, 1, False, False, 1, 0, True, True),
        ("攀莲镇月报", 10, "510421100201", "水塘村村民委员会", 1200, 250, 3, 0, False, 2, 1, False, False, 1, 0, True, True),
    ]
    assert roster(con, PANLIAN_CSV) == [("攀莲镇台账", 3, "510421100001", key(R1), "助理社会工作师", True),
                                        ("攀莲镇台账", 4, "510421100200", key(R2), "无", True)]
    assert value(con, "510421100000", "rural_community_talent_avg") == (1 / 6, 1, 6)


def test_the_city_counts_what_the_files_say_for_the_month(month):
    con, summary, folder = month
    # Talents: 大渡口街道 4, 炳草岗街道 3, 攀莲镇 2, 清香坪街道 2, 大河中路街道 5; certified A, B, Q1, Q3,
    # R1, S3, T1. Community workers: 大渡口街道 8/23, 炳草岗街道 9/27, 攀莲镇 9/22, 清香坪街道 5/12.
    assert value(con, "510400000000", "talent_total")[0] == 16
    assert value(con, "510400000000", "certified_total")[0] == 7
    assert value(con, "510400000000", "community_worker_certified_share") == (100 * 31 / 84, 31, 84)
    assert value(con, "510400000000", "urban_community_talent_avg") == (15 / 106, 15, 106)
    assert (summary["files"], summary["files_rejected"], summary["rows"]) == (8, 0, 36)
    assert sorted(p.name for p in folder.iterdir()) == ["510402001000-大渡口街道.xlsx", "510403001000-清香坪街道.xlsx"]
