"""Disaggregated prefill and decode: one pool prefills, another decodes, the KV cache moves.

A workload with a ``disaggregation`` block sends every sequence (a request, a
contemplating branch or aggregation) first to a replica of its prefill pool,
as a sequence whose output is the first token. When that token is computed
the prompt's KV cache moves to a replica of the decode pool, which goes on
generating the rest of the answer; the two pools may use different chips.

* A decode replica admits a sequence as it admits any other (KV cache and
  ``max_batch_sequences``), reserving KV for it; the sequence joins the batch
  only when its KV has landed. Without ``layerwise`` the decode replica is
  chosen once the prefill is done; with it, as soon as the prefill replica
  admits the prompt, so that layers can be sent while they are computed (the
  decode replica holds that KV meanwhile).
* Each prefill replica sends over its own ``kv_link``, one transfer after
  another. A whole-cache transfer of ``B`` bytes ready at ``t`` (prefill done and
  decode KV reserved) on a link free at ``f`` lands at
  ``max(t, f) + B / bandwidth + latency``. Layer by layer, each of the ``L``
  layers' ``B / L`` bytes is ready at ``t_s + k (t_e - t_s) / L`` over the prefill's
  last iteration ``[t_s, t_e]``, and the link sends them in order from
  ``s = max(f, reserved)``, so the wire is done at
  ``max(s + B / bw, t_s + (t_e - t_s) / L + B / bw, t_e + B / (L bw))``, plus the
  latency: on a fast link only the last layer's transfer follows the prefill.
  (A prompt prefilled in several chunks counts as computed in its last one.)
* The prefill replica holds the sequence's KV until it has landed, then frees it.
* The user's first token is the prefill's, but it is streamed by the decode
  replica: a request's first token counts when its KV has landed. An answer of
  one token needs no decode: it completes at the prefill replica, and no KV moves.

``B`` is the prompt's KV (prompt tokens x the model's KV bytes per token); the
first token's KV is computed by the decode replica's first step.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable
from typing import Any

import numpy as np
import simpy

from accelsim.config.schema import Disaggregation
from accelsim.engine.events import call_at
from accelsim.engine.fleet import FleetContext
from accelsim.engine.llm import LLMReplica, LLMRequests, LLMWorkloadState, Sequence
from accelsim.engine.records import ROLE_BRANCH, DisaggRecords, frozen


class PrefillSequence(Sequence):
    """A sequence on the prefill pool: its prompt and first token (``output`` is 1).
    ``answer`` is the whole answer's length, ``source`` the replica prefilling it, and
    ``handoff`` its move to the decode pool (None for a one-token answer)."""

    __slots__ = ("answer", "handoff", "source")

    def __init__(self, seq: Sequence, source: PrefillReplica) -> None:
        super().__init__(seq.request, seq.role, seq.prompt, 1, seq.images)
        self.answer = seq.output
        self.source = source
        self.handoff: Handoff | None = None


class DecodeSequence(Sequence):
    """The rest of a sequence on the decode pool: its prompt and first token are prefilled
    (their KV comes over the link); ``handoff`` is None once the KV has landed."""

    __slots__ = ("handoff",)

    def __init__(self, handoff: Handoff) -> None:
        p = handoff.prefill
        super().__init__(p.request, p.role, p.prompt + 1, p.answer - 1, 0)
        self.prefilled = self.prompt
        self.handoff: Handoff | None = handoff


class Handoff:
    """One sequence's move from a prefill replica to a decode replica."""

    __slots__ = (
        "decode",
        "prefill",
        "prefill_end_s",
        "prefill_start_s",
        "reserved_s",
        "state",
        "target",
    )

    def __init__(self, prefill: PrefillSequence, state: DisaggState) -> None:
        self.prefill = prefill
        self.state = state
        self.decode: DecodeSequence | None = None
        self.target: DecodeReplica | None = None
        self.reserved_s = math.nan  # the decode replica reserved its KV
        self.prefill_start_s = math.nan  # the prefill's last iteration
        self.prefill_end_s = math.nan

    def __call__(self, _event: Any) -> None:
        """The KV has landed."""
        self.state.landed(self)


def _poke(replica: LLMReplica) -> None:
    """Something changed for ``replica`` from outside (KV freed, a sequence landed): wake it
    if idle, or cut its decode span so the next step sees the change."""
    wake = replica.wake
    if wake is not None:
        replica.wake = None
        call_at(replica.env, 0.0, wake)
    elif replica.span is not None and not replica.span.cut:
        replica._cut(replica.span)


class PrefillReplica(LLMReplica):
    """A prefill pool's replica: it prefills prompts and holds each one's KV until sent."""

    disagg: DisaggState

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.link_free_s = 0.0  # when its KV link has sent everything handed to it
        self.iteration_start_s = 0.0

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
        self.iteration_start_s = start
        super()._log(start, end, sequences, prefill_tokens, kv_tokens, energy_j, clock, steps)

    def _admit(self) -> None:
        before = self.admissions
        super()._admit()
        new = self.admissions - before
        if new:
            now = self.env.now
            running = self.running
            for seq in running[len(running) - new :]:
                assert isinstance(seq, PrefillSequence)
                self.disagg.admitted(seq, now)

    def _finish(self, done: list[Sequence], now: float) -> None:
        """A prefill is done: the sequence leaves the batch, its KV stays until sent
        (freed at once for a one-token answer)."""
        for s in done:
            assert isinstance(s, PrefillSequence)
            self.running.remove(s)
            if s.handoff is None:
                self.kv_used -= s.kv
                s.kv = 0
            for moved, position in self.watchers:
                moved(position)
            self.workload.finished(s, now)

    def release(self, seq: PrefillSequence) -> None:
        """The sequence's KV has landed on the decode pool: free it here."""
        self.kv_used -= seq.kv
        seq.kv = 0
        _poke(self)


class DecodeReplica(LLMReplica):
    """A decode pool's replica: it admits a sequence by reserving its KV, and adds it to the
    batch once the KV has landed (``landing`` counts those on the way, against the batch's
    sequence limit). A sequence it preempts is recomputed here."""

    disagg: DisaggState

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.landing = 0

    @property
    def outstanding(self) -> int:
        return len(self.waiting) + len(self.running) + self.landing

    def _admit(self) -> None:
        limit = self.batching.max_batch_sequences
        waiting, running = self.waiting, self.running
        while waiting and len(running) + self.landing < limit:
            seq = waiting[0]
            need = self._need(seq)
            if self.kv_used + need > self.capacity:
                break
            self._reserve(seq, need)
            assert isinstance(seq, DecodeSequence)
            if seq.handoff is not None:
                self.landing += 1
                self.disagg.reserved(seq.handoff, self.env.now)
                continue
            self._join(seq)

    def _can_admit(self) -> bool:
        if not self.waiting or len(self.running) + self.landing >= (
            self.batching.max_batch_sequences
        ):
            return False
        return self.kv_used + self._need(self.waiting[0]) <= self.capacity

    def land(self, seq: DecodeSequence) -> None:
        """The sequence's KV is here: it joins the batch."""
        seq.handoff = None
        self.landing -= 1
        self._join(seq)
        _poke(self)


class DisaggState(LLMWorkloadState):
    """A disaggregated workload's requests: each sequence is prefilled on the prefill pool,
    its KV sent, and its answer decoded on the decode pool."""

    def __init__(
        self, name: str, requests: LLMRequests, env: simpy.Environment, split: Disaggregation
    ) -> None:
        super().__init__(name, requests)
        self.env = self.sim = env
        self.split = split
        self.bandwidth = split.kv_link.bandwidth_bytes_per_s
        self.latency_s = split.kv_link.latency_s
        n = len(requests.arrival_s)
        nan = array("d", [math.nan]) * n
        self.submitted_s, self.admitted_s, self.prefilled_s = nan, nan[:], nan[:]
        self.reserved_s, self.landed_s = nan[:], nan[:]
        self.transfers = array("q", bytes(8 * n))
        self.kv_bytes = array("d", bytes(8 * n))
        self.kv_bytes_per_token = 0.0
        self.layers = 1
        self.decode_capacity = 0
        self.route_prefill: Callable[[], LLMReplica]
        self.route_decode: Callable[[], DecodeReplica]

    def replica_type(self, pool: str) -> type[LLMReplica]:
        return PrefillReplica if pool == self.split.prefill_pool else DecodeReplica

    def connect(self, ctx: FleetContext, replicas: list[LLMReplica]) -> None:
        prefill = [r for r in replicas if r.pool == self.split.prefill_pool]
        decode = [r for r in replicas if r.pool == self.split.decode_pool]
        for r in replicas:
            assert isinstance(r, PrefillReplica | DecodeReplica)
            r.disagg = self
        self.route_prefill = ctx.route(prefill, 0, self.name).pick
        self.route_decode = ctx.route(decode, 0, self.name).pick
        if decode:
            shape = decode[0].cost.shape
            self.kv_bytes_per_token = shape.kv_bytes_per_token
            self.layers = shape.layers
            self.decode_capacity = decode[0].capacity

    def _submit(self, i: int, seq: Sequence) -> None:
        if seq.prompt + seq.output > self.decode_capacity:  # the decode pool never could
            self.rejected[i] = 1
            return
        replica = self.route_prefill()
        assert isinstance(replica, PrefillReplica)
        if seq.role != ROLE_BRANCH:
            self.replica[i] = replica.index
            self.submitted_s[i] = self.sim.now
        if not replica.submit(PrefillSequence(seq, replica)):
            self.rejected[i] = 1

    def admitted(self, seq: PrefillSequence, now: float) -> None:
        """The prefill replica reserved the prompt's KV (once: a prefill pool does not
        preempt); with ``layerwise`` the decode replica is chosen now."""
        if seq.role != ROLE_BRANCH:
            self.admitted_s[seq.request] = now
        if seq.answer > 1:
            handoff = seq.handoff = Handoff(seq, self)
            if self.split.layerwise:
                self._to_decode(handoff)

    def _to_decode(self, handoff: Handoff) -> None:
        target = handoff.target = self.route_decode()
        decode = handoff.decode = DecodeSequence(handoff)
        if decode.role != ROLE_BRANCH:
            self.replica[decode.request] = target.index
        target.submit(decode)  # fits: the request was checked against the decode pool

    def first_token_of(self, seq: Sequence, now: float) -> None:
        """A prefill's first token counts once its KV has landed (see :meth:`landed`)."""
        if isinstance(seq, PrefillSequence) and seq.handoff is not None:
            return
        super().first_token_of(seq, now)

    def finished(self, seq: Sequence, now: float) -> None:
        if isinstance(seq, PrefillSequence) and seq.handoff is not None:
            handoff = seq.handoff
            self.generated[seq.request] += seq.generated
            handoff.prefill_start_s = seq.source.iteration_start_s
            handoff.prefill_end_s = now
            if seq.role != ROLE_BRANCH:
                self.prefilled_s[seq.request] = now
            if handoff.decode is None:
                self._to_decode(handoff)
            elif not math.isnan(handoff.reserved_s):
                self._send(handoff)
            return
        super().finished(seq, now)

    def reserved(self, handoff: Handoff, now: float) -> None:
        """A decode replica reserved the sequence's KV."""
        handoff.reserved_s = now
        if handoff.prefill.role != ROLE_BRANCH:
            self.reserved_s[handoff.prefill.request] = now
        if not math.isnan(handoff.prefill_end_s):
            self._send(handoff)

    def _send(self, handoff: Handoff) -> None:
        """Both ends are ready (the prefill is done or under way layer by layer, the decode
        KV reserved): put the KV on the prefill replica's link."""
        now = self.sim.now
        seq = handoff.prefill
        source = seq.source
        wire = seq.prompt * self.kv_bytes_per_token / self.bandwidth
        if self.split.layerwise:
            t_s, t_e, layers = handoff.prefill_start_s, handoff.prefill_end_s, self.layers
            start = max(source.link_free_s, handoff.reserved_s)
            end = max(start + wire, t_s + (t_e - t_s) / layers + wire, t_e + wire / layers)
        else:
            end = max(source.link_free_s, now) + wire
        source.link_free_s = end
        call_at(self.sim, end + self.latency_s - now, handoff)

    def landed(self, handoff: Handoff) -> None:
        now = self.sim.now
        seq, decode, target = handoff.prefill, handoff.decode, handoff.target
        assert decode is not None and target is not None
        i = seq.request
        self.transfers[i] += 1
        self.kv_bytes[i] += seq.prompt * self.kv_bytes_per_token
        if seq.role != ROLE_BRANCH:
            self.landed_s[i] = now
        seq.source.release(seq)
        target.land(decode)
        super().first_token_of(decode, now)

    def handoffs(self) -> DisaggRecords:
        return DisaggRecords(
            submitted_s=frozen(self.submitted_s),
            admitted_s=frozen(self.admitted_s),
            prefilled_s=frozen(self.prefilled_s),
            reserved_s=frozen(self.reserved_s),
            landed_s=frozen(self.landed_s),
            transfers=frozen(self.transfers),
            kv_bytes=np.asarray(frozen(self.kv_bytes), dtype=float),
        )
