"""What a workload kind brings to the report layer.

A :class:`ReportKind` holds what differs between ranking and LLM (or any other kind of
workload) wherever a report shows one: the columns and rows of its workload tables, how
its pools read, which latency curves it has, its sweep metrics, and how it builds, shows,
charts and reads an explain document (one :class:`ExplainStep` per costed step). Shared
report code lays these out the same way for every kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import RenderableType

from accelsim.config.schema import Chip

Doc = dict[str, Any]


@dataclass(frozen=True)
class ExplainSetting:
    """The step an explain document breaks down: the batch (ranking items, or LLM sequences
    in a decode step) and, for LLMs, the prompt to prefill, the context each decoding
    sequence holds and the tensor-parallel chips of a replica (and its pipeline stages,
    their micro-batches, and its expert-parallel degree)."""

    batch: int
    context_tokens: int = 2048
    prompt_tokens: int = 2048
    chips_per_replica: int = 1
    pipeline: int = 1
    expert: int = 1
    micro_batches: int | None = None  # default: pipeline
    expert_imbalance: float | None = None  # default: the schema's EXPERT_IMBALANCE


@dataclass(frozen=True)
class ExplainStep:
    """One costed step of an explain document: a ranking batch, an LLM prefill or decode."""

    phase: str  # "" when the document has a single step, else its name ("prefill", "decode")
    ops: list[Doc]
    totals: Doc
    batch: int | None  # the rows each GEMM multiplies: items, prompt tokens or sequences
    unit: str  # what ``batch`` counts: "items", "tokens", "sequences"
    weight_rows: int | None  # rows one read of the weights serves, if the step's shape says
    took: str  # how the step's time sentence begins: "the batch of 256 items takes"
    label: str  # the step on a chart: "batch of 256 items"


@dataclass(frozen=True)
class ReportKind:
    """How the workloads of one kind (the ``kind`` their documents carry) read in a report."""

    name: str  # the ``kind`` of its workload entries and explain documents
    label: str  # in headers and titles: "ranking", "LLM"

    # The work its pools count for perf/W and cost: the result document's keys are
    # ``{work_key}_per_j`` and ``cost_per_million_{work_key}_usd``.
    work_key: str  # "queries", "output_tokens"
    work_noun: str  # "queries", "output tokens"
    per_joule_column: str  # a perf/W column's unit: "queries/J", "tokens/J"
    per_joule_cell: str  # the terminal pool table's unit after a perf/W figure: "q", "tok"
    served_key: str  # the work a workload entry did: "completed" (queries), "output_tokens"

    # A run's summary: a table of its workloads, and its pools' chips and batches.
    terminal_columns: tuple[str, ...]  # after the workload name
    terminal_rows: Callable[[Doc, str, Doc], list[list[RenderableType]]]  # (doc, name, entry)
    html_columns: tuple[str, ...]  # after the workload name
    html_rows: Callable[[Doc, str, Doc], list[list[str]]]  # (doc, name, entry), as the terminal's
    pool_chips: Callable[[Doc], str]  # a pool entry's chips: "4", "8 (2x4)"
    batch_key: str  # a pool entry's mean batch: "mean_batch_items"
    batch_unit: str  # what a batch holds: "items", "sequences"
    batch_unit_short: str  # in table cells: "items", "seq"
    # Whether a pool's busy time reads as its load: an LLM replica iterates whenever any
    # sequence is in flight, so its busy share sits at 100% and the report shows its batch
    # slots and KV cache in use instead.
    busy_is_load: bool
    batch_slots: Callable[[Doc], int]  # a pool config's batch limit per server

    # Charts of a run.
    cdf_series: tuple[tuple[str, str], ...]  # (distribution key, name) of its latency CDFs
    # An SLA entry's targets, by the distribution each bounds: key -> (target s, percentile).
    sla_targets: Callable[[Doc], dict[str, tuple[float, float]]]

    # Sweeps: rows hold flat metrics only, so a workload's kind shows by its metrics.
    study_markers: tuple[str, ...]  # metrics only this kind reports ("ttft_s")
    study_columns: tuple[tuple[str, str, Callable[[Any], str]], ...]  # (label, metric, cell)

    # Explain documents: building one, its steps, the terminal view and the lesson.
    explain: Callable[[Any, Chip, ExplainSetting, float | None], Doc]  # (model, chip, ., cap)
    explain_steps: Callable[[Doc], list[ExplainStep]]
    explain_view: Callable[[Doc], list[RenderableType]]  # everything above the reading
    # The step a pool's roofline shows, from (pool config, pool entry, workload entry),
    # and how the report names it.
    roofline_setting: Callable[[Doc, Doc, Doc], tuple[ExplainSetting, str]]
    lesson_closing: Callable[[Doc], list[str]]  # sentences after the steps' reading
    gemm_bytes_are_weights: bool  # activations stay on chip: a GEMM streams weights only
    weights_fit_sram: bool  # its weights can be small enough to keep in SRAM
    four_bit_weights: bool  # its models may store weights in int4 or fp4

    @property
    def per_joule_key(self) -> str:
        return f"{self.work_key}_per_j"

    @property
    def per_joule_unit(self) -> str:
        return f"{self.work_noun}/J"

    @property
    def cost_key(self) -> str:
        return f"cost_per_million_{self.work_key}_usd"
