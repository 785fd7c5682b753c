"""A Prefect server that outlives a run: `shegong server start|stop|status`, and which server a CLI
run uses. Started in the background with its own database under PREFECT_HOME, on a free (or the
given) port, its output in a log file; a state file beside the database says where it is, so that
`shegong run` uses it instead of starting a temporary server (4-14 s) for every run, and the
bureau sees its runs in the Prefect UI; or the temporary server of one run (Temporary). Nothing here
imports Prefect before a run has decided which server it uses.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from flows.errors import ShegongError

STATE_NAME = "shegong-server.json"
LOG_NAME = "shegong-server.log"
START_TIMEOUT = 180.0  # seconds: a first start migrates a new database, slowly on a loaded machine
STOP_TIMEOUT = 30.0


def prefect_home() -> Path:
    """Prefect's own default, without importing Prefect."""
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def state_file() -> Path:
    return prefect_home() / STATE_NAME


def healthy(api: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api.rstrip('/')}/health", timeout=timeout) as r:
            return r.status == 200
    except (OSError, ValueError):
        return False


def warm(api: str) -> None:
    """Have the server build its request handling now. FastAPI builds a route's on the first
    request matched against it, and a request no route takes is matched against them all: 0.3 s of
    the server's CPU that the first call of every run's process (Prefect's version check) would
    otherwise wait for."""
    try:
        urllib.request.urlopen(f"{api.rstrip('/')}/shegong-warm-up", timeout=30).close()
    except (OSError, ValueError):  # 404 is the answer; a server that did not answer shows later
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recorded() -> dict | None:
    try:
        state = json.loads(state_file().read_text())
        int(state["pid"]), str(state["api"]), str(state["url"])
        return state
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running() -> dict | None:
    """The server shegong started and left running, if it still answers; a stale state file (the
    machine restarted, the server was killed) is removed."""
    state = _recorded()
    if state is None:
        return None
    if _alive(int(state["pid"])):
        return state if healthy(state["api"]) else None
    state_file().unlink(missing_ok=True)
    return None


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start(host: str = "127.0.0.1", port: int | None = None) -> tuple[dict, bool]:
    """(the server's state, whether this call started it)."""
    state = running()
    if state:
        return state, False
    left = _recorded()
    if left and _alive(int(left["pid"])):
        raise ShegongError(f"the Prefect server started earlier (pid {left['pid']}, {left['url']}) is not answering; "
                           f"stop it with `shegong server stop` and start it again (its log: {left['log']})")
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    port = port or _free_port(host)
    url = f"http://{host}:{port}"
    log = home / LOG_NAME
    # The server's own settings: this PREFECT_HOME's database, never another server's API.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    prefect = Path(sys.executable).with_name("prefect")
    with open(log, "ab") as out:
        # A session of its own: it outlives this command and the terminal, and stop ends the group.
        proc = subprocess.Popen([str(prefect), "server", "start", "--host", host, "--port", str(port)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    state = {"pid": proc.pid, "url": url, "api": f"{url}/api", "log": str(log), "home": str(home),
             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    deadline = time.monotonic() + START_TIMEOUT
    while not healthy(state["api"]):
        if proc.poll() is not None or time.monotonic() > deadline:
            _end(proc.pid)
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise ShegongError(f"the Prefect server did not start on {url} (port taken? try --port): "
                               f"its log {log} ends with:\n" + "\n".join(tail))
        time.sleep(0.5)
    warm(state["api"])
    state_file().write_text(json.dumps(state))
    return state, True


def _end(pid: int) -> None:
    """SIGTERM to the server's process group, SIGKILL to what is left when its time is up."""
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:  # not our child (started by an earlier command)
                pass
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def stop() -> dict | None:
    """Stop the server shegong started; its state, or None when there was none."""
    state = _recorded()
    if state is None:
        return None
    if _alive(int(state["pid"])):
        _end(int(state["pid"]))
    state_file().unlink(missing_ok=True)
    return state


class Temporary:
    """Prefect's temporary server for one `shegong run`, started by the command itself as soon as
    it knows it needs one: the same server Prefect would start on the flow's first call (its
    ephemeral API on PREFECT_HOME's database, no UI), but started before Prefect, Polars, DuckDB
    and Great Expectations are imported, so that the server's start (5-8 s, in its own process)
    and those imports (about 6 s, in this one) overlap instead of following each other. Prefect
    would also import its whole server package into this process first (2-3 s) only to launch it.
    Stopped when this process exits (atexit; flows/stopping.py ends it on a signal, as it ended
    Prefect's own)."""

    def __init__(self) -> None:
        import importlib.util
        self.site = str(Path(importlib.util.find_spec("prefect").origin).parent.parent)
        self.proc: subprocess.Popen | None = None
        self.api = ""
        self._launch()

    def _launch(self) -> None:
        port = _free_port("127.0.0.1")
        self.api = f"http://127.0.0.1:{port}/api"
        # For the processes this run starts (Dask's workers), and for Prefect when it is imported.
        os.environ["PREFECT_API_URL"] = self.api
        # The variables Prefect's SubprocessASGIServer sets for it: an ephemeral server, no UI.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
        env.update(PREFECT_UI_ENABLED="0", PREFECT__SERVER_EPHEMERAL="1", PREFECT__SERVER_FINAL="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", self.site, "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "error", "--lifespan", "on"], stdin=subprocess.DEVNULL, env=env)
        # Warmed as soon as it answers, while this process is still importing (see `warm`).
        self.warmed = threading.Event()
        threading.Thread(target=self._warm, args=(self.proc, self.api, self.warmed), name="warm-prefect-server",
                         daemon=True).start()

    @staticmethod
    def _warm(proc: subprocess.Popen, api: str, warmed: threading.Event) -> None:
        while proc.poll() is None and not healthy(api, timeout=1.0):
            time.sleep(0.1)
        if proc.poll() is None:
            warm(api)
        warmed.set()

    def wait(self) -> None:
        """Until the server answers. Prefect's own wait (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        20 s by default) is too short for a first start's migrations on a loaded machine: at least 120 s."""
        try:
            timeout = max(float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS") or 0), 120.0)
        except ValueError:
            timeout = 120.0
        deadline, tries = time.monotonic() + timeout, 1
        while not healthy(self.api, timeout=1.0):
            code = self.proc.poll()
            if code == 3 and tries < 5:  # uvicorn's exit when the port was taken meanwhile: another port
                tries += 1
                self._launch()
                continue
            if code is not None or time.monotonic() > deadline:
                self.stop()
                why = f"exit code {code}" if code is not None else f"no answer in {timeout:.0f} s"
                raise ShegongError(f"Prefect's temporary server did not start ({why}); its output is above. "
                                   "Run again, or start one with `shegong server start`")
            time.sleep(0.1)
        self.warmed.wait(timeout=30)

    @contextlib.contextmanager
    def serving(self):
        """Once the server answers, Prefect's settings for the run's months: this server's API
        (it may have moved to another port after Prefect was imported) and no flow run
        heartbeats. Heartbeats tell a server that a run is alive; a temporary server ends with the
        run, so nobody can miss them, and Prefect's engine waits up to 1 s at the end of every
        flow run for its heartbeat thread (half a second a month on average, 20 s of a 41-month
        backfill). With a server that outlives the run they stay."""
        from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
        self.wait()
        with temporary_settings(updates={PREFECT_API_URL: self.api, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def for_run() -> str:
    """Point this process at a running server, if there is one, before Prefect is imported; the
    line saying which Prefect server the run uses."""
    api = os.environ.get("PREFECT_API_URL")
    if api:
        return f"Prefect：使用 PREFECT_API_URL 指定的服务器 {api}"
    state = running()
    if state:
        os.environ["PREFECT_API_URL"] = state["api"]
        from flows.spare import SERVING
        spare = "，在其预热进程中运行" if os.environ.get(SERVING) else ""
        return f"Prefect：使用 shegong server start 启动的服务器 {state['api']}（界面 {state['url']}）{spare}"
    return "Prefect：本次运行启动临时服务器（常驻服务器见 shegong server start）"
