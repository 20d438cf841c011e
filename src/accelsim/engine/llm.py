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

A replica (one or more chips in tensor parallel) loops over iterations, driven
by callbacks on bare SimPy events. While its batch cannot change (every sequence is
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

With ``prefix_cache`` a replica keeps the KV blocks of shared prefixes (system
prompts, session histories: engine/sessions.py) in a block-level LRU cache inside
its KV capacity (engine/prefix_cache.py, which admits for it); a sequence that hits
starts with its cached tokens prefilled. Without it, a few ``cache is None`` tests
per admission and completion are all it costs.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial
from itertools import repeat
from typing import Any, ClassVar

import numpy as np
import simpy

from accelsim.config.schema import ClosedLoopTraffic, ContinuousBatching, LLMModel, LLMWorkload
from accelsim.engine.arrivals import arrival_times, sample_sizes, workload_rng
from accelsim.engine.contemplating import role_routes
from accelsim.engine.events import call_at
from accelsim.engine.facility import PoolMeter
from accelsim.engine.fleet import FleetContext
from accelsim.engine.loadgen import SIZE_BLOCK, ClosedLoop, think_rng
from accelsim.engine.prefix_cache import PrefixCache
from accelsim.engine.records import (
    MODE_CONTEMPLATING,
    MODE_THINKING,
    MODES,
    ROLE_AGGREGATE,
    ROLE_BRANCH,
    ROLE_MAIN,
    DisaggRecords,
    IterationRecords,
    LLMFleetRecords,
    LLMRecords,
    ReplicaInfo,
    frozen,
)
from accelsim.engine.sessions import Prefixes, prefixed_prompts, session_arrivals
from accelsim.engine.speculative import Speculation, SpeculativeTally
from accelsim.engine.steps import ArraySteps, LinearSteps, Steps
from accelsim.model.checks import llm_replica_cost, llm_speculative_cost
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
        "blocks",
        "first_token_s",
        "generated",
        "hit",
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
        self.hit = 0  # prompt tokens found in the prefix cache at admission
        self.blocks: list[tuple[int, int, int]] | None = None  # cached block runs it holds


class LLMWorkloadState:
    """Bookkeeping of one LLM workload's requests across replicas."""

    def __init__(self, name: str, requests: LLMRequests) -> None:
        self.name = name
        self.requests = requests
        # By sequence role: where a sequence goes (set once the fleet has built its replicas).
        self.routes: list[Callable[[], LLMReplica]]
        # A router that keeps a session's turns together routes by session.
        self.route_session: Callable[[int], LLMReplica] | None = None
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
        # Each fan-out's branch completion times, in the order they finished.
        self.fanout = requests.branch_output.shape[1]
        self.branch_finish = array("d", [float("nan")]) * (n * self.fanout)
        self.branch_replica = array("i", [-1]) * (n * self.fanout)  # in spawn order
        # Prompt tokens to prefill at every admission, and those a prefix cache held.
        self.prefill_requested = array("q", bytes(8 * n))
        self.prefix_hit = array("q", bytes(8 * n))
        self.prefixes: Prefixes | None = None
        self.env: simpy.Environment | None = None  # schedules sessions' later turns
        self.count = n  # requests sent (a closed loop's grow as it sends)
        self.on_done: Callable[[], None] | None = None  # hears of completions and rejections

    def extend(self, more: LLMRequests) -> None:
        """Room for ``more`` requests after these (a closed loop's, drawn as it sends):
        every per-request array of a fresh state for all of them, with this one's
        values copied in front."""
        r = self.requests
        fields = r.__dataclass_fields__
        both = LLMRequests(**{f: np.concatenate((getattr(r, f), getattr(more, f))) for f in fields})
        fresh = LLMWorkloadState(self.name, both)
        for attr, value in self._per_request_arrays():
            grown = getattr(fresh, attr)
            grown[: len(value)] = value
            setattr(self, attr, grown)
        self.requests = both

    def _per_request_arrays(self) -> list[tuple[str, array[Any] | bytearray]]:
        """Every array with one entry per request, or one per request and branch (laid
        out request by request)."""
        n = len(self.requests.arrival_s)
        sizes = {n, n * self.fanout} - {0}
        return [
            (attr, value)
            for attr, value in vars(self).items()
            if isinstance(value, (array, bytearray)) and len(value) in sizes
        ]

    def trim(self) -> None:
        """Drop the requests drawn but never sent (a closed loop's, at the end)."""
        r = self.requests
        n, count = len(r.arrival_s), self.count
        if count == n:
            return
        for _, value in self._per_request_arrays():
            del value[count * (len(value) // n) :]
        fields = r.__dataclass_fields__
        self.requests = LLMRequests(**{f: getattr(r, f)[:count] for f in fields})

    def replica_type(self, pool: str) -> type[LLMReplica]:
        """The kind of replica ``pool`` runs for this workload."""
        return LLMReplica

    def connect(self, ctx: FleetContext, replicas: list[LLMReplica]) -> None:
        """Route the workload's requests over the replicas that serve it (by sequence
        role, and by session where the router keeps sessions together)."""
        self.routes, self.route_session = role_routes(ctx, self.name, replicas)

    def handoffs(self) -> DisaggRecords | None:
        """What a disaggregated workload records of its KV moves (None here)."""
        return None

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
        if (
            self.route_session is not None
            and self.prefixes is not None
            and self.routes[seq.role] is self.routes[ROLE_MAIN]
        ):
            replica = self.route_session(self.prefixes.session[i])
        else:
            replica = self.routes[seq.role]()
        if seq.role != ROLE_BRANCH:
            self.replica[i] = replica.index
        else:
            self.branch_replica[i * self.fanout + self.branches_spawned[i] - 1] = replica.index
        if not replica.submit(seq):
            if self.on_done is not None and not self.rejected[i]:
                self.on_done()
            self.rejected[i] = 1

    def first_token_of(self, seq: Sequence, now: float) -> None:
        if seq.role != ROLE_BRANCH and math.isnan(self.first_token[seq.request]):
            self.first_token[seq.request] = now

    def finished(self, seq: Sequence, now: float) -> None:
        i = seq.request
        self.generated[i] += seq.generated
        if seq.role == ROLE_BRANCH:
            self.branches_done[i] += 1
            self.branch_finish[i * self.fanout + self.branches_done[i] - 1] = now
            self.branch_tokens[i] += seq.generated
            self.branches_left[i] -= 1
            if self.branches_left[i] == 0 and not self.rejected[i]:
                r = self.requests
                prompt = int(r.prompt_tokens[i]) + int(self.branch_tokens[i])
                self._submit(i, Sequence(i, ROLE_AGGREGATE, prompt, int(r.output_tokens[i]), 0))
        else:
            self.finish[i] = now
            if self.on_done is not None:
                self.on_done()
            if self.prefixes is not None:
                self._next_turn(i)

    def _next_turn(self, i: int) -> None:
        """A session's turn finished: its next turn arrives after the think time."""
        assert self.prefixes is not None and self.env is not None
        j = self.prefixes.next_turn(i)
        if j is None:
            return
        think = self.prefixes.think_time_s
        self.requests.arrival_s[j] = self.env.now + think
        call_at(self.env, think, lambda _event: self.arrive(j))


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


class _Fractions:
    """``arange(steps) / (steps - 1)`` as a decode span computes it, memoised for the
    span lengths that recur (every replica of a fleet shares one)."""

    largest = 1024  # longer spans are rare; their arrays are built afresh

    def __init__(self) -> None:
        self.known: dict[int, np.ndarray] = {}

    def __call__(self, steps: int) -> np.ndarray:
        j = self.known.get(steps)
        if j is None:
            j = np.arange(steps) * (1.0 / (steps - 1))
            if steps <= self.largest:
                self.known[steps] = j
        return j


class _Span:
    """A coalesced decode span in flight: its steps' times, the dynamic energies of its
    first and last steps (linear in between, as the times' terms are), its record in the
    log, and whether a submission has cut it short."""

    __slots__ = (
        "cut",
        "decoding",
        "energy_first_j",
        "energy_rise_j",
        "kv_start",
        "record",
        "replica",
        "start",
        "steps",
        "times",
    )

    def __init__(
        self,
        decoding: list[Sequence],
        times: Steps,
        energies: tuple[float, float],
        start: float,
        record: int,
        kv_start: int,
        replica: LLMReplica,
    ) -> None:
        self.decoding = decoding
        self.times = times
        self.energy_first_j, self.energy_rise_j = energies
        self.start = start
        self.record = record
        self.kv_start = kv_start
        self.steps = times.steps
        self.replica = replica
        self.cut = False

    def __call__(self, _event: Any) -> None:
        """The span's last step is over: the replica goes on, unless a submission cut
        the span short (then this event comes after the cut end and does nothing)."""
        if not self.cut:
            self.replica._span_over(None)

    def energy_j(self, steps: int) -> float:
        """Dynamic energy of the span's first ``steps`` steps: step k draws e0 + k x rise
        (energy is linear in the context, which grows by the batch a step), so the sum is
        steps x e0 + rise x steps (steps - 1) / 2, in closed form."""
        return steps * self.energy_first_j + self.energy_rise_j * (steps * (steps - 1) / 2)


class LLMReplica:
    """One tensor-parallel replica running iteration-level continuous batching.

    The replica is driven by callbacks on bare events, not a SimPy process: it runs
    :meth:`_run` whenever it can act until it has to wait again: at an iteration's end,
    at a decode span's end, or, when idle, through an event at the instant of a
    submission (so every submission of that instant is queued before it admits). A
    submission during a span cuts it at the end of the step in progress, where the
    replica goes on."""

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
        fractions: _Fractions | None = None,
        speculative: Speculation | None = None,
        cache: PrefixCache | None = None,
    ) -> None:
        self.env = env
        self.cache = cache
        self.meter = meter
        # A speculative step advances a sequence by up to k + 1 tokens: no decode spans.
        self.coalesce = coalesce and speculative is None
        self.speculative = speculative
        # KV slots a sequence holds beyond its tokens (speculative proposals), and the most
        # tokens a decoding sequence adds to the cache in one iteration.
        self.lookahead = 0 if speculative is None else speculative.lookahead
        self.step_tokens = 1 if speculative is None else speculative.step_tokens
        self.index = index
        self.pool = pool
        self.chips = chips
        self.cost = cost
        self.batching = batching
        self.preempt = batching.kv_policy == "preempt"
        self.workload = workload
        self.log = log
        self.clock = clock
        self.fractions = fractions or _Fractions()
        self.idle_w = cost.chip.power.idle_w
        self.capacity = cost.capacity.kv_capacity_tokens
        if speculative is not None:
            self.capacity = speculative.cost.kv_capacity_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.prefilling = 0  # running sequences whose prompt is not all prefilled
        self.kv_used = 0
        # What a submission schedules to wake the replica when idle (None otherwise).
        self.wake: Callable[[Any], None] | None = None
        self.admissions = 0
        self.preemptions = 0
        self.max_kv_used = 0
        meter.appliers.append(self.set_clock)
        self.watchers: list[tuple[Callable[[int], None], int]] = []  # indexed routers
        # The context-free part of a decode step's time, by batch size and clock ratio.
        self.constants: dict[tuple[int, float], float] = {}
        self.nominal: dict[int, bool] = {}  # by batch size: never capped (a decode plan's bound)
        self.span: _Span | None = None
        # The iteration in flight: its decoding sequences and prefill chunks.
        self.decoding: list[Sequence] = []
        self.chunks: list[tuple[Sequence, int]] = []
        self._idle()

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
        if seq.prompt + seq.output + self.lookahead > self.capacity:
            return False
        self.waiting.append(seq)
        for moved, position in self.watchers:
            moved(position)
        wake = self.wake
        if wake is not None:
            self.wake = None
            call_at(self.env, 0.0, wake)
        elif self.span is not None and not self.span.cut:
            self._cut(self.span)
        return True

    def _need(self, seq: Sequence) -> int:
        if self.preempt:
            return seq.prompt + seq.base + self.lookahead
        return seq.prompt + seq.output + self.lookahead

    def _admit(self) -> None:
        if self.cache is not None:
            self.cache.admit(self)
            return
        limit = self.batching.max_batch_sequences
        waiting, running = self.waiting, self.running
        while waiting and len(running) < limit:
            seq = waiting[0]
            need = self._need(seq)
            if self.kv_used + need > self.capacity:
                break
            self._reserve(seq, need)
            self._join(seq)

    def _reserve(self, seq: Sequence, need: int) -> None:
        """Take ``seq`` from the head of the waiting line and reserve ``need`` KV tokens
        for it, numbered in admission order."""
        self.waiting.popleft()
        seq.kv = need
        self.kv_used += need
        self.admissions += 1
        seq.admitted_order = self.admissions

    def _join(self, seq: Sequence) -> None:
        """``seq`` joins the running batch."""
        self.running.append(seq)
        if seq.prefilled < seq.prompt + seq.base:
            self.prefilling += 1

    def _evict_newest(self) -> None:
        """Preempt policy: free the newest sequence's KV; it will be recomputed."""
        self._evict(max(self.running, key=lambda s: s.admitted_order))

    def _evict(self, victim: Sequence) -> None:
        """Free a running sequence's KV and queue it first, to be recomputed."""
        self.running.remove(victim)
        if victim.prefilled < victim.prompt + victim.base:
            self.prefilling -= 1
        if self.cache is not None:
            self.cache.preempted(victim)
        self.kv_used -= victim.kv
        victim.kv = 0
        victim.base = victim.generated
        victim.prefilled = 0
        self.preemptions += 1
        self.waiting.appendleft(victim)

    def _can_admit(self) -> bool:
        if self.cache is not None:
            return self.cache.can_admit(self)
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

    def _decode_span(
        self, decoding: list[Sequence]
    ) -> tuple[Steps, tuple[float, float], float] | None:
        """Step times, the first step's energy and its growth per step, of the decode-only
        iterations until the first sequence finishes (or KV runs out), at one clock; None
        when the clock would change within the span (then iterations run one by one)."""
        batch = len(decoding)
        steps = decoding[0].output
        context = 0
        for s in decoding:
            left = s.output - s.generated
            if left < steps:
                steps = left
            context += s.prompt + s.generated
        if self.preempt:
            steps = min(steps, (self.capacity - self.kv_used) // batch)
        if steps < 2:
            return None
        end_context = context + (steps - 1) * batch
        plan = self.cost.decode_plan(batch)
        ratio = self.clock.locked_ratio
        first: Terms | None = None
        last: Terms | None = None
        if ratio is None:
            if not (plan is not None and self._always_nominal(plan, batch)):
                first, last = self._ends(plan, batch, context, end_context)
                if not (
                    at_nominal_clock(first, self.idle_w, self.clock)
                    and at_nominal_clock(last, self.idle_w, self.clock)
                ):
                    return None
            ratio = 1.0
        if plan is not None:
            c0 = plan.compute_per_token * context
            c1 = plan.compute_per_token * end_context
            m0 = plan.memory_per_token * context
            m1 = plan.memory_per_token * end_context
            if c0 != c1 or m0 != m1:
                # Only the plan's one op varies; the others' sum is the same every step,
                # added once (the general path's zeros plus this op's times are this op's
                # times exactly). The ends' figures are the products ``plan.terms`` forms.
                key = (batch, ratio)
                constant = self.constants.get(key)
                if constant is None:
                    constant = _constant_s(plan.terms(context), ratio, plan.position)
                    self.constants[key] = constant
                c0, c1 = c0 / ratio, c1 / ratio
                rise = steps - 1
                linear = LinearSteps(
                    steps,
                    c0,
                    (c1 - c0) / rise,
                    m0,
                    (m1 - m0) / rise,
                    plan.overlap,
                    constant,
                )
                ec0, ef0 = plan.energy(context)
                per_token_c, per_token_f = plan.energy_per_token
                squared = ratio * ratio
                e0 = ec0 * squared + ef0
                return linear, (e0, (per_token_c * squared + per_token_f) * batch), ratio
        if first is None or last is None:
            first, last = self._ends(plan, batch, context, end_context)
        # Every term is linear in the context, which grows by `batch` tokens a step; most
        # ops do not depend on it. Each op as the roofline combines compute c and memory
        # m: max(c, m) + (1 - overlap) min(c, m) = c + m - overlap x min(c, m).
        overlap = first.overlap
        j = self.fractions(steps)
        times: np.ndarray = np.zeros(steps)
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
        e0 = first.dynamic(ratio)
        return ArraySteps(times), (e0, (last.dynamic(ratio) - e0) / (steps - 1)), ratio

    def _ends(
        self, plan: DecodePlan | None, batch: int, context: int, end_context: int
    ) -> tuple[Terms, Terms]:
        """The terms of a span's first and last decode steps."""
        if plan is not None:
            return plan.terms(context), plan.terms(end_context)
        first = self.cost.terms(
            Iteration(decode_sequences=batch, decode_context_tokens=context, logits=batch)
        )
        last = self.cost.terms(
            Iteration(decode_sequences=batch, decode_context_tokens=end_context, logits=batch)
        )
        return first, last

    def _always_nominal(self, plan: DecodePlan, batch: int) -> bool:
        """True when no decode step of ``batch`` sequences can reach the power cap at the
        nominal clock, by the plan's bound with a margin far above rounding: then the
        span's ends need no check of their own."""
        known = self.nominal.get(batch)
        if known is None:
            bound = plan.peak_power_w(self.idle_w)
            known = self.nominal[batch] = bound * (1 + 1e-9) <= self.clock.cap_w
        return known

    def _kv_mean(self, span: _Span, steps: int) -> float:
        """Time-weighted mean KV over a span's first ``steps`` steps: it grows by the
        batch a step under preemption and is reserved up front otherwise."""
        if not self.preempt:
            return float(span.kv_start)
        return span.kv_start + len(span.decoding) * span.times.weighted_step(steps)

    def _start_span(self, decoding: list[Sequence]) -> bool:
        """Run decode-only iterations as one event while nothing can change the batch;
        an arrival for this replica cuts the span at the end of the step in progress.
        False when the span cannot be coalesced."""
        computed = self._decode_span(decoding)
        if computed is None:
            return False
        times, energies, ratio = computed
        env = self.env
        start = env.now
        total = times.elapsed(times.steps)
        log = self.log
        span = self.span = _Span(
            decoding, times, energies, start, len(log.start), self.kv_used, self
        )
        # Logged before the wait, so a span the run's end cuts short is still counted.
        self.meter.busy_s += total * self.chips
        log.replica.append(self.index)
        log.start.append(start)
        log.end.append(start + total)
        log.sequences.append(len(decoding))
        log.prefill_tokens.append(0)
        log.kv_tokens.append(self._kv_mean(span, span.steps))
        log.energy.append(span.energy_j(span.steps) * self.chips)
        log.clock.append(ratio)
        log.steps.append(span.steps)
        call_at(env, total, span)
        return True

    def _cut(self, span: _Span) -> None:
        """A submission during a span: the span stops at the end of the step in progress,
        when the replica goes on (at once, at the same instant, if that step ends now)."""
        span.cut = True
        env = self.env
        start = span.start
        done = span.times.done_by(env.now - start)
        if done < span.steps:
            steps = span.steps = done + 1
            log = self.log
            record = span.record
            end = start + span.times.elapsed(steps)
            self.meter.busy_s -= (log.end[record] - end) * self.chips
            log.end[record] = end
            log.energy[record] = span.energy_j(steps) * self.chips
            log.kv_tokens[record] = self._kv_mean(span, steps)
            log.steps[record] = steps
            call_at(env, max(0.0, end - env.now), self._span_over)
        else:
            call_at(env, 0.0, self._span_over)

    def _span_over(self, _event: Any) -> None:
        span = self.span
        assert span is not None
        self.span = None
        steps = span.steps
        decoding = span.decoding
        done: list[Sequence] = []
        for s in decoding:
            s.generated += steps
            if s.generated >= s.output:
                done.append(s)
        if self.preempt:
            for s in decoding:
                s.kv += steps
            self.kv_used += steps * len(decoding)
        if self.kv_used > self.max_kv_used:
            self.max_kv_used = self.kv_used
        self._finish(done, self.env.now)
        self._run()

    def _idle(self) -> None:
        self.wake = self._woken

    def _woken(self, _event: Any) -> None:
        self._run()

    def _run(self) -> None:
        """Admit what fits, then start the next decode span or iteration (or go idle)."""
        budget_total = self.batching.max_batch_tokens
        chunked = self.batching.chunked_prefill
        preempt = self.preempt
        running = self.running
        evicting = False
        while True:
            if not evicting and self.waiting:
                self._admit()
            evicting = False
            if not running:
                self._idle()
                return
            if self.prefilling:
                decoding = [s for s in running if s.prefilled >= s.prompt + s.base]
            else:
                decoding = running.copy()
            if (
                self.coalesce
                and len(decoding) == len(running)
                and (not self.waiting or not self._can_admit())
                and self._start_span(decoding)
            ):
                return
            budget = budget_total - len(decoding)
            chunks: list[tuple[Sequence, int]] = []
            for seq in running:
                remaining = seq.prompt + seq.base - seq.prefilled
                if remaining <= 0:
                    continue
                take = min(remaining, budget) if chunked else remaining
                if take <= 0 or (not chunked and take > budget and (chunks or decoding)):
                    break
                chunks.append((seq, take))
                budget -= take
            if preempt:
                growth = len(decoding) * self.step_tokens + sum(
                    1 for s, t in chunks if s.prefilled + t >= s.prompt + s.base
                )
                if self.cache is not None and self.kv_used + growth > self.capacity:
                    self.cache.make_room(self, self.kv_used + growth - self.capacity)
                # A lone sequence is evicted only when KV it does not hold is reserved
                # (sequences whose KV is on its way to a decode replica).
                if self.kv_used + growth > self.capacity and (
                    len(running) > 1 or self.kv_used > running[0].kv
                ):
                    self._evict_newest()
                    evicting = True  # no admissions until the batch fits again
                    continue
            break
        context = 0
        for s in decoding:
            context += s.prompt + s.generated
        pairs = 0.0
        prior = 0
        images = 0
        logits = len(decoding)
        prefill_tokens = 0
        for s, take in chunks:
            pairs += prefill_pairs(take, s.prefilled)
            prior += s.prefilled
            if s.prefilled == s.hit:
                images += s.images
            if s.prefilled + take >= s.prompt + s.base:
                logits += 1
            prefill_tokens += take
        it = Iteration(
            prefill_tokens=prefill_tokens,
            prefill_pairs=pairs,
            prefill_context_tokens=prior,
            decode_sequences=len(decoding),
            decode_context_tokens=context,
            logits=logits,
            image_tokens=images,
        )
        speculative = self.speculative if decoding else None
        terms = self.cost.terms(it) if speculative is None else speculative.terms(it)
        # Most iterations stay within the cap at the nominal clock of a free clock: then
        # ``clocked_terms`` would return these figures as they are, and is not called.
        clock = self.clock
        time_s = terms.time(1.0) if clock.locked_ratio is None else 0.0
        energy_j = terms.dynamic(1.0)
        ratio = 1.0
        if not (time_s > 0 and energy_j / time_s + self.idle_w <= clock.cap_w):
            cost = clocked_terms(terms, self.idle_w, clock)
            time_s, energy_j, ratio = cost.time_s, cost.dynamic_energy_j, cost.clock_ratio
        start = self.env.now
        if speculative is not None:
            speculative.ran(start, time_s)
        self._log(
            start,
            start + time_s,
            len(decoding) + len(chunks),
            prefill_tokens,
            self.kv_used,
            energy_j,
            ratio,
            1,
        )
        if self.kv_used > self.max_kv_used:
            self.max_kv_used = self.kv_used
        self.decoding, self.chunks = decoding, chunks
        call_at(self.env, time_s, self._iterated)

    def _iterated(self, _event: Any) -> None:
        """An iteration is over: its tokens are generated and its chunks prefilled."""
        now = self.env.now
        preempt = self.preempt
        done: list[Sequence] = []
        decoding = self.decoding
        # One token each, or as many as a speculative step accepted.
        accepted: Iterable[int] = (
            repeat(1)
            if self.speculative is None or not decoding
            else self.speculative.accepted(decoding)
        )
        for s, n in zip(decoding, accepted, strict=False):  # repeat(1) never ends
            s.generated += n
            if preempt:
                s.kv += n
                self.kv_used += n
            if s.generated >= s.output:
                done.append(s)
        for s, take in self.chunks:
            s.prefilled += take
            if s.prefilled >= s.prompt + s.base:
                self.prefilling -= 1
                if self.cache is not None:
                    self.cache.prefilled(s)
                s.generated += 1
                if preempt:
                    s.kv += 1
                    self.kv_used += 1
                self.workload.first_token_of(s, now)
                if s.generated >= s.output:
                    done.append(s)
        if self.kv_used > self.max_kv_used:
            self.max_kv_used = self.kv_used
        if done:
            self._finish(done, now)
        self._run()

    def _finish(self, done: list[Sequence], now: float) -> None:
        """Sequences that generated their last token leave the batch and free their KV
        (routers hear of each before it completes: a branch's completion may route its
        request's aggregation at once)."""
        for s in done:
            self.running.remove(s)
            if s.prefilled < s.prompt + s.base:
                self.prefilling -= 1
            if self.cache is not None:
                self.cache.release(s)
            self.kv_used -= s.kv
            s.kv = 0
            for moved, position in self.watchers:
                moved(position)
            self.workload.finished(s, now)


class LLMFleet:
    """Every LLM workload's requests and every LLM pool's replicas."""

    kind: ClassVar[str] = "llm"

    def __init__(self, ctx: FleetContext, workloads: list[str], pools: list[str]) -> None:
        # Imported here: engine.slo builds on this module's replica.
        from accelsim.engine.slo import ClassState, PriorityReplica, draw_classes

        resolved = ctx.resolved
        scenario = resolved.scenario
        self.env = ctx.env
        self.iterations = IterationLog()
        self.states: dict[str, LLMWorkloadState] = {}
        self.loops: dict[str, tuple[ClosedLoop, Callable[[int], LLMRequests]]] = {}
        self.classes: dict[str, ClassState] = {}  # of workloads with SLO classes
        self.tallies: dict[str, SpeculativeTally] = {}  # workloads that decode speculatively
        replicas_of: dict[str, list[LLMReplica]] = {name: [] for name in workloads}
        for name in workloads:
            workload = scenario.workloads[name]
            assert isinstance(workload, LLMWorkload)
            model = resolved.models[name]
            assert isinstance(model, LLMModel)
            rng = workload_rng(scenario.simulation.seed, name)
            per_image = model.vision.tokens_per_image if model.vision else 0
            spec = workload.speculative
            if spec is not None:
                spec_rng = workload_rng(scenario.simulation.seed, f"{name}/speculative")
                self.tallies[name] = SpeculativeTally(spec.tokens, spec.acceptance_rate, spec_rng)
            if isinstance(workload.traffic, ClosedLoopTraffic):
                self.states[name] = self._closed_loop_state(ctx, name, workload, per_image, rng)
                continue
            times, given = arrival_times(
                workload.traffic, resolved.traces.get(name), ctx.end_s, rng
            )
            session = None
            if workload.sessions is not None:
                times, session = session_arrivals(workload.sessions, times, rng)
            requests = sample_requests(workload, times, per_image, rng, given)
            prefixes = None
            if (
                workload.sessions is not None
                or workload.system_prompt is not None
                or any(
                    scenario.pools[p].continuous_batching.prefix_cache is not None
                    for p in pools
                    if scenario.pools[p].serves[0] == name
                )
            ):
                prompt, images, prefixes = prefixed_prompts(
                    workload.system_prompt,
                    workload.sessions,
                    session,
                    requests.prompt_tokens,
                    requests.output_tokens,
                    requests.image_tokens,
                    rng,
                )
                requests = replace(requests, prompt_tokens=prompt, image_tokens=images)
            if workload.disaggregation is None:
                state = self.states[name] = LLMWorkloadState(name, requests)
            else:
                from accelsim.engine.disagg import DisaggState  # it builds on this module

                split = workload.disaggregation
                state = self.states[name] = DisaggState(name, requests, self.env, split)
            state.prefixes, state.env = prefixes, self.env
            if workload.slo is not None:
                drawn = draw_classes(workload.slo, len(requests.arrival_s), rng)
                self.classes[name] = ClassState(workload.slo, drawn)
        self.replicas: list[LLMReplica] = []
        fractions = _Fractions()
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
            spec_cost = None
            if name in self.tallies:
                spec_cost, problem = llm_speculative_cost(resolved, pool_name, name, cost)
                if problem is not None:
                    ctx.problems.append(problem)
                if spec_cost is None:
                    continue
            caching = pool.continuous_batching.prefix_cache
            prefixes = self.states[name].prefixes
            classes = self.classes.get(name)
            kind = self.states[name].replica_type(pool_name)
            make = kind if classes is None else partial(PriorityReplica, classes=classes)
            for _ in range(pool.count // pool.replica_chips):
                cache = None
                if caching is not None and prefixes is not None:
                    cache = PrefixCache(caching.block_tokens, prefixes)
                replica = make(
                    self.env,
                    len(self.replicas),
                    pool_name,
                    pool.replica_chips,
                    cost,
                    pool.continuous_batching,
                    self.states[name],
                    self.iterations,
                    clock,
                    ctx.meter(pool_name),
                    ctx.coalesce,
                    fractions,
                    None if spec_cost is None else Speculation(spec_cost, self.tallies[name]),
                    cache,
                )
                self.replicas.append(replica)
                replicas_of[name].append(replica)
        for name, state in self.states.items():
            state.connect(ctx, replicas_of[name])

    def _closed_loop_state(
        self,
        ctx: FleetContext,
        name: str,
        workload: LLMWorkload,
        per_image: int,
        rng: np.random.Generator,
    ) -> LLMWorkloadState:
        """A closed-loop workload's state, with room for its users' first requests; its
        requests are drawn in blocks as it sends them (times set when sent)."""
        traffic = workload.traffic
        assert isinstance(traffic, ClosedLoopTraffic)

        def draw(n: int) -> LLMRequests:
            return sample_requests(workload, np.full(n, np.nan), per_image, rng)

        state = LLMWorkloadState(name, draw(traffic.users))
        state.count = 0
        seed = ctx.resolved.scenario.simulation.seed
        self.loops[name] = (ClosedLoop(self.env, traffic, ctx.end_s, think_rng(seed, name)), draw)
        return state

    def start(self) -> None:
        for state in self.states.values():
            closed = self.loops.get(state.name)
            if closed is not None:
                self._closed_loop(state, *closed)
            elif len(state.requests.arrival_s):
                self._arrivals(state)

    def _closed_loop(
        self, state: LLMWorkloadState, loop: ClosedLoop, draw: Callable[[int], LLMRequests]
    ) -> None:
        """Feed a closed-loop workload: each send sets the next request's arrival time
        and submits it; each completion or rejection frees its user."""

        def send(now: float) -> None:
            i = state.count
            if i == len(state.requests.arrival_s):
                state.extend(draw(max(SIZE_BLOCK, i)))
            state.requests.arrival_s[i] = now
            state.count = i + 1
            state.arrive(i)

        state.on_done = loop.done
        loop.start(send)

    def _arrivals(self, state: LLMWorkloadState) -> None:
        """Feed a workload's pre-sampled arrivals: one bare event per arrival time
        (requests at the same time arrive in the same event, in order)."""
        env = self.env
        times = state.requests.arrival_s.tolist()
        arrive_one: Callable[[int], None] = state.arrive
        prefixes = state.prefixes
        if prefixes is not None and prefixes.first_turns is not None:
            firsts = prefixes.first_turns  # later turns arrive as earlier ones finish
            times = [times[j] for j in firsts]

            def arrive_first(k: int) -> None:
                state.arrive(firsts[k])

            arrive_one = arrive_first

        n = len(times)
        i = 0
        lane = env.lane()

        def arrive_from(_event: Any) -> None:
            nonlocal i
            while i < n:
                delay = times[i] - env.now
                if delay > 0:
                    lane.call_at(delay, arrive)
                    return
                arrive_one(i)
                i += 1

        def arrive(_event: Any) -> None:
            nonlocal i
            arrive_one(i)
            i += 1
            arrive_from(None)

        arrive_from(None)

    def records(self) -> LLMFleetRecords:
        workloads = {}
        for state in self.states.values():
            state.trim()
            r = state.requests
            classes = self.classes.get(state.name)
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
                branch_finish_s=frozen(state.branch_finish).reshape(len(r.arrival_s), state.fanout),
                branch_replica=frozen(state.branch_replica).reshape(len(r.arrival_s), state.fanout),
                branch_output_tokens=r.branch_output,
                slo_class=None if classes is None else classes.slo_class,
                preemptions=None if classes is None else frozen(classes.preemptions),
                slo_class_names=() if classes is None else classes.names,
                prefill_requested_tokens=frozen(state.prefill_requested),
                prefix_hit_tokens=frozen(state.prefix_hit),
                disaggregation=state.handoffs(),
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
                prefix_evicted_blocks=r.cache.evicted if r.cache is not None else 0,
                prefix_cached_blocks=len(r.cache) if r.cache is not None else 0,
            )
            for r in self.replicas
        )
        speculative = {name: tally.records() for name, tally in self.tallies.items()}
        return LLMFleetRecords(workloads, iterations, replicas, speculative)
