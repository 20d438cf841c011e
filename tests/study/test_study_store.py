"""The result store: whole lines, torn tails, resume rules, locking; metric flattening."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from accelsim.errors import AccelsimError
from accelsim.study.executors import flatten_metrics, make_row
from accelsim.study.store import ROWS, StoreWriter, encode_row, read_store

MANIFEST = {"study": "s", "fingerprint": "f1", "runs": [{"run_id": "a"}, {"run_id": "b"}]}


def row(run_id: str, status: str = "ok", p99: float = 0.001) -> dict[str, Any]:
    meta = {"run_id": run_id, "axes": {"pools.p.count": 1}, "replicate": 0, "seed": 1}
    return make_row(meta, status=status, error=None, wall_s=0.5, metrics={"x.p99": p99})


def test_rows_are_whole_lines_read_back_in_plan_order(tmp_path: Path) -> None:
    with StoreWriter(tmp_path, MANIFEST, resume=False) as store:
        store.append(row("b"))
        store.append(row("a", status="failed"))
    contents = read_store(tmp_path)
    assert [r["run_id"] for r in contents.ordered()] == ["a", "b"]
    assert contents.rows["a"]["status"] == "failed"
    assert not contents.torn and contents.unreadable == 0
    data = (tmp_path / ROWS).read_bytes()
    assert data.count(b"\n") == 2 and data.endswith(b"\n")
    assert json.loads((tmp_path / "study.json").read_text())["fingerprint"] == "f1"


def test_a_line_never_holds_a_raw_newline() -> None:
    bad = make_row(
        {"run_id": "a", "axes": {"k": "two\nlines"}, "replicate": 0, "seed": 1},
        status="failed",
        error="Error: first line\nsecond line",
        wall_s=0.0,
    )
    encoded = encode_row(bad)
    assert encoded.count(b"\n") == 1 and encoded.endswith(b"\n")
    assert json.loads(encoded) == bad


def test_a_torn_last_line_is_ignored_and_cut_off_on_resume(tmp_path: Path) -> None:
    with StoreWriter(tmp_path, MANIFEST, resume=False) as store:
        store.append(row("a"))
    whole = (tmp_path / ROWS).read_bytes()
    torn = encode_row(row("b"))[:-7]
    (tmp_path / ROWS).write_bytes(whole + torn)

    contents = read_store(tmp_path)
    assert contents.torn and list(contents.rows) == ["a"]

    with StoreWriter(tmp_path, MANIFEST, resume=True) as store:
        assert list(store.previous.rows) == ["a"]
        assert (tmp_path / ROWS).read_bytes() == whole  # the torn tail is gone
        store.append(row("b"))
    contents = read_store(tmp_path)
    assert not contents.torn and list(contents.rows) == ["a", "b"]
    assert contents.lines == 2


def test_the_last_row_of_a_run_wins(tmp_path: Path) -> None:
    with StoreWriter(tmp_path, MANIFEST, resume=False) as store:
        store.append(row("a", status="failed"))
        store.append(row("b"))
        store.append(row("a", p99=0.002))
    contents = read_store(tmp_path)
    assert contents.lines == 3 and len(contents.rows) == 2
    assert contents.rows["a"]["status"] == "ok"
    assert contents.rows["a"]["metrics"]["x.p99"] == 0.002


def test_an_existing_store_needs_resume_and_the_same_study(tmp_path: Path) -> None:
    with StoreWriter(tmp_path, MANIFEST, resume=False) as store:
        store.append(row("a"))
    with pytest.raises(AccelsimError, match="pass --resume to continue it"):
        StoreWriter(tmp_path, MANIFEST, resume=False)
    other = {**MANIFEST, "fingerprint": "f2"}
    with pytest.raises(AccelsimError, match="choose another --out"):
        StoreWriter(tmp_path, other, resume=True)
    # Nothing was lost by the refusals.
    assert list(read_store(tmp_path).rows) == ["a"]


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    with (
        StoreWriter(tmp_path, MANIFEST, resume=False),
        pytest.raises(AccelsimError, match="another sweep is writing"),
    ):
        StoreWriter(tmp_path, MANIFEST, resume=True)
    with StoreWriter(tmp_path, MANIFEST, resume=True):
        pass  # the lock went with the first writer


def test_reading_a_folder_that_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(AccelsimError, match="no sweep results here"):
        read_store(tmp_path)


def test_flatten_keeps_numeric_and_boolean_leaves_only() -> None:
    doc = {
        "schema_version": 1,
        "accelsim_version": "0.1.0",
        "scenario": "x",
        "seed": 4,
        "window_s": {"start": 0.5, "end": 1.5, "duration": 1.0},
        "workloads": {
            "feed": {
                "model": "m",
                "completed": 10,
                "latency_s": {"mean": 0.001, "p99": None},
                "sla": {"met": True, "latency_s": 0.02},
                "future_kind": {"ttft_s": {"p99": float("nan")}},
            }
        },
        "pools": {"p": {"chip": "c", "serves": ["feed"], "utilization": 0.5}},
        "totals": {"queries_per_j": math.inf},
        "warnings": ["w"],
        "config": {"simulation": {"duration_s": 1.0}},
    }
    assert flatten_metrics(doc) == {
        "window_s.start": 0.5,
        "window_s.end": 1.5,
        "window_s.duration": 1.0,
        "workloads.feed.completed": 10,
        "workloads.feed.latency_s.mean": 0.001,
        "workloads.feed.latency_s.p99": None,
        "workloads.feed.sla.met": True,
        "workloads.feed.sla.latency_s": 0.02,
        "workloads.feed.future_kind.ttft_s.p99": None,
        "pools.p.utilization": 0.5,
        "totals.queries_per_j": None,
    }
