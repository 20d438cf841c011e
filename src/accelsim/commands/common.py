"""Helpers shared by every CLI command: error handling, atomic writes, JSON output, and
the guard that keeps a command from writing over a file it reads."""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])


class TableFormat(StrEnum):
    """How a command prints its tables (see :mod:`accelsim.commands.terminal`)."""

    table = "table"
    csv = "csv"
    markdown = "markdown"


# The --format option of every command that prints tables.
TableFormatOption = Annotated[
    TableFormat, typer.Option("--format", help="Print tables as a table, csv or markdown.")
]


def stderr(message: str) -> None:
    print(message, file=sys.stderr)


def user_errors(func: F) -> F:
    """Print input errors as one line each on stderr and exit 1, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from accelsim.errors import AccelsimError

        try:
            return func(*args, **kwargs)
        except AccelsimError as exc:
            from accelsim.errors import ConfigError, one_line

            # A config problem is one line however odd its field names; other errors may
            # span lines on purpose (a summary, then details).
            lines = (
                [str(p) for p in exc.problems]
                if isinstance(exc, ConfigError)
                else str(exc).split("\n")
            )
            for line in lines:
                stderr(f"error: {one_line(line)}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            stderr("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def console(table_format: Any = None) -> Any:
    """The console commands print to: tables fitted to the terminal's width (``COLUMNS``
    if set; 160 when standard output is not a terminal), or written as CSV or Markdown
    (``table_format``, see :mod:`accelsim.commands.terminal`)."""
    from accelsim.commands.terminal import TableConsole

    width: int | None = None if sys.stdout.isatty() else 160
    with contextlib.suppress(KeyError, ValueError):
        width = max(20, int(os.environ["COLUMNS"]))
    return TableConsole(table_format or TableFormat.table, soft_wrap=False, width=width)


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that a reader never sees it half-written (a temporary file in the
    same folder, then a rename). Special files such as /dev/stdout or a FIFO are written
    in place: renaming over them would replace the device with a regular file."""
    from accelsim.errors import AccelsimError

    path = path.expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    if folder.exists() and not folder.is_dir():
        raise AccelsimError(f"{path}: cannot write: {folder} is not a folder")
    try:
        if path.exists() and not path.is_file() and not path.is_dir():
            with path.open("w", encoding="utf-8") as handle:
                handle.write(text)
            return
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # as open() would create it, not mkstemp's 0600
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise AccelsimError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _finite(node: Any) -> Any:
    """JSON has no NaN or infinity: such values (from absurd but valid inputs) become null."""
    if isinstance(node, float):
        return node if math.isfinite(node) else None
    if isinstance(node, dict):
        return {key: _finite(value) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [_finite(value) for value in node]
    return node


def dump_json(doc: Any) -> str:
    return json.dumps(_finite(doc), indent=2, allow_nan=False) + "\n"


def emit_json(doc: Any, target: str) -> None:
    if target == "-":
        sys.stdout.write(dump_json(doc))
    else:
        write_atomic(Path(target), dump_json(doc))


# ------------------------------------------------------------------ outputs vs inputs


@dataclass(frozen=True)
class Output:
    """A path a command is about to write, as the user named it: a file, or (with
    ``names``) a folder and the names, or glob patterns, of the files it writes in it.
    ``None`` and ``-`` (standard output) write no file."""

    option: str  # how the user gave it, e.g. "--json"
    path: str | Path | None
    names: tuple[str, ...] = ()


def _same_file(candidate: Path, target: Path, target_resolved: Path) -> bool:
    """Whether writing ``candidate`` would write ``target``: the same path once symlinks
    and ``..`` are resolved, or the same file on disk (a hard link, a bind mount)."""
    try:
        if candidate.resolve() == target_resolved:
            return True
        return candidate.exists() and target.exists() and os.path.samefile(candidate, target)
    except (OSError, RuntimeError, ValueError):
        return False


def _written_files(output: Output, folder: Path) -> list[Path]:
    """The files an output writes: the path itself, or each name in the folder (for a
    pattern, every file already there that it matches)."""
    if not output.names:
        return [folder]
    out = [folder]
    for name in output.names:
        if not any(c in name for c in "*?["):
            out.append(folder / name)
            continue
        # No such folder yet, or not a folder: nothing there to write over.
        with contextlib.suppress(OSError):
            out += [entry for entry in folder.iterdir() if fnmatch.fnmatch(entry.name, name)]
    return out


def refuse_overwriting_inputs(inputs: Iterable[str | Path], *outputs: Output) -> None:
    """Fail, before any work, when an output would write over a file the command reads
    (its scenario and every file that pulls in, a sweep's store files): one line naming
    both. Paths are compared once symlinks and ``..`` are resolved."""
    from accelsim.errors import AccelsimError

    read = []
    for item in inputs:
        path = Path(item).expanduser()
        try:
            read.append((path, path.resolve()))
        except (OSError, RuntimeError, ValueError):
            continue
    for output in outputs:
        if output.path is None or str(output.path) == "-":
            continue
        where = Path(output.path).expanduser()
        for candidate in _written_files(output, where):
            for path, resolved in read:
                if _same_file(candidate, path, resolved):
                    shown = "" if candidate == where else f" (as {candidate})"
                    raise AccelsimError(
                        f"{output.option} {output.path}: would write over {path}{shown}, "
                        "which this command reads; choose another path"
                    )


# ------------------------------------------------------------------ help placeholders

# What each option's value is, as its help shows it (``--json FILE``); an option not named
# here shows its name in capitals, and a choice its choices.
PLACEHOLDERS: dict[str, str] = {
    "json_out": "FILE",
    "csv": "FILE",
    "parquet": "FILE",
    "out": "PATH",
    "output": "FILE",
    "report": "PATH",
    "set_": "PATH=VALUE",
    "set_a": "PATH=VALUE",
    "set_b": "PATH=VALUE",
    "seed": "N",
    "seeds": "N",
    "workers": "N",
    "batch": "N",
    "context": "TOKENS",
    "prompt": "TOKENS",
    "chips_per_replica": "N",
    "max_memory": "SIZE",
    "power_cap": "POWER",
    "metric": "PATTERN",
    "x": "METRIC",
    "y": "METRIC",
    "scheduler": "ADDRESS",
}


class PlaceholderGroup(typer.core.TyperGroup):
    """A command group whose commands' help shows a plain placeholder for every value
    (``--json FILE``, ``--set PATH=VALUE``, ``SCENARIO``) instead of the Python type of
    its parameter (``<str>``, ``<list[str]>``)."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            for param in command.params:
                name_placeholder(param)
        return command


def name_placeholder(param: Any) -> None:
    if getattr(param, "param_type_name", "") == "argument" and hasattr(param, "display_type_rich"):
        # Newer typer adds the type after an argument's name (`SCENARIO <str>`): the name
        # (its placeholder) says it all.
        param.display_type_rich = lambda ctx: None
    if param.metavar is not None or getattr(param, "is_flag", False):
        return
    # typer (0.12 to 0.29 and on) keeps a parameter's choices in one of two places.
    descriptor = getattr(param, "type_descriptor", None)
    choices = (
        descriptor.choices
        if descriptor is not None
        else getattr(getattr(param, "type", None), "choices", None)
    )
    if choices:
        param.metavar = "[" + "|".join(str(getattr(c, "value", c)) for c in choices) + "]"
    else:
        param.metavar = PLACEHOLDERS.get(param.name, param.name.upper())


def complete_shipped(kind: str) -> Callable[[str], list[str]]:
    """A shell-completion function offering the shipped names of one kind of file
    (``chip``, ``model``, ``scenario``, ``study``) that start with what was typed."""

    def names(incomplete: str) -> list[str]:
        from accelsim.config.loader import catalog

        return [name for name in catalog(kind) if name.startswith(incomplete)]  # type: ignore[arg-type]

    return names
