"""Benchmark the fleet planner: cold characterisation of the shipped plans, and the
1 GW plan's solve once characterised.

    python benchmarks/plan.py            # about two minutes on 2 cores

The shipped plans share one characterisation (fleet-100mw's replicas are a subset of
fleet-1gw's, and fleet-roadmap extends fleet-1gw), so characterising fleet-1gw into an
empty cache is characterising all of them. It runs on local processes, one per core.
Then the 1 GW plan is solved five times from that cache (the integer program only, no
simulation), and the roadmap's four steps once. Figures are recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    from accelsim.config.fleet_plan import load_plan
    from accelsim.planner import fleet
    from accelsim.planner.characterise import Cache, characterise
    from accelsim.planner.optimise import optimise
    from accelsim.study.executors import default_workers, open_executor

    workers = default_workers()
    print(f"python {sys.version.split()[0]}, {workers} cores, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="accelsim-plan-bench-") as folder:
        cache = Cache(Path(folder))
        plans = {name: load_plan(name) for name in ("fleet-100mw", "fleet-1gw", "fleet-roadmap")}
        start = time.perf_counter()
        counted: list[int] = []
        results = characterise(
            plans["fleet-1gw"],
            cache,
            lambda n: open_executor("local", min(workers, n)),
            on_start=lambda total, todo: counted.append(todo),
        )
        cold_s = time.perf_counter() - start
        busy = sum(r["wall_s"] for r in results.values())
        print(
            f"cold characterisation: {counted[0]} replicas in {cold_s:.1f} s wall "
            f"({busy:.1f} s of worker time), load {os.getloadavg()[0]:.1f}"
        )
        left: list[tuple[str, int]] = []
        for name, resolved in plans.items():
            characterise(
                resolved,
                cache,
                lambda n: open_executor("local", 1),
                on_start=lambda total, todo, name=name: left.append((name, todo)),
            )
        print("then left to characterise:", ", ".join(f"{n} {k}" for n, k in left))
        one_gw = plans["fleet-1gw"]
        problem = fleet.problem(one_gw, fleet.options(one_gw, results))
        times = []
        for _ in range(5):
            solution = optimise(problem)
            times.append(solution.solve_s)
        print(
            f"fleet-1gw solve: median {statistics.median(times):.2f} s, "
            f"max {max(times):.2f} s over 5 ({len(problem.options)} options)"
        )
        roadmap = plans["fleet-roadmap"]
        available = fleet.options(roadmap, results)
        for step, candidates in fleet.steps(roadmap).items():
            s = optimise(fleet.problem(roadmap, available, candidates))
            print(f"fleet-roadmap {step}: solve {s.solve_s:.2f} s")


if __name__ == "__main__":
    main()
