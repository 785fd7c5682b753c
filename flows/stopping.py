"""Stopping `shegong run` on Ctrl-C (SIGINT) or SIGTERM: within seconds, in one line, leaving no
process behind and the published warehouse as the run found it (or with the months it finished).

Left to Python and Prefect, an interrupted run took up to 80 s and printed screens of tracebacks:
Ctrl-C reaches every process of the terminal's foreground group, so Prefect's temporary API
server stopped at once and the flow then retried its reports to it. SIGTERM killed the run
without its exit hooks, leaving that server (about 220 MB) running. So `shegong run`:
- blocks SIGINT in its threads before it starts any: every thread and child process (the
  temporary server, reader processes, the pool's forkserver and workers, Dask's nannies and
  workers) inherits the block, so Ctrl-C reaches this process only, in the one thread that
  unblocks it, the watcher's;
- has Python's C-level handler wake the watcher on either signal through the wakeup fd, at once,
  whatever the main thread is doing (a DuckDB query, a Prefect call, a wait);
- the watcher silences this process's output, raises Interrupted in the main thread so that the
  run does no more work, stops publishing (publish.stop: no swap starts after it, the copy being
  built is removed), ends every descendant (SIGTERM, SIGKILL after a grace), prints one line and
  exits 130 (SIGINT) or 143 (SIGTERM).
The published file never depends on this: a run killed with SIGKILL leaves it whole too.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import secrets
import signal
import sys
import threading
import time
from typing import Callable

from flows import procs
from flows.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Every process the run starts inherits it, at any depth: found by it even when its parent has died.
TOKEN = "SHEGONG_RUN_TOKEN"
GRACE = 2.0  # seconds a descendant has to end on SIGTERM before SIGKILL
_PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
_requested = threading.Event()


def install(line: Callable[[int, int], str]) -> None:
    """From now on SIGINT and SIGTERM stop this process as the module says; `line(signum, swaps)`
    gives the line to print, `swaps` being how many months this process published. Call in the
    main thread before any other thread or child process starts."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    os.environ[TOKEN] = f"{os.getpid()}-{secrets.token_hex(8)}"
    # A process whose parent ends (a pool worker after the forkserver) becomes this one's child, so
    # that it is reaped here rather than left a zombie for init.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # A pool cut short leaves semaphores for multiprocessing's resource tracker to remove, which
    # it does with a warning per kind: expected here, so not printed.
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"),
                                                          "ignore::UserWarning:multiprocessing.resource_tracker"]))
    r, w = os.pipe()
    os.set_blocking(w, False)
    for signum in SIGNALS:
        signal.signal(signum, _noted)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(r, line, threading.main_thread().ident), name="shegong-stop",
                     daemon=True).start()
    # Should the main thread end first (the Interrupted raised in it, or the run just finished),
    # the interpreter waits here, before it stops daemon threads, for the watcher to exit.
    atexit.register(_wait)


def installed() -> bool:
    """Whether this process stops as the module says (`shegong run`), not as Prefect does."""
    return os.environ.get(TOKEN, "").startswith(f"{os.getpid()}-")


def reclaim() -> None:
    """Put this module's SIGTERM handler back in place of the one Prefect's flow engine installs
    around each flow run (which raises TerminationSignal in the main thread, and logs the running
    task's crash). Called in the main thread at the start of the flow's body; Prefect restores
    ours again when the flow run ends. Nothing to do outside `shegong run` or off the main thread."""
    if installed() and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _noted)


def _noted(signum, frame) -> None:
    """The Python-level handler, run by the main thread when it gets to it: nothing to do, the
    watcher was woken already (SIGINT never interrupts the run's own code)."""


def _wait() -> None:
    while _requested.is_set():
        try:
            time.sleep(60)
        except Interrupted:  # raised in the main thread by the watcher, possibly here
            pass


def _watch(r: int, line: Callable[[int, int], str], main: int) -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    while True:
        got = [b for b in os.read(r, 64) if b in SIGNALS]
        if got:
            break
    _requested.set()
    try:
        _stop(got[0], line, main)
    finally:  # whatever happens, the process ends: the main thread may be waiting for it (_wait)
        for hook in _ON_EXIT:
            try:
                hook(128 + got[0])
            except Exception:
                pass
        os._exit(128 + got[0])


_ON_EXIT: list[Callable[[int], None]] = []


def on_exit(hook: Callable[[int], None]) -> None:
    """Have `hook(status)` told the status this process exits with when a signal stops it (it
    ends with os._exit, past atexit): a spare (flows/spare.py) tells its caller."""
    _ON_EXIT.append(hook)


def _stop(signum: int, line: Callable[[int, int], str], main: int) -> None:
    # The months finished before the signal keep their lines; bounded, as a reader of the output
    # may have stopped reading.
    flush = threading.Thread(target=_flush, daemon=True)
    flush.start()
    flush.join(1)
    err = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    # The run stops where it is; its `finally` blocks run, Prefect marks the flow run crashed if
    # its API is still there. Nothing it prints is seen.
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(main), ctypes.py_object(Interrupted))
    from flows.warehouse import publish
    publish.stop()
    _release_resource_tracker(null)
    end_descendants()
    swaps = publish.stop()  # the copy again: the run's DuckDB may have written in it meanwhile
    try:
        text = line(signum, swaps)
    except Exception as exc:  # never leave without the line
        text = f"shegong: interrupted ({exc!r})"
    os.write(err, (text + "\n").encode())


def _flush() -> None:
    try:
        sys.stdout.flush()
    except Exception:
        pass


def _release_resource_tracker(null: int) -> None:
    """Let multiprocessing's resource tracker see this process gone: it ends once every process
    holding its pipe has, after removing what a cut-short pool left (its semaphores). The pipe's
    descriptor number stays taken (by /dev/null), so no file opened meanwhile can get it."""
    try:
        from multiprocessing import resource_tracker
        fd = resource_tracker._resource_tracker._fd
        if fd is not None:
            os.dup2(null, fd)
    except Exception:
        pass


def end_descendants() -> None:
    """SIGTERM to every process the run started, then SIGKILL to those still there after GRACE;
    again until none is left (one may have started another meanwhile). Multiprocessing's resource
    tracker ignores SIGTERM: it ends by itself once the others have, after removing the semaphores
    of a pool cut short (a SIGKILL would leave them in /dev/shm), so it is killed only if it has
    not done so after a longer while."""
    deadline = time.monotonic() + 3 * GRACE
    while time.monotonic() < deadline:
        alive = descendants()
        others = {pid for pid in alive if not _is_tracker(pid)}
        if not others:
            _wait_gone(alive, 2 * GRACE)
            for pid in alive:
                _signal(pid, signal.SIGKILL)
            _wait_gone(alive, GRACE / 2)
            break
        for pid in others:
            # Prefect's temporary server logs the work its SIGTERM cuts short (events it could not
            # write), with tracebacks, on the output it shares with this process, which the stop
            # cannot silence in another process: it gets SIGKILL, and says nothing. Its database
            # is SQLite, which a killed writer leaves as it was before the write.
            _signal(pid, signal.SIGKILL if _is_api_server(pid) else signal.SIGTERM)
        _wait_gone(others, GRACE)
        for pid in descendants():
            if not _is_tracker(pid):
                _signal(pid, signal.SIGKILL)
        _wait_gone(others, GRACE / 2)
    else:  # time is up (a loaded machine): whatever is left goes now
        left = descendants()
        for pid in left:
            _signal(pid, signal.SIGKILL)
        _wait_gone(left, GRACE / 2)
    _reap()


def _reap() -> None:
    """Collect the ended children: this process's own, and the orphans it adopted as a subreaper."""
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def _is_tracker(pid: int) -> bool:
    return _runs(pid, b"multiprocessing.resource_tracker")


def _is_api_server(pid: int) -> bool:
    return _runs(pid, b"prefect.server.api.server:create_app")


def _runs(pid: int, what: bytes) -> bool:
    """Whether the process's command line names `what`."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return what in fh.read()
    except OSError:
        return False


def descendants(root: int | None = None) -> set[int]:
    """The live processes under `root` (this process): its children, theirs, and any process that
    carries this run's token in its environment (one whose parent ended is no longer under it)."""
    root = root or os.getpid()
    token = os.environ.get(TOKEN, "").encode()
    parent, marked = {}, set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        if stat is None or stat[0] == "Z":
            continue
        parent[pid] = stat[1]
        if token and pid != root:
            try:
                with open(f"/proc/{pid}/environ", "rb") as fh:
                    if TOKEN.encode() + b"=" + token in fh.read().split(b"\0"):
                        marked.add(pid)
            except OSError:
                pass
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root, *marked]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return (found | marked) - {root}


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None if gone."""
    fields = procs.stat(pid)
    return None if fields is None else (fields[0], int(fields[1]))


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _wait_gone(pids: set[int], seconds: float) -> None:
    """Until none of `pids` runs (reaping this process's children), or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for pid in pids:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        if all((s := _stat(pid)) is None or s[0] == "Z" for pid in pids):
            return
        time.sleep(0.02)
