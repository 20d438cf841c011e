"""Build small chips, models and scenarios in memory for tests."""

from __future__ import annotations

import copy
from typing import Any

from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import Chip, LLMModel, RankingModel, Scenario
from accelsim.validation.reference import REFERENCE_CHIP, REFERENCE_MODEL, single_pool_scenario

# The reference chip and model of `accelsim validate`, renamed: a slow host link makes a
# batch's time almost exactly linear in its items; the tests compute values by hand from
# these numbers (see test_cost_model.py).
CHIP: dict[str, Any] = {
    **copy.deepcopy({k: v for k, v in REFERENCE_CHIP.items() if k != "description"}),
    "name": "test-chip",
}
MODEL: dict[str, Any] = {
    **copy.deepcopy({k: v for k, v in REFERENCE_MODEL.items() if k != "description"}),
    "name": "tiny-ranker",
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
    """A one-workload (``w``), one-pool (``p``) scenario with the test chip and model;
    batching is off unless given."""
    return single_pool_scenario(
        rate_per_s=rate_per_s,
        sizes=sizes,
        count=count,
        batching=batching,
        policy=policy,
        duration_s=duration_s,
        warmup_s=warmup_s,
        seed=seed,
        chip=the_chip or chip(),
        model=the_model or model(),
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
    pool = {
        "chip": "test-chip",
        "count": count,
        "chips_per_replica": chips_per_replica,
        "serves": ["w"],
        "continuous_batching": batching or {},
    }
    return _llm_scenario(
        "llm-test",
        _llm_workload(rate_per_s, prompt, output, modes, extra or {}),
        {"p": pool},
        {"p": the_chip or chip()},
        the_model or llm(),
        {"duration_s": duration_s, "warmup_s": warmup_s, "seed": seed},
        policy,
    )


def _llm_workload(
    rate_per_s: float,
    prompt: dict[str, Any],
    output: dict[str, Any],
    modes: dict[str, Any] | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Workload ``w`` of the tiny LLM under Poisson traffic."""
    workload: dict[str, Any] = {
        "kind": "llm",
        "model": "tiny-llm",
        "traffic": {"kind": "poisson", "rate_per_s": rate_per_s},
        "prompt_tokens": prompt,
        "output_tokens": output,
        **extra,
    }
    if modes is not None:
        workload["modes"] = modes
    return workload


def _llm_scenario(
    name: str,
    workload: dict[str, Any],
    pools: dict[str, dict[str, Any]],
    chips: dict[str, Chip],
    model: LLMModel,
    simulation: dict[str, Any],
    policy: str,
) -> ResolvedScenario:
    scenario = Scenario.model_validate(
        {
            "name": name,
            "simulation": simulation,
            "workloads": {"w": workload},
            "pools": pools,
            "router": {"policy": policy},
        }
    )
    return ResolvedScenario(
        scenario=scenario, source="<test>", chips=chips, models={"w": model}, traces={}
    )


def disagg_resolved(
    *,
    rate_per_s: float,
    prompt: dict[str, Any],
    output: dict[str, Any],
    link: dict[str, Any],
    layerwise: bool = False,
    prefill_count: int = 1,
    decode_count: int = 1,
    prefill_batching: dict[str, Any] | None = None,
    decode_batching: dict[str, Any] | None = None,
    modes: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    duration_s: float = 60.0,
    warmup_s: float = 5.0,
    seed: int = 1,
    prefill_chip: Chip | None = None,
    decode_chip: Chip | None = None,
    policy: str = "join_shortest_queue",
) -> ResolvedScenario:
    """One LLM workload ``w`` prefilled on pool ``pre`` and decoded on pool ``dec``."""
    split = {"prefill_pool": "pre", "decode_pool": "dec", "kv_link": link, "layerwise": layerwise}
    pools = {
        name: {
            "chip": "test-chip",
            "count": count,
            "serves": ["w"],
            "continuous_batching": batching or {},
        }
        for name, count, batching in (
            ("pre", prefill_count, prefill_batching),
            ("dec", decode_count, decode_batching),
        )
    }
    return _llm_scenario(
        "llm-disagg-test",
        _llm_workload(
            rate_per_s, prompt, output, modes, {"disaggregation": split, **(extra or {})}
        ),
        pools,
        {"pre": prefill_chip or chip(), "dec": decode_chip or chip()},
        llm(),
        {"duration_s": duration_s, "warmup_s": warmup_s, "seed": seed},
        policy,
    )
