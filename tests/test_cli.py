"""The `shegong` command as the bureau runs it: a separate process, its own Prefect server."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import INBOX

SHEGONG = Path(sys.executable).parent / "shegong"


def run(*args, env=None, cwd=None):
    env = {k: v for k, v in (env or os.environ).items() if not k.startswith("PREFECT_API")}
    # Its own temporary server, which on a loaded machine can take longer than Prefect's 20 s to start.
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    return subprocess.run([str(SHEGONG), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=900)


def test_run_prints_the_city_table_quietly(tmp_path):
    shutil.copytree(INBOX, tmp_path / "inbox")
    p = run("run", "--period", "2024-03", "--inbox", str(tmp_path / "inbox"), "--db", str(tmp_path / "w.duckdb"))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    prefect_line = lines.pop(1)  # after the month's line
    # No PREFECT_API_URL and no server left running by `shegong server start`: a temporary one.
    assert prefect_line == "Prefect：本次运行启动临时服务器（常驻服务器见 shegong server start）"
    assert lines[0] == (f"2024-03: 文件 9 个（无法读取 2），数据行 32 行（未通过校验 4），问题反馈表 3 份："
                        f"{tmp_path / 'feedback' / '2024-03'}/")
    reports = tmp_path / "reports" / "2024-03"
    assert lines[1] == f"月报：{reports / 'report-2024-03.xlsx'}，{reports / 'report-2024-03.html'}"
    assert lines[2] == f"校验结果（Great Expectations Data Docs）：{tmp_path / 'validation' / 'index.html'}"
    assert lines[4] == "2024-03 报送情况（各报表应报单位合计；市本级只含市级报表）"
    assert [line.split()[:3] for line in lines[7:13]] == [
        ["攀枝花市", "4", "2"], ["东区", "63", "10"], ["西区", "42", "0"], ["仁和区", "121", "0"],
        ["米易县", "112", "5"], ["盐边县", "116", "0"]]
    assert "攀枝花市（市，510400000000）2024-03 社会工作专业人才队伍建设指标" in lines
    assert sorted(p.name for p in (tmp_path / "feedback" / "2024-03").iterdir()) == [
        "510402000000-东区.xlsx", "510402001000-大渡口街道.xlsx", "510421100000-攀莲镇.xlsx"]
    assert "2024-03" in (tmp_path / "validation" / "index.html").read_text(encoding="utf-8")
    talent = next(line for line in lines if "社会工作专业人才队伍总量" in line).split()
    assert talent == ["1", "社会工作专业人才队伍总量", "9", "人", ">=2,100", "2,091", "2025-12", "9", "有风险", "—"]
    assert "Traceback" not in p.stderr and "ERROR" not in p.stderr
    # The rejected files are reported to us in English, once each.
    assert sorted(line.split("WARNING shegong: ")[1] for line in p.stderr.splitlines() if "WARNING" in line) == [
        "file rejected: 东区/照片.jpg: not a spreadsheet extension: '.jpg'",
        "file rejected: 东区/说明.xlsx: .xlsx file is not a zip container",
        "sheet rejected: 东区/上月报表.xlsx [村社区月报]: stated period 2024-02 differs from inbox period 2024-03",
    ]


def test_run_without_a_key_says_how_to_make_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SHEGONG_ID_KEY"}
    env["SHEGONG_ID_KEY_FILE"] = str(tmp_path / "absent.key")
    p = run("run", "--period", "2024-03", "--inbox", str(INBOX), "--db", str(tmp_path / "w.duckdb"), env=env)
    assert p.returncode == 1
    assert p.stderr.strip() == (f"shegong: no key for hashing ID numbers: {tmp_path / 'absent.key'} does not exist "
                                f"and SHEGONG_ID_KEY is not set. Create one with `shegong keygen` (and keep it: the "
                                f"same person hashes the same only under the same key).")
    assert not (tmp_path / "w.duckdb").exists()


def test_bad_period_is_refused():
    p = run("run", "--period", "2024-13")
    assert p.returncode == 1
    assert p.stderr.strip() == "shegong: period '2024-13' is not a month; write it as YYYY-MM, e.g. 2025-06"


def test_keygen_makes_an_owner_only_key_once(tmp_path):
    key = tmp_path / "k" / "id.key"
    first = run("keygen", "--file", str(key))
    assert first.returncode == 0 and oct(key.stat().st_mode & 0o777) == "0o600"
    content = key.read_text()
    assert run("keygen", "--file", str(key)).stdout.startswith("kept existing")
    assert key.read_text() == content and len(content.strip()) == 64


def _api(api: str, path: str) -> list[dict]:
    request = urllib.request.Request(f"{api}{path}", data=b"{}", headers={"Content-Type": "application/json"},
                                     method="POST")
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")  # reaped soon by init
    except (OSError, IndexError):
        return True


def test_a_server_left_running_is_used_by_runs_until_stopped(tmp_path):
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(home)
    started = run("server", "start", env=env)
    state_file = home / "shegong-server.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    try:
        assert started.returncode == 0, started.stderr
        url, api, pid = state["url"], state["api"], state["pid"]
        assert api == url + "/api" and url.startswith("http://127.0.0.1:")
        spare = json.loads((home / "shegong-spare.json").read_text())["pid"]  # flows/spare.py, tests/test_spare.py
        assert started.stdout == (f"Prefect 服务器已启动：界面 {url}，API {api}（进程 {pid}，日志 "
                                  f"{home / 'shegong-server.log'}）；shegong run 将使用它\n"
                                  f"预热进程就绪（进程 {spare}）：shegong run 在其中运行，免去导入所需的数秒\n")
        status = run("server", "status", env=env)
        assert status.returncode == 0 and status.stdout.startswith(f"Prefect 服务器运行中：界面 {url}，API {api}（进程 {pid}，")
        again = run("server", "start", env=env)
        assert again.returncode == 0 and again.stdout.startswith(f"Prefect 服务器已在运行：界面 {url}，API {api}（进程 {pid}，")

        shutil.copytree(INBOX, tmp_path / "inbox")
        p = run("run", "--period", "2024-03", "--inbox", str(tmp_path / "inbox"), "--db", str(tmp_path / "w.duckdb"),
                env=env)
        assert p.returncode == 0, p.stderr
        lines = p.stdout.splitlines()
        assert lines[1] == f"Prefect：使用 shegong server start 启动的服务器 {api}（界面 {url}），在其预热进程中运行"
        assert lines[0].startswith("2024-03: 文件 9 个（无法读取 2），数据行 32 行（未通过校验 4）")
        # The run is the server's, as its UI shows it: one completed flow run of the month.
        assert [f["name"] for f in _api(api, "/flows/filter")] == ["monthly-rollup"]
        runs = _api(api, "/flow_runs/filter")
        assert [(r["state_type"], r["parameters"].get("period")) for r in runs] == [("COMPLETED", "2024-03")]
    finally:
        stopped = run("server", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == f"Prefect 服务器已停止（{url}，进程 {pid}）\n"
    deadline = time.monotonic() + 30
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _gone(pid) and not state_file.exists()
    status = run("server", "status", env=env)
    assert status.returncode == 3
    assert status.stdout == f"没有运行中的 Prefect 服务器（{state_file}）；shegong run 将启动临时服务器\n"
    assert run("server", "stop", env=env).stdout == "没有由 shegong server start 启动的 Prefect 服务器\n"


def test_a_run_falls_back_to_a_temporary_server_when_the_one_left_running_is_gone(tmp_path, monkeypatch):
    """A state file whose server died with the machine: the run starts a temporary server (the
    first test shows such a run) and the stale file goes."""
    from flows import server
    dead = subprocess.Popen(["true"])
    dead.wait()
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    (tmp_path / "shegong-server.json").write_text(json.dumps(
        {"pid": dead.pid, "url": "http://127.0.0.1:9", "api": "http://127.0.0.1:9/api", "log": "x", "started": "x"}))
    assert server.for_run() == "Prefect：本次运行启动临时服务器（常驻服务器见 shegong server start）"
    assert "PREFECT_API_URL" not in os.environ and not (tmp_path / "shegong-server.json").exists()
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert server.for_run() == "Prefect：使用 PREFECT_API_URL 指定的服务器 http://127.0.0.1:9/api"


def test_the_temporary_server_of_a_run_serves_its_months_without_heartbeats_and_ends_with_it(monkeypatch):
    """The temporary server `shegong run` starts itself, before Prefect is imported (server.Temporary):
    Prefect's ephemeral API on PREFECT_HOME's database. While the run's months go, Prefect's
    settings name it and send no flow run heartbeats (the server ends with the run: nobody is left
    to miss them, and each flow run would wait up to 1 s for the heartbeat thread). It is warmed
    (server.warm) before the months start; stopped, it is gone, and warming it then raises
    nothing. The first test runs `shegong run` through it."""
    from prefect.settings import get_current_settings
    from flows import server
    # The Prefect home the first test's run used: its database is migrated already.
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    assert get_current_settings().flows.heartbeat_frequency == 180
    temporary = server.Temporary()
    try:
        assert os.environ["PREFECT_API_URL"] == temporary.api  # for Dask's workers, and Prefect's import
        with temporary.serving():
            settings = get_current_settings()
            assert (settings.api.url, settings.flows.heartbeat_frequency) == (temporary.api, None)
            assert server.healthy(temporary.api) and (server.prefect_home() / "prefect.db").is_file()
            assert temporary.warmed.is_set()
            proc = temporary.proc
            with open(f"/proc/{proc.pid}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
            assert b"PREFECT__SERVER_EPHEMERAL=1" in environ and b"PREFECT_UI_ENABLED=0" in environ
        assert get_current_settings().flows.heartbeat_frequency == 180
    finally:
        temporary.stop()
        os.environ.pop("PREFECT_API_URL", None)
    assert proc.poll() is not None and not server.healthy(temporary.api)
    server.warm(temporary.api)
