"""A spare `shegong run` process, kept warm beside the server `shegong server start` left running.

Before a run does any work it imports Prefect, Polars, DuckDB, pandas and Great Expectations:
3-5 s of a city month's 9-11 s with a running server. The spare has imported them already and
waits on a Unix socket beside the server's state (PREFECT_HOME/shegong-spare.sock, owner-only).
`shegong run` hands it its command line, environment, working folder and its standard input,
output and error (the descriptors themselves), and the spare runs the command as that process
would have, on the caller's terminal, then ends. The caller waits, passes on Ctrl-C and SIGTERM,
and exits with the run's status. A new spare is started when one ends, while the server runs.

Used only when nothing that decides what the imported code does has changed since the spare
started: the project's code (flows/, sql/, schemas/, pyproject.toml), the installed packages
(their names and versions), the interpreter, the working folder and its Prefect configuration
files, and the environment variables read when those modules are imported (COMPARED). A spare
whose code is out of date refuses, starts a fresh one and ends; after any other refusal, with no
spare ready yet (a new one takes seconds after the last run), or while one runs another command,
the caller runs the command itself, as it always did. Not forked from a warm parent: Polars and
pyarrow start threads when imported, which a fork would not copy (Polars' documentation warns
against it).
"""
from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from flows import procs, server
from flows.config import PROJECT

SOCKET_NAME = "shegong-spare.sock"
STATE_NAME = "shegong-spare.json"
LOG_NAME = "shegong-spare.log"
READY_TIMEOUT = 120.0  # seconds `shegong server start` waits for the spare's imports
# Seconds either side waits for the other's part of the handshake. Generous: a caller that gave
# up on an answer the spare then sent would run the month itself beside the spare's run of it.
HELLO_TIMEOUT = 30.0
IDLE_CHECK = 30.0  # seconds between an idle spare's checks that its server still runs
# Environment variables that what the spare imports reads then, or that decide how it imports:
# Prefect's settings, Python's, those of the libraries with native thread pools and allocators,
# the locale, the time zone and the home and temporary folders. shegong's own (SHEGONG_*) are
# read when a run needs them, from the caller's environment, which the spare takes for the run.
COMPARED = ("PREFECT_", "PYTHON", "GX_", "DASK_", "POLARS_", "RAYON_", "_RJEM_", "OMP_", "OPENBLAS_", "ARROW_",
            "DO_NOT_TRACK", "LANG", "LC_", "TZ", "HOME", "TMPDIR")
_FRAME = struct.Struct("<I")
SERVING = "SHEGONG_SPARE_SERVING"  # set in the spare's environment while it runs a command

log = logging.getLogger("shegong")


def socket_path(home: Path | None = None) -> Path:
    return (home or server.prefect_home()) / SOCKET_NAME


@contextlib.contextmanager
def _short(path: Path):
    """A name for `path` that fits a Unix socket's 108 bytes wherever PREFECT_HOME is: the file
    in its folder, reached through the folder's descriptor (Linux's /proc/self/fd)."""
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def state_file(home: Path | None = None) -> Path:
    return (home or server.prefect_home()) / STATE_NAME


def code_key() -> str:
    """What the code a spare imported is made of: every file of the project's code, the
    interpreter, and the distributions installed where it imports from."""
    h = hashlib.sha256(f"{sys.executable}\0{sys.version}\0".encode())
    files = [PROJECT / "pyproject.toml"] + sorted(p for d in ("flows", "sql", "schemas")
                                                   for p in (PROJECT / d).rglob("*")
                                                   if p.is_file() and "__pycache__" not in p.parts)
    for p in files:
        h.update(str(p.relative_to(PROJECT)).encode() + b"\0")
        try:
            h.update(hashlib.sha256(p.read_bytes()).digest())
        except OSError:
            h.update(b"-")
    for entry in sys.path[1:]:  # [0] is the script's folder or the working folder: the caller's own
        try:
            names = sorted(n for n in os.listdir(entry or ".") if n.endswith((".dist-info", ".egg-info", ".pth")))
        except OSError:
            continue
        h.update(f"{os.path.abspath(entry)}\0{names}\0".encode())
    return h.hexdigest()


def env_key(env: dict[str, str], cwd: str) -> str:
    """What of a caller's environment the spare's imports may have read: the variables COMPARED
    names, the working folder, and the Prefect configuration files there (prefect.toml,
    pyproject.toml, .env, read by Prefect's settings at import)."""
    h = hashlib.sha256(json.dumps(sorted((k, v) for k, v in env.items() if k.startswith(COMPARED))).encode())
    h.update(f"\0{os.path.realpath(cwd)}\0".encode())
    for name in ("prefect.toml", "pyproject.toml", ".env"):
        try:
            h.update(hashlib.sha256(Path(cwd, name).read_bytes()).digest())
        except OSError:
            h.update(b"-")
    return h.hexdigest()


# --- the caller ------------------------------------------------------------------------------------

def delegate(argv: list[str], api: str) -> int | None:
    """Run `shegong <argv>` in the spare, if one is ready and may run it: its exit status. None:
    no spare took it, and this process runs the command itself. `api`: the running server's API,
    which the run will use (PREFECT_API_URL in the spare's environment)."""
    path = socket_path()
    if os.environ.get(SERVING) or not path.exists():
        return None
    # Compared as the run will see it once it has chosen the server (server.for_run); sent as it is.
    env = {**os.environ, "PREFECT_API_URL": api}
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(HELLO_TIMEOUT)
    # Held until the spare has answered: then passed on to it, or taken here as before.
    stops = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        try:
            with _short(path) as name:
                conn.connect(name)
            hello = json.dumps({"code": code_key(), "env": env_key(env, os.getcwd()), "argv": [sys.argv[0], *argv],
                                "environ": dict(os.environ), "cwd": os.getcwd()}).encode()
            socket.send_fds(conn, [b"h"], [0, 1, 2])
            conn.sendall(_FRAME.pack(len(hello)) + hello)
            reply = _message(conn)
        except (OSError, ValueError, EOFError) as exc:
            log.info("no spare process took the run (%s); running it here", exc)
            conn.close()
            return None
        if not reply.get("ok"):
            log.info("the spare process did not take the run (%s); running it here", reply.get("why"))
            conn.close()
            return None
        pid = int(reply["pid"])
        forwarded: list[int] = []

        def forward(signum, frame) -> None:
            forwarded.append(signum)
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        for signum in stops:
            signal.signal(signum, forward)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    conn.settimeout(None)
    status = None
    while True:
        try:
            message = _message(conn)
        except (EOFError, OSError, ValueError):
            break  # the spare has ended
        if "exit" in message:
            status = int(message["exit"])
    conn.close()
    if status is None:
        # Ended without a status: killed (by SIGKILL, or at its memory limit), as the command's
        # own process could have been.
        status = 128 + forwarded[-1] if forwarded else 1
        if not forwarded:
            print("shegong: 运行进程（服务器旁的预热进程）意外结束，没有退出状态；已发布的数据仓库完好，请重新运行该月 / "
                  "the run's process (the spare beside the server) ended without an exit status; the published "
                  "warehouse is whole; run the month again", file=sys.stderr)
    return status


def _message(conn: socket.socket) -> dict:
    return json.loads(_exactly(conn, _FRAME.unpack(_exactly(conn, _FRAME.size))[0]))


def _exactly(conn: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def _send(conn: socket.socket, message: dict) -> None:
    body = json.dumps(message).encode()
    conn.sendall(_FRAME.pack(len(body)) + body)


# --- the server's side: start, stop, status --------------------------------------------------------

def launch(env: dict[str, str], cwd: str, why: str) -> int:
    """Start a spare in the background (a session of its own, like the server), unless one is
    recorded already (starting, waiting or stopping); its pid. Recorded from now on, not ready
    yet, so that `shegong server stop` ends it even while it is still importing."""
    home = server.prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / f".{STATE_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one at a time: a second spare would take the first's socket
        state = _recorded()
        if state and state.get("api") == env.get("PREFECT_API_URL"):
            return int(state["pid"])
        if state:  # a spare of a server that has since died, and been started again elsewhere
            stop()
        with open(home / LOG_NAME, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "flows.spare"], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
            out.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} spare {proc.pid} started by {os.getpid()}: {why}\n"
                      .encode())
        _record({"pid": proc.pid, "since": procs.started(proc.pid), "api": env.get("PREFECT_API_URL"), "ready": False})
    return proc.pid


def _record(state: dict) -> None:
    part = state_file().with_name(f".{STATE_NAME}.{os.getpid()}")
    part.write_text(json.dumps(state))
    os.replace(part, state_file())


def _is_spare(state: dict) -> bool:
    try:
        return procs.started(int(state["pid"])) == state["since"] is not None
    except (KeyError, TypeError, ValueError):
        return False


def _recorded(home: Path | None = None) -> dict | None:
    """The spare's state, while its process lives (`home`: PREFECT_HOME, this process's by default)."""
    try:
        state = json.loads(state_file(home).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and _is_spare(state) else None


def ready(home: Path | None = None) -> dict | None:
    """The idle spare's state, if one is waiting for a command."""
    state = _recorded(home)
    return state if state and state.get("ready") and socket_path(home).exists() else None


def wait_ready(pid: int, timeout: float = READY_TIMEOUT) -> dict | None:
    """The spare started as `pid`, once it is ready; None if it ended or took too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _recorded()
        if state is None or int(state["pid"]) != pid:
            return None  # it ended, or another took its place
        if state.get("ready") and socket_path().exists():
            return state
        time.sleep(0.1)
    return None


def start_beside(api: str) -> dict | None:
    """A spare for the server at `api`: the one waiting (or starting), or a new one, once ready."""
    # The environment of a run in this shell, as `shegong run` makes it (server.for_run).
    return wait_ready(launch({**os.environ, "PREFECT_API_URL": api}, os.getcwd(), "shegong server start"))


def stop() -> dict | None:
    """End the idle (or starting) spare, if there is one; a spare running a command finishes it."""
    state = _recorded()
    if state is None:
        return None
    pid = int(state["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10
    while _is_spare(state) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _is_spare(state):
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while _is_spare(state) and time.monotonic() < deadline:
            time.sleep(0.05)
    # One still importing (or killed) has not removed its state and socket itself.
    if _recorded() is None:
        state_file().unlink(missing_ok=True)
        socket_path().unlink(missing_ok=True)
    return state


# --- the spare -------------------------------------------------------------------------------------

def _warm_up() -> None:
    """Import what a run imports (flows/cli.py cmd_run, flows/monthly.py), and Great Expectations;
    build GX's context and the suites of the forms the settings name. Suites are kept by the
    whole form they were built from (suites.suite), so a caller whose settings name other forms
    gets its own built: nothing here decides what a run finds."""
    import flows.cli  # noqa: F401 - its environment defaults, as in the caller
    import flows.monthly  # noqa: F401
    import flows.outputs.report  # noqa: F401
    import flows.outputs.missing  # noqa: F401
    import flows.outputs.feedback  # noqa: F401
    import flows.outputs.workbook  # noqa: F401
    import flows.outputs.webpage  # noqa: F401
    import flows.validate.views  # noqa: F401
    from flows.config import load_settings
    from flows.schemas import load_forms
    from flows.validate import suites
    suites._gx()
    try:
        forms = load_forms(load_settings().schemas)
        suites.context()
        for form in forms.values():
            suites.suite(form)
    except Exception as exc:  # noqa: BLE001 - settings the run will refuse, with its own message
        print(f"spare: suites not built ahead: {type(exc).__name__}: {exc}", flush=True)


def _listen() -> socket.socket:
    """The spare's socket, owner-only, put in place whole (bound under another name, renamed)."""
    path = socket_path()
    part = path.with_name(f".{path.name}.{os.getpid()}")
    part.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        with _short(part) as name:
            listener.bind(name)
    finally:
        os.umask(old)
    listener.listen(4)
    os.replace(part, path)
    return listener


def _retire(listener: socket.socket) -> None:
    """No longer the spare: its socket and state go (if still its own), so no caller finds it."""
    listener.close()
    try:
        state = json.loads(state_file().read_text())
        if int(state["pid"]) == os.getpid():
            socket_path().unlink(missing_ok=True)
            state_file().unlink(missing_ok=True)
    except (OSError, ValueError, KeyError, TypeError):
        pass


def _serve() -> int:
    # Started by a spare's thread that blocks signals, or its exit: a process starts with the
    # signal mask and ignored signals of the one that started it.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    launched_env, launched_cwd = dict(os.environ), os.getcwd()
    code = code_key()  # before the imports: a file changed while they run makes the key stale
    import flows.cli  # noqa: F401 - its defaults in the environment, as in a caller
    mine = env_key(os.environ, launched_cwd)  # before Polars' import adds its own
    _warm_up()
    listener = _listen()
    api = os.environ.get("PREFECT_API_URL")
    _record({"pid": os.getpid(), "since": procs.started(os.getpid()), "api": api, "ready": True,
             "socket": str(socket_path()), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    signal.signal(signal.SIGTERM, lambda *_: (_retire(listener), os._exit(0)))
    listener.settimeout(IDLE_CHECK)
    while True:
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            running = server.running()
            if not running or running["api"] != api:  # its server was stopped or died: no one to serve
                _retire(listener)
                return 0
            continue
        conn.settimeout(HELLO_TIMEOUT)
        try:
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
            _, fds, _, _ = socket.recv_fds(conn, 1, 3)
            hello = _message(conn)
        except (OSError, ValueError, EOFError):
            conn.close()
            continue
        why = ("another user" if uid != os.getuid() else "not three descriptors" if len(fds) != 3
               else "its code changed" if hello.get("code") != code
               else "another environment" if hello.get("env") != mine else None)
        if why:
            for fd in fds:
                os.close(fd)
            try:
                _send(conn, {"ok": False, "why": why})
            except OSError:
                pass
            conn.close()
            if why == "its code changed":  # out of date for every caller: a fresh spare instead
                _retire(listener)
                launch(launched_env, launched_cwd, "the code changed since the last one started")
                return 0
            continue
        _retire(listener)
        try:
            _send(conn, {"ok": True, "pid": os.getpid()})
        except OSError:  # the caller is gone: it runs nothing, and neither does this spare
            launch(launched_env, launched_cwd, "the last one lost its caller before the run")
            return 0
        return _run(conn, fds, hello, launched_env, launched_cwd)


def _run(conn: socket.socket, fds: list[int], hello: dict, launched_env: dict, launched_cwd: str) -> int:
    """Run the caller's command as the caller's process would, on its descriptors."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    # Buffered as a process started on them would be: line by line on a terminal.
    sys.stdout.reconfigure(line_buffering=os.isatty(1))
    sys.stderr.reconfigure(line_buffering=True)
    os.chdir(hello["cwd"])
    os.environ.clear()
    os.environ.update(hello["environ"])
    os.environ[SERVING] = "1"
    sys.argv = list(hello["argv"])
    conn.settimeout(None)
    lock = threading.Lock()

    def status(code: int) -> None:
        with lock:
            try:
                _send(conn, {"exit": code})
            except OSError:
                pass

    def stopped(code: int) -> None:  # by a signal: past atexit
        status(code)
        _successor(launched_env, launched_cwd, f"was stopped by a signal (exit status {code})")

    def watch() -> None:
        # The caller gone (killed, its terminal closed): this process ends as if it had been
        # killed with it, and the processes it started (the read pool's) with it.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            while conn.recv(1024):
                pass
        except OSError:
            pass
        try:
            from flows.warehouse import publish
            publish.stop()  # no swap starts now
            for pid in stopping.descendants():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            _successor(launched_env, launched_cwd, "lost its caller")
        finally:
            os.kill(os.getpid(), signal.SIGKILL)

    # A fresh spare once this one has ended (atexit runs this last), while the server runs.
    atexit.register(_successor, launched_env, launched_cwd, "ran its command")
    from flows import stopping
    stopping.on_exit(stopped)  # stopped by a signal: the status it exits with
    threading.Thread(target=watch, name="shegong-spare-caller", daemon=True).start()
    from flows.cli import main
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    status(code)
    return code


def _successor(env: dict, cwd: str, why: str) -> None:
    if server.running():
        launch(env, cwd, f"the last one {why}")


if __name__ == "__main__":  # python -m flows.spare: started by `shegong server start`, or by a spare
    sys.exit(_serve())
