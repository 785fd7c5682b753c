"""The form contracts of `schemas/`: loaded once, used by reading, validation and loading."""
from __future__ import annotations

import functools
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from flows.errors import ConfigError

TYPES = {"code", "text", "integer", "number", "percent", "yesno", "date", "year",
         "enum", "multi", "id_number", "credit_code", "personal"}
RULES = {"le", "required_when", "min_when"}

# Unit words that offices append to a header, e.g. 户籍人口（人）. Stripped before matching,
# on both sides, so the canonical header and every variant meet in one normal form.
_UNIT_SUFFIX = re.compile(r"[(（]\s*(人|个|名|人次|户|支|家|所|万元|元|小时|学时|%|％|‰)\s*[)）]$")


# Recognising a sheet folds the same few hundred header texts again for every candidate row, form
# and header depth, and every sheet of a month has the template's: remembered for the process
# (typed: 1 and 1.0 are equal keys, but not the same text).
@functools.lru_cache(maxsize=1 << 16, typed=True)
def normalise_header(text: object) -> str:
    """Fold a header cell to the form it is matched in: NFKC, no spaces or breaks, no unit suffix."""
    if text is None:
        return ""
    s = unicodedata.normalize("NFKC", str(text))
    s = re.sub(r"\s+", "", s)
    s = s.replace("（", "(").replace("）", ")")
    prev = None
    while prev != s:
        prev, s = s, _UNIT_SUFFIX.sub("", s)
    return s


MONTH_END = "month_end"  # a bound meaning: not after the last day (or year) of the month reported on


@dataclass(frozen=True)
class Bounds:
    """What values of a field an office could mean. Hard bounds refuse the row (an error); soft
    bounds warn and keep it. `warn_population_share` compares a unit's figure with its county's
    reference registered population (data/registry/population.csv); `warn_change` with the
    unit's own figure of last month (a factor: 2 = doubled or halved), when either is at least
    `warn_change_from`."""
    min: float | None = None
    max: float | str | None = None  # a number, or MONTH_END for dates and years
    warn_max: float | None = None
    warn_population_share: float | None = None
    warn_change: float | None = None
    warn_change_from: float = 0


BOUND_KEYS = {"min", "max", "warn_max", "warn_population_share", "warn_change", "warn_change_from"}


@dataclass(frozen=True)
class Field:
    name: str
    header: str
    type: str
    required: bool = False
    aliases: tuple[str, ...] = ()
    values: tuple = ()
    comment: str = ""
    flow: bool = False  # a figure of the month or year to date, not a stock: never carried over
    bounds: Bounds = Bounds()

    @property
    def personal(self) -> bool:
        return self.type in ("personal", "id_number")

    @functools.cached_property
    def match_words(self) -> set[str]:
        return {normalise_header(w) for w in (self.header, *self.aliases)}


@dataclass(frozen=True)
class Rule:
    kind: str
    field: str
    other: str | None = None
    when_field: str | None = None
    when_in: tuple = ()
    min: float | None = None


@dataclass(frozen=True)
class Form:
    id: str
    table: str
    name: str
    titles: tuple[str, ...]
    unit_levels: tuple[str, ...]
    key: tuple[str, ...]
    fields: tuple[Field, ...]
    rules: tuple[Rule, ...] = ()
    roster: bool = False
    replace_by: tuple[str, ...] = ("unit_code",)
    senders: tuple[str, ...] = ()  # the levels that send the form
    expected: str = "rows"  # completeness: a row per unit of unit_levels, or a list per sender
    path: Path | None = field(default=None, compare=False)

    @functools.cached_property
    def match_words(self) -> dict[str, Field]:
        """Every normalised header word of the form, to the field it names."""
        return {w: f for f in self.fields for w in f.match_words}

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def required_fields(self) -> list[Field]:
        return [f for f in self.fields if f.required]


def load_form(path: Path) -> Form:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read form schema {path}: {exc}") from exc
    fields = []
    for f in raw.get("fields", []):
        if f.get("type") not in TYPES:
            raise ConfigError(f"{path}: field {f.get('name')!r} has unknown type {f.get('type')!r}; "
                              f"use one of {sorted(TYPES)}")
        fields.append(Field(name=f["name"], header=f["header"], type=f["type"],
                            required=bool(f.get("required", False)),
                            aliases=tuple(f.get("aliases", ())), values=tuple(f.get("values", ())),
                            comment=f.get("comment", ""), flow=bool(f.get("flow", False)),
                            bounds=_bounds(path, f)))
    names = {f.name for f in fields}
    rules = []
    for r in raw.get("rules", []):
        if r.get("kind") not in RULES:
            raise ConfigError(f"{path}: rule kind {r.get('kind')!r} unknown; use one of {sorted(RULES)}")
        for ref in (r.get("field"), r.get("other"), r.get("when_field")):
            if ref is not None and ref not in names:
                raise ConfigError(f"{path}: rule {r} names field {ref!r}, which the form does not have")
        rules.append(Rule(kind=r["kind"], field=r["field"], other=r.get("other"),
                          when_field=r.get("when_field"), when_in=tuple(r.get("when_in", ())),
                          min=r.get("min")))
    for ref in raw.get("replace_by", ()):
        if ref not in names:
            raise ConfigError(f"{path}: replace_by names field {ref!r}, which the form does not have")
    if raw.get("expected", "rows") not in ("rows", "senders"):
        raise ConfigError(f"{path}: expected must be 'rows' or 'senders'")
    for k in ("id", "table", "name", "titles", "unit_levels", "key", "senders"):
        if k not in raw:
            raise ConfigError(f"{path}: missing top-level key {k!r}")
    return Form(id=raw["id"], table=raw["table"], name=raw["name"], titles=tuple(raw["titles"]),
                unit_levels=tuple(raw["unit_levels"]), key=tuple(raw["key"]), fields=tuple(fields),
                rules=tuple(rules), roster=bool(raw.get("roster", False)),
                replace_by=tuple(raw.get("replace_by", ("unit_code",))), senders=tuple(raw.get("senders", ())),
                expected=raw.get("expected", "rows"), path=path)


def _bounds(path: Path, f: dict) -> Bounds:
    raw = f.get("bounds", {})
    where = f"{path}: field {f.get('name')!r}: bounds"
    if not isinstance(raw, dict) or set(raw) - BOUND_KEYS:
        raise ConfigError(f"{where} may only hold {sorted(BOUND_KEYS)}")
    numeric = f["type"] in ("integer", "number", "percent", "year")
    for k, v in raw.items():
        if v == MONTH_END and k == "max" and f["type"] in ("date", "year"):
            continue
        if not numeric or isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{where}: {k} = {v!r} does not suit a {f['type']} field; numbers bound numbers, "
                              f"and max = {MONTH_END!r} bounds a date or year")
    return Bounds(**raw)


def load_forms(folder: Path) -> dict[str, Form]:
    """Every `*.toml` of the folder, by form id ('SG-01', ...)."""
    forms = {}
    for p in sorted(folder.glob("*.toml")):
        form = load_form(p)
        forms[form.id] = form
    if not forms:
        raise ConfigError(f"no form schemas (*.toml) in {folder}")
    return forms
