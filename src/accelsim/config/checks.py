"""Work budgets of a resolved scenario, checked before anything is sampled or allocated.

Two budgets, both estimated from the scenario alone, with no cost model:

* the draws of each workload's traffic generator: arrivals, plus the calm and burst
  periods of ``bursty`` traffic (each period is a few random draws, like an arrival);
* the memory a run holds at its peak: its request records (and LLM iteration records)
  times the bytes each takes, plus the arrays of the traces it replays. The budget is a
  share of the machine's memory unless the caller gives one. A ranking run that streams
  its records (:func:`ranking_streamed`) keeps none: only its queued queries count.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from accelsim.config.schema import (
    AnyTraffic,
    BurstyTraffic,
    ClosedLoopTraffic,
    DiurnalTraffic,
    LLMWorkload,
    OfflineTraffic,
    PoissonTraffic,
    RankingWorkload,
    SizeDistribution,
    TraceTraffic,
    UniformSize,
)
from accelsim.errors import Problem
from accelsim.units import format_quantity

if TYPE_CHECKING:
    from accelsim.config.loader import ResolvedScenario, Trace

MAX_ARRIVALS = 100_000_000  # draws (arrivals and periods) of one workload's traffic

# Peak bytes a run holds, from the growth of peak RSS with run length: what the engine's
# typed arrays keep per request and per unit of work, plus the copies made when records
# are frozen and summarised. Ranking: about 75 bytes per query and 230 per batch record
# (fitted to 95 bytes per query at 0.09 batches per query with benchmarks/long_run.py,
# 187 at 0.49 and 302 at one batch per query with shipped scenarios); a query still
# queued when the fleet cannot keep up holds about 115 more bytes, less than a batch
# record, so one batch record per query bounds both (a query larger than a batch adds
# a record per extra piece, which the estimate leaves out). LLM (chat and
# contemplating, up to 180,000 requests, at load and overloaded): 600 to 1,100 bytes
# per request, which the figures below bound.
RANKING_QUERY_BYTES = 80
RANKING_BATCH_BYTES = 240  # one batch record per query at most (or a queued query)
LLM_REQUEST_BYTES = 800
LLM_ITERATION_BYTES = 150
LLM_ITERATIONS_PER_SEQUENCE = 3  # iteration records per sequence (1.9 to 2.9 measured)

MEMORY_SHARE = 0.5  # of the machine's memory (or of the process's cgroup limit)

# Above this many expected ranking queries (warm-up included), a run with ``auto``
# percentiles streams its ranking records into summaries and takes percentiles from
# sketches; at or below it, it keeps every record (about 90 MB at the threshold).
STREAM_ABOVE_REQUESTS = 1_000_000
PERCENTILE_CHOICES = ("auto", "exact", "sketch")
# A streamed ranking run keeps no records: a query costs memory only while queued (about
# 115 bytes, when the fleet cannot keep up), plus 16 bytes for arrivals drawn whole.
RANKING_QUEUED_QUERY_BYTES = 120
ARRIVAL_BYTES = 16


def _horizon_s(resolved: ResolvedScenario) -> float:
    sim = resolved.scenario.simulation
    return sim.warmup_s + sim.duration_s


def traffic_draws(traffic: AnyTraffic, horizon_s: float) -> tuple[float, float]:
    """At most how many arrivals, and about how many calm/burst periods, a traffic
    generator draws over ``horizon_s`` (a trace draws nothing: its rows are read)."""
    if isinstance(traffic, BurstyTraffic):
        periods = 2.0 * horizon_s / (traffic.calm_s + traffic.burst_s)
        return max(traffic.rate_per_s, traffic.burst_rate_per_s) * horizon_s, periods
    if isinstance(traffic, DiurnalTraffic):  # candidates at the peak rate, then thinned
        return traffic.rate_per_s * (1.0 + traffic.amplitude) * horizon_s, 0.0
    if isinstance(traffic, PoissonTraffic):
        return traffic.rate_per_s * horizon_s, 0.0
    if isinstance(traffic, OfflineTraffic):
        return float(traffic.requests), 0.0
    return 0.0, 0.0


def arrival_budget_problems(resolved: ResolvedScenario) -> list[Problem]:
    """Workloads whose traffic would draw more arrivals and periods than a run can."""
    horizon = _horizon_s(resolved)
    out = []
    for name, workload in resolved.scenario.workloads.items():
        arrivals, periods = traffic_draws(workload.traffic, horizon)
        if arrivals + periods <= MAX_ARRIVALS:
            continue
        if periods:
            what = f"about {arrivals:.3g} arrivals and {periods:.3g} calm and burst periods"
            shrink = "shorten the run, lower the rates or lengthen calm_s and burst_s"
        else:
            what = f"about {arrivals:.3g} arrivals"
            shrink = "shorten the run or lower the rate"
        out.append(
            resolved.problem(
                ("workloads", name, "traffic"),
                f"{what} in {horizon:g} s, more than the {MAX_ARRIVALS:.0e} one run can "
                f"draw: {shrink}",
            )
        )
    return out


def expected_requests(
    traffic: AnyTraffic,
    trace: Trace | None,
    horizon_s: float,
) -> float:
    """The expected number of requests a workload's traffic brings in ``horizon_s``."""
    if isinstance(traffic, TraceTraffic):
        if trace is None:
            return 0.0
        limit = horizon_s / traffic.time_scale
        return float(trace.times_s.searchsorted(limit, side="left"))
    if isinstance(traffic, BurstyTraffic):
        return traffic.mean_rate_per_s * horizon_s
    if isinstance(traffic, OfflineTraffic):
        return float(traffic.requests)
    if isinstance(traffic, ClosedLoopTraffic):
        return closed_loop_requests(traffic, horizon_s)
    return traffic.rate_per_s * horizon_s


def closed_loop_requests(traffic: ClosedLoopTraffic, horizon_s: float) -> float:
    """The most requests a closed loop could send if every response were instant: each
    user sends one, then one per think time (only its users' first requests, with no
    think time: the cost model, not the traffic, bounds them then)."""
    if traffic.think_s <= 0:
        return float(traffic.users)
    return traffic.users * (1.0 + horizon_s / traffic.think_s)


def streams_arrivals(
    traffic: AnyTraffic,
    sizes: SizeDistribution,
) -> bool:
    """Whether a ranking workload's arrivals can be drawn in blocks as a run goes (the same
    numbers as drawn whole): Poisson traffic with sizes other than uniform."""
    return isinstance(traffic, PoissonTraffic) and not isinstance(sizes, UniformSize)


def ranking_streamed(resolved: ResolvedScenario, percentiles: str = "auto") -> bool:
    """Whether a run streams its ranking records (percentiles from sketches): always with
    ``sketch``, never with ``exact``, and with ``auto`` above STREAM_ABOVE_REQUESTS
    expected ranking queries."""
    if percentiles not in PERCENTILE_CHOICES:
        raise ValueError(f"percentiles must be one of {PERCENTILE_CHOICES}, not {percentiles!r}")
    scenario = resolved.scenario
    ranking = [n for n, w in scenario.workloads.items() if isinstance(w, RankingWorkload)]
    if not ranking or percentiles == "exact" or loadgen_ranking(resolved):
        return False
    if percentiles == "sketch":
        return True
    horizon = _horizon_s(resolved)
    expected = sum(
        expected_requests(scenario.workloads[n].traffic, resolved.traces.get(n), horizon)
        for n in ranking
    )
    return expected > STREAM_ABOVE_REQUESTS


def loadgen_ranking(resolved: ResolvedScenario) -> list[str]:
    """The ranking workloads with offline or closed-loop traffic: a closed loop learns
    its arrivals as it runs and an offline summary reads every completion, so their
    fleet keeps every record and such a run never streams."""
    return [
        n
        for n, w in resolved.scenario.workloads.items()
        if isinstance(w, RankingWorkload)
        and isinstance(w.traffic, ClosedLoopTraffic | OfflineTraffic)
    ]


def loadgen_sketch_problems(resolved: ResolvedScenario, percentiles: str) -> list[Problem]:
    """``--percentiles sketch`` asks a run to stream its ranking records, which an
    offline or closed-loop ranking workload cannot."""
    if percentiles != "sketch":
        return []
    scenario = resolved.scenario
    return [
        resolved.problem(
            ("workloads", name, "traffic", "kind"),
            f"{scenario.workloads[name].traffic.kind} traffic keeps every record: run it "
            "with --percentiles exact or auto",
        )
        for name in loadgen_ranking(resolved)
    ]


def _bytes_per_request(workload: object, streamed: bool) -> float:
    if isinstance(workload, RankingWorkload) and streamed:
        whole = not streams_arrivals(workload.traffic, workload.items_per_query)
        return RANKING_QUEUED_QUERY_BYTES + (ARRIVAL_BYTES if whole else 0)
    if not isinstance(workload, LLMWorkload):
        return RANKING_QUERY_BYTES + RANKING_BATCH_BYTES
    modes = workload.modes
    share = modes.contemplating / (modes.instant + modes.thinking + modes.contemplating)
    branches = workload.contemplating.branches if workload.contemplating else 0
    sequences = 1.0 + share * branches  # the branches, then the aggregation
    return LLM_REQUEST_BYTES + LLM_ITERATION_BYTES * LLM_ITERATIONS_PER_SEQUENCE * sequences


def memory_estimate_bytes(
    resolved: ResolvedScenario, percentiles: str = "auto"
) -> dict[str, float]:
    """At most about how many bytes a run holds at its peak, by workload: expected requests
    x bytes per request (its records with their batch or iteration records, or its objects
    while queued if the fleet cannot keep up) plus the arrays of its trace. ``percentiles``
    as the run's (see :func:`ranking_streamed`)."""
    horizon = _horizon_s(resolved)
    streamed = ranking_streamed(resolved, percentiles)
    out = {}
    for name, workload in resolved.scenario.workloads.items():
        trace = resolved.traces.get(name)
        requests = expected_requests(workload.traffic, trace, horizon)
        per_request = _bytes_per_request(workload, streamed)
        out[name] = requests * per_request + (trace.nbytes if trace else 0)
    return out


def machine_memory_bytes() -> int | None:
    """The memory this process may use: physical memory, or a smaller cgroup limit."""
    found: list[int] = []
    with contextlib.suppress(AttributeError, ValueError, OSError):  # no sysconf, or no key
        found.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit, encoding="ascii") as handle:
                text = handle.read(64).strip()
        except OSError:
            continue
        if text.isdigit():
            found.append(int(text))
    found = [n for n in found if n > 0]
    return min(found) if found else None


def default_memory_budget_bytes() -> float | None:
    """The memory a run may use unless told otherwise: a share of the machine's (None when
    it cannot be found out, and then no budget applies)."""
    total = machine_memory_bytes()
    return None if total is None else MEMORY_SHARE * total


def memory_budget_problems(
    resolved: ResolvedScenario, max_bytes: float | None = None, percentiles: str = "auto"
) -> list[Problem]:
    """A run expected to need more memory than ``max_bytes`` (default: half the
    machine's), located at the traffic of the workload that needs the most."""
    if max_bytes is None:
        max_bytes = default_memory_budget_bytes()
        if max_bytes is None:
            return []
        share = f"{MEMORY_SHARE:.0%} of this machine's memory"
        budget = f"{format_quantity(max_bytes, 'bytes')} ({share})"
    else:
        budget = format_quantity(max_bytes, "bytes")
    by_workload = memory_estimate_bytes(resolved, percentiles)
    total = sum(by_workload.values())
    if total <= max_bytes:
        return []
    name = max(by_workload, key=lambda n: by_workload[n])
    requests = expected_requests(
        resolved.scenario.workloads[name].traffic,
        resolved.traces.get(name),
        _horizon_s(resolved),
    )
    return [
        resolved.problem(
            ("workloads", name, "traffic"),
            f"the run may need up to about {format_quantity(total, 'bytes')} of memory "
            f"(this workload: about {requests:.3g} requests in {_horizon_s(resolved):g} s), "
            f"more than its budget of {budget}: shorten the run or lower the rate "
            "(or give a larger --max-memory)",
        )
    ]
