"""Results are written atomically (a temp file in the same folder, then a rename): a failed
or killed write never leaves a torn file, and the previous file stays intact."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from trustkit import error_lines, invoke, write_world

from accelsim.commands.common import write_atomic
from accelsim.errors import AccelsimError

OLD = json.dumps({"version": "old", "values": list(range(100))})
NEW = json.dumps({"version": "new", "values": list(range(100_000))})


def _leftovers(folder: Path, keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "result.json"
    write_atomic(path, OLD)
    assert path.read_text(encoding="utf-8") == OLD
    assert _leftovers(tmp_path, "result.json") == []
    return path


def test_a_failed_rename_keeps_the_old_file_and_leaves_no_temp(
    target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renamed: list[tuple[str, str]] = []

    def fail(src: Any, dst: Any) -> None:
        renamed.append((str(src), str(dst)))
        assert Path(src).read_text(encoding="utf-8") == NEW  # complete before the rename
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(AccelsimError, match=r"result\.json: cannot write: Invalid cross-device"):
        write_atomic(target, NEW)
    # It wrote a complete temp file next to the target, then tried to rename it.
    ((src, dst),) = renamed
    assert Path(src).parent == target.parent and dst == str(target)
    assert target.read_text(encoding="utf-8") == OLD
    assert _leftovers(target.parent, target.name) == []


def test_a_write_that_dies_half_way_keeps_the_old_file(
    target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fdopen = os.fdopen

    class DiskFull:
        def __init__(self, handle: Any) -> None:
            self.handle = handle

        def __enter__(self) -> DiskFull:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def write(self, text: str) -> int:
            self.handle.write(text[: len(text) // 2])
            self.handle.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda *a, **k: DiskFull(real_fdopen(*a, **k)))
    with pytest.raises(AccelsimError, match="No space left on device"):
        write_atomic(target, NEW)
    assert target.read_text(encoding="utf-8") == OLD
    assert _leftovers(target.parent, target.name) == []


def test_an_interrupt_during_the_write_keeps_the_old_file(
    target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, NEW)
    assert target.read_text(encoding="utf-8") == OLD
    assert _leftovers(target.parent, target.name) == []


_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from accelsim.commands.common import write_atomic

    target, text = Path(sys.argv[1]), sys.stdin.read()
    real_fdopen = os.fdopen

    class Slow:  # writes half, then stalls until killed
        def __init__(self, handle):
            self.handle = handle
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.handle.close()
        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            self.handle.flush()
            os.fsync(self.handle.fileno())
            print("half written", flush=True)
            time.sleep(60)

    os.fdopen = lambda *a, **k: Slow(real_fdopen(*a, **k))
    write_atomic(target, text)
    """
)


def test_a_run_killed_mid_write_leaves_the_old_file_whole(target: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(NEW)
    child.stdin.close()
    try:
        assert child.stdout.readline().strip() == "half written"
        temps = _leftovers(target.parent, target.name)
        assert len(temps) == 1 and temps[0].startswith(".result.json.")  # half of NEW in it
        assert target.read_text(encoding="utf-8") == OLD
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    # The target is the old document, whole: a reader never sees a torn file.
    assert json.loads(target.read_text(encoding="utf-8"))["version"] == "old"
    # SIGKILL leaves no chance to clean up: the half-written temp file stays, hidden
    # (.result.json.*.tmp) and never mistaken for a result; the next write still works.
    (temp,) = _leftovers(target.parent, target.name)
    assert temp.startswith(".result.json.") and temp.endswith(".tmp")
    assert 0 < (target.parent / temp).stat().st_size < len(NEW)
    write_atomic(target, NEW)
    assert json.loads(target.read_text(encoding="utf-8"))["version"] == "new"


def test_run_json_keeps_the_previous_result_when_the_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = write_world(tmp_path)
    out = tmp_path / "out" / "result.json"
    invoke("run", scenario, "-q", "--json", out)
    first = json.loads(out.read_text(encoding="utf-8"))
    assert first["seed"] == 3

    def fail(src: Any, dst: Any) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", fail)
    (line,) = error_lines(invoke("run", scenario, "-q", "--seed", "4", "--json", out), out)
    assert line == f"error: {out}: cannot write: Permission denied"
    assert json.loads(out.read_text(encoding="utf-8")) == first
    assert _leftovers(out.parent, out.name) == []
