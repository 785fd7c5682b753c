"""The scheduled run as the bureau runs it: a real Prefect server (`prefect server start` on a free
port, its own home), the deployment served by `shegong serve` or put on a process work pool by
`shegong deploy` and run by `prefect worker start`, each run started through the server's API.
Every run is of a sample city month (69 files, above the read pool's threshold) and must build the
warehouse `shegong run` builds from the same files, table by table."""
from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from conftest import assert_same_tables
from runs import SHEGONG, Run, environment, run
from flows import deploy
from flows.warehouse import publish
from flows.ingest import sandbox
from flows.config import load_settings, previous_month
from flows.errors import ConfigError

PREFECT = Path(sys.executable).with_name("prefect")
DEPLOYMENT = f"monthly-rollup/{deploy.DEPLOYMENT}"
POOL = "shegong-month"
# The month a run scheduled now, with no period, rolls up: its sample files are written for it.
MONTH = previous_month(load_settings())
TIMEOUT = 600  # a month's run on a loaded 2-core machine takes under a minute; this only stops a hang


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Started:
    """A child process in a process group of its own (it starts others: flow runs, pool workers,
    Dask), its output in a file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str], cwd: Path | None = None):
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                         start_new_session=True)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            if self.proc.poll() is not None:
                break
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                pass


def until(condition, what: str, timeout: float, process: Started | None = None):
    deadline = time.monotonic() + timeout
    while True:
        if (value := condition()):
            return value
        if process is not None and process.proc.poll() is not None:
            raise AssertionError(f"{what}: the process ended ({process.proc.returncode}): {process.tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s" + (f": {process.tail()}" if process else ""))
        time.sleep(0.5)


class Prefect:
    """A real Prefect server of this module, and the ways its deployment runs: `shegong serve`
    (local pool or Dask) or a worker of a process work pool. One at a time: they register the same
    deployment, monthly-rollup/monthly."""

    def __init__(self, tmp: Path, inbox: Path):
        self.tmp, self.inbox = tmp, inbox
        port = free_port()
        self.api = f"http://127.0.0.1:{port}/api"
        self.env = environment(PREFECT_API_URL=self.api, PREFECT_HOME=str(tmp / "prefect-home"),
                               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false",
                               # Runs due are looked for every 2 s (10 s by default).
                               PREFECT_RUNNER_POLL_FREQUENCY="2", PREFECT_WORKER_QUERY_SECONDS="2")
        # Prefect's own level, as an operator's shell has it (`shegong serve` raises it to INFO).
        self.env.pop("PREFECT_LOGGING_LEVEL", None)
        server_env = {k: v for k, v in self.env.items() if k != "PREFECT_API_URL"}
        self.server = Started([str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              tmp / "server.log", server_env)
        self.running: tuple | None = None
        self.processes: list[Started] = []

    def wait_until_up(self) -> None:
        def healthy():
            try:
                with urllib.request.urlopen(f"{self.api}/health", timeout=5) as r:
                    return r.status == 200
            except OSError:
                return False
        until(healthy, "prefect server start", 300, self.server)

    def client(self):
        from prefect.client.orchestration import get_client
        return get_client(sync_client=True)

    def settings(self):
        from prefect.settings import PREFECT_API_URL, temporary_settings
        return temporary_settings({PREFECT_API_URL: self.api})

    def deployment(self, db: Path, pool: str | None):
        """The deployment once registered for this warehouse and pool, its schedule active."""
        from prefect.exceptions import ObjectNotFound
        with self.settings(), self.client() as client:
            try:
                d = client.read_deployment_by_name(DEPLOYMENT)
            except ObjectNotFound:
                return None
        # Not paused: stopping the previous `shegong serve` paused its schedule, registering resumes it.
        return d if (d.parameters.get("db"), d.work_pool_name, d.paused) == (str(db), pool, False) else None

    def stop_running(self) -> None:
        for p in self.processes:
            p.stop()
        self.processes, self.running = [], None

    def serve(self, runner: str) -> Path:
        """`shegong serve` with this task runner, up and registered; the warehouse it writes."""
        db = self.tmp / f"served-{runner}" / "warehouse.duckdb"
        if self.running != ("serve", runner):
            self.stop_running()
            env = dict(self.env, SHEGONG_TASK_RUNNER=runner)
            self.processes = [Started([str(SHEGONG), "serve", "--inbox", str(self.inbox), "--db", str(db)],
                                      self.tmp / f"serve-{runner}.log", env)]
            until(lambda: self.deployment(db, None), "shegong serve registers the deployment", 300, self.processes[0])
            self.running = ("serve", runner)
        return db

    def work_pool(self) -> Path:
        """A process work pool, the deployment on it (`shegong deploy`), and a worker of the pool."""
        db = self.tmp / "worker" / "warehouse.duckdb"
        if self.running != ("worker", POOL):
            self.stop_running()
            here = self.tmp / "deployed-from"  # where `shegong deploy` runs: the worker's runs start there
            here.mkdir(exist_ok=True)
            for args in ([str(PREFECT), "work-pool", "create", POOL, "--type", "process"],
                         [str(SHEGONG), "deploy", "--pool", POOL, "--inbox", str(self.inbox), "--db", str(db)]):
                done = subprocess.run(args, env=self.env, cwd=here, capture_output=True, text=True, timeout=300)
                assert done.returncode == 0, done.stdout + done.stderr
            self.processes = [Started([str(PREFECT), "worker", "start", "--pool", POOL], self.tmp / "worker.log",
                                      self.env, cwd=self.tmp)]
            assert self.deployment(db, POOL)
            self.running = ("worker", POOL)
        return db

    def start_run(self, parameters: dict, state=None):
        with self.settings(), self.client() as client:
            deployment = client.read_deployment_by_name(DEPLOYMENT)
            return client.create_flow_run_from_deployment(deployment.id, parameters=parameters, state=state)

    def finished(self, flow_run_id):
        """The flow run once in a final state; cancelled if it does not get there."""
        from prefect.states import Cancelling
        with self.settings(), self.client() as client:
            def final():
                fr = client.read_flow_run(flow_run_id)
                return fr if fr.state and fr.state.is_final() else None
            try:
                return until(final, f"flow run {flow_run_id}", TIMEOUT, self.processes[0])
            except AssertionError:
                client.set_flow_run_state(flow_run_id, Cancelling(), force=True)
                raise

    def logs(self, flow_run_id, wanted: str) -> list:
        """The flow run's log lines, once one of them contains `wanted` (the last lines of a
        finished run may still be on their way to the server)."""
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
        with self.settings(), self.client() as client:
            def read():
                logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
                return logs if any(wanted in entry.message for entry in logs) else None
            return until(read, f"a log line of {flow_run_id} with {wanted!r}", 120)

    def close(self) -> None:
        self.stop_running()
        self.server.stop()


@pytest.fixture(scope="module")
def inbox(tmp_path_factory) -> Path:
    """The sample's city month MONTH (the same files every run reads)."""
    inbox = tmp_path_factory.mktemp("served") / "inbox"
    done = run(["sample", "--inbox", str(inbox), "--from", MONTH, "--to", MONTH], inbox.parent)
    assert done.returncode == 0, done.stderr
    return inbox


@pytest.fixture(scope="module")
def cli_month(inbox, tmp_path_factory):
    """MONTH as `shegong run` builds it, in a child process (on the session's Prefect server), while
    the module's server starts and serves: call it for the warehouse."""
    out = tmp_path_factory.mktemp("cli")
    db = out / "warehouse.duckdb"
    assert len(list((inbox / MONTH).rglob("*.*"))) >= sandbox.POOL_MIN_FILES, "the month must take the read pool"
    cli = Run(["run", "--period", MONTH, "--inbox", str(inbox), "--db", str(db)], out)
    finished = []

    def built() -> Path:
        if not finished:
            finished.append(cli.wait(TIMEOUT))
        assert finished[0].returncode == 0, finished[0].stderr
        return db
    yield built
    if not finished:
        cli.kill()


@pytest.fixture(scope="module")
def prefect(inbox, cli_month, tmp_path_factory):
    """The module's Prefect server."""
    p = Prefect(tmp_path_factory.mktemp("prefect"), inbox)
    try:
        p.wait_until_up()
        yield p
    finally:
        p.close()


def run_row(db: Path, flow_run_id: str | None = None) -> tuple:
    """What ingest.runs says of a run (of the only run, with no id)."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select period, files, files_rejected, rows_read, rows_rejected from ingest.runs "
                           "where ? is null or flow_run_id = ?", [flow_run_id, flow_run_id]).fetchall()
    [row] = rows
    return row


def assert_rolled_up_as_the_cli(prefect: Prefect, flow_run, db: Path, cli_month) -> None:
    """Completed; the warehouse is the CLI's; the run's log says what was rolled up and where the report is."""
    assert flow_run.state.is_completed(), (flow_run.state, prefect.processes[0].tail())
    cli_db = cli_month()
    assert_same_tables(cli_db, db)
    period, files, files_rejected, rows, rows_rejected = run_row(db, str(flow_run.id))
    assert (period, files, files_rejected, rows, rows_rejected) == run_row(cli_db)
    report = db.parent / "reports" / MONTH / f"report-{MONTH}.xlsx"
    assert report.is_file()
    line = f"{MONTH} rolled up: {files} files ({files_rejected} rejected"
    [summary] = [e.message for e in prefect.logs(flow_run.id, line) if line in e.message]
    assert f"{rows} rows ({rows_rejected} rejected); published {db};" in summary
    assert f"report {report}, {report.with_suffix('.html')};" in summary


def test_a_scheduled_run_of_the_served_deployment_rolls_up_last_month_as_the_cli_does(prefect, cli_month):
    """The schedule fires: a run of the served deployment scheduled a few seconds ahead, with no
    period (as the cron creates them), rolls up the previous month in the bureau's time zone,
    through the read pool, into the warehouse `shegong run` builds."""
    from prefect.states import Scheduled
    db = prefect.serve("local")
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    assert previous_month(load_settings(), at) == MONTH  # (not across a month's end since the module began)
    created = prefect.start_run({}, state=Scheduled(scheduled_time=at))
    assert created.state.is_scheduled() and "period" not in created.parameters
    flow_run = prefect.finished(created.id)
    assert_rolled_up_as_the_cli(prefect, flow_run, db, cli_month)
    assert run_row(db, str(flow_run.id))[0] == MONTH


def test_a_run_that_cannot_go_on_is_failed_with_its_reason_in_one_line(prefect):
    """Another run holds the warehouse: the served run is Failed, its reason the error's message,
    and its log holds that line, no traceback."""
    db = prefect.serve("local")
    with publish.run_lock(db):
        flow_run = prefect.finished(prefect.start_run({"period": MONTH}).id)
    reason = (f"another run is writing {db} (lock {db}.lock is held); wait for it to finish and run again")
    assert (flow_run.state.type.value, flow_run.state.message) == ("FAILED", reason)
    logs = prefect.logs(flow_run.id, reason)
    assert [e.message for e in logs if e.level >= logging.ERROR] == [reason]
    assert not [e.message for e in logs if "Traceback" in e.message]


def test_the_served_deployment_on_dask_rolls_up_a_month_as_the_cli_does(prefect, cli_month):
    """`[run] task_runner = "dask"` (here SHEGONG_TASK_RUNNER): the month is read as Dask tasks on
    the served run's local cluster."""
    db = prefect.serve("dask")
    flow_run = prefect.finished(prefect.start_run({"period": MONTH}).id)
    assert_rolled_up_as_the_cli(prefect, flow_run, db, cli_month)
    with prefect.settings(), prefect.client() as client:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
    names = {t.name.rsplit("-", 1)[0] for t in tasks}
    assert "read_batch" in names and "read_files" not in names


def test_deploy_needs_the_work_pool_created_first(prefect, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", prefect.api)
    with prefect.settings(), pytest.raises(ConfigError) as refused:
        deploy.deploy("no-such-pool", prefect.inbox, prefect.tmp / "nowhere.duckdb")
    assert str(refused.value) == (f"no work pool 'no-such-pool' on {prefect.api}: create it with "
                                  "`.venv/bin/prefect work-pool create no-such-pool --type process`")


def test_a_worker_of_a_process_pool_rolls_up_a_month_as_the_cli_does(prefect, cli_month):
    """Prefect's production set-up: `prefect work-pool create --type process`, `shegong deploy
    --pool`, `prefect worker start --pool`; the worker runs the deployment's run in a process of its own."""
    db = prefect.work_pool()
    flow_run = prefect.finished(prefect.start_run({"period": MONTH}).id)
    assert flow_run.work_pool_name == POOL
    assert_rolled_up_as_the_cli(prefect, flow_run, db, cli_month)
