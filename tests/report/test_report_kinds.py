"""Workload kinds in the report come from one registry: a kind registered there is shown
by the shared tables, charts and pages with no change to them."""

from __future__ import annotations

import copy
import dataclasses
import io
from typing import Any

import pytest
from reportkit import SHORT
from rich.console import Console

from accelsim.errors import AccelsimError
from accelsim.report.html import result_report
from accelsim.report.kinds import REPORT_KINDS, kind_of, pool_kind
from accelsim.report.plots import timeline_charts
from accelsim.report.tables import result_view
from accelsim.runner import run_scenario


@pytest.fixture(scope="module")
def ranking_doc() -> dict[str, Any]:
    return run_scenario(None, [v for i, v in enumerate(SHORT) if i % 2])


def _as_kind(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    """The document with every workload (entry and config) of ``kind``."""
    out = copy.deepcopy(doc)
    for section in (out["workloads"], out["config"]["workloads"]):
        for workload in section.values():
            workload["kind"] = kind
    return out


def _text(renderable: Any) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def _header(text: str, first_column: str) -> str | None:
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("┃│ ").split("┃")]
        if cells and cells[0] == first_column:
            return line
    return None


def test_a_registered_kind_renders_through_the_shared_report(
    ranking_doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = _as_kind(ranking_doc, "toy")
    toy = dataclasses.replace(REPORT_KINDS["ranking"], name="toy", label="toy")
    with monkeypatch.context() as m:
        m.setitem(REPORT_KINDS, "toy", toy)
        assert all(kind_of(w).name == "toy" for w in doc["workloads"].values())
        assert all(pool_kind(doc, p).name == "toy" for p in doc["pools"])

        text = _text(result_view(doc))
        assert _header(text, "toy") is not None, text
        assert _header(text, "ranking") is None, text
        for name, w in doc["workloads"].items():
            (row,) = [line for line in text.splitlines() if line.strip("│ ").startswith(name)]
            assert w["model"] in row and str(w["completed"]) in row
        assert _header(text, "pool") is not None

        report = result_report(doc)
        summary = report.sections[0].items[0]
        assert isinstance(summary, str)
        assert "<th>toy workload</th>" in summary.replace(' class=""', "")
        assert all(f"<td>{name}</td>" in summary.replace(' class=""', "") for name in doc["pools"])
        ids = {c.id for c in report.charts()}
        assert {"cdf-latency", "tail-latency", "perfw-queries"} <= ids
        assert any(i.startswith("roofline-") for i in ids)
        assert "timeline-batch-toy" in {c.id for c in timeline_charts(doc)}
    assert "toy" not in REPORT_KINDS


def test_an_unknown_kind_is_named_in_a_clean_error(ranking_doc: dict[str, Any]) -> None:
    with pytest.raises(AccelsimError, match="unknown workload kind 'toy' \\(known: ranking, llm"):
        result_view(_as_kind(ranking_doc, "toy"))
