"""A sweep killed with SIGKILL part-way (twice) resumes and ends with one row per run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from studykit import assert_ok, err, invoke, write_study

from accelsim.config.study import load_study
from accelsim.study.plan import make_plan

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX process groups")

STUDY = """\
base: scenario.yaml
set:
  simulation.duration_s: 5
  workloads.w.traffic.rate_per_s: 3000
axes:
  - grid:
      pools.p.count: [1, 2, 3]
      pools.p.batching.max_batch_items: [16, 32, 64, 128]
seeds: {replicates: 2}
"""
"""24 runs of about 15,000 queries each: a few seconds on two workers."""


def complete_lines(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1].splitlines(keepends=True)


def start_and_kill(args: list[str], rows: Path, at_least: int, cwd: Path) -> int:
    """Start a sweep in its own process group, SIGKILL it once ``rows`` has at least
    ``at_least`` complete lines; return how many complete lines it left."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "accelsim.cli", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(complete_lines(rows)) < at_least:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the sweep made no progress"
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers, no clean-up
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when an assertion fired
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return len(complete_lines(rows))


def test_sigkill_then_resume_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    study = write_study(tmp_path, STUDY)
    planned = {run.run_id for run in make_plan(load_study(study)).runs}
    assert len(planned) == 24
    folder = tmp_path / "out"
    rows = folder / "runs.jsonl"
    args = ["sweep", str(study), "--out", str(folder), "--workers", "2", "-q"]

    first = start_and_kill(args, rows, 3, tmp_path)
    assert 3 <= first < 24, "the kill must land part-way through the sweep"
    kept = complete_lines(rows)

    # Killed again, part-way through the resumed sweep.
    second = start_and_kill([*args, "--resume"], rows, first + 3, tmp_path)
    assert first + 3 <= second < 24, "the second kill must land part-way too"
    assert complete_lines(rows)[:first] == kept  # finished rows are never rewritten
    kept = complete_lines(rows)

    result = invoke(*args[:-1], "--resume")
    assert_ok(result)
    assert f"{24 - second} runs in" in err(result)
    assert f"({second} already done)" in err(result)

    data = rows.read_bytes()
    assert data.endswith(b"\n"), "a torn last line was left behind"
    lines = data.splitlines(keepends=True)
    assert lines[: len(kept)] == kept
    parsed = [json.loads(line) for line in lines]  # every line is whole JSON
    ids = [row["run_id"] for row in parsed]
    assert len(ids) == 24 and set(ids) == planned, "exactly one row per run"
    assert all(row["status"] == "ok" for row in parsed)
