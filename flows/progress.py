"""Progress on a terminal: the months of a run with the time left, and a bar per stage of the
month (files read of the month's files, forms validated), drawn with rich, which Prefect brings.

Only `shegong run` shows them, and only when its stderr is a terminal: a scheduled run, a served
deployment or output sent to a file or a pipe get nothing extra. The stages report through
`stage` and `advance`, which do nothing when no bars are shown, so the flow reads the same either
way.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import threading

STAGES = {"read": "读取文件", "validate": "校验报表"}

_lock = threading.Lock()  # tasks report from Prefect's worker threads
_bars = None  # the rich Progress while it is shown
_tasks: dict[str, int] = {}
_month = ""


@contextlib.contextmanager
def shown(months: int):
    """Bars on stderr for a run of `months` months, if stderr is a terminal."""
    global _bars
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    bars = Progress(TextColumn("{task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(),
                    TextColumn("{task.fields[left]}"), console=Console(stderr=True))
    with bars:
        # While the bars are drawn, our log lines go above them rather than through them.
        log = logging.getLogger("shegong")
        moved = [(h, h.setStream(sys.stderr)) for h in log.handlers
                 if isinstance(h, logging.StreamHandler) and h.stream is sys.__stderr__]
        with _lock:
            _bars = bars
            _tasks.clear()
            _tasks["months"] = bars.add_task(_label("月份"), total=months, left=_left(0, 0, months))
            for name, label in STAGES.items():
                _tasks[name] = bars.add_task(_label(f"  {label}"), total=None, left="")
        try:
            yield
        finally:
            with _lock:
                _bars = None
            for handler, stream in moved:
                handler.setStream(stream)


def _label(text: str) -> str:
    """Labels padded to one width on screen (a Chinese character takes two columns)."""
    from flows.outputs.report import _pad
    return _pad(text, 28)


def _left(elapsed: float | None, done: float, total: float | None) -> str:
    """The time left at the pace so far (rich's own estimate needs two steps inside 30 s, which
    months of minutes never give)."""
    if not done or not total or elapsed is None:
        return "剩余 -:--:--"
    seconds = int(elapsed / done * (total - done))
    return f"剩余 {seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _advance(name: str, n: int) -> None:
    task = _tasks[name]
    _bars.advance(task, n)
    t = next(t for t in _bars.tasks if t.id == task)
    _bars.update(task, left=_left(t.elapsed, t.completed, t.total))


def month(period: str) -> None:
    """A month starts: its stages start again from nothing."""
    global _month
    with _lock:
        if _bars is None:
            return
        _month = period
        _bars.update(_tasks["months"], description=_label(f"月份 {period}"))
        for name in STAGES:
            _bars.reset(_tasks[name], total=None, left="")


def step(words: str) -> None:
    """What the month is doing now, beside its bar (汇总与计算, 生成报告 ...)."""
    with _lock:
        if _bars is not None:
            _describe(words)


def _describe(words: str) -> None:
    _bars.update(_tasks["months"], description=_label(f"月份 {_month} · {words}"))


def month_done() -> None:
    with _lock:
        if _bars is not None:
            _describe("完成")
            _advance("months", 1)


def stage(name: str, total: int) -> None:
    """A stage of the month starts, with this many things to do."""
    with _lock:
        if _bars is not None:
            _bars.reset(_tasks[name], total=total, left=_left(0, 0, total))
            _describe(STAGES[name])


def advance(name: str, n: int = 1) -> None:
    with _lock:
        if _bars is not None:
            _advance(name, n)
