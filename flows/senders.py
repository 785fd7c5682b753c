"""Who sent a file: the unit named in its sheets (填报单位：…), else the nearest unit covering
all its rows, else a folder named after a unit. Feedback goes to that unit."""
from __future__ import annotations

import re
from pathlib import PurePosixPath

from .read import FileRecord

# Words offices add after their unit's name: 东区民政局, 大渡口街道办事处, 攀莲镇人民政府.
_OFFICE = re.compile(r"(人民政府|政府|办事处|民政局|民政办|社会事务办公室|社会事务办|社事办|便民服务中心|党委)$")


class Tree:
    """The registry as the checks need it: names, levels, parents, subtrees."""

    def __init__(self, units):
        self.name, self.level, self.parent = {}, {}, {}
        for code, name, level, parent in units.select("code", "name", "level", "parent_code").iter_rows():
            self.name[code], self.level[code], self.parent[code] = name, level, parent
        by_name: dict[str, set[str]] = {}
        for code, name in self.name.items():
            for alias in {name, name.removesuffix("居民委员会").removesuffix("村民委员会")}:
                by_name.setdefault(alias, set()).add(code)
        # A name shared by two units (two 新村 in different towns) identifies neither.
        self.by_name = {n: next(iter(c)) for n, c in by_name.items() if len(c) == 1}

    def ancestors(self, code: str) -> list[str]:
        out = []
        while code in self.name:
            out.append(code)
            code = self.parent.get(code)
        return out

    def within(self, code: str, ancestor: str) -> bool:
        return ancestor in self.ancestors(code)

    def resolve(self, text: str | None) -> str | None:
        """A unit code from a sender's words, or None when they name no unit unambiguously."""
        if not text:
            return None
        s = re.sub(r"\s+", "", text)
        while True:
            if s in self.by_name:
                return self.by_name[s]
            shorter = _OFFICE.sub("", s)
            if shorter == s:
                break
            s = shorter
        # 东区民政局社会事务科: the longest registry name it starts with.
        for n in sorted((n for n in self.by_name if s.startswith(n)), key=len, reverse=True):
            return self.by_name[n]
        return None

    def common_ancestor(self, codes: set[str]) -> str | None:
        chains = [self.ancestors(c) for c in codes if c in self.name]
        if not chains:
            return None
        shared = set(chains[0]).intersection(*chains[1:])
        return next((c for c in chains[0] if c in shared), None)


def file_senders(records: list[FileRecord], rows_by_form: dict[str, list[dict]], tree: Tree) -> dict[str, str | None]:
    """path -> sender unit code, for every file of the month."""
    codes: dict[str, set[str]] = {}
    for rows in rows_by_form.values():
        for r in rows:
            if r.get("unit_code") in tree.name:
                codes.setdefault(r["_file"], set()).add(r["unit_code"])
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
