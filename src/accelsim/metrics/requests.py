"""Every request of a run as columns: the per-request export behind ``accelsim run
--requests`` and the Python API's ``Result.requests``.

One row per request the run recorded, warm-up and end of run included, with
``in_window`` true for those the result document counts (they arrived in the
measured window). Times are simulated seconds; a request still in flight at the
end has ``finish_s`` (and its latencies) NaN. Every kind gives ``workload``,
``kind``, ``in_window``, ``arrival_s``, ``finish_s``, ``latency_s`` and ``pool``
(where it was served); each adds its own fields (ranking: ``start_s``,
``queue_wait_s``, ``items``; LLM: ``first_token_s``, ``ttft_s``, ``tpot_s``,
``mode``, ``prompt_tokens``, ``output_tokens``, ``generated_tokens``,
``rejected``, and ``slo_class`` for a workload with SLO classes), as its entry in
:data:`summary.METRIC_KINDS` gives them.
"""

from __future__ import annotations

import numpy as np

from accelsim.config.loader import ResolvedScenario
from accelsim.engine.records import RunRecords
from accelsim.metrics.summary import METRIC_KINDS

Columns = dict[str, np.ndarray]


def request_columns(resolved: ResolvedScenario, records: RunRecords) -> dict[str, Columns]:
    """Per workload, in the scenario's order: its requests' columns, with ``workload`` and
    ``kind`` filled in."""
    w0, w1 = records.warmup_s, records.end_s
    by_kind = {
        kind: METRIC_KINDS[kind].requests(fleet, w0, w1) for kind, fleet in records.fleets.items()
    }
    out: dict[str, Columns] = {}
    for name, workload in resolved.scenario.workloads.items():
        columns = by_kind[workload.kind][name]
        n = columns["arrival_s"].size
        out[name] = {
            "workload": np.full(n, name, dtype=object),
            "kind": np.full(n, workload.kind, dtype=object),
            **columns,
        }
    return out
