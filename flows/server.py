"""A Prefect server that outlives a run: `shegong server start|stop|status`, and which server a CLI
run uses. Started in the background with its own database under PREFECT_HOME, on a free (or the
given) port, its output in a log file; a state file beside the database says where it is, so that
`shegong run` uses it instead of starting a temporary server (4-14 s) for every run, and the
bureau sees its runs in the Prefect UI. Nothing here imports Prefect: a run decides before it does.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
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


def for_run() -> str:
    """Point this process at a running server, if there is one, before Prefect is imported; the
    line saying which Prefect server the run uses."""
    api = os.environ.get("PREFECT_API_URL")
    if api:
        return f"Prefect：使用 PREFECT_API_URL 指定的服务器 {api}"
    state = running()
    if state:
        os.environ["PREFECT_API_URL"] = state["api"]
        return f"Prefect：使用 shegong server start 启动的服务器 {state['api']}（界面 {state['url']}）"
    return "Prefect：本次运行启动临时服务器（常驻服务器见 shegong server start）"
