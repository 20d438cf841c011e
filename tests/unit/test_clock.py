"""The clock's lanes against a plain SimPy environment: the same events in the same order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.engine.events import Clock, call_at

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
