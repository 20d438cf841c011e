"""Long runs: wall time, peak memory and speed of N ranking queries through one scenario.

    python benchmarks/long_run.py                  # 10,000,000 queries
    python benchmarks/long_run.py 1000000          # 1,000,000 queries
    python benchmarks/long_run.py 3000000 --json   # one JSON line, for scripts
    python benchmarks/long_run.py 1000000 --percentiles exact   # keep every record

The scenario is built in memory (accelsim.validation.reference's chip and tiny ranking
model, so the figures measure the engine and the metrics, not the cost model): one
Poisson workload of lognormal query sizes (median 20 items) on 4 chips with dynamic
batching (up to 256 items, 1 ms wait), join-shortest-queue routing, at about 60% load.
The warm-up is zero and the duration is N / rate, so about N queries arrive. Records
are kept or streamed as ``accelsim run --percentiles`` decides (``auto``: streamed
above 1,000,000 queries, with percentiles from sketches).

It reports the wall time of simulating and of summarising, peak RSS
(resource.getrusage), simulated queries per wall second, and the resident memory
sampled as simulated time advances (from /proc/self/statm, Linux only). Run each size
in its own process: peak RSS is per process.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from typing import Any


def rss_bytes() -> int | None:
    """Current resident set size (Linux), or None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # KiB on Linux


def scenario(queries: int, chips: int, load: float, seed: int) -> Any:
    from accelsim.validation.reference import (
        cost_model,
        fleet_scenario,
        reference_chip,
        reference_model,
    )

    chip, model = reference_chip(), reference_model()
    cost = cost_model(chip, model)
    per_item_s = (cost.batch(1001).time_s - cost.batch(1).time_s) / 1000
    median, sigma = 20.0, 0.6
    mean_items = median * math.exp(sigma**2 / 2)
    rate = load * chips / (per_item_s * mean_items)
    return fleet_scenario(
        workloads={
            "w": {
                "rate_per_s": rate,
                "sizes": {"kind": "lognormal", "median": median, "sigma": sigma, "max": 2000},
            }
        },
        pools={
            "p": {
                "chip": chip,
                "count": chips,
                "serves": ["w"],
                "batching": {"max_batch_items": 256, "max_wait_s": 1e-3},
            }
        },
        policy="join_shortest_queue",
        duration_s=queries / rate,
        warmup_s=0.0,
        seed=seed,
        model=model,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("queries", nargs="?", type=int, default=10_000_000)
    parser.add_argument("--chips", type=int, default=4)
    parser.add_argument("--load", type=float, default=0.6, help="offered load per chip")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--percentiles", choices=("auto", "exact", "sketch"), default="auto")
    args = parser.parse_args(argv)

    from accelsim.engine.simulation import simulate
    from accelsim.metrics.streaming import record_sinks
    from accelsim.metrics.summary import summarize

    start_rss = rss_bytes()
    res = scenario(args.queries, args.chips, args.load, args.seed)
    samples: list[tuple[float, int | None]] = []

    def progress(done: float) -> None:
        if round(done * 50) % 5 == 0:  # every 10% of simulated time
            samples.append((done, rss_bytes()))

    t0 = time.perf_counter()
    records = simulate(res, progress, sinks=record_sinks(res, args.percentiles))
    t1 = time.perf_counter()
    doc = summarize(res, records)
    t2 = time.perf_counter()
    w = doc["workloads"]["w"]
    result = {
        "queries": args.queries,
        "offered": w["offered"],
        "completed": w["completed"],
        "in_flight": w["in_flight"],
        "batches": doc["pools"]["p"]["batches"],
        "utilization": round(doc["pools"]["p"]["utilization"], 4),
        "simulated_s": round(doc["window_s"]["duration"], 3),
        "simulate_wall_s": round(t1 - t0, 2),
        "summarize_wall_s": round(t2 - t1, 2),
        "wall_s": round(t2 - t0, 2),
        "queries_per_s": round(w["offered"] / (t2 - t0)),
        "percentiles": w["latency_s"].get("method", "exact"),
        "p99_latency_s": w["latency_s"]["p99"],
        "peak_rss_bytes": peak_rss_bytes(),
        "start_rss_bytes": start_rss,
        "rss_by_progress": [[round(d, 2), b] for d, b in samples],
    }
    if args.json:
        print(json.dumps(result))
    else:
        mib = 2**20
        print(
            f"{result['offered']:,} queries ({result['completed']:,} done, "
            f"{result['in_flight']:,} in flight, {result['batches']:,} batches, "
            f"utilisation {result['utilization']:.0%}) over {result['simulated_s']:g} s "
            f"simulated"
        )
        print(
            f"wall {result['wall_s']:.1f} s (simulate {result['simulate_wall_s']:.1f} s, "
            f"summarise {result['summarize_wall_s']:.1f} s), {result['queries_per_s']:,} "
            f"queries/s, peak RSS {result['peak_rss_bytes'] / mib:,.0f} MiB"
        )
        trail = ", ".join(f"{d:.0%} {b / mib:,.0f}" for d, b in samples if b is not None and d > 0)
        if trail:
            print(f"RSS (MiB) as simulated time advances: {trail}")
    return result


if __name__ == "__main__":
    main()
