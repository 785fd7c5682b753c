"""The bureau's schedule: a Prefect deployment of monthly_rollup on a monthly cron, kept apart
from the flow code. `shegong serve` runs it against a Prefect server (schedules need a real one:
`prefect server start`)."""
from __future__ import annotations

import os
from pathlib import Path

from .config import DEFAULT_DB, DEFAULT_INBOX, load_settings
from .errors import ConfigError

DEPLOYMENT = "monthly"


def cron_expression(settings=None) -> str:
    s = settings or load_settings()
    return f"{s.schedule_minute} {s.schedule_hour} {s.schedule_day} * *"


def deployment(inbox: Path = DEFAULT_INBOX, db: Path = DEFAULT_DB):
    """The deployment: the previous month rolled up on the configured day, in the bureau's zone."""
    from prefect.schedules import Cron

    from .monthly import monthly_rollup
    s = load_settings()
    # Absolute paths: the runner may be started from anywhere, and the paths are shown in the UI.
    return monthly_rollup.to_deployment(
        name=DEPLOYMENT,
        schedule=Cron(cron_expression(s), timezone=s.timezone),
        parameters={"inbox": str(Path(inbox).resolve()), "db": str(Path(db).resolve())},
        description="Rolls up the previous month (period left empty) or the month given as `period`.",
        tags=["shegong"],
    )


def serve(inbox: Path = DEFAULT_INBOX, db: Path = DEFAULT_DB) -> None:
    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError("schedules need a Prefect server: start one with `.venv/bin/prefect server start` "
                          "and set PREFECT_API_URL=http://127.0.0.1:4200/api before `shegong serve`")
    from prefect import serve as prefect_serve
    prefect_serve(deployment(inbox, db))
