"""Summary of a disaggregated LLM workload: its KV moves and where its TTFT goes.

For the sequence whose first token the user sees (an instant or thinking request;
a contemplating request's aggregation), the time from its submission to its KV
landing on the decode pool, which is its TTFT when it is the request itself, splits
into four parts that add up:

* ``prefill_wait_s``: submitted to admitted on a prefill replica (KV reserved);
* ``prefill_s``: admitted to the prefill done (the first token computed);
* ``decode_wait_s``: prefill done to a decode replica reserving the KV (zero when it
  reserved it earlier, as with layer-by-layer transfers);
* ``kv_transfer_s``: the later of those two to the KV landing: what the transfer
  adds after both ends are ready (link queueing, wire time not overlapped, latency).

Requests whose answer is one token move no KV and are left out of the split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from accelsim.config.schema import Disaggregation
from accelsim.engine.records import DisaggRecords
from accelsim.metrics.common import distribution


def disaggregation_summary(
    split: Disaggregation, rec: DisaggRecords, done: np.ndarray
) -> dict[str, Any]:
    """The ``disaggregation`` entry of a workload over its completed requests ``done``."""
    moved = done & ~np.isnan(rec.landed_s)
    ready = np.maximum(rec.prefilled_s[moved], rec.reserved_s[moved])
    return {
        "prefill_pool": split.prefill_pool,
        "decode_pool": split.decode_pool,
        "layerwise": split.layerwise,
        "kv_transfers": int(rec.transfers[done].sum()),
        "kv_bytes_moved": float(rec.kv_bytes[done].sum()),
        "kv_transfer_s": distribution(rec.landed_s[moved] - ready),
        "prefill_wait_s": distribution(rec.admitted_s[moved] - rec.submitted_s[moved]),
        "prefill_s": distribution(rec.prefilled_s[moved] - rec.admitted_s[moved]),
        "decode_wait_s": distribution(ready - rec.prefilled_s[moved]),
    }
