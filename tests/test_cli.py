"""The `shegong` command as the bureau runs it: a separate process, its own Prefect server."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
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
