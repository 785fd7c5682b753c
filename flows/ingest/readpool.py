"""Reading on every core: the month's files parsed by a pool of processes, in file order."""
from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from flows import pii
from flows.ingest import read
from flows.config import load_settings
from flows.schemas import load_forms

if TYPE_CHECKING:
    import polars as pl

# Files parsed at once by one worker of the pool: enough to keep both cores busy, few enough
# that a slow file does not leave the other worker idle at the end.
CHUNK_FILES = 8
# Files per Prefect task on a distributed runner. Submitting a task costs the flow's process about
# 0.3 s (prefect-dask serialises the run's context, Dask tokenizes the task): 66 tasks of 64 files
# made a province month 10 s slower than 17 tasks of 256, which still spread over the workers.
TASK_FILES = 256
POOL_MIN_FILES = 24  # fewer files than this are parsed in this process: a pool costs ~1 s to start


Parsed = tuple[list[read.FileRecord], dict[str, "pl.DataFrame"]]


def parse_files(paths: list[Path], root: Path, period: str, done: Callable[[int], None] | None = None) -> Parsed:
    """Each file parsed: the files' records, in order, and their rows as a frame per form (in
    file order). Runs in a pool worker, a Dask worker, or this process; frames, not rows, travel
    back, and are made here, on the worker's core. `done(n)` hears of files parsed (this process)."""
    forms = load_forms(load_settings().schemas)
    key = pii.load_key()  # each process loads it: it never travels with the work
    records, rows = [], {form_id: [] for form_id in forms}
    for path in paths:
        # read_file reads the bytes itself, after its checks of links and size: a file over the
        # size limit is never held in memory.
        record, by_form = read.read_file(path, root, period, forms, key)
        if done:
            done(1)
        records.append(record)
        for form_id, form_rows in by_form.items():
            rows[form_id].extend(form_rows)
    return records, {form_id: read.rows_frame(forms[form_id], form_rows) for form_id, form_rows in rows.items()}


def combine(parts: list[Parsed]) -> Parsed:
    """Parts parsed separately, as one: records and rows in the parts' order."""
    import polars as pl
    records = [r for part_records, _ in parts for r in part_records]
    forms = load_forms(load_settings().schemas)
    frames = {form_id: pl.concat([frames[form_id] for _, frames in parts]) if parts
              else read.rows_frame(form, []) for form_id, form in forms.items()}
    return records, frames


def parse_in_pool(paths: list[Path], root: Path, period: str, workers: int | None = None,
                  done: Callable[[int], None] | None = None) -> Parsed:
    """The files parsed on every core, results in the order of `paths` (the same as one process
    gives: the rerun cache and the newest-file-wins rule depend on that order); `done(n)` hears
    of each chunk of n files parsed."""
    workers = workers or min(os.cpu_count() or 1, max(1, len(paths) // CHUNK_FILES))
    if workers < 2 or len(paths) < POOL_MIN_FILES:
        return parse_files(paths, root, period, done)
    chunks = [paths[i:i + CHUNK_FILES] for i in range(0, len(paths), CHUNK_FILES)]
    # forkserver, not fork: this process runs Prefect's threads, which a fork would copy mid-flight.
    # The server imports this module once; each worker forked from it starts with it loaded.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_preload())
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_log_like, initargs=_log_setup()) as pool:
        parts = []
        for chunk, part in zip(chunks, pool.map(parse_files, chunks, [root] * len(chunks), [period] * len(chunks))):
            parts.append(part)
            if done:
                done(len(chunk))
        return combine(parts)


def _preload() -> list[str]:
    """What the pool's server imports before forking the workers: this module, and the package of
    this process's main module. Each worker runs the main module again (multiprocessing does, so
    that what it defines can be unpickled); in a flow run that Prefect started (served, or by a
    worker) that is `prefect.engine`, and importing the `prefect` package it needs took seconds in
    each worker. Imported once in the server, it is loaded in every worker forked from it."""
    name = getattr(sys.modules["__main__"].__spec__, "name", None) or ""  # None: a script (`shegong`)
    package = name.rpartition(".")[0]
    # The package, not the module: runpy warns when the module it runs is imported already. A
    # package's __main__ (python -m pytest) is never run by workers.
    return [__name__, package] if package and not name.endswith("__main__") else [__name__]


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
