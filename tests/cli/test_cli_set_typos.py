"""`--set` errors are blamed on the override, and every typo gets "did you mean".

A typo in any segment of a ``--set`` path (the first, a middle one, the last, a pool or
workload name) and a shipped name that does not exist (scenario, chip, model, study)
each give one line: what is wrong, the close matches, and the known keys at that level.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from clikit import SHORT, invoke, one_error, write_world

from accelsim.config.loader import catalog

SCENARIO_KEYS = "name, description, simulation, workloads, pools, router, facility"
POOL_KEYS = (
    "chip, count, chips_per_replica, serves, batching, continuous_batching, power_cap_w, "
    "clock_lock, confidential, parallelism"
)


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        # first segment
        (
            "simulaton.seed=3",
            "simulaton: unknown field; did you mean 'simulation'? (known: " + SCENARIO_KEYS + ")",
        ),
        # a middle segment
        (
            "workloads.w.trafic.rate_per_s=3",
            "workloads.w.trafic: unknown field; did you mean 'traffic'? "
            "(known: kind, model, traffic, items_per_query, sla)",
        ),
        (
            "pools.p.batchin.max_wait_s=1",
            "pools.p.batchin: unknown field; did you mean 'batching'? (known: " + POOL_KEYS + ")",
        ),
        # the last segment
        (
            "pools.p.cont=3",
            "pools.p.cont: unknown field; did you mean 'count'? (known: " + POOL_KEYS + ")",
        ),
        (
            "workloads.w.traffic.rate=5",
            "workloads.w.traffic.rate: unknown field; did you mean 'rate_per_s'? "
            "(known: kind, rate_per_s)",
        ),
        # a pool or workload name: an entry the scenario does not have
        ("pools.pp.count=4", "pools.pp: no pool named 'pp'; did you mean 'p'? (known: p)"),
        (
            "workloads.ww.traffic.rate_per_s=5",
            "workloads.ww: no workload named 'ww'; did you mean 'w'? (known: w)",
        ),
        # nothing close: the known keys alone
        ("simulation.zzz=1", "simulation.zzz: unknown field (known: duration_s, warmup_s, seed)"),
    ],
)
def test_a_typo_in_any_segment_is_blamed_on_set(
    tmp_path: Path, assignment: str, expected: str
) -> None:
    scenario = write_world(tmp_path)
    line = one_error(invoke("run", scenario, "--set", assignment))
    assert line == f"error: --set {assignment}: {expected}"


def test_the_kind_of_a_workload_picks_the_fields_offered(tmp_path: Path) -> None:
    """An LLM workload's fields are offered for an LLM workload, not a ranking one's."""
    line = one_error(invoke("run", "llm-chat-gpu", "--set", "workloads.chat.prompt_tokns.value=3"))
    assert line.startswith(
        "error: --set workloads.chat.prompt_tokns.value=3: workloads.chat.prompt_tokns: "
        "unknown field; did you mean 'prompt_tokens'? (known: kind, model, traffic, "
        "prompt_tokens, output_tokens, modes,"
    ), line


def test_the_issue_examples_on_the_shipped_scenario() -> None:
    """The two examples of the report: neither names a line of the shipped file."""
    line = one_error(invoke("run", *SHORT, "--set", "pools.gpux.count=4"))
    assert line == (
        "error: --set pools.gpux.count=4: pools.gpux: no pool named 'gpux'; "
        "did you mean 'gpu'? (known: mtia, gpu)"
    )
    line = one_error(invoke("run", *SHORT, "--set", "simulaton.seed=3"))
    assert line == (
        "error: --set simulaton.seed=3: simulaton: unknown field; did you mean "
        f"'simulation'? (known: {SCENARIO_KEYS})"
    )


def test_a_new_section_set_through_set_is_blamed_on_set(tmp_path: Path) -> None:
    """A section the file does not have, created by --set, is the override's fault when
    it is incomplete: never the line of the file's parent mapping."""
    scenario = write_world(tmp_path)
    assignment = "pools.p.batching={max_wait_s: -1}"
    line = one_error(invoke("run", scenario, "--set", assignment))
    assert line.startswith(f"error: --set {assignment}: pools.p.batching.max_wait_s: "), line


def known(kind: str) -> str:
    return ", ".join(catalog(kind))  # type: ignore[arg-type]


def test_a_chip_name_typo_in_set(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    line = one_error(invoke("run", scenario, "--set", "pools.p.chip=mtia-like-gen5"))
    assert line == (
        "error: --set pools.p.chip=mtia-like-gen5: pools.p.chip: no chip named "
        "'mtia-like-gen5'; did you mean 'mtia-like-gen1', 'mtia-like-gen2' or 'mtia-like-gen3'? "
        f"(known: {known('chip')})"
    )


def test_shipped_name_typos_get_did_you_mean() -> None:
    line = one_error(invoke("run", "ranking-mtia-vs-gp"))
    assert line == (
        "error: ranking-mtia-vs-gp: no scenario named 'ranking-mtia-vs-gp'; did you mean "
        f"'ranking-mtia-vs-gpu'? (known: {known('scenario')})"
    )
    line = one_error(invoke("explain", "--chip", "gpu-like-gen2", "--model", "dlrm-mlp-heavy"))
    assert line == (
        "error: gpu-like-gen2: no chip named 'gpu-like-gen2'; did you mean "
        f"'gpu-like-gen2-hbm' or 'gpu-like-gen1'? (known: {known('chip')})"
    )
    line = one_error(invoke("explain", "--chip", "gpu-like-gen1", "--model", "llm-dense-7b"))
    assert line == (
        "error: llm-dense-7b: no model named 'llm-dense-7b'; did you mean "
        f"'llm-dense-70b', 'llm-dense-1b' or 'llm-dense-8b'? (known: {known('model')})"
    )
    line = one_error(invoke("sweep", "ranking-power-caps"))
    assert line == (
        "error: ranking-power-caps: no study named 'ranking-power-caps'; did you mean "
        f"'ranking-power-cap'? (known: {known('study')})"
    )


def test_a_misspelt_field_in_a_file_gets_did_you_mean_at_its_line(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    text = scenario.read_text(encoding="utf-8").replace("    count: 2", "    cont: 2")
    scenario.write_text(text, encoding="utf-8")
    lines = [line for line in invoke("run", scenario).stderr.splitlines() if "cont:" in line]
    number = text.splitlines().index("    cont: 2") + 1
    assert lines == [
        f"error: {scenario}:{number}: pools.p.cont: unknown field; did you mean 'count'? "
        f"(known: {POOL_KEYS})"
    ]
    chip = tmp_path / "chip2.yaml"
    chip.write_text("extends: mtia-like-gen2\npower: {tdp: 3}\n", encoding="utf-8")
    assert one_error(invoke("hardware", "show", chip)) == (
        f"error: {chip}:2: power.tdp: unknown field; did you mean 'tdp_w'? "
        "(known: idle_w, tdp_w, energy_per_flop_j, vector_energy_per_flop_j)"
    )
