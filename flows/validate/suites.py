"""Validation: a Great Expectations suite per form, generated from its schema, run once per
form over all of the month's rows. Failures become rows with a message for the sender; rows
with an error are kept out of the roll-up, and the run goes on.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from flows import schemas
from flows.config import month_end
from flows.registry import LEVEL_ZH
from flows.schemas import MONTH_END, Field, Form, Rule

log = logging.getLogger("shegong")

TYPE_ZH = {
    "code": "12位数字代码（请把该列设为文本格式后填写）",
    "integer": "不小于0的整数",
    "number": "数字",
    "percent": "0 到 100 之间的百分数",
    "yesno": "“是”或“否”",
    "date": "日期（如 2021-03-01）",
    "year": "年份（如 2021）",
    "id_number": "18位公民身份号码（请把该列设为文本格式后填写）",
    "credit_code": "18位统一社会信用代码",
    "text": "文字", "enum": "文字", "personal": "文字",
}
FAILURE_SCHEMA = {
    "form": pl.String, "path": pl.String, "sheet": pl.String, "excel_row": pl.Int64,
    "field": pl.String, "column_header": pl.String, "value": pl.String, "rule": pl.String,
    "severity": pl.String, "message_zh": pl.String, "detail_zh": pl.String,
}


@dataclass(frozen=True)
class Check:
    """One expectation of a suite, with what a failure of it means for the sender."""
    expectation: object
    rule: str
    field: str
    severity: str
    message: str  # with {header}, {value} and, for pair rules, {other_header}, {other_value}
    other: str | None = None


def _gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    for name in DEFERRED:
        defer_import(name)
    import great_expectations as gx
    # This GX module pins its own logger at INFO and announces a temporary docs folder on every
    # context: not news for anyone running the month.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    _remember_expectation_types()
    _build_configurations_once()
    return gx


# Modules that Great Expectations imports with its own and that no expectation of ours uses:
# SciPy's statistics (for GX's distribution expectations and their metrics: 0.7-1.0 s of GX's
# 2.5-3 s import on this machine, `python -X importtime`) and Altair (the charts of its
# KL-divergence expectation, 0.2 s). Each is bound to a stand-in that imports the module the
# first time anything reads one of its attributes: a GX release or an expectation that uses
# them gets the real module then (later, never different).
DEFERRED = ("scipy.stats", "altair")


class _Deferred(types.ModuleType):
    """A module that is imported when one of its attributes is first read (defer_import)."""

    def __getattr__(self, attr: str):  # only for what the stand-in itself does not have
        return getattr(_imported(self), attr)

    def __dir__(self):
        return dir(_imported(self))


_DEFERRING = threading.RLock()


def _imported(stand_in: _Deferred) -> types.ModuleType:
    """The real module of a stand-in, imported now if it is not yet (by one thread: the rest wait
    for it). Importing it puts it in place of the stand-in, in sys.modules and on its parent."""
    name = stand_in.__name__
    with _DEFERRING:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        return importlib.import_module(name)


def defer_import(name: str) -> None:
    """Put a stand-in for module `name` in sys.modules (and on its parent package) unless it is
    imported already or not installed. It carries the module's spec and search path, so that
    `import name`, `from name import x` and imports of its submodules find it without running the
    module; reading any other attribute imports it (see _Deferred)."""
    with _DEFERRING:
        if name in sys.modules:
            return
        spec = importlib.util.find_spec(name)  # for a submodule, this imports its parent package
        if spec is None:
            return
        stand_in = _Deferred(name)
        stand_in.__spec__, stand_in.__loader__ = spec, spec.loader
        stand_in.__file__ = spec.origin
        stand_in.__package__ = name if spec.submodule_search_locations is not None else spec.parent
        if spec.submodule_search_locations is not None:
            stand_in.__path__ = list(spec.submodule_search_locations)
        sys.modules[name] = stand_in
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, stand_in)


_PATCHING = threading.Lock()


def _remember_expectation_types() -> None:
    """GX derives an expectation's type from its class name (ExpectColumnValuesToBeInSet:
    expect_column_values_to_be_in_set) with two regular expressions every time it builds the
    expectation's configuration, which it does several times per expectation and validation:
    0.37 s of a city month's 2.1 s of validation (py-spy, months 2-6 of the city backfill). The
    function is pure (a name in, a name out), so its answers are remembered, which changes no
    result. The names are those of the pinned GX release; one that moves them leaves this undone
    (slower, not wrong)."""
    import functools
    import great_expectations.expectations.expectation as expectation
    import great_expectations.util as util
    with _PATCHING:
        original = getattr(util, "camel_to_snake", None)
        if original is None or hasattr(original, "cache_info") or getattr(expectation, "camel_to_snake", None) \
                is not original:
            return
        util.camel_to_snake = expectation.camel_to_snake = functools.lru_cache(maxsize=1024)(original)


# The GX release whose Expectation methods _build_configurations_once rewrites, and what it takes
# from it. Any other release keeps its own (slower, never different).
GX_REWRITTEN = "1.24.1"


def _build_configurations_once() -> None:
    """An expectation's configuration is a new object that GX builds from the expectation's fields
    (pydantic's dict of every field) each time it is read, and GX reads it once per key while
    collecting an expectation's domain, success and run-time keyword arguments (for every metric
    of every expectation): 5-10 builds where one gives the same. With the id GX gives each metric
    (core.id_dict.IDDict.to_id: its keyword arguments made JSON-ready, where every None passed
    three numpy type tests first), that was a third of a fixture month's validation (py-spy).
    The four methods below are 1.24.1's, reading the configuration once per call; `_json_ready`
    answers plain values (None, str, int, bool and dicts and lists of them) as GX's
    convert_to_json_serializable does and hands it the rest. Nothing changes the expectation
    during a call, so the results are GX's own (tests/test_validate.py compares them over every
    expectation of every suite, and over whole validations)."""
    import great_expectations.core.id_dict as id_dict
    import great_expectations.expectations.expectation as expectation
    with _PATCHING:
        Expectation = expectation.Expectation
        if importlib.metadata.version("great_expectations") != GX_REWRITTEN or \
                getattr(Expectation._get_runtime_kwargs, "rewritten", False):
            return
        GX_ORIGINALS.update({name: getattr(Expectation, name) for name in REWRITTEN},
                            convert_to_json_serializable=id_dict.convert_to_json_serializable)
        for name in REWRITTEN:
            method = globals()[name]
            method.rewritten = True
            setattr(Expectation, name, method)
        id_dict.convert_to_json_serializable = _json_ready


GX_ORIGINALS: dict = {}
REWRITTEN = ("_get_domain_kwargs", "_get_success_kwargs", "_get_success_kwarg", "_get_runtime_kwargs")


def _kwarg(self, kwargs: dict, key: str, default=None):
    """Expectation._get_success_kwarg of 1.24.1 with the configuration's kwargs given."""
    if key in kwargs:
        return kwargs[key]
    field = self.__fields__.get(key)
    if field is not None:
        return field.default if not field.required else default
    return GX_ORIGINALS["_get_success_kwarg"](self, key, default)  # GX's warning of an unknown key


def _domain(self, kwargs: dict) -> dict:
    # GX then raises when a domain key is missing from what it just built from those keys: never.
    return {key: kwargs.get(key, self._get_default_value(key)) for key in self.domain_keys}


def _success(self, kwargs: dict) -> dict:
    success_kwargs = {key: kwargs.get(key, self._get_default_value(key)) for key in self.success_keys}
    success_kwargs.update(_domain(self, kwargs))
    return success_kwargs


def _get_domain_kwargs(self) -> dict:
    return _domain(self, self.configuration.kwargs)


def _get_success_kwargs(self) -> dict:
    return _success(self, self.configuration.kwargs)


def _get_success_kwarg(self, key: str, default=None):
    return _kwarg(self, self.configuration.kwargs, key, default)


def _get_runtime_kwargs(self, runtime_configuration: dict | None = None) -> dict:
    from great_expectations.expectations.expectation import parse_result_format
    runtime_configuration = runtime_configuration or {}
    kwargs = self.configuration.kwargs
    success_kwargs = _success(self, kwargs)
    runtime_kwargs = {key: runtime_configuration.get(key, _kwarg(self, kwargs, key)) for key in self.runtime_keys}
    runtime_kwargs.update(success_kwargs)
    runtime_kwargs["result_format"] = parse_result_format(runtime_kwargs["result_format"])
    return runtime_kwargs


def _json_ready(data):
    kind = type(data)
    if data is None or kind is str or kind is int or kind is bool:
        return data
    if kind is dict:
        return {str(key): _json_ready(value) for key, value in data.items()}
    if kind is list or kind is tuple:
        return [_json_ready(value) for value in data]
    return GX_ORIGINALS["convert_to_json_serializable"](data)


def import_early() -> None:
    """Start importing Great Expectations in a thread: it takes seconds, which the flow spends
    reading files in other processes meanwhile. Validation's own import then finds it loaded (or
    waits on Python's import lock for the rest of it)."""
    threading.Thread(target=_gx, name="import-great-expectations", daemon=True).start()


_CONTEXT = None


def context():
    """One ephemeral GX context per process: suites and assets are cheap to reuse across months."""
    global _CONTEXT
    if _CONTEXT is None:
        gx = _gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig
        _CONTEXT = gx.get_context(mode="ephemeral")
        _CONTEXT.variables.progress_bars = ProgressBarsConfig(globally=False)
        _CONTEXT.data_sources.add_pandas("months")
    return _CONTEXT


# A month's own values in its suite's expectations, given at each validation ($PARAMETER): the
# suite is then the same every month, built once per process (see `suite`).
MONTH_END_DATE, MONTH_END_YEAR = "month_end", "month_end_year"


def month_parameters(period: str) -> dict:
    """The values of a month's suite parameters: its last day (dates reach GX as pandas
    timestamps, which compare with a datetime, not a date) and its year (years are numbers)."""
    end = month_end(period)
    return {MONTH_END_DATE: dt.datetime.combine(end, dt.time()), MONTH_END_YEAR: end.year}


_SUITES: dict[str, tuple[object, list[Check]]] = {}


def suite(form: Form) -> tuple[object, list[Check]]:
    """The form's GX suite and its checks in the suite's order, built once per process and form:
    the same for every month (the month comes in as parameters) and every registry (looked up in
    `derive`). Keyed by the whole form as loaded (its repr holds every field, rule and bound)."""
    key = repr(form)
    if key not in _SUITES:
        gx = _gx()
        context()  # a suite needs GX's current context to exist
        checks = checks_for(form)
        built = gx.ExpectationSuite(name=f"{form.table}")
        for i, c in enumerate(checks):
            # Results do not come back in the suite's order: each carries its check's index.
            c.expectation.meta = {"check": i}
            built.add_expectation(c.expectation)
        _SUITES[key] = (built, checks)
    return _SUITES[key]


def checks_for(form: Form) -> list[Check]:
    """The expectations of a form, generated from its schema."""
    gx = _gx()
    E = gx.expectations
    from great_expectations.expectations.row_conditions import Column
    out: list[Check] = []
    for f in form.fields:
        out += _bound_checks(E, f)
        out.append(Check(E.ExpectColumnValuesToBeInSet(column=f"{f.name}__ok", value_set=[True]),
                         "type", f.name, "error", _type_message(f)))
        if f.required:
            out.append(Check(E.ExpectColumnValuesToNotBeNull(column=f.name), "required", f.name, "error",
                             "「{header}」为必填项，不能为空"))
        if f.name == "unit_code":
            levels = "或".join(LEVEL_ZH[lv] for lv in form.unit_levels)
            # Looked up in derive(): a province's 30,000 codes as a GX value set are copied whole
            # at every step of a validation, which then takes minutes instead of a second.
            out.append(Check(E.ExpectColumnValuesToBeInSet(column="unit_code__registered", value_set=[True]), "registry",
                             f.name, "error",
                             f"「{{header}}」{{value}} 不是区划登记册中的{levels}代码；请填写12位统计用区划代码"))
            out.append(Check(E.ExpectColumnValuesToBeInSet(column="unit_code__in_scope", value_set=[True]),
                             "sender_scope", f.name, "error",
                             "「{header}」{value} 不属于填报单位「{sender}」的管辖范围；请只填报本单位及下辖单位的数据"))
        elif f.type in ("integer", "number"):
            out.append(Check(E.ExpectColumnValuesToBeBetween(column=f.name, min_value=0), "range", f.name,
                             "error", "「{header}」为 {value}，不能小于 0"))
        elif f.type == "percent":
            out.append(Check(E.ExpectColumnValuesToBeBetween(column=f.name, min_value=0, max_value=100),
                             "range", f.name, "error", "「{header}」为 {value}，应在 0 到 100 之间"))
        elif f.type == "enum":
            out.append(Check(E.ExpectColumnValuesToBeInSet(column=f.name, value_set=list(f.values)), "enum",
                             f.name, "error", "「{header}」为「{value}」，应为以下之一：" + "、".join(f.values)))
        elif f.type == "id_number":
            out.append(Check(E.ExpectColumnValuesToBeInSet(column=f"{f.name}__valid", value_set=[True]),
                             "check_digit", f.name, "error",
                             "「{header}」不是有效的公民身份号码（出生日期或校验位不对）；请核对（号码不在此显示）"))
            out.append(Check(E.ExpectColumnValuesToBeInSet(column=f"{f.name}__old", value_set=[False]),
                             "old_id_number", f.name, "error",
                             "「{header}」是旧 15 位身份证号码，请改为 18 位（号码不在此显示）"))
        if f.name == "sex" and any(g.type == "id_number" for g in form.fields):
            out.append(Check(E.ExpectColumnValuesToBeInSet(column="sex__matches_id", value_set=[True]),
                             "sex_matches_id", f.name, "error",
                             "「{header}」为「{value}」，与公民身份号码（第17位）表示的性别不符；请核对性别或号码"))
        elif f.type == "credit_code":
            out.append(Check(E.ExpectColumnValuesToBeInSet(column=f"{f.name}__valid", value_set=[True]),
                             "check_digit", f.name, "error",
                             "「{header}」{value} 不是有效的统一社会信用代码（校验码不对）；请核对"))
        if f.name == "unit_name":
            out.append(Check(E.ExpectColumnValuesToBeInSet(column="unit_name__registry", value_set=[True]),
                             "registry_name", f.name, "warning",
                             "「{header}」「{value}」与登记册中该代码的名称不一致；请核对代码和名称"))
    for r in form.rules:
        out.append(_rule_check(E, Column, form, r))
    return out


def read_columns(checks: list[Check]) -> set[str]:
    """The columns a suite's expectations read: each one's column(s), the column of its row
    condition (the check's `other`, as for a pair's), and the row key failures are reported by."""
    cols = {"_row_id"}
    for c in checks:
        cols.update(v for v in (getattr(c.expectation, a, None) for a in ("column", "column_A", "column_B"))
                    if isinstance(v, str))
        if c.other:
            cols.add(c.other)
    return cols


def _bound_checks(E, f: Field) -> list[Check]:
    """The hard bounds of a field (errors) and its absolute soft bound (a warning), from the
    schema's `bounds`. Bounds against the registry's population and the unit's last month need
    other months and the roll-up: they are sql/checks, run with the roll-up."""
    b, out = f.bounds, []
    if b.min is not None:
        out.append(Check(E.ExpectColumnValuesToBeBetween(column=f.name, min_value=b.min), "min", f.name, "error",
                         f"「{{header}}」为 {{value}}，不应小于 {b.min:g}；请核对"))
    if b.max == MONTH_END:
        limit = {"$PARAMETER": MONTH_END_DATE if f.type == "date" else MONTH_END_YEAR}
        out.append(Check(E.ExpectColumnValuesToBeBetween(column=f.name, max_value=limit), "after_month", f.name,
                         "error", "「{header}」为 {value}，晚于报送月份（{month_zh}）；"
                                  f"{'日期' if f.type == 'date' else '年份'}不能在报送月份之后，请核对"))
    elif b.max is not None:
        out.append(Check(E.ExpectColumnValuesToBeBetween(column=f.name, max_value=b.max), "max", f.name, "error",
                         f"「{{header}}」为 {{value}}，超出合理范围（不应大于 {b.max:g}），不可能是实际数字；请核对后更正"))
    if b.warn_max is not None:
        out.append(Check(E.ExpectColumnValuesToBeBetween(column=f.name, max_value=b.warn_max), "warn_max", f.name,
                         "warning", f"「{{header}}」为 {{value}}，明显偏大（一般不超过 {b.warn_max:g}）；"
                                    f"如填报无误可忽略此提示，否则请更正后重新报送"))
    return out


def _type_message(f: Field) -> str:
    if f.type == "multi":
        return "「{header}」的值「{value}」无法识别，应为以下领域中的一个或多个（用“、”分隔）：" + "、".join(f.values)
    return "「{header}」的值「{value}」无法识别，应为" + TYPE_ZH[f.type]


def _rule_check(E, Column, form: Form, r: Rule) -> Check:
    if r.kind == "le":
        return Check(E.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=r.other, column_B=r.field, or_equal=True, ignore_row_if="either_value_is_missing"),
            "le", r.field, "error", "「{header}」（{value}）不能大于「{other_header}」（{other_value}）", r.other)
    when = "、".join("是" if v is True else "否" if v is False else str(v) for v in r.when_in)
    # GX's IN takes no booleans; a single value is an equality.
    cond = (Column(r.when_field) == r.when_in[0]) if len(r.when_in) == 1 else Column(r.when_field).is_in(list(r.when_in))
    if r.kind == "required_when":
        return Check(E.ExpectColumnValuesToNotBeNull(column=r.field, row_condition=cond),
                     "required_when", r.field, "error",
                     f"「{{header}}」在「{{other_header}}」为“{when}”时必须填写", r.when_field)
    if r.kind == "min_when":
        return Check(E.ExpectColumnValuesToBeBetween(column=r.field, min_value=r.min, row_condition=cond),
                     "min_when", r.field, "error",
                     f"「{{header}}」为 {{value}}；「{{other_header}}」为“{when}”时应不少于 {r.min:g}", r.when_field)
    raise ValueError(r.kind)


def _display(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, bool):
        return "是" if v else "否"
    if isinstance(v, list):
        return "、".join(v)
    return str(v)


def derive(form: Form, frame: pl.DataFrame, tree, sheets: dict) -> pl.DataFrame:
    """Columns the cross-field checks look at: name against registry, sender's scope, sex."""
    names = tree.name
    sender_of = {k: v.get("sender_code") for k, v in sheets.items()}
    sender_name = {k: v.get("sender") for k, v in sheets.items()}
    # A sheet may hold several tables, each under its own header: a row's is the one it was read under.
    keys = list(zip(frame["_file"].to_list(), frame["_sheet"].to_list(), frame["_header_row"].to_list()))
    codes = frame["unit_code"].to_list()
    scope = [None if sender_of.get(k) is None or c not in names else tree.within(c, sender_of[k])
             for k, c in zip(keys, codes)]
    registered = [c for c, level in tree.level.items() if level in form.unit_levels]
    frame = frame.with_columns(unit_code__registered=pl.when(pl.col("unit_code").is_null()).then(None)
                               .otherwise(pl.col("unit_code").is_in(registered)))
    frame = frame.with_columns(unit_code__in_scope=pl.Series(scope, dtype=pl.Boolean),
                               _sender=pl.Series([sender_name.get(k) for k in keys], dtype=pl.String))
    if "unit_name" in frame.columns:
        frame = frame.with_columns(unit_name__registry=pl.Series(
            [None if n is None or c not in names else _same_name(n, names[c])
             for c, n in zip(codes, frame["unit_name"].to_list())], dtype=pl.Boolean))
    if "sex_from_id" in frame.columns and "sex" in frame.columns:
        frame = frame.with_columns(sex__matches_id=pl.when(pl.col("sex").is_null() | pl.col("sex_from_id").is_null())
                                   .then(None).otherwise(pl.col("sex") == pl.col("sex_from_id")))
    return frame


def validate(form: Form, frame: pl.DataFrame, tree, sheets: dict[tuple[str, str, int], dict],
             settled: tuple[set[str], pl.DataFrame] | None = None, *, period: str
             ) -> tuple[pl.DataFrame, pl.DataFrame, object]:
    """Run the form's suite for the month `period` over its frame: (frame with `accepted`,
    failures, GX result).

    `sheets` maps each table, (file, sheet, Excel row of its header), to {"headers": field ->
    header as sent, "sender": 填报单位 text, "sender_code": the unit it names, if any}. `settled` is (files, their failures): files the
    month's last run validated with the same suites and registry (see `fingerprint`), unchanged
    since; their rows are not run through the suite again, the failures found then stand. Every
    check is of one row and its sheet, so that gives what a new validation would.
    """
    if frame.height == 0:
        return frame.with_columns(accepted=pl.lit(True)), pl.DataFrame(schema=FAILURE_SCHEMA), None
    files, known = settled if settled else (set(), pl.DataFrame(schema=FAILURE_SCHEMA))
    todo = frame.filter(~pl.col("_file").is_in(list(files))) if files else frame
    # Derived for the rows the suite runs over only (its columns go no further than the suite):
    # a province rerun's 180,000 settled rows took 0.25 s of row-by-row lookups for nothing.
    failures, result = _run_suite(form, derive(form, todo, tree, sheets), sheets, period) if todo.height \
        else ([], None)
    fail = pl.DataFrame(failures, schema=FAILURE_SCHEMA | {"_row_id": pl.UInt32}, orient="row") if failures \
        else pl.DataFrame(schema=FAILURE_SCHEMA | {"_row_id": pl.UInt32})
    if known.height:
        rows = frame.select(path="_file", sheet="_sheet", excel_row="_row", _row_id="_row_id")
        known = known.select(list(FAILURE_SCHEMA)).cast(FAILURE_SCHEMA).join(rows, on=["path", "sheet", "excel_row"],
                                                                         how="inner", maintain_order="left")
        fail = pl.concat([fail, known])
    bad = set(fail.filter(pl.col("severity") == "error")["_row_id"].to_list())
    frame = frame.with_columns(accepted=~pl.col("_row_id").is_in(list(bad)))
    if fail.height:
        log.info("%s: %d of %d rows rejected, %d failures (%d rows validated, %d taken from the last run)",
                 form.id, len(bad), frame.height, fail.height, todo.height, frame.height - todo.height)
    return frame, fail.drop("_row_id"), result


def _run_suite(form: Form, frame: pl.DataFrame, sheets: dict, period: str) -> tuple[list[tuple], object]:
    """The form's GX suite over the frame: a failure tuple (FAILURE_SCHEMA, then _row_id) for each
    failing check of a row, and the GX result."""
    headers = {k: v.get("headers", {}) for k, v in sheets.items()}
    form_suite, checks = suite(form)
    ds = context().data_sources.get("months")
    try:
        asset = ds.get_asset(form.table)
    except LookupError:
        asset = ds.add_dataframe_asset(name=form.table)
    try:
        batch_def = asset.get_batch_definition("month")
    except (KeyError, LookupError, ValueError):
        batch_def = asset.add_batch_definition_whole_dataframe("month")
    # Only the columns the expectations look at go to pandas (a form's frame has about three times
    # as many: raw cells, derived values, the file's bookkeeping): GX hashes the whole frame it is
    # given, and pandas would hold a copy of every column.
    wanted = read_columns(checks)
    gx_frame = frame.select([c for c in frame.columns if c in wanted and frame.schema[c] != pl.List(pl.String)]
                            ).to_pandas()
    batch = batch_def.get_batch(batch_parameters={"dataframe": gx_frame})
    result = _validate(batch, form_suite, month_parameters(period))
    for res in result.results:
        if not res.success and (error := _raised(res.exception_info)):
            check = checks[res.expectation_config.meta["check"]]
            raise RuntimeError(f"expectation {check.rule} on {form.id}.{check.field} failed to run: {error}")
    # Only the failing rows as dicts: a province's month has 150,000 roster rows.
    failing = {int(item["_row_id"]) for res in result.results if not res.success
               for item in res.result.get("unexpected_index_list") or []}
    by_id = {row["_row_id"]: row for row in frame.filter(pl.col("_row_id").is_in(list(failing))).iter_rows(named=True)}
    failures = []
    for res in result.results:
        check = checks[res.expectation_config.meta["check"]]
        if res.success:
            continue
        for item in res.result.get("unexpected_index_list") or []:
            row = by_id[int(item["_row_id"])]
            failures.append(_failure(form, check, row, headers, period))
    # A warning on a cell that has an error already (far too large is also unusually large) is no news.
    field, severity = list(FAILURE_SCHEMA).index("field"), list(FAILURE_SCHEMA).index("severity")
    wrong = {(f[-1], f[field]) for f in failures if f[severity] == "error"}
    return [f for f in failures if f[severity] == "error" or (f[-1], f[field]) not in wrong], result


# What every expectation's result holds: success, the counts and a sample of failing values (what
# Data Docs shows of it). GX's cost is per expectation and per metric it computes, whatever the
# rows: COMPLETE (every failing row's key) costs twice BASIC over a month's 187 expectations, and
# nearly all of them pass. So the suite runs with BASIC, and only the expectations that failed run
# again with COMPLETE, whose result replaces theirs: the same result as one COMPLETE run wherever
# anything failed, at about half the cost.
FIRST_PASS = {"result_format": "BASIC"}
FAILING_ROWS = {"result_format": "COMPLETE", "unexpected_index_column_names": ["_row_id"],
                "return_unexpected_index_query": False}


def _validate(batch, form_suite, parameters: dict):
    """The suite over the batch: every expectation's BASIC result, the failing ones' COMPLETE."""
    result = batch.validate(form_suite, expectation_parameters=parameters, result_format=FIRST_PASS)
    failed = {res.expectation_config.meta["check"]: i for i, res in enumerate(result.results)
              if not res.success and not _raised(res.exception_info)}
    if failed:
        again = _gx().ExpectationSuite(name=form_suite.name, expectations=[
            result.results[i].expectation_config.to_domain_obj() for i in failed.values()])
        for res in batch.validate(again, expectation_parameters=parameters, result_format=FAILING_ROWS).results:
            result.results[failed[res.expectation_config.meta["check"]]] = res
    return result


def _raised(info: dict | None) -> str | None:
    """The message of an exception an expectation raised, if it raised one: GX reports it at the
    top of exception_info, or under the metric that failed (a failed metric is no failed row)."""
    for part in [info or {}, *(v for v in (info or {}).values() if isinstance(v, dict))]:
        if part.get("raised_exception"):
            return str(part.get("exception_message"))
    return None


def fingerprint(forms: dict[str, Form], tree) -> str:
    """What a row's validation depends on besides the row and its sheet: the form schemas, the
    registry, this module, the module that reads the schemas and the GX release. A rerun keeps the
    last run's results for unchanged files only when this is the same."""
    h = hashlib.sha256(Path(__file__).read_bytes() + Path(schemas.__file__).read_bytes())
    h.update(importlib.metadata.version("great_expectations").encode())
    for form_id in sorted(forms):
        h.update(forms[form_id].path.read_bytes() if forms[form_id].path else repr(forms[form_id]).encode())
    h.update(json.dumps(sorted((c, tree.name[c], tree.level[c], tree.parent[c]) for c in tree.name),
                        ensure_ascii=False).encode())
    return h.hexdigest()


def _same_name(sent: str, registered: str) -> bool:
    # Offices drop the committee suffix (东方红社区 for 东方红社区居民委员会): that is the same name.
    short = registered.removesuffix("居民委员会").removesuffix("村民委员会")
    return sent.replace(" ", "") in (registered, short, short + "居委会", short + "村委会")


def _failure(form: Form, check: Check, row: dict, headers, period: str) -> tuple:
    sheet_headers = headers.get((row["_file"], row["_sheet"], row["_header_row"]), {})
    header = sheet_headers.get(check.field, form.field(check.field).header)
    f = form.field(check.field)
    if check.rule == "type":
        value = row.get(f"{check.field}__raw") or ""
    elif f.personal:
        value = "（已隐去）"
    else:
        value = _display(row.get(check.field))
    other_header = other_value = ""
    if check.other:
        other_header = sheet_headers.get(check.other, form.field(check.other).header)
        other_value = _display(row.get(check.other))
    year, month = map(int, period.split("-"))
    body = check.message.format(header=header, value=value, other_header=other_header, other_value=other_value,
                                month_zh=f"{year}年{month}月", sender=row.get("_sender") or "")
    message = f"文件「{row['_file']}」工作表「{row['_sheet']}」第 {row['_row']} 行：{body}"
    return (form.id, row["_file"], row["_sheet"], row["_row"], check.field, header, value, check.rule,
            check.severity, message, body, row["_row_id"])
