"""Helpers shared by every CLI command: error handling, atomic writes, JSON output."""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])


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


def console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)


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
