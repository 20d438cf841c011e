"""Prefix-caching figures of an LLM workload and pool (only where a pool caches).

Per workload, over the requests that arrived in the window: the prompt tokens their
sequences asked to prefill (at every admission: a preempted sequence asks again),
those a replica's prefix cache held, and the rest, computed. ``prefix_hit_rate`` is
held / asked, in tokens. Per pool, over the whole run: KV blocks evicted from the
caches to make room, and blocks cached at the end.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from accelsim.config.loader import ResolvedScenario
from accelsim.engine.records import LLMFleetRecords, LLMRecords


def caches(resolved: ResolvedScenario, workload: str) -> bool:
    """True when a pool that serves ``workload`` keeps a prefix cache."""
    return any(
        workload in pool.serves and pool.continuous_batching.prefix_cache is not None
        for pool in resolved.scenario.pools.values()
    )


def workload_prefix(rec: LLMRecords, in_window: np.ndarray) -> dict[str, Any]:
    asked = int(rec.prefill_requested_tokens[in_window].sum())
    held = int(rec.prefix_hit_tokens[in_window].sum())
    return {
        "prefix_hit_rate": held / asked if asked else None,
        "prefill_tokens_requested": asked,
        "prefill_tokens_computed": asked - held,
    }


def pool_prefix(
    resolved: ResolvedScenario, pool_name: str, records: LLMFleetRecords, replicas: list[int]
) -> dict[str, Any]:
    cache = resolved.scenario.pools[pool_name].continuous_batching.prefix_cache
    assert cache is not None
    infos = [records.replicas[i] for i in replicas]
    return {
        "block_tokens": cache.block_tokens,
        "evicted_blocks": sum(r.prefix_evicted_blocks for r in infos),
        "cached_blocks_at_end": sum(r.prefix_cached_blocks for r in infos),
    }
