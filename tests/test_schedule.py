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
