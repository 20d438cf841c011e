"""Checking whole configuration files, as ``accelsim validate --configs`` does.

A file is loaded as what it is (a chip, a model, a scenario or a study), with
everything it refers to (``extends:`` chains, chips and models named by a
scenario, a study's base scenario), and the outcome is a :class:`ConfigCheck`:
no errors, or one line per problem, each naming a file. A file's kind comes
from its top-level keys, from what it ``extends:``, or from its folder. Nothing
here raises on a bad file: even an unexpected exception becomes an error line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelsim.config import loader
from accelsim.config.fleet_plan import load_plan
from accelsim.config.loader import Kind, ResolvedScenario
from accelsim.config.study import load_study
from accelsim.config.yamlio import load_yaml
from accelsim.errors import AccelsimError, ConfigError, Problem

CONFIG_KINDS: tuple[Kind, ...] = ("chip", "model", "scenario", "study", "plan")

# Top-level keys that tell a file's kind when its folder does not.
_KIND_KEYS: dict[Kind, frozenset[str]] = {
    "scenario": frozenset({"workloads", "pools", "simulation", "router"}),
    "plan": frozenset({"services", "candidates"}),
    "chip": frozenset({"compute", "memory", "host_link", "power", "chip_to_chip", "economics"}),
    "model": frozenset(
        {"embedding_tables", "bottom_mlp", "top_mlp", "interaction", "dense_features", "layers"}
    ),
}
_KIND_FOLDERS: dict[str, Kind] = {
    "hardware": "chip",
    "models": "model",
    "scenarios": "scenario",
    "studies": "study",
    "plans": "plan",
}


@dataclass(frozen=True)
class ConfigCheck:
    """The outcome of loading one configuration file."""

    path: str  # as shown to the user
    kind: str  # chip, model, scenario, study, or "?" when it could not be told
    errors: tuple[str, ...]  # one line each, naming a file (empty when the file is fine)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "ok": self.ok, "errors": list(self.errors)}


def shipped_config_files() -> list[tuple[str, Kind, Path]]:
    """Every shipped YAML file as (display path, kind, path), chips first."""
    root = loader.data_root()
    out = []
    for kind in CONFIG_KINDS:
        for path in loader.catalog(kind).values():
            try:
                shown = str(path.relative_to(root))
            except ValueError:
                shown = str(path)
            out.append((shown, kind, path))
    return out


def check_config_file(
    path: str | Path,
    kind: str | None = None,
    shown: str | None = None,
    scenario_checks: Callable[[ResolvedScenario], list[Problem]] | None = None,
) -> ConfigCheck:
    """Load one file as ``kind`` (told from its folder and keys when None), with
    everything it refers to; a scenario also goes through ``scenario_checks`` (the checks
    a higher layer makes before a run). Problems become one-line errors; an unexpected
    exception is reported as an internal error rather than raised."""
    path = Path(path)
    shown = str(path) if shown is None else shown
    try:
        if not path.is_file():
            why = "file not found" if not path.exists() else "not a regular file"
            if path.is_dir():
                why = "is a directory, expected a YAML file"
            return ConfigCheck(shown, kind or "?", (f"{shown}: {why}",))
        if kind is None:
            kind = guess_kind(path)
        resolved = _load_config(path, kind)
        problems = scenario_checks(resolved) if resolved and scenario_checks else []
        if problems:
            raise ConfigError(problems)
    except AccelsimError as exc:
        return ConfigCheck(shown, kind or "?", _error_lines(exc))
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return ConfigCheck(shown, kind or "?", (f"{shown}: cannot read: {reason}",))
    except Exception as exc:
        return ConfigCheck(
            shown,
            kind or "?",
            (
                f"{shown}: internal error ({type(exc).__name__}: {_one_line(exc)}); "
                "this is a bug in accelsim, please report it",
            ),
        )
    return ConfigCheck(shown, kind, ())


def _error_lines(exc: Exception) -> tuple[str, ...]:
    """One line per problem, with any line break inside a problem (say, in a field name)
    escaped so that it cannot split the problem over two lines."""
    texts = [str(p) for p in exc.problems] if isinstance(exc, ConfigError) else [str(exc)]
    return tuple(_printable(text) for text in texts)


def _printable(text: str) -> str:
    return "".join(
        c if c.isprintable() or c == "\t" else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def guess_kind(path: Path, _seen: frozenset[Path] = frozenset()) -> Kind:
    """chip, model, scenario or study, from the file's top-level keys, what it
    ``extends:``, or its folder."""
    doc = load_yaml(path)
    data = doc.data if isinstance(doc.data, dict) else {}
    if data.get("kind") in ("ranking", "llm"):
        return "model"
    for kind, marks in _KIND_KEYS.items():
        if set(data) & marks:
            return kind
    folder = _KIND_FOLDERS.get(path.resolve().parent.name)
    if folder is not None:
        return folder
    parent = data.get("extends")
    if isinstance(parent, str) and parent:
        if parent.endswith((".yaml", ".yml")) or "/" in parent:
            target = (path.parent / parent).expanduser()
            if target.resolve() in _seen or not target.is_file():
                return "chip"  # loading it reports the cycle or the missing file
            return guess_kind(target, _seen | {path.resolve()})
        kinds = [k for k in CONFIG_KINDS if parent in loader.catalog(k)]
        if len(kinds) == 1:
            return kinds[0]
    raise ConfigError.single(
        str(path),
        "cannot tell whether this is a chip, model, scenario or study file "
        "(expected keys such as compute:, embedding_tables: or workloads:)",
        line=1,
    )


def _load_config(path: Path, kind: str) -> ResolvedScenario | None:
    """Load a file as ``kind``; a scenario comes back resolved."""
    ref = str(path)
    if kind == "chip":
        loader.load_chip(ref)
    elif kind == "model":
        loader.load_model(ref)
    elif kind == "scenario":
        return loader.load_scenario(ref)
    elif kind == "study":
        load_study(ref)
    elif kind == "plan":
        load_plan(ref)
    else:
        raise ValueError(f"unknown config kind {kind!r}")
    return None
