"""The monthly roll-up flow: discover → read → identify senders → validate → load, carry forward,
roll up and compute → publish → feedback for senders and the validation site."""
from __future__ import annotations

if __package__ != "flows":
    # Executed from its file (a deployment whose entrypoint is "flows/monthly.py:monthly_rollup"):
    # the package's modules would load a second time under another name, which the read pool's
    # and Dask's worker processes cannot import. Stop here, with what to do, rather than on the
    # first month big enough for the pool.
    raise ImportError("flows/monthly.py is the module flows.monthly: deploy the flow with `shegong serve` or "
                      "`shegong deploy` (entrypoint flows.monthly.monthly_rollup), not from its file path")

import contextvars
import datetime as dt
import hashlib
import json
import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
from prefect import flow, task, unmapped
from prefect.cache_policies import NONE
from prefect.context import get_run_context
from prefect.logging import get_run_logger
from prefect.states import Failed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.utilities.annotations import quote
# Prefect imports FastAPI's encoder on each flow run's creation, the first one paying for the import
# (0.2 s): with the rest of the run's imports, while a temporary server starts (flows/server.py).
import fastapi.encoders  # noqa: F401

from flows.validate import datadocs, suites
from flows.warehouse import faults, load, publish, rollup
from flows.outputs import feedback, report, webpage, workbook
from flows import pii, progress, stopping
from flows.ingest import discover, guard, read, sandbox
from flows.ingest.discover import FileRecord
from flows.registry import Tree
from flows.ingest.senders import file_senders
from flows.config import (DEFAULT_DB, DEFAULT_INBOX, Settings, check_period, deadline_utc, load_settings,
                          previous_month, settings_file)
from flows.errors import ConfigError, ShegongError
from flows.registry import load_plans, load_population, load_units
from flows.schemas import Form, load_forms

log = logging.getLogger("shegong")


class _KnownFailure(logging.Filter):
    """A run stopped by an error an operator mends (ours, and a disk full, read-only or not
    writable) says so in one line: the flow's own ERROR line (served or by a worker: the reason of
    its Failed state in the UI), or `shegong run`'s line on stderr. Prefect's engine would log the
    same error with a traceback (as "unexpected") and then each failed run's state: left out, but
    shown at SHEGONG_LOG_LEVEL=DEBUG. Prefect's API still gets the states."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: set = set()  # task or flow runs that failed with such an error

    def filter(self, record: logging.LogRecord) -> bool:
        if log.getEffectiveLevel() <= logging.DEBUG:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        run = getattr(record, "task_run_id", None) or getattr(record, "flow_run_id", None)
        if exc is not None and (isinstance(exc, ShegongError) or publish.storage_errno(exc) is not None):
            self.runs.add(run)
            return False
        # SIGTERM to `shegong run` in the moment between Prefect's flow engine installing its
        # own handler and the flow's body putting ours back (stopping.reclaim): Prefect's may log
        # the crash before flows/stopping.py silences the output; the stop's one line says it
        # all. (Served, the crash line stays: it is the UI's reason.)
        if stopping.installed() and "aborted by a termination signal" in record.getMessage():
            self.runs.add(run)
            return False
        return run is None or run not in self.runs


_known_failure = _KnownFailure()
for _name in ("prefect.flow_runs", "prefect.task_runs"):
    logging.getLogger(_name).addFilter(_known_failure)


@dataclass(frozen=True)
class Run:
    """What a run reads once, when it starts, and hands to its tasks: the month, where it reads
    and writes, the settings and everything they name. Nothing is read again mid-run, so a file
    edited meanwhile cannot give the month's stages two different registries or schemas."""
    period: str
    inbox: Path
    db: Path
    full: bool
    settings: Settings
    forms: dict[str, Form]
    units: pl.DataFrame
    tree: Tree
    population: pl.DataFrame
    plans: tuple[pl.DataFrame, pl.DataFrame]
    key_id: str
    reading: dict  # what decides what a file yields (read.reading_fingerprint)
    run_id: str
    started: dt.datetime
    flow_run_id: str | None


def start_run(period: str | None, inbox: str, db: str, full: bool = False) -> Run:
    """The run's context, or the ConfigError (one line, with the file to fix) that stops it first.
    The key itself stays out: each reader process loads it, and only its id is recorded."""
    settings = load_settings()
    period = check_period(period or previous_month(settings))
    key = pii.load_key()  # fail before any work when there is no key
    forms = load_forms(settings.schemas)
    units = load_units(settings.units_csv)
    try:
        flow_run_id = str(get_run_context().flow_run.id)
    except Exception:  # run outside a Prefect context (a plain function call)
        flow_run_id = None
    return Run(period=period, inbox=Path(inbox), db=Path(db), full=full, settings=settings, forms=forms,
               units=units, tree=Tree(units), population=load_population(settings.population_csv),
               plans=load_plans(settings.plans_dir), key_id=pii.key_id(key),
               reading=read.reading_fingerprint(forms, settings.units_csv, key), run_id=str(uuid.uuid4()),
               started=dt.datetime.now(dt.UTC).replace(tzinfo=None), flow_run_id=flow_run_id)


# Tasks take and return frames in memory: no caching or result persistence, which would hash
# or write the month's rows (and their person keys) elsewhere.
@task(cache_policy=NONE)
def discover_files(inbox: Path, period: str) -> list[Path]:
    """The month's files."""
    files = discover.discover(inbox, period)
    if not (inbox / period).is_dir():
        log.warning("%s: no folder %s: nothing received this month (earlier submissions may be carried)",
                    period, inbox / period)
    log.info("%s: %d files under %s", period, len(files), inbox / period)
    return files


@task(cache_policy=NONE)
def reuse_unchanged(files: list[Path], run: Run
                    ) -> tuple[dict[int, FileRecord], dict[str, pl.DataFrame], list[int], set[str]]:
    """Files unchanged (same SHA-256) since the month's last run, taken from it when it read them
    under the same `reading` fingerprint (schemas, code, registry, key): their records by index,
    and their rows per form; the indexes of the files to parse; and the files among those taken
    whose stored rows are exactly what this run would store (same modification time too), left
    in place by the load. `full`: none is taken."""
    cached, rows, why = (({}, {}, "asked for (--full)") if run.full
                         else load.read_cache(run.db, run.period, run.forms, run.reading))
    if why and files:
        # One line for the operator: figures may change although no file did.
        log.warning("%s: all %d files read again, none taken from the month's last run: %s", run.period, len(files), why)
    root = run.inbox / run.period
    hits, todo, stored = {}, [], set()
    for i, path in enumerate(files):
        record = cached.get(path.relative_to(root).as_posix())
        # Only a file that could be a hit is read to compare it; a link or an oversized file is
        # left to read_file, which judges it without holding its bytes.
        readable = record and not path.is_symlink() and path.stat().st_size <= guard.MAX_FILE_BYTES
        data = path.read_bytes() if readable else b""
        if record and data and record.sha256 == hashlib.sha256(data).hexdigest():
            # Same content: only the modification time may have moved, as a first run would see it.
            received_at = discover.file_time(path)
            if received_at == record.received_at:
                stored.add(record.path)
            record.received_at = received_at
            hits[i] = record
        else:
            todo.append(i)
    received = {r.path: r.received_at for r in hits.values()}
    kept = pl.DataFrame({"_file": list(received), "_received_at": list(received.values())},
                        schema={"_file": pl.String, "_received_at": pl.Datetime("us")})
    rows = {form_id: frame.drop("_received_at").join(kept, on="_file", how="inner", maintain_order="left")
            .select(frame.columns) for form_id, frame in rows.items()}
    return hits, rows, todo, stored


@task(cache_policy=NONE)
def read_files(paths: list[Path], inbox: Path, period: str) -> sandbox.Parsed:
    """Every new or changed file read (or recorded with why it could not be), on every core."""
    parsed = sandbox.parse_in_pool(paths, inbox / period, period, done=lambda n: progress.advance("read", n))
    faults.checkpoint("reading")
    return parsed


@task(cache_policy=NONE)
def read_batch(paths: list[str], inbox: str, period: str) -> sandbox.Parsed:
    """A share of the files read by one worker of a distributed task runner. Paths travel as
    strings: Dask tokenizes a task's arguments by pickling anything it does not know, which for
    Path objects cost 0.1 s a batch in the flow's process, 8 s a province month."""
    return sandbox.parse_files([Path(p) for p in paths], Path(inbox) / period, period)


def read_month(files: list[Path], run: Run
               ) -> tuple[list[FileRecord], dict[str, pl.DataFrame], set[str], set[str]]:
    """The month's file records, in file order, its rows as a frame per form, the files taken
    from the month's last run (unchanged since, and read then as they would be now, they are not
    parsed again), and those of them whose stored rows stand as they are (reuse_unchanged)."""
    progress.stage("read", len(files))
    inbox, period = run.inbox, run.period
    hits, cached, todo, stored = reuse_unchanged(files, quote(run))
    if files:
        # Meanwhile the new files are read in other processes, and the month is loaded. Not
        # before the files are hashed: each of a rerun's thousands of reads gives up the GIL and
        # waits for the importing thread to give it back (5 of a province rerun's 7 s there).
        suites.import_early()
    progress.advance("read", len(hits))  # unchanged since the last run: taken as read
    new = [files[i] for i in todo]
    if run.settings.task_runner == "dask" and new:
        # A task per batch, spread over the runner's workers (processes, or other machines).
        size = sandbox.TASK_FILES
        batches = [[str(p) for p in new[i:i + size]] for i in range(0, len(new), size)]
        futures = read_batch.map(batches, inbox=unmapped(str(inbox)), period=unmapped(period))
        parts = []
        for future in futures:  # in order: a batch counts once it and those before it are read
            parts.append(future.result())
            progress.advance("read", len(parts[-1][0]))
        parsed, fresh = sandbox.combine(parts)
        faults.checkpoint("reading")
    else:
        parsed, fresh = read_files(new, inbox, period) if new else sandbox.combine([])
    by_index: dict[int, FileRecord] = hits | dict(zip(todo, parsed))
    records = [by_index[i] for i in range(len(files))]
    order = {r.path: n for n, r in enumerate(records)}
    frames = {}
    for form_id in run.forms:
        frame = pl.concat([cached[form_id], fresh[form_id]]) if form_id in cached else fresh[form_id]
        # In file order, as a first run reads them: the newest-file-wins rule depends on it.
        frames[form_id] = frame.sort(pl.col("_file").replace_strict(order, return_dtype=pl.Int64),
                                     maintain_order=True)
    log.info("%s: %d files read, %d unchanged since the last run taken from it", period, len(new), len(hits))
    return records, frames, {r.path for r in hits.values()}, stored


@task(cache_policy=NONE)
def identify_senders(records: list[FileRecord], frames: dict[str, pl.DataFrame], tree: Tree) -> dict:
    """Who sent each file and sheet; returns what validation needs to know of each sheet."""
    codes = [pair for frame in frames.values() if "unit_code" in frame.columns
             for pair in frame.select("_file", "unit_code").unique().iter_rows()]
    senders = file_senders(records, codes, tree)
    for r in records:
        r.sender_code = senders.get(r.path)
        for sh in r.sheets:
            sh.sender_code = tree.resolve(sh.sender)
    return {(sh.path, sh.sheet, sh.header_row): {"headers": sh.headers, "sender": sh.sender, "sender_code": sh.sender_code}
            for r in records for sh in r.sheets if sh.form}


def settled_validation(run: Run, fingerprint: str, reused: set[str]) -> dict[str, tuple[set[str], pl.DataFrame]]:
    """The last run's validation of the unchanged files, per form, if it used the same rules."""
    settled = load.settled_failures(run.db, run.period, fingerprint, reused, run.forms, rollup.CHECK_RULES)
    if reused:
        log.info("%s: %s", run.period, f"validation of {len(reused)} unchanged files taken from the last run" if settled
                 else "every file validated again (first run with these rules, forms or registry)")
    return settled


# One task run for the month's validation, not one per form: each task run costs Prefect's
# server about 0.03 s of CPU for its states and events (a fixture month's server CPU went from
# 0.73 to 0.56 s with six runs fewer); the forms' results are in Data Docs and the senders' lists.
@task(cache_policy=NONE)
def validate_forms(run: Run, fingerprint: str, reused: set[str], frames: dict[str, pl.DataFrame],
                   sheets: dict) -> tuple[dict, list]:
    """Each form's rows of the month through its suite (rows of settled files excepted), form by
    form: (form, checked rows, failures) by form id, and the GX results."""
    settled = settled_validation(run, fingerprint, reused)
    staged, results = {}, []
    progress.stage("validate", len(run.forms))
    for form_id in sorted(run.forms):
        form = run.forms[form_id]
        frame = frames[form_id].with_row_index("_row_id")
        checked, failures, result = suites.validate(form, frame, run.tree, sheets, settled.get(form_id),
                                                    period=run.period)
        faults.checkpoint("validating")
        staged[form_id] = (form, checked, failures)
        results.append(result)
        progress.advance("validate")
    return staged, results


@task(cache_policy=NONE)
def load_and_roll_up(building: Path, run: Run, records, staged, reused: int = 0,
                     validated_with: str | None = None, stored: set[str] = frozenset()) -> None:
    """Load the month into the building warehouse and compute its roll-up and indicators.
    `stored`: files whose rows in the read cache are left as they are."""
    settings, forms, period, run_id = run.settings, run.forms, run.period, run.run_id
    con = load.connect(building, settings.storage_version, settings.memory_limit)
    try:
        con.execute("begin")
        rolled_with = rollup.fingerprint(settings, forms, [run.units, run.population, *run.plans])
        if not load.built_with(con, rolled_with):
            load.ensure_tables(con, forms)
            load.load_reference(con, run.units, run.population, run.plans, forms)
        # A rerun under the same rules rebuilds the indicators of the units it changed only.
        kept = not run.full and rollup.keep_month(con, period, rolled_with)
        load.load_month(con, period, run_id, records, staged, stored,
                        frozenset(rollup.PER_UNIT) if kept else frozenset())
        load.carry_forward(con, period, forms, settings.carry_forward_months)
        rerolled = rollup.build(con, period, settings.community_rule, run_id, run.started.isoformat(sep=" "),
                                deadline_utc(period, settings).isoformat(sep=" "), kept)
        rollup.soft_bounds(con, period, run_id, forms)
        rollup.roster_conflicts(con, period, run_id, forms["SG-02"])
        faults.checkpoint("rolling_up")
        rows_read = sum(f.height for _, f, _ in staged.values())
        rows_rejected = sum(f.filter(~pl.col("accepted")).height for _, f, _ in staged.values())
        con.execute("insert into ingest.runs (run_id, period, flow_run_id, started_at, finished_at, inbox, files, "
                    "files_rejected, rows_read, rows_rejected, status, key_id, files_reused, validated_with, read_with, "
                    "rolled_with, units_rerolled) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'completed', ?, ?, ?, ?, ?, ?)",
                    [run_id, period, run.flow_run_id, run.started, dt.datetime.now(dt.UTC).replace(tzinfo=None),
                     str(run.inbox), len(records), sum(r.status == "rejected" for r in records), rows_read,
                     rows_rejected, run.key_id, reused, validated_with, json.dumps(run.reading, sort_keys=True),
                     rolled_with, rerolled])
        con.execute("commit")
        con.execute("checkpoint")
    except duckdb.OutOfMemoryException as exc:
        raise ConfigError(f"DuckDB ran out of the memory warehouse.memory_limit gives it ({settings.memory_limit}) "
                          f"while building {period}; raise it in {settings_file()} and run the month again "
                          f"(the published warehouse is unchanged)") from exc
    finally:
        con.close()


@task(cache_policy=NONE)
def publish_warehouse(building: Path, db: Path) -> None:
    """Swap the built warehouse in for the published one."""
    publish.swap(building, db)


@task(cache_policy=NONE)
def write_feedback(db: Path, period: str) -> list[Path]:
    """A workbook of problems for each sender of the month, beside the warehouse."""
    return feedback.write_feedback(db, period, feedback_dir(db), sandbox.map_in_pool, sandbox.pool_up())


def feedback_dir(db: Path) -> Path:
    return db.parent / "feedback"


@task(cache_policy=NONE)
def write_reports(db: Path, period: str, settings: Settings) -> dict[str, str]:
    """The month's report for the bureau, an xlsx workbook and a self-contained HTML page, in
    <db dir>/reports/<period>/, from the published warehouse."""
    out = workbook.report_dir(db, period)
    book = workbook.write_workbook(db, period, out, settings, sandbox.map_in_pool, sandbox.pool_up())
    return {"工作簿": str(book),
            "网页": str(webpage.write_page(db, period, out, settings))}


@task(cache_policy=NONE)
def write_reminders(db: Path, period: str, settings: Settings) -> list[Path]:
    """The month's missing list per county (催报), beside the report: <db dir>/reports/<period>/催报/."""
    return workbook.write_reminders(db, period, workbook.report_dir(db, period) / workbook.REMINDERS, settings)


def publish_artifacts(db: Path, period: str, files: dict[str, str]) -> None:
    """A markdown summary and the indicator table on the flow run, for the Prefect UI."""
    markdown, table = report.summary(db, period, files)
    create_markdown_artifact(markdown=markdown, key=f"summary-{period}",
                             description=f"{period} 月报摘要 / monthly summary")
    create_table_artifact(table=table, key=f"indicators-{period}",
                          description=f"{period} 市及各县区指标 / indicators of the city and counties")


@task(cache_policy=NONE)
def publish_data_docs(results: list, db: Path, run_name: str, build_index: bool = True) -> Path:
    """The run's Great Expectations results, added to the Data Docs site beside the warehouse
    (and, with `build_index`, to its index)."""
    return datadocs.publish_results(results, (db.parent / "validation").resolve(), run_name, build_index)


def _run_name() -> str:
    from prefect.runtime import flow_run
    period = flow_run.parameters.get("period")
    if not period:
        try:
            period = f"{previous_month(load_settings())}-scheduled"
        except ConfigError:  # the run itself stops on it, with its one line
            period = "scheduled"
    return f"rollup-{period}"


def task_runner(settings: Settings | None = None) -> TaskRunner:
    """The task runner run.task_runner names in the settings (or SHEGONG_TASK_RUNNER): threads in
    this process ("local", Prefect's default; reading has its own process pool), or a Dask
    cluster ("dask": a local one over every core here; DASK_SCHEDULER_ADDRESS names a running one)."""
    name = (settings or load_settings()).task_runner
    if name != "dask":
        return ThreadPoolTaskRunner()
    from prefect_dask import DaskTaskRunner
    if os.environ.get("DASK_SCHEDULER_ADDRESS"):
        return DaskTaskRunner(address=os.environ["DASK_SCHEDULER_ADDRESS"])
    return DaskTaskRunner(cluster_kwargs={"n_workers": os.cpu_count() or 1, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})


class SettingsTaskRunner(TaskRunner):
    """The flow's task runner: the one each run's settings name, chosen when the run has read them.

    Prefect enters a flow's task runner before the flow's body runs, and offers no hook to choose
    it per run (its decorator argument is fixed when the module is imported; PrefectHQ/prefect
    issue 15203 asks for run-time configuration). Choosing it at import read the settings then:
    a broken file silently gave the local runner and a runner set afterwards was ignored. The
    documented alternative, a thin flow calling an inner flow `.with_options(task_runner=...)`,
    would split every month over two flow runs, its logs, artifacts and task runs on the inner
    one and its Failed reason on the outer. So the flow's runner is this stand-in: the run's body
    builds its context (flows.monthly.Run), then `choose()`s the real runner, which this one
    enters and hands every submitted task to until the run ends. The same holds for each way of
    running: `shegong run` (a call of the flow), a served deployment and a worker's run (Prefect
    calls the flow from its entrypoint). A runner given with `.with_options(task_runner=...)`
    replaces this one and is used as it is."""

    def __init__(self) -> None:
        self._runner: TaskRunner | None = None
        self._stack: ExitStack | None = None
        super().__init__()

    @property
    def name(self) -> str:
        return self._runner.name if self._runner else "settings"

    def duplicate(self) -> "SettingsTaskRunner":
        return type(self)()

    def choose(self, settings: Settings) -> None:
        if self._runner is None:
            self._runner = self._stack.enter_context(task_runner(settings))

    def _chosen(self) -> TaskRunner:
        if self._runner is None:  # a task submitted before the run chose: Prefect's default
            self._runner = self._stack.enter_context(ThreadPoolTaskRunner())
        return self._runner

    def submit(self, task, parameters, wait_for=None, dependencies=None):
        return self._chosen().submit(task, parameters, wait_for, dependencies)

    def map(self, task, parameters, wait_for=None):
        return self._chosen().map(task, parameters, wait_for)

    def cancel_all(self) -> None:
        if hasattr(self._runner, "cancel_all"):
            self._runner.cancel_all()

    def __enter__(self) -> "SettingsTaskRunner":
        super().__enter__()
        self._stack = ExitStack()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._stack.__exit__(*exc)
        finally:
            self._runner, self._stack = None, None
            super().__exit__(*exc)

    def __reduce__(self):
        # Travels with the flow to Dask's workers: as configured, never the cluster it runs.
        return type(self), ()


@flow(name="monthly-rollup", flow_run_name=_run_name, log_prints=False, task_runner=SettingsTaskRunner())
def monthly_rollup(period: str | None = None, inbox: str = str(DEFAULT_INBOX), db: str = str(DEFAULT_DB),
                   full: bool = False, data_docs_index: bool = True) -> dict:
    """Roll up one month of the inbox into the warehouse and publish it (no period: last month).
    `full`: read and validate every file again, taking nothing from the month's last run.
    `data_docs_index` False: the validation site gets the month's pages but its index is left for
    a later run to rebuild (a backfill's months before its last: the index lists every stored
    result, so rebuilding it every month cost more each month)."""
    # `shegong run` stops on SIGTERM its own way (flows/stopping.py), not Prefect's.
    stopping.reclaim()
    try:
        run = start_run(period, inbox, db, full)
        runner = get_run_context().task_runner
        if isinstance(runner, SettingsTaskRunner):
            runner.choose(run.settings)
        return roll_up(run, data_docs_index)
    except ShegongError as exc:
        # A run that cannot go on, for a reason its message gives with what to do: the flow run is
        # Failed with that line as its reason in the UI and its log, not a traceback. Called as a
        # function (`shegong run`), the flow raises the error itself.
        get_run_logger().error("%s", exc, extra={"reason_line": True})
        return Failed(message=str(exc), data=exc)


def roll_up(run: Run, data_docs_index: bool = True) -> dict:
    """The flow's work, in its run."""
    period, inbox_path, db_path, forms = run.period, run.inbox, run.db, run.forms
    with publish.run_lock(db_path):
        files = discover_files(inbox_path, period)
        records, frames, reused, stored = read_month(files, run)
        # quote(): Prefect would otherwise walk every record and sheet of the month looking for
        # futures in the arguments, which at province scale takes longer than the work itself.
        sheets = identify_senders(quote(records), quote(frames), quote(run.tree))
        fingerprint = suites.fingerprint(forms, run.tree)
        staged, results = validate_forms(quote(run), fingerprint, quote(reused), quote(frames), quote(sheets))
        progress.step("汇总与计算")
        building = publish.prepare(db_path, run.run_id, run.settings.storage_version)
        try:
            # A disk that fills up while the month is built: the same clear message as before the run.
            with publish.writing(db_path):
                load_and_roll_up(building, quote(run), quote(records), quote(staged), len(reused), fingerprint,
                                 quote(stored))
                publish_warehouse(building, db_path)
        finally:
            publish.discard(building)
        progress.step("反馈表与月报")
        # One read-only connection to the month just published, for all its outputs. The senders'
        # lists and the report are made on the read pool's processes when there are many
        # (feedback.POOL_MIN_WORKBOOKS, workbook.POOL_MIN_ROWS) or the pool is up already (a month
        # that read its files on it, sandbox.pool_up): their tasks wait for them in
        # threads of their own while this one writes the reminders and the validation site
        # (a province month: 1,177 lists, a report of 1.5 s, Data Docs 0.6 s, one after the other).
        with publish.writing(db_path, published=period), report.published(db_path, period), \
                ThreadPoolExecutor(2, thread_name_prefix="outputs") as beside:
            lists = beside.submit(contextvars.copy_context().run, write_feedback, db_path, period)
            books = beside.submit(contextvars.copy_context().run, write_reports, db_path, period,
                                  quote(run.settings))
            reminders = write_reminders(db_path, period, quote(run.settings))
            docs = publish_data_docs(quote(results), db_path, f"{period} {run.run_id}", data_docs_index)
            reports = books.result()
            publish_artifacts(db_path, period, reports)
            sent = lists.result()
    rejected_files = [r for r in records if r.status == "rejected"]
    rows = sum(f.height for _, f, _ in staged.values())
    rows_rejected = sum(f.filter(~pl.col("accepted")).height for _, f, _ in staged.values())
    # What was rolled up and where to look, in the run's log (the UI's, for a scheduled run) too.
    done = (f"{period} rolled up: {len(records)} files ({len(rejected_files)} rejected, {len(reused)} unchanged "
            f"since the last run), {rows} rows ({rows_rejected} rejected); published {db_path}; report "
            f"{', '.join(reports.values())}; {len(sent)} feedback workbooks in {feedback_dir(db_path) / period}")
    log.info("%s", done)
    get_run_logger().info("%s", done)
    return {"period": period, "run_id": run.run_id, "files": len(records), "files_rejected": len(rejected_files),
            "rows": rows, "rows_rejected": rows_rejected,
            "files_reused": len(reused), "feedback": [str(p) for p in sent], "feedback_dir": str(feedback_dir(db_path) / period),
            "data_docs": str(docs), "reports": reports, "reminders": [str(p) for p in reminders]}
