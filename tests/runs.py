"""`shegong` run as an operator runs it, in a child process: for the tests that kill it, starve it
of disk, or read its log. Children use the session's Prefect server (conftest's harness), so none
starts a temporary one."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

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
    """A `shegong` child process, its output going to files beside the test's other files."""

    def __init__(self, args: list[str], out_dir: Path, **env: str):
        self.out, self.err = out_dir / "stdout.txt", out_dir / "stderr.txt"
        self.start = time.monotonic()
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([str(SHEGONG), *args], stdout=out, stderr=err, env=environment(**env))

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

    def wait_for(self, marker: Path, timeout: float = 120) -> None:
        """Until the run writes `marker` (see flows/faults.py), failing if it ends first."""
        deadline = time.monotonic() + timeout
        while not marker.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"shegong never reached {marker.name} (exit {self.proc.poll()}): "
                                     f"{self.err.read_text()[-3000:]}")
            time.sleep(0.02)


def run(args: list[str], out_dir: Path, timeout: float = 300, **env: str) -> Finished:
    return Run(args, out_dir, **env).wait(timeout)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
