"""Power by phase on the datasheet reference chips, against published characterisations.

The figures the bounds come from (each in validation/reference/public-measurements.md):

* Splitwise (Patel et al., ISCA 2024), as its simulator's power model states it
  (row 81): the prompt phase draws the TDP (A100 400 W, H100 700 W), the token
  phase 250 W on the A100 (0.63 of TDP) and 380 W on the H100 (0.54).
* An H200 (700 W) decode study (row 88): decode draws 137-300 W, 0.20-0.43 of TDP.
* Splitwise's power-capped H100 rows (perf_model.csv, ``h100-80gb-pcap``, a DGX-H100
  capped to 70% of its power, row 82): prompt time 1.30x the uncapped, token time
  1.00x: a cap slows prefill and leaves decode alone.

accelsim caps a chip on an iteration's average power (model/power.py), while a GPU's
power manager acts within a kernel, so a 70% cap slows accelsim's prefill less than
Splitwise measured (1.06-1.10x against 1.30x on long prompts, docs/fidelity.md); the
shape holds and is pinned here, with the cited figures as the bounds' reasons.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from accelsim.config.loader import load_chip, load_model
from accelsim.config.schema import LLMModel
from accelsim.model.llm import LLMCostModel
from accelsim.model.power import ClockedCost, ClockPolicy, clocked
from accelsim.model.roofline import BatchCost

REFERENCE = Path(__file__).resolve().parents[2] / "validation" / "reference"
CHIPS = ("a100-sxm.yaml", "h100-sxm.yaml")
UNCAPPED = 1e9  # W: a cap no iteration reaches


def llama_70b(chip_file: str, tp: int) -> tuple[LLMCostModel, float, float]:
    chip = load_chip(str(REFERENCE / chip_file))
    model = load_model(str(REFERENCE / "llama-2-70b.yaml"))
    assert isinstance(model, LLMModel)
    return LLMCostModel(model, chip, tp), chip.power.tdp_w, chip.power.idle_w


def run(cost: BatchCost, idle_w: float, cap_w: float) -> ClockedCost:
    return clocked(cost, idle_w, ClockPolicy(cap_w=cap_w))


@pytest.mark.parametrize("chip_file", CHIPS)
def test_long_prefill_draws_near_tdp_and_decode_well_below(chip_file: str) -> None:
    cost, tdp, idle = llama_70b(chip_file, tp=2)
    prefill = run(cost.prefill(2048), idle, UNCAPPED).power_w(idle) / tdp
    # Splitwise: the prompt phase runs at the TDP.
    assert prefill >= 0.8, prefill
    for batch, context in ((1, 192), (64, 1152)):
        decode = run(cost.decode_step(batch, context), idle, UNCAPPED).power_w(idle) / tdp
        # Splitwise's token phase 0.54-0.63 of TDP; the H200 study 0.20-0.43.
        assert 0.15 <= decode <= 0.65, (batch, decode)
        assert decode < prefill - 0.25


@pytest.mark.parametrize("chip_file", CHIPS)
@pytest.mark.parametrize("tp", [2, 4])
def test_a_cap_slows_prefill_and_leaves_decode_alone(chip_file: str, tp: int) -> None:
    cost, tdp, idle = llama_70b(chip_file, tp)
    prefill, decode = cost.prefill(2048), cost.decode_step(64, 1152)

    def slowdown(batch: BatchCost, share_of_tdp: float) -> float:
        return run(batch, idle, share_of_tdp * tdp).time_s / run(batch, idle, UNCAPPED).time_s

    # Splitwise's capped H100: token time unchanged at 70% of the power.
    assert slowdown(decode, 0.7) <= 1.01
    assert slowdown(decode, 0.5) <= 1.01
    # ... and prompt time 1.30x: accelsim's prefill slows at 70%, and a lot at half TDP.
    assert slowdown(prefill, 0.7) > 1.0
    assert slowdown(prefill, 0.5) >= 1.12
    assert slowdown(prefill, 0.5) > slowdown(prefill, 0.7)
