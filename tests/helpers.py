"""Build small chips, models and scenarios in memory for tests."""

from __future__ import annotations

import copy
from typing import Any

from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import Chip, LLMModel, RankingModel, Scenario

CHIP: dict[str, Any] = {
    "name": "test-chip",
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
    # A slow host link makes a batch's time almost exactly linear in its items.
    "host_link": {"bandwidth_bytes_per_s": 16e6, "latency_s": 0.0, "energy_per_byte_j": 0.0},
    "power": {
        "idle_w": 10.0,
        "tdp_w": 50.0,
        "energy_per_flop_j": {"bf16": 0.5e-12, "int8": 0.25e-12},
        "vector_energy_per_flop_j": 1e-12,
    },
}

MODEL: dict[str, Any] = {
    "name": "tiny-ranker",
    "dtype": "bf16",
    "dense_features": 1,
    "bottom_mlp": [4],
    "embedding_tables": [{"name": "t", "rows": 16, "dim": 4, "pooling_factor": 1, "dtype": "fp16"}],
    "interaction": {"kind": "dot"},
    "top_mlp": [1],
}


def chip(**changes: Any) -> Chip:
    data = copy.deepcopy(CHIP)
    data.update(changes)
    return Chip.model_validate(data)


def model(**changes: Any) -> RankingModel:
    data = copy.deepcopy(MODEL)
    data.update(changes)
    return RankingModel.model_validate(data)


def resolved(
    *,
    rate_per_s: float,
    sizes: dict[str, Any],
    count: int = 1,
    batching: dict[str, Any] | None = None,
    policy: str = "shared_queue",
    duration_s: float = 10.0,
    warmup_s: float = 1.0,
    seed: int = 1,
    the_chip: Chip | None = None,
    the_model: RankingModel | None = None,
) -> ResolvedScenario:
    """A one-workload, one-pool scenario with the test chip and model."""
    scenario = Scenario.model_validate(
        {
            "name": "test",
            "simulation": {"duration_s": duration_s, "warmup_s": warmup_s, "seed": seed},
            "workloads": {
                "w": {
                    "model": "tiny-ranker",
                    "traffic": {"kind": "poisson", "rate_per_s": rate_per_s},
                    "items_per_query": sizes,
                }
            },
            "pools": {
                "p": {
                    "chip": "test-chip",
                    "count": count,
                    "serves": ["w"],
                    "batching": batching
                    or {"max_batch_items": 10**8, "max_batch_queries": 1, "max_wait_s": 0},
                }
            },
            "router": {"policy": policy},
        }
    )
    return ResolvedScenario(
        scenario=scenario,
        source="<test>",
        chips={"p": the_chip or chip()},
        models={"w": the_model or model()},
        traces={},
    )


LLM: dict[str, Any] = {
    "kind": "llm",
    "name": "tiny-llm",
    "layers": 2,
    "d_model": 256,
    "heads": 4,
    "kv_heads": 2,
    "ffn_dim": 512,
    "vocab": 1000,
}


def llm(**changes: Any) -> LLMModel:
    data = copy.deepcopy(LLM)
    data.update(changes)
    return LLMModel.model_validate(data)


def llm_resolved(
    *,
    rate_per_s: float,
    prompt: dict[str, Any],
    output: dict[str, Any],
    count: int = 1,
    chips_per_replica: int = 1,
    batching: dict[str, Any] | None = None,
    modes: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    duration_s: float = 60.0,
    warmup_s: float = 5.0,
    seed: int = 1,
    the_chip: Chip | None = None,
    the_model: LLMModel | None = None,
    policy: str = "join_shortest_queue",
) -> ResolvedScenario:
    """A one-workload, one-pool LLM scenario."""
    workload: dict[str, Any] = {
        "kind": "llm",
        "model": "tiny-llm",
        "traffic": {"kind": "poisson", "rate_per_s": rate_per_s},
        "prompt_tokens": prompt,
        "output_tokens": output,
        **(extra or {}),
    }
    if modes is not None:
        workload["modes"] = modes
    scenario = Scenario.model_validate(
        {
            "name": "llm-test",
            "simulation": {"duration_s": duration_s, "warmup_s": warmup_s, "seed": seed},
            "workloads": {"w": workload},
            "pools": {
                "p": {
                    "chip": "test-chip",
                    "count": count,
                    "chips_per_replica": chips_per_replica,
                    "serves": ["w"],
                    "continuous_batching": batching or {},
                }
            },
            "router": {"policy": policy},
        }
    )
    return ResolvedScenario(
        scenario=scenario,
        source="<test>",
        chips={"p": the_chip or chip()},
        models={"w": the_model or llm()},
        traces={},
    )
