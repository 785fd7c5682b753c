"""The benchmark at its tiny scale, end to end: the table's structure, and ratios computed from the
measured numbers. No timing is asserted: CI machines are not benchmark machines."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flows.tools import bench
from flows.ingest import sandbox
from flows.ingest.discover import discover
from flows.tools.sample import TILE_VILLAGES, province_tree, tiles

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


def test_province_tree_has_the_size_and_shape_asked_for():
    units, pops = province_tree()
    levels = [u["level"] for u in units]
    assert (levels.count("city"), levels.count("county"), levels.count("township"), levels.count("village")) == \
        (1, 183, 3100, 30000)
    codes = [u["code"] for u in units]
    assert len(set(codes)) == len(codes) and all(re.fullmatch(r"\d{12}", c) for c in codes)
    parent = {u["code"]: u for u in units}
    for u in units[1:]:  # every unit one level under its parent
        assert parent[u["parent_code"]]["level"] == {"county": "city", "township": "county",
                                                      "village": "township"}[u["level"]]
    named = [u["name"] for u in units if u["level"] in ("county", "township")]
    assert len(set(named)) == len(named)  # senders are found by name
    assert sum(p["registered_population"] for p in pops[1:]) == pops[0]["registered_population"]
    assert province_tree() == (units, pops)  # deterministic from the seed
    groups = tiles(units)
    assert sorted(c for t in groups for c in t) == sorted(u["code"] for u in units if u["level"] == "county")


def test_the_pool_reads_exactly_what_one_process_reads(tmp_path):
    """Same records and rows in the same order: the rerun cache and newest-file-wins rely on it."""
    inbox = tmp_path / "inbox"
    shutil.copytree(FIXTURES / "inbox", inbox)
    period = "2024-03"
    files = discover(inbox, period)
    files = (files * (sandbox.POOL_MIN_FILES // len(files) + 1))[: sandbox.POOL_MIN_FILES + 3]
    one_records, one_frames = sandbox.parse_files(files, inbox / period, period)
    records, frames = sandbox.parse_in_pool(files, inbox / period, period, workers=2)
    assert records == one_records
    assert frames.keys() == one_frames.keys()
    for form_id, frame in frames.items():
        assert frame.equals(one_frames[form_id]), form_id
    assert sum(f.height for f in one_frames.values()) > 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ)
    env.pop("SHEGONG_SETTINGS", None)
    proc = subprocess.run([sys.executable, "-m", "flows.tools.bench", "--scale", "tiny", "--work", str(out / "work"),
                           "--json", str(out / "bench.json")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads((out / "bench.json").read_text())


def test_tiny_bench_prints_the_table(tiny):
    out, results = tiny
    lines = out.splitlines()
    assert lines[0].startswith("shegong bench, ")
    assert lines[1].split() == ["scale", "phase", "files", "wall", "s", "files/s", "rows/s", "peak", "MB",
                                "cpu/wall"]
    phases = [line for line in lines[3:] if line.startswith("tiny ")]
    assert len(phases) == 5
    assert [p.split("  ")[1].strip().split(",")[0] for p in phases] == \
        ["full month", "rerun", "our reading alone", "read floor", "naive"]
    for p in phases:
        assert re.search(r"\s[\d,]+\.\d\s+[\d,]+\.\d\s+[\d,]+\s+[\d,]+\s+\d+\.\d\d$", p), p
    assert any(line.startswith("tiny: ours/floor ") for line in lines)


def test_tiny_bench_ratios_are_the_measured_ones(tiny):
    out, results = tiny
    (r,) = results
    assert r["scale"] == "tiny" and r["files"] > 0
    assert r["ours"]["files"] == r["files"] and r["ours"]["files_reused"] == 0
    assert r["corrected"] >= 1
    # A rerun parses only the corrected files and takes the rest from the first run.
    assert r["rerun"]["files_reused"] == r["files"] - r["corrected"] - r["ours"]["files_rejected"]
    assert r["rerun"]["rows"] == r["ours"]["rows"]
    for phase in ("ours", "rerun", "read", "floor", "naive"):
        assert r[phase]["wall"] > 0 and r[phase]["peak_bytes"] > 0
    q = bench.ratios(r)
    assert q["ours_over_floor"] == r["ours"]["wall"] / r["floor"]["wall"]
    assert q["naive_over_ours"] == r["naive"]["wall_month"] / r["ours"]["wall"]
    assert q["rerun_over_full"] == r["rerun"]["wall"] / r["ours"]["wall"]
    assert q["read_over_floor"] == r["read"]["wall"] / r["floor"]["wall"]
    assert r["read"]["rows"] == r["ours"]["rows"]  # the read task reads what the flow counts
    line = next(line for line in out.splitlines() if line.startswith("tiny: ours/floor "))
    assert f"ours/floor {q['ours_over_floor']:.2f}x" in line
    assert f"naive/ours {q['naive_over_ours']:.1f}x" in line
    assert f"rerun/full {100 * q['rerun_over_full']:.1f} %" in line
    assert out.splitlines()[1:] == bench.table(results).splitlines()


def test_tile_size_is_about_a_city():
    assert 200 <= TILE_VILLAGES <= 400
