"""The Python API: runs, exports and reloads, with the numbers the command line gives.

``accelsim.run`` must return the very document ``accelsim run --json`` writes;
per-request records must agree with that document's counts; a sweep's table must
hold numbers for its quantity axes; replicate statistics are checked by hand.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import accelsim
from accelsim.errors import AccelsimError, ConfigError
from clirunner import assert_ok, err, invoke

SHORT = {"simulation.duration_s": 0.3, "simulation.warmup_s": 0.05}


def test_run_gives_the_cli_document_and_requests_that_agree_with_it(tmp_path: Path) -> None:
    result = accelsim.run("ranking-mtia-vs-gpu", overrides=SHORT, seed=4)
    cli = invoke(
        "run",
        "ranking-mtia-vs-gpu",
        "--seed",
        4,
        *(a for k, v in SHORT.items() for a in ("--set", f"{k}={v}")),
        "-q",
        "--json",
        tmp_path / "cli.json",
    )
    assert_ok(cli)
    assert result.to_json() == (tmp_path / "cli.json").read_text(encoding="utf-8")
    assert result.document["seed"] == 4 and result.scenario == "ranking-mtia-vs-gpu"

    requests = result.requests
    for name, w in result.document["workloads"].items():
        mine = requests[(requests.workload == name) & requests.in_window]
        assert len(mine) == w["offered"]
        done = mine[mine.finish_s.notna()]
        assert len(done) == w["completed"]
        assert done.latency_s.quantile(0.99) == pytest.approx(w["latency_s"]["p99"], rel=1e-12)
        assert done.latency_s.mean() == pytest.approx(w["latency_s"]["mean"], rel=1e-12)
        assert set(done.pool) == {
            p for p, pool in result.document["pools"].items() if name in pool["serves"]
        }
    pools = result.pools
    assert list(pools.index) == ["mtia", "gpu"]
    assert pools.loc["gpu", "chips"] == 2
    assert pools.loc["mtia", "energy_j"] == result.document["pools"]["mtia"]["energy_j"]
    assert (
        result.workloads.loc["feed_gpu", "latency_s.ci95.p99.high"]
        >= result.workloads.loc["feed_gpu", "latency_s.p99"]
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_requests_export_and_reload(tmp_path: Path, suffix: str) -> None:
    result = accelsim.run("llm-chat-gpu", {"simulation.duration_s": 4, "simulation.warmup_s": 1})
    path = result.save_requests(tmp_path / f"requests{suffix}")
    back = accelsim.read_table(path)
    expected = result.requests
    assert list(back.columns) == list(expected.columns)
    assert len(back) == len(expected) > 0
    np.testing.assert_allclose(back.ttft_s, expected.ttft_s, rtol=1e-15)
    assert (back["mode"] == expected["mode"]).all()
    w = result.document["workloads"]["chat"]
    assert int(back.in_window.sum()) == w["offered"]
    streamed = back[back.in_window & back.finish_s.notna() & (back.output_tokens > 1)]
    assert streamed.tpot_s.quantile(0.5) == pytest.approx(w["tpot_s"]["p50"], rel=1e-12)


def test_a_scenario_from_a_mapping_with_extends(tmp_path: Path) -> None:
    data = {
        "extends": "ranking-mtia-vs-gpu",
        "simulation": {"duration_s": 0.2, "warmup_s": 0.05},
        "pools": {"gpu": {"count": 3}},
    }
    result = accelsim.run(data, keep_requests=False)
    assert result.document["config"]["pools"]["gpu"]["count"] == 3
    assert result.document["scenario"] == "ranking-mtia-vs-gpu"
    with pytest.raises(AccelsimError, match="keep_requests"):
        _ = result.requests
    with pytest.raises(ConfigError, match=r"^<dict>: pools\.gpu\.chip: no chip named 'gpu-x'"):
        accelsim.run({**data, "pools": {"gpu": {"chip": "gpu-x"}}})
    with pytest.raises(ConfigError, match=r"<dict>: workloads: Field required"):
        accelsim.run({"simulation": {"duration_s": 1}})


def test_explain_gives_its_ops_as_a_frame() -> None:
    ranking = accelsim.explain("mtia-like-gen2", "dlrm-mlp-heavy", batch=256)
    ops = ranking.ops
    assert ops.phase.isna().all()
    assert ops.time_s.sum() == pytest.approx(ranking.document["totals"]["time_s"], rel=1e-9)
    assert "memory_time_s.dram" in ops.columns
    llm = accelsim.explain("gpu-like-gen2-hbm", "llm-dense-8b", batch=8, context_tokens=512)
    assert list(dict.fromkeys(llm.ops.phase)) == ["prefill", "decode"]
    decode = llm.ops[llm.ops.phase == "decode"]
    assert decode.time_s.sum() == pytest.approx(
        llm.document["decode"]["totals"]["time_s"], rel=1e-9
    )
    assert llm.lesson and json.loads(llm.to_json())["kind"] == "llm"


STUDY = """\
base: ranking-mtia-vs-gpu
set:
  simulation.duration_s: 0.1
  simulation.warmup_s: 0.02
axes:
  - grid:
      pools.gpu.batching.max_wait_s: [0.5 ms, 2 ms]
      pools.gpu.chip: [gpu-like-gen1, gpu-like-gen2-hbm]
seeds: {replicates: 2}
"""


def test_sweep_and_load_study_hold_numbers_on_quantity_axes(tmp_path: Path) -> None:
    study = tmp_path / "tiny.yaml"
    study.write_text(STUDY, encoding="utf-8")
    frame = accelsim.sweep(study, tmp_path / "out", workers=1)
    assert len(frame) == 8 and (frame.status == "ok").all()
    wait = frame["axis.pools.gpu.batching.max_wait_s"]
    assert pd.api.types.is_float_dtype(wait) and sorted(set(wait)) == [0.0005, 0.002]
    assert set(frame["axis.pools.gpu.chip"]) == {"gpu-like-gen1", "gpu-like-gen2-hbm"}
    again = accelsim.load_study(tmp_path / "out")
    pd.testing.assert_frame_equal(frame, again)

    # the CLI export writes the same numbers
    exported = invoke("export", tmp_path / "out", "--csv", tmp_path / "runs.csv")
    assert_ok(exported)
    csv = pd.read_csv(tmp_path / "runs.csv")
    assert sorted(set(csv["axis.pools.gpu.batching.max_wait_s"])) == [0.0005, 0.002]

    key = "workloads.feed_gpu.latency_s.p99"
    summary = accelsim.replicate_summary(frame, [key])
    assert len(summary) == 4
    point = frame[(wait == 0.002) & (frame["axis.pools.gpu.chip"] == "gpu-like-gen1")][key]
    a, b = point.tolist()
    row = summary.loc[(0.002, "gpu-like-gen1")]
    assert row[(key, "mean")] == pytest.approx((a + b) / 2)
    assert row[(key, "std")] == pytest.approx(abs(a - b) / math.sqrt(2))
    assert row[(key, "count")] == 2


def test_run_requests_option_writes_and_refuses_inputs(tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"
    result = invoke("run", "--set", "simulation.duration_s=0.2", "--requests", out)
    assert_ok(result)
    back = pd.read_parquet(out)
    assert set(back.workload) == {"feed_mtia", "feed_gpu"}
    assert f"wrote {out} ({len(back)} requests)" in err(result)

    bad = invoke("run", "--requests", tmp_path / "r.txt")
    assert bad.exit_code == 1 and "write a .csv or a .parquet file (got '.txt')" in err(bad)

    trace = Path(__file__).resolve().parents[2] / "workloads" / "traces" / "ranking-sample.csv"
    refused = invoke("run", "ranking-trace-replay", "--requests", trace)
    assert refused.exit_code == 1
    assert "--requests" in err(refused) and "Traceback" not in refused.output
    assert trace.read_text(encoding="utf-8").startswith("timestamp_s")
