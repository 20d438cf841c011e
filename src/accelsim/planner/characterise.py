"""Characterise one replica of each (service, candidate chip, serving configuration) by
simulation: its largest SLA-compliant rate, and its power there and at half that rate.

Each entry is a one-replica scenario (the service's workload, Poisson at a rate the
search sets; one pool of ``chips_per_replica`` chips in the configuration) handed to
the capacity search of :mod:`accelsim.study.capacity` (ranking judged by its latency at
the SLA's percentile, LLM by TTFT and TPOT), against the SLA's targets tightened by
``characterise.sla_margin`` so that the plan keeps a margin for run-to-run noise (the
verification judges the SLA itself). Two more runs, at the answer and at half
of it, give the replica's power line ``floor + slope x load`` the optimiser uses; idle
power is the chip's idle power times the chips of a replica.

Results are cached by a content hash of everything that affects them: the workload (its
model's fields, not its name or path), the chip's fields after ``extends:``, the serving
configuration, the search settings and the accelsim version. The cache lives in
``$XDG_CACHE_HOME/accelsim`` (else ``~/.cache/accelsim``) unless a folder is given; each
entry is written atomically as it finishes, so an interrupted characterisation resumes
with the entries it has, and re-planning with a characterised plan runs no simulation.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelsim import __version__
from accelsim.config.fleet_plan import ResolvedPlan
from accelsim.errors import AccelsimError, ConfigError, Problem

CACHE_FORMAT = 1
DEFAULT_START_SHARE = 1e-4  # a search starts at the peak rate x this, unless a service says


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/accelsim``, else ``~/.cache/accelsim``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "accelsim"


@dataclass(frozen=True)
class Entry:
    """One replica to characterise."""

    service: str
    candidate: str
    config: int
    chips_per_replica: int
    idle_w: float  # one replica's idle power
    scenario: dict[str, Any]  # the one-replica scenario (chip and model as absolute paths)
    key: str  # content hash of what the result depends on
    settings: dict[str, Any]  # tolerance, confirm

    @property
    def label(self) -> str:
        return f"{self.service} on {self.candidate} #{self.config}"


def _digest(content: Any) -> str:
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def entries(resolved: ResolvedPlan) -> list[Entry]:
    """Every (service, candidate, configuration) the plan asks about, in plan order."""
    plan = resolved.plan
    c = plan.characterise
    out = []
    for cand_name, cand in plan.candidates.items():
        chip = resolved.chips[cand_name]
        for service_name, configs in cand.serves.items():
            service = plan.services[service_name]
            model = resolved.models[service_name]
            start = service.probe_rate_per_s or service.peak_rate_per_s * DEFAULT_START_SHARE
            workload = {**service.workload(), "traffic": {"kind": "poisson", "rate_per_s": start}}
            workload["sla"] = {
                k: v * c.sla_margin if k.endswith("_s") else v for k, v in workload["sla"].items()
            }
            for i, config in enumerate(configs):
                pool = {
                    **config.pool_fields(),
                    "count": config.chips_per_replica,
                    "serves": [service_name],
                }
                settings = {"tolerance": c.tolerance, "confirm": c.confirm}
                simulation = {"duration_s": c.duration_s, "warmup_s": c.warmup_s, "seed": c.seed}
                key = _digest(
                    {
                        "format": CACHE_FORMAT,
                        "accelsim": __version__,
                        "workload": {**workload, "model": model.model_dump(mode="json")},
                        "pool": pool,
                        "chip": chip.model_dump(mode="json", exclude={"name", "description"}),
                        "simulation": simulation,
                        "search": settings,
                    }
                )
                scenario = {
                    "name": f"plan-{service_name}-{cand_name}-{i}",
                    "simulation": simulation,
                    "workloads": {
                        service_name: {
                            **workload,
                            "model": str(resolved.model_files[service_name].resolve()),
                        }
                    },
                    "pools": {
                        "replica": {**pool, "chip": str(resolved.chip_files[cand_name].resolve())}
                    },
                }
                out.append(
                    Entry(
                        service_name,
                        cand_name,
                        i,
                        config.chips_per_replica,
                        chip.power.idle_w * config.chips_per_replica,
                        scenario,
                        key,
                        settings,
                    )
                )
    return out


# ------------------------------------------------------------------ the cache


class Cache:
    """Characterised entries as one JSON file each, by content hash."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.expanduser()
        self.entries = self.folder / "plan-replicas"
        self.scenarios = self.folder / "plan-scenarios"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.entries / f"{key}.json"
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # missing, or unreadable: characterise again
        return found if isinstance(found, dict) and found.get("key") == key else None

    def put(self, result: dict[str, Any]) -> None:
        _write_atomic(self.entries / f"{result['key']}.json", json.dumps(result, indent=1))

    def scenario_file(self, entry: Entry) -> Path:
        """The entry's scenario, written where worker processes can read it."""
        import yaml

        path = self.scenarios / f"{entry.key}.yaml"
        text = "# written by accelsim plan: one replica to characterise\n" + yaml.safe_dump(
            entry.scenario, sort_keys=False
        )
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            _write_atomic(path, text)
        return path


def _write_atomic(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise AccelsimError(f"{path}: cannot write the cache: {exc.strerror or exc}") from None


# ------------------------------------------------------------------ one entry


def check(resolved: ResolvedPlan, entry: Entry, scenario_file: Path) -> list[Problem]:
    """What a run of the entry's scenario would refuse (a model that does not fit the
    replica, say), located at the plan's serving configuration."""
    from accelsim.runner import load_checked

    try:
        load_checked(str(scenario_file))
    except ConfigError as exc:
        at = ("candidates", entry.candidate, "serves", entry.service, entry.config)
        return [resolved.problem(at, p.message) for p in exc.problems]
    return []


def characterise_task(task: dict[str, Any]) -> dict[str, Any]:
    """Picklable worker: search one replica's capacity and measure its power."""
    from accelsim.runner import load_checked
    from accelsim.study.capacity import ask, find_capacity, run_probe
    from accelsim.study.plan import assignment

    start = time.perf_counter()
    scenario = task["scenario_file"]
    resolved = load_checked(scenario)
    question = ask(resolved, [], tolerance=task["tolerance"], confirm=task["confirm"], seeds=1)
    answer = find_capacity(question)
    result: dict[str, Any] = {
        **task["identity"],
        "capacity_per_s": answer.result.best or 0.0,
        "fails_at_per_s": answer.result.fails_at,
        "note": answer.result.note,
        "probes": len(answer.result.probes),
        "confirmed_duration_s": answer.confirmed_duration_s,
    }
    if answer.result.best:
        powers = []
        for share in (1.0, 0.5):
            rate = answer.result.best * share
            overrides = [
                assignment(question.rate_path, rate),
                f"simulation.duration_s={question.probe_duration_s(rate)!r}",
            ]
            doc = run_probe(scenario, overrides, question.workload).document
            powers.append(float(doc["pools"]["replica"]["avg_power_w"]))
        full, half = powers
        slope = (full - half) / (answer.result.best / 2)
        result.update(
            power_at_capacity_w=full,
            power_at_half_w=half,
            slope_w_per_rps=slope,
            floor_w=full - slope * answer.result.best,
        )
    result["wall_s"] = time.perf_counter() - start
    return result


def characterise(
    resolved: ResolvedPlan,
    cache: Cache,
    executor_factory: Callable[[int], Any],
    *,
    on_start: Callable[[int, int], None] | None = None,
    on_done: Callable[[Entry, dict[str, Any]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every entry's result by key: from the cache, or characterised now (in parallel on
    the executor ``executor_factory(n_tasks)`` opens) and cached as each finishes."""
    todo: list[Entry] = []
    results: dict[str, dict[str, Any]] = {}
    files: dict[str, Path] = {}
    problems: list[Problem] = []
    all_entries = entries(resolved)
    for entry in all_entries:
        found = cache.get(entry.key)
        if found is not None:
            results[entry.key] = found
            continue
        files[entry.key] = cache.scenario_file(entry)
        problems += check(resolved, entry, files[entry.key])
        todo.append(entry)
    if problems:
        raise ConfigError(problems)
    if on_start is not None:
        on_start(len(all_entries), len(todo))
    if todo:
        with executor_factory(len(todo)) as executor:
            for entry, result in _run(todo, files, executor):
                cache.put(result)
                results[entry.key] = result
                if on_done is not None:
                    on_done(entry, result)
    return results


def _run(
    todo: Sequence[Entry], files: dict[str, Path], executor: Executor
) -> Iterator[tuple[Entry, dict[str, Any]]]:
    """Submit every entry; yield each with its result as it finishes."""
    futures = {
        executor.submit(
            characterise_task,
            {
                "scenario_file": str(files[e.key]),
                "identity": {
                    "key": e.key,
                    "service": e.service,
                    "candidate": e.candidate,
                    "config": e.config,
                    "chips_per_replica": e.chips_per_replica,
                    "idle_w": e.idle_w,
                    "accelsim_version": __version__,
                },
                **e.settings,
            },
        ): e
        for e in todo
    }
    try:
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        for future in futures:
            future.cancel()
