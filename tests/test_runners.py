"""The flow on a Dask task runner (`run.task_runner = "dask"`): the month read as tasks spread over
a cluster's workers gives the warehouse the local process pool gives."""
from __future__ import annotations

import shutil

from conftest import INBOX, PERIOD, assert_same_warehouse
from flows import monthly
from flows.ingest import sandbox
def test_the_dask_runner_gives_the_warehouse_the_local_pool_gives(tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    shutil.copytree(INBOX, inbox)
    local, dask = tmp_path / "local.duckdb", tmp_path / "dask.duckdb"
    monthly.monthly_rollup(period=PERIOD, inbox=str(inbox), db=str(local))
    monkeypatch.setenv("SHEGONG_TASK_RUNNER", "dask")
    # Two files a task: the nine files become five tasks, combined as the province's 17 are.
    monkeypatch.setattr(sandbox, "TASK_FILES", 2)
    runner = monthly.task_runner()
    assert type(runner).__name__ == "DaskTaskRunner"
    summary = monthly.monthly_rollup.with_options(task_runner=runner)(period=PERIOD, inbox=str(inbox), db=str(dask))
    assert (summary["files"], summary["files_reused"]) == (9, 0)
    assert_same_warehouse(local, dask)
