"""Processes as Linux shows them in /proc: what the run, its stop and its read pool need to know
of a process other than their own children (which they could wait for)."""
from __future__ import annotations


def stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first, then the parent's pid,
    ...; proc(5) numbers them from 3), None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode(errors="replace")
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def started(pid: int) -> str | None:
    """When a live process started (clock ticks since boot), None if it has ended (a zombie
    has): with its pid, which process it is, from its fork on, since pids are used again."""
    fields = stat(pid)
    return None if fields is None or fields[0] in "ZX" else fields[19]
