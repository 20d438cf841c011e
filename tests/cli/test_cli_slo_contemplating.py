"""Bad SLO classes and contemplating pools: one line naming the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from clikit import assert_ok, error_lines, invoke, json_stdout, line_of, stdout, write

SCENARIO = """\
name: bad
workloads:
  side:
    kind: llm
    model: llm-dense-8b
    traffic: {kind: poisson, rate_per_s: 1}
    prompt_tokens: {kind: fixed, value: 10}
    output_tokens: {kind: fixed, value: 10}
  chat:
    kind: llm
    model: llm-dense-8b
    traffic: {kind: poisson, rate_per_s: 1}
    prompt_tokens: {kind: fixed, value: 100}
    output_tokens: {kind: fixed, value: 10}
    modes: {instant: 0, contemplating: 1}
    contemplating:
      branches: 2
      branch_output_tokens: {kind: fixed, value: 10}
      aggregation_output_tokens: {kind: fixed, value: 10}
      branch_pool: BRANCH_POOL
    slo:
      classes:
        - {name: premium, share: SHARE, priority: 0}
        - {name: NAME, share: 0.8, priority: 1}
pools:
  one:
    chip: gpu-like-gen2-hbm
    count: 1
    serves: [chat]
  other:
    chip: gpu-like-gen2-hbm
    count: 1
    serves: [chat]
  elsewhere:
    chip: gpu-like-gen2-hbm
    count: 1
    serves: [side]
"""


def scenario(tmp: Path, share: str = "0.2", name: str = "standard", pool: str = "one") -> Path:
    text = SCENARIO.replace("SHARE", share).replace("NAME", name).replace("BRANCH_POOL", pool)
    return write(tmp / "scenario.yaml", text)


def test_a_good_file_validates(tmp_path: Path) -> None:
    result = invoke("validate", "--configs", scenario(tmp_path))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("changes", "needle", "field", "words"),
    [
        ({"share": "0.3"}, "slo:", "workloads.chat.slo", ("sum to 1.1",)),
        ({"name": "premium"}, "slo:", "workloads.chat.slo", ("premium repeated",)),
        ({"share": "0"}, "share: 0,", "workloads.chat.slo.classes.0.share", ()),
        (
            {"pool": "elsewhere"},
            "branch_pool:",
            "workloads.chat.contemplating.branch_pool",
            ("'elsewhere' does not serve workload chat", "one, other"),
        ),
        ({"pool": "nowhere"}, "branch_pool:", "workloads.chat.contemplating.branch_pool", ()),
    ],
)
def test_bad_classes_and_pools_are_one_located_line(
    tmp_path: Path, changes: dict[str, str], needle: str, field: str, words: tuple[str, ...]
) -> None:
    path = scenario(tmp_path, **changes)
    lines = error_lines(invoke("run", path))
    assert len(lines) == 1, lines
    prefix = f"error: {path}:{line_of(path, needle)}: {field}: "
    assert lines[0].startswith(prefix), (prefix, lines)
    for word in words:
        assert word in lines[0], (word, lines)


SHORT = ("--set", "simulation.duration_s=4", "--set", "simulation.warmup_s=1")


def test_the_shipped_slo_scenario_shows_a_row_and_an_sla_per_class() -> None:
    result = invoke("run", "llm-slo-classes", *SHORT)
    assert_ok(result)
    text = stdout(result)
    assert "class premium" in text and "class standard" in text
    doc = json_stdout(invoke("run", "llm-slo-classes", *SHORT, "-q", "--json", "-"))
    classes = doc["workloads"]["chat"]["by_class"]
    assert [c["sla"]["ttft_s"] for c in classes.values()] == [0.2, 1.0]
    assert doc["config"]["workloads"]["chat"]["slo"]["preempt_lower"] is True


def test_the_shipped_split_pools_scenario_runs_branches_and_aggregations_apart() -> None:
    # Fan-outs take seconds: a 15 s window sees some complete.
    longer = ("--set", "simulation.duration_s=15", "--set", "simulation.warmup_s=1")
    doc = json_stdout(invoke("run", "llm-contemplating-split-pools", *longer, "-q", "--json", "-"))
    mode = doc["workloads"]["ask"]["by_mode"]["contemplating"]
    assert mode["fan_outs"] > 0
    assert 0 <= mode["straggler_share"]["mean"] < 1
    pools = doc["pools"]
    assert pools["branches"]["output_tokens"] > 0 and pools["aggregations"]["output_tokens"] > 0
    total = pools["branches"]["output_tokens"] + pools["aggregations"]["output_tokens"]
    assert total == doc["workloads"]["ask"]["output_tokens"]


def test_classes_refuse_a_closed_loop(tmp_path: Path) -> None:
    text = SCENARIO.replace("SHARE", "0.2").replace("NAME", "standard")
    text = text.replace("BRANCH_POOL", "one").replace(
        "    traffic: {kind: poisson, rate_per_s: 1}\n    prompt_tokens: {kind: fixed, value: 100}",
        "    traffic: {kind: closed_loop, users: 2}\n    prompt_tokens: {kind: fixed, value: 100}",
    )
    path = write(tmp_path / "scenario.yaml", text)
    lines = error_lines(invoke("run", path))
    assert lines == [
        f"error: {path}:{line_of(path, 'slo:')}: workloads.chat.slo: SLO classes are not "
        "supported with closed_loop traffic: use poisson, bursty, diurnal, trace or offline "
        "traffic"
    ]
