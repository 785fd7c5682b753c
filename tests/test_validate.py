"""Validation failures of the fixture month, word for word as the sender reads them."""
from __future__ import annotations

from pathlib import Path

import polars as pl

FIXTURES = Path(__file__).parent / "fixtures"
FILE_A = "东区/大渡口街道/新建 Microsoft Excel 工作表.xlsx"


def test_failures_name_file_sheet_row_column_value_and_fix(con):
    rows = con.execute("select form, path, sheet, excel_row, column_header, value, rule, severity, message_zh "
                       "from ingest.failures where period = '2024-03' and severity = 'error' "
                       "order by form, excel_row").fetchall()
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


def test_person_on_two_rosters_is_listed_as_a_conflict_without_personal_data(con):
    rows = con.execute("select path, excel_row, value, detail_zh from ingest.failures where rule = 'roster_conflict' "
                       "order by path, excel_row").fetchall()
    assert rows == [
        ("东区/大渡口街道/新建 Microsoft Excel 工作表.xlsx", 4, "（已隐去）",
         "此人本月同时列在大渡口街道（510402001000）的台账中；按计数规则只计一次，计入「大渡口街社区居民委员会」。如已调离，请从相应台账中删除"),
        ("东区/大渡口街道/新建 Microsoft Excel 工作表.xlsx", 6, "（已隐去）",
         "此人本月同时列在水塘村村民委员会（510421100201）的台账中；按计数规则只计一次，计入「东方红社区居民委员会」。如已调离，请从相应台账中删除"),
        ("东区/大渡口街道/新建 Microsoft Excel 工作表.xlsx", 8, "（已隐去）",
         "此人本月同时列在大渡口街社区居民委员会（510402001002）的台账中；按计数规则只计一次，计入「大渡口街社区居民委员会」。如已调离，请从相应台账中删除"),
        ("米易县/SG-02台账.csv", 6, "（已隐去）",
         "此人本月同时列在东方红社区居民委员会（510402001004）的台账中；按计数规则只计一次，计入「东方红社区居民委员会」。如已调离，请从相应台账中删除"),
    ]


def test_sender_is_resolved_from_the_sheet_or_the_rows(con):
    rows = dict(con.execute("select path, sender_code from ingest.files where period = '2024-03'").fetchall())
    assert rows == {
        "东区/大渡口街道/新建 Microsoft Excel 工作表.xlsx": "510402001000",  # 填报单位：大渡口街道
        "东区/东区民政局3月.xlsx": "510402000000",           # no 填报单位: the unit covering its rows
        "东区/上月报表.xlsx": "510402000000",                # refused sheet, no rows: its folder 东区
        "东区/照片.jpg": "510402000000", "东区/说明.xlsx": "510402000000",
        "米易县/SG-02台账.csv": "510421100000",              # no 填报单位: its rows are all in 攀莲镇
        "米易县/攀莲镇2024年3月社工报表.xls": "510421100000",
        "市本级/市级机构.csv": "510400000000", "市本级/市综合.csv": "510400000000",
    }


def test_registry_type_enum_and_warning_failures():
    from flows.config import SCHEMAS, load_settings
    from flows.ingest.convert import to_frame
    from flows.registry import load_units
    from flows.registry import Tree
    from flows.schemas import load_forms
    from flows.validate.suites import validate

    form = load_forms(SCHEMAS)["SG-03"]
    tree = Tree(load_units(load_settings().units_csv))
    base = {"_file": "a.xlsx", "_sheet": "S", "_header_row": 3, "_received_at": None}
    rows = [
        dict(base, _row=4, unit_code="510402001000", unit_name="大渡口街道", station_in_service=True,
             station_opened=None, operation_mode="外包"),
        # A village's code on the township form; its short name (no 居民委员会) is not a mismatch.
        dict(base, _row=5, unit_code="510402001002", unit_name="大渡口街社区", station_in_service=False),
        dict(base, _row=6, unit_code="510402002000", unit_name="炳草岗", station_in_service=None,
             station_in_service__ok=False, station_in_service__raw="建设中"),
        # 东区 names itself as the sender: a 米易县 town is outside its part of the tree.
        dict(base, _row=7, unit_code="510421100000", unit_name="攀莲镇", station_in_service=False),
    ]
    sheets = {("a.xlsx", "S", 3): {"headers": {"operation_mode": "运营模式"}, "sender": "东区", "sender_code": "510402000000"}}
    frame, failures, _ = validate(form, to_frame(form, rows), tree, sheets, period="2024-03")
    got = sorted(failures.select("excel_row", "rule", "severity", "message_zh").iter_rows())
    prefix = "文件「a.xlsx」工作表「S」第 {} 行："
    assert got == [
        (4, "enum", "error", prefix.format(4) + "「运营模式」为「外包」，应为以下之一：政府购买服务、自建自营、其他"),
        (4, "required_when", "error", prefix.format(4) + "「建站日期」在「是否建成社工站」为“是”时必须填写"),
        (5, "registry", "error", prefix.format(5) + "「乡镇（街道）代码」510402001002 不是区划登记册中的乡镇（街道）代码；"
                                                    "请填写12位统计用区划代码"),
        (6, "registry_name", "warning", prefix.format(6) + "「乡镇（街道）名称」「炳草岗」与登记册中该代码的名称不一致；请核对代码和名称"),
        (6, "type", "error", prefix.format(6) + "「是否建成社工站」的值「建设中」无法识别，应为“是”或“否”"),
        (7, "sender_scope", "error", prefix.format(7) + "「乡镇（街道）代码」510421100000 不属于填报单位「东区」的管辖范围；"
                                                        "请只填报本单位及下辖单位的数据"),
    ]
    assert frame["accepted"].to_list() == [False, False, False, False]


def test_rows_of_settled_files_keep_the_last_runs_failures_and_the_rest_are_validated():
    from flows.config import SCHEMAS, load_settings
    from flows.ingest.convert import to_frame
    from flows.registry import Tree, load_units
    from flows.schemas import load_forms
    from flows.validate.suites import FAILURE_SCHEMA, validate

    form = load_forms(SCHEMAS)["SG-03"]
    tree = Tree(load_units(load_settings().units_csv))
    rows = [dict(_file="a.xlsx", _sheet="S", _header_row=3, _received_at=None, _row=4, unit_code="510402001000",
                 unit_name="大渡口街道", station_in_service=True, operation_mode="外包"),
            dict(_file="b.xlsx", _sheet="S", _header_row=3, _received_at=None, _row=4, unit_code="510402001002",
                 unit_name="大渡口街社区", station_in_service=False)]
    sheets = {(f, "S", 3): {"headers": {}, "sender": None, "sender_code": None} for f in ("a.xlsx", "b.xlsx")}
    frame = to_frame(form, rows)
    checked, failures, _ = validate(form, frame, tree, sheets, period="2024-03")
    assert sorted(failures.select("path", "rule").iter_rows()) == [
        ("a.xlsx", "enum"), ("a.xlsx", "required_when"), ("b.xlsx", "registry")]
    # a.xlsx unchanged since a run that found its two failures: the same month as validating all.
    settled = ({"a.xlsx"}, failures.filter(pl.col("path") == "a.xlsx"))
    again, again_failures, _ = validate(form, frame, tree, sheets, settled, period="2024-03")
    assert sorted(again_failures.iter_rows()) == sorted(failures.iter_rows())
    assert again["accepted"].to_list() == checked["accepted"].to_list() == [False, False]
    # Its rows are taken as that run judged them, not run through the suite again: had it found
    # nothing, nothing it is.
    clean, clean_failures, _ = validate(form, frame, tree, sheets, ({"a.xlsx"}, pl.DataFrame(schema=FAILURE_SCHEMA)),
                                        period="2024-03")
    assert sorted(clean_failures.select("path", "rule").iter_rows()) == [("b.xlsx", "registry")]
    assert clean["accepted"].to_list() == [True, False]


def test_remembered_expectation_types_are_those_gx_derives():
    """suites._remember_expectation_types: GX's class-name-to-type function, remembered, gives
    what GX's own gives for every expectation it has, and the suites' expectations carry those types."""
    from flows.validate.suites import _gx, suite
    from flows.config import SCHEMAS
    from flows.schemas import load_forms
    _gx()
    import great_expectations.expectations.expectation as expectation
    import great_expectations.util as util
    from great_expectations.expectations.registry import _registered_expectations
    remembered = util.camel_to_snake
    assert expectation.camel_to_snake is remembered and hasattr(remembered, "cache_info")
    original = remembered.__wrapped__
    names = [cls.__name__ for cls in _registered_expectations.values()]
    assert len(names) > 50
    assert [remembered(n) for n in names] == [original(n) for n in names]
    assert remembered("ExpectColumnValuesToBeInSet") == "expect_column_values_to_be_in_set"
    built, _ = suite(load_forms(SCHEMAS)["SG-03"])
    assert {e.configuration.type for e in built.expectations} >= {"expect_column_values_to_be_in_set",
                                                                  "expect_column_values_to_not_be_null"}


DEFERRED_SCRIPT = r'''
import sys
from pathlib import Path
from flows.config import SCHEMAS, load_settings
from flows.ingest.convert import to_frame
from flows.registry import Tree, load_units
from flows.schemas import load_forms
from flows.validate import datadocs, suites

form = load_forms(SCHEMAS)["SG-03"]
tree = Tree(load_units(load_settings().units_csv))
rows = [dict(_file="a.xlsx", _sheet="S", _header_row=3, _received_at=None, _row=4, unit_code="510402001000",
             unit_name="大渡口街道", station_in_service=True, operation_mode="外包")]
sheets = {("a.xlsx", "S", 3): {"headers": {}, "sender": None, "sender_code": None}}
_, failures, result = suites.validate(form, to_frame(form, rows), tree, sheets, period="2024-03")
index = datadocs.publish_results([result], Path(sys.argv[1]), "2024-03 test")
print("failures", sorted(failures["rule"].to_list()))
print("pages", index.is_file())
print("stand-ins", [type(sys.modules[n]).__name__ for n in ("scipy.stats", "altair")])
print("loaded", [n in sys.modules for n in ("scipy.stats._stats_py", "altair.vegalite")])
# GX's module that imports both, read as it reads them:
import great_expectations.expectations.core.expect_column_kl_divergence_to_be_less_than as kl
print("cdf", kl.stats.norm.cdf(0.0), kl.alt.Chart.__module__)
import scipy, scipy.stats, altair
print("real", [type(m).__name__ for m in (sys.modules["scipy.stats"], sys.modules["altair"])],
      scipy.stats is sys.modules["scipy.stats"], altair is sys.modules["altair"])
from scipy.stats import norm
import scipy.stats.distributions
print("same", norm is kl.stats.norm is scipy.stats.distributions.norm)
suites.defer_import("no_such_module_here")
suites.defer_import("scipy.stats")
print("left", "no_such_module_here" in sys.modules, type(sys.modules["scipy.stats"]).__name__)
'''


def test_modules_gx_imports_and_no_expectation_of_ours_uses_are_imported_only_when_read(tmp_path):
    """suites.DEFERRED: SciPy's statistics and Altair are stand-ins through a validation and its
    Data Docs pages (a new process, so that nothing else imported them first), and the real
    modules, the same objects everywhere, as soon as anything reads them."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", DEFERRED_SCRIPT, str(tmp_path / "site")], capture_output=True,
                         text=True, timeout=300, check=True).stdout.splitlines()
    assert out == ["failures ['enum', 'required_when']",
                   "pages True",
                   "stand-ins ['_Deferred', '_Deferred']",
                   "loaded [False, False]",
                   "cdf 0.5 altair.vegalite.v6.api",
                   "real ['module', 'module'] True True",
                   "same True",
                   "left False module"]


def test_expectations_read_their_configuration_once_and_gx_gives_the_same_results():
    """suites._build_configurations_once: the Expectation methods rewritten to build an
    expectation's configuration once per call, and the plain-value path of the metrics' ids, give
    GX's own answers: for every expectation of every suite, and as whole validations of the fixture
    month's and the messy month's rows (every result, its counts, failing rows and values)."""
    import contextlib
    import datetime as dt
    import numpy as np
    from conftest import INBOX, PERIOD
    from flows.config import SCHEMAS, load_settings
    from flows.ingest import sandbox
    from flows.ingest.discover import discover
    from flows.registry import Tree, load_units
    from flows.schemas import load_forms
    from flows.validate import suites
    import great_expectations.core.id_dict as id_dict
    import great_expectations.expectations.expectation as expectation
    suites._gx()
    Expectation = expectation.Expectation
    assert all(getattr(Expectation, name) is getattr(suites, name) for name in suites.REWRITTEN)  # the pinned GX
    original = suites.GX_ORIGINALS
    forms = load_forms(SCHEMAS)
    for form in forms.values():
        built, _ = suites.suite(form)
        for e in built.expectations:
            assert suites._get_domain_kwargs(e) == original["_get_domain_kwargs"](e)
            assert suites._get_success_kwargs(e) == original["_get_success_kwargs"](e)
            for key in (*e.domain_keys, *e.success_keys, *e.runtime_keys):
                assert suites._get_success_kwarg(e, key) == original["_get_success_kwarg"](e, key), key
            for runtime in (None, {}, suites.FIRST_PASS, suites.FAILING_ROWS, {"catch_exceptions": False}):
                assert suites._get_runtime_kwargs(e, runtime) == original["_get_runtime_kwargs"](e, runtime)
            kwargs = {"batch_id": "b", **suites._get_success_kwargs(e)}
            assert suites._json_ready(kwargs) == original["convert_to_json_serializable"](dict(kwargs))
    odd = {1: None, "a": [True, 2, "x", (3, None)], "f": float("nan"), "g": 2.5, "n": np.int64(4),
           "d": dt.date(2024, 3, 31), "s": {"t": {"u": [np.float64(0.1)]}}}
    assert suites._json_ready(odd) == original["convert_to_json_serializable"](dict(odd)) == {
        "1": None, "a": [True, 2, "x", [3, None]], "f": None, "g": 2.5, "n": 4, "d": "2024-03-31",
        "s": {"t": {"u": [0.1]}}}

    @contextlib.contextmanager
    def as_released():
        for name in suites.REWRITTEN:
            setattr(Expectation, name, original[name])
        id_dict.convert_to_json_serializable = original["convert_to_json_serializable"]
        try:
            yield
        finally:
            for name in suites.REWRITTEN:
                setattr(Expectation, name, getattr(suites, name))
            id_dict.convert_to_json_serializable = suites._json_ready

    tree = Tree(load_units(load_settings().units_csv))
    compared = failed = 0
    for root in (INBOX / PERIOD, FIXTURES / "messy_month" / PERIOD):
        _, frames = sandbox.parse_files(discover(root.parent, PERIOD), root, PERIOD)
        for form_id, frame in frames.items():
            if not frame.height:
                continue
            derived = suites.derive(forms[form_id], frame.with_row_index("_row_id"), tree, {})
            ours, ours_result = suites._run_suite(forms[form_id], derived, {}, PERIOD)
            with as_released():
                theirs, their_result = suites._run_suite(forms[form_id], derived, {}, PERIOD)
            assert ours == theirs
            assert [r.to_json_dict() for r in ours_result.results] == [r.to_json_dict() for r in their_result.results]
            compared += len(ours_result.results)
            failed += sum(not r.success for r in ours_result.results)
    assert compared > 300 and failed > 5
