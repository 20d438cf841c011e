"""`accelsim run`: the result document, determinism, `--set` overrides, output files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clikit import (
    SHORT,
    assert_ok,
    error_lines,
    invoke,
    json_stdout,
    one_error,
    scenario_data,
    stderr,
    stdout,
    write,
    write_world,
)

from accelsim.report.terminal import CI_NOTE

# The keys the README's "Result document" section documents.
WORKLOAD_KEYS = {
    "offered",
    "completed",
    "dropped",
    "in_flight",
    "throughput_per_s",
    "items_per_s",
    "mean_items_per_query",
    "latency_s",
    "queue_wait_s",
    "sla",
    "sla_attainment",
}
POOL_KEYS = {
    "chip",
    "chips",
    "serves",
    "batches",
    "mean_batch_items",
    "utilization",
    "avg_power_w",
    "energy_j",
    "idle_power_w",
    "tdp_w",
}
DISTRIBUTION = {"mean", "p50", "p90", "p99", "max", "ci95", "too_few_samples"}


def run_json(*args: object) -> dict:
    return json_stdout(invoke("run", *args, "--json", "-"))


def check_document(doc: dict) -> None:
    for key in ("schema_version", "accelsim_version", "scenario", "seed", "window_s"):
        assert key in doc
    for key in ("workloads", "pools", "totals", "warnings", "config"):
        assert key in doc
    assert doc["schema_version"] == 1
    assert set(doc["window_s"]) == {"start", "end", "duration"}
    assert {"energy_j", "avg_power_w", "queries_per_j"} <= set(doc["totals"])
    assert {"simulation", "workloads", "pools", "router"} <= set(doc["config"])
    assert isinstance(doc["warnings"], list)
    assert doc["workloads"] and doc["pools"]
    for w in doc["workloads"].values():
        assert set(w) >= WORKLOAD_KEYS
        assert set(w["latency_s"]) == set(w["queue_wait_s"]) == DISTRIBUTION
        assert set(w["latency_s"]["ci95"]) == {"p50", "p90", "p99"}
        if w["sla"] is not None:
            assert {"latency_s", "percentile", "observed_latency_s", "met"} <= set(w["sla"])
        assert w["offered"] > 0
        assert w["offered"] == w["completed"] + w["dropped"] + w["in_flight"]
        assert min(w["completed"], w["dropped"], w["in_flight"]) >= 0
        lat = w["latency_s"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        for key in ("p50", "p90", "p99"):
            ci = lat["ci95"][key]
            assert ci["low"] <= lat[key] <= (lat["max"] if ci["high"] is None else ci["high"])
        assert w["throughput_per_s"] == pytest.approx(w["completed"] / doc["window_s"]["duration"])
        if w["sla_attainment"] is not None:
            assert 0 <= w["sla_attainment"] <= 1
    for p in doc["pools"].values():
        assert set(p) >= POOL_KEYS
        assert 0 <= p["utilization"] <= 1
        assert p["idle_power_w"] <= p["avg_power_w"] <= p["tdp_w"]
        assert p["avg_power_w"] > 0
        assert p["energy_j"] == pytest.approx(p["avg_power_w"] * doc["window_s"]["duration"])
    assert doc["totals"]["energy_j"] == pytest.approx(
        sum(p["energy_j"] for p in doc["pools"].values())
    )


def test_json_file_has_the_documented_document(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    out = tmp_path / "out.json"
    result = invoke("run", scenario, "--json", out)
    assert_ok(result)
    assert f"wrote {out}" in stderr(result)
    assert "offered" in stdout(result)  # the summary is still printed
    doc = json.loads(out.read_text(encoding="utf-8"))
    check_document(doc)
    assert doc["scenario"] == "cli-test"
    assert doc["seed"] == 7
    assert doc["window_s"] == {"start": 0.2, "end": 1.2, "duration": 1.0}
    assert set(doc["workloads"]) == {"w"} and set(doc["pools"]) == {"p"}
    assert doc["workloads"]["w"]["sla_attainment"] is not None
    # Units in the file are resolved to SI in the echoed config.
    assert doc["config"]["workloads"]["w"]["sla"]["latency_s"] == pytest.approx(0.02)
    assert doc["config"]["pools"]["p"]["batching"]["max_wait_s"] == pytest.approx(5e-4)


def test_default_scenario_document() -> None:
    doc = run_json(*SHORT)
    check_document(doc)
    assert doc["window_s"]["duration"] == pytest.approx(1.0)


def test_json_to_stdout_is_the_only_stdout(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    result = invoke("run", scenario, "--json", "-")
    doc = json_stdout(result)
    assert result.stdout.lstrip().startswith("{")
    check_document(doc)
    file = tmp_path / "same.json"
    assert_ok(invoke("run", scenario, "--json", file, "-q"))
    assert file.read_text(encoding="utf-8") == result.stdout


def test_same_seed_gives_identical_files_other_seed_differs(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    a, b, c = (tmp_path / n for n in ("a.json", "b.json", "c.json"))
    assert_ok(invoke("run", scenario, "-q", "--json", a))
    assert_ok(invoke("run", scenario, "-q", "--json", b))
    assert_ok(invoke("run", scenario, "-q", "--seed", 8, "--json", c))
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    doc_c = json.loads(c.read_text(encoding="utf-8"))
    assert doc_c["seed"] == 8
    assert doc_c["config"]["simulation"]["seed"] == 8
    doc_a = json.loads(a.read_text(encoding="utf-8"))
    assert doc_a["workloads"]["w"]["offered"] != doc_c["workloads"]["w"]["offered"] or (
        doc_a["workloads"]["w"]["latency_s"] != doc_c["workloads"]["w"]["latency_s"]
    )


def test_set_rate_scales_offered_load(tmp_path: Path) -> None:
    scenario = write_world(tmp_path, rate=500)
    base = run_json(scenario)
    tripled = run_json(scenario, "--set", "workloads.w.traffic.rate_per_s=1500")
    with_unit = run_json(scenario, "-s", "workloads.w.traffic.rate_per_s=1.5 kqps")
    n0 = base["workloads"]["w"]["offered"]
    n1 = tripled["workloads"]["w"]["offered"]
    assert n0 == pytest.approx(500, rel=0.15)  # one second window
    assert n1 / n0 == pytest.approx(3.0, rel=0.1)
    assert tripled["config"]["workloads"]["w"]["traffic"]["rate_per_s"] == 1500.0
    assert with_unit == tripled


def test_set_applies_several_overrides(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    doc = run_json(scenario, "--set", "simulation.duration_s=500 ms", "--set", "pools.p.count=3")
    assert doc["window_s"]["duration"] == pytest.approx(0.5)
    assert doc["pools"]["p"]["chips"] == 3


@pytest.mark.parametrize(
    ("assignment", "field", "words"),
    [
        ("workloads.w.traffic.rate_per_s=abc", "workloads.w.traffic.rate_per_s", "'abc'"),
        ("workloads.w.traffic.rate_per_s=-5", "workloads.w.traffic.rate_per_s", "greater"),
        ("pools.p.count=-1", "pools.p.count", "-1"),
        ("pools.p.count=many", "pools.p.count", "many"),
        ("simulation.durations=1", "simulation.durations", "unknown field"),
        ("pools.p.chip=no-such-chip", "pools.p.chip", "no-such-chip"),
    ],
)
def test_invalid_set_value_is_one_error_naming_set_and_field(
    tmp_path: Path, assignment: str, field: str, words: str
) -> None:
    scenario = write_world(tmp_path)
    line = one_error(invoke("run", scenario, "--set", assignment))
    assert line.startswith(f"error: --set {assignment}: {field}: "), line
    assert words in line


@pytest.mark.parametrize("assignment", ["foo", "simulation.seed", "=3", "a..b=1"])
def test_malformed_set_is_an_error(tmp_path: Path, assignment: str) -> None:
    scenario = write_world(tmp_path)
    line = one_error(invoke("run", scenario, "--set", assignment))
    assert line.startswith(f"error: --set {assignment}: "), line


def test_trace_traffic_replays_every_row_in_the_window(tmp_path: Path) -> None:
    write_world(tmp_path)
    data = scenario_data()
    data["workloads"]["w"]["traffic"] = {"kind": "trace", "path": "traces/t.csv"}
    data["simulation"]["warmup_s"] = 0.5
    scenario = write(tmp_path / "scenario.yaml", data)
    rows = "".join(f"{i / 100:.2f},{1 + i % 5}\n" for i in range(200))
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "t.csv").write_text("timestamp_s,items\n" + rows, encoding="utf-8")
    # The trace path is relative to the scenario file, not to the working directory.
    w = run_json(scenario)["workloads"]["w"]
    # Window [0.5, 1.5): rows 50..149, whose items cycle through 1..5.
    assert w["offered"] == 100
    assert w["mean_items_per_query"] == pytest.approx(3.0)
    assert w["items_per_s"] == pytest.approx(300.0)
    # A path given with --set is relative to the working directory.
    absolute = f"workloads.w.traffic.path={tmp_path / 'traces' / 't.csv'}"
    assert run_json(scenario, "--set", absolute)["workloads"]["w"]["offered"] == 100


@pytest.mark.parametrize("command", ["run", "explain", "schema"])
def test_unwritable_output_path_is_a_clean_error(tmp_path: Path, command: str) -> None:
    write_world(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n", encoding="utf-8")
    target = blocker / "out.json"
    args = {
        "run": ("run", tmp_path / "scenario.yaml", "-q", "--json", target),
        "explain": (
            "explain",
            "--chip",
            tmp_path / "chip.yaml",
            "--model",
            tmp_path / "model.yaml",
            "--json",
            target,
        ),
        "schema": ("schema", "chip", "-o", target),
    }[command]
    line = one_error(invoke(*args))
    assert line.startswith(f"error: {target}: cannot write"), line
    assert blocker.read_text(encoding="utf-8") == "not a folder\n"


def test_missing_scenario_name_lists_known_scenarios() -> None:
    line = one_error(invoke("run", "no-such-scenario"))
    assert "no-such-scenario" in line
    assert "ranking-mtia-vs-gpu" in line


def test_missing_scenario_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    line = one_error(invoke("run", missing))
    assert str(missing) in line and "not found" in line


def test_negative_seed_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("run", write_world(tmp_path), "--seed", "-1")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_yaml_merge_key_with_override(tmp_path: Path) -> None:
    write_world(tmp_path)
    text = (tmp_path / "scenario.yaml").read_text(encoding="utf-8")
    text = text.replace("  w:\n", "  w: &base\n", 1)
    text = text.replace(
        "pools:\n",
        "  w2:\n    <<: *base\n    traffic: {kind: poisson, rate_per_s: 50}\npools:\n",
        1,
    )
    text = text.replace("    - w\n", "    - w\n    - w2\n", 1)
    scenario = write(tmp_path / "merge.yaml", text)
    doc = run_json(scenario)
    assert doc["workloads"]["w2"]["offered"] == pytest.approx(50, rel=0.4)
    assert doc["config"]["workloads"]["w2"]["traffic"]["rate_per_s"] == 50.0
    assert doc["config"]["workloads"]["w2"]["model"] == "model.yaml"


def test_errors_from_several_fields_are_all_reported(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    result = invoke("run", scenario, "--set", "pools.p.count=0", "--set", "simulation.warmup_s=-1")
    lines = error_lines(result)
    assert len(lines) == 2
    assert any("pools.p.count" in line for line in lines)
    assert any("simulation.warmup_s" in line for line in lines)


def test_the_table_says_what_an_overloaded_fleet_completed() -> None:
    """QPS counts the queries that arrived in the window; under overload the fleet also
    serves the warm-up's backlog, and a line under the table gives that rate."""
    args = (*SHORT, "--set", "simulation.warmup_s=1")
    overload = ("--set", "workloads.feed_gpu.traffic.rate_per_s=80000")
    result = invoke("run", *args, *overload, "--json", "-")
    assert_ok(result)
    doc = json.loads(result.stdout)
    timeline = doc["timeline"]
    served = sum(timeline["workloads"]["feed_gpu"]["completed_per_s"]) * timeline["bin_s"]
    served /= doc["window_s"]["duration"]
    assert served > 1.05 * doc["workloads"]["feed_gpu"]["throughput_per_s"]
    text = " ".join(stdout(invoke("run", *args, *overload)).split())
    caption = text.split("done and the rate count the requests that arrived in the window")[1]
    assert caption.startswith(
        f"; counting those from before it, the fleet completed feed_gpu {served:.5g}/s {CI_NOTE} ┏"
    )
    assert "the fleet completed" not in stdout(invoke("run", *args))
