"""Load figures: one file of 100,000 roster rows, and a month of 5,000 files, each run by `shegong
run` as the bureau runs it, with peak memory and wall time. Not a test (pytest does not collect it);
tests/test_load.py runs a smaller roster under a memory bound.

    .venv/bin/python tests/load_figures.py [--rows 100000] [--files 5000] [--keep DIR]

Persons are fictitious, their ID numbers under the unissued address code 510499.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import xlsxwriter

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from fixtures.build_fixtures import SG01, SG02, id_number  # noqa: E402

PERIOD = "2024-03"
ROOT = HERE.parent


def villages(county: str | None = None) -> list[str]:
    with open(ROOT / "data" / "registry" / "units.csv", encoding="utf-8") as fh:
        return [r["code"] for r in csv.DictReader(fh)
                if r["level"] == "village" and (county is None or r["code"].startswith(county[:6]))]


def roster_rows(n: int, codes: list[str]) -> list[list]:
    """n persons, each once, spread over the villages given."""
    levels = ["无", "助理社会工作师", "社会工作师"]
    fields = ["老年", "未成年人", "社区治理", "社会救助"]
    start = dt.date(1965, 1, 1)
    rows = []
    for i in range(n):
        birth = start + dt.timedelta(days=i // 400)
        rows.append([codes[i % len(codes)], "某人", id_number(birth.strftime("%Y%m%d"), i % 400, i % 2 == 0),
                     "女" if i % 2 == 0 else "男", "某单位", "社区专职工作者", "是", levels[i % 3],
                     2020 if i % 3 else None, "2022-07-01" if i % 3 else None, 12 if i % 3 else None,
                     fields[i % 4], "是" if i % 5 == 0 else "否", None])
    return rows


def write_roster(path: Path, n: int) -> None:
    """One xlsx of n roster rows for 东区's villages, sent by 东区."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False})
    ws = wb.add_worksheet("人才台账")
    ws.write_row(0, 0, ["攀枝花市社会工作专业人才台账"])
    ws.write_row(1, 0, ["表号：SG-02", "填报单位：东区", f"统计期：{PERIOD[:4]}年{int(PERIOD[5:])}月"])
    ws.write_row(2, 0, SG02)
    for r, row in enumerate(roster_rows(n, villages("510402000000")), start=3):
        for c, v in enumerate(row):
            if v is not None:
                ws.write(r, c, v)
    wb.close()


def write_many(root: Path, files: int) -> None:
    """`files` small files: each a village's SG-01 row, as xlsx or CSV, several versions of each."""
    codes = villages()
    for i in range(files):
        code = codes[i % len(codes)]
        row = [code, f"村{code[-6:]}", 1000 + i % 500, 200, 5, 2, "是", 3, 1, "是", "否", 1, 0]
        rows = [["攀枝花市村（社区）社会工作月报表"], ["表号：SG-01", f"统计期：{PERIOD[:4]}年{int(PERIOD[5:])}月"],
                SG01, row]
        folder = root / f"批{i // 500:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        if i % 5 < 3:
            wb = xlsxwriter.Workbook(str(folder / f"{i:05d}-{code}.xlsx"), {"strings_to_numbers": False})
            ws = wb.add_worksheet("村社区月报")
            for r, values in enumerate(rows):
                ws.write_row(r, 0, values)
            wb.close()
        else:
            with open(folder / f"{i:05d}-{code}.csv", "w", encoding="utf-8-sig", newline="") as fh:
                csv.writer(fh).writerows(rows)
        # Versions of a village's row arrive one after another: the newest wins.
        t = dt.datetime(2024, 4, 1).timestamp() + i
        os.utime(next(folder.glob(f"{i:05d}-*")), (t, t))


def tree_rss(root: int) -> int:
    """Resident memory of a process and all its descendants, in bytes (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        pid, fields = int(text[:text.index(" ")]), text[text.rindex(") ") + 2:].split()  # after "(name) "
        children.setdefault(int(fields[1]), []).append(pid)  # the parent's pid
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # resident pages
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def measure(inbox: Path, db: Path, env: dict | None = None) -> dict:
    """Run the month; its exit code, wall time, and peak memory: of its largest process (getrusage)
    and of all its processes together (the run, its reading pool and reader processes, sampled)."""
    import threading
    start = time.monotonic()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("shegong")), "run", "--period", PERIOD,
                             "--inbox", str(inbox), "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or os.environ.copy())
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.2)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    seconds = time.monotonic() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"returncode": proc.returncode, "seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024,
            "peak_tree_mb": peak[0] / 1024 / 1024, "stdout": out.decode(), "stderr": err.decode()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--files", type=int, default=5_000)
    p.add_argument("--keep", type=Path, help="build in this folder and keep it")
    args = p.parse_args()
    os.environ.setdefault("SHEGONG_ID_KEY", "load-figures-" + "0123456789abcdef" * 3)
    base = args.keep or Path(tempfile.mkdtemp(prefix="shegong-load-"))
    try:
        for label, build in ((f"one file of {args.rows:,} roster rows",
                              lambda root: write_roster(root / "东区" / "台账.xlsx", args.rows)),
                             (f"a month of {args.files:,} files", lambda root: write_many(root, args.files))):
            case = base / label.split()[0 + (label.startswith("a"))]
            inbox = case / "inbox"
            t = time.monotonic()
            build(inbox / PERIOD)
            size = sum(f.stat().st_size for f in (inbox / PERIOD).rglob("*") if f.is_file())
            built = time.monotonic() - t
            # Each case in its own process tree: RUSAGE_CHILDREN is a maximum over all children.
            code = ("import json, sys, load_figures as m; from pathlib import Path; "
                    "print(json.dumps({k: v for k, v in m.measure(Path(sys.argv[1]), Path(sys.argv[2])).items() "
                    "if k not in ('stdout',)}))")
            r = subprocess.run([sys.executable, "-c", code, str(inbox), str(case / "warehouse.duckdb")],
                               capture_output=True, text=True, cwd=HERE)
            import json
            m = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"{label}: {size / 1e6:.1f} MB written in {built:.1f} s; shegong run exit {m['returncode']}, "
                  f"{m['seconds']:.1f} s, peak memory {m['peak_rss_mb']:.0f} MB in one process, "
                  f"{m['peak_tree_mb']:.0f} MB in all its processes together")
            if m["returncode"]:
                print(m["stderr"][-3000:])
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
