"""The ranking fleet: queries, dynamic batching, stations and chips.

Design for speed: one SimPy event per arrival and one per batch (plus a timer
when a batcher waits for more work); no process per query; batch costs come
memoised from the pure cost model; records go into compact typed arrays.
Arrivals and batching deadlines fall due mostly in the order they are scheduled,
so they wait in the clock's lanes rather than its heap (``engine/events.py``). A
thousand-chip pool's stations are visited in turn, each long after its last
visit, so a station keeps only its own state (what its pool's stations share is
kept once, on the pool) and each visit fetches as little memory as it can.

A *station* is a set of identical chips taking work from one queue per
workload. Under most routing policies every chip is its own station; a policy
with a pool queue (``shared_queue``) makes each pool one station whose idle
chips all pull from the same queues (the M/D/c arrangement).

Dynamic batching (per station): when a chip is idle and a workload's queue
holds ``max_batch_items`` items (or ``max_batch_queries`` queries), or its
oldest query has waited ``max_wait_s``, the chip takes up to those limits from
the head of that queue (the oldest ready queue first). A query larger than a batch is
split; it completes when its last piece does.

Double-buffered input (chips whose host link has a DMA engine, ``host_link.dma``):
a batch's input copy and its compute are two
stages. A chip takes its next batch as soon as this one starts computing (its
copy is done and the previous batch's buffer is free), so the next copy runs
during this compute; a batch computes once its copy is done and the previous
batch has finished. Back to back, batches then leave every max(copy, rest)
seconds; a batch that finds the chip idle still takes copy + rest. A chip ready
for work is not announced by an event of its own: it waits in ``pending`` and
is taken up by the next dispatch, which schedules a wake-up only when work is
already waiting for it. Each batch is recorded from when it has the chip to
itself (its start, or the end of the previous batch's compute if later) to
the end of its compute, so a chip's batches never overlap in the records.

Records: per query (arrival, size, first dispatch, finish, station) and per
batch, in typed arrays indexed by query. Given a record sink (a long run), the
fleet keeps none of that: it draws arrivals in blocks as the run needs them
(:func:`~accelsim.engine.arrivals.streamed_arrivals`) and hands over each block,
each chunk of completed queries and each chunk of batches as it fills.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from accelsim.config.schema import Batching, ClosedLoopTraffic, RankingModel
from accelsim.engine.arrivals import (
    STREAM_BLOCK,
    sample_arrivals,
    streamed_arrivals,
    workload_rng,
)
from accelsim.engine.facility import PoolMeter
from accelsim.engine.fleet import FleetContext
from accelsim.engine.loadgen import ClosedLoop, size_blocks, think_rng
from accelsim.engine.records import (
    CHUNK,
    BatchRecords,
    RankingRecords,
    RecordSink,
    StationInfo,
    WorkloadRecords,
    frozen,
)
from accelsim.model.power import ClockedCost, ClockPolicy, clocked
from accelsim.model.ranking import RankingCostModel

_EPS = 1e-12
_NEVER = math.inf  # one object, not a new float each time


class _Query:
    __slots__ = ("arrival_s", "index", "items", "pieces", "remaining", "start_s")

    def __init__(self, index: int, items: int, arrival_s: float) -> None:
        self.index = index
        self.items = items
        self.remaining = items  # items not yet dispatched
        self.arrival_s = arrival_s
        self.pieces = 0  # pieces dispatched and not finished
        self.start_s = -1.0  # first piece dispatched (none yet)


class _Queue(deque[_Query]):
    """A workload's queue at a station, and how many of its items are not dispatched."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        super().__init__()
        self.items = 0


class _Device:
    """A chip of a station: its number in the fleet and, with double-buffered input, its
    latest batch's compute end and finish."""

    __slots__ = ("index", "last_batch", "last_end")

    def __init__(self, index: int) -> None:
        self.index = index
        self.last_end = 0.0  # no batch yet
        self.last_batch: _Finish | None = None


class _WorkloadState:
    """One workload's arrivals and what it records: per query in arrays indexed by query
    (``start``, ``finish``, ``station``, NaN until set), or, given a sink, completed
    queries in a chunk that goes to the sink when it fills (the arrays are then None)."""

    def __init__(
        self,
        name: str,
        index: int,
        times: np.ndarray | None,
        items: np.ndarray | None,
        sink: RecordSink | None,
        blocks: Iterator[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        self.name = name
        self.index = index
        self.times = times
        self.items = items
        self.sink = sink
        self.blocks = blocks  # streamed arrivals (times and items None)
        self.start: array[float] | None = None
        self.finish: array[float] | None = None
        self.station: array[int] | None = None
        if sink is None:
            assert times is not None
            n = len(times)
            unset = np.full(n, np.nan).tobytes()
            self.start = array("d", unset)
            self.finish = array("d", unset)
            self.station = array("i", bytes(4 * n))
        self._done = _Completed()
        # A closed loop's users and what it has sent (its times and items stay empty).
        self.loop: ClosedLoop | None = None
        self.sent_times = array("d")
        self.sent_items = array("q")
        self.sizes: Iterator[int] | None = None  # a closed loop's sizes, as it sends
        self.on_done: Callable[[], None] | None = None  # hears of every completion

    def arrival_blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Arrival times and sizes, a block at a time (each handed to the sink, if any)."""
        if self.blocks is not None:
            blocks = self.blocks
        else:
            assert self.times is not None and self.items is not None
            times, items = self.times, self.items
            blocks = (
                (times[i : i + STREAM_BLOCK], items[i : i + STREAM_BLOCK])
                for i in range(0, len(times), STREAM_BLOCK)
            )
        for block in blocks:
            if self.sink is not None:
                self.sink.arrivals(self.name, *block)
            yield block

    def complete(self, query: _Query, station: int, now: float) -> None:
        """A query of a streamed workload completed: into the chunk, which goes when full."""
        done = self._done
        done.arrival.append(query.arrival_s)
        done.items.append(query.items)
        done.start.append(query.start_s)
        done.finish.append(now)
        done.station.append(station)
        if len(done.finish) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        done = self._done
        if self.sink is not None and len(done.finish):
            self.sink.completions(
                self.name,
                WorkloadRecords(
                    name=self.name,
                    arrival_s=frozen(done.arrival),
                    items=frozen(done.items),
                    start_s=frozen(done.start),
                    finish_s=frozen(done.finish),
                    station=frozen(done.station),
                ),
            )
            self._done = _Completed()


class _Completed:
    """A chunk of completed queries (a streamed workload's)."""

    def __init__(self) -> None:
        self.arrival = array("d")
        self.items = array("q")
        self.start = array("d")
        self.finish = array("d")
        self.station = array("i")


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

    def frozen(self) -> BatchRecords:
        return BatchRecords(
            workload=frozen(self.workload),
            station=frozen(self.station),
            device=frozen(self.device),
            start_s=frozen(self.start),
            end_s=frozen(self.end),
            items=frozen(self.items),
            dynamic_energy_j=frozen(self.energy),
            clock_ratio=frozen(self.clock),
        )


class _Pool:
    """What every station of a pool shares: its cost models, clock and meter, its batching
    limits, the memos of batch costs (a thousand-chip pool computes each batch size's cost
    once, not once per chip) and the fleet's lane of batching deadlines. A station keeps
    only its own state, so a large fleet's stations stay small in memory."""

    def __init__(
        self,
        fleet: RankingFleet,
        name: str,
        costs: dict[int, RankingCostModel],
        batching: Batching,
        clock: ClockPolicy,
        idle_w: float,
        meter: PoolMeter,
    ):
        self.fleet = fleet
        self.name = name
        self.costs = costs
        self.max_items = batching.max_batch_items
        self.max_queries = batching.max_batch_queries or batching.max_batch_items
        self.max_wait = batching.max_wait_s
        self.overlap = all(c.overlaps_input for c in costs.values())
        self.track_work = fleet.track_work  # only least_work routing needs the estimate
        self.timers = fleet.deadlines  # the stations' batching deadlines, mostly in order
        self.clock = clock
        self.idle_w = idle_w
        self.meter = meter
        self.per_item_s: dict[int, float] = {}  # estimated seconds per item, by workload
        self.per_item_j: dict[int, float] = {}  # estimated dynamic energy per item
        # Batch time, energy, clock and input copy time by size, per workload: the cost
        # model's memo, flattened.
        self.time_by_size: dict[int, dict[int, tuple[float, float, float, float]]] = {
            w: {} for w in costs
        }
        meter.appliers.append(self.set_clock)

    def set_clock(self, clock: ClockPolicy) -> None:
        """A new clock policy (a shifted cap) for the batches the pool starts from now."""
        self.clock = clock
        for memo in self.time_by_size.values():
            memo.clear()

    def item_cost_s(self, w: int) -> float:
        """Estimated seconds per item: a full batch's time over its items."""
        cost = self.per_item_s.get(w)
        if cost is None:
            cost = self.per_item_s[w] = self._full_batch(w).time_s / self.max_items
        return cost

    def energy_per_item_j(self, w: int) -> float:
        """Estimated marginal energy per item: a full batch's dynamic energy over its
        items, at the pool's clock."""
        energy = self.per_item_j.get(w)
        if energy is None:
            full = self._full_batch(w)
            energy = self.per_item_j[w] = full.dynamic_energy_j / self.max_items
        return energy

    def _full_batch(self, w: int) -> ClockedCost:
        return clocked(self.costs[w].batch(self.max_items), self.idle_w, self.clock)


class _Station:
    __slots__ = (
        "first_ready",
        "idle",
        "index",
        "lone",
        "lone_w",
        "n_devices",
        "outstanding",
        "pending",
        "queues",
        "shared",
        "timer_at",
        "timer_callback",
        "watchers",
        "work_s",
    )

    def __init__(self, shared: _Pool, index: int, devices: list[int]) -> None:
        self.shared = shared
        self.index = index
        self.n_devices = len(devices)
        self.idle = [_Device(d) for d in reversed(devices)]
        # device -> when it can take a batch (overlap)
        self.pending: dict[_Device, float] = {}
        self.first_ready = _NEVER  # the earliest of those times
        self.queues: dict[int, _Queue] = {w: _Queue() for w in shared.costs}
        # The queue of a station that serves one workload (the common case), and its
        # workload: read without the dict.
        only = len(self.queues) == 1
        self.lone_w = next(iter(self.queues)) if only else -1
        self.lone: _Queue | None = self.queues[self.lone_w] if only else None
        self.outstanding = 0  # queries routed here and not finished
        self.work_s = 0.0  # estimated chip-seconds of work routed here and not finished
        # Indexed routers add themselves here, then the fleet freezes it (a tuple keeps
        # its items inline: one object fewer to fetch at every change).
        self.watchers: Sequence[tuple[Callable[[int], None], int]] = []
        self.timer_at = _NEVER
        self.timer_callback = self._on_timer  # made once, not per timer

    def item_cost_s(self, w: int) -> float:
        """Estimated seconds per item here (the pool's; routers read it per unit)."""
        return self.shared.item_cost_s(w)

    def energy_per_item_j(self, w: int) -> float:
        """Estimated marginal energy per item here (the pool's)."""
        return self.shared.energy_per_item_j(w)

    def enqueue(self, w: int, query: _Query) -> None:
        queue = self.lone
        if queue is None:
            queue = self.queues[w]
        queue.append(query)
        queue.items += query.remaining
        self.outstanding += 1
        shared = self.shared
        if shared.track_work:
            self.work_s += query.remaining * shared.item_cost_s(w)
        for moved, position in self.watchers:
            moved(position)
        if self.idle or self.pending:
            self.dispatch()

    def dispatch(self) -> None:
        now = self.shared.fleet.env._now
        pending = self.pending
        if pending and now >= self.first_ready:
            if len(pending) == 1:  # a one-device station: its device is the first ready
                self.idle.append(pending.popitem()[0])
                self.first_ready = _NEVER
            else:
                self.take_up(now)
        lone = self.lone
        if lone is not None:
            self._dispatch_single(now)
            if pending and not self.idle and lone:
                self._wake_when_startable(now)
        else:
            self._dispatch_many(now)
            if pending and not self.idle:
                self._wake_when_startable(now)

    def _wake_when_startable(self, now: float) -> None:
        """With every device busy copying, wake at the first moment a device is free and a
        batch may close (a full queue, or its head's wait deadline): one event that stands
        for both the device's wake-up and the batching timer."""
        shared = self.shared
        ready = self.first_ready
        when = _NEVER
        for queue in self.queues.values():
            if queue:
                if queue.items >= shared.max_items or len(queue) >= shared.max_queries:
                    at = ready
                else:
                    deadline = queue[0].arrival_s + shared.max_wait
                    at = deadline if deadline > ready else ready
                if at < when:
                    when = at
        if when < self.timer_at:
            self.timer_at = when
            shared.timers.call_at(when - now, _Wake(self, when))

    def take_up(self, now: float) -> None:
        """Devices whose double-buffered input slot has come free by ``now`` join the idle
        ones; called only when ``now`` has reached ``first_ready``."""
        pending = self.pending
        for device in [d for d, ready in pending.items() if ready <= now]:
            del pending[device]
            self.idle.append(device)
        self.first_ready = min(pending.values()) if pending else _NEVER

    def _dispatch_many(self, now: float) -> None:
        shared = self.shared
        queues = self.queues
        while self.idle:
            best = -1
            best_t = _NEVER
            next_deadline = _NEVER
            for w, queue in queues.items():
                if not queue:
                    continue
                head_t = queue[0].arrival_s
                deadline = head_t + shared.max_wait
                if (
                    now + _EPS >= deadline
                    or queue.items >= shared.max_items
                    or len(queue) >= shared.max_queries
                ):
                    if head_t < best_t:
                        best, best_t = w, head_t
                elif deadline < next_deadline:
                    next_deadline = deadline
            if best < 0:
                if next_deadline < self.timer_at:
                    self.timer_at = next_deadline
                    shared.timers.call_at(next_deadline - now, self.timer_callback)
                return
            self._start(best, now)

    def _dispatch_single(self, now: float) -> None:
        """:meth:`dispatch` for the common station that serves one workload."""
        w = self.lone_w
        queue: _Queue = self.lone  # type: ignore[assignment]  # called for lone stations
        shared = self.shared
        idle = self.idle
        while idle and queue:
            deadline = queue[0].arrival_s + shared.max_wait
            if (
                now + _EPS >= deadline
                or queue.items >= shared.max_items
                or len(queue) >= shared.max_queries
            ):
                self._start(w, now)
            else:
                if deadline < self.timer_at:
                    self.timer_at = deadline
                    shared.timers.call_at(deadline - now, self.timer_callback)
                return

    def _on_timer(self, _event: Any) -> None:
        self.timer_at = _NEVER
        self.dispatch()

    def _start(self, w: int, now: float) -> None:
        shared = self.shared
        fleet = shared.fleet
        queue = self.queues[w]
        state = fleet.workloads[w]
        start = state.start
        max_items, max_queries = shared.max_items, shared.max_queries
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
            if query.start_s < 0:
                query.start_s = now
                if start is not None:
                    start[query.index] = now
            if query.remaining == 0:
                queue.popleft()
        queue.items -= taken
        device = self.idle.pop()
        cached = shared.time_by_size[w].get(taken)
        if cached is None:
            model = shared.costs[w]
            cost = clocked(model.batch(taken), shared.idle_w, shared.clock)
            # The copy moves bytes only, so the clock leaves its time alone.
            copy_s = model.input_copy_s(taken)
            cached = (cost.time_s, cost.dynamic_energy_j, cost.clock_ratio, copy_s)
            shared.time_by_size[w][taken] = cached
        time_s, energy_j, ratio, copy_s = cached
        shared.meter.busy_s += time_s
        work = taken * shared.item_cost_s(w) if shared.track_work else 0.0
        if shared.overlap:
            # Copy now; compute once the copy is done and the previous batch has finished.
            copy_end = now + copy_s
            previous_end = device.last_end
            if previous_end > copy_end:
                # Waits for the previous batch: the device takes its next batch then.
                end = previous_end + (time_s - copy_s)
                device.last_batch.release = True  # type: ignore[union-attr]
                held_from = previous_end
            else:
                end = copy_end + (time_s - copy_s)
                self.pending[device] = copy_end
                if copy_end < self.first_ready:
                    self.first_ready = copy_end
                held_from = now if now > previous_end else previous_end
            finish = _Finish(self, state, device, members, work, False)
            device.last_batch = finish
            device.last_end = end
            delay = end - now
        else:
            held_from = now
            end = now + time_s
            delay = time_s
            finish = _Finish(self, state, device, members, work, True)
        batches = fleet.batches
        batches.workload.append(w)
        batches.station.append(self.index)
        batches.device.append(device.index)
        batches.start.append(held_from)
        batches.end.append(end)
        batches.items.append(taken)
        batches.energy.append(energy_j)
        batches.clock.append(ratio)
        if fleet.sink is not None and len(batches.end) >= CHUNK:
            fleet.flush_batches(now)
        fleet.env.call_at(delay, finish)


class _Wake:
    """The station's timer when every device is busy with double-buffered input: a
    device's input slot comes free and a waiting batch may close."""

    __slots__ = ("at", "station")

    def __init__(self, station: _Station, at: float) -> None:
        self.station = station
        self.at = at

    def __call__(self, _event: Any) -> None:
        station = self.station
        station.timer_at = _NEVER
        if station.pending and self.at >= station.first_ready:
            # The event's clock may fall an ulp short of ``at``: release by the stored time.
            station.take_up(self.at)
        station.dispatch()


_SPENT: list[_Query] = []  # a fired finish's members (never added to)


class _Finish:
    """What happens when a batch ends: its queries may complete, its chip frees up
    (with double buffering, only if the chip's next batch has not already been taken)."""

    __slots__ = ("device", "members", "release", "state", "station", "work_s")

    def __init__(
        self,
        station: _Station,
        state: _WorkloadState,
        device: _Device,
        members: list[_Query],
        work_s: float,
        release: bool,
    ) -> None:
        self.station = station
        self.state = state
        self.device = device
        self.members = members
        self.work_s = work_s
        self.release = release  # the chip takes its next batch when this one ends

    def __call__(self, _event: Any) -> None:
        station, state = self.station, self.state
        now = station.shared.fleet.env._now
        finish = state.finish
        outstanding = station.outstanding
        on_done = state.on_done
        members, self.members = self.members, _SPENT  # its queries go now, while at hand
        for query in members:
            query.pieces -= 1
            if query.remaining == 0 and query.pieces == 0:
                if finish is not None:
                    finish[query.index] = now
                else:
                    state.complete(query, station.index, now)
                station.outstanding -= 1
                if on_done is not None:
                    on_done()
        if self.work_s:
            station.work_s = max(0.0, station.work_s - self.work_s)
        if self.work_s or station.outstanding != outstanding:
            for moved, position in station.watchers:
                moved(position)
        if self.release:
            station.idle.append(self.device)
            station.dispatch()


class RankingFleet:
    """Every ranking workload's arrivals and every ranking pool's stations."""

    kind: ClassVar[str] = "ranking"

    def __init__(self, ctx: FleetContext, workloads: list[str], pools: list[str]) -> None:
        resolved = ctx.resolved
        scenario = resolved.scenario
        self.env = ctx.env
        router = ctx.router
        self.track_work = router.estimates_work
        self.batches = _Batches()
        self.deadlines = self.env.lane()  # every pool's batching deadlines: one lane
        self.sink: RecordSink | None = ctx.sinks.get(self.kind)
        self.workloads: list[_WorkloadState] = []
        for w, name in enumerate(workloads):
            workload = scenario.workloads[name]
            rng = workload_rng(scenario.simulation.seed, name)
            sizes = workload.items_per_query  # type: ignore[union-attr]
            if isinstance(workload.traffic, ClosedLoopTraffic):
                if self.sink is not None:
                    raise ValueError("closed-loop traffic keeps every record: it cannot stream")
                state = _WorkloadState(name, w, np.zeros(0), np.zeros(0, np.int64), None)
                seed = scenario.simulation.seed
                state.loop = ClosedLoop(
                    self.env, workload.traffic, ctx.end_s, think_rng(seed, name)
                )
                state.sizes = size_blocks(sizes, rng)
                self.workloads.append(state)
                continue
            blocks = None
            if self.sink is not None:
                blocks = streamed_arrivals(workload.traffic, sizes, ctx.end_s, rng)
            if blocks is not None:
                state = _WorkloadState(name, w, None, None, self.sink, blocks)
            else:
                times, items = sample_arrivals(
                    workload.traffic, sizes, resolved.traces.get(name), ctx.end_s, rng
                )
                state = _WorkloadState(name, w, times, items, self.sink)
            self.workloads.append(state)
        index = {name: w for w, name in enumerate(workloads)}
        self.stations: list[_Station] = []
        units: list[list[_Station]] = [[] for _ in workloads]
        device = 0
        for pool_name in pools:
            pool = scenario.pools[pool_name]
            chip = resolved.chips[pool_name]
            served = [index[name] for name in pool.serves]
            costs = {}
            for w in served:
                model = resolved.models[workloads[w]]
                assert isinstance(model, RankingModel)
                costs[w] = RankingCostModel(model, chip)
            groups = (
                [list(range(device, device + pool.count))]
                if router.pool_queue
                else [[d] for d in range(device, device + pool.count)]
            )
            device += pool.count
            clock = ctx.clocks.get(pool_name)
            if clock is None:
                continue
            shared = _Pool(
                self,
                pool_name,
                costs,
                pool.batching,
                clock,
                chip.power.idle_w,
                ctx.meter(pool_name),
            )
            for group in groups:
                station = _Station(shared, len(self.stations), group)
                self.stations.append(station)
                for w in served:
                    units[w].append(station)
        self.routers = [ctx.route(stations, w, workloads[w]) for w, stations in enumerate(units)]
        for station in self.stations:
            station.watchers = tuple(station.watchers)
        if self.sink is not None:
            self.sink.stations(self._station_info())

    def _station_info(self) -> tuple[StationInfo, ...]:
        return tuple(StationInfo(s.shared.name, s.n_devices) for s in self.stations)

    def flush_batches(self, settled_s: float) -> None:
        """Hand the batches recorded so far to the sink (a streamed run)."""
        assert self.sink is not None
        if len(self.batches.end):
            self.sink.units(self.batches.frozen(), settled_s)
            self.batches = _Batches()

    def start(self) -> None:
        for state in self.workloads:
            if state.loop is not None:
                self._closed_loop(state, state.loop)
            else:
                self._arrivals(state)

    def _closed_loop(self, state: _WorkloadState, loop: ClosedLoop) -> None:
        """Feed a closed-loop workload: each send records one query and routes it; each
        completion frees its user (:class:`~accelsim.engine.loadgen.ClosedLoop`)."""
        assert state.sizes is not None and state.start is not None
        assert state.finish is not None and state.station is not None
        sizes, times, items = state.sizes, state.sent_times, state.sent_items
        start, finish, stations_of = state.start, state.finish, state.station
        route = self.routers[state.index].pick
        w = state.index

        def send(now: float) -> None:
            i = len(times)
            size = next(sizes)
            times.append(now)
            items.append(size)
            start.append(float("nan"))
            finish.append(float("nan"))
            station = route(size)
            stations_of.append(station.index)
            station.enqueue(w, _Query(i, size, now))

        state.on_done = loop.done
        loop.start(send)

    def _arrivals(self, state: _WorkloadState) -> None:
        """Feed a workload's pre-sampled arrivals: one bare event per arrival.

        Times and sizes are turned into Python numbers a block at a time, so a long run
        keeps only its compact numpy arrays whole."""
        env = self.env
        lane = env.lane()
        blocks = state.arrival_blocks()
        stations_of = state.station
        w = state.index
        route = self.routers[w].pick
        times: list[float] = []
        sizes: list[int] = []
        base = 0  # index of times[0]
        i = 0

        def next_block() -> bool:
            nonlocal times, sizes
            for block_times, block_sizes in blocks:
                if len(block_times):
                    times, sizes = block_times.tolist(), block_sizes.tolist()
                    return True
            return False

        def arrive(_event: Any) -> None:
            nonlocal i, base
            k = i - base
            station = route(sizes[k])
            if stations_of is not None:
                stations_of[i] = station.index
            station.enqueue(w, _Query(i, sizes[k], times[k]))
            i += 1
            if k + 1 == len(times):
                if not next_block():
                    return
                base = i
                k = -1
            lane.call_at(times[k + 1] - env.now, arrive)

        if next_block():
            lane.call_at(times[0], arrive)

    def records(self) -> RankingRecords:
        """The run's records; a streamed run first hands the sink what it still holds."""
        if self.sink is not None:
            for state in self.workloads:
                state.flush()
            self.flush_batches(_NEVER)
            return RankingRecords({}, self.batches.frozen(), self._station_info(), self.sink)
        workloads = {}
        for state in self.workloads:
            assert state.times is not None and state.items is not None
            times, items = state.times, state.items
            if state.loop is not None:
                times, items = frozen(state.sent_times), frozen(state.sent_items)
            workloads[state.name] = WorkloadRecords(
                name=state.name,
                arrival_s=times,
                items=items,
                start_s=frozen(state.start),  # type: ignore[arg-type]
                finish_s=frozen(state.finish),  # type: ignore[arg-type]
                station=frozen(state.station),  # type: ignore[arg-type]
            )
        return RankingRecords(workloads, self.batches.frozen(), self._station_info())
