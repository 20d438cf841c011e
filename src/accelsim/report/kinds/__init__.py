"""The workload kinds the report layer knows, looked up by the ``kind`` documents carry.

Each kind's module says how its workloads, pools and explain documents read in the
terminal tables, the HTML report, the charts and the plain-language reading (see
:class:`~accelsim.report.kinds.base.ReportKind`). Shared report code looks kinds up here
and never tests for one: a new workload kind adds its module and its entry below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from accelsim.errors import AccelsimError
from accelsim.report.kinds import llm, ranking
from accelsim.report.kinds.base import ReportKind

REPORT_KINDS: dict[str, ReportKind] = {kind.name: kind for kind in (ranking.KIND, llm.KIND)}

DEFAULT_KIND = "ranking"  # as in the scenario schema: an entry without a ``kind`` is ranking


def kind_named(name: str) -> ReportKind:
    try:
        return REPORT_KINDS[name]
    except KeyError:
        known = ", ".join(REPORT_KINDS)
        raise AccelsimError(f"unknown workload kind {name!r} (known: {known})") from None


def kind_of(entry: Mapping[str, Any]) -> ReportKind:
    """The kind of a workload entry, a workload's config or an explain document."""
    return kind_named(str(entry.get("kind", DEFAULT_KIND)))


def pool_kind(doc: Mapping[str, Any], pool_name: str) -> ReportKind:
    """The kind of a result document's pool: pool entries carry none, so it is the kind of
    the workloads the pool serves (one kind: the scenario schema allows no mix)."""
    serves = doc["pools"][pool_name]["serves"]
    kinds = {kind_of(doc["workloads"][w]).name for w in serves}
    if len(kinds) != 1:
        raise AccelsimError(f"pool {pool_name!r} serves workloads of kinds {sorted(kinds)}")
    return kind_named(kinds.pop())


def per_work_unit() -> list[ReportKind]:
    """One kind for each unit of work the kinds count (queries, output tokens), in registry
    order: fleet totals give perf/W and cost once per unit, whichever kinds share it."""
    return list({kind.work_key: kind for kind in REPORT_KINDS.values()}.values())
