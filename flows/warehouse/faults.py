"""Pause points for the fault tests: a run stops at a named stage so that a test can kill it there.

Off unless both SHEGONG_PAUSE_AT (a stage, or several separated by commas) and SHEGONG_PAUSE_FILE
(a marker path) are set; in production each call costs one environment lookup. At each stage the
run writes the marker (its pid and the stage) and waits until the marker is removed (the test lets
it go on) or it is killed.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

STAGES = ("reading", "validating", "rolling_up", "publishing", "published")
_passed: set[str] = set()


def checkpoint(stage: str) -> None:
    """Wait here, once per process, if the fault tests asked to stop at this stage."""
    if stage not in os.environ.get("SHEGONG_PAUSE_AT", "").split(",") or stage in _passed:
        return
    marker = os.environ.get("SHEGONG_PAUSE_FILE")
    if not marker:
        return
    _passed.add(stage)
    # Whole or not at all: the test reads it as soon as it appears.
    Path(marker + ".tmp").write_text(f"{os.getpid()} {stage}\n")
    os.replace(marker + ".tmp", marker)
    # Bounded, so that a forgotten setting delays a run instead of hanging it.
    deadline = time.monotonic() + float(os.environ.get("SHEGONG_PAUSE_SECONDS", "120"))
    while Path(marker).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
