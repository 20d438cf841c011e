"""Find, read, inherit, override and validate configuration files.

Chips, models and scenarios are referred to by *name* (a file shipped in
``hardware/``, ``workloads/models/`` or ``workloads/scenarios/``) or by *path*
(anything ending in ``.yaml``/``.yml`` or containing a slash), a path being
relative to the file that names it. A file may start from another with
``extends: NAME-OR-PATH`` and override any field. Every problem becomes a
:class:`~accelsim.errors.ConfigError` whose lines name file, line and field.
"""

from __future__ import annotations

import codecs
import copy
import csv
import math
import os
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, BinaryIO, Literal, TypeVar, Union, get_args, get_origin

import numpy as np
from pydantic import BaseModel, TypeAdapter, ValidationError

from accelsim.config.schema import (
    AnyModel,
    Chip,
    LLMModel,
    LLMWorkload,
    RankingModel,
    Scenario,
    confidential_chip,
    scenario_reference_problems,
)
from accelsim.config.yamlio import (
    Document,
    Loc,
    Path_,
    apply_override,
    dotted,
    load_yaml,
    merge,
    split_assignment,
)
from accelsim.errors import ConfigError, Problem, did_you_mean

Kind = Literal["chip", "model", "scenario", "study", "plan"]
_KIND_DIRS: dict[str, tuple[str, ...]] = {
    "chip": ("hardware",),
    "model": ("workloads", "models"),
    "scenario": ("workloads", "scenarios"),
    "study": ("workloads", "studies"),
    "plan": ("workloads", "plans"),
}
DEFAULT_SCENARIO = "ranking-mtia-vs-gpu"

M = TypeVar("M", bound=BaseModel)


def data_root() -> Path:
    """Folder holding ``hardware/`` and ``workloads/``.

    ``ACCELSIM_DATA`` wins; then data packed inside an installed wheel; then
    the source checkout this package was installed from in editable mode.
    """
    env = os.environ.get("ACCELSIM_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    packed = here / "_data"
    if (packed / "hardware").is_dir():
        return packed
    return here.parent.parent


def catalog(kind: Kind) -> dict[str, Path]:
    """Shipped files of one kind, by name (the file name without ``.yaml``)."""
    folder = data_root().joinpath(*_KIND_DIRS[kind])
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def _is_path(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml")) or "/" in ref or os.sep in ref


def resolve_path(ref: str, relative_to: Path | None) -> Path:
    """An existing regular file named by ``ref``, relative to a folder unless absolute;
    raises KeyError with a one-line reason (never OSError or friends)."""
    try:
        path = Path(ref).expanduser()
        if not path.is_absolute() and relative_to is not None:
            path = relative_to / path
        exists, is_file = path.exists(), path.is_file()
    except (OSError, RuntimeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise KeyError(f"cannot use path {ref[:80]!r}: {reason}") from None
    if not exists:
        raise KeyError(f"file {str(path)!r} not found")
    if not is_file:
        raise KeyError(f"{str(path)!r} is not a file")
    return path


def resolve_ref(ref: str, kind: Kind, relative_to: Path | None) -> Path:
    """The file a name or path refers to; raises KeyError with a helpful message."""
    if _is_path(ref):
        return resolve_path(ref, relative_to)
    known = catalog(kind)
    if ref in known:
        return known[ref]
    raise KeyError(f"no {kind} named {ref!r}{did_you_mean(ref, known)}")


def load_document(
    path: Path, kind: Kind, _chain: tuple[Path, ...] = (), *, read: list[Path] | None = None
) -> Document:
    """Read a YAML mapping, following ``extends:`` (cycles are errors). Every file read is
    appended to ``read``, if given."""
    resolved = path.resolve()
    if resolved in _chain:
        cycle = " -> ".join(p.name for p in (*_chain, resolved))
        raise ConfigError.single(str(path), f"circular extends: {cycle}", field="extends")
    if read is not None:
        read.append(path)
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError.single(str(path), "expected a mapping of fields at the top", line=1)
    if kind in ("chip", "model", "scenario"):
        doc.data.setdefault("name", path.stem)
    parent_ref = doc.data.pop("extends", None)
    if parent_ref is None:
        return doc
    loc = doc.loc(("extends",))
    if not isinstance(parent_ref, str):
        raise ConfigError.single(loc.source, "expected a name or a path", loc.line, "extends")
    try:
        parent_path = resolve_ref(parent_ref, kind, path.parent)
    except KeyError as exc:
        raise ConfigError.single(loc.source, str(exc.args[0]), loc.line, "extends") from None
    if parent_path.resolve() in (*_chain, resolved):
        cycle = " -> ".join(p.name for p in (*_chain, resolved, parent_path.resolve()))
        raise ConfigError.single(loc.source, f"circular extends: {cycle}", loc.line, "extends")
    parent = load_document(parent_path, kind, (*_chain, resolved), read=read)
    # A child without its own name keeps its file name, never the parent's.
    child_has_name = "name" in doc.data
    merged = merge(parent, doc)
    if not child_has_name:
        merged.data["name"] = path.stem
    return merged


def _clean_message(err: dict[str, Any]) -> str:
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if err["type"] == "extra_forbidden":
        return "unknown field (check its spelling, or see `accelsim schema`)"
    value = err.get("input")
    if (
        err["type"] not in ("missing",)
        and isinstance(value, str | int | float)
        and len(str(value)) < 60
    ) and repr(value) not in msg:
        msg += f" (got {value!r})"
    return msg


def _data_path(data: Any, loc: tuple[Any, ...], error_type: str) -> Path_:
    """Map pydantic's error location onto the path in the YAML data (skipping union tags)."""
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            node = node[part]
            path.append(part)
        elif i == len(loc) - 1 and error_type == "missing" and isinstance(part, str):
            path.append(part)
    return tuple(path)


_ANY_MODEL: TypeAdapter[RankingModel | LLMModel] = TypeAdapter(AnyModel)


def validate(doc: Document, model: type[M]) -> M:
    """Validate a document against a schema; problems point at file:line."""
    try:
        if model is AnyModel:  # type: ignore[comparison-overlap]
            return _ANY_MODEL.validate_python(doc.data)  # type: ignore[return-value]
        return model.model_validate(doc.data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = _data_path(doc.data, tuple(err["loc"]), err["type"])
            loc = doc.loc(path)
            message = (
                _unknown_field_message(model, doc.data, path)
                if err["type"] == "extra_forbidden" and path
                else _clean_message(dict(err))
            )
            problems.append(Problem(loc.source, loc.line, dotted(path), message))
        raise ConfigError(problems) from None


def _members(annotation: Any) -> list[Any]:
    """The types an annotation admits: ``Annotated`` metadata dropped, unions flattened."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, UnionType):
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _kind_of_node(models: list[type[BaseModel]], node: Any) -> list[type[BaseModel]]:
    """Of the models a union admits, the one(s) a mapping's ``kind`` selects (no ``kind``:
    the first whose ``kind`` has a default, as the loader reads it)."""
    tagged = [m for m in models if "kind" in m.model_fields]
    if len(tagged) < 2:
        return models
    kind = node.get("kind") if isinstance(node, dict) else None
    if kind is None:
        defaults = [m for m in tagged if not m.model_fields["kind"].is_required()]
        return defaults[:1] or models
    chosen = [m for m in tagged if kind in get_args(m.model_fields["kind"].annotation)]
    return chosen or models


def _fields(types: list[Any], node: Any) -> dict[str, Any] | None:
    """The fields a mapping may hold where the schema admits ``types`` (for a union, the
    member its ``kind`` selects), or None where the schema admits no model there."""
    models = [t for t in types if isinstance(t, type) and issubclass(t, BaseModel)]
    if not models:
        return None
    models = _kind_of_node(models, node)
    return {f: m.model_fields[f] for m in reversed(models) for f in m.model_fields}


class _Unknown(LookupError):
    """A path segment the schema or the document does not have; ``entry`` when it names
    an entry of a mapping such as ``pools`` (so the known names are the document's)."""

    def __init__(self, known: list[str], *, entry: bool) -> None:
        super().__init__(known)
        self.known, self.entry = known, entry


def _walk(model: Any, data: Any, parts: list[str] | Path_, *, last_may_be_new: bool) -> Any:
    """Follow a path into ``data`` alongside the schema of ``model``; returns the types the
    schema admits at its end (an empty list where it says nothing: a free-form value).
    Raises _Unknown at the first segment that is not a field, or an entry of a mapping
    that the document lacks (unless it is the last and ``last_may_be_new``)."""
    types: list[Any] = _members(model)
    node = data
    for i, part in enumerate(parts):
        key = str(part)
        fields = _fields(types, node)
        mappings = [t for t in types if get_origin(t) is dict]
        sequences = [t for t in types if get_origin(t) is list]
        if fields is not None:
            if key not in fields:
                raise _Unknown(list(fields), entry=False)
            types = _members(fields[key].annotation)
        elif mappings:
            entries = node if isinstance(node, dict) else {}
            if key not in entries and not (last_may_be_new and i == len(parts) - 1):
                raise _Unknown(list(entries), entry=True)
            types = _members(get_args(mappings[0])[1])
        elif sequences and key.isdigit():
            types = _members(get_args(sequences[0])[0])
            index = int(key)
            node = node[index] if isinstance(node, list) and index < len(node) else None
            continue
        else:
            return []
        node = node.get(key) if isinstance(node, dict) else None
    return types


def check_override_path(data: Any, assignment: str, model: type[BaseModel]) -> None:
    """Fail when a ``--set`` path names a field the schema does not have, or walks through
    an entry (a pool, a workload) the document does not have: the error is blamed on the
    override and offers the close matches and the known keys at that level. A new entry
    may still be added whole (``pools.extra={chip: ..., count: 2, serves: [...]}``)."""
    parts, _ = split_assignment(assignment)
    for end in range(1, len(parts) + 1):
        try:
            _walk(model, data, parts[:end], last_may_be_new=end == len(parts))
        except _Unknown as exc:
            part = parts[end - 1]
            if exc.entry:
                parent = parts[end - 2] if end > 1 else "entries"
                what = f"no {parent[:-1] if parent.endswith('s') else parent} named {part!r}"
            else:
                what = "unknown field"
            raise ConfigError.single(
                f"--set {assignment}",
                what + did_you_mean(part, exc.known),
                field=dotted(tuple(parts[:end])),
            ) from None


def _unknown_field_message(model: Any, data: Any, path: Path_) -> str:
    """The message for a field the schema forbids: the close matches among the fields
    known at its level, and those fields."""
    try:
        _walk(model, data, path, last_may_be_new=False)
    except _Unknown as exc:
        if not exc.entry:
            return "unknown field" + did_you_mean(str(path[-1]), exc.known)
    return "unknown field (check its spelling, or see `accelsim schema`)"


def load_chip(ref: str, relative_to: Path | None = None) -> Chip:
    return _load(ref, "chip", Chip, relative_to)


def load_model(ref: str, relative_to: Path | None = None) -> RankingModel | LLMModel:
    """A ranking or LLM model, by its ``kind`` (files without one are ranking)."""
    return _load(ref, "model", AnyModel, relative_to)  # type: ignore[arg-type]


def _load(ref: str, kind: Kind, model: type[M], relative_to: Path | None) -> M:
    try:
        path = resolve_ref(ref, kind, relative_to)
    except KeyError as exc:
        raise ConfigError.single(ref, str(exc.args[0])) from None
    return validate(load_document(path, kind), model)


def files_read(ref: str, kind: Kind, relative_to: Path | None = None) -> tuple[Path, ...]:
    """The file a chip or model reference names and every file it ``extends:``: what
    loading it reads (call it after a successful load)."""
    try:
        path = resolve_ref(ref, kind, relative_to)
    except KeyError as exc:
        raise ConfigError.single(ref, str(exc.args[0])) from None
    read: list[Path] = []
    load_document(path, kind, read=read)
    return tuple(read)


TRACE_SIZE_COLUMNS = ("items", "prompt_tokens", "output_tokens")


@dataclass(frozen=True)
class Trace:
    """Arrival times (seconds from the trace's first row) and optional sizes per arrival:
    ``items`` for ranking queries, ``prompt_tokens`` and ``output_tokens`` for LLM requests;
    as loaded for a scenario, only the rows its run replays."""

    source: str
    times_s: np.ndarray
    sizes: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def items(self) -> np.ndarray | None:
        return self.sizes.get("items")

    @property
    def nbytes(self) -> int:
        """Memory its arrays hold."""
        return int(self.times_s.nbytes + sum(column.nbytes for column in self.sizes.values()))


@dataclass(frozen=True)
class ResolvedScenario:
    """A validated scenario with every reference it makes loaded and checked."""

    scenario: Scenario
    source: str
    chips: dict[str, Chip]  # by pool name
    models: dict[str, RankingModel | LLMModel]  # by workload name
    traces: dict[str, Trace]  # by workload name, for trace traffic
    locations: dict[Path_, Loc] = field(default_factory=dict)
    sources: tuple[Path, ...] = ()  # every file read: the scenario, its extends, refs, traces
    drafts: dict[str, LLMModel] = field(default_factory=dict)  # speculative draft models

    def problem(self, path: Path_, message: str) -> Problem:
        """A problem located at a scenario field (for checks made after loading)."""
        loc = Document(None, self.locations, self.source).loc(path)
        return Problem(loc.source, loc.line, dotted(path), message)


DICT_SOURCE = "<dict>"
"""Where errors in a scenario given as a Python mapping point (it has no file or lines)."""


def _mapping_document(data: Mapping[str, Any], read: list[Path]) -> Document:
    """A scenario given as data: its own fields over what its ``extends:`` names (a shipped
    name, or a path relative to the working directory), like a file's. Without a name of
    its own it keeps the name of what it extends, or is called ``scenario``."""
    here = Loc(DICT_SOURCE, None)
    locs: dict[Path_, Loc] = {}

    def walk(node: Any, at: Path_) -> None:  # every field the mapping sets is blamed on it
        locs[at] = here
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, (*at, key))

    walk(data, ())
    doc = Document(copy.deepcopy(dict(data)), locs, DICT_SOURCE)
    parent_ref = doc.data.pop("extends", None)
    if parent_ref is None:
        doc.data.setdefault("name", "scenario")
        return doc
    if not isinstance(parent_ref, str):
        raise ConfigError.single(DICT_SOURCE, "expected a name or a path", field="extends")
    try:
        parent_path = resolve_ref(parent_ref, "scenario", Path.cwd())
    except KeyError as exc:
        raise ConfigError.single(DICT_SOURCE, str(exc.args[0]), field="extends") from None
    return merge(load_document(parent_path, "scenario", read=read), doc)


def load_scenario(
    ref: str | Path | Mapping[str, Any] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> ResolvedScenario:
    """Load a scenario by name, path or as a mapping of its fields (which may name a
    scenario to start from with ``extends:``), apply ``--set`` overrides, resolve its
    references."""
    read: list[Path] = []
    if isinstance(ref, Mapping):
        doc = _mapping_document(ref, read)
        path: Path | str = DICT_SOURCE
    else:
        ref = DEFAULT_SCENARIO if ref is None else str(ref)
        try:
            path = resolve_ref(ref, "scenario", Path.cwd())
        except KeyError as exc:
            raise ConfigError.single(ref, str(exc.args[0])) from None
        doc = load_document(path, "scenario", read=read)
    for assignment in overrides:
        check_override_path(doc.data, assignment, Scenario)
        doc = apply_override(doc, assignment)
    scenario = validate(doc, Scenario)

    problems = [
        Problem(doc.loc(p).source, doc.loc(p).line, dotted(p), msg)
        for p, msg in scenario_reference_problems(scenario)
    ]
    chips: dict[str, Chip] = {}
    for pool_name, pool in scenario.pools.items():
        chip = _resolve(doc, ("pools", pool_name, "chip"), pool.chip, "chip", Chip, problems, read)
        if chip is not None and pool.confidential:
            chip = confidential_chip(chip)
        chips[pool_name] = chip
    models: dict[str, RankingModel | LLMModel] = {}
    traces: dict[str, Trace] = {}
    drafts: dict[str, LLMModel] = {}
    for name, workload in scenario.workloads.items():
        at: Path_ = ("workloads", name, "model")
        model: RankingModel | LLMModel | None = _resolve(
            doc, at, workload.model, "model", AnyModel, problems, read
        )
        if model is not None:
            models[name] = model
        if model is not None and model.kind != workload.kind:
            loc = doc.loc(("workloads", name, "model"))
            problems.append(
                Problem(
                    loc.source,
                    loc.line,
                    f"workloads.{name}.model",
                    f"{model.name} is a {model.kind} model but the workload is {workload.kind}",
                )
            )
        speculative = workload.speculative if isinstance(workload, LLMWorkload) else None
        if speculative is not None and speculative.draft_model is not None:
            draft_at: Path_ = ("workloads", name, "speculative", "draft_model")
            ref = speculative.draft_model
            draft = _resolve(doc, draft_at, ref, "model", AnyModel, problems, read)
            if isinstance(draft, LLMModel):
                drafts[name] = draft
            elif draft is not None:
                loc = doc.loc(draft_at)
                problems.append(
                    Problem(
                        loc.source,
                        loc.line,
                        dotted(draft_at),
                        f"{draft.name} is a {draft.kind} model; a draft model must be an LLM",
                    )
                )
        if workload.traffic.kind == "trace":
            trace_field: Path_ = ("workloads", name, "traffic", "path")
            loc = doc.loc(trace_field)
            base = (
                Path(loc.source).parent
                if loc.source and not loc.source.startswith("--set")
                else Path.cwd()
            )
            try:
                trace_path = resolve_path(workload.traffic.path, base)
            except KeyError as exc:
                problems.append(
                    Problem(loc.source, loc.line, dotted(trace_field), str(exc.args[0]))
                )
                continue
            read.append(trace_path)
            try:
                horizon_s = scenario.simulation.warmup_s + scenario.simulation.duration_s
                traces[name] = load_trace(trace_path, horizon_s, workload.traffic.time_scale)
            except ConfigError as exc:
                problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return ResolvedScenario(
        scenario, str(path), chips, models, traces, dict(doc.locs), tuple(read), drafts
    )


def _resolve(
    doc: Document,
    at: Path_,
    ref: str,
    kind: Kind,
    model: Any,
    problems: list[Problem],
    read: list[Path],
) -> Any:
    loc = doc.loc(at)
    base = Path(loc.source).parent if not loc.source.startswith("--set") else Path.cwd()
    try:
        path = resolve_ref(ref, kind, base)
        return validate(load_document(path, kind, read=read), model)
    except KeyError as exc:
        problems.append(Problem(loc.source, loc.line, dotted(at), str(exc.args[0])))
    except ConfigError as exc:
        problems.extend(exc.problems)
    return None  # only reached when problems is non-empty


TRACE_MAX_SIZE = 2**53  # exact in a float, and far beyond any real query or prompt
TRACE_MAX_LINE_BYTES = 2**20  # one row; a trace has no limit on its number of rows


def load_trace(path: Path, until_s: float = math.inf, time_scale: float = 1.0) -> Trace:
    """Read a trace CSV: a header with ``timestamp_s`` and optional size columns
    (``items``, ``prompt_tokens``, ``output_tokens``); other columns are ignored.

    Times are shifted so that the first row arrives at 0. The file is read a line at a
    time; every row is checked, and the rows a run of ``until_s`` seconds replays (those
    whose shifted time x ``time_scale`` is before it) are kept in compact arrays, 8 bytes
    per row and column, so memory follows the rows replayed, not the file. UTF-8 with or
    without a byte-order mark, and LF or CRLF line ends, are accepted."""
    source = str(path)
    try:
        if not path.exists():
            raise ConfigError.single(source, "cannot read trace: file not found")
        if not path.is_file():
            raise ConfigError.single(source, "cannot read trace: is not a regular file")
        with path.open("rb") as handle:
            return _parse_trace(handle, source, until_s, time_scale)
    except ConfigError:
        raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError.single(source, f"cannot read trace: {reason}") from None


def _trace_lines(handle: BinaryIO, source: str) -> Iterator[str]:
    """The lines of a trace as text, one at a time, without a leading byte-order mark."""
    number = 0
    while raw := handle.readline(TRACE_MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > TRACE_MAX_LINE_BYTES:
            raise ConfigError.single(
                source, f"a line longer than {TRACE_MAX_LINE_BYTES} bytes", line=number
            )
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError.single(
                source, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})", line=number
            ) from None


def _parse_trace(handle: BinaryIO, source: str, until_s: float, time_scale: float) -> Trace:
    reader = csv.reader(_trace_lines(handle, source))
    try:
        header = next(reader, None)
        if header is None or "timestamp_s" not in [h.strip() for h in header]:
            raise ConfigError.single(
                source, "expected a header row with a 'timestamp_s' column", line=1
            )
        columns = [h.strip() for h in header]
        t_col = columns.index("timestamp_s")
        size_cols = {name: columns.index(name) for name in TRACE_SIZE_COLUMNS if name in columns}
        times = array("d")
        sizes = {name: array("q") for name in size_cols}
        previous = first = -math.inf
        keep = True  # rows are kept up to the first one past the run, then only checked
        for row in reader:
            try:
                t = float(row[t_col])
            except (ValueError, IndexError):
                if not any(c.strip() for c in row):
                    continue  # a blank row
                raise ConfigError.single(
                    source, "not a number", line=reader.line_num, field="timestamp_s"
                ) from None
            if not math.isfinite(t) or t < previous:
                raise ConfigError.single(
                    source,
                    "timestamps must be finite and non-decreasing",
                    line=reader.line_num,
                    field="timestamp_s",
                )
            if first == -math.inf:
                first = t
            previous = t
            keep = keep and (t - first) * time_scale < until_s
            if keep:
                times.append(t)
            for name, col in size_cols.items():
                try:
                    n = int(row[col])
                except (ValueError, IndexError):
                    raise ConfigError.single(
                        source, "not an integer", line=reader.line_num, field=name
                    ) from None
                if not 1 <= n <= TRACE_MAX_SIZE:
                    raise ConfigError.single(
                        source,
                        f"must be from 1 to {TRACE_MAX_SIZE}",
                        line=reader.line_num,
                        field=name,
                    )
                if keep:
                    sizes[name].append(n)
    except csv.Error as exc:
        raise ConfigError.single(source, f"malformed CSV: {exc}", line=reader.line_num) from None
    if not times:
        raise ConfigError.single(source, "trace has no rows")
    t_arr = np.frombuffer(times, dtype=np.float64)
    return Trace(
        source,
        t_arr - t_arr[0],
        {name: np.frombuffer(values, dtype=np.int64) for name, values in sizes.items()},
    )
