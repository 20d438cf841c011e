"""Summary of a workload's speculative decoding over the measurement window.

Speculative iterations count when they *start* in the window. Keys:

* ``accepted_tokens_per_step``: mean tokens a decoding sequence advanced per
  speculative step (accepted proposals plus the verify step's own token, cut at the
  sequence's output length); ``expected_tokens_per_step`` is the closed form
  (1 - a^(k+1)) / (1 - a) it converges to while outputs are long against k;
* ``accepted_tokens_distribution``: share of draws that accepted 1, 2, ..., k + 1
  tokens (before the cut at the output length);
* ``draft_time_share`` and ``verify_time_share``: shares of the speculative
  iterations' time spent in draft steps and in verify steps (prefill chunks that
  share an iteration run in its verify step);
* ``steps``: speculative iterations; ``sequence_steps``: sequences verified in them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from accelsim.engine.speculative import SpeculativeRecords
from accelsim.metrics.common import json_float
from accelsim.model.speculative import expected_tokens_per_step


def speculative_summary(rec: SpeculativeRecords, w0: float, w1: float) -> dict[str, Any]:
    """What speculative decoding did in the window [w0, w1)."""
    counted = (rec.start_s >= w0) & (rec.start_s < w1)
    draws = np.repeat(counted, rec.sequences)
    drawn = rec.drawn[draws]
    sequence_steps = int(rec.sequences[counted].sum())
    draft = float(rec.draft_s[counted].sum())
    verify = float(rec.verify_s[counted].sum())
    busy = draft + verify
    shares = np.bincount(drawn, minlength=rec.tokens + 2)[1:] / max(len(drawn), 1)
    return {
        "proposer": rec.proposer,
        "tokens": rec.tokens,
        "acceptance_rate": rec.acceptance_rate,
        "expected_tokens_per_step": expected_tokens_per_step(rec.tokens, rec.acceptance_rate),
        "accepted_tokens_per_step": (
            json_float(rec.advanced[counted].sum() / sequence_steps) if sequence_steps else None
        ),
        "accepted_tokens_distribution": {
            str(n + 1): json_float(share) for n, share in enumerate(shares)
        },
        "draft_time_share": json_float(draft / busy) if busy else None,
        "verify_time_share": json_float(verify / busy) if busy else None,
        "steps": int(counted.sum()),
        "sequence_steps": sequence_steps,
    }
