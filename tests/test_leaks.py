"""No person leaks: no ID number, name or phone number of the input in any table or column of the
warehouse, any feedback workbook, report or validation page, or the log of a run at DEBUG level; the
hashing key in none of them; and every file holding the month readable by its owner only."""
from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import shutil
import stat
import zipfile
from pathlib import Path

import duckdb
import pytest
from python_calamine import CalamineWorkbook

from conftest import INBOX, PERIOD
from flows import pii
from flows.ingest.sandbox import decode_text
from runs import run

ID = re.compile(r"\d{17}[\dXx]")
PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
FOOTER_NAME = re.compile(r"(?:填报人|填表人|制表人|联系人|经办人|审核人|负责人|统计人)[:：]\s*([\u4e00-\u9fff]{2,4})")


def sheets_of(path: Path) -> list[list[list[str]]]:
    """Every sheet of an input file as rows of text, read independently of flows.ingest.read."""
    if path.suffix == ".csv":
        text = decode_text(path.read_bytes())
        return [list(csv.reader(io.StringIO(text), delimiter=";" if ";" in text[:500] else ","))]
    try:
        wb = CalamineWorkbook.from_path(str(path))
    except Exception:  # not a spreadsheet (a photo, a note saved as .xlsx)
        return []
    return [[["" if v is None else str(v) for v in row] for row in wb.get_sheet_by_name(name).to_python()]
            for name in wb.sheet_names]


def personal_data(month: Path) -> dict[str, set[str]]:
    """The ID numbers, names and phone numbers in a month's files, found in the files themselves:
    by their shape, in the 姓名 column, and after 填报人：, 联系人： and the like."""
    found: dict[str, set[str]] = {"ids": set(), "names": set(), "phones": set()}
    for path in sorted(p for p in month.rglob("*") if p.is_file()):
        for rows in sheets_of(path):
            name_col = None
            for row in rows:
                if name_col is not None and name_col < len(row) and re.fullmatch(r"[\u4e00-\u9fff]{2,4}",
                                                                                row[name_col]):
                    found["names"].add(row[name_col])
                for i, cell in enumerate(row):
                    found["ids"] |= {m.upper() for m in ID.findall(cell)}
                    found["phones"] |= set(PHONE.findall(cell))
                    found["names"] |= set(FOOTER_NAME.findall(cell))
                    if re.sub(r"\s", "", cell) == "姓名":
                        name_col = i
    return found


PERSONS = personal_data(INBOX / PERIOD)


def test_the_input_has_the_persons_the_scan_looks_for():
    from test_pii import IDS, NAMES, PHONES
    assert PERSONS["ids"] >= set(IDS) and PERSONS["names"] >= set(NAMES) and PERSONS["phones"] >= set(PHONES)


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """The fixture month run by `shegong run` with every logger at DEBUG."""
    tmp = tmp_path_factory.mktemp("leaks")
    shutil.copytree(INBOX, tmp / "inbox")
    db = tmp / "data" / "warehouse.duckdb"
    done = run(["run", "--period", PERIOD, "--inbox", str(tmp / "inbox"), "--db", str(db)], tmp,
               SHEGONG_LOG_LEVEL="DEBUG", PREFECT_LOGGING_LEVEL="DEBUG")
    assert done.returncode == 0, done.stderr
    return done, db


def needles() -> dict[str, str]:
    out = {}
    for i in PERSONS["ids"]:
        out[i] = "ID number"
        out[i[:17]] = "ID number without its check digit"
    out |= {n: "name" for n in PERSONS["names"]} | {p: "phone number" for p in PERSONS["phones"]}
    out[os.environ["SHEGONG_ID_KEY"]] = "hashing key"
    return out


def text_of(path: Path) -> str:
    """What a file says, as a person or a program reading it would see it."""
    data = path.read_bytes()
    if data[:4] == b"PK\x03\x04":  # xlsx and other zip containers: every part, inflated
        with zipfile.ZipFile(path) as z:
            data = b"\n".join(z.read(n) for n in z.namelist())
    text = data.decode("utf-8", errors="replace")
    if path.suffix == ".json":
        text = json.dumps(json.loads(text), ensure_ascii=False)
    return html.unescape(text)


def leaks(where: str, text: str) -> list[str]:
    return [f"{kind} {needle!r} in {where}" for needle, kind in needles().items() if needle in text]


def test_no_person_and_no_key_in_the_log(logged_run):
    done, _ = logged_run
    assert "DEBUG" in done.stderr  # the level was really DEBUG
    assert leaks("the log", done.stdout + done.stderr) == []


def test_no_person_and_no_key_in_any_column_of_the_warehouse(logged_run):
    _, db = logged_run
    found = []
    with duckdb.connect(str(db), read_only=True) as c:
        columns = c.execute("select table_schema, table_name, column_name from information_schema.columns "
                            "where table_schema not in ('information_schema', 'pg_catalog')").fetchall()
        assert len(columns) > 100
        for schema, table, column in columns:
            text = c.execute(f'select string_agg(cast("{column}" as varchar), \'|\') from "{schema}"."{table}"'
                             ).fetchone()[0]
            found += leaks(f"{schema}.{table}.{column}", text or "")
    assert found == []


def month_files(db: Path) -> dict[str, list[Path]]:
    """Every file a run wrote beside the warehouse for the month: feedback, reports, validation site."""
    out = {}
    for folder in (db.parent / "feedback" / PERIOD, db.parent / "reports" / PERIOD, db.parent / "validation"):
        out[folder.name if folder.name != PERIOD else folder.parent.name] = sorted(
            p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return out


def test_no_person_and_no_key_in_feedback_reports_or_validation_pages(logged_run):
    _, db = logged_run
    files = month_files(db)
    assert files["feedback"] and files["validation"]
    found = []
    for group in files.values():
        for path in group:
            found += leaks(str(path.relative_to(db.parent)), text_of(path))
    assert found == []


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_what_the_run_wrote_is_readable_by_its_owner_only(logged_run):
    _, db = logged_run
    assert mode(db) == 0o600
    assert mode(db.with_name(db.name + ".lock")) == 0o600
    files = month_files(db)
    for group in ("feedback", "reports", "validation"):
        folder = db.parent / group
        assert folder.is_dir(), group
        wrong = [f"{p.relative_to(db.parent)} {oct(mode(p))}" for p in [folder, *folder.rglob("*")]
                 if mode(p) != (0o700 if p.is_dir() else 0o600)]
        assert wrong == [], group
    assert files["feedback"]


def test_the_key_file_is_created_readable_by_its_owner_only(tmp_path):
    path, created = pii.make_key_file(tmp_path / "secrets" / "id-hash.key")
    assert created and mode(path) == 0o600 and mode(path.parent) == 0o700
    assert len(path.read_text().strip()) == 64


def test_no_person_and_no_key_in_the_prefect_artifacts(logged_run):
    from prefect.client.orchestration import get_client
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(limit=200)
    assert {a.key for a in artifacts} >= {f"summary-{PERIOD}", f"indicators-{PERIOD}"}
    found = []
    for a in artifacts:
        found += leaks(f"Prefect artifact {a.key}", json.dumps(a.data, ensure_ascii=False, default=str)
                       + (a.description or ""))
    assert found == []
