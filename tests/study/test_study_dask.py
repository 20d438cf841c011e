"""The Dask backend runs the same worker function and gives the same rows as local."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from studykit import assert_ok, invoke, rows_of, without_timing, write_study

from accelsim.config.study import load_study
from accelsim.study.executors import run_sweep
from accelsim.study.plan import make_plan

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None,
    reason="dask.distributed is not installed (pip install -e '.[dask]')",
)

STUDY = """\
base: scenario.yaml
axes:
  - grid:
      pools.p.count: [1, 2]
  - zip:
      workloads.w.traffic.rate_per_s: [1500, 2500]
      pools.p.batching.max_batch_items: [16, 64]
seeds: {replicates: 2}
"""


def test_a_local_dask_cluster_gives_the_same_rows_as_local_processes(tmp_path: Path) -> None:
    plan = make_plan(load_study(write_study(tmp_path, STUDY)))
    local = run_sweep(plan, tmp_path / "local", backend="local", workers=2)
    dask = run_sweep(plan, tmp_path / "dask", backend="dask", workers=2, dask_processes=False)
    assert dask.ran == local.ran == len(plan.runs) == 8
    assert dask.failed == local.failed == 0
    # Same runs, seeds and metric values; only the wall time may differ.
    assert [without_timing(r) for r in dask.rows] == [without_timing(r) for r in local.rows]
    assert {r["seed"] for r in dask.rows} == {3, 4}


def test_the_sweep_command_uses_a_dask_scheduler_address(tmp_path: Path) -> None:
    from distributed import LocalCluster

    study = write_study(tmp_path, STUDY)
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        result = invoke(
            "sweep", study, "--out", tmp_path / "out", "--scheduler", cluster.scheduler_address
        )
        assert_ok(result)
        assert "Dask backend" in result.stderr
    rows = rows_of(tmp_path / "out")
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)
