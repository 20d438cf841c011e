"""What a run records, kind by kind, for the metrics layer to summarise.

Every fleet kind hands back its own frozen records (per request, and per unit
of work such as a batch or an iteration) in numpy arrays; :class:`RunRecords`
holds them by workload kind. Request-mode and sequence-role constants live here
so the engine, the metrics and the tests name them instead of using numbers.

A long run need not keep its records whole: a fleet given a :class:`RecordSink`
hands its records over in chunks as the run goes (arrivals as they are drawn,
completed requests, finished units of work) and keeps none of them; whoever
gave the sink (the metrics layer's streaming summaries) folds each chunk into
what it keeps. The ranking fleet streams so; the LLM fleet always keeps its
records whole.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from accelsim.engine.speculative import SpeculativeRecords

# LLM request modes: the index stored per request is the position in MODES.
MODE_INSTANT, MODE_THINKING, MODE_CONTEMPLATING = 0, 1, 2
MODES = ("instant", "thinking", "contemplating")

# What a sequence is to its request: the request itself, one contemplating branch, or
# the aggregation that follows the branches.
ROLE_MAIN, ROLE_BRANCH, ROLE_AGGREGATE = 0, 1, 2


def frozen(buffer: array[Any]) -> np.ndarray:
    """A record buffer as its own numpy array (the dtype follows the array's typecode)."""
    return np.array(buffer)


class RequestRecords(Protocol):
    """What every kind records per request: enough for Little's law and overload checks."""

    @property
    def arrival_s(self) -> np.ndarray: ...

    @property
    def finish_s(self) -> np.ndarray: ...


class FleetRecords(Protocol):
    """A fleet kind's records: per-workload request records plus its own unit records."""

    @property
    def workloads(self) -> Mapping[str, RequestRecords]: ...


# Records handed to a sink at a time (completed requests, units of work).
CHUNK = 1 << 16


class RecordSink(Protocol):
    """What a fleet hands its records to, chunk by chunk, when it does not keep them."""

    def stations(self, stations: tuple[Any, ...]) -> None:
        """The fleet's serving units (a ``StationInfo`` each), before any record."""

    def arrivals(self, workload: str, arrival_s: np.ndarray, items: np.ndarray) -> None:
        """A block of a workload's arrivals, in time order, as they are drawn."""

    def completions(self, workload: str, chunk: Any) -> None:
        """Requests that completed (a records dataclass of the kind, every one finished)."""

    def units(self, chunk: Any, settled_s: float) -> None:
        """Units of work (a batch records dataclass); every unit handed over later starts
        at or after ``settled_s``."""


# ---------------------------------------------------------------------- ranking


@dataclass(frozen=True)
class WorkloadRecords:
    """One ranking workload's queries."""

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
class RankingRecords:
    """The ranking fleet's records. A streamed run keeps no per-query or per-batch records
    (``workloads`` is empty, ``batches`` hold none): ``stream`` is the sink they went to."""

    workloads: dict[str, WorkloadRecords]
    batches: BatchRecords
    stations: tuple[StationInfo, ...]
    stream: RecordSink | None = None


# ---------------------------------------------------------------------- LLM


@dataclass(frozen=True)
class DisaggRecords:
    """A disaggregated workload's per-request handoff times, for the sequence whose first
    token the user sees (nan where a step did not happen): submitted to the prefill pool,
    admitted there (KV reserved), prefilled, a decode replica's KV reserved, the KV landed
    there; and the KV moves completed for the whole request (branches too) and their bytes."""

    submitted_s: np.ndarray
    admitted_s: np.ndarray
    prefilled_s: np.ndarray
    reserved_s: np.ndarray
    landed_s: np.ndarray
    transfers: np.ndarray
    kv_bytes: np.ndarray


@dataclass(frozen=True)
class LLMRecords:
    """One LLM workload's requests."""

    name: str
    arrival_s: np.ndarray
    mode: np.ndarray  # index into MODES
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray  # tokens of the user-visible final sequence
    first_token_s: np.ndarray  # nan until the user sees a first token
    finish_s: np.ndarray  # nan while in flight
    rejected: np.ndarray  # bool: could never fit a replica's KV cache
    generated_tokens: np.ndarray  # every token generated for the request (incl. branches)
    replica: np.ndarray  # replica of the final sequence (-1 if not yet routed)
    branches_spawned: np.ndarray
    branches_done: np.ndarray
    # (requests, branches): each fan-out's branch completion times in finish order (nan
    # until done); (requests, 0) for a workload without contemplating.
    branch_finish_s: np.ndarray
    branch_replica: np.ndarray  # (requests, branches): each branch's replica (-1: not routed)
    branch_output_tokens: np.ndarray  # (requests, branches): tokens each branch generates
    prefill_requested_tokens: np.ndarray  # prompt tokens to prefill, summed over admissions
    prefix_hit_tokens: np.ndarray  # of those, the ones a prefix cache held
    slo_class: np.ndarray | None = None  # index into the workload's slo.classes
    preemptions: np.ndarray | None = None  # evictions of the request's sequences (SLO classes)
    slo_class_names: tuple[str, ...] = ()  # the names slo_class indexes
    disaggregation: DisaggRecords | None = None


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
    prefix_evicted_blocks: int = 0  # prefix-cache blocks evicted to make room
    prefix_cached_blocks: int = 0  # prefix-cache blocks held at the end of the run


@dataclass(frozen=True)
class LLMFleetRecords:
    """The LLM fleet's records."""

    workloads: dict[str, LLMRecords]
    iterations: IterationRecords
    replicas: tuple[ReplicaInfo, ...]
    speculative: dict[str, SpeculativeRecords] = field(default_factory=dict)  # by workload


# ---------------------------------------------------------------------- a run


@dataclass(frozen=True)
class CapHistory:
    """The per-chip power caps a shifting facility put in force: ``caps[pool][k]`` from
    ``times_s[k]`` until the next time (or the run's end)."""

    interval_s: float
    it_budget_w: float
    times_s: tuple[float, ...]
    caps_w: dict[str, list[float]]


@dataclass(frozen=True)
class RunRecords:
    """Everything a run produced: each workload kind's fleet records, in registry order,
    and, when the facility shifts power between pools, the caps it used."""

    warmup_s: float
    end_s: float
    fleets: dict[str, Any]  # workload kind -> that kind's records (a FleetRecords)
    power_caps: CapHistory | None = None

    def requests(self, workload: str) -> RequestRecords:
        """The per-request records of one workload, whatever its kind. Raises KeyError
        for a workload whose records were streamed rather than kept (a run simulated with
        a sink for its kind)."""
        for fleet in self.fleets.values():
            if workload in fleet.workloads:
                return fleet.workloads[workload]  # type: ignore[no-any-return]
        raise KeyError(workload)

    def streamed(self, kind: str) -> RecordSink | None:
        """The sink a kind's fleet streamed its records to, or None if it kept them."""
        return getattr(self.fleets.get(kind), "stream", None)
