"""`shegong run` beside a server that `shegong server start` left running: in the spare process kept
warm beside it (flows/spare.py), as the bureau's operator runs it, in processes of their own."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import INBOX, assert_same_tables
from runs import descendants, gone, wait_gone

SHEGONG = Path(sys.executable).parent / "shegong"
PERIOD = "2024-03"


def run(*args, env, **kwargs):
    return subprocess.run([str(SHEGONG), *args], capture_output=True, text=True, env=env, timeout=600, **kwargs)


def spare_state(home: Path) -> dict | None:
    try:
        return json.loads((home / "shegong-spare.json").read_text())
    except (OSError, ValueError):
        return None


def ready_spare(home: Path, other_than: int | None = None, timeout: float = 180) -> int:
    """The pid of the spare once one (other than `other_than`) waits for a command."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = spare_state(home)
        if state and state.get("ready") and state["pid"] != other_than and (home / "shegong-spare.sock").exists():
            return state["pid"]
        time.sleep(0.1)
    raise AssertionError(f"no spare ready in {timeout} s: {spare_state(home)}")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A server left running, with its spare, in a Prefect home of its own; the environment of the
    shell that started it."""
    home = tmp_path_factory.mktemp("spare") / "prefect-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(home)
    started = run("server", "start", env=env)
    try:
        yield env, home, started
    finally:
        run("server", "stop", env=env)


def test_a_run_beside_a_running_server_runs_in_its_spare_as_it_runs_in_a_process_of_its_own(served, tmp_path):
    env, home, started = served
    assert started.returncode == 0, started.stderr
    first = ready_spare(home)
    assert started.stdout.splitlines()[1] == f"预热进程就绪（进程 {first}）：shegong run 在其中运行，免去导入所需的数秒"
    shutil.copytree(INBOX, tmp_path / "inbox")
    inbox = str(tmp_path / "inbox")
    spared = run("run", "--period", PERIOD, "--inbox", inbox, "--db", str(tmp_path / "a" / "w.duckdb"), env=env)
    assert spared.returncode == 0, spared.stderr
    api = json.loads((home / "shegong-server.json").read_text())["api"]
    url = api.removesuffix("/api")
    lines = spared.stdout.splitlines()
    assert lines[1] == f"Prefect：使用 shegong server start 启动的服务器 {api}（界面 {url}），在其预热进程中运行"
    assert wait_gone([first]) == []  # a spare runs one command, then ends
    second = ready_spare(home, other_than=first)  # and a new one takes its place

    # Another setting Prefect reads when imported: not the spare's, so the run's own process.
    other = {**env, "PREFECT_LOGGING_LEVEL": "ERROR"}
    own = run("run", "--period", PERIOD, "--inbox", inbox, "--db", str(tmp_path / "b" / "w.duckdb"), env=other)
    assert own.returncode == 0, own.stderr
    own_lines = own.stdout.splitlines()
    assert own_lines[1] == f"Prefect：使用 shegong server start 启动的服务器 {api}（界面 {url}）"
    assert [line.replace(str(tmp_path / "b"), "D") for line in own_lines[:1] + own_lines[2:]] == \
           [line.replace(str(tmp_path / "a"), "D") for line in lines[:1] + lines[2:]]
    assert_same_tables(tmp_path / "a" / "w.duckdb", tmp_path / "b" / "w.duckdb")
    assert spare_state(home)["pid"] == second and not gone(second)  # it refused, and waits still
    status = run("server", "status", env=env)
    assert status.stdout.splitlines()[1] == f"预热进程就绪（进程 {second}）：shegong run 在其中运行，免去导入所需的数秒"


def test_a_run_in_the_spare_stops_on_ctrl_c_and_sigterm_and_ends_with_its_caller(served, tmp_path):
    """Ctrl-C (SIGINT to the caller) and SIGTERM stop the run in the spare as they stop a run in
    its own process; a caller killed with SIGKILL takes the spare and what it started with it.
    None publishes anything, and a new spare comes up after each. (The spare of the SIGTERM case
    was started by the thread that saw the killed caller go, which blocks signals.)"""
    env, home, _ = served
    shutil.copytree(INBOX, tmp_path / "inbox")
    db = tmp_path / "w.duckdb"
    marker = tmp_path / "paused"
    paused = {**env, "SHEGONG_PAUSE_AT": "rolling_up", "SHEGONG_PAUSE_FILE": str(marker)}
    command = [str(SHEGONG), "run", "--period", PERIOD, "--inbox", str(tmp_path / "inbox"), "--db", str(db)]
    before = ready_spare(home)
    for how in (signal.SIGINT, signal.SIGKILL, signal.SIGTERM):
        marker.unlink(missing_ok=True)
        spare = ready_spare(home)
        caller = subprocess.Popen(command, env=paused, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not marker.exists() and caller.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), caller.communicate()
        assert marker.read_text().split()[0] == str(spare)  # the run is the spare's
        started = descendants(spare)
        assert started  # its reader process, at least
        caller.send_signal(how)
        out, err = caller.communicate(timeout=60)
        if how != signal.SIGKILL:
            assert caller.returncode == 128 + how
            # After the month's English warnings of its rejected files (tests/test_cli.py), one line.
            assert err.splitlines()[-1] == (f"shegong: 中止（{how.name}）：已发布的数据仓库未改变 / "
                                            f"interrupted ({how.name}); the published warehouse is unchanged")
            assert all("WARNING shegong: " in line for line in err.splitlines()[:-1])
            assert out == ""
        else:
            assert caller.returncode == -signal.SIGKILL
        assert wait_gone([spare, *started]) == []
        assert not db.exists()
        assert ready_spare(home, other_than=spare) not in (spare, before)


def test_the_spares_code_and_environment_are_what_it_imported_with(tmp_path, monkeypatch):
    """A spare serves a caller only if the project's code and what its imports read of the
    environment are the same: a changed file of the code changes the code's key, a setting
    Prefect reads changes the environment's key, and shegong's own settings (read at run time,
    from the caller's environment) do not."""
    from flows import spare
    for name in ("flows", "sql", "schemas"):
        shutil.copytree(spare.PROJECT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(spare.PROJECT / "pyproject.toml", tmp_path)
    monkeypatch.setattr(spare, "PROJECT", tmp_path)
    key = spare.code_key()
    assert spare.code_key() == key
    view = tmp_path / "sql" / "analysis" / sorted(p.name for p in (tmp_path / "sql" / "analysis").iterdir())[0]
    text = view.read_text()
    view.write_text(text + "\n")
    assert spare.code_key() != key
    view.write_text(text)
    assert spare.code_key() == key
    (tmp_path / "flows" / "new.py").write_text("")
    assert spare.code_key() != key

    env = {"PREFECT_HOME": "/x", "HOME": "/root", "SHEGONG_LOG_LEVEL": "WARNING", "TERM": "xterm"}
    key = spare.env_key(env, str(tmp_path))
    assert spare.env_key({**env, "SHEGONG_LOG_LEVEL": "INFO", "TERM": "dumb", "SHEGONG_ID_KEY": "k"},
                         str(tmp_path)) == key
    assert spare.env_key({**env, "PREFECT_LOGGING_LEVEL": "ERROR"}, str(tmp_path)) != key
    assert spare.env_key({**env, "PYTHONPATH": "/y"}, str(tmp_path)) != key
    assert spare.env_key(env, str(tmp_path / "flows")) != key
    (tmp_path / "prefect.toml").write_text("[logging]\nlevel = 'ERROR'\n")
    assert spare.env_key(env, str(tmp_path)) != key


def test_stopping_the_server_ends_its_spare(served):
    env, home, _ = served
    pid = ready_spare(home)
    stopped = run("server", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert wait_gone([pid]) == []
    assert spare_state(home) is None and not (home / "shegong-spare.sock").exists()
    status = run("server", "status", env=env)
    assert status.returncode == 3 and len(status.stdout.splitlines()) == 1
