"""The clock's lanes against a plain SimPy environment: the same events in the same order."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.engine.events import MAX_LANES, Clock, call_at

# A plan: for each of a few chains, the delays its events reschedule themselves by
# (one chain goes through a lane on the clock, the others straight to the heap), and
# whether a chain's event also schedules a one-off on the heap (an out-of-order mix).
delays = st.lists(
    st.one_of(st.just(0.0), st.sampled_from([0.25, 0.5, 1.0]), st.floats(0.0, 2.0)),
    min_size=1,
    max_size=30,
)


def replay(
    env: simpy.Environment,
    chains: list[list[float]],
    laned: list[bool],
    until: float,
) -> list[tuple[float, str]]:
    """Run the chains on ``env`` (lanes where ``laned`` and ``env`` is a clock) and
    return each event's time and name, in the order they ran."""
    seen: list[tuple[float, str]] = []

    def schedule(c: int) -> Callable[[float, Callable[[Any], None]], None]:
        if laned[c] and isinstance(env, Clock):
            return env.lane().call_at
        return lambda delay, callback: call_at(env, delay, callback)

    for c, chain in enumerate(chains):
        later = schedule(c)

        def fire(k: int, c: int = c, chain: list[float] = chain, later: Any = later) -> None:
            seen.append((env.now, f"{c}.{k}"))
            if k % 3 == 1:  # a one-off on the heap, due at the same time as the next
                call_at(env, chain[k], lambda _e: seen.append((env.now, f"{c}.{k}x")))
            if k + 1 < len(chain):
                later(chain[k + 1], lambda _e: fire(k + 1))

        later(chain[0], lambda _e: fire(0))
    env.run(until=until)
    return seen


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    chains=st.lists(delays, min_size=1, max_size=4),
    laned=st.lists(st.booleans(), min_size=4, max_size=4),
    until=st.floats(0.1, 40.0),
)
def test_lanes_give_simpys_order(
    chains: list[list[float]], laned: list[bool], until: float
) -> None:
    plain = simpy.Environment()
    clock = Clock()
    assert replay(clock, chains, laned, until) == replay(plain, chains, laned, until)
    assert clock.now == plain.now
    assert repr(clock._eid) == repr(plain._eid)  # the same events were numbered


def test_a_lane_entry_due_before_its_last_goes_to_the_heap() -> None:
    clock = Clock()
    lane = clock.lane()
    ran: list[str] = []
    lane.call_at(2.0, lambda _e: ran.append("late"))
    lane.call_at(1.0, lambda _e: ran.append("early"))  # out of order: on the heap
    lane.call_at(2.0, lambda _e: ran.append("late, numbered after"))
    assert len(clock.lanes[0]) == 2 and len(clock._queue) == 1
    assert clock.peek() == 1.0
    clock.run(until=5.0)
    assert ran == ["early", "late", "late, numbered after"]
    assert not clock.lanes[0]


def test_an_event_at_the_stop_time_waits_for_the_next_run() -> None:
    clock = Clock()
    lane = clock.lane()
    ran: list[float] = []
    lane.call_at(1.0, lambda _e: ran.append(clock.now))
    clock.run(until=1.0)
    assert ran == [] and clock.now == 1.0  # SimPy stops before regular events at its time
    clock.run(until=2.0)
    assert ran == [1.0]
    with pytest.raises(ValueError, match="greater than the current simulation time"):
        clock.run(until=2.0)


def test_step_and_run_without_a_time_drain_lanes_and_heap() -> None:
    clock = Clock()
    lane = clock.lane()
    ran: list[str] = []
    lane.call_at(1.0, lambda _e: ran.append("lane"))
    clock.process(_timeout(clock, 0.5, ran))
    clock.run()  # SimPy's own loop, through the clock's step
    assert ran == ["process", "lane"]
    with pytest.raises(simpy.core.EmptySchedule):
        clock.step()


def _timeout(env: simpy.Environment, delay: float, ran: list[str]) -> Any:
    yield env.timeout(delay)
    ran.append("process")


def test_a_failed_event_crashes_the_run_as_in_simpy() -> None:
    clock = Clock()
    event = clock.event()
    event.fail(RuntimeError("broken"))
    with pytest.raises(RuntimeError, match="broken"):
        clock.run(until=1.0)


def _mixed(env: simpy.Environment, seed: int, mode: int) -> tuple[Any, ...]:
    """A random mix on ``env``: callback chains (through lanes on a clock, straight to the
    heap otherwise), processes with timeouts, interrupts (urgent events), triggered
    events, and callbacks and processes scheduled at a stop time; driven by several
    ``run(until=t)`` (mode 0) or by ``run(until=event)``, ``step()`` and ``run()``
    (mode 1). Returns what happened, the final time, the numbers used and ``peek``."""
    rnd = random.Random(seed)
    log: list[Any] = []
    lanes = [env.lane() if isinstance(env, Clock) else None for _ in range(3)]

    def later(lane: int, delay: float, callback: Callable[[Any], None]) -> None:
        chosen = lanes[lane]
        if chosen is not None:
            chosen.call_at(delay, callback)
        else:
            call_at(env, delay, callback)

    procs: list[Any] = []

    def short(name: str) -> Any:
        log.append((env.now, name + "s"))
        yield env.timeout(0)

    def proc(name: str) -> Any:
        try:
            while True:
                yield env.timeout(rnd.choice([0, 0.5, 1.0, rnd.random()]))
                log.append((env.now, name))
                if rnd.random() < 0.2:
                    note = name + "L"
                    later(
                        rnd.randrange(3),
                        rnd.choice([0, 0.5, 1.0]),
                        lambda _e, note=note: log.append((env.now, note)),
                    )
                if rnd.random() < 0.1 and procs:
                    other = rnd.choice(procs)
                    if other.is_alive and other is not env.active_process:
                        other.interrupt()
                if rnd.random() < 0.1:
                    event = env.event()
                    event.callbacks.append(lambda _e: log.append((env.now, "event")))
                    event.succeed()
                if rnd.random() < 0.05:
                    env.process(short(name))
        except simpy.Interrupt:
            log.append((env.now, name + "I"))
            procs.append(env.process(proc(name + "'")))

    def chain(lane: int, k: int) -> Callable[[Any], None]:
        def fire(_event: Any) -> None:
            log.append((env.now, f"c{lane}.{k}"))
            if k < 60:
                target = lane if rnd.random() < 0.8 else rnd.randrange(3)
                delay = rnd.choice([0, 0.25, 0.5, 1.0, rnd.random() * 2])
                later(target, delay, chain(lane, k + 1))

        return fire

    for lane in range(3):
        later(lane, rnd.choice([0, 0.5]), chain(lane, 0))
    for i in range(3):
        procs.append(env.process(proc(f"p{i}")))
    if mode == 0:
        for t in [0.5, 1.0, 1.0000001, 2.0, 3, 4.5, 7.0]:
            env.run(until=t)
            log.append(("stop", env.now, env.peek()))
            call_at(env, 0, lambda _e: log.append((env.now, "after")))
            env.process(short("after"))
    else:
        env.run(until=3.0)
        log.append(("returned", env.run(until=env.timeout(2.5, value="v")), env.now))
        for _ in range(40):
            try:
                env.step()
            except simpy.core.EmptySchedule:
                break
            log.append(("step", env.now))
        env.run(until=12.0)
    return log, env.now, repr(env._eid), env.peek()


@pytest.mark.parametrize("mode", [0, 1])
def test_a_mix_of_lanes_processes_interrupts_and_stops_runs_as_in_simpy(mode: int) -> None:
    for seed in range(40):
        assert _mixed(Clock(), seed, mode) == _mixed(simpy.Environment(), seed, mode), seed


def test_peek_and_step_see_a_lane_head_before_the_heap() -> None:
    clock = Clock()
    ran: list[str] = []
    clock.lane().call_at(1.0, lambda _e: ran.append("lane"))
    call_at(clock, 2.0, lambda _e: ran.append("bare"))  # a bare callback on the heap
    assert clock.peek() == 1.0
    clock.step()
    assert ran == ["lane"] and clock.now == 1.0
    assert clock.peek() == 2.0
    clock.step()  # a bare heap entry, called by the clock itself
    assert ran == ["lane", "bare"] and clock.now == 2.0


@pytest.mark.parametrize("env_type", [simpy.Environment, Clock])
def test_a_run_resumed_after_an_error_stops_where_simpy_stops(env_type: type) -> None:
    env = env_type()

    def boom(_event: Any) -> None:
        raise KeyError("boom")

    call_at(env, 1.0, boom)
    call_at(env, 8.0, lambda _e: None)
    with pytest.raises(KeyError):
        env.run(until=5.0)
    env.run(until=10.0)
    assert env.now == 5.0  # the first run's stop is still due: SimPy stops there


@pytest.mark.parametrize("env_type", [simpy.Environment, Clock])
def test_an_event_that_ends_a_failed_run_returns_its_value_later(env_type: type) -> None:
    env = env_type()
    event = env.event()
    with pytest.raises(RuntimeError):
        env.run(until=event)  # nothing scheduled: SimPy says so
    call_at(env, 1.0, lambda _e: None)
    event.succeed(42)
    assert env.run(until=3.0) == 42 and env.now == 0


def test_lanes_past_the_limit_use_the_heap_in_the_same_order() -> None:
    clock, plain = Clock(), simpy.Environment()
    logs: list[list[tuple[float, int]]] = [[], []]
    lanes = [clock.lane() for _ in range(MAX_LANES + 3)]
    assert len(clock.lanes) == MAX_LANES
    for k, lane in enumerate(lanes):
        for j in range(3):
            delay = (k * 7 + j * 3) % 5 / 2
            lane.call_at(delay, lambda _e, k=k: logs[0].append((clock.now, k)))
            call_at(plain, delay, lambda _e, k=k: logs[1].append((plain.now, k)))
    clock.run(until=10.0)
    plain.run(until=10.0)
    assert logs[0] == logs[1] and len(logs[0]) == 3 * len(lanes)
