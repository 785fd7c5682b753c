"""The flow's task runner, chosen by each run from its settings (`run.task_runner`, or
SHEGONG_TASK_RUNNER): on Dask the month is read as tasks spread over a cluster's workers and gives
the warehouse the local process pool gives; a runner set after the flow's module was imported is
the one used; a broken settings file stops the run with its one line."""
from __future__ import annotations

import shutil

import duckdb
import pytest

from conftest import INBOX, PERIOD, assert_same_warehouse
from flows import monthly
from flows.errors import ConfigError
from flows.ingest import sandbox


def task_names(db) -> set[str]:
    """The names of the task runs of the warehouse's last run's flow run, from Prefect's API."""
    import uuid
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    with duckdb.connect(str(db), read_only=True) as con:
        [(flow_run_id,)] = con.execute("select flow_run_id from ingest.runs").fetchall()
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(flow_run_id)])))
    return {t.name.rsplit("-", 1)[0] for t in tasks}


def test_the_dask_runner_gives_the_warehouse_the_local_pool_gives(tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    shutil.copytree(INBOX, inbox)
    local, dask = tmp_path / "local.duckdb", tmp_path / "dask.duckdb"
    monthly.monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(local))
    assert "read_files" in task_names(local) and "read_batch" not in task_names(local)
    # Set after flows.monthly was imported (as a test, or `shegong run --settings`, would): the run
    # reads it when it starts.
    monkeypatch.setenv("SHEGONG_TASK_RUNNER", "dask")
    # Two files a task: the nine files become five tasks, combined as the province's 17 are.
    monkeypatch.setattr(sandbox, "TASK_FILES", 2)
    runner = monthly.task_runner()
    assert type(runner).__name__ == "DaskTaskRunner"
    summary = monthly.monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(dask))
    assert (summary["files"], summary["files_reused"]) == (9, 0)
    assert "read_batch" in task_names(dask) and "read_files" not in task_names(dask)
    assert_same_warehouse(local, dask)


def test_a_broken_settings_file_stops_the_run_with_one_line(tmp_path, monkeypatch):
    """Not the local runner in its place: the run (here a call of the flow, as `shegong run`
    makes it) raises the ConfigError naming the file, before any work."""
    broken = tmp_path / "settings.toml"
    broken.write_text("[registry\nunits = 'units.csv'\n", encoding="utf-8")
    monkeypatch.setenv("SHEGONG_SETTINGS", str(broken))
    db = tmp_path / "warehouse.duckdb"
    with pytest.raises(ConfigError) as stopped:
        monthly.monthly_rollup(period=PERIOD, inbox=str(INBOX), db=str(db))
    assert str(stopped.value).startswith(f"cannot read {broken}: ")
    assert "\n" not in str(stopped.value)
    assert not db.exists()
