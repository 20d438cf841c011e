"""LoadGen traffic on the command line: what `run` prints, and the one-line errors of
the commands that need a rate (capacity search) or streamed records (sketch
percentiles), and of offline traffic inside a warm-up."""

from __future__ import annotations

from pathlib import Path

from clikit import json_stdout, line_of, one_error, scenario_data, write, write_world

from clirunner import assert_ok, invoke, out


def _world(tmp_path: Path, traffic: dict[str, object], warmup_s: float = 0.2) -> Path:
    write_world(tmp_path)
    data = scenario_data()
    data["workloads"]["w"]["traffic"] = traffic
    data["simulation"]["warmup_s"] = warmup_s
    return write(tmp_path / "scenario.yaml", data)


def test_run_prints_the_closed_loop_and_its_law(tmp_path: Path) -> None:
    scenario = _world(tmp_path, {"kind": "closed_loop", "users": 3, "think_s": "1 ms"})
    result = invoke("run", scenario)
    assert_ok(result)
    assert "closed loop w: 3 users, think 1 ms (fixed): " in out(result)
    doc = json_stdout(invoke("run", scenario, "-q", "--json", "-"))
    loadgen = doc["workloads"]["w"]["loadgen"]
    cycle = loadgen["mean_response_s"] + 1e-3
    assert loadgen["users_over_cycle_per_s"] == 3 / cycle


def test_run_prints_the_offline_makespan(tmp_path: Path) -> None:
    scenario = _world(tmp_path, {"kind": "offline", "requests": 500}, warmup_s=0)
    result = invoke("run", scenario)
    assert_ok(result)
    doc = json_stdout(invoke("run", scenario, "-q", "--json", "-"))
    makespan = doc["workloads"]["w"]["loadgen"]["makespan_s"]
    assert 0 < makespan < 1
    assert "offline w: 500 requests done in " in out(result)


def test_offline_inside_a_warm_up_names_file_line_and_field(tmp_path: Path) -> None:
    scenario = _world(tmp_path, {"kind": "offline", "requests": 5}, warmup_s=0.2)
    line = one_error(invoke("run", scenario))
    assert line.startswith(f"error: {scenario}:{line_of(scenario, 'kind: offline')}: ")
    assert "workloads.w.traffic.kind: offline traffic sends every request at time 0" in line
    assert line.endswith("set simulation.warmup_s: 0")


def test_sketch_percentiles_refuse_a_closed_loop(tmp_path: Path) -> None:
    scenario = _world(tmp_path, {"kind": "closed_loop", "users": 2})
    line = one_error(invoke("run", scenario, "--percentiles", "sketch"))
    assert line.endswith(
        "workloads.w.traffic.kind: closed_loop traffic keeps every record: run it with "
        "--percentiles exact or auto"
    )


def test_capacity_search_refuses_loadgen_traffic_and_says_what_instead(tmp_path: Path) -> None:
    scenario = _world(tmp_path, {"kind": "closed_loop", "users": 2})
    line = one_error(invoke("capacity", scenario))
    assert line.startswith("error: workload w: capacity search needs poisson traffic")
    assert "sweep workloads.NAME.traffic.users in a study" in line
    scenario = _world(tmp_path, {"kind": "offline", "requests": 5}, warmup_s=0)
    line = one_error(invoke("capacity", scenario))
    assert line.endswith("read its loadgen.offline_throughput_per_s")
