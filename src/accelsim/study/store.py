"""The result store of a sweep: a folder with ``study.json`` and ``runs.jsonl``.

``study.json`` (written atomically before the first run) names the study and
lists every planned run. ``runs.jsonl`` holds one JSON object per finished
run, appended as each run finishes with a single ``os.write`` of the whole
encoded line followed by ``fsync``. A process killed at any moment therefore
leaves complete lines plus, at worst, one torn last line without its newline:
readers ignore it, and a resumed sweep cuts it off before appending. When a
run id appears more than once (a failed run retried), its last row wins.

Each row carries its study's fingerprint. A row of another study (another
fingerprint, or a run the manifest does not plan), say appended by hand from
another folder, makes the store unreadable rather than silently mixed in; so
does a ``study.json`` that cannot be read.

A row::

    {"run_id": "3f2a9c0d1b7e", "status": "ok", "error": null, "wall_s": 0.41,
     "replicate": 0, "seed": 1, "axes": {"pools.rank.chip": "mtia-like-gen2", ...},
     "metrics": {"workloads.feed.latency_s.p99": 0.00127, ...}, "warnings": [],
     "fingerprint": "9b1e0c4d2a7f3e85"}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from accelsim import __version__
from accelsim.errors import AccelsimError

MANIFEST = "study.json"
ROWS = "runs.jsonl"
LOCK = ".lock"
FORMAT = 1


def encode_row(row: dict[str, Any]) -> bytes:
    """One complete line; JSON escapes every newline inside it."""
    return (json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n").encode("ascii")


@dataclass
class StoreContents:
    manifest: dict[str, Any] | None
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # by run id, last row wins
    lines: int = 0  # complete, readable lines
    torn: bool = False  # a torn last line was ignored
    unreadable: int = 0  # complete lines that are not a row (see _is_row)
    good_bytes: int = 0  # bytes up to the end of the last complete line
    foreign: list[int] = field(default_factory=list)  # line numbers of another study's rows

    def ordered(self) -> list[dict[str, Any]]:
        """Rows in plan order (runs the plan does not list, at the end)."""
        planned = [r["run_id"] for r in (self.manifest or {}).get("runs", [])]
        out = [self.rows[rid] for rid in planned if rid in self.rows]
        known = set(planned)
        out += [row for rid, row in self.rows.items() if rid not in known]
        return out


def store_files(folder: Path) -> tuple[Path, ...]:
    """The files of a store that its readers read."""
    return (folder / MANIFEST, folder / ROWS)


_ROW_FIELDS = {"axes": dict, "metrics": dict, "warnings": list}


def _is_row(row: Any) -> bool:
    """A JSON object with a run id, and fields of the types a row has."""
    return (
        isinstance(row, dict)
        and isinstance(row.get("run_id"), str)
        and all(isinstance(row.get(k, kind()), kind) for k, kind in _ROW_FIELDS.items())
    )


def _read_rows(path: Path, contents: StoreContents) -> None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise AccelsimError(f"{path}: cannot read: {exc.strerror or exc}") from None
    end = data.rfind(b"\n") + 1
    contents.good_bytes = end
    contents.torn = end < len(data)
    manifest = contents.manifest or {}
    fingerprint = manifest.get("fingerprint")
    planned = manifest.get("runs")
    planned_ids = (
        {r.get("run_id") for r in planned if isinstance(r, dict)}
        if isinstance(planned, list)
        else None
    )
    for number, line in enumerate(data[:end].split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            contents.unreadable += 1
            continue
        if not _is_row(row):
            contents.unreadable += 1
            continue
        if fingerprint is None and isinstance(row.get("fingerprint"), str):
            fingerprint = row["fingerprint"]  # no manifest: the first row's study rules
        if row.get("fingerprint", fingerprint) != fingerprint or (
            planned_ids is not None and row["run_id"] not in planned_ids
        ):
            contents.foreign.append(number)
            continue
        contents.lines += 1
        contents.rows.pop(row["run_id"], None)  # keep file order of the latest rows
        contents.rows[row["run_id"]] = row


def read_store(folder: Path) -> StoreContents:
    """Everything a store holds; raises AccelsimError if ``folder`` is not a store, if its
    manifest cannot be read, or if it holds rows of another study."""
    manifest_path, rows_path = folder / MANIFEST, folder / ROWS
    if not manifest_path.is_file() and not rows_path.is_file():
        raise AccelsimError(
            f"{folder}: no sweep results here (expected {MANIFEST} and {ROWS}; "
            "create them with `accelsim sweep STUDY --out DIR`)"
        )
    manifest: dict[str, Any] | None = None
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AccelsimError(
                f"{manifest_path}: cannot read this sweep's manifest ({exc}); restore it "
                "from a copy, or sweep again into another --out"
            ) from None
        if not isinstance(manifest, dict):
            raise AccelsimError(f"{manifest_path}: not a sweep manifest")
    contents = StoreContents(manifest)
    _read_rows(rows_path, contents)
    if contents.foreign:
        lines = contents.foreign
        where = ("line " if len(lines) == 1 else "lines ") + ", ".join(map(str, lines[:3]))
        where += f" and {len(lines) - 3} more" if len(lines) > 3 else ""
        study = (
            f"study {manifest.get('study')!r} of {manifest_path}"
            if manifest
            else "the first row's study"
        )
        raise AccelsimError(
            f"{rows_path}: {len(lines)} row(s) from another study than {study} ({where}); "
            "keep each study's rows in its own folder: move them out, then try again"
        )
    return contents


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _write_durably(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class StoreWriter:
    """The open store of a running sweep; holds a lock so that one sweep writes at a time."""

    def __init__(
        self, folder: Path, manifest: dict[str, Any], *, resume: bool, overwrite: bool = False
    ) -> None:
        """Open the store in ``folder``: a folder holding another sweep is an error unless
        ``resume`` continues it (same study) or ``overwrite`` starts it again (its rows and
        manifest are removed, once the lock is held; no other file in the folder is)."""
        self.folder = folder
        self._fd: int | None = None
        self._lock: int | None = None
        self._fingerprint = manifest["fingerprint"]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._take_lock()
            if overwrite:
                for name in (ROWS, MANIFEST):
                    (folder / name).unlink(missing_ok=True)
            self.previous = self._prepare(manifest, resume)
            self._fd = os.open(folder / ROWS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            _fsync_dir(folder)
        except OSError as exc:
            self.close()
            raise AccelsimError(f"{folder}: cannot write: {exc.strerror or exc}") from None
        except BaseException:
            self.close()
            raise

    def _take_lock(self) -> None:
        self._lock = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AccelsimError(f"{self.folder}: another sweep is writing to this folder") from None

    def _prepare(self, manifest: dict[str, Any], resume: bool) -> StoreContents:
        manifest_path = self.folder / MANIFEST
        if manifest_path.exists() or (self.folder / ROWS).exists():
            contents = read_store(self.folder)  # a damaged store is an error, never empty
        else:
            contents = StoreContents(None)
        if contents.manifest is not None or contents.lines:
            if not resume:
                raise AccelsimError(
                    f"{self.folder}: already holds a sweep ({len(contents.rows)} runs "
                    "recorded); pass --resume to continue it, --overwrite to start it again, "
                    "or choose another --out"
                )
            old = contents.manifest or {}
            if contents.manifest is not None and not old.get("fingerprint"):
                raise AccelsimError(
                    f"{manifest_path}: names no study fingerprint, so it was not written by "
                    "`accelsim sweep` (or was edited); cannot resume it: choose another --out"
                )
            if old.get("fingerprint") != manifest["fingerprint"]:
                raise AccelsimError(
                    f"{self.folder}: holds results of "
                    + (f"study {old.get('study')!r}" if old else "an unknown study")
                    + " with another base scenario, set:, axes or seeds; "
                    "choose another --out (or remove the folder)"
                )
        if contents.torn:
            # Cut the torn tail so the next line starts on a line of its own.
            os.truncate(self.folder / ROWS, contents.good_bytes)
        if contents.manifest is None:
            full = {
                "format": FORMAT,
                "accelsim_version": __version__,
                "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                **manifest,
            }
            _write_durably(manifest_path, json.dumps(full, indent=1, allow_nan=False) + "\n")
            contents.manifest = full
        return contents

    def append(self, row: dict[str, Any]) -> None:
        """Add one finished run: one write of the whole line, then fsync."""
        assert self._fd is not None, "store is closed"
        data = encode_row({**row, "fingerprint": self._fingerprint})
        try:
            written = os.write(self._fd, data)
            while written < len(data):  # pragma: no cover - only on a full disk or a signal
                written += os.write(self._fd, data[written:])
            os.fsync(self._fd)
        except OSError as exc:
            raise AccelsimError(
                f"{self.folder / ROWS}: cannot write: {exc.strerror or exc}"
            ) from None

    def close(self) -> None:
        for fd in (self._fd, self._lock):
            if fd is not None:
                os.close(fd)
        self._fd = self._lock = None

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
