"""A toy plan for the planner's tests, and a cache holding its characterisation, injected
(no simulation): see test_plan_cli.py for the fleet it gives, computed by hand."""

from __future__ import annotations

from pathlib import Path

from accelsim.config.fleet_plan import load_plan
from accelsim.planner.characterise import Cache, entries

PLAN = """\
description: toy plan
services:
  web:
    model: dlrm-mlp-heavy
    items_per_query: {kind: fixed, value: 100}
    sla: {latency_s: 20 ms}
    peak_rate_per_s: 10500 /s
candidates:
  mtia:
    chip: mtia-like-gen2
    serves:
      web: [{batching: {max_batch_items: 512}}]
  gpu:
    chip: gpu-like-gen2-hbm
    serves:
      web: [{}]
facility:
  power_budget_w: 1 kW
  pue: 1.5
  energy_usd_per_mwh: 0
objective: cost
verify: {max_replicas: 4}
"""

INJECTED = {"mtia": (1000.0, 50.0), "gpu": (5000.0, 300.0)}  # capacity /s, flat power W


def toy(tmp_path: Path, text: str = PLAN) -> tuple[Path, Path]:
    """The toy plan file and a cache holding its (injected) characterisation."""
    plan = tmp_path / "toy.yaml"
    plan.write_text(text, encoding="utf-8")
    cache = Cache(tmp_path / "cache")
    for entry in entries(load_plan(str(plan))):
        capacity, power = INJECTED[entry.candidate]
        cache.put(
            {
                "key": entry.key,
                "service": entry.service,
                "candidate": entry.candidate,
                "config": entry.config,
                "capacity_per_s": capacity,
                "power_at_capacity_w": power,
                "power_at_half_w": power,
                "floor_w": power,
                "slope_w_per_rps": 0.0,
            }
        )
    return plan, cache.folder
