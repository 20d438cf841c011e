"""accelsim against public measurements: the fidelity table.

``validation/reference/measurements.csv`` lists figures measured on real
chips (or derived from a measurement, with the derivation in its notes), each
with the model, the chip and the conditions it was measured at; the chips and
models are datasheet and public-config files in the same folder. For each row
this module computes accelsim's figure through the public cost-model API, one
step alone on one replica at the nominal clock (no queueing, no power cap):

* ``ttft_s``: ``LLMCostModel(model, chip, tp).prefill(prompt_tokens).time_s``.
  The engine prefills a prompt that fits its token budget in one iteration,
  and that iteration emits the first token, so a request served alone sees its
  first token when the iteration ends. Rows have batch 1.
* ``decode_step_s``: ``LLMCostModel(model, chip, tp).decode_step(batch,
  context_tokens).time_s``: one iteration in which each of ``batch`` sequences
  emits one token while attending to ``context_tokens`` KV tokens of its own
  (``context_tokens`` is per sequence; the engine's iteration reads their sum).
* ``batch_s``: ``RankingCostModel(model, chip).steady_batch_s(batch)``: the
  time per batch of ``batch`` items when batches run back to back on one chip
  (the input copy of the next batch overlaps this one's compute on a chip with
  a DMA engine), as a throughput measurement sees it.

The signed error of a row is ``accelsim / measured - 1``: negative when
accelsim is faster (more optimistic) than the measurement. The table
summarises it over all rows, the ``fit`` rows (the calibration subset) and the
``holdout`` rows (never used to calibrate) as the median and the largest
absolute error; :data:`MAX_MEDIAN_ABS_ERROR` and :data:`MAX_WORST_ABS_ERROR`
bound them. Everything here is a pure function of the files it reads.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from accelsim.config.loader import data_root, load_chip, load_model, resolve_path
from accelsim.config.schema import Chip, ContinuousBatching, LLMModel, RankingModel
from accelsim.config.yamlio import read_text
from accelsim.errors import ConfigError, Problem
from accelsim.model.llm import LLMCostModel
from accelsim.model.ranking import RankingCostModel

# Bounds on the absolute error, over all rows and over the holdout rows. The median bound
# is issue 12's target, which the table now meets (12.0% over all rows, 13.8% over the
# holdout rows); the worst bound is today's worst row (55.3%, spw07: Splitwise's
# 8192-token prompt on 8 H100s) rounded up, so a change that moves accelsim further
# from the measurements fails. The target for the worst row is 0.30. The ideal roofline
# this physics replaced stood at 36.4% (holdout median) and 73.6% (worst).
MAX_MEDIAN_ABS_ERROR = 0.15
MAX_WORST_ABS_ERROR = 0.60

METRICS = ("ttft_s", "decode_step_s", "batch_s")
SPLITS = ("fit", "holdout")
KINDS = ("M", "D")  # measured by the source, or derived from a measured figure
COLUMNS = (
    "id",
    "split",
    "metric",
    "model",
    "chip",
    "tp",
    "dtype",
    "batch",
    "prompt_tokens",
    "context_tokens",
    "measured_s",
    "kind",
    "source",
    "reference",
    "notes",
)
# Optional: the serving stack's settings a row was measured with, as ``key=value``
# pairs of the pool's ``continuous_batching`` block separated by ``;`` (say,
# ``graph_decode=true``); empty or absent: the defaults, a C++ runtime launching
# every kernel.
OPTIONAL_COLUMNS = ("serving",)


def measurements_path() -> Path:
    """The measurements shipped with accelsim (``validation/reference/measurements.csv``)."""
    return data_root() / "validation" / "reference" / "measurements.csv"


@dataclass(frozen=True)
class Measurement:
    """One row of the measurements file, with its model and chip loaded."""

    id: str
    split: str  # "fit" or "holdout"
    metric: str  # one of METRICS
    model_file: str  # as written in the file, relative to it
    chip_file: str
    model: LLMModel | RankingModel
    chip: Chip
    tp: int  # chips in tensor parallel
    serving: ContinuousBatching  # the stack's settings (OPTIONAL_COLUMNS)
    batch: int  # sequences (LLM) or items (ranking)
    prompt_tokens: int | None
    context_tokens: int | None  # per sequence, for decode_step_s
    measured_s: float
    kind: str  # "M" or "D"
    source: str
    reference: str
    notes: str
    line: int  # of the row in the measurements file

    @property
    def figure(self) -> str:
        """What was measured, in a few words: 'TTFT 2048', 'step 64×1152', 'batch 600000'."""
        if self.metric == "ttft_s":
            return f"TTFT {self.prompt_tokens}"
        if self.metric == "decode_step_s":
            return f"step {self.batch}×{self.context_tokens}"
        return f"batch {self.batch}"

    @property
    def chips(self) -> str:
        """The replica: '4×h100-sxm', or the chip's name alone for one chip."""
        return self.chip.name if self.tp == 1 else f"{self.tp}×{self.chip.name}"


@dataclass(frozen=True)
class Comparison:
    """accelsim's figure for one measurement."""

    measurement: Measurement
    accelsim_s: float

    @property
    def error(self) -> float:
        """accelsim / measured - 1: negative when accelsim is faster than measured."""
        return self.accelsim_s / self.measurement.measured_s - 1.0


@dataclass(frozen=True)
class Summary:
    """The errors of a set of rows."""

    rows: int
    median_error: float  # signed: the typical bias
    median_abs_error: float
    worst_abs_error: float
    worst_id: str  # the row with the largest absolute error

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "median_error": self.median_error,
            "median_abs_error": self.median_abs_error,
            "worst_abs_error": self.worst_abs_error,
            "worst_id": self.worst_id,
        }


@dataclass(frozen=True)
class FidelityTable:
    """Every comparison, and the summaries over all, fit and holdout rows."""

    source: str  # the measurements file
    comparisons: tuple[Comparison, ...]
    overall: Summary
    fit: Summary
    holdout: Summary

    def bound_violations(self) -> list[str]:
        """One line per summary (all rows, holdout rows) beyond the error bounds."""
        out = []
        for name, s in (("all rows", self.overall), ("holdout rows", self.holdout)):
            if s.median_abs_error > MAX_MEDIAN_ABS_ERROR:
                out.append(
                    f"{name}: median |error| {s.median_abs_error:.1%} exceeds the bound "
                    f"{MAX_MEDIAN_ABS_ERROR:.0%}"
                )
            if s.worst_abs_error > MAX_WORST_ABS_ERROR:
                out.append(
                    f"{name}: worst |error| {s.worst_abs_error:.1%} ({s.worst_id}) exceeds the "
                    f"bound {MAX_WORST_ABS_ERROR:.0%}"
                )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "measurements": self.source,
            "bounds": {
                "max_median_abs_error": MAX_MEDIAN_ABS_ERROR,
                "max_worst_abs_error": MAX_WORST_ABS_ERROR,
            },
            "passed": not self.bound_violations(),
            "summary": {
                "all": self.overall.to_json(),
                "fit": self.fit.to_json(),
                "holdout": self.holdout.to_json(),
            },
            "rows": [_row_json(c) for c in self.comparisons],
        }


def _row_json(c: Comparison) -> dict[str, Any]:
    m = c.measurement
    return {
        "id": m.id,
        "split": m.split,
        "metric": m.metric,
        "model": m.model_file,
        "chip": m.chip_file,
        "tp": m.tp,
        "batch": m.batch,
        "prompt_tokens": m.prompt_tokens,
        "context_tokens": m.context_tokens,
        "kind": m.kind,
        "serving": serving_settings(m.serving),
        "source": m.source,
        "measured_s": m.measured_s,
        "accelsim_s": c.accelsim_s,
        "error": c.error,
        "reference": m.reference,
        "notes": m.notes,
    }


# ------------------------------------------------------------------------ compare


def serving_settings(serving: ContinuousBatching) -> dict[str, Any]:
    """The settings that differ from the defaults (empty for a default stack)."""
    return serving.model_dump(exclude_defaults=True)


def accelsim_s(m: Measurement) -> float:
    """accelsim's figure for one measurement, in seconds (see the module docstring)."""
    if m.metric == "batch_s":
        assert isinstance(m.model, RankingModel)
        return RankingCostModel(m.model, m.chip).steady_batch_s(m.batch)
    assert isinstance(m.model, LLMModel)
    cost = LLMCostModel(m.model, m.chip, m.tp, m.serving)
    if m.metric == "ttft_s":
        assert m.prompt_tokens is not None
        return cost.prefill(m.prompt_tokens).time_s
    assert m.context_tokens is not None
    return cost.decode_step(m.batch, m.context_tokens).time_s


def summarize(comparisons: tuple[Comparison, ...] | list[Comparison]) -> Summary:
    """Median signed error, median and largest absolute error (NaN for no rows)."""
    if not comparisons:
        return Summary(0, math.nan, math.nan, math.nan, "")
    worst = max(comparisons, key=lambda c: abs(c.error))
    return Summary(
        rows=len(comparisons),
        median_error=statistics.median(c.error for c in comparisons),
        median_abs_error=statistics.median(abs(c.error) for c in comparisons),
        worst_abs_error=abs(worst.error),
        worst_id=worst.measurement.id,
    )


def compare(measurements: tuple[Measurement, ...], source: str = "") -> FidelityTable:
    """accelsim's figure for every measurement, and the summaries."""
    comparisons = tuple(Comparison(m, accelsim_s(m)) for m in measurements)
    return FidelityTable(
        source=source,
        comparisons=comparisons,
        overall=summarize(comparisons),
        fit=summarize([c for c in comparisons if c.measurement.split == "fit"]),
        holdout=summarize([c for c in comparisons if c.measurement.split == "holdout"]),
    )


def fidelity_table(path: Path | None = None) -> FidelityTable:
    """Load a measurements file (the shipped one by default) and compare."""
    path = measurements_path() if path is None else path
    return compare(load_measurements(path), str(path))


# ------------------------------------------------------------------------ render


def seconds(value: float) -> str:
    """A time in milliseconds, four significant digits: '844.9 ms', '7 ms'."""
    return f"{value * 1e3:.4g} ms"


def percent(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{100 * value:+.1f}%"


SUMMARY_HEADER = ("rows", "count", "median |error|", "worst |error|", "worst row", "median error")


def summary_rows(table: FidelityTable) -> list[tuple[str, ...]]:
    """The summaries over all, fit and holdout rows, then the bounds, as table cells."""
    rows: list[tuple[str, ...]] = [
        (
            name,
            str(s.rows),
            f"{s.median_abs_error:.1%}",
            f"{s.worst_abs_error:.1%}",
            s.worst_id,
            percent(s.median_error),
        )
        for name, s in (("all", table.overall), ("fit", table.fit), ("holdout", table.holdout))
    ]
    rows.append(
        (
            "bound",
            "",
            f"{MAX_MEDIAN_ABS_ERROR:.0%}",
            f"{MAX_WORST_ABS_ERROR:.0%}",
            "",
            "",
        )
    )
    return rows


def markdown(table: FidelityTable, calibrated: Mapping[str, float] | None = None) -> str:
    """The comparisons as a Markdown table, then the summaries and the bounds. With
    ``calibrated`` (row id to error), a column gives each row's error after its chip
    is calibrated on the fit rows (see :mod:`accelsim.validation.calibrate`)."""
    after = "" if calibrated is None else " calibrated |"
    out = [
        "| id | set | figure | model | chips | measured | accelsim | error |" + after + " source |",
        "| --- | --- | --- | --- | --- | ---: | ---: | ---: |"
        + ("" if calibrated is None else " ---: |")
        + " --- |",
    ]
    for c in table.comparisons:
        m = c.measurement
        model = Path(m.model_file).stem
        cell = ""
        if calibrated is not None:
            cell = f" {percent(calibrated.get(m.id, math.nan))} |"
        out.append(
            f"| {m.id} | {m.split} | {m.figure} | {model} | {m.chips} | "
            f"{seconds(m.measured_s)} ({m.kind}) | {seconds(c.accelsim_s)} | "
            f"{percent(c.error)} |{cell} {m.source} |"
        )
    out += ["", _markdown_row(SUMMARY_HEADER), "| --- |" + " ---: |" * 5]
    out += [_markdown_row(cells) for cells in summary_rows(table)]
    out.append("")
    out.append(
        "The bounds apply to all rows and to the holdout rows. (M) measured by the source, "
        "(D) derived from a measured figure as the row's notes say."
    )
    return "\n".join(out) + "\n"


def _markdown_row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


# -------------------------------------------------------------------------- load


def load_measurements(path: Path) -> tuple[Measurement, ...]:
    """Read and check a measurements file: every problem (a bad value, a missing model,
    a model that does not fit its replica) is raised as a ConfigError naming file:line."""
    source = str(path)
    text = read_text(path)
    problems: list[Problem] = []
    rows = list(_records(text, source))
    if not rows:
        raise ConfigError.single(source, "no header row (expected: " + ",".join(COLUMNS) + ")")
    header_line, header = rows[0]
    names = [h.strip() for h in header]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise ConfigError.single(
            source, "column(s) given twice: " + ", ".join(doubled), header_line
        )
    missing = [c for c in COLUMNS if c not in names]
    unknown = [c for c in names if c not in COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing column(s) " + ", ".join(missing))
        if unknown:
            parts.append("unknown column(s) " + ", ".join(unknown))
        raise ConfigError.single(source, "; ".join(parts), line=header_line)
    files = _Files(path.parent)
    seen: dict[str, int] = {}
    out = []
    for line, fields in rows[1:]:
        if len(fields) != len(names):
            problems.append(
                Problem(source, line, "", f"{len(fields)} fields, expected {len(names)}")
            )
            continue
        row = _Row(source, line, dict(zip(names, (f.strip() for f in fields), strict=True)))
        measurement = row.measurement(files)
        problems += row.problems
        if measurement is None:
            continue
        if measurement.id in seen:
            first = seen[measurement.id]
            problems.append(
                Problem(source, line, "id", f"{measurement.id!r} is also on line {first}")
            )
            continue
        seen[measurement.id] = line
        out.append(measurement)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))  # a bad model file: reported once
    if not out:
        raise ConfigError.single(source, "no measurement rows")
    return tuple(out)


def _records(text: str, source: str) -> Iterator[tuple[int, list[str]]]:
    """(line, fields) of each CSV record, skipping blank lines and ``#`` comment lines."""
    lines = ["" if line.lstrip().startswith("#") else line for line in text.splitlines()]
    reader = csv.reader(lines)
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ConfigError.single(source, f"malformed CSV: {exc}", reader.line_num) from None
        if fields and any(f.strip() for f in fields):
            yield start, fields


class _Files:
    """Models and chips named by a measurements file (relative to its folder), each
    loaded once: a bad file is reported once per row that names it, never reread."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._chips: dict[Path, Chip | ConfigError] = {}
        self._models: dict[Path, LLMModel | RankingModel | ConfigError] = {}

    def chip(self, ref: str) -> Chip:
        """KeyError if there is no such file, ConfigError for a bad one."""
        return _cached(self._chips, resolve_path(ref, self.folder).resolve(), load_chip)

    def model(self, ref: str) -> LLMModel | RankingModel:
        return _cached(self._models, resolve_path(ref, self.folder).resolve(), load_model)


T = TypeVar("T")


def _cached(cache: dict[Path, T | ConfigError], path: Path, load: Callable[[str], T]) -> T:
    if path not in cache:
        try:
            cache[path] = load(str(path))
        except ConfigError as exc:
            cache[path] = exc
    loaded = cache[path]
    if isinstance(loaded, ConfigError):
        raise loaded
    return loaded


class _Row:
    """One data row being checked; problems collect instead of raising one at a time."""

    def __init__(self, source: str, line: int, values: dict[str, str]) -> None:
        self.source = source
        self.line = line
        self.values = values
        self.problems: list[Problem] = []

    def problem(self, field: str, message: str) -> None:
        self.problems.append(Problem(self.source, self.line, field, message))

    def choice(self, field: str, allowed: tuple[str, ...]) -> str:
        value = self.values[field]
        if value not in allowed:
            self.problem(field, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def text(self, field: str) -> str:
        value = self.values[field]
        if not value:
            self.problem(field, "must not be empty")
        return value

    def count(self, field: str, required: bool) -> int | None:
        """A whole number >= 1; empty is None (a problem when required)."""
        value = self.values[field]
        if not value:
            if required:
                self.problem(field, "must be given for this metric")
            return None
        try:
            number = int(value)
        except ValueError:
            self.problem(field, f"{value!r} is not a whole number")
            return None
        if not 1 <= number <= 10**9:
            self.problem(field, f"must be from 1 to 1e9 (got {number})")
            return None
        return number

    def loaded(self, field: str, load: Callable[[str], T]) -> T | None:
        """The file named in ``field``, or None (with the problems recorded)."""
        ref = self.text(field)
        if not ref:
            return None
        try:
            return load(ref)
        except KeyError as exc:
            self.problem(field, str(exc.args[0]))
        except ConfigError as exc:
            self.problems += exc.problems
        return None

    def measurement(self, files: _Files) -> Measurement | None:
        ident = self.text("id")
        split = self.choice("split", SPLITS)
        metric = self.choice("metric", METRICS)
        kind = self.choice("kind", KINDS)
        tp = self.count("tp", required=True)
        batch = self.count("batch", required=True)
        prompt = self.count("prompt_tokens", required=metric == "ttft_s")
        context = self.count("context_tokens", required=metric == "decode_step_s")
        measured = self.measured()
        serving = self.serving()
        source = self.text("source")
        model = self.loaded("model", files.model)
        chip = self.loaded("chip", files.chip)
        if metric == "ttft_s" and batch not in (None, 1):
            self.problem("batch", "a ttft_s row is one request alone: batch must be 1")
        if metric == "batch_s":
            for field in ("prompt_tokens", "context_tokens"):
                if self.values[field]:
                    self.problem(field, "must be empty for a batch_s row")
            if tp not in (None, 1):
                self.problem("tp", "a ranking batch runs on one chip: tp must be 1")
        if model is not None and metric in METRICS:
            llm = metric != "batch_s"
            if isinstance(model, LLMModel) != llm:
                self.problem(
                    "model", f"a {metric} row needs {'an LLM' if llm else 'a ranking'} model"
                )
            else:
                dtype = model.weight_dtype if isinstance(model, LLMModel) else model.dtype
                if self.values["dtype"] != dtype:
                    self.problem(
                        "dtype", f"{self.values['dtype']!r} differs from the model file's {dtype!r}"
                    )
        if model is None or chip is None or tp is None or batch is None or measured is None:
            return None
        if serving is None:
            return None
        if self.problems:
            return None
        m = Measurement(
            id=ident,
            split=split,
            metric=metric,
            model_file=self.values["model"],
            chip_file=self.values["chip"],
            model=model,
            chip=chip,
            tp=tp,
            serving=serving,
            batch=batch,
            prompt_tokens=prompt,
            context_tokens=context,
            measured_s=measured,
            kind=kind,
            source=source,
            reference=self.values["reference"],
            notes=self.values["notes"],
            line=self.line,
        )
        if isinstance(model, LLMModel):
            self.check_fits(m, model, chip)
        return None if self.problems else m

    def serving(self) -> ContinuousBatching | None:
        """The row's serving settings (``key=value;...``), or None with the problem recorded."""
        text = self.values.get("serving", "")
        settings: dict[str, Any] = {}
        for pair in filter(None, (p.strip() for p in text.split(";"))):
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                self.problem("serving", f"{pair!r} is not key=value")
                return None
            settings[key.strip()] = yaml.safe_load(value.strip())
        try:
            return ContinuousBatching.model_validate(settings)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            self.problem("serving", f"{where}: {first['msg']}")
            return None

    def measured(self) -> float | None:
        value = self.values["measured_s"]
        try:
            number = float(value)
        except ValueError:
            self.problem("measured_s", f"{value!r} is not a number")
            return None
        if not (math.isfinite(number) and number > 0):
            self.problem("measured_s", f"must be a positive number of seconds (got {value})")
            return None
        return number

    def check_fits(self, m: Measurement, model: LLMModel, chip: Chip) -> None:
        """The replica must hold the weights and the KV cache the step reads."""
        if m.tp > 1 and chip.chip_to_chip is None:
            self.problem("chip", f"chip {chip.name} has no chip_to_chip link for tp {m.tp}")
            return
        capacity = LLMCostModel(model, chip, m.tp, m.serving).capacity
        if m.tp < capacity.min_chips:
            self.problem(
                "tp", f"{model.name} needs at least {capacity.min_chips} chips of {chip.name}"
            )
            return
        per_sequence = m.prompt_tokens if m.metric == "ttft_s" else m.context_tokens
        tokens = m.batch * (per_sequence or 0)
        if tokens > capacity.kv_capacity_tokens:
            self.problem(
                "batch",
                f"{m.batch} sequences of {per_sequence} tokens ({tokens} KV tokens) do not fit "
                f"the replica's KV cache of {capacity.kv_capacity_tokens} tokens",
            )
