"""LLM serving in the engine: requests, modes, and replicas with continuous batching.

A *request* is what a user sends; it becomes one or more *sequences* that a
replica generates:

* ``instant``: one sequence, prompt -> answer;
* ``thinking``: one sequence whose output is the reasoning tokens, then the
  answer (the first token the user sees is the first reasoning token);
* ``contemplating``: ``branches`` sequences with the same prompt run in
  parallel (each routed on its own), then one aggregation sequence whose
  prompt is the original prompt plus every branch's output. The user's first
  token and completion are the aggregation's.

A replica (one or more chips in tensor parallel) runs one SimPy process that
loops over iterations. While its batch cannot change (every sequence is
decoding and nothing waiting can be admitted), the decode iterations up to the
next completion run as one event: their times follow in closed form, since
each step only adds one token of context per sequence; an arrival for the
replica cuts the span at the end of the step in progress. The result is the
same as stepping one iteration at a time (a test checks it).

Each iteration admits waiting sequences while KV cache and
``max_batch_sequences`` allow, then processes prefill chunks within the token
budget and one decode token for every sequence past its prefill. The
iteration's time comes from the pure cost model. With ``kv_policy: reserve``
a sequence is admitted only when KV for its whole prompt and output is free;
with ``preempt`` it needs room for its prompt, and when a decode step would
overflow the cache the most recently admitted sequence is evicted and later
recomputed (its prompt plus what it had generated is prefilled again).
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import numpy as np
import simpy

from accelsim.config.schema import ContinuousBatching, LLMModel, LLMWorkload
from accelsim.engine.arrivals import arrival_times, sample_sizes, workload_rng
from accelsim.engine.facility import PoolMeter
from accelsim.engine.fleet import FleetContext
from accelsim.engine.records import (
    MODE_CONTEMPLATING,
    MODE_THINKING,
    MODES,
    ROLE_AGGREGATE,
    ROLE_BRANCH,
    ROLE_MAIN,
    IterationRecords,
    LLMFleetRecords,
    LLMRecords,
    ReplicaInfo,
    frozen,
)
from accelsim.model.checks import llm_replica_cost
from accelsim.model.llm import DecodePlan, Iteration, LLMCostModel, prefill_pairs
from accelsim.model.power import ClockPolicy, Terms, at_nominal_clock, clocked_terms


@dataclass(frozen=True)
class LLMRequests:
    """Pre-sampled requests of one LLM workload."""

    arrival_s: np.ndarray
    mode: np.ndarray  # index into MODES
    prompt_tokens: np.ndarray  # including image tokens
    image_tokens: np.ndarray
    output_tokens: np.ndarray  # tokens of the user-visible final sequence
    branch_output: np.ndarray  # (n, branches) for contemplating; (n, 0) otherwise


def sample_requests(
    workload: LLMWorkload,
    times: np.ndarray,
    tokens_per_image: int,
    rng: np.random.Generator,
    given: dict[str, np.ndarray] | None = None,
) -> LLMRequests:
    """Draw every request's mode and token counts in a fixed order from ``rng``; a trace's
    ``prompt_tokens`` and ``output_tokens`` columns, when ``given``, replace the draws."""
    n = len(times)
    given = given or {}
    weights = np.array(
        [workload.modes.instant, workload.modes.thinking, workload.modes.contemplating]
    )
    mode = rng.choice(len(MODES), size=n, p=weights / weights.sum()).astype(np.int8)
    prompt = sample_sizes(workload.prompt_tokens, n, rng)
    answer = sample_sizes(workload.output_tokens, n, rng)
    prompt = given.get("prompt_tokens", prompt)
    answer = given.get("output_tokens", answer)
    images = np.zeros(n, dtype=np.int64)
    if workload.multimodal is not None and tokens_per_image:
        carries = rng.random(n) < workload.multimodal.probability
        images = carries.astype(np.int64) * workload.multimodal.images * tokens_per_image
    output = answer.copy()
    if workload.thinking is not None:
        reasoning = sample_sizes(workload.thinking.reasoning_tokens, n, rng)
        output = np.where(mode == MODE_THINKING, reasoning + answer, output)
    branches = np.zeros((n, 0), dtype=np.int64)
    if workload.contemplating is not None:
        c = workload.contemplating
        branches = sample_sizes(c.branch_output_tokens, n * c.branches, rng).reshape(n, c.branches)
        aggregate = sample_sizes(c.aggregation_output_tokens, n, rng)
        output = np.where(mode == MODE_CONTEMPLATING, aggregate, output)
    return LLMRequests(times, mode, prompt + images, images, output, branches)


class Sequence:
    __slots__ = (
        "admitted_order",
        "base",
        "first_token_s",
        "generated",
        "images",
        "kv",
        "output",
        "prefilled",
        "prompt",
        "request",
        "role",
    )

    def __init__(self, request: int, role: int, prompt: int, output: int, images: int) -> None:
        self.request = request
        self.role = role
        self.prompt = prompt  # prompt tokens (including image tokens)
        self.output = output  # tokens to generate in total
        self.images = images
        self.prefilled = 0
        self.generated = 0
        self.base = 0  # generated tokens to prefill again after a preemption
        self.kv = 0  # KV tokens this sequence holds (or has reserved)
        self.first_token_s = -1.0
        self.admitted_order = 0


class LLMWorkloadState:
    """Bookkeeping of one LLM workload's requests across replicas."""

    def __init__(self, name: str, requests: LLMRequests) -> None:
        self.name = name
        self.requests = requests
        self.route: Callable[[], LLMReplica]  # set once the fleet has built its replicas
        n = len(requests.arrival_s)
        self.first_token = array("d", [float("nan")]) * n
        self.finish = array("d", [float("nan")]) * n
        self.rejected = bytearray(n)
        self.replica = array("i", [-1]) * n
        self.generated = array("q", bytes(8 * n))  # all tokens generated for the request
        self.branches_left = array("i", bytes(4 * n))
        self.branch_tokens = array("q", bytes(8 * n))
        # Sub-requests of contemplating: spawned, completed.
        self.branches_spawned = array("q", bytes(8 * n))
        self.branches_done = array("q", bytes(8 * n))

    def arrive(self, i: int) -> None:
        r = self.requests
        mode = int(r.mode[i])
        prompt = int(r.prompt_tokens[i])
        images = int(r.image_tokens[i])
        if mode == MODE_CONTEMPLATING:
            k = r.branch_output.shape[1]
            self.branches_left[i] = k
            for b in range(k):
                self.branches_spawned[i] += 1
                self._submit(
                    i, Sequence(i, ROLE_BRANCH, prompt, int(r.branch_output[i, b]), images)
                )
        else:
            self._submit(i, Sequence(i, ROLE_MAIN, prompt, int(r.output_tokens[i]), images))

    def _submit(self, i: int, seq: Sequence) -> None:
        replica = self.route()
        if seq.role != ROLE_BRANCH:
            self.replica[i] = replica.index
        if not replica.submit(seq):
            self.rejected[i] = 1

    def first_token_of(self, seq: Sequence, now: float) -> None:
        if seq.role != ROLE_BRANCH and math.isnan(self.first_token[seq.request]):
            self.first_token[seq.request] = now

    def finished(self, seq: Sequence, now: float) -> None:
        i = seq.request
        self.generated[i] += seq.generated
        if seq.role == ROLE_BRANCH:
            self.branches_done[i] += 1
            self.branch_tokens[i] += seq.generated
            self.branches_left[i] -= 1
            if self.branches_left[i] == 0 and not self.rejected[i]:
                r = self.requests
                prompt = int(r.prompt_tokens[i]) + int(self.branch_tokens[i])
                self._submit(i, Sequence(i, ROLE_AGGREGATE, prompt, int(r.output_tokens[i]), 0))
        else:
            self.finish[i] = now


def _wake_up(wake: simpy.Event, _event: simpy.Event) -> None:
    if not wake.triggered:
        wake.succeed()


def _constant_s(terms: Terms, ratio: float, varying: int) -> float:
    """The time of every op but the ``varying`` one at a clock ratio, plus the fixed
    overheads: the part of a decode step the context does not change, summed as the
    general path of :meth:`LLMReplica._decode_span` sums it."""
    constant = terms.overhead
    overlap = terms.overlap
    for k, (c0, m0) in enumerate(zip(terms.compute, terms.memory, strict=True)):
        if k != varying:
            c0 = c0 / ratio
            constant += c0 + m0 - overlap * (c0 if c0 < m0 else m0)
    return constant


class IterationLog:
    def __init__(self) -> None:
        self.replica = array("i")
        self.start = array("d")
        self.end = array("d")
        self.sequences = array("i")  # sequences in the batch (decoding + prefilling)
        self.prefill_tokens = array("q")
        self.kv_tokens = array("d")  # KV held during the iteration (mean over a span)
        self.energy = array("d")  # dynamic energy of the whole replica
        self.clock = array("d")  # clock ratio the power cap allowed
        self.steps = array("i")  # iterations in the record (decode spans coalesce many)


class LLMReplica:
    """One tensor-parallel replica running iteration-level continuous batching."""

    n_devices = 1  # routers compare sequences per replica

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        pool: str,
        chips: int,
        cost: LLMCostModel,
        batching: ContinuousBatching,
        workload: LLMWorkloadState,
        log: IterationLog,
        clock: ClockPolicy,
        meter: PoolMeter,
        coalesce: bool = True,
    ) -> None:
        self.env = env
        self.meter = meter
        self.coalesce = coalesce
        self.index = index
        self.pool = pool
        self.chips = chips
        self.cost = cost
        self.batching = batching
        self.workload = workload
        self.log = log
        self.clock = clock
        self.idle_w = cost.chip.power.idle_w
        self.capacity = cost.capacity.kv_capacity_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.kv_used = 0
        self.wake: simpy.Event | None = None
        self.admissions = 0
        self.preemptions = 0
        self.max_kv_used = 0
        meter.appliers.append(self.set_clock)
        self.watchers: list[tuple[Callable[[int], None], int]] = []  # indexed routers
        # The context-free part of a decode step's time, by batch size and clock ratio.
        self.constants: dict[tuple[int, float], float] = {}
        self.nominal: dict[int, bool] = {}  # by batch size: never capped (a decode plan's bound)
        env.process(self.loop())

    def set_clock(self, clock: ClockPolicy) -> None:
        """A new clock policy (a shifted cap) for the iterations from now on."""
        self.clock = clock
        self.nominal.clear()

    @property
    def outstanding(self) -> int:
        """Sequences waiting or running here."""
        return len(self.waiting) + len(self.running)

    @property
    def work_s(self) -> float:
        """Least-work routing's estimate: an LLM replica counts its sequences."""
        return self.outstanding

    def item_cost_s(self, w: int) -> float:
        """A request adds nothing to the estimate before it is queued."""
        return 0.0

    def submit(self, seq: Sequence) -> bool:
        """Queue a sequence; False if it can never fit this replica's KV cache."""
        if seq.prompt + seq.output > self.capacity:
            return False
        self.waiting.append(seq)
        for moved, position in self.watchers:
            moved(position)
        if self.wake is not None and not self.wake.triggered:
            self.wake.succeed()
        return True

    def _need(self, seq: Sequence) -> int:
        if self.batching.kv_policy == "reserve":
            return seq.prompt + seq.output
        return seq.prompt + seq.base

    def _admit(self) -> None:
        limit = self.batching.max_batch_sequences
        while self.waiting and len(self.running) < limit:
            seq = self.waiting[0]
            need = self._need(seq)
            if self.kv_used + need > self.capacity:
                break
            self.waiting.popleft()
            seq.kv = need
            self.kv_used += need
            self.admissions += 1
            seq.admitted_order = self.admissions
            self.running.append(seq)

    def _evict_newest(self) -> None:
        """Preempt policy: free the newest sequence's KV; it will be recomputed."""
        victim = max(self.running, key=lambda s: s.admitted_order)
        self.running.remove(victim)
        self.kv_used -= victim.kv
        victim.kv = 0
        victim.base = victim.generated
        victim.prefilled = 0
        self.preemptions += 1
        self.waiting.appendleft(victim)

    def _can_admit(self) -> bool:
        if not self.waiting or len(self.running) >= self.batching.max_batch_sequences:
            return False
        return self.kv_used + self._need(self.waiting[0]) <= self.capacity

    def _log(
        self,
        start: float,
        end: float,
        sequences: int,
        prefill_tokens: int,
        kv_tokens: float,
        energy_j: float,
        clock: float,
        steps: int,
    ) -> None:
        self.meter.busy_s += (end - start) * self.chips
        log = self.log
        log.replica.append(self.index)
        log.start.append(start)
        log.end.append(end)
        log.sequences.append(sequences)
        log.prefill_tokens.append(prefill_tokens)
        log.kv_tokens.append(kv_tokens)
        log.energy.append(energy_j * self.chips)
        log.clock.append(clock)
        log.steps.append(steps)

    def _decode_span(self, decoding: list[Sequence]) -> tuple[np.ndarray, np.ndarray, float] | None:
        """Step times and energies of the decode-only iterations until the first sequence
        finishes (or KV runs out), at one clock; None when the clock would change within
        the span (then iterations run one by one)."""
        batch = len(decoding)
        steps = decoding[0].output
        context = 0
        for s in decoding:
            left = s.output - s.generated
            if left < steps:
                steps = left
            context += s.prompt + s.generated
        if self.batching.kv_policy == "preempt":
            steps = min(steps, (self.capacity - self.kv_used) // batch)
        if steps < 2:
            return None
        end_context = context + (steps - 1) * batch
        plan = self.cost.decode_plan(batch)
        if plan is None:
            first = self.cost.terms(
                Iteration(decode_sequences=batch, decode_context_tokens=context, logits=batch)
            )
            last = self.cost.terms(
                Iteration(decode_sequences=batch, decode_context_tokens=end_context, logits=batch)
            )
        else:
            first, last = plan.terms(context), plan.terms(end_context)
        ratio = self.clock.locked_ratio
        if ratio is None:
            if not (plan is not None and self._always_nominal(plan, batch)) and not (
                at_nominal_clock(first, self.idle_w, self.clock)
                and at_nominal_clock(last, self.idle_w, self.clock)
            ):
                return None
            ratio = 1.0
        # Every term is linear in the context, which grows by `batch` tokens a step; most
        # ops do not depend on it. Each op as the roofline combines compute c and memory
        # m: max(c, m) + (1 - overlap) min(c, m) = c + m - overlap x min(c, m).
        j = np.arange(steps) * (1.0 / (steps - 1))
        overlap = first.overlap
        k = plan.position if plan is not None else -1
        if k >= 0 and (first.compute[k] != last.compute[k] or first.memory[k] != last.memory[k]):
            # Only the plan's one op varies; the others' sum is the same every step. (The
            # general path's zeros plus this op's times are this op's times exactly.)
            key = (batch, ratio)
            constant = self.constants.get(key)
            if constant is None:
                constant = self.constants[key] = _constant_s(first, ratio, k)
            c0, c1 = first.compute[k] / ratio, last.compute[k] / ratio
            m0, m1 = first.memory[k], last.memory[k]
            c, m = c0 + (c1 - c0) * j, m0 + (m1 - m0) * j
            times = c + m - overlap * np.minimum(c, m)
        else:
            times = np.zeros(steps)
            constant = first.overhead
            for c0, c1, m0, m1 in zip(
                first.compute, last.compute, first.memory, last.memory, strict=True
            ):
                c0, c1 = c0 / ratio, c1 / ratio
                if c0 == c1 and m0 == m1:
                    constant += c0 + m0 - overlap * (c0 if c0 < m0 else m0)
                    continue
                c, m = c0 + (c1 - c0) * j, m0 + (m1 - m0) * j
                times += c + m - overlap * np.minimum(c, m)
        times += constant
        e0, e1 = first.dynamic(ratio), last.dynamic(ratio)
        energies = e0 + (e1 - e0) * j
        return times, energies, ratio

    def _always_nominal(self, plan: DecodePlan, batch: int) -> bool:
        """True when no decode step of ``batch`` sequences can reach the power cap at the
        nominal clock, by the plan's bound with a margin far above rounding: then the
        span's ends need no check of their own."""
        known = self.nominal.get(batch)
        if known is None:
            bound = plan.peak_power_w(self.idle_w)
            known = self.nominal[batch] = bound * (1 + 1e-9) <= self.clock.cap_w
        return known

    def _coalesced(self, decoding: list[Sequence]) -> Any:
        """Run decode-only iterations as one event while nothing can change the batch;
        an arrival for this replica cuts the span at the end of the step in progress."""
        span = self._decode_span(decoding)
        if span is None:
            return False
        times, energies, ratio = span
        env = self.env
        start = env.now
        cumulative = np.cumsum(times)
        batch = len(decoding)
        preempt = self.batching.kv_policy == "preempt"
        kv_start = self.kv_used

        def kv_mean(steps: int) -> float:
            """Time-weighted mean KV over the first ``steps`` steps: it grows by ``batch``
            tokens a step under preemption and is reserved up front otherwise."""
            if not preempt:
                return float(kv_start)
            t = times[:steps]
            return kv_start + batch * float((np.arange(steps) * t).sum() / t.sum())

        # Logged before the wait, so a span the run's end cuts short is still counted.
        steps = len(times)
        record = len(self.log.start)
        self._log(
            start,
            start + float(cumulative[-1]),
            batch,
            0,
            kv_mean(steps),
            float(energies.sum()),
            ratio,
            steps,
        )
        # The process waits for its wake-up event alone: the span's end triggers it (if an
        # arrival has not), which costs the same events as waiting for either of two and
        # skips building a condition.
        self.wake = wake = env.event()
        end = env.timeout(float(cumulative[-1]))
        end.callbacks.append(partial(_wake_up, wake))
        yield wake
        if not end.processed:  # woken by an arrival before the span ended
            done = int(np.searchsorted(cumulative, env.now - start, side="right"))
            if done < steps:
                steps = done + 1
                log = self.log
                cut = start + float(cumulative[done])
                self.meter.busy_s -= (log.end[record] - cut) * self.chips
                log.end[record] = cut
                log.energy[record] = float(energies[:steps].sum()) * self.chips
                log.kv_tokens[record] = kv_mean(steps)
                log.steps[record] = steps
                yield env.timeout(max(0.0, start + float(cumulative[done]) - env.now))
        self.wake = None
        for s in decoding:
            s.generated += steps
        if preempt:
            for s in decoding:
                s.kv += steps
            self.kv_used += steps * batch
        self.max_kv_used = max(self.max_kv_used, self.kv_used)
        now = env.now
        self._finish([s for s in decoding if s.generated >= s.output], now)
        return True

    def loop(self) -> Any:
        env = self.env
        budget_total = self.batching.max_batch_tokens
        chunked = self.batching.chunked_prefill
        preempt = self.batching.kv_policy == "preempt"
        evicting = False
        while True:
            if not evicting:
                self._admit()
            evicting = False
            if not self.running:
                self.wake = env.event()
                yield self.wake
                self.wake = None
                continue
            decoding = [s for s in self.running if s.prefilled >= s.prompt + s.base]
            if self.coalesce and len(decoding) == len(self.running) and not self._can_admit():
                ran = yield from self._coalesced(decoding)
                if ran:
                    continue
            budget = budget_total - len(decoding)
            chunks: list[tuple[Sequence, int]] = []
            for seq in self.running:
                remaining = seq.prompt + seq.base - seq.prefilled
                if remaining <= 0:
                    continue
                take = min(remaining, budget) if chunked else remaining
                if take <= 0 or (not chunked and take > budget and (chunks or decoding)):
                    break
                chunks.append((seq, take))
                budget -= take
            if preempt:
                growth = len(decoding) + sum(
                    1 for s, t in chunks if s.prefilled + t >= s.prompt + s.base
                )
                if self.kv_used + growth > self.capacity and len(self.running) > 1:
                    self._evict_newest()
                    evicting = True  # no admissions until the batch fits again
                    continue
            context = 0
            for s in decoding:
                context += s.prompt + s.generated
            pairs = 0.0
            prior = 0
            images = 0
            logits = len(decoding)
            for s, take in chunks:
                pairs += prefill_pairs(take, s.prefilled)
                prior += s.prefilled
                if s.prefilled == 0:
                    images += s.images
                if s.prefilled + take >= s.prompt + s.base:
                    logits += 1
            prefill_tokens = sum(t for _, t in chunks)
            terms = self.cost.terms(
                Iteration(
                    prefill_tokens=prefill_tokens,
                    prefill_pairs=pairs,
                    prefill_context_tokens=prior,
                    decode_sequences=len(decoding),
                    decode_context_tokens=context,
                    logits=logits,
                    image_tokens=images,
                )
            )
            cost = clocked_terms(terms, self.idle_w, self.clock)
            start = env.now
            self._log(
                start,
                start + cost.time_s,
                len(decoding) + len(chunks),
                prefill_tokens,
                self.kv_used,
                cost.dynamic_energy_j,
                cost.clock_ratio,
                1,
            )
            self.max_kv_used = max(self.max_kv_used, self.kv_used)
            yield env.timeout(cost.time_s)
            now = env.now
            done: list[Sequence] = []
            for s in decoding:
                s.generated += 1
                if preempt:
                    s.kv += 1
                    self.kv_used += 1
                if s.generated >= s.output:
                    done.append(s)
            for s, take in chunks:
                s.prefilled += take
                if s.prefilled >= s.prompt + s.base:
                    s.generated += 1
                    if preempt:
                        s.kv += 1
                        self.kv_used += 1
                    self.workload.first_token_of(s, now)
                    if s.generated >= s.output:
                        done.append(s)
            self.max_kv_used = max(self.max_kv_used, self.kv_used)
            if done:
                self._finish(done, now)

    def _finish(self, done: list[Sequence], now: float) -> None:
        """Sequences that generated their last token leave the batch and free their KV
        (routers hear of each before it completes: a branch's completion may route its
        request's aggregation at once)."""
        for s in done:
            self.running.remove(s)
            self.kv_used -= s.kv
            s.kv = 0
            for moved, position in self.watchers:
                moved(position)
            self.workload.finished(s, now)


class LLMFleet:
    """Every LLM workload's requests and every LLM pool's replicas."""

    kind: ClassVar[str] = "llm"

    def __init__(self, ctx: FleetContext, workloads: list[str], pools: list[str]) -> None:
        resolved = ctx.resolved
        scenario = resolved.scenario
        self.env = ctx.env
        self.iterations = IterationLog()
        self.states: dict[str, LLMWorkloadState] = {}
        replicas_of: dict[str, list[LLMReplica]] = {name: [] for name in workloads}
        for name in workloads:
            workload = scenario.workloads[name]
            assert isinstance(workload, LLMWorkload)
            model = resolved.models[name]
            assert isinstance(model, LLMModel)
            rng = workload_rng(scenario.simulation.seed, name)
            times, given = arrival_times(
                workload.traffic, resolved.traces.get(name), ctx.end_s, rng
            )
            per_image = model.vision.tokens_per_image if model.vision else 0
            requests = sample_requests(workload, times, per_image, rng, given)
            self.states[name] = LLMWorkloadState(name, requests)
        self.replicas: list[LLMReplica] = []
        for pool_name in pools:
            pool = scenario.pools[pool_name]
            name = pool.serves[0]
            model = resolved.models[name]
            assert isinstance(model, LLMModel)
            cost, problem = llm_replica_cost(resolved, pool_name, model)
            if problem is not None:
                ctx.problems.append(problem)
            clock = ctx.clocks.get(pool_name)
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
                    self.states[name],
                    self.iterations,
                    clock,
                    ctx.meter(pool_name),
                    ctx.coalesce,
                )
                self.replicas.append(replica)
                replicas_of[name].append(replica)
        for name, state in self.states.items():
            state.route = ctx.route(replicas_of[name], 0, name).pick

    def start(self) -> None:
        for state in self.states.values():
            if len(state.requests.arrival_s):
                self.env.process(self._arrivals(state))

    def _arrivals(self, state: LLMWorkloadState) -> Any:
        env = self.env
        for i, t in enumerate(state.requests.arrival_s.tolist()):
            delay = t - env.now
            if delay > 0:
                yield env.timeout(delay)
            state.arrive(i)

    def records(self) -> LLMFleetRecords:
        workloads = {}
        for state in self.states.values():
            r = state.requests
            workloads[state.name] = LLMRecords(
                name=state.name,
                arrival_s=r.arrival_s,
                mode=r.mode,
                prompt_tokens=r.prompt_tokens,
                output_tokens=r.output_tokens,
                first_token_s=frozen(state.first_token),
                finish_s=frozen(state.finish),
                rejected=np.frombuffer(state.rejected, dtype=np.uint8).astype(bool),
                generated_tokens=frozen(state.generated),
                replica=frozen(state.replica),
                branches_spawned=frozen(state.branches_spawned),
                branches_done=frozen(state.branches_done),
            )
        it = self.iterations
        iterations = IterationRecords(
            replica=frozen(it.replica),
            start_s=frozen(it.start),
            end_s=frozen(it.end),
            sequences=frozen(it.sequences),
            prefill_tokens=frozen(it.prefill_tokens),
            kv_tokens=frozen(it.kv_tokens),
            steps=frozen(it.steps),
            dynamic_energy_j=frozen(it.energy),
            clock_ratio=frozen(it.clock),
        )
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
        return LLMFleetRecords(workloads, iterations, replicas)
