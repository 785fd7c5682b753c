"""Who sent a file: the unit named in its sheets (填报单位：…), else the nearest unit covering
all its rows, else a folder named after a unit. Feedback goes to that unit."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

from flows.ingest.discover import FileRecord
from flows.registry import Tree

def file_senders(records: list[FileRecord], unit_codes: Iterable[tuple[str, str | None]], tree: Tree
                 ) -> dict[str, str | None]:
    """path -> sender unit code, for every file of the month; `unit_codes` are the (file, unit
    code) pairs of the month's rows."""
    codes: dict[str, set[str]] = {}
    for path, code in unit_codes:
        if code in tree.name:
            codes.setdefault(path, set()).add(code)
    out = {}
    for rec in records:
        named = {tree.resolve(s.sender) for s in rec.sheets if s.sender} - {None}
        sender = next(iter(named)) if len(named) == 1 else None
        if sender is None and rec.path in codes:
            sender = tree.common_ancestor(codes[rec.path])
        if sender is None:
            for part in reversed(PurePosixPath(rec.path).parts[:-1]):
                sender = tree.resolve(part)
                if sender:
                    break
        out[rec.path] = sender
    return out
