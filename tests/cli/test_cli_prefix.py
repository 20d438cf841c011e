"""Bad prefix-caching and session settings: one located error each, exit 1, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from clikit import SHORT, error_lines, invoke, json_stdout, line_of, one_error, write

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "workloads" / "scenarios" / "llm-prefix-cache.yaml"


def _scenario(tmp: Path, edit: str, old: str, new: str) -> Path:
    text = SHIPPED.read_text(encoding="utf-8")
    assert old in text, old
    return write(tmp / f"{edit}.yaml", text.replace(old, new))


CASES = [
    # (name, text to replace, replacement, marker on the error's line, field, words)
    (
        "share",
        "share: 0.9",
        "share: 1.5",
        "share: 1.5",
        "workloads.chat.system_prompt.share",
        "less than or equal to 1",
    ),
    (
        "block",
        "prefix_cache: {block_tokens: 16}",
        "prefix_cache: {block_tokens: 0}",
        "block_tokens: 0",
        "pools.gpu.continuous_batching.prefix_cache.block_tokens",
        "greater than or equal to 1",
    ),
    (
        "typo",
        "prefix_cache: {block_tokens: 16}",
        "prefix_cache: {block_token: 16}",
        "block_token: 16",
        "pools.gpu.continuous_batching.prefix_cache.block_token",
        "did you mean 'block_tokens'",
    ),
    (
        "unit",
        "think_time_s: 15 s",
        "think_time_s: 15 W",
        "think_time_s: 15 W",
        "workloads.chat.sessions.think_time_s",
        "'15 W'",
    ),
]


@pytest.mark.parametrize(("edit", "old", "new", "marker", "field", "words"), CASES)
def test_a_bad_prefix_setting_is_one_located_error(
    tmp_path: Path, edit: str, old: str, new: str, marker: str, field: str, words: str
) -> None:
    path = _scenario(tmp_path, edit, old, new)
    line = one_error(invoke("run", str(path), *SHORT))
    assert f"{path}:{line_of(path, marker)}:" in line, line
    assert field in line and words in line, line


def test_sessions_on_replayed_traffic_are_refused(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("timestamp_s\n0.1\n0.5\n", encoding="utf-8")
    path = _scenario(
        tmp_path,
        "trace",
        "traffic: {kind: poisson, rate_per_s: 4 /s}",
        "traffic: {kind: trace, path: t.csv}",
    )
    line = one_error(invoke("run", str(path), *SHORT))
    assert "sessions need generated traffic" in line and str(path) in line, line


def test_session_affinity_routes_llm_workloads_only(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "workloads/scenarios/ranking-mtia-vs-gpu.yaml").read_text())
    data["router"] = {"policy": "session_affinity"}
    path = write(tmp_path / "ranking.yaml", data)
    lines = error_lines(invoke("run", str(path), *SHORT))
    assert len(lines) == len(data["workloads"])  # one per ranking workload
    assert all("router.policy: session_affinity routes llm workloads only" in x for x in lines)


def test_the_shipped_scenario_reports_its_prefix_keys() -> None:
    doc = json_stdout(invoke("run", "llm-prefix-cache", *SHORT, "--json", "-", "-q"))
    w, p = doc["workloads"]["chat"], doc["pools"]["gpu"]
    assert w["prefill_tokens_computed"] <= w["prefill_tokens_requested"]
    assert 0 <= w["prefix_hit_rate"] <= 1
    assert set(p["prefix_cache"]) == {"block_tokens", "evicted_blocks", "cached_blocks_at_end"}


def test_the_fit_check_counts_the_system_prompt_in_the_largest_request(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "long", "tokens: 2000, share", "tokens: 1000000, share")
    line = one_error(invoke("run", str(path), *SHORT))
    assert "workloads.chat.system_prompt.tokens 1000000" in line, line
    assert "pools.gpu.chips_per_replica" in line, line


def test_a_closed_loop_refuses_sessions_prompts_and_the_cache(tmp_path: Path) -> None:
    path = _scenario(
        tmp_path,
        "closed",
        "traffic: {kind: poisson, rate_per_s: 4 /s}",
        "traffic: {kind: closed_loop, users: 4}",
    )
    lines = error_lines(invoke("run", str(path), *SHORT))
    assert len(lines) == 3, lines
    for marker, field in (
        ("sessions:", "workloads.chat.sessions: sessions is not supported with closed_loop"),
        ("system_prompt:", "workloads.chat.system_prompt: system_prompt is not supported"),
        ("prefix_cache:", "pools.gpu.continuous_batching.prefix_cache: a prefix cache needs"),
    ):
        assert any(f"{path}:{line_of(path, marker)}: {field}" in line for line in lines), lines


def test_speculation_and_the_prefix_cache_are_refused_together(tmp_path: Path) -> None:
    path = _scenario(
        tmp_path,
        "spec",
        "    system_prompt:",
        "    speculative: {mtp_heads: 1, tokens: 2, acceptance_rate: 0.8}\n    system_prompt:",
    )
    line = one_error(invoke("run", str(path), *SHORT))
    assert f"{path}:{line_of(path, 'speculative:')}: workloads.chat.speculative: " in line, line
    assert "do not work together yet" in line
