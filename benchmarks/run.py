"""Benchmark the engine against a bare SimPy M/D/1 loop of the same size.

    python benchmarks/run.py                 # the full set (about two minutes on 2 cores)
    python benchmarks/run.py --scale 0.1     # a quick look at a tenth of the sizes
    python benchmarks/run.py --repeat 3      # each case's fastest of three runs

Cases, each in a fresh subprocess so that peak RSS is its own:

* ``ranking``: 1,000,000 DLRM-v2 queries on 8 MTIA-like chips with dynamic batching;
* ``fleet-1000``: the same queries on 1,000 such chips at the same load per chip
  (the rate is 125 times higher), against the ranking case's floor: routing
  must not cost more with the pool's size;
* ``fleet-1000-aware``: ``fleet-1000`` routed by ``power_aware`` (least work's
  index, plus the headroom and energy test per pool), against the same floor;
* ``llm``: 100,000 requests of an ~8B model on 4 GPU-like replicas with continuous
  batching (instant and thinking modes);
* ``llm-disagg``: 100,000 requests of the same model served disaggregated (the
  ``llm-disaggregated`` scenario: 2 GPU-like prefill chips, 6 MTIA-like decode chips, KV
  sent layer by layer), against the LLM floor;
* ``llm-prefix``: 100,000 requests of the ``llm-prefix-cache`` scenario (the same
  model on 4 GPU-like replicas; shared system prompts and multi-turn sessions, an
  automatic prefix cache of 16-token blocks), against the LLM floor;
* ``floor-ranking`` / ``floor-llm``: the reference floor, a bare SimPy M/D/1 loop
  (one process per customer, a Resource as the server) of the same number of
  requests;
* ``startup``: wall time of ``accelsim run`` on the default scenario, start-up
  included;
* ``memory``: peak RSS of long ranking runs with streamed records and sketch
  percentiles (``benchmarks/long_run.py``, each size in its own process) at 1M and 3M
  queries, or with ``--long`` at 3M, 10M and 30M (several minutes): flat memory means
  the same peak at every size.

It prints simulated requests per wall second, SimPy events per request, peak
RSS, and each scenario's wall time over its floor's (a ratio within one run, so
machine noise mostly cancels). Figures are recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RANKING_QUERIES = 1_000_000
LLM_REQUESTS = 100_000
MEMORY_QUERIES = (1_000_000, 3_000_000)
LONG_MEMORY_QUERIES = (3_000_000, 10_000_000, 30_000_000)
FLEET_CHIPS = 1_000
# A case's floor, where its name does not give it: the floor of the same request count.
FLOOR_OF = {
    "fleet-1000": "floor-ranking",
    "fleet-1000-aware": "floor-ranking",
    "llm-disagg": "floor-llm",
    "llm-prefix": "floor-llm",
}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def ranking_case(n: int, chips: int = 8, policy: str = "join_shortest_queue") -> dict[str, Any]:
    """``n`` queries on ``chips`` chips; the rate grows with the chips, so every chip sees
    the same load (2,500 queries/s, about 33% utilisation) whatever the pool's size."""
    from accelsim.config.loader import load_scenario
    from accelsim.engine.simulation import Simulation
    from accelsim.metrics.summary import summarize

    rate = 2_500.0 * chips
    resolved = load_scenario(
        "ranking-mtia-vs-gpu",
        [
            "workloads={feed: {model: dlrm-dcn-large, traffic: {kind: poisson, rate_per_s: "
            f"{rate}}}, items_per_query: {{kind: lognormal, median: 200, sigma: 0.6, max: 2000}}, "
            "sla: {latency_s: 20 ms}}}",
            f"pools={{p: {{chip: mtia-like-gen2, count: {chips}, serves: [feed], "
            "batching: {max_batch_items: 512, max_wait_s: 1 ms}}}",
            f"simulation.duration_s={n / rate}",
            "simulation.warmup_s=0",
            f"router.policy={policy}",
        ],
    )
    start = time.perf_counter()
    sim = Simulation(resolved)
    records = sim.run()
    doc = summarize(resolved, records)
    wall = time.perf_counter() - start
    requests = doc["workloads"]["feed"]["offered"]
    batches = records.fleets["ranking"].batches
    return {
        "requests": requests,
        "wall_s": wall,
        "events": sim.scheduled_events(),
        "utilization": doc["pools"]["p"]["utilization"],
        "p99_latency_s": doc["workloads"]["feed"]["latency_s"]["p99"],
        "service_s": float(batches.end_s.mean() - batches.start_s.mean()),
    }


def llm_case(
    n: int, scenario: str = "llm-chat-gpu", rate: float = 12.0, pool: str = "gpu"
) -> dict[str, Any]:
    from accelsim.config.loader import load_scenario
    from accelsim.engine.simulation import Simulation
    from accelsim.metrics.summary import summarize

    resolved = load_scenario(
        scenario, [f"simulation.duration_s={n / rate}", "simulation.warmup_s=0"]
    )
    start = time.perf_counter()
    sim = Simulation(resolved)
    records = sim.run()
    doc = summarize(resolved, records)
    wall = time.perf_counter() - start
    return {
        "requests": doc["workloads"]["chat"]["offered"],
        "wall_s": wall,
        "events": sim.scheduled_events(),
        "iterations": int(records.fleets["llm"].iterations.start_s.size),
        "utilization": doc["pools"][pool]["utilization"],
        "tpot_p50_s": doc["workloads"]["chat"]["tpot_s"]["p50"],
    }


def floor_case(n: int, rho: float = 0.5) -> dict[str, Any]:
    """The textbook SimPy M/D/1: a source process, one process per customer, a Resource."""
    import numpy as np
    import simpy

    service = 1e-3
    rng = np.random.default_rng(1)
    gaps = rng.exponential(service / rho, size=n).tolist()
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    latencies: list[float] = []

    def customer(arrival: float) -> Any:
        with server.request() as request:
            yield request
            yield env.timeout(service)
        latencies.append(env.now - arrival)

    def source() -> Any:
        for gap in gaps:
            yield env.timeout(gap)
            env.process(customer(env.now))

    start = time.perf_counter()
    env.process(source())
    env.run()
    wall = time.perf_counter() - start
    return {
        "requests": len(latencies),
        "wall_s": wall,
        "events": next(env._eid),
        "mean_latency_s": float(np.mean(latencies)),
    }


def memory_case(sizes: list[int]) -> dict[str, Any]:
    """Long runs of ``sizes`` queries, streamed, each in its own process."""
    runs = []
    for n in sizes:
        out = subprocess.run(
            [
                sys.executable,
                str(Path(__file__).with_name("long_run.py")),
                str(n),
                "--json",
                "--percentiles",
                "sketch",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "requests": 0,
        "wall_s": sum(r["wall_s"] for r in runs),
        "events": 0,
        "runs": runs,
    }


def startup_case() -> dict[str, Any]:
    start = time.perf_counter()
    subprocess.run(["accelsim", "run", "-q"], check=True)
    return {"requests": 0, "wall_s": time.perf_counter() - start, "events": 0}


CASES = {
    "ranking": lambda scale, long: ranking_case(int(RANKING_QUERIES * scale)),
    "fleet-1000": lambda scale, long: ranking_case(int(RANKING_QUERIES * scale), FLEET_CHIPS),
    "fleet-1000-aware": lambda scale, long: ranking_case(
        int(RANKING_QUERIES * scale), FLEET_CHIPS, "power_aware"
    ),
    "floor-ranking": lambda scale, long: floor_case(int(RANKING_QUERIES * scale)),
    "llm": lambda scale, long: llm_case(int(LLM_REQUESTS * scale)),
    "llm-disagg": lambda scale, long: llm_case(
        int(LLM_REQUESTS * scale), "llm-disaggregated", 10.0, "decode"
    ),
    "llm-prefix": lambda scale, long: llm_case(int(LLM_REQUESTS * scale), "llm-prefix-cache", 14.0),
    "floor-llm": lambda scale, long: floor_case(int(LLM_REQUESTS * scale)),
    "startup": lambda scale, long: startup_case(),
    "memory": lambda scale, long: memory_case(
        [int(n * scale) for n in (LONG_MEMORY_QUERIES if long else MEMORY_QUERIES)]
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every case's size")
    parser.add_argument("--case", choices=sorted(CASES), help="run one case in this process")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--long", action="store_true", help="memory case at 3M, 10M and 30M queries (minutes)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run the set N times, in rounds, and keep each case's fastest run (a busy "
        "host only ever slows a run down)",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.case:
        result = CASES[args.case](args.scale, args.long)
        result["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(result))
        return
    results: dict[str, dict[str, Any]] = {}
    for round_ in range(args.repeat):
        for name in CASES:
            if round_ and name == "memory":  # peak RSS, not speed: once is enough
                continue
            out = subprocess.run(
                [sys.executable, __file__, "--case", name, "--scale", str(args.scale)]
                + (["--long"] if args.long else []),
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            if name not in results or result["wall_s"] < results[name]["wall_s"]:
                results[name] = result
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, scale {args.scale:g}"
        + (f", fastest of {args.repeat} runs" if args.repeat > 1 else "")
    )
    header = f"{'case':<18}{'requests':>10}{'wall s':>8}{'req/s':>10}{'events/req':>11}"
    print(header + f"{'peak RSS MiB':>13}{'vs floor':>9}")
    for name, r in results.items():
        if name == "memory":
            continue
        floor = results.get(FLOOR_OF.get(name, f"floor-{name}"))
        ratio = f"{r['wall_s'] / floor['wall_s']:.2f}x" if floor else "-"
        per_s = f"{r['requests'] / r['wall_s']:,.0f}" if r["requests"] else "-"
        events = f"{r['events'] / r['requests']:.2f}" if r["requests"] else "-"
        print(
            f"{name:<18}{r['requests']:>10,}{r['wall_s']:>8.2f}{per_s:>10}{events:>11}"
            f"{r['peak_rss_mib']:>13.0f}{ratio:>9}"
        )
    big, small = results["fleet-1000"], results["ranking"]
    per_query = (big["wall_s"] / big["requests"]) / (small["wall_s"] / small["requests"])
    print(f"wall time per query, {FLEET_CHIPS:,} chips over 8 at the same load: {per_query:.2f}x")

    print_memory(results["memory"]["runs"], results["floor-ranking"])


def print_memory(runs: list[dict[str, Any]], floor: dict[str, Any]) -> None:
    """The memory case: peak RSS by run length, and wall time per query against the
    floor's (the bare SimPy M/D/1 loop of the ranking case's size)."""
    print("memory: long ranking runs, streamed (benchmarks/long_run.py, --percentiles sketch)")
    header = f"{'queries':>12}{'wall s':>9}{'req/s':>11}{'peak RSS MiB':>14}"
    print(header + f"{'vs smallest':>13}{'vs floor':>10}")
    smallest = runs[0]["peak_rss_bytes"]
    floor_per = floor["wall_s"] / floor["requests"]
    for r in runs:
        print(
            f"{r['offered']:>12,}{r['wall_s']:>9.1f}{r['queries_per_s']:>11,}"
            f"{r['peak_rss_bytes'] / 2**20:>14.0f}{r['peak_rss_bytes'] / smallest:>13.2f}"
            f"{r['wall_s'] / r['offered'] / floor_per:>9.2f}x"
        )


if __name__ == "__main__":
    main()
