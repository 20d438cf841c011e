"""LLM configurations no replica can serve are load-time errors at the field to change:
a token budget below the largest prompt with chunked prefill off, and a request larger
than a replica's KV cache. `run` and `validate --configs` refuse them alike, with
FILE:LINE: field: message and exit 1, before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from trustkit import assert_ok, dump, error_lines, invoke, write

from accelsim.runner import load_checked

KV_TOKENS = 939_155  # llm-dense-8b on one gpu-like-gen2-hbm chip at kv_memory_fraction 0.9


def llm_scenario(**workload: Any) -> dict[str, Any]:
    """A short chat service of the shipped 8B model on one shipped GPU-like chip, with
    chunking off and a 4096-token budget; ``workload`` replaces workload fields."""
    return {
        "name": "llm-limits",
        "simulation": {"duration_s": 2, "warmup_s": 0.5, "seed": 1},
        "workloads": {
            "chat": {
                "kind": "llm",
                "model": "llm-dense-8b",
                "traffic": {"kind": "poisson", "rate_per_s": 2},
                "prompt_tokens": {"kind": "uniform", "low": 100, "high": 2000},
                "output_tokens": {"kind": "fixed", "value": 20},
                **workload,
            }
        },
        "pools": {
            "gpu": {
                "chip": "gpu-like-gen2-hbm",
                "count": 1,
                "serves": ["chat"],
                "continuous_batching": {"max_batch_tokens": 4096, "chunked_prefill": False},
            }
        },
    }


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def refused(path: Path) -> list[str]:
    """The error lines of `run` on a scenario, after checking `validate --configs` gives
    the same ones."""
    lines = error_lines(invoke("run", path, "-q"), path)
    assert error_lines(invoke("validate", "--configs", path), path) == lines
    return lines


def test_a_fitting_scenario_runs(tmp_path: Path) -> None:
    path = write(tmp_path / "ok.yaml", dump(llm_scenario()))
    assert_ok(invoke("run", path, "-q"))


@pytest.mark.parametrize(
    ("workload", "largest", "source"),
    [
        (
            {"prompt_tokens": {"kind": "lognormal", "median": 1000, "sigma": 0.8, "max": 16000}},
            16000,
            "workloads.chat.prompt_tokens.max 16000",
        ),
        (
            {"prompt_tokens": {"kind": "uniform", "low": 10, "high": 5000}},
            5000,
            "workloads.chat.prompt_tokens.high 5000",
        ),
        (
            {"prompt_tokens": {"kind": "empirical", "quantiles": [[0, 10], [1, 4097]]}},
            4097,
            "workloads.chat.prompt_tokens.quantiles 4097",
        ),
        # Without a max of its own, a lognormal counts as reaching its one-in-a-million
        # quantile: 1000 x exp(0.8 x 4.7534) = 44,824 (not its default max of 10^6).
        (
            {"prompt_tokens": {"kind": "lognormal", "median": 1000, "sigma": 0.8}},
            44824,
            "workloads.chat.prompt_tokens 44824, its one-in-a-million quantile as it sets no max",
        ),
        # A contemplating aggregation reads the prompt and every branch's output.
        (
            {
                "modes": {"instant": 0, "contemplating": 1},
                "contemplating": {
                    "branches": 3,
                    "branch_output_tokens": {"kind": "fixed", "value": 700},
                    "aggregation_output_tokens": {"kind": "fixed", "value": 10},
                },
            },
            4100,
            "workloads.chat.prompt_tokens.high 2000 + 3 branches x "
            "workloads.chat.contemplating.branch_output_tokens.value 700",
        ),
    ],
    ids=["lognormal-max", "uniform", "empirical", "lognormal-no-max", "aggregation"],
)
def test_a_prompt_over_the_token_budget_without_chunking_is_refused(
    tmp_path: Path, workload: dict[str, Any], largest: int, source: str
) -> None:
    path = write(tmp_path / "scenario.yaml", dump(llm_scenario(**workload)))
    (line,) = refused(path)
    where = f"error: {path}:{line_of(path, 'max_batch_tokens')}: "
    assert line.startswith(where + "pools.gpu.continuous_batching.max_batch_tokens: 4096 tokens ")
    assert f"up to {largest} tokens ({source})" in line
    assert "with chunked_prefill false" in line
    assert f"set max_batch_tokens to at least {largest}, or chunked_prefill: true" in line


def test_chunking_or_a_big_enough_budget_serves_the_same_prompts(tmp_path: Path) -> None:
    prompts = {"kind": "lognormal", "median": 1000, "sigma": 0.8, "max": 16000}
    for batching in ({"chunked_prefill": True}, {"max_batch_tokens": 16000}):
        data = llm_scenario(prompt_tokens=prompts)
        data["pools"]["gpu"]["continuous_batching"].update(batching)
        load_checked(write(tmp_path / "scenario.yaml", dump(data)))


def test_a_trace_prompt_over_the_budget_names_its_row(tmp_path: Path) -> None:
    trace = write(
        tmp_path / "trace.csv",
        "timestamp_s,prompt_tokens,output_tokens\n0,100,5\n0.5,6000,5\n1,300,5\n",
    )
    data = llm_scenario(traffic={"kind": "trace", "path": "trace.csv"})
    path = write(tmp_path / "scenario.yaml", dump(data))
    (line,) = refused(path)
    assert line.startswith(
        f"error: {path}:{line_of(path, 'max_batch_tokens')}: "
        "pools.gpu.continuous_batching.max_batch_tokens: 4096 tokens "
    )
    assert f"(prompt_tokens 6000 in data row 2 of {trace})" in line


@pytest.mark.parametrize("policy", ["reserve", "preempt"])
def test_a_request_larger_than_the_kv_cache_is_refused(tmp_path: Path, policy: str) -> None:
    # The prompt fits the budget's chunks, but prompt + thinking + answer (900,000 +
    # 40,000 + 20 tokens) needs more KV than the replica's 939,155: the engine would
    # reject such a request whatever the policy.
    data = llm_scenario(
        prompt_tokens={"kind": "uniform", "low": 100, "high": 900_000},
        modes={"instant": 1, "thinking": 1},
        thinking={"reasoning_tokens": {"kind": "fixed", "value": 40_000}},
    )
    data["pools"]["gpu"]["continuous_batching"] = {"kv_policy": policy}
    path = write(tmp_path / "scenario.yaml", dump(data))
    (line,) = refused(path)
    assert line.startswith(
        f"error: {path}:{line_of(path, '  gpu:')}: pools.gpu.chips_per_replica: "
        f"a replica of 1 gpu-like-gen2-hbm chip(s) holds {KV_TOKENS} KV tokens of llm-dense-8b, "
        "fewer than a thinking request of workload chat can need: 940020 "
        "(workloads.chat.prompt_tokens.high 900000 + "
        "workloads.chat.thinking.reasoning_tokens.value 40000 + "
        "workloads.chat.output_tokens.value 20)"
    ), line
    assert "raise chips_per_replica or continuous_batching.kv_memory_fraction" in line
    # Two chips per replica hold it.
    data["pools"]["gpu"].update(count=2, chips_per_replica=2)
    load_checked(write(tmp_path / "scenario.yaml", dump(data)))


def test_both_problems_are_reported_at_once(tmp_path: Path) -> None:
    data = llm_scenario(prompt_tokens={"kind": "fixed", "value": 950_000})
    path = write(tmp_path / "scenario.yaml", dump(data))
    fields = [line.split(": ")[2] for line in refused(path)]
    assert fields == [
        "pools.gpu.continuous_batching.max_batch_tokens",
        "pools.gpu.chips_per_replica",
    ]


def test_images_and_every_mode_count_towards_the_largest_sequences() -> None:
    from accelsim.model.checks import largest_sequences
    from helpers import llm, llm_resolved

    resolved = llm_resolved(
        rate_per_s=1,
        prompt={"kind": "uniform", "low": 10, "high": 300},
        output={"kind": "fixed", "value": 40},
        modes={"instant": 1, "thinking": 1, "contemplating": 1},
        extra={
            "multimodal": {"probability": 0.5, "images": 2},
            "thinking": {"reasoning_tokens": {"kind": "fixed", "value": 500}},
            "contemplating": {
                "branches": 4,
                "branch_output_tokens": {"kind": "uniform", "low": 1, "high": 60},
                "aggregation_output_tokens": {"kind": "fixed", "value": 30},
            },
        },
        the_model=llm(vision={"params": 3e8, "tokens_per_image": 576}),
    )
    prompt = 300 + 2 * 576
    assert [(s.what, s.prompt.count, s.output.count) for s in largest_sequences(resolved, "w")] == [
        ("an instant request", prompt, 40),
        ("a thinking request", prompt, 540),
        ("a contemplating branch", prompt, 60),
        ("a contemplating aggregation", prompt + 4 * 60, 30),
    ]
