"""Summaries of an LLM workload's SLO classes: latencies, SLA and attainment per class.

Each class counts the requests of its class that arrived in the window, as the
workload's own summary does; its SLA is the class's ``sla`` or else the
workload's, judged the same way (a request is within the target when its TTFT
and its TPOT both are; judged requests are the completed ones plus those still
waiting for a first token past the TTFT target). ``preemptions`` counts the
evictions of the class's sequences (to be recomputed) among those requests.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from accelsim.config.schema import LLMWorkload, TokenLatencyTarget
from accelsim.engine.records import LLMRecords
from accelsim.metrics.common import distribution, json_float
from accelsim.metrics.confidence import percentile_interval, too_few_samples


def judge_sla(
    rec: LLMRecords, t: TokenLatencyTarget, sel: np.ndarray, done: np.ndarray, w1: float
) -> tuple[dict[str, Any], float | None]:
    """The SLA document and attainment of the requests in ``sel`` (``done``: completed):
    a workload's over its window, or one SLO class's."""
    ok = sel & done
    ttft = rec.first_token_s[ok] - rec.arrival_s[ok]
    out = rec.output_tokens[ok]
    tpot = np.where(
        out > 1, (rec.finish_s[ok] - rec.first_token_s[ok]) / np.maximum(out - 1, 1), 0.0
    )
    waiting = sel & ~rec.rejected & np.isnan(rec.finish_s)
    late = int(
        ((w1 - rec.arrival_s[waiting] > t.ttft_s) & np.isnan(rec.first_token_s[waiting])).sum()
    )
    completed = int(ok.sum())
    judged = completed + late
    good = int(((ttft <= t.ttft_s) & (tpot <= t.tpot_s)).sum())
    observed_ttft = json_float(np.percentile(ttft, t.percentile)) if completed else None
    observed_tpot = json_float(np.percentile(tpot, t.percentile)) if completed else None
    doc = {
        "ttft_s": t.ttft_s,
        "tpot_s": t.tpot_s,
        "percentile": t.percentile,
        "observed_ttft_s": observed_ttft,
        "observed_tpot_s": observed_tpot,
        "met": bool(
            observed_ttft is not None
            and observed_tpot is not None
            and observed_ttft <= t.ttft_s
            and observed_tpot <= t.tpot_s
        ),
        "observed_ttft_ci95_s": percentile_interval(ttft, t.percentile),
        "observed_tpot_ci95_s": percentile_interval(tpot, t.percentile),
        "too_few_samples": too_few_samples(completed, t.percentile),
    }
    return doc, good / judged if judged else None


def by_class(
    wl: LLMWorkload, rec: LLMRecords, in_window: np.ndarray, done: np.ndarray, w1: float
) -> dict[str, Any]:
    """Per SLO class (in the workload's order): counts, latencies, SLA, attainment and
    preemptions of the requests of the class that arrived in the window."""
    assert wl.slo is not None and rec.slo_class is not None and rec.preemptions is not None
    out: dict[str, Any] = {}
    for index, c in enumerate(wl.slo.classes):
        sel = in_window & (rec.slo_class == index)
        ok = sel & done
        dropped = int((sel & rec.rejected).sum())
        streamed = ok & (rec.output_tokens > 1)
        entry: dict[str, Any] = {
            "priority": c.priority,
            "share": c.share,
            "offered": int(sel.sum()),
            "completed": int(ok.sum()),
            "dropped": dropped,
            "in_flight": int(sel.sum()) - int(ok.sum()) - dropped,
            "latency_s": distribution(rec.finish_s[ok] - rec.arrival_s[ok]),
            "ttft_s": distribution(rec.first_token_s[ok] - rec.arrival_s[ok]),
            "tpot_s": distribution(
                (rec.finish_s[streamed] - rec.first_token_s[streamed])
                / (rec.output_tokens[streamed] - 1)
            ),
            "sla": None,
            "sla_attainment": None,
            "preemptions": int(rec.preemptions[sel].sum()),
        }
        target = c.sla if c.sla is not None else wl.sla
        if target is not None:
            entry["sla"], entry["sla_attainment"] = judge_sla(rec, target, sel, done, w1)
        out[c.name] = entry
    return out
