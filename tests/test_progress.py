"""Progress on a terminal: a backfill run as `shegong run --from --to` under a pseudo-terminal draws
the months with the time left and a bar per stage (files read of the month's, forms validated);
the same backfill with its output going to pipes prints nothing but its usual lines."""
from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import termios
import time

import pytest

from conftest import INBOX, PERIOD
from runs import SHEGONG, environment

# Cursor movement, colours and the like: what a terminal interprets rather than shows.
ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|[@-_])")


@pytest.fixture(scope="module")
def inbox(tmp_path_factory):
    """The fixture month (9 files) and April with the city's two files."""
    root = tmp_path_factory.mktemp("progress-inbox")
    shutil.copytree(INBOX, root, dirs_exist_ok=True)
    shutil.copytree(INBOX / PERIOD / "市本级", root / "2024-04" / "市本级")
    return root


def backfill_args(inbox, db) -> list[str]:
    return ["run", "--from", PERIOD, "--to", "2024-04", "--inbox", str(inbox), "--db", str(db)]


def on_a_terminal(args: list[str], timeout: float = 600) -> tuple[int, str]:
    """Run shegong with stdin, stdout and stderr on a pseudo-terminal of 120 x 40; what it drew."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = environment(TERM="xterm-256color", COLUMNS="120", LINES="40")
    proc = subprocess.Popen([str(SHEGONG), *args], stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True, close_fds=True)
    os.close(slave)
    out, deadline = bytearray(), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise AssertionError(f"shegong did not finish in {timeout} s: {out.decode(errors='replace')[-2000:]}")
    finally:
        os.close(master)
    return proc.wait(timeout=60), out.decode("utf-8", errors="replace")


def test_a_backfill_on_a_terminal_shows_its_progress(inbox, tmp_path):
    code, drawn = on_a_terminal(backfill_args(inbox, tmp_path / "w.duckdb"))
    assert code == 0, drawn[-3000:]
    assert ANSI.search(drawn)  # rich drew and redrew the bars
    screen = [ANSI.sub("", line).strip() for line in re.split(r"[\r\n]+", drawn)]
    bar = lambda label, done, total: any(re.match(rf"{label}\b.*\s{done}/{total}\s+剩余", s) for s in screen)
    # Every file of each month read, every form validated, both months done with the time left.
    assert bar("读取文件", 9, 9) and bar("读取文件", 2, 2)
    assert bar("校验报表", 6, 6)
    assert bar("月份 2024-03", 0, 2) and bar("月份 2024-04 · 反馈表与月报", 1, 2) and bar("月份 2024-04 · 完成", 2, 2)
    # After the first month, the time the second will take at the first one's pace; none left at the end.
    assert any(re.match(r"月份 2024-04 · 读取文件.*\s1/2\s+剩余 \d+:\d\d:\d\d$", s) for s in screen)
    assert any(re.match(r"月份 2024-04 · 完成.*\s2/2\s+剩余 0:00:00$", s) for s in screen)
    # ...and the lines a run prints, above the bars.
    assert any(s.startswith("2024-03: 文件 9 个（无法读取 2）") for s in screen)
    assert any(s.startswith("2024-04: 文件 2 个（无法读取 0）") for s in screen)


def test_a_backfill_without_a_terminal_prints_no_progress(inbox, tmp_path):
    p = subprocess.run([str(SHEGONG), *backfill_args(inbox, tmp_path / "w.duckdb")], capture_output=True, text=True,
                       env=environment(TERM="xterm-256color"), timeout=600)
    assert p.returncode == 0, p.stderr
    for out in (p.stdout, p.stderr):
        assert not ANSI.search(out) and "\r" not in out
        assert not any(word in out for word in ("读取文件", "校验报表", "月份", "剩余"))
    lines = p.stdout.splitlines()
    prefect_line = lines.pop(2)  # after the months' lines
    assert prefect_line.startswith("Prefect：使用 PREFECT_API_URL 指定的服务器 ")
    assert lines[0].startswith("2024-03: 文件 9 个（无法读取 2）") and lines[1].startswith("2024-04: 文件 2 个（无法读取 0）")
    assert lines[2].startswith("月报：") and lines[3].startswith("校验结果") and len(lines) == 4
    # stderr holds the run's warnings (the fixture's refused files), as before.
    assert all(" WARNING shegong: " in line for line in p.stderr.splitlines())
