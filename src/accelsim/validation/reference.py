"""Reference chip, model and scenarios, built in memory for the checks and for tests.

The reference chip has a slow host link, so a batch's time is (almost exactly)
linear in its items and service times follow the query sizes; the reference
model is a tiny ranking model. :func:`single_pool_scenario` and
:func:`fleet_scenario` put them into a resolved scenario without any file, and
:func:`cost_model` gives the memoised cost model of a chip and a model.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import Chip, RankingModel, Scenario
from accelsim.model.ranking import RankingCostModel

# A small chip whose host link is slow, so that a batch's time is (almost exactly)
# linear in its items: service times then follow the query sizes.
REFERENCE_CHIP: dict[str, Any] = {
    "name": "reference-chip",
    "description": "Built-in reference chip of `accelsim validate` (hypothetical).",
    "compute": {
        "matrix_flops_per_s": {"bf16": 100e12, "int8": 200e12},
        "vector_flops_per_s": 10e12,
        "gemm_efficiency": 0.5,
        "vector_efficiency": 0.5,
        "kernel_overhead_s": 0.0,
        "clock_hz": 1e9,
    },
    "memory": {
        "sram": {
            "capacity_bytes": 64 * 2**20,
            "bandwidth_bytes_per_s": 1e12,
            "stream_efficiency": 1.0,
            "random_efficiency": 0.5,
            "access_granularity_bytes": 32,
            "energy_per_byte_j": 1e-12,
        },
        "dram": {
            "capacity_bytes": 16 * 2**30,
            "bandwidth_bytes_per_s": 100e9,
            "stream_efficiency": 0.8,
            "random_efficiency": 0.4,
            "access_granularity_bytes": 64,
            "energy_per_byte_j": 20e-12,
        },
    },
    "host_link": {"bandwidth_bytes_per_s": 16e6, "latency_s": 0.0, "energy_per_byte_j": 0.0},
    "power": {
        "idle_w": 10.0,
        "tdp_w": 50.0,
        "energy_per_flop_j": {"bf16": 0.5e-12, "int8": 0.25e-12},
        "vector_energy_per_flop_j": 1e-12,
    },
}

REFERENCE_MODEL: dict[str, Any] = {
    "name": "reference-ranker",
    "description": "Built-in tiny ranking model of `accelsim validate`.",
    "dtype": "bf16",
    "dense_features": 1,
    "bottom_mlp": [4],
    "embedding_tables": [{"name": "t", "rows": 16, "dim": 4, "pooling_factor": 1, "dtype": "fp16"}],
    "interaction": {"kind": "dot"},
    "top_mlp": [1],
}


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def reference_chip(**changes: Any) -> Chip:
    """The reference chip; nested mappings in ``changes`` merge key by key."""
    return Chip.model_validate(_merged(REFERENCE_CHIP, changes))


def reference_model(**changes: Any) -> RankingModel:
    """The reference ranking model; nested mappings in ``changes`` merge key by key."""
    return RankingModel.model_validate(_merged(REFERENCE_MODEL, changes))


NO_BATCHING: dict[str, Any] = {"max_batch_items": 10**8, "max_batch_queries": 1, "max_wait_s": 0}


def single_pool_scenario(
    *,
    rate_per_s: float,
    sizes: dict[str, Any],
    count: int = 1,
    batching: dict[str, Any] | None = None,
    policy: str = "shared_queue",
    duration_s: float = 10.0,
    warmup_s: float = 1.0,
    seed: int = 1,
    chip: Chip | None = None,
    model: RankingModel | None = None,
) -> ResolvedScenario:
    """One Poisson workload ``w`` served by one pool ``p`` (batching off by default)."""
    return fleet_scenario(
        workloads={"w": {"rate_per_s": rate_per_s, "sizes": sizes}},
        pools={
            "p": {
                "chip": chip or reference_chip(),
                "count": count,
                "serves": ["w"],
                "batching": NO_BATCHING if batching is None else batching,
            }
        },
        policy=policy,
        duration_s=duration_s,
        warmup_s=warmup_s,
        seed=seed,
        model=model,
    )


def fleet_scenario(
    *,
    workloads: dict[str, dict[str, Any]],
    pools: dict[str, dict[str, Any]],
    policy: str = "join_shortest_queue",
    duration_s: float = 10.0,
    warmup_s: float = 1.0,
    seed: int = 1,
    model: RankingModel | None = None,
) -> ResolvedScenario:
    """A scenario built in memory, without files.

    ``workloads``: name -> {rate_per_s, sizes[, model, sla]}; ``pools``: name ->
    {chip (a Chip), count, serves[, batching]}.
    """
    scenario = Scenario.model_validate(
        {
            "name": "validation",
            "simulation": {"duration_s": duration_s, "warmup_s": warmup_s, "seed": seed},
            "workloads": {
                name: {
                    "model": "built-in",
                    "traffic": {"kind": "poisson", "rate_per_s": w["rate_per_s"]},
                    "items_per_query": w["sizes"],
                    **({"sla": w["sla"]} if "sla" in w else {}),
                }
                for name, w in workloads.items()
            },
            "pools": {
                name: {
                    "chip": p["chip"].name,
                    "count": p["count"],
                    "serves": p["serves"],
                    **({"batching": p["batching"]} if "batching" in p else {}),
                }
                for name, p in pools.items()
            },
            "router": {"policy": policy},
        }
    )
    return ResolvedScenario(
        scenario=scenario,
        source="<validation>",
        chips={name: p["chip"] for name, p in pools.items()},
        models={
            name: w.get("model") or model or reference_model() for name, w in workloads.items()
        },
        traces={},
    )


@lru_cache(maxsize=8)
def _cost_model(chip_json: str, model_json: str) -> RankingCostModel:
    return RankingCostModel(
        RankingModel.model_validate_json(model_json), Chip.model_validate_json(chip_json)
    )


def cost_model(chip: Chip, model: RankingModel) -> RankingCostModel:
    """The memoised cost model of ``model`` on ``chip``."""
    return _cost_model(chip.model_dump_json(), model.model_dump_json())
