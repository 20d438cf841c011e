"""Confidential-computing mode against values computed by hand from the test chip (see
test_cost_model.py): host link 16 MB/s x 0.8 = 12.8 MB/s with no latency; DRAM 100 GB/s
x 0.8 streaming; no kernel overhead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from accelsim.config.loader import load_scenario
from accelsim.config.schema import (
    CONFIDENTIAL_LINK_BANDWIDTH_FACTOR,
    CONFIDENTIAL_LINK_LATENCY_S,
    confidential_chip,
)
from accelsim.model.llm import LLMCostModel
from accelsim.model.ranking import RankingCostModel
from accelsim.model.roofline import ChipRates, Op, Traffic, op_cost
from clirunner import assert_ok, invoke
from helpers import CHIP, chip, llm, model

LINK = {"bandwidth_bytes_per_s": 10e9, "latency_s": 2e-6, "energy_per_byte_j": 0.0}
OVERHEADS = {
    "host_link_bandwidth_factor": 0.25,
    "host_link_latency_s": 1e-3,
    "chip_to_chip_bandwidth_factor": 0.5,
    "chip_to_chip_latency_s": 3e-6,
    "dram_bandwidth_factor": 0.8,
}


def test_host_link_copy_takes_bytes_over_factored_bandwidth_plus_added_latency() -> None:
    plain = RankingCostModel(model(), chip()).batch(64).ops[0]
    cc = RankingCostModel(model(), confidential_chip(chip(confidential=OVERHEADS))).batch(64)
    moved = plain.op.bytes
    assert plain.time_s == pytest.approx(moved / 12.8e6)
    assert cc.ops[0].op.bytes == moved
    assert cc.ops[0].time_s == pytest.approx(moved / (12.8e6 * 0.25) + 1e-3)


def test_tensor_parallel_all_reduce_link_time_scales_by_one_over_the_factor() -> None:
    memory = {"dram": CHIP["memory"]["dram"]}
    plain_chip = chip(memory=memory, chip_to_chip=LINK)
    cc_chip = confidential_chip(chip(memory=memory, chip_to_chip=LINK, confidential=OVERHEADS))
    plain = {o.op.name: o for o in LLMCostModel(llm(), plain_chip, 4).decode_step(4, 100).ops}
    cc = {o.op.name: o for o in LLMCostModel(llm(), cc_chip, 4).decode_step(4, 100).ops}
    ar, ar_cc = plain["allreduce"], cc["allreduce"]
    assert ar_cc.op.bytes == ar.op.bytes
    assert ar_cc.memory_time_s["link"] == pytest.approx(ar.memory_time_s["link"] / 0.5)
    # 2 all-reduces per layer x 2 layers, 2 x (4 - 1) ring steps each, each step's latency
    # 2 us plain and 2 + 3 us confidential.
    assert ar.overhead_s == pytest.approx(4 * 6 * 2e-6)
    assert ar_cc.overhead_s == pytest.approx(4 * 6 * 5e-6)
    # DRAM streams pay the DRAM factor: the decode GEMMs read their weights 1 / 0.8 slower.
    g = "gemm.up_gate"
    assert cc[g].memory_time_s["dram"] == pytest.approx(plain[g].memory_time_s["dram"] / 0.8)


def test_a_chip_without_an_overheads_block_uses_the_documented_defaults() -> None:
    plain, cc = chip(chip_to_chip=LINK), confidential_chip(chip(chip_to_chip=LINK))
    assert cc.host_link.bandwidth_bytes_per_s == pytest.approx(16e6 * 0.08)
    assert cc.host_link.latency_s == pytest.approx(10e-6)
    assert cc.chip_to_chip is not None
    assert cc.chip_to_chip.bandwidth_bytes_per_s == pytest.approx(10e9 * 0.08)
    assert cc.chip_to_chip.latency_s == pytest.approx(2e-6 + 10e-6)
    assert cc.memory.dram == plain.memory.dram  # HBM is inside the trust boundary
    assert (CONFIDENTIAL_LINK_BANDWIDTH_FACTOR, CONFIDENTIAL_LINK_LATENCY_S) == (0.08, 10e-6)
    op = Op("s", "transfer", "vector", "bf16", 0.0, (Traffic("dram", "stream", 1e9),))
    assert op_cost(ChipRates(cc), op).time_s == op_cost(ChipRates(plain), op).time_s


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("host_link_bandwidth_factor", 0.0),
        ("chip_to_chip_bandwidth_factor", 1.5),
        ("dram_bandwidth_factor", -0.1),
        ("host_link_latency_s", -1e-6),
        ("chip_to_chip_latency_s", "-2 us"),
    ],
)
def test_factors_must_be_in_0_1_and_latencies_not_negative(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        chip(confidential={field: value})


def _scenario(pool: dict[str, object]) -> dict[str, object]:
    return {
        "simulation": {"duration_s": 1, "warmup_s": 0.1},
        "workloads": {
            "w": {
                "kind": "ranking",
                "model": "dlrm-mlp-heavy",
                "traffic": {"kind": "poisson", "rate_per_s": 10},
                "items_per_query": {"kind": "fixed", "value": 16},
            }
        },
        "pools": {"p": {"chip": "gpu-like-gen1", "count": 1, "serves": ["w"], **pool}},
    }


def test_only_a_confidential_pool_runs_the_derived_chip_and_says_so_in_its_config() -> None:
    default = load_scenario(_scenario({}))
    plain = load_scenario(_scenario({"confidential": False}))
    cc = load_scenario(_scenario({"confidential": True}))
    assert plain.chips["p"] == default.chips["p"]
    assert cc.chips["p"] == confidential_chip(default.chips["p"])
    assert "confidential" not in plain.scenario.model_dump(mode="json")["pools"]["p"]
    assert cc.scenario.model_dump(mode="json")["pools"]["p"]["confidential"] is True


def test_explain_confidential_shows_the_slower_all_reduce(tmp_path: Path) -> None:
    args = ("explain", "--chip", "gpu-like-gen2-hbm", "--model", "llm-dense-8b", "--tp", "4")
    docs = []
    for extra in ((), ("--confidential",)):
        out = tmp_path / f"explain{len(extra)}.json"
        assert_ok(invoke(*args, *extra, "--json", str(out)))
        docs.append(json.loads(out.read_text(encoding="utf-8")))
    plain, cc = ({o["name"]: o for o in d["decode"]["ops"]} for d in docs)
    assert "confidential" not in docs[0]
    assert docs[1]["confidential"]["chip_to_chip_bandwidth_factor"] == 0.08
    link = cc["allreduce"]["memory_time_s"]["link"] / plain["allreduce"]["memory_time_s"]["link"]
    assert link == pytest.approx(1 / CONFIDENTIAL_LINK_BANDWIDTH_FACTOR)
    assert cc["gemm.qkv"]["time_s"] == plain["gemm.qkv"]["time_s"]
    shown = invoke(*args, "--confidential")
    assert_ok(shown)
    assert "confidential mode: host link x0.08 bandwidth + 10 µs" in shown.stdout
