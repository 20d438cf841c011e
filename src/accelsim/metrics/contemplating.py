"""Per-branch latency of contemplating requests: how long the aggregation waits, and for whom.

A contemplating request fans out into branches and its aggregation starts when
the last branch finishes. For every fan-out whose branches all finished (of a
request that arrived in the window), a branch's latency is its finish minus the
request's arrival; the *slowest* branch is the whole branch wait, the *median*
branch is the median of the fan-out's branch latencies, and the *straggler wait*
is the slowest minus the median: the time the aggregation waited after half of
its branches were done. The *straggler share* is the straggler wait over the
slowest branch's latency (0 when every branch finishes together).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from accelsim.engine.records import LLMRecords
from accelsim.metrics.common import distribution


def branch_latencies(rec: LLMRecords, sel: np.ndarray) -> dict[str, Any]:
    """Branch latency figures of the fan-outs in ``sel`` whose branches all finished."""
    finish = rec.branch_finish_s
    whole = sel & ~rec.rejected & ~np.isnan(finish).any(axis=1)
    latency = finish[whole] - rec.arrival_s[whole, None]
    slowest = latency.max(axis=1) if latency.size else np.zeros(0)
    median = np.median(latency, axis=1) if latency.size else np.zeros(0)
    wait = slowest - median
    share = np.divide(wait, slowest, out=np.zeros_like(wait), where=slowest > 0)
    return {
        "fan_outs": int(whole.sum()),
        "branch_latency_s": distribution(latency.ravel()),
        "slowest_branch_s": distribution(slowest),
        "median_branch_s": distribution(median),
        "straggler_wait_s": distribution(wait),
        "straggler_share": distribution(share),
    }
