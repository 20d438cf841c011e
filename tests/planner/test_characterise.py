"""Characterisation: one replica's capacity and power by simulation, cached by content
hash, resumed when interrupted, never written to the user's real cache by tests."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from accelsim.config.fleet_plan import load_plan
from accelsim.planner.characterise import Cache, characterise, default_cache_dir, entries

PLAN = """\
services:
  web:
    model: dlrm-mlp-heavy
    items_per_query: {kind: fixed, value: 100}
    sla: {latency_s: 20 ms}
    peak_rate_per_s: 1e6 /s
    probe_rate_per_s: 20000 /s
candidates:
  mtia:
    chip: mtia-like-gen2
    serves:
      web: [{batching: {max_batch_items: 512}}]
  cpu:
    chip: cpu-like-baseline
    serves:
      web: [{}]
characterise: {tolerance: 0.2, confirm: 1, warmup_s: 0.02}
"""


def one_thread(_: int) -> Any:
    return ThreadPoolExecutor(max_workers=1)


def write(tmp_path: Path, text: str = PLAN) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_default_cache_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "accelsim"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "accelsim"


def test_the_key_changes_with_what_the_result_depends_on(tmp_path: Path) -> None:
    plan = write(tmp_path)
    keys = {(e.service, e.candidate): e.key for e in entries(load_plan(str(plan)))}
    same = {(e.service, e.candidate): e.key for e in entries(load_plan(str(plan)))}
    assert keys == same
    # The demand is not part of a replica's characterisation; the SLA and chip are.
    more = entries(load_plan(str(plan), ["services.web.peak_rate_per_s=2e6"]))
    assert {(e.service, e.candidate): e.key for e in more} == keys
    tighter = entries(load_plan(str(plan), ["services.web.sla.latency_s=10 ms"]))
    assert all(e.key != keys[(e.service, e.candidate)] for e in tighter)
    other = write(tmp_path, PLAN.replace("chip: mtia-like-gen2", "chip: mtia-like-gen2-hbm"))
    moved = {(e.service, e.candidate): e.key for e in entries(load_plan(str(other)))}
    assert moved[("web", "mtia")] != keys[("web", "mtia")]
    assert moved[("web", "cpu")] == keys[("web", "cpu")]


def test_a_characterisation_is_cached_and_an_interrupted_one_resumes(tmp_path: Path) -> None:
    plan = load_plan(str(write(tmp_path)))
    cache = Cache(tmp_path / "cache")
    mtia, cpu = entries(plan)
    # An interrupted run left the MTIA-like entry: only the CPU-like one runs now.
    cache.put({"key": mtia.key, "capacity_per_s": 123.0, "floor_w": 1.0, "slope_w_per_rps": 0.0})
    started: list[tuple[int, int]] = []
    done: list[str] = []
    results = characterise(
        plan,
        cache,
        one_thread,
        on_start=lambda total, todo: started.append((total, todo)),
        on_done=lambda entry, result: done.append(entry.candidate),
    )
    assert started == [(2, 1)] and done == ["cpu"]
    assert results[mtia.key]["capacity_per_s"] == 123.0
    found = results[cpu.key]
    # The search's answer, and the power line through the two measured points.
    assert found["capacity_per_s"] > 0
    assert found["power_at_half_w"] < found["power_at_capacity_w"] <= 330.0  # its TDP
    assert found["floor_w"] + found["slope_w_per_rps"] * found["capacity_per_s"] == pytest.approx(
        found["power_at_capacity_w"]
    )
    on_disk = json.loads((cache.entries / f"{cpu.key}.json").read_text(encoding="utf-8"))
    assert on_disk == found
    # Characterised: nothing runs again.
    again: list[str] = []
    characterise(plan, cache, one_thread, on_done=lambda entry, result: again.append(entry.key))
    assert again == []


def test_a_replica_that_cannot_hold_its_model_is_a_located_error(tmp_path: Path) -> None:
    from accelsim.errors import ConfigError

    text = """\
services:
  chat:
    kind: llm
    model: llm-dense-70b
    prompt_tokens: {kind: fixed, value: 100}
    output_tokens: {kind: fixed, value: 10}
    sla: {ttft_s: 1 s, tpot_s: 50 ms}
    peak_rate_per_s: 100 /s
candidates:
  small:
    chip: mtia-like-gen2
    serves:
      chat: [{}]
"""
    plan = load_plan(str(write(tmp_path, text)))
    with pytest.raises(ConfigError) as caught:
        characterise(plan, Cache(tmp_path / "cache"), one_thread)
    problem = caught.value.problems[0]
    assert problem.source.endswith("small.yaml") and problem.line is not None
    assert problem.field.startswith("candidates.")
