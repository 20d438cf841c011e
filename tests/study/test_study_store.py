"""The result store: whole lines, torn tails, resume rules, locking; metric flattening."""

from __future__ import annotations

import json
import math
import re
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


# ------------------------------------------------------------ one study per store


def test_each_row_carries_its_studys_fingerprint(tmp_path: Path) -> None:
    with StoreWriter(tmp_path, MANIFEST, resume=False) as store:
        store.append(row("a"))
    (line,) = (tmp_path / ROWS).read_text().splitlines()
    assert json.loads(line)["fingerprint"] == "f1"


def _other_study(tmp_path: Path) -> bytes:
    """The rows of another study (fingerprint f2) planning runs b and c."""
    other = tmp_path / "other"
    manifest = {"study": "t", "fingerprint": "f2", "runs": [{"run_id": "b"}, {"run_id": "c"}]}
    with StoreWriter(other, manifest, resume=False) as store:
        store.append(row("b"))
        store.append(row("c"))
    return (other / ROWS).read_bytes()


def test_rows_appended_from_another_study_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    with StoreWriter(folder, MANIFEST, resume=False) as store:
        store.append(row("a"))
    with open(folder / ROWS, "ab") as handle:
        handle.write(_other_study(tmp_path))  # b: a run id this study plans, but not its row
    before = (folder / ROWS).read_bytes()
    message = f"{folder / ROWS}: 2 row(s) from another study than study 's' of "
    with pytest.raises(AccelsimError, match=re.escape(message)) as caught:
        read_store(folder)
    assert "(lines 2, 3)" in str(caught.value)
    with pytest.raises(AccelsimError, match="from another study"):
        StoreWriter(folder, MANIFEST, resume=True)  # nor resumed
    assert (folder / ROWS).read_bytes() == before


def test_an_untagged_row_the_plan_does_not_list_is_refused(tmp_path: Path) -> None:
    with StoreWriter(tmp_path, MANIFEST, resume=False) as store:
        store.append(row("a"))
    with open(tmp_path / ROWS, "ab") as handle:
        handle.write(encode_row(row("z")))  # as written by an older version: no fingerprint
    with pytest.raises(AccelsimError, match=r"1 row\(s\) from another study .*\(line 2\)"):
        read_store(tmp_path)


def test_untagged_rows_of_the_plan_still_read(tmp_path: Path) -> None:
    (tmp_path / "study.json").write_text(json.dumps(MANIFEST))
    (tmp_path / ROWS).write_bytes(encode_row(row("a")) + encode_row(row("b")))
    assert list(read_store(tmp_path).rows) == ["a", "b"]
    with StoreWriter(tmp_path, MANIFEST, resume=True) as store:
        assert list(store.previous.rows) == ["a", "b"]


def test_without_a_manifest_rows_of_two_studies_are_refused(tmp_path: Path) -> None:
    with StoreWriter(tmp_path, MANIFEST, resume=False) as store:
        store.append(row("a"))
    (tmp_path / "study.json").unlink()
    with open(tmp_path / ROWS, "ab") as handle:
        handle.write(_other_study(tmp_path))
    with pytest.raises(AccelsimError, match=r"from another study than the first row's study"):
        read_store(tmp_path)


@pytest.mark.parametrize("text", ["", "{not json", '{"study": "s", "fingerp', "[1, 2]"])
def test_a_damaged_manifest_is_an_error_never_a_fresh_store(tmp_path: Path, text: str) -> None:
    with StoreWriter(tmp_path, MANIFEST, resume=False) as store:
        store.append(row("a"))
    (tmp_path / "study.json").write_text(text)
    rows = (tmp_path / ROWS).read_bytes()
    for resume in (True, False):
        with pytest.raises(AccelsimError, match=re.escape(str(tmp_path / "study.json"))):
            StoreWriter(tmp_path, MANIFEST, resume=resume)
    assert (tmp_path / "study.json").read_text() == text
    assert (tmp_path / ROWS).read_bytes() == rows


def test_a_manifest_without_a_fingerprint_cannot_be_resumed(tmp_path: Path) -> None:
    (tmp_path / "study.json").write_text(json.dumps({"study": "s", "runs": []}))
    with pytest.raises(AccelsimError, match="names no study fingerprint"):
        StoreWriter(tmp_path, MANIFEST, resume=True)


@pytest.mark.parametrize("bad", [{"axes": 5}, {"metrics": [1]}, {"warnings": "w"}])
def test_a_row_of_the_wrong_shape_is_unreadable_not_a_crash(
    tmp_path: Path, bad: dict[str, Any]
) -> None:
    with StoreWriter(tmp_path, MANIFEST, resume=False) as store:
        store.append(row("a"))
        store.append({**row("b"), **bad})
    contents = read_store(tmp_path)
    assert list(contents.rows) == ["a"] and contents.unreadable == 1
