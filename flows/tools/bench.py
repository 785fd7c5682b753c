"""The benchmark behind `make bench`: a month at city and province scale, measured four ways.

    ours    the real flow (`monthly_rollup`) on a fresh warehouse: a full month from scratch;
    rerun   the same month again after 1 % of its files were replaced by corrections;
    floor   every file parsed with the fastest reader (calamine, Polars for CSV) on every core, nothing else;
    naive   the script a user would write without us: pandas and openpyxl in a loop over files,
            Great Expectations run per file, sums in pandas.

Each phase runs in a child process of its own, so that its peak memory (the resident memory of
the child and everything it starts, summed, sampled every 50 ms) and its CPU time are its own.
The table and the ratios are printed from the numbers measured in the same run.

    python -m flows.tools.bench --scale city,province [--task-runner dask] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PERIOD = "2025-06"
SCALES = ("tiny", "city", "province")
# The naive script takes seconds per file: at province scale it runs on an evenly spaced sample
# of files and its time is extrapolated linearly to the month (the table says so).
NAIVE_SAMPLE = {"tiny": None, "city": None, "province": 20}
LATE_SHARE = 0.01
# A fixed key of the benchmark's own: the operator's key is never needed to time a month.
BENCH_KEY = "bench-key-" + "0123456789abcdef" * 3
TINY = {"prefectures": 1, "counties": 2, "townships": 12, "villages": 90, "population": 600_000}


# --- the phases, each run as `python -m flows.tools.bench phase NAME ...` in a child ---------------------

def phase_ours(period: str, inbox: str, db: str) -> dict:
    """The real flow, in a Prefect run against a temporary API (as `shegong run` has)."""
    from prefect.testing.utilities import prefect_test_harness
    from flows.monthly import monthly_rollup
    with prefect_test_harness(server_startup_timeout=120):
        started = time.perf_counter()
        s = monthly_rollup(period=period, inbox=inbox, db=db)
        wall = time.perf_counter() - started
    return {"wall": wall, "files": s["files"], "rows": s["rows"], "files_reused": s["files_reused"],
            "files_rejected": s["files_rejected"], "rows_rejected": s["rows_rejected"]}


def phase_read(period: str, inbox: str) -> dict:
    """Our reading alone (the flow's read task without the rerun cache): what the floor is compared to."""
    from flows.ingest.discover import discover
    from flows.ingest.sandbox import parse_in_pool
    started = time.perf_counter()
    files = discover(Path(inbox), period)
    _, frames = parse_in_pool(files, Path(inbox) / period, period)
    rows = sum(frame.height for frame in frames.values())
    return {"wall": time.perf_counter() - started, "files": len(files), "rows": rows}


def _floor_parse(path: str) -> int:
    """Rows of one file by the fastest readers there are; 0 for a file they cannot open."""
    import polars as pl
    import python_calamine
    try:
        if path.endswith(".csv"):
            data = Path(path).read_bytes()
            if not data.startswith(b"\xef\xbb\xbf"):
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError:
                    data = data.decode("gb18030").encode("utf-8")
            return pl.read_csv(data, has_header=False, infer_schema=False, truncate_ragged_lines=True).height
        wb = python_calamine.CalamineWorkbook.from_path(path)
        return sum(len(wb.get_sheet_by_name(name).to_python()) for name in wb.sheet_names)
    except Exception:  # noqa: BLE001 - the note that is no spreadsheet: the floor only skips it
        return 0


def _floor_chunk(paths: list[str]) -> int:
    return sum(_floor_parse(p) for p in paths)


def phase_floor(period: str, inbox: str) -> dict:
    """Parse every file of the month on every core, keep nothing."""
    from concurrent.futures import ProcessPoolExecutor
    from flows.ingest.discover import discover
    started = time.perf_counter()
    files = [str(p) for p in discover(Path(inbox), period)]
    workers = os.cpu_count() or 1
    chunks = [files[i::workers * 4] for i in range(workers * 4)]
    with ProcessPoolExecutor(workers) as pool:
        rows = sum(pool.map(_floor_chunk, chunks))
    return {"wall": time.perf_counter() - started, "files": len(files), "cells_rows": rows}


def phase_naive(period: str, inbox: str, units_csv: str, sample: int | None) -> dict:
    """What a capable user writes in an afternoon: read each file with pandas, check it with Great
    Expectations, stack the rows and sum them by county. Not ours: kept plain on purpose."""
    import great_expectations as gx
    import pandas as pd
    started = time.perf_counter()
    root = Path(inbox) / period
    files = sorted(p for p in root.rglob("*") if p.is_file())
    total = len(files)
    if sample and sample < total:
        step = total / sample
        files = [files[int(i * step)] for i in range(sample)]
    units = pd.read_csv(units_csv, dtype=str)
    known = set(units["code"])
    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_pandas("files")
    frames: dict[str, list] = {}
    failed = 0
    for n, path in enumerate(files):
        try:
            if path.suffix == ".csv":
                try:
                    sheets = {path.stem: pd.read_csv(path, header=None, dtype=str, encoding="utf-8-sig")}
                except UnicodeDecodeError:
                    sheets = {path.stem: pd.read_csv(path, header=None, dtype=str, encoding="gbk")}
            else:
                # openpyxl for .xlsx; it cannot open .xls, for which pandas needs xlrd or calamine.
                engine = "openpyxl" if path.suffix == ".xlsx" else "calamine"
                sheets = pd.read_excel(path, sheet_name=None, header=None, engine=engine, dtype=str)
        except Exception:  # noqa: BLE001
            failed += 1
            continue
        for name, raw in sheets.items():
            form = str(raw.iloc[1, 0]).replace("表号：", "")
            df = raw.iloc[3:].copy()
            df.columns = [str(c) for c in raw.iloc[2]]
            df = df[df.iloc[:, 0].notna() & ~df.iloc[:, 0].astype(str).str.startswith("填报人")]
            code = df.columns[0]
            numeric = [c for c in df.columns if c != code and pd.to_numeric(df[c], errors="coerce").notna().any()]
            for c in numeric:
                df[c] = pd.to_numeric(df[c], errors="coerce")
            asset = source.add_dataframe_asset(name=f"f{n}-{name}")
            batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": df})
            suite = gx.ExpectationSuite(name=f"f{n}-{name}")
            suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column=code))
            suite.add_expectation(gx.expectations.ExpectColumnValuesToMatchRegex(column=code, regex=r"^\d{12}$"))
            suite.add_expectation(gx.expectations.ExpectColumnValuesToBeInSet(column=code, value_set=known))
            for c in numeric[:3]:
                suite.add_expectation(gx.expectations.ExpectColumnValuesToBeBetween(column=c, min_value=0))
            result = batch.validate(suite)
            bad = set()
            for r in result.results:
                bad.update(r.result.get("partial_unexpected_index_list") or [])
            frames.setdefault(form, []).append(df.drop(index=[i for i in bad if i in df.index]).assign(_file=str(path)))
    rows = 0
    for form, parts in frames.items():
        month = pd.concat(parts)
        rows += len(month)
        code = month.columns[0]
        month["county"] = month[code].astype(str).str[:6]
        month.groupby("county").sum(numeric_only=True)
    wall = time.perf_counter() - started
    return {"wall": wall, "files": len(files), "files_total": total, "rows": rows, "files_failed": failed}


# --- the parent: inbox, children, measurements, the table ---------------------------------------

def _tree(pid: int) -> tuple[int, dict[int, int]]:
    """Resident bytes of a process and all its descendants, and the CPU ticks of each of them so far."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    ticks: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            rss[int(d)] = int(Path(f"/proc/{d}/statm").read_text().split()[1]) * page
            ticks[int(d)] = int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(d))
    total, seen, stack = 0, {}, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        seen[p] = ticks.get(p, 0)
        stack.extend(children.get(p, []))
    return total, seen


def run_phase(name: str, args: list[str], env: dict) -> dict:
    """One phase in a child: its report, wall time, peak memory and CPU seconds."""
    out = tempfile.NamedTemporaryFile(suffix=".json", delete=False)
    out.close()
    cmd = [sys.executable, "-m", "flows.tools.bench", "phase", name, out.name, *args]
    started = time.perf_counter()
    # stderr to a file, not a pipe: a chatty phase would fill a pipe and stop until it is read.
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=errors)
    peak = [0]
    ticks: dict[int, int] = {}  # pid -> CPU ticks last seen: pool workers and reader processes are
    stop = threading.Event()    # not all reaped by the phase, so wait4 alone misses their CPU

    def sample():
        while not stop.wait(0.05):
            rss, seen = _tree(proc.pid)
            peak[0] = max(peak[0], rss)
            ticks.update(seen)
    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    _, status, usage = os.wait4(proc.pid, 0)
    stop.set()
    watcher.join()
    errors.seek(0)
    err = errors.read().decode(errors="replace")
    errors.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    process_wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"bench phase {name} failed ({proc.returncode}):\n{err[-3000:]}")
    report = json.loads(Path(out.name).read_text())
    os.unlink(out.name)
    # CPU of the child and the processes it waited for (reader processes, pool workers, Dask).
    sampled = sum(ticks.values()) / os.sysconf("SC_CLK_TCK")
    report.update(process_wall=process_wall, peak_bytes=peak[0],
                  cpu=max(sampled, usage.ru_utime + usage.ru_stime), maxrss_bytes=usage.ru_maxrss * 1024)
    return report


def make_inbox(scale: str, root: Path) -> tuple[Path, Path | None, float]:
    """The scale's month: (inbox, settings file or None for the city's own, seconds to write it)."""
    from flows.config import load_settings
    from flows.tools.sample import generate_province, generate_sample
    started = time.perf_counter()
    inbox = root / scale
    if scale == "city":
        s = load_settings()
        generate_sample(inbox, s.units_csv, s.population_csv, start=PERIOD, end=PERIOD)
        settings = None
    else:
        generate_province(inbox, PERIOD, size=TINY if scale == "tiny" else None)
        settings = inbox / "settings.toml"
    return inbox, settings, time.perf_counter() - started


def correct_files(inbox: Path, period: str, share: float) -> int:
    """Replace `share` of the month's readable files (evenly spaced, at least one) by corrections:
    a note row added under the data, and a modification time a day later, as a resent file has."""
    from flows.ingest.discover import discover
    from flows.tools.sample.files import write_xls, write_xlsx
    import python_calamine
    files = [p for p in discover(inbox, period) if p.suffix in (".xlsx", ".xls", ".csv")]
    want = max(1, round(len(files) * share))
    step = len(files) / want
    done = 0
    for i in range(want):
        path = files[int(i * step)]
        when = path.stat().st_mtime + 86400
        try:
            if path.suffix == ".csv":
                data = path.read_bytes()
                enc = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "gbk"
                path.write_bytes(data + "\r\n备注：更正后重新报送\r\n".encode(enc.replace("-sig", "")))
            else:
                wb = python_calamine.CalamineWorkbook.from_path(str(path))
                grids = [(n, [[None if c == "" else c for c in row] for row in wb.get_sheet_by_name(n).to_python()])
                         for n in wb.sheet_names]
                name, grid = grids[0]
                grids[0] = (name, grid + [[], ["备注：更正后重新报送"]])
                (write_xlsx if path.suffix == ".xlsx" else write_xls)(path, grids)
        except Exception:  # noqa: BLE001 - the note saved as .xlsx: not a spreadsheet, not corrected
            continue
        os.utime(path, (when, when))
        done += 1
    return done


def bench_scale(scale: str, root: Path, runner: str, naive_sample: int | None, log) -> dict:
    env = dict(os.environ, SHEGONG_ID_KEY=BENCH_KEY, PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               GX_ANALYTICS_ENABLED="False", PREFECT_LOGGING_LEVEL="WARNING", SHEGONG_TASK_RUNNER=runner)
    env.pop("SHEGONG_ID_KEY_FILE", None)
    inbox, settings, t_sample = make_inbox(scale, root)
    if settings:
        env["SHEGONG_SETTINGS"] = str(settings)
    else:
        env.pop("SHEGONG_SETTINGS", None)
    from flows.config import load_settings
    os.environ.update({k: env[k] for k in ("SHEGONG_SETTINGS",) if k in env})
    units_csv = str(load_settings().units_csv)
    files = sum(1 for _ in (inbox / PERIOD).rglob("*") if _.is_file())
    log(f"{scale}: {files} files written in {t_sample:.1f} s")
    db = root / f"{scale}.duckdb"
    out = {"scale": scale, "files": files, "sample_seconds": t_sample, "runner": runner}
    out["ours"] = run_phase("ours", [PERIOD, str(inbox), str(db)], env)
    log(f"{scale}: ours {out['ours']['wall']:.1f} s")
    out["corrected"] = correct_files(inbox, PERIOD, LATE_SHARE)
    out["rerun"] = run_phase("ours", [PERIOD, str(inbox), str(db)], env)
    log(f"{scale}: rerun {out['rerun']['wall']:.1f} s")
    out["floor"] = run_phase("floor", [PERIOD, str(inbox)], env)
    log(f"{scale}: floor {out['floor']['wall']:.1f} s")
    out["read"] = run_phase("read", [PERIOD, str(inbox)], env)
    log(f"{scale}: our reading {out['read']['wall']:.1f} s")
    sample = naive_sample if naive_sample is not None else NAIVE_SAMPLE.get(scale)
    out["naive"] = run_phase("naive", [PERIOD, str(inbox), units_csv, str(sample or 0)], env)
    n = out["naive"]
    # Linear in files: the per-file work is the whole of it (GX setup is inside the measured time).
    n["wall_month"] = n["wall"] * n["files_total"] / n["files"]
    log(f"{scale}: naive {n['wall']:.1f} s on {n['files']} of {n['files_total']} files")
    os.environ.pop("SHEGONG_SETTINGS", None)
    return out


def ratios(r: dict) -> dict:
    """The ratios the issue asks for, from the measured walls."""
    return {"ours_over_floor": r["ours"]["wall"] / r["floor"]["wall"],
            "naive_over_ours": r["naive"]["wall_month"] / r["ours"]["wall"],
            "rerun_over_full": r["rerun"]["wall"] / r["ours"]["wall"],
            "read_over_floor": r["read"]["wall"] / r["floor"]["wall"]}


def table(results: list[dict]) -> str:
    """The printed table: a row per scale and phase, then the ratios per scale."""
    head = ("scale", "phase", "files", "wall s", "files/s", "rows/s", "peak MB", "cpu/wall")
    lines = []
    for r in results:
        rows = r["ours"]["rows"]  # the month's data rows: one denominator for every phase
        n = r["corrected"]
        for phase, label in (("ours", "full month"), ("rerun", f"rerun, {n} file{'s' * (n != 1)} corrected"),
                             ("read", "our reading alone"), ("floor", "read floor"), ("naive", "naive")):
            m = r[phase]
            wall = m["wall_month"] if phase == "naive" else m["wall"]
            if phase == "naive" and m["files"] < m["files_total"]:
                label = f"naive (extrapolated from {m['files']:,} of {m['files_total']:,} files)"
            cpu = m["cpu"] / m["process_wall"]
            lines.append((r["scale"], label, f"{r['files']:,}", f"{wall:,.1f}", f"{r['files'] / wall:,.1f}",
                          f"{rows / wall:,.0f}", f"{m['peak_bytes'] / 2**20:,.0f}", f"{cpu:.2f}"))
    widths = [max(len(str(x[i])) for x in [head, *lines]) for i in range(len(head))]
    fmt = lambda row: "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)  # noqa: E731
                                for i, (c, w) in enumerate(zip(row, widths)))
    out = [fmt(head), fmt(["-" * w for w in widths]), *map(fmt, lines), ""]
    for r in results:
        q = ratios(r)
        out.append(f"{r['scale']}: ours/floor {q['ours_over_floor']:.2f}x, naive/ours {q['naive_over_ours']:.1f}x, "
                   f"rerun/full {100 * q['rerun_over_full']:.1f} %, our reading/floor {q['read_over_floor']:.2f}x  (runner: {r['runner']}; "
                   f"{r['ours']['rows']:,} rows, {r['ours']['files_rejected']} files rejected; "
                   f"rerun reused {r['rerun']['files_reused']:,} files)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "phase":
        name, out, *args = argv[1:]
        if name == "ours":
            report = phase_ours(*args)
        elif name == "floor":
            report = phase_floor(*args)
        elif name == "read":
            report = phase_read(*args)
        else:
            report = phase_naive(args[0], args[1], args[2], int(args[3]) or None)
        Path(out).write_text(json.dumps(report))
        return 0
    p = argparse.ArgumentParser(prog="python -m flows.tools.bench", description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="city,province", help="comma-separated: tiny, city, province")
    p.add_argument("--task-runner", default="local", choices=("local", "dask"))
    p.add_argument("--naive-sample", type=int, help="files the naive script reads (default: all; 20 at province)")
    p.add_argument("--work", type=Path, help="folder for the inboxes and warehouses (default: a temporary one)")
    p.add_argument("--json", type=Path, help="also write the measurements here")
    args = p.parse_args(argv)
    scales = [s for s in args.scale.split(",") if s]
    for s in scales:
        if s not in SCALES:
            p.error(f"unknown scale {s!r}; use {', '.join(SCALES)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="shegong-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    results = []
    try:
        for s in scales:
            results.append(bench_scale(s, work, args.task_runner, args.naive_sample, log))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"shegong bench, {PERIOD}, {os.cpu_count()} cores, task runner {args.task_runner}")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
