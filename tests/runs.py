"""`shegong` run as an operator runs it, in a child process: for the tests that kill it, interrupt
it, starve it of disk, or read its log; and an analyst's own DuckDB session, in another. Runs use
the session's Prefect server (conftest's harness), so none starts a temporary one unless a test
removes PREFECT_API_URL."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from conftest import PERIOD

SHEGONG = Path(sys.executable).with_name("shegong")


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float  # the run's, or its reader process's if larger


def environment(**extra: str) -> dict[str, str]:
    """This session's environment (its hashing key) with the session's Prefect API."""
    from prefect.settings import PREFECT_API_URL
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHEGONG_PAUSE", "PYTEST_"))}
    env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    env.update(extra)
    return env


class Run:
    """A `shegong` child process, its output going to files beside the test's other files. It
    leads a session of its own, as a command started from a terminal leads its process group:
    Ctrl-C is a SIGINT to that group, and whatever the run started is found by its session."""

    def __init__(self, args: list[str], out_dir: Path, env: dict[str, str] | None = None, **extra: str):
        self.out, self.err = out_dir / "stdout.txt", out_dir / "stderr.txt"
        self.start = time.monotonic()
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([str(SHEGONG), *args], stdout=out, stderr=err,
                                         env=env or environment(**extra), start_new_session=True)

    def wait(self, timeout: float = 300) -> Finished:
        deadline = time.monotonic() + timeout
        while True:
            # wait4 rather than Popen.wait: it gives the peak memory of the run and of the
            # processes it waited for (the reader process).
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"shegong did not finish in {timeout} s: {self.err.read_text()[-2000:]}")
            time.sleep(0.05)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return Finished(self.proc.returncode, self.out.read_text(), self.err.read_text(),
                        time.monotonic() - self.start, usage.ru_maxrss / 1024)

    def kill(self) -> Finished:
        """kill -9, as the machine or an operator may."""
        os.kill(self.proc.pid, signal.SIGKILL)
        return self.wait()

    def interrupt(self, signum: int, timeout: float = 120) -> Finished:
        """Ctrl-C in the terminal (SIGINT to the process group) or `kill` (SIGTERM to the run)."""
        if signum == signal.SIGINT:
            os.killpg(self.proc.pid, signum)
        else:
            os.kill(self.proc.pid, signum)
        self.start = time.monotonic()  # Finished.seconds: from the signal to the end
        return self.wait(timeout)

    def left(self, timeout: float = 30) -> list[str]:
        """The processes of the run's session still there `timeout` seconds after it ended (none
        expected): processes end a moment after the signal that ends them."""
        deadline = time.monotonic() + timeout
        while (found := session(self.proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return found

    def end_session(self) -> None:
        """SIGKILL to whatever the run's session still holds (after a test's own kill -9)."""
        for line in session(self.proc.pid):
            try:
                os.kill(int(line.split()[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass

    def wait_for(self, marker: Path, timeout: float = 120) -> None:
        """Until the run writes `marker` (see flows/warehouse/faults.py), failing if it ends first."""
        deadline = time.monotonic() + timeout
        while not marker.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"shegong never reached {marker.name} (exit {self.proc.poll()}): "
                                     f"{self.err.read_text()[-3000:]}")
            time.sleep(0.02)
        self.paused_at = self.err.stat().st_size

    def said_since_pause(self) -> str:
        """What the run wrote on stderr since its last pause: what the test's doing made it say,
        apart from what a loaded machine may make it say before (a slow Dask worker's warning)."""
        return self.err.read_bytes()[self.paused_at:].decode()


def run(args: list[str], out_dir: Path, timeout: float = 300, **env: str) -> Finished:
    return Run(args, out_dir, **env).wait(timeout)


def session(sid: int) -> list[str]:
    """'pid command' of each live process (zombies aside) of session `sid`."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text(errors="replace")
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name} {cmd.strip()}")
        except (OSError, ValueError, IndexError):
            continue
    return found


def args(inbox: Path, db: Path) -> list[str]:
    return ["run", "--period", PERIOD, "--inbox", str(inbox), "--db", str(db)]


def lock_is_free(db: Path) -> bool:
    """No run holds the warehouse: neither its run lock nor a read lock on the published file
    (probed with the write lock a read-write DuckDB open takes, which leaves the file as it is)."""
    fd = os.open(db.with_name(db.name + ".lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    if not db.exists():
        return True
    fd = os.open(db, os.O_RDWR)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def building(db: Path) -> list[Path]:
    return sorted(p for p in db.parent.iterdir() if p.name.endswith(".building"))


def month_of(db: Path) -> tuple[list, list]:
    with duckdb.connect(str(db), read_only=True) as c:
        values = c.execute("select * exclude (period) from mart.indicator_values where period = ? "
                           "order by unit_code, indicator_id", [PERIOD]).fetchall()
        files = c.execute("select path, sha256, status, reason_zh from ingest.files where period = ? order by path",
                          [PERIOD]).fetchall()
    return values, files


class Analyst:
    """An analyst's Python session in a process of its own, holding DuckDB connections as told:
    `do("open", path)` read-write (duckdb.connect's default), `do("open_ro", path)`, `do("sql", q)`,
    `do("query", q)` (rows), `do("close")`. Each returns ("ok", value) or ("error", message)."""

    PROGRAM = '''
import json, sys, duckdb
con = None
for line in sys.stdin:
    cmd, arg = json.loads(line)
    try:
        if cmd == "open":
            con = duckdb.connect(arg)
        elif cmd == "open_ro":
            con = duckdb.connect(arg, read_only=True)
        elif cmd == "sql":
            con.execute(arg)
        elif cmd == "close":
            con.close()
            con = None
        reply = ["ok", con.execute(arg).fetchall() if cmd == "query" else None]
    except Exception as exc:
        reply = ["error", str(exc)]
    print(json.dumps(reply, default=str), flush=True)
'''

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", self.PROGRAM], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.pid = self.proc.pid

    def do(self, cmd: str, arg: str | Path | None = None) -> tuple[str, object]:
        self.proc.stdin.write(json.dumps([cmd, str(arg) if arg is not None else None]) + "\n")
        self.proc.stdin.flush()
        kind, value = json.loads(self.proc.stdout.readline())
        return kind, value

    def ok(self, cmd: str, arg: str | Path | None = None):
        kind, value = self.do(cmd, arg)
        assert kind == "ok", value
        return value

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def quit(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def descendants(pid: int) -> set[int]:
    """Every live process under `pid`: its children, theirs, and so on."""
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        try:
            kids = {int(k) for k in Path(f"/proc/{p}/task/{p}/children").read_text().split()}
        except OSError:
            continue
        todo += sorted(kids - found)
        found |= kids
    return found


def gone(pid: int) -> bool:
    """Whether a process has ended (a zombie waiting for its parent has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0] in "ZX"
    except (OSError, IndexError):
        return True


def wait_gone(pids, timeout: float = 30) -> list[int]:
    """Those of `pids` still there after `timeout` seconds (none, once all have ended)."""
    deadline = time.monotonic() + timeout
    while not all(gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if not gone(p)]
