"""Where things are: the project's own files, and the city's data named in data/settings.toml."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

PROJECT = Path(__file__).resolve().parent.parent
SCHEMAS = PROJECT / "schemas"
SQL = PROJECT / "sql"
DATA = PROJECT / "data"
DEFAULT_INBOX = Path("data/inbox")
DEFAULT_DB = Path("data/warehouse.duckdb")


@dataclass(frozen=True)
class Settings:
    units_csv: Path
    population_csv: Path
    indicators_toml: Path
    community_rule: str


def load_settings(data_dir: Path = DATA) -> Settings:
    path = data_dir / "settings.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    rule = raw.get("counting", {}).get("community_rule", "committee_name")
    if rule not in ("committee_name", "nbs_code"):
        raise ConfigError(f"{path}: counting.community_rule is {rule!r}; use 'committee_name' or 'nbs_code'")
    s = Settings(units_csv=data_dir / raw["registry"]["units"],
                 population_csv=data_dir / raw["registry"]["population"],
                 indicators_toml=data_dir / raw["plan"]["indicators"], community_rule=rule)
    for p in (s.units_csv, s.population_csv, s.indicators_toml):
        if not p.is_file():
            raise ConfigError(f"{path} names {p}, which does not exist")
    return s
