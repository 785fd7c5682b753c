"""Ctrl-C (SIGINT to the run's process group, as a terminal sends it) and SIGTERM at every stage of
a real `shegong run`: the run stops within seconds, prints one line, exits 130 or 143, leaves the
published warehouse as it was (or, after the swap, with the whole new month), no copy, a free lock,
and no process: not the reader process, the pool's forkserver, Dask's workers, nor Prefect's
temporary server. The runs go at once, each on its own copy, each stopped at its pause point."""
from __future__ import annotations

import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from conftest import PERIOD
from flows.warehouse import faults
from flows.cli import interrupted_line
from runs import Run, args, building, environment, lock_is_free, sha256

UNCHANGED = "shegong: 中止（{name}）：已发布的数据仓库未改变 / interrupted ({name}); the published warehouse is unchanged\n"
PUBLISHED = (f"shegong: 中止（{{name}}）：已发布 {PERIOD}；{PERIOD} 的反馈表和月报未写完，请重新运行该月 / interrupted "
             f"({{name}}) after publishing {PERIOD}; run {PERIOD} again to write its feedback and report\n")


@dataclass
class Case:
    stage: str
    signum: signal.Signals
    how: str = "harness"  # the session's Prefect API; "temporary": Prefect's own; "dask"; "pool"


# SIGINT and SIGTERM at each stage; some of them with Prefect's temporary server (about 220 MB, it
# must not outlive the run), on Dask (its nannies and workers are alive while reading), or with
# enough new files for the process pool (its forkserver and resource tracker outlive reading).
VARIANTS = {("validating", signal.SIGTERM): "temporary", ("rolling_up", signal.SIGINT): "temporary",
            ("reading", signal.SIGTERM): "dask", ("validating", signal.SIGINT): "pool"}
CASES = [Case(stage, signum, VARIANTS.get((stage, signum), "harness"))
         for signum in (signal.SIGINT, signal.SIGTERM) for stage in faults.STAGES]


def start(case: Case, published_once: tuple[Path, Path], tmp: Path) -> tuple[Run, Path, Path]:
    d = tmp / f"{case.stage}-{case.signum.name}-{case.how}"
    inbox, db = d / "inbox", d / "wh" / "warehouse.duckdb"
    shutil.copytree(published_once[0], inbox)
    db.parent.mkdir()
    shutil.copy2(published_once[1], db)
    if case.how == "pool":
        for i in range(24):
            shutil.copy2(inbox / PERIOD / "米易县" / "SG-02台账.csv", inbox / PERIOD / "米易县" / f"台账副本{i:02}.csv")
    marker = d / "paused"
    # The pause lasts until the test gets to it, whichever run it handles first.
    env = environment(SHEGONG_PAUSE_AT=case.stage, SHEGONG_PAUSE_FILE=str(marker), SHEGONG_PAUSE_SECONDS="1800")
    if case.how == "temporary":
        del env["PREFECT_API_URL"]
        env["PREFECT_HOME"] = str(d / "prefect-home")
        env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "600"  # a loaded machine
    if case.how == "dask":
        env["SHEGONG_TASK_RUNNER"] = "dask"
    return Run(args(inbox, db), d, env=env), marker, db


def test_interrupted_runs_stop_in_seconds_in_one_line_and_leave_nothing(published_once, tmp_path):
    started = {i: start(case, published_once, tmp_path) for i, case in enumerate(CASES)}
    before = sha256(published_once[1])
    problems, seconds = [], {}
    deadline = time.monotonic() + 900
    while started:
        assert time.monotonic() < deadline, f"runs never paused: {[CASES[i] for i in started]}"
        ready = [i for i, (r, marker, _) in started.items() if marker.exists() or r.proc.poll() is not None]
        if not ready:
            time.sleep(0.1)
            continue
        i = ready[0]
        case, (r, marker, db) = CASES[i], started.pop(i)
        r.wait_for(marker, timeout=0)  # fails with the run's stderr if it ended instead
        done = r.interrupt(case.signum)
        seconds[f"{case.stage} {case.signum.name} {case.how}"] = round(done.seconds, 1)
        name = case.signum.name
        expected = (PUBLISHED if case.stage == "published" else UNCHANGED).format(name=name)
        got = {"exit": done.returncode, "stdout": done.stdout, "said": r.said_since_pause(),
               "traceback": "Traceback" in done.stderr, "building": building(db), "lock free": lock_is_free(db),
               "left": r.left()}
        want = {"exit": 128 + case.signum, "stdout": "", "said": expected, "traceback": False, "building": [],
                "lock free": True, "left": []}
        if case.stage == "published":  # the whole new month, never a part
            with duckdb.connect(str(db), read_only=True) as c:
                got["files"] = c.execute("select count(*) from ingest.files where period = ?", [PERIOD]).fetchone()[0]
            want["files"] = 9
        else:
            got["sha256"], want["sha256"] = sha256(db), before
        if got != want:
            problems.append((case, {k: (got[k], want[k]) for k in want if got[k] != want[k]}))
    print("seconds from the signal to the end of the run:", seconds)
    assert not problems, problems


def test_the_line_of_an_interrupted_range_names_what_it_published():
    months = ["2024-03", "2024-04", "2024-05"]
    assert interrupted_line(signal.SIGINT, months, 0, []) + "\n" == UNCHANGED.format(name="SIGINT")
    assert interrupted_line(signal.SIGINT, months, 1, ["2024-03"]) == (
        "shegong: 中止（SIGINT）：已发布 2024-03，之后的月份未发布 / interrupted (SIGINT) after publishing 2024-03; "
        "the months after it are unchanged")
    assert interrupted_line(signal.SIGTERM, months, 2, ["2024-03"]) == (
        "shegong: 中止（SIGTERM）：已发布 2024-03、2024-04，之后的月份未发布；2024-04 的反馈表和月报未写完，请重新运行该月 / "
        "interrupted (SIGTERM) after publishing 2024-03, 2024-04; the months after it are unchanged; run 2024-04 "
        "again to write its feedback and report")
