"""The monthly roll-up flow: discover → read → identify senders → validate → load, carry forward,
roll up and compute → publish → feedback for senders and the validation site."""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from pathlib import Path

import polars as pl
from prefect import flow, task
from prefect.cache_policies import NONE
from prefect.context import get_run_context

from . import datadocs, feedback, load, pii, publish, read, rollup, validate
from .registry import Tree
from .senders import file_senders
from .config import DEFAULT_DB, DEFAULT_INBOX, SCHEMAS, check_period, deadline_utc, load_settings, previous_month
from .registry import load_indicators, load_population, load_units
from .schemas import load_forms

log = logging.getLogger("shegong")
# Tasks take and return frames in memory: no caching or result persistence, which would hash
# or write the month's rows (and their person keys) elsewhere.
@task(cache_policy=NONE)
def discover_files(inbox: Path, period: str) -> list[Path]:
    """The month's files."""
    files = read.discover(inbox, period)
    if not (inbox / period).is_dir():
        log.warning("%s: no folder %s: nothing received this month (earlier submissions may be carried)",
                    period, inbox / period)
    log.info("%s: %d files under %s", period, len(files), inbox / period)
    return files


@task(cache_policy=NONE)
def read_files(files: list[Path], inbox: Path, period: str, db: Path
               ) -> tuple[list[read.FileRecord], dict[str, list[dict]], int]:
    """Every file read, or recorded with why it could not be; unchanged files since the month's
    last run are taken from it instead of being parsed again."""
    forms = load_forms(SCHEMAS)
    key = pii.load_key()  # loaded here so that it never travels as a task parameter
    cache = load.read_cache(db, period, forms, pii.key_id(key))
    records, rows, reused = [], {}, 0
    root = inbox / period
    for path in files:
        rel = path.relative_to(root).as_posix()
        data = b"" if path.is_symlink() else path.read_bytes()  # links are judged by read_file
        hit = cache.get(rel)
        if hit and data and hit[0].sha256 == hashlib.sha256(data).hexdigest():
            record, by_form = hit
            # Same content: only the modification time may have moved, as a first run would see it.
            record.received_at = read.file_time(path)
            for form_rows in by_form.values():
                for r in form_rows:
                    r["_received_at"] = record.received_at
            reused += 1
        else:
            record, by_form = read.read_file(path, root, period, forms, key, data=data or None)
        records.append(record)
        for form_id, form_rows in by_form.items():
            rows.setdefault(form_id, []).extend(form_rows)
    log.info("%s: %d files read, %d unchanged since the last run taken from it", period, len(files) - reused, reused)
    return records, rows, reused


@task(cache_policy=NONE)
def identify_senders(records: list[read.FileRecord], rows: dict[str, list[dict]], tree: Tree) -> dict:
    """Who sent each file and sheet; returns what validation needs to know of each sheet."""
    senders = file_senders(records, rows, tree)
    for r in records:
        r.sender_code = senders.get(r.path)
        for sh in r.sheets:
            sh.sender_code = tree.resolve(sh.sender)
    return {(sh.path, sh.sheet): {"headers": sh.headers, "sender": sh.sender, "sender_code": sh.sender_code}
            for r in records for sh in r.sheets if sh.form}


@task(cache_policy=NONE)
def validate_form(form_id: str, rows: list[dict], tree: Tree, sheets: dict):
    """One form's rows of the month through its suite."""
    form = load_forms(SCHEMAS)[form_id]
    frame = read.to_frame(form, rows)
    checked, failures, result = validate.validate(form, frame, tree, sheets)
    return form, checked, failures, result


@task(cache_policy=NONE)
def load_and_roll_up(building: Path, period: str, run_id: str, started: dt.datetime, inbox: Path,
                     records, staged, flow_run_id: str | None, reused: int = 0) -> None:
    """Load the month into the building warehouse and compute its roll-up and indicators."""
    settings = load_settings()
    forms = load_forms(SCHEMAS)
    con = load.connect(building)
    try:
        con.execute("begin")
        load.ensure_tables(con, forms)
        load.load_reference(con, load_units(settings.units_csv), load_population(settings.population_csv),
                            load_indicators(settings.indicators_toml), forms)
        load.load_month(con, period, run_id, records, staged)
        load.carry_forward(con, period, forms, settings.carry_forward_months)
        rollup.build(con, period, settings.community_rule, run_id, started.isoformat(sep=" "),
                     deadline_utc(period, settings).isoformat(sep=" "))
        rollup.month_on_month(con, period, run_id, forms["SG-01"])
        rollup.roster_conflicts(con, period, run_id, forms["SG-02"])
        rows_read = sum(f.height for _, f, _ in staged.values())
        rows_rejected = sum(f.filter(~pl.col("accepted")).height for _, f, _ in staged.values())
        con.execute("insert into ingest.runs (run_id, period, flow_run_id, started_at, finished_at, inbox, files, "
                    "files_rejected, rows_read, rows_rejected, status, key_id, files_reused) "
                    "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'completed', ?, ?)",
                    [run_id, period, flow_run_id, started, dt.datetime.now(dt.UTC).replace(tzinfo=None),
                     str(inbox), len(records), sum(r.status == "rejected" for r in records), rows_read,
                     rows_rejected, pii.key_id(pii.load_key()), reused])
        con.execute("commit")
        con.execute("checkpoint")
    finally:
        con.close()


@task(cache_policy=NONE)
def publish_warehouse(building: Path, db: Path) -> None:
    """Swap the built warehouse in for the published one."""
    publish.swap(building, db)


@task(cache_policy=NONE)
def write_feedback(db: Path, period: str) -> list[Path]:
    """A workbook of problems for each sender of the month, beside the warehouse."""
    return feedback.write_feedback(db, period, feedback_dir(db))


def feedback_dir(db: Path) -> Path:
    return db.parent / "feedback"


@task(cache_policy=NONE)
def publish_data_docs(results: list, db: Path, run_name: str) -> Path:
    """The run's Great Expectations results, added to the Data Docs site beside the warehouse."""
    return datadocs.publish_results(results, (db.parent / "validation").resolve(), run_name)


def _run_name() -> str:
    from prefect.runtime import flow_run
    period = flow_run.parameters.get("period") or f"{previous_month(load_settings())}-scheduled"
    return f"rollup-{period}"


@flow(name="monthly-rollup", flow_run_name=_run_name, log_prints=False)
def monthly_rollup(period: str | None = None, inbox: str = str(DEFAULT_INBOX), db: str = str(DEFAULT_DB)) -> dict:
    """Roll up one month of the inbox into the warehouse and publish it (no period: last month)."""
    period = period or previous_month(load_settings())
    check_period(period)
    inbox_path, db_path = Path(inbox), Path(db)
    settings = load_settings()
    tree = Tree(load_units(settings.units_csv))
    pii.load_key()  # fail before any work when there is no key
    run_id = str(uuid.uuid4())
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    try:
        flow_run_id = str(get_run_context().flow_run.id)
    except Exception:  # run outside a Prefect context (a plain function call)
        flow_run_id = None

    with publish.run_lock(db_path):
        files = discover_files(inbox_path, period)
        records, rows, reused = read_files(files, inbox_path, period, db_path)
        sheets = identify_senders(records, rows, tree)
        staged, results = {}, []
        for form_id in sorted(load_forms(SCHEMAS)):
            form, checked, failures, result = validate_form(form_id, rows.get(form_id, []), tree, sheets)
            staged[form_id] = (form, checked, failures)
            results.append(result)
        building = publish.prepare(db_path, run_id)
        try:
            load_and_roll_up(building, period, run_id, started, inbox_path, records, staged, flow_run_id, reused)
            publish_warehouse(building, db_path)
        finally:
            publish.discard(building)
        sent = write_feedback(db_path, period)
        docs = publish_data_docs(results, db_path, f"{period} {run_id}")
    rejected_files = [r for r in records if r.status == "rejected"]
    rows_rejected = sum(f.filter(~pl.col("accepted")).height for _, f, _ in staged.values())
    log.info("%s: %d files (%d rejected), %d rows rejected; published %s",
             period, len(records), len(rejected_files), rows_rejected, db_path)
    return {"period": period, "run_id": run_id, "files": len(records), "files_rejected": len(rejected_files),
            "rows": sum(f.height for _, f, _ in staged.values()), "rows_rejected": rows_rejected,
            "files_reused": reused, "feedback": [str(p) for p in sent], "feedback_dir": str(feedback_dir(db_path) / period),
            "data_docs": str(docs)}
