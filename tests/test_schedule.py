"""The bureau's schedule: a monthly cron in the bureau's time zone that rolls up last month."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from flows.config import load_settings, previous_month
from flows.deploy import deployment, serve
from flows.errors import ConfigError


def test_deployment_is_a_monthly_cron_in_shanghai_time():
    d = deployment(Path("data/inbox"), Path("data/warehouse.duckdb"))
    assert d.name == "monthly"
    [schedule] = d.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 2 6 * *", "Asia/Shanghai")
    assert d.parameters == {"inbox": str(Path("data/inbox").resolve()), "db": str(Path("data/warehouse.duckdb").resolve())}


@pytest.mark.parametrize("utc, month", [
    (dt.datetime(2026, 1, 5, 18, 30, tzinfo=dt.UTC), "2025-12"),   # 02:30 on 6 January in Shanghai
    (dt.datetime(2026, 2, 28, 17, 0, tzinfo=dt.UTC), "2026-02"),   # already 1 March in Shanghai
    (dt.datetime(2026, 7, 6, 2, 0, tzinfo=dt.UTC), "2026-06"),
])
def test_a_scheduled_run_rolls_up_the_previous_month_in_the_bureaus_time_zone(utc, month):
    assert previous_month(load_settings(), utc) == month


def test_serve_needs_a_server(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(ConfigError, match="schedules need a Prefect server"):
        serve()


def test_the_deployment_runs_the_flow_the_cli_runs():
    """Its entrypoint is the package module, so a served run or a worker's run loads the very flow
    `shegong run` calls (not flows/monthly.py executed as a script)."""
    from prefect.flows import load_flow_from_entrypoint

    from flows.monthly import monthly_rollup
    d = deployment(Path("data/inbox"), Path("data/warehouse.duckdb"))
    assert d.entrypoint == "flows.monthly.monthly_rollup"
    assert load_flow_from_entrypoint(d.entrypoint) is monthly_rollup
    assert (d.work_pool_name, d.job_variables) == (None, {})


def test_the_flow_file_run_as_a_script_is_refused_with_what_to_do(monkeypatch):
    """A deployment made by hand from the file (Prefect's default entrypoint) stops at once with
    what to do, instead of failing on the first month big enough for the read pool."""
    import sys

    from prefect.exceptions import ScriptError
    from prefect.utilities.importtools import load_script_as_module

    import flows.monthly
    monkeypatch.setattr(sys, "path", list(sys.path))  # the loader adds flows/ to it
    before = set(sys.modules)
    try:
        with pytest.raises(ScriptError) as refused:
            load_script_as_module(flows.monthly.__file__)
    finally:
        for name in set(sys.modules) - before:
            del sys.modules[name]
    assert str(refused.value.user_exc) == (
        "flows/monthly.py is the module flows.monthly: deploy the flow with `shegong serve` or `shegong deploy` "
        "(entrypoint flows.monthly.monthly_rollup), not from its file path")


def test_a_pool_deployment_starts_its_runs_here_with_these_settings_and_never_the_key(tmp_path, monkeypatch):
    """A worker's runs start in the folder `shegong deploy` ran in, with its settings file and key
    file; the key itself (SHEGONG_ID_KEY) is never put in the deployment, which Prefect stores."""
    from flows.config import settings_file
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHEGONG_TASK_RUNNER", raising=False)
    monkeypatch.setenv("SHEGONG_SETTINGS", str(settings_file()))
    monkeypatch.setenv("SHEGONG_ID_KEY_FILE", "keys/id-hash.key")
    d = deployment(Path("inbox"), Path("wh.duckdb"), pool="city")
    assert d.work_pool_name == "city"
    assert d.job_variables == {"working_dir": str(tmp_path.resolve()),
                               "env": {"SHEGONG_SETTINGS": str(settings_file().resolve()),
                                       "SHEGONG_ID_KEY_FILE": str(tmp_path.resolve() / "keys/id-hash.key")}}
    assert d.parameters == {"inbox": str(tmp_path.resolve() / "inbox"), "db": str(tmp_path.resolve() / "wh.duckdb")}
