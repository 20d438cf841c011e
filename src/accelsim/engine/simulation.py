"""The SimPy engine: arrivals, routing, dynamic batching and chips.

Design for speed: one SimPy event per arrival and one per batch (plus a timer
when a batcher waits for more work); no process per request; batch costs come
memoised from the pure cost model; records go into compact typed arrays.

A *station* is a set of identical chips taking work from one queue per
workload. With ``round_robin`` or ``join_shortest_queue`` routing every chip
is its own station; with ``shared_queue`` each pool is one station whose idle
chips all pull from the same queues (the M/D/c arrangement).

Dynamic batching (per station): when a chip is idle and a workload's queue
holds ``max_batch_items`` items (or ``max_batch_queries`` queries), or its
oldest query has waited ``max_wait_s``, the chip takes up to those limits from
the head of that queue (the oldest ready queue first). A query larger than a batch is
split; it completes when its last piece does.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy
from simpy.events import NORMAL, Event

from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import (
    Batching,
    BurstyTraffic,
    DiurnalTraffic,
    LLMModel,
    LLMWorkload,
    PoissonTraffic,
    RankingModel,
)
from accelsim.engine.arrivals import arrival_times, sample_arrivals, workload_rng
from accelsim.engine.llm import IterationLog, LLMReplica, LLMWorkloadState, sample_requests
from accelsim.errors import ConfigError, Problem
from accelsim.model.llm import LLMCostModel
from accelsim.model.power import ClockPolicy, clocked
from accelsim.model.ranking import RankingCostModel

_EPS = 1e-12


def _frozen(buffer: array[Any]) -> np.ndarray:
    """A record buffer as its own numpy array (the dtype follows the array's typecode)."""
    return np.array(buffer)


def _at(env: simpy.Environment, delay: float, callback: Callable[[Any], None]) -> None:
    """Call ``callback`` after ``delay``: a bare, already-triggered event scheduled
    directly (what ``env.timeout`` does, without its checks and bookkeeping)."""
    event = Event.__new__(Event)
    event.env = env
    event.callbacks = [callback]
    event._ok = True
    event._value = None
    env.schedule(event, NORMAL, delay)


@dataclass(frozen=True)
class WorkloadRecords:
    name: str
    arrival_s: np.ndarray
    items: np.ndarray
    start_s: np.ndarray  # first piece dispatched (nan if never)
    finish_s: np.ndarray  # nan while in flight
    station: np.ndarray  # station index each query was routed to


@dataclass(frozen=True)
class BatchRecords:
    workload: np.ndarray
    station: np.ndarray
    device: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    items: np.ndarray
    dynamic_energy_j: np.ndarray
    clock_ratio: np.ndarray


@dataclass(frozen=True)
class StationInfo:
    pool: str
    devices: int


@dataclass(frozen=True)
class LLMRecords:
    name: str
    arrival_s: np.ndarray
    mode: np.ndarray  # index into accelsim.engine.llm.MODES
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray  # tokens of the user-visible final sequence
    first_token_s: np.ndarray  # nan until the user sees a first token
    finish_s: np.ndarray  # nan while in flight
    rejected: np.ndarray  # bool: could never fit a replica's KV cache
    generated_tokens: np.ndarray  # every token generated for the request (incl. branches)
    replica: np.ndarray  # replica of the final sequence (-1 if not yet routed)
    branches_spawned: np.ndarray
    branches_done: np.ndarray


@dataclass(frozen=True)
class IterationRecords:
    replica: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    sequences: np.ndarray
    prefill_tokens: np.ndarray
    kv_tokens: np.ndarray  # mean over the record
    dynamic_energy_j: np.ndarray  # whole replica
    clock_ratio: np.ndarray
    steps: np.ndarray  # iterations in the record (coalesced decode spans hold many)


@dataclass(frozen=True)
class ReplicaInfo:
    pool: str
    chips: int
    kv_capacity_tokens: int
    max_kv_tokens: int
    preemptions: int


@dataclass(frozen=True)
class RunRecords:
    """Everything a run produced, for the metrics layer to summarise."""

    warmup_s: float
    end_s: float
    workloads: dict[str, WorkloadRecords]  # ranking
    batches: BatchRecords
    stations: tuple[StationInfo, ...]
    llm: dict[str, LLMRecords]
    iterations: IterationRecords
    replicas: tuple[ReplicaInfo, ...]


class _Query:
    __slots__ = ("arrival_s", "index", "pieces", "remaining")

    def __init__(self, index: int, items: int, arrival_s: float) -> None:
        self.index = index
        self.remaining = items  # items not yet dispatched
        self.arrival_s = arrival_s
        self.pieces = 0  # pieces dispatched and not finished


class _WorkloadState:
    def __init__(self, name: str, index: int, times: np.ndarray, items: np.ndarray) -> None:
        self.name = name
        self.index = index
        self.times = times
        self.items = items
        n = len(times)
        self.start = array("d", bytes(8 * n))
        self.finish = array("d", bytes(8 * n))
        self.station = array("i", bytes(4 * n))
        self.started = bytearray(n)
        self.finished = bytearray(n)


class _Batches:
    def __init__(self) -> None:
        self.workload = array("i")
        self.station = array("i")
        self.device = array("i")
        self.start = array("d")
        self.end = array("d")
        self.items = array("q")
        self.energy = array("d")
        self.clock = array("d")


class _Station:
    def __init__(
        self,
        sim: _Sim,
        index: int,
        pool: str,
        devices: list[int],
        batching: Batching,
        costs: dict[int, RankingCostModel],
        clock: ClockPolicy,
        idle_w: float,
    ) -> None:
        self.sim = sim
        self.index = index
        self.pool = pool
        self.n_devices = len(devices)
        self.idle = list(reversed(devices))
        self.max_items = batching.max_batch_items
        self.max_queries = batching.max_batch_queries or batching.max_batch_items
        self.max_wait = batching.max_wait_s
        self.costs = costs
        self.queues: dict[int, deque[_Query]] = {w: deque() for w in costs}
        self.queued_items: dict[int, int] = dict.fromkeys(costs, 0)
        self.single = next(iter(self.queues.items())) if len(self.queues) == 1 else None
        self.outstanding = 0  # queries routed here and not finished
        self.track_work = sim.track_work  # only least_work routing needs the estimate
        self.work_s = 0.0  # estimated chip-seconds of work routed here and not finished
        self.per_item_s: dict[int, float] = {}  # estimated seconds per item, by workload
        self.timer_at = float("inf")
        # Batch time and energy by size, per workload: the cost model's memo, flattened.
        self.clock = clock
        self.idle_w = idle_w
        # Batch time, energy and clock by size, per workload: the cost model's memo, flattened.
        self.time_by_size: dict[int, dict[int, tuple[float, float, float]]] = {w: {} for w in costs}

    def load(self) -> float:
        return self.outstanding / self.n_devices

    def item_cost_s(self, w: int) -> float:
        """Estimated seconds per item: a full batch's time over its items."""
        cost = self.per_item_s.get(w)
        if cost is None:
            full = clocked(self.costs[w].batch(self.max_items), self.idle_w, self.clock)
            cost = self.per_item_s[w] = full.time_s / self.max_items
        return cost

    def enqueue(self, w: int, query: _Query) -> None:
        self.queues[w].append(query)
        self.queued_items[w] += query.remaining
        self.outstanding += 1
        if self.track_work:
            self.work_s += query.remaining * self.item_cost_s(w)
        if self.idle:
            self.dispatch()

    def dispatch(self) -> None:
        now = self.sim.env.now
        if self.single is not None:
            self._dispatch_single(now)
            return
        queues = self.queues
        while self.idle:
            best = -1
            best_t = float("inf")
            next_deadline = float("inf")
            for w, queue in queues.items():
                if not queue:
                    continue
                head_t = queue[0].arrival_s
                deadline = head_t + self.max_wait
                if (
                    now + _EPS >= deadline
                    or self.queued_items[w] >= self.max_items
                    or len(queue) >= self.max_queries
                ):
                    if head_t < best_t:
                        best, best_t = w, head_t
                elif deadline < next_deadline:
                    next_deadline = deadline
            if best < 0:
                if next_deadline < self.timer_at:
                    self.timer_at = next_deadline
                    _at(self.sim.env, next_deadline - now, self._on_timer)
                return
            self._start(best, now)

    def _dispatch_single(self, now: float) -> None:
        """:meth:`dispatch` for the common station that serves one workload."""
        w, queue = self.single  # type: ignore[misc]
        idle = self.idle
        while idle and queue:
            deadline = queue[0].arrival_s + self.max_wait
            if (
                now + _EPS >= deadline
                or self.queued_items[w] >= self.max_items
                or len(queue) >= self.max_queries
            ):
                self._start(w, now)
            else:
                if deadline < self.timer_at:
                    self.timer_at = deadline
                    _at(self.sim.env, deadline - now, self._on_timer)
                return

    def _on_timer(self, _event: Any) -> None:
        self.timer_at = float("inf")
        self.dispatch()

    def _start(self, w: int, now: float) -> None:
        queue = self.queues[w]
        state = self.sim.workloads[w]
        started, start = state.started, state.start
        max_items, max_queries = self.max_items, self.max_queries
        taken = 0
        members: list[_Query] = []
        while queue and taken < max_items and len(members) < max_queries:
            query = queue[0]
            n = query.remaining
            if n > max_items - taken:
                n = max_items - taken
            query.remaining -= n
            query.pieces += 1
            taken += n
            members.append(query)
            index = query.index
            if not started[index]:
                started[index] = 1
                start[index] = now
            if query.remaining == 0:
                queue.popleft()
        self.queued_items[w] -= taken
        device = self.idle.pop()
        cached = self.time_by_size[w].get(taken)
        if cached is None:
            cost = clocked(self.costs[w].batch(taken), self.idle_w, self.clock)
            cached = (cost.time_s, cost.dynamic_energy_j, cost.clock_ratio)
            self.time_by_size[w][taken] = cached
        time_s, energy_j, ratio = cached
        batches = self.sim.batches
        batches.workload.append(w)
        batches.station.append(self.index)
        batches.device.append(device)
        batches.start.append(now)
        batches.end.append(now + time_s)
        batches.items.append(taken)
        batches.energy.append(energy_j)
        batches.clock.append(ratio)
        work = taken * self.item_cost_s(w) if self.track_work else 0.0
        _at(self.sim.env, time_s, _Finish(self, state, device, members, work))


class _Finish:
    """What happens when a batch ends: its queries may complete, its chip frees up."""

    __slots__ = ("device", "members", "state", "station", "work_s")

    def __init__(
        self,
        station: _Station,
        state: _WorkloadState,
        device: int,
        members: list[_Query],
        work_s: float,
    ) -> None:
        self.station = station
        self.state = state
        self.device = device
        self.members = members
        self.work_s = work_s

    def __call__(self, _event: Any) -> None:
        station, state = self.station, self.state
        now = station.sim.env.now
        for query in self.members:
            query.pieces -= 1
            if query.remaining == 0 and query.pieces == 0:
                state.finished[query.index] = 1
                state.finish[query.index] = now
                station.outstanding -= 1
        if self.work_s:
            station.work_s = max(0.0, station.work_s - self.work_s)
        station.idle.append(self.device)
        station.dispatch()


class _Sim:
    def __init__(self, resolved: ResolvedScenario, coalesce: bool = True) -> None:
        scenario = resolved.scenario
        sim = scenario.simulation
        self.env = simpy.Environment()
        self.warmup_s = sim.warmup_s
        self.end_s = sim.warmup_s + sim.duration_s
        self.batches = _Batches()
        self.iterations = IterationLog()
        self.track_work = scenario.router.policy == "least_work"
        names = list(scenario.workloads)
        budget_problems = [
            resolved.problem(("workloads", name, "traffic"), message)
            for name, message in arrival_budget_problems(resolved)
        ]
        if budget_problems:
            raise ConfigError(budget_problems)
        self.workloads: list[_WorkloadState] = []  # ranking
        self.llm: dict[int, LLMWorkloadState] = {}
        models = resolved.models
        for i, name in enumerate(names):
            workload = scenario.workloads[name]
            rng = workload_rng(sim.seed, name)
            if isinstance(workload, LLMWorkload):
                model = models[name]
                assert isinstance(model, LLMModel)
                trace = resolved.traces.get(name)
                times, given = arrival_times(workload.traffic, trace, self.end_s, rng)
                per_image = model.vision.tokens_per_image if model.vision else 0
                requests = sample_requests(workload, times, per_image, rng, given)
                self.llm[i] = LLMWorkloadState(name, i, requests, self.route_llm, self._now)
            else:
                times, items = sample_arrivals(
                    workload.traffic,
                    workload.items_per_query,
                    resolved.traces.get(name),
                    self.end_s,
                    rng,
                )
                self.workloads.append(_WorkloadState(name, i, times, items))
        self._ranking_index = {state.index: k for k, state in enumerate(self.workloads)}

        self.stations: list[_Station] = []
        self.replicas: list[LLMReplica] = []
        routes: dict[int, list[_Station]] = {i: [] for i in range(len(names))}
        llm_routes: dict[int, list[LLMReplica]] = {i: [] for i in self.llm}
        shared = scenario.router.policy == "shared_queue"
        problems: list[Problem] = []
        policies = clock_policies(resolved, problems)
        device = 0
        for pool_name, pool in scenario.pools.items():
            chip = resolved.chips[pool_name]
            served = [names.index(w) for w in pool.serves]
            if served[0] in self.llm:
                w = served[0]
                model = models[names[w]]
                assert isinstance(model, LLMModel)
                cost = _llm_cost(resolved, pool_name, model, problems)
                clock = policies.get(pool_name)
                if cost is None or clock is None:
                    continue
                for _ in range(pool.count // pool.chips_per_replica):
                    replica = LLMReplica(
                        self.env,
                        len(self.replicas),
                        pool_name,
                        pool.chips_per_replica,
                        cost,
                        pool.continuous_batching,
                        self.llm[w],
                        self.iterations,
                        clock,
                        coalesce,
                    )
                    self.replicas.append(replica)
                    llm_routes[w].append(replica)
                continue
            costs = {}
            for w in served:
                ranking = models[names[w]]
                assert isinstance(ranking, RankingModel)
                costs[self._ranking_index[w]] = RankingCostModel(ranking, chip)
            groups = (
                [list(range(device, device + pool.count))]
                if shared
                else [[d] for d in range(device, device + pool.count)]
            )
            device += pool.count
            clock = policies.get(pool_name)
            if clock is None:
                continue
            for group in groups:
                station = _Station(
                    self,
                    len(self.stations),
                    pool_name,
                    group,
                    pool.batching,
                    costs,
                    clock,
                    chip.power.idle_w,
                )
                self.stations.append(station)
                for w in served:
                    routes[self._ranking_index[w]].append(station)
        if problems:
            raise ConfigError(problems)
        self.routes = {k: v for k, v in routes.items() if v}
        self.llm_routes = llm_routes
        self.policy = scenario.router.policy
        self.round_robin = self.policy == "round_robin"
        self._rr = dict.fromkeys(range(len(names)), 0)

    def _now(self) -> float:
        return float(self.env.now)

    def route(self, w: int, items: int) -> _Station:
        stations = self.routes[w]
        n = len(stations)
        start = self._rr[w]
        self._rr[w] = start + 1 if start + 1 < n else 0
        if self.round_robin or n == 1:
            return stations[start]
        if self.track_work:
            # The station that would finish this query soonest, by its estimated backlog
            # (chip-seconds per chip) plus the query's own work there; ties rotate.
            return min(
                (stations[(start + k) % n] for k in range(n)),
                key=lambda st: (st.work_s + items * st.item_cost_s(w)) / st.n_devices,
            )
        # Join the shortest queue (per chip); ties go round-robin so no pool is favoured.
        best = stations[start]
        best_load = best.outstanding / best.n_devices
        if best_load == 0:
            return best
        for k in range(start + 1, start + n):
            station = stations[k - n if k >= n else k]
            load = station.outstanding / station.n_devices
            if load < best_load:
                if load == 0:
                    return station
                best, best_load = station, load
        return best

    def route_llm(self, w: int) -> LLMReplica:
        """Round robin, or the replica with the fewest sequences waiting and running
        (join_shortest_queue, least_work and shared_queue all route LLM requests so)."""
        replicas = self.llm_routes[w]
        start = self._rr[w]
        self._rr[w] = (start + 1) % len(replicas)
        if self.policy == "round_robin" or len(replicas) == 1:
            return replicas[start]
        n = len(replicas)
        return min((replicas[(start + k) % n] for k in range(n)), key=lambda r: r.outstanding())

    def arrivals(self, state: _WorkloadState) -> None:
        """Feed a ranking workload's pre-sampled arrivals: one bare event per arrival.

        Times and sizes are turned into Python numbers a block at a time, so a long run
        keeps only its compact numpy arrays whole."""
        env = self.env
        all_times, all_sizes = state.times, state.items
        stations_of = state.station
        rank = self._ranking_index[state.index]
        route = self.route
        count = len(all_times)
        block = 1 << 16
        times: list[float] = []
        sizes: list[int] = []
        base = 0  # index of times[0]
        i = 0

        def arrive(_event: Any) -> None:
            nonlocal i, base, times, sizes
            k = i - base
            station = route(rank, sizes[k])
            stations_of[i] = station.index
            station.enqueue(rank, _Query(i, sizes[k], times[k]))
            i += 1
            if i < count:
                if k + 1 == len(times):
                    base = i
                    times = all_times[i : i + block].tolist()
                    sizes = all_sizes[i : i + block].tolist()
                    k = -1
                _at(env, times[k + 1] - env.now, arrive)

        if count:
            times = all_times[:block].tolist()
            sizes = all_sizes[:block].tolist()
            _at(env, times[0], arrive)

    def llm_arrivals(self, state: LLMWorkloadState) -> Any:
        env = self.env
        for i, t in enumerate(state.requests.arrival_s.tolist()):
            delay = t - env.now
            if delay > 0:
                yield env.timeout(delay)
            state.arrive(i)

    def run(self, progress: Callable[[float], None] | None = None) -> RunRecords:
        for state in self.workloads:
            self.arrivals(state)
        for llm_state in self.llm.values():
            if len(llm_state.requests.arrival_s):
                self.env.process(self.llm_arrivals(llm_state))
        if progress is None:
            self.env.run(until=self.end_s)
        else:
            steps = 50
            for k in range(1, steps + 1):
                self.env.run(until=self.end_s * k / steps)
                progress(k / steps)
        return self._records()

    def _records(self) -> RunRecords:
        workloads = {}
        for state in self.workloads:
            start = _frozen(state.start)
            finish = _frozen(state.finish)
            start[np.frombuffer(state.started, dtype=np.uint8) == 0] = np.nan
            finish[np.frombuffer(state.finished, dtype=np.uint8) == 0] = np.nan
            workloads[state.name] = WorkloadRecords(
                name=state.name,
                arrival_s=state.times,
                items=state.items,
                start_s=start,
                finish_s=finish,
                station=_frozen(state.station),
            )
        llm = {}
        for llm_state in self.llm.values():
            r = llm_state.requests
            llm[llm_state.name] = LLMRecords(
                name=llm_state.name,
                arrival_s=r.arrival_s,
                mode=r.mode,
                prompt_tokens=r.prompt_tokens,
                output_tokens=r.output_tokens,
                first_token_s=_frozen(llm_state.first_token),
                finish_s=_frozen(llm_state.finish),
                rejected=np.frombuffer(llm_state.rejected, dtype=np.uint8).astype(bool),
                generated_tokens=_frozen(llm_state.generated),
                replica=_frozen(llm_state.replica),
                branches_spawned=_frozen(llm_state.branches_spawned),
                branches_done=_frozen(llm_state.branches_done),
            )
        b = self.batches
        batches = BatchRecords(
            workload=_frozen(b.workload),
            station=_frozen(b.station),
            device=_frozen(b.device),
            start_s=_frozen(b.start),
            end_s=_frozen(b.end),
            items=_frozen(b.items),
            dynamic_energy_j=_frozen(b.energy),
            clock_ratio=_frozen(b.clock),
        )
        it = self.iterations
        iterations = IterationRecords(
            replica=_frozen(it.replica),
            start_s=_frozen(it.start),
            end_s=_frozen(it.end),
            sequences=_frozen(it.sequences),
            prefill_tokens=_frozen(it.prefill_tokens),
            kv_tokens=_frozen(it.kv_tokens),
            steps=_frozen(it.steps),
            dynamic_energy_j=_frozen(it.energy),
            clock_ratio=_frozen(it.clock),
        )
        stations = tuple(StationInfo(s.pool, s.n_devices) for s in self.stations)
        replicas = tuple(
            ReplicaInfo(
                pool=r.pool,
                chips=r.chips,
                kv_capacity_tokens=r.capacity,
                max_kv_tokens=r.max_kv_used,
                preemptions=r.preemptions,
            )
            for r in self.replicas
        )
        return RunRecords(
            self.warmup_s, self.end_s, workloads, batches, stations, llm, iterations, replicas
        )


MAX_ARRIVALS = 100_000_000  # about 10 GB of records: far past what one run should hold


def arrival_budget_problems(resolved: ResolvedScenario) -> list[tuple[str, str]]:
    """Workloads whose traffic would need more arrivals than a run can hold."""
    sim = resolved.scenario.simulation
    horizon = sim.warmup_s + sim.duration_s
    out = []
    for name, workload in resolved.scenario.workloads.items():
        traffic = workload.traffic
        if isinstance(traffic, BurstyTraffic):
            rate = max(traffic.rate_per_s, traffic.burst_rate_per_s)
        elif isinstance(traffic, PoissonTraffic | DiurnalTraffic):
            rate = traffic.rate_per_s * (1 + getattr(traffic, "amplitude", 0.0))
        else:
            continue
        expected = rate * horizon
        if expected > MAX_ARRIVALS:
            out.append(
                (
                    name,
                    f"about {expected:.3g} arrivals in {horizon:g} s, more than the "
                    f"{MAX_ARRIVALS:.0e} one run can hold: shorten the run or lower the rate",
                )
            )
    return out


def chip_caps_w(resolved: ResolvedScenario) -> dict[str, float]:
    """Each pool's per-chip power cap: its own cap (default TDP), lowered in proportion
    when a facility budget with the ``cap`` policy cannot feed the fleet's TDP."""
    scenario = resolved.scenario
    caps = {
        name: pool.power_cap_w or resolved.chips[name].power.tdp_w
        for name, pool in scenario.pools.items()
    }
    facility = scenario.facility
    if facility.power_budget_w is not None and facility.budget_policy == "cap":
        it_budget = facility.power_budget_w / facility.pue
        fleet = sum(caps[name] * pool.count for name, pool in scenario.pools.items())
        if fleet > it_budget:
            caps = {name: cap * it_budget / fleet for name, cap in caps.items()}
    return caps


def clock_policies(resolved: ResolvedScenario, problems: list[Problem]) -> dict[str, ClockPolicy]:
    """The clock policy of every pool whose cap leaves room above idle power."""
    policies = {}
    for name, cap in chip_caps_w(resolved).items():
        pool = resolved.scenario.pools[name]
        chip = resolved.chips[name]
        if cap <= chip.power.idle_w:
            at = (
                ("facility", "power_budget_w")
                if pool.power_cap_w is None
                else ("pools", name, "power_cap_w")
            )
            problems.append(
                resolved.problem(
                    at,
                    f"pool {name}: a cap of {cap:.4g} W per chip is not above the idle power of "
                    f"{chip.name} ({chip.power.idle_w:.4g} W)",
                )
            )
            continue
        c = chip.compute
        min_ratio = c.min_clock_hz / c.clock_hz if c.min_clock_hz else 0.5
        policies[name] = ClockPolicy(cap, min_ratio, pool.clock_lock)
    return policies


def _llm_cost(
    resolved: ResolvedScenario, pool_name: str, model: LLMModel, problems: list[Problem]
) -> LLMCostModel | None:
    """The replica cost model, or a located problem when the model cannot run there."""
    pool = resolved.scenario.pools[pool_name]
    chip = resolved.chips[pool_name]
    k = pool.chips_per_replica
    at = ("pools", pool_name, "chips_per_replica")
    if k > 1 and chip.chip_to_chip is None:
        problems.append(
            resolved.problem(at, f"{chip.name} has no chip_to_chip link for tensor parallelism")
        )
        return None
    cost = LLMCostModel(model, chip, k, pool.continuous_batching.kv_memory_fraction)
    if cost.capacity.kv_capacity_tokens < 1:
        need = cost.capacity.min_chips
        problems.append(
            resolved.problem(
                at,
                f"{model.name} ({cost.shape.weight_bytes / 2**30:.1f} GiB of weights) does not "
                f"fit the DRAM of a replica of {k} {chip.name} chip(s); "
                f"it needs chips_per_replica >= {need}"
                + ("" if chip.chip_to_chip else " (and a chip with a chip_to_chip link)"),
            )
        )
        return None
    return cost


def simulate(
    resolved: ResolvedScenario,
    progress: Callable[[float], None] | None = None,
    *,
    coalesce: bool = True,
) -> RunRecords:
    """Run one scenario to its end time and return the raw records.

    ``progress``, if given, is called with the share of simulated time done.
    ``coalesce=False`` steps every LLM iteration as its own event (the reference path).
    """
    return _Sim(resolved, coalesce).run(progress)
