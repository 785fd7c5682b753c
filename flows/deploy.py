"""The bureau's schedule: a Prefect deployment of monthly_rollup on a monthly cron, kept apart
from the flow code. Schedules need a real Prefect server (`prefect server start`). Two ways to run
it: `shegong serve`, one long-running process that runs the deployment's flow runs itself, or
`shegong deploy --pool NAME`, the deployment on a process work pool whose runs a `prefect worker
start --pool NAME` picks up (Prefect's production set-up)."""
from __future__ import annotations

import os
from pathlib import Path

from flows.config import DEFAULT_DB, DEFAULT_INBOX, load_settings
from flows.errors import ConfigError

DEPLOYMENT = "monthly"
# What a worker's flow run takes from the environment of `shegong deploy`, as paths: which settings,
# which key file, which task runner. Never the key itself (SHEGONG_ID_KEY): job variables are
# stored in Prefect's database and shown in its UI.
DEPLOYER_ENV = ("SHEGONG_SETTINGS", "SHEGONG_ID_KEY_FILE")


def cron_expression(settings=None) -> str:
    s = settings or load_settings()
    return f"{s.schedule_minute} {s.schedule_hour} {s.schedule_day} * *"


def deployment(inbox: Path = DEFAULT_INBOX, db: Path = DEFAULT_DB, pool: str | None = None):
    """The deployment: the previous month rolled up on the configured day, in the bureau's zone.
    With a work pool, its runs start in this folder, with this process's settings and key file."""
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from flows.monthly import monthly_rollup
    s = load_settings()
    job_variables = None
    if pool:
        env = {name: str(Path(os.environ[name]).resolve()) for name in DEPLOYER_ENV if os.environ.get(name)}
        if os.environ.get("SHEGONG_TASK_RUNNER"):
            env["SHEGONG_TASK_RUNNER"] = os.environ["SHEGONG_TASK_RUNNER"]
        # A process worker otherwise starts each run in a new temporary folder, where the default
        # key file (.secrets/id-hash.key, relative) is not.
        job_variables = {"working_dir": str(Path.cwd().resolve()), "env": env}
    # Absolute paths: the runner may be started from anywhere, and the paths are shown in the UI.
    return monthly_rollup.to_deployment(
        name=DEPLOYMENT,
        # The flow is imported as the package module, flows.monthly, as `shegong run` imports it.
        # Prefect's default, the file flows/monthly.py, is executed under the name "monthly" and
        # every module it imports relatively loads again as "monthly.<name>": the read pool's
        # workers (and Dask's) are then handed functions of a "monthly" package that no fresh
        # process can import, and every month of 24 files or more failed (BrokenProcessPool) or,
        # on Dask, never finished.
        entrypoint_type=EntrypointType.MODULE_PATH,
        schedule=Cron(cron_expression(s), timezone=s.timezone),
        parameters={"inbox": str(Path(inbox).resolve()), "db": str(Path(db).resolve())},
        description="Rolls up the previous month (period left empty) or the month given as `period`.",
        tags=["shegong"],
        paused=False,  # registering again resumes the schedule, which stopping `shegong serve` pauses
        work_pool_name=pool,
        job_variables=job_variables,
    )


def api_url() -> str:
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        raise ConfigError("schedules need a Prefect server: start one with `.venv/bin/prefect server start` "
                          "and set PREFECT_API_URL=http://127.0.0.1:4200/api before `shegong serve` or `shegong deploy`")
    return url


def serve(inbox: Path = DEFAULT_INBOX, db: Path = DEFAULT_DB) -> None:
    """Register the deployment and run its flow runs in this process's children until stopped."""
    api_url()
    from prefect import serve as prefect_serve
    prefect_serve(deployment(inbox, db))


def deploy(pool: str, inbox: Path = DEFAULT_INBOX, db: Path = DEFAULT_DB) -> str:
    """Register the deployment on a process work pool (created beforehand with `prefect work-pool
    create NAME --type process`); a worker of the pool runs its flow runs. Returns its id."""
    url = api_url()
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    with get_client(sync_client=True) as client:
        try:
            work_pool = client.read_work_pool(pool)
        except ObjectNotFound:
            raise ConfigError(f"no work pool {pool!r} on {url}: create it with "
                              f"`.venv/bin/prefect work-pool create {pool} --type process`") from None
    # The flow reads the inbox and writes the warehouse on this machine, with this project's code:
    # only a process worker of this machine runs it as it is.
    if work_pool.type != "process":
        raise ConfigError(f"work pool {pool!r} is of type {work_pool.type!r}; the monthly run needs a process pool: "
                          f"`.venv/bin/prefect work-pool create NAME --type process`")
    return str(deployment(inbox, db, pool).apply(work_pool_name=pool))
