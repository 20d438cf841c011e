"""Errors a user can cause, each printable as one line naming file, line and field."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one field of one input."""

    source: str  # a file path, or "--set a.b=c" for a command-line override
    line: int | None
    field: str  # dotted path, "" for the whole document
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        text = (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )
        return one_line(text)


def one_line(text: str) -> str:
    """Escape line breaks and other control characters so a message stays on one line."""
    return "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


class AccelsimError(Exception):
    """Base of every error caused by user input; the CLI prints it without a traceback."""


class ConfigError(AccelsimError):
    """One or more problems with configuration files or overrides."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @classmethod
    def single(
        cls, source: str, message: str, line: int | None = None, field: str = ""
    ) -> ConfigError:
        return cls([Problem(source, line, field, message)])


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """What to append to "no such NAME": the close matches among ``known`` (by difflib),
    then every known name, e.g. ``; did you mean 'gpu'? (known: gpu, mtia)``."""
    names = list(known)
    # Similarity, a little more for a name the word begins (a name cut short).
    scores = {
        name: difflib.SequenceMatcher(None, word, name).ratio() + 0.1 * name.startswith(word)
        for name in names
    }
    best = max(scores.values(), default=0.0)
    # The best match and any nearly as good; none when nothing is close.
    close = sorted(
        (n for n, score in scores.items() if score >= max(0.5, best - 0.05)),
        key=lambda n: -scores[n],
    )[:3]
    quoted = [repr(c) for c in close]
    listed = ", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else "".join(quoted)
    guess = f"; did you mean {listed}?" if close else ""
    return f"{guess} (known: {', '.join(names) or 'none'})"
