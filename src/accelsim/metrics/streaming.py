"""Streaming summaries of a long ranking run: what the result document needs, kept in
memory that does not grow with the run.

A run of more than :data:`~accelsim.config.checks.STREAM_ABOVE_REQUESTS` expected
ranking queries (or
one asked for with ``percentiles="sketch"``) gives the ranking fleet a
:class:`RankingStream` as its record sink. The fleet then keeps no per-query or
per-batch records: it hands them over in chunks (arrival blocks, completed
queries, batches), and the stream folds each chunk into

- exact counts and sums: offered, completed and in-flight queries, items, queries
  within the SLA target and those still in flight past it, the latency and queue
  wait sums and maxima (so means are exact);
- per pool, exact sums over the window: batches, items, busy time, dynamic energy,
  clock-weighted busy time and busy time per clock band, and the peak of the
  instantaneous dynamic power (an exact sweep over batch starts and ends: the
  fleet promises that every batch it hands over later starts at or after the
  time it names, so only the batches still running are carried over);
- the timeline in its fixed bins: busy time, dynamic energy and batch items
  integrated over each bin, completions per bin, and arrivals and completions up
  to each bin's end (for the requests in the system);
- percentiles of latency (per pool, merged for the workload) and of queue wait in
  mergeable quantile sketches (:mod:`accelsim.metrics.sketch`), within
  :data:`~accelsim.metrics.sketch.RELATIVE_ERROR` of the exact sample value. The
  result document marks each distribution so computed with ``"method": "sketch"``
  and its ``relative_error``; a distribution without the mark is exact.

Sums are added chunk by chunk, so a streamed mean or energy may differ from the
one-pass figure of a run that kept its records in the last bits. With more than
one workload kind, the totals' peak power adds the streamed fleet's peak to the
others' (an upper bound; exact when the ranking fleet runs alone). The LLM fleet
always keeps its records.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from accelsim.config.checks import ranking_streamed
from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import RankingWorkload
from accelsim.engine.records import BatchRecords, RecordSink, RunRecords, WorkloadRecords
from accelsim.metrics.common import json_float, window_overlap
from accelsim.metrics.confidence import SHOWN_PERCENTILES, order_statistic_ranks, too_few_samples
from accelsim.metrics.power import CLOCK_BANDS, band_busy
from accelsim.metrics.sketch import RELATIVE_ERROR, StreamingDistribution
from accelsim.metrics.timeline import bin_edges, in_system_at, integrate

Percentiles = Literal["auto", "exact", "sketch"]  # config.checks.PERCENTILE_CHOICES


def record_sinks(resolved: ResolvedScenario, percentiles: Percentiles) -> dict[str, RecordSink]:
    """The record sinks a run gets (by workload kind): a :class:`RankingStream` when its
    ranking records are streamed (:func:`accelsim.config.checks.ranking_streamed`), none
    when every record is kept."""
    if ranking_streamed(resolved, percentiles):
        return {"ranking": RankingStream(resolved)}
    return {}


def sketch_interval(dist: StreamingDistribution, percentile: float) -> dict[str, float | None]:
    """A percentile's 95% interval from a sketch: the order statistics at the ranks
    :func:`order_statistic_ranks` gives, each read from the sketch (so within its
    relative error); none for p100."""
    if percentile >= 100 or dist.count == 0:
        return {"low": None, "high": None}
    n = dist.count
    low, high = order_statistic_ranks(n, percentile / 100)

    def at(rank: int | None) -> float | None:
        return None if rank is None else dist.quantile((rank - 1) / max(1, n - 1))

    return {"low": at(low), "high": at(high)}


def streamed_distribution(dist: StreamingDistribution) -> dict[str, Any]:
    """mean, p50, p90, p99 and max (nulls when empty), marked as the sketch's, with the
    percentiles' intervals and the too-few-samples flag of an exact distribution."""
    if dist.count == 0:
        values: dict[str, Any] = dict.fromkeys(("mean", "p50", "p90", "p99", "max"))
    else:
        values = {
            "mean": json_float(dist.total / dist.count),
            "p50": dist.quantile(0.50),
            "p90": dist.quantile(0.90),
            "p99": dist.quantile(0.99),
            "max": json_float(dist.max),
        }
    return {
        **values,
        "ci95": {f"p{p:g}": sketch_interval(dist, p) for p in SHOWN_PERCENTILES},
        "too_few_samples": too_few_samples(dist.count, SHOWN_PERCENTILES[-1]),
        "method": "sketch",
        "relative_error": RELATIVE_ERROR,
    }


class PeakTracker:
    """The largest instantaneous sum of the rates of intervals in [w0, w1), from intervals
    handed over in chunks, each with a time before which no later interval starts."""

    def __init__(self, w0: float, w1: float) -> None:
        self.w0, self.w1 = w0, w1
        self.level = 0.0  # the summed rate of the intervals running at the settled time
        self.peak = 0.0
        self.times = np.zeros(0)  # start and end events not yet swept
        self.deltas = np.zeros(0)

    def add(
        self, starts: np.ndarray, ends: np.ndarray, energy_j: np.ndarray, settled_s: float
    ) -> None:
        s, e = np.maximum(starts, self.w0), np.minimum(ends, self.w1)
        span = ends - starts
        keep = (e > s) & (span > 0)
        rate = energy_j[keep] / span[keep]
        times = np.concatenate((self.times, s[keep], e[keep]))
        deltas = np.concatenate((self.deltas, rate, -rate))
        # At equal times, intervals that end leave before those that start arrive.
        order = np.lexsort((deltas, times))
        times, deltas = times[order], deltas[order]
        ready = int(np.searchsorted(times, settled_s, side="left"))
        if ready:
            levels = self.level + np.cumsum(deltas[:ready])
            self.peak = max(self.peak, float(levels.max()))
            self.level = float(levels[-1])
        self.times, self.deltas = times[ready:], deltas[ready:]


class _WorkloadStream:
    def __init__(self, pools: int, target_s: float | None, w0: float, w1: float) -> None:
        self.w0, self.w1 = w0, w1
        self.offered = 0
        self.offered_items = 0
        self.completed = 0
        self.completed_items = 0
        self.latency = [StreamingDistribution() for _ in range(pools)]  # by pool
        self.queue_wait = StreamingDistribution()
        self.target_s = target_s
        self.within_target = 0  # completed within the SLA target
        self.old = 0  # window arrivals older than the target at the window's end ...
        self.old_completed = 0  # ... and those of them completed
        edges = bin_edges(w0, w1)
        self.edges = edges
        self.instants = np.concatenate((edges[1:], [w0 + (w1 - w0) / 2, w1]))
        self.arrived_by = np.zeros(self.instants.size, dtype=np.int64)
        self.finished_by = np.zeros(self.instants.size, dtype=np.int64)
        self.completed_per_bin = np.zeros(edges.size - 1, dtype=np.int64)

    def arrivals(self, times: np.ndarray, items: np.ndarray) -> None:
        in_window = (times >= self.w0) & (times < self.w1)
        self.offered += int(in_window.sum())
        self.offered_items += int(items[in_window].sum())
        if self.target_s is not None:
            self.old += int((in_window & (times < self.w1 - self.target_s)).sum())
        self.arrived_by += np.searchsorted(times, self.instants, side="right")

    def completions(self, chunk: WorkloadRecords, pool_of: np.ndarray) -> None:
        arrival, finish = chunk.arrival_s, chunk.finish_s
        self.finished_by += np.searchsorted(np.sort(finish), self.instants, side="right")
        self.completed_per_bin += np.histogram(finish, bins=self.edges)[0]
        done = (arrival >= self.w0) & (arrival < self.w1)
        self.completed += int(done.sum())
        self.completed_items += int(chunk.items[done].sum())
        latency = finish[done] - arrival[done]
        pools = pool_of[chunk.station[done]]
        for p, dist in enumerate(self.latency):
            dist.add(latency[pools == p])
        self.queue_wait.add(chunk.start_s[done] - arrival[done])
        if self.target_s is not None:
            self.within_target += int((latency <= self.target_s).sum())
            self.old_completed += int((arrival[done] < self.w1 - self.target_s).sum())

    def all_latency(self) -> StreamingDistribution:
        merged = StreamingDistribution()
        for dist in self.latency:
            merged.merge(dist)
        return merged

    def in_system_at(self, times: np.ndarray) -> np.ndarray:
        """Queries arrived and not finished at each of ``times`` (instants it tracks)."""
        at = [int(np.flatnonzero(self.instants == t)[0]) for t in times]
        return (self.arrived_by[at] - self.finished_by[at]).astype(np.int64)


class _PoolStream:
    def __init__(self, w0: float, w1: float) -> None:
        self.w0, self.w1 = w0, w1
        self.batches = 0  # batches overlapping the window
        self.items = 0  # their items
        self.busy_s = 0.0
        self.dynamic_j = 0.0  # dynamic energy inside the window
        self.clock_busy_s = 0.0  # sum of clock ratio x busy time
        self.band_s = np.zeros(len(CLOCK_BANDS) + 1)  # busy time per clock band ...
        self.band_seen = np.zeros(len(CLOCK_BANDS) + 1, dtype=bool)  # ... and which occur
        self.peak = PeakTracker(w0, w1)
        self.edges = bin_edges(w0, w1)
        bins = self.edges.size - 1
        self.bin_busy_s, self.bin_dynamic_j, self.bin_items_s = (np.zeros(bins) for _ in "abc")

    def add(self, b: BatchRecords, settled_s: float) -> None:
        overlap, share = window_overlap(b.start_s, b.end_s, self.w0, self.w1)
        counted = share > 0
        self.batches += int(counted.sum())
        self.items += int(b.items[counted].sum())
        self.busy_s += float(overlap.sum())
        self.dynamic_j += float((b.dynamic_energy_j * share).sum())
        self.clock_busy_s += float((b.clock_ratio * overlap).sum())
        sums, seen = band_busy(overlap, b.clock_ratio)
        self.band_s += sums
        self.band_seen |= seen
        self.peak.add(b.start_s, b.end_s, b.dynamic_energy_j, settled_s)
        span = b.end_s - b.start_s
        rate = np.divide(
            b.dynamic_energy_j, span, out=np.zeros_like(b.dynamic_energy_j), where=span > 0
        )
        self.bin_busy_s += integrate(b.start_s, b.end_s, np.ones_like(span), self.edges)
        self.bin_dynamic_j += integrate(b.start_s, b.end_s, rate, self.edges)
        self.bin_items_s += integrate(b.start_s, b.end_s, b.items, self.edges)


class RankingStream:
    """The ranking fleet's record sink: streaming summaries (see the module docstring)."""

    def __init__(self, resolved: ResolvedScenario) -> None:
        scenario = resolved.scenario
        self.w0 = scenario.simulation.warmup_s
        self.w1 = self.w0 + scenario.simulation.duration_s
        self.pool_names = [
            p for p, pool in scenario.pools.items() if pool.serves[0] in self._ranking(resolved)
        ]
        self.pools = {p: _PoolStream(self.w0, self.w1) for p in self.pool_names}
        self.workloads: dict[str, _WorkloadStream] = {}
        for name in self._ranking(resolved):
            wl = scenario.workloads[name]
            target = wl.sla.latency_s if isinstance(wl, RankingWorkload) and wl.sla else None
            self.workloads[name] = _WorkloadStream(len(self.pool_names), target, self.w0, self.w1)
        self.fleet_peak = PeakTracker(self.w0, self.w1)
        self.pool_of = np.zeros(0, dtype=np.int64)  # pool index of each station

    @staticmethod
    def _ranking(resolved: ResolvedScenario) -> list[str]:
        return [n for n, w in resolved.scenario.workloads.items() if isinstance(w, RankingWorkload)]

    def stations(self, stations: tuple[Any, ...]) -> None:
        self.pool_of = np.array([self.pool_names.index(s.pool) for s in stations], dtype=np.int64)

    def arrivals(self, workload: str, arrival_s: np.ndarray, items: np.ndarray) -> None:
        self.workloads[workload].arrivals(arrival_s, items)

    def completions(self, workload: str, chunk: Any) -> None:
        self.workloads[workload].completions(chunk, self.pool_of)

    def units(self, chunk: Any, settled_s: float) -> None:
        b: BatchRecords = chunk
        self.fleet_peak.add(b.start_s, b.end_s, b.dynamic_energy_j, settled_s)
        pools = self.pool_of[b.station]
        for p, name in enumerate(self.pool_names):
            sel = pools == p
            if sel.any():
                self.pools[name].add(_select(b, sel), settled_s)


def _select(b: BatchRecords, sel: np.ndarray) -> BatchRecords:
    return BatchRecords(
        workload=b.workload[sel],
        station=b.station[sel],
        device=b.device[sel],
        start_s=b.start_s[sel],
        end_s=b.end_s[sel],
        items=b.items[sel],
        dynamic_energy_j=b.dynamic_energy_j[sel],
        clock_ratio=b.clock_ratio[sel],
    )


def streams(records: RunRecords) -> list[RankingStream]:
    """The streaming summaries a run's fleets went to (none when every record was kept)."""
    found = (records.streamed(kind) for kind in records.fleets)
    return [s for s in found if isinstance(s, RankingStream)]


def in_system(records: RunRecords, workload: str, times: np.ndarray) -> np.ndarray:
    """Requests of a workload in the system at each of ``times`` (the timeline's bin ends
    or the backlog check's instants), from its records or its stream."""
    for stream in streams(records):
        if workload in stream.workloads:
            return stream.workloads[workload].in_system_at(times)
    rec = records.requests(workload)
    return in_system_at(rec.arrival_s, rec.finish_s, times)


def completed_per_bin(records: RunRecords, workload: str, edges: np.ndarray) -> np.ndarray:
    """Completions of a workload in each bin of the timeline."""
    for stream in streams(records):
        if workload in stream.workloads:
            return stream.workloads[workload].completed_per_bin
    rec = records.requests(workload)
    return np.histogram(rec.finish_s[~np.isnan(rec.finish_s)], bins=edges)[0]
