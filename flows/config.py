"""Where things are: the project's own files, and the city's data named in data/settings.toml."""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from flows.errors import ConfigError

PROJECT = Path(__file__).resolve().parent.parent
SCHEMAS = PROJECT / "schemas"
SQL = PROJECT / "sql"
DATA = PROJECT / "data"
DEFAULT_INBOX = Path("data/inbox")
DEFAULT_DB = Path("data/warehouse.duckdb")
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def check_period(period: str) -> str:
    if not _PERIOD.match(period or ""):
        raise ConfigError(f"period {period!r} is not a month; write it as YYYY-MM, e.g. 2025-06")
    return period


def add_months(period: str, n: int) -> str:
    """The month n months after (n < 0: before) a YYYY-MM month."""
    y, m = map(int, period.split("-"))
    y, m = divmod(y * 12 + m - 1 + n, 12)
    return f"{y:04d}-{m + 1:02d}"


def months_between(start: str, end: str) -> int:
    """How many months `end` comes after `start` (negative: before), both YYYY-MM."""
    (ys, ms), (ye, me) = (map(int, p.split("-")) for p in (start, end))
    return (ye - ys) * 12 + me - ms


def month_range(start: str, end: str) -> list[str]:
    """Every month from `start` to `end`, both included (none when `end` comes first)."""
    return [add_months(start, n) for n in range(months_between(start, end) + 1)]


def month_end(period: str):
    """The last day of a YYYY-MM month, a datetime.date."""
    import datetime as dt
    return dt.date.fromisoformat(f"{add_months(period, 1)}-01") - dt.timedelta(days=1)


@dataclass(frozen=True)
class Settings:
    units_csv: Path
    population_csv: Path
    plans_dir: Path  # one folder per plan: <plan id>/indicators.toml
    community_rule: str
    deadline_day: int = 5
    timezone: str = "Asia/Shanghai"
    carry_forward_months: int = 3
    schedule_day: int = 6
    schedule_hour: int = 2
    schedule_minute: int = 0
    storage_version: str = "v1.1.0"
    memory_limit: str = "512MB"  # DuckDB's, while a run builds the month (warehouse.memory_limit)
    task_runner: str = "local"
    schemas: Path = SCHEMAS  # the form schemas (schemas/sg0N.toml) files are read with


TASK_RUNNERS = ("local", "dask")


def settings_file() -> Path:
    """data/settings.toml, unless SHEGONG_SETTINGS names another (another region's registry, e.g.
    the generated province of `shegong sample --scale province`)."""
    other = os.environ.get("SHEGONG_SETTINGS")
    return Path(other) if other else DATA / "settings.toml"


def load_settings(data_dir: Path | None = None) -> Settings:
    path = data_dir / "settings.toml" if data_dir is not None else settings_file()
    data_dir = path.parent
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    rule = raw.get("counting", {}).get("community_rule", "committee_name")
    plan = raw.get("plan", {})
    if "folder" not in plan:
        raise ConfigError(f"{path}: [plan] needs folder = \"plan\", the folder holding one <plan id>/indicators.toml "
                          f"per plan" + (" (a single indicators = … file is no longer read: move it into "
                                         "plan/<plan id>/ and give it a [plan] name, from, to)" if "indicators" in plan else ""))
    if rule not in ("committee_name", "nbs_code"):
        raise ConfigError(f"{path}: counting.community_rule is {rule!r}; use 'committee_name' or 'nbs_code'")
    s = Settings(units_csv=data_dir / raw["registry"]["units"],
                 population_csv=data_dir / raw["registry"]["population"],
                 plans_dir=data_dir / plan["folder"], community_rule=rule,
                 deadline_day=int(raw.get("reporting", {}).get("deadline_day", 5)),
                 timezone=raw.get("reporting", {}).get("timezone", "Asia/Shanghai"),
                 carry_forward_months=int(raw.get("reporting", {}).get("carry_forward_months", 3)),
                 schedule_day=int(raw.get("schedule", {}).get("day", 6)),
                 schedule_hour=int(raw.get("schedule", {}).get("hour", 2)),
                 schedule_minute=int(raw.get("schedule", {}).get("minute", 0)),
                 storage_version=raw.get("warehouse", {}).get("storage_version", "v1.1.0"),
                 memory_limit=str(raw.get("warehouse", {}).get("memory_limit", "512MB")),
                 task_runner=os.environ.get("SHEGONG_TASK_RUNNER") or raw.get("run", {}).get("task_runner", "local"),
                 schemas=(data_dir / raw["forms"]["schemas"]).resolve() if "schemas" in raw.get("forms", {}) else SCHEMAS)
    if s.task_runner not in TASK_RUNNERS:
        raise ConfigError(f"{path}: run.task_runner is {s.task_runner!r}; use one of {', '.join(TASK_RUNNERS)}")
    if not re.fullmatch(r"v\d+\.\d+\.\d+", s.storage_version):
        raise ConfigError(f"{path}: warehouse.storage_version must look like v1.0.0, found {s.storage_version!r}")
    if not re.fullmatch(r"\d+(\.\d+)?\s*([KMGT]i?B)", s.memory_limit, re.IGNORECASE):
        raise ConfigError(f"{path}: warehouse.memory_limit must be a size such as \"512MB\" or \"2GiB\", "
                          f"found {s.memory_limit!r}")
    if not 1 <= s.deadline_day <= 28:
        raise ConfigError(f"{path}: reporting.deadline_day must be a day from 1 to 28")
    for p in (s.units_csv, s.population_csv):
        if not p.is_file():
            raise ConfigError(f"{path} names {p}, which does not exist")
    if not s.plans_dir.is_dir():
        raise ConfigError(f"{path} names the plan folder {s.plans_dir}, which does not exist")
    if not s.schemas.is_dir():
        raise ConfigError(f"{path}: forms.schemas names {s.schemas}, which is not a folder of form schemas")
    return s


def deadline_utc(period: str, settings: Settings):
    """The end of the deadline day of the month after `period`, local time, as naive UTC."""
    import datetime as dt
    from zoneinfo import ZoneInfo
    y, m = map(int, add_months(period, 1).split("-"))
    local = dt.datetime(y, m, settings.deadline_day, tzinfo=ZoneInfo(settings.timezone)) + dt.timedelta(days=1)
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def previous_month(settings: Settings, now=None) -> str:
    """The month before the current one, in the bureau's time zone: what a scheduled run rolls up."""
    import datetime as dt
    from zoneinfo import ZoneInfo
    local = (now or dt.datetime.now(dt.UTC)).astimezone(ZoneInfo(settings.timezone))
    return add_months(f"{local.year:04d}-{local.month:02d}", -1)
