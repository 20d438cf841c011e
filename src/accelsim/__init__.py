"""accelsim: a discrete-event performance model of inference serving on hypothetical chips.

The Python API (see the README, "Python API")::

    import accelsim

    result = accelsim.run("ranking-mtia-vs-gpu", overrides={"pools.gpu.count": 4}, seed=7)
    result.document["workloads"]["feed_gpu"]["latency_s"]["p99"]
    result.requests        # one row per request (pandas)
    result.pools           # one row per pool
    accelsim.explain("mtia-like-gen2", "dlrm-mlp-heavy", batch=256).ops
    accelsim.load_study("results/ranking-chip-batching")

The names are loaded on first use, so ``import accelsim`` (and the command line) stays
fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from accelsim.api import (
        Explanation,
        Result,
        explain,
        load_study,
        read_table,
        replicate_summary,
        run,
        sweep,
    )

__all__ = [
    "Explanation",
    "Result",
    "__version__",
    "explain",
    "load_study",
    "read_table",
    "replicate_summary",
    "run",
    "sweep",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from accelsim import api

        return getattr(api, name)
    raise AttributeError(f"module 'accelsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
