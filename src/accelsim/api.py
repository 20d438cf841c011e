"""The Python API: run a scenario, explain a batch, sweep a study, and read the answers as
pandas DataFrames. ``import accelsim`` exposes these names (see ``accelsim/__init__.py``).

Everything here is what the command line does, with data instead of printing:
:func:`run` returns the same result document ``accelsim run --json`` writes, plus every
request's record; :func:`explain` the document of ``accelsim explain --json``;
:func:`sweep` and :func:`load_study` the table ``accelsim export`` writes. Bad input raises
:class:`accelsim.errors.AccelsimError` (a :class:`~accelsim.errors.ConfigError` names the
file, line and field), with the message the command line prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelsim.commands.common import dump_json, write_atomic
from accelsim.errors import AccelsimError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Overrides = Mapping[str, Any] | Sequence[str]
"""Field overrides: ``{"pools.gpu.count": 4}``, or ``--set``-style ``["pools.gpu.count=4"]``."""

TABLE_SUFFIXES = (".csv", ".parquet")
PARQUET_HINT = 'Parquet needs pyarrow: pip install "accelsim[parquet]" (or write .csv)'


def _assignments(overrides: Overrides | None, seed: int | None) -> list[str]:
    from accelsim.study.plan import assignment

    if overrides is None:
        out = []
    elif isinstance(overrides, Mapping):
        out = [assignment(str(path), value) for path, value in overrides.items()]
    elif isinstance(overrides, str):
        raise TypeError("overrides: give a mapping or a list of 'path=value' strings")
    else:
        out = [str(item) for item in overrides]
    if seed is not None:
        out.append(f"simulation.seed={seed}")
    return out


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """The scalar leaves of a mapping by dotted key (lists kept whole)."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value
    return out


def _frame(entries: Mapping[str, Any], index: str) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame([_flat(entry) for entry in entries.values()], index=list(entries))
    frame.index.name = index
    return frame


def check_table_path(path: str | Path) -> Path:
    """A path :func:`write_table` can write: a ``.csv``, or a ``.parquet`` with pyarrow
    installed (checked before any work, so a long run does not end in this error)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        got = f"{suffix!r}" if suffix else "no suffix"
        raise AccelsimError(f"{path}: write a .csv or a .parquet file (got {got})")
    if suffix == ".parquet":
        import importlib.util

        if importlib.util.find_spec("pyarrow") is None:
            raise AccelsimError(f"{path}: {PARQUET_HINT}")
    return path


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a DataFrame as CSV or Parquet, chosen by the file's suffix; atomically."""
    path = check_table_path(path)
    if path.suffix.lower() == ".csv":
        write_atomic(path, frame.to_csv(index=False, lineterminator="\n"))
        return path
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except OSError as exc:
        raise AccelsimError(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def read_table(path: str | Path) -> pd.DataFrame:
    """Read back a table :func:`write_table` wrote."""
    import pandas as pd

    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


# ------------------------------------------------------------------------ run


@dataclass(frozen=True)
class Result:
    """One run: its result document and, when kept, every request's record."""

    document: dict[str, Any]
    _columns: dict[str, dict[str, np.ndarray]] | None = field(default=None, repr=False)

    @property
    def scenario(self) -> str:
        return str(self.document["scenario"])

    @property
    def warnings(self) -> list[str]:
        return list(self.document["warnings"])

    @property
    def workloads(self) -> pd.DataFrame:
        """One row per workload, indexed by name; nested fields as dotted columns
        (``latency_s.p99``, ``latency_s.ci95.p99.high``, ``sla.met``)."""
        return _frame(self.document["workloads"], "workload")

    @property
    def pools(self) -> pd.DataFrame:
        """One row per pool, indexed by name; nested fields as dotted columns
        (``kv_utilization.mean``, ``clock_residency.100%``)."""
        return _frame(self.document["pools"], "pool")

    @property
    def requests(self) -> pd.DataFrame:
        """One row per request the run recorded (warm-up and in flight included;
        ``in_window`` marks those the document counts); columns as
        :mod:`accelsim.metrics.requests` describes."""
        import pandas as pd

        if self._columns is None:
            raise AccelsimError("this result kept no requests: run(..., keep_requests=True)")
        frames = [pd.DataFrame(columns) for columns in self._columns.values()]
        if not frames:
            return pd.DataFrame()
        if len(frames) == 1:
            return frames[0]
        return pd.concat(frames, ignore_index=True, sort=False)

    def to_json(self, path: str | Path | None = None) -> str:
        """The result document as ``accelsim run --json`` writes it; also written to
        ``path`` when given."""
        text = dump_json(self.document)
        if path is not None:
            write_atomic(Path(path), text)
        return text

    def save_requests(self, path: str | Path) -> Path:
        """Write :attr:`requests` to a ``.csv`` or ``.parquet`` file."""
        return write_table(self.requests, path)


def run(
    scenario: str | Path | Mapping[str, Any] | None = None,
    overrides: Overrides | None = None,
    seed: int | None = None,
    *,
    keep_requests: bool = True,
    max_memory_bytes: float | None = None,
) -> Result:
    """Simulate a scenario and return its :class:`Result`.

    ``scenario`` is a shipped name (``"llm-chat-gpu"``), a YAML path, a mapping of
    scenario fields (``{"extends": "ranking-mtia-vs-gpu", "pools": {"gpu": {"count": 4}}}``)
    or ``None`` for the default scenario. ``overrides`` change fields by dotted path;
    ``seed`` replaces ``simulation.seed``. ``keep_requests=False`` keeps no per-request
    records (:attr:`Result.requests` then raises), for long runs."""
    from accelsim.runner import load_checked, run_keeping_requests, run_resolved

    resolved = load_checked(scenario, _assignments(overrides, seed), max_memory_bytes)
    if not keep_requests:
        return Result(run_resolved(resolved))
    document, columns = run_keeping_requests(resolved)
    return Result(document, columns)


# ------------------------------------------------------------------------ explain


@dataclass(frozen=True)
class Explanation:
    """Where one batch's time goes: the document of ``accelsim explain --json``."""

    document: dict[str, Any]

    @property
    def ops(self) -> pd.DataFrame:
        """One row per op (for an LLM, of its prefill and then its decode step, named in
        ``phase``): time, share, FLOPs, bytes, arithmetic intensity, what bounds it, and
        the memory time and bytes per tier as ``memory_time_s.TIER``, ``bytes_by_tier.TIER``."""
        import pandas as pd

        from accelsim.report.kinds import kind_named

        rows = []
        for step in kind_named(self.document["kind"]).explain_steps(self.document):
            for op in step.ops:
                rows.append({"phase": step.phase or None, **_flat(op)})
        return pd.DataFrame(rows)

    @property
    def lesson(self) -> list[str]:
        return list(self.document.get("lesson", []))

    def to_json(self, path: str | Path | None = None) -> str:
        text = dump_json(self.document)
        if path is not None:
            write_atomic(Path(path), text)
        return text


def explain(
    chip: str | Path,
    model: str | Path,
    batch: int = 256,
    *,
    context_tokens: int = 2048,
    prompt_tokens: int = 2048,
    chips_per_replica: int = 1,
    power_cap_w: float | None = None,
    pipeline: int = 1,
    expert: int = 1,
    micro_batches: int | None = None,
) -> Explanation:
    """The roofline breakdown of one ranking batch of ``batch`` items, or of an LLM prefill
    of ``prompt_tokens`` and a decode step of ``batch`` sequences at ``context_tokens``
    (on a replica of ``chips_per_replica`` tensor-parallel chips x ``pipeline`` stages fed
    ``micro_batches`` x ``expert`` expert-parallel groups); chip and model by shipped name
    or YAML path, as ``accelsim explain`` takes them."""
    from accelsim.config.loader import load_chip, load_model
    from accelsim.report.explain import explain as explain_doc

    cwd = Path.cwd()
    document = explain_doc(
        load_model(str(model), cwd),
        load_chip(str(chip), cwd),
        batch,
        context_tokens=context_tokens,
        prompt_tokens=prompt_tokens,
        chips_per_replica=chips_per_replica,
        power_cap_w=power_cap_w,
        pipeline=pipeline,
        expert=expert,
        micro_batches=micro_batches,
    )
    return Explanation(document)


# ------------------------------------------------------------------------ studies


def load_study(folder: str | Path) -> pd.DataFrame:
    """A sweep's result folder as a DataFrame: one row per run, the columns of
    ``accelsim export`` (``axis.PATH`` columns hold numbers for quantities: ``0.5 ms`` is
    0.0005)."""
    import pandas as pd

    from accelsim.study.store import read_store
    from accelsim.study.table import run_table

    columns, records = run_table(read_store(Path(folder)).ordered())
    return pd.DataFrame.from_records(records, columns=columns)


def sweep(
    study: str | Path,
    out: str | Path | None = None,
    *,
    workers: int | None = None,
    resume: bool = False,
) -> pd.DataFrame:
    """Run a study (shipped name or YAML path) into ``out`` (default
    ``results/STUDY-NAME``), as ``accelsim sweep`` does, and return :func:`load_study` of
    it. ``workers=1`` runs in this process; ``resume`` continues a sweep in ``out``."""
    from accelsim.config.study import load_study as load_study_file
    from accelsim.study.executors import run_sweep
    from accelsim.study.plan import make_plan

    plan = make_plan(load_study_file(study))
    folder = Path(out) if out is not None else Path("results") / plan.study.name
    run_sweep(plan, folder, workers=workers, resume=resume)
    return load_study(folder)


def replicate_summary(frame: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean, sample standard deviation and count over the replicate seeds of each point of
    the axes, per metric (the runs that succeeded): columns ``(METRIC, "mean" | "std" |
    "count")``, one row per point. ``metrics`` defaults to every numeric metric."""
    axes = [c for c in frame.columns if c.startswith("axis.")]
    ok = frame[frame["status"] == "ok"]
    skip = {"wall_s", "replicate", "seed", *axes}
    chosen = (
        list(metrics)
        if metrics is not None
        else [c for c in ok.select_dtypes("number").columns if c not in skip]
    )
    if not axes:  # a study without axes: its replicates are one point
        return ok.groupby(lambda _: "all runs")[chosen].agg(["mean", "std", "count"])
    return ok.groupby(axes, dropna=False, sort=False)[chosen].agg(["mean", "std", "count"])
