"""Reading on every core: the month's files parsed by a pool of processes, in file order."""
from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from . import pii, read
from .config import SCHEMAS
from .schemas import load_forms

# Files parsed at once by one worker of the pool: enough to keep both cores busy, few enough
# that a slow file does not leave the other worker idle at the end.
CHUNK_FILES = 8
# Files per Prefect task on a distributed runner: a task run's bookkeeping (API calls, states,
# shipping results back) costs about 0.1 s, which 8 files do not pay for and 64 do.
TASK_FILES = 64
POOL_MIN_FILES = 24  # fewer files than this are parsed in this process: a pool costs ~1 s to start


def parse_files(paths: list[Path], root: Path, period: str) -> list[tuple[read.FileRecord, dict[str, list[dict]]]]:
    """Each file parsed, in order; runs in a pool worker, a Dask worker, or this process."""
    forms = load_forms(SCHEMAS)
    key = pii.load_key()  # each process loads it: it never travels with the work
    out = []
    for path in paths:
        # read_file reads the bytes itself, after its checks of links and size: a file over the
        # size limit is never held in memory.
        out.append(read.read_file(path, root, period, forms, key))
    return out


def parse_in_pool(paths: list[Path], root: Path, period: str, workers: int | None = None
                  ) -> list[tuple[read.FileRecord, dict[str, list[dict]]]]:
    """The files parsed on every core, results in the order of `paths` (the same as one process
    gives: the rerun cache and the newest-file-wins rule depend on that order)."""
    workers = workers or min(os.cpu_count() or 1, max(1, len(paths) // CHUNK_FILES))
    if workers < 2 or len(paths) < POOL_MIN_FILES:
        return parse_files(paths, root, period)
    chunks = [paths[i:i + CHUNK_FILES] for i in range(0, len(paths), CHUNK_FILES)]
    # forkserver, not fork: this process runs Prefect's threads, which a fork would copy mid-flight.
    # The server imports this module once; each worker forked from it starts with it loaded.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_log_like, initargs=_log_setup()) as pool:
        parts = pool.map(parse_files, chunks, [root] * len(chunks), [period] * len(chunks))
        return [r for part in parts for r in part]


def _log_setup() -> tuple[int, list[tuple[str | None, str | None]]]:
    """The level and stderr formats of the "shegong" logger here, for the workers to copy."""
    log = logging.getLogger("shegong")
    formats = [(h.formatter._fmt if h.formatter else None, h.formatter.datefmt if h.formatter else None)
               for h in log.handlers if isinstance(h, logging.StreamHandler) and h.stream is sys.stderr]
    return log.level, formats


def _log_like(level: int, formats: list[tuple[str | None, str | None]]) -> None:
    """A worker's "shegong" logger as its parent's: "file rejected" warnings read the same either way."""
    log = logging.getLogger("shegong")
    log.setLevel(level)
    for fmt, datefmt in formats:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(fmt, datefmt))
        log.addHandler(handler)
    if formats:
        log.propagate = False
