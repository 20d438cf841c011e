"""``accelsim init``: write a commented starter scenario to edit and run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from accelsim.commands.common import stderr, user_errors

STARTER = """\
# A starter accelsim scenario: edit it, then `accelsim run {name}`.
# Every field is described by `accelsim schema scenario`; values may carry units
# ("2 ms", "10000 /s", "300 W"). `accelsim hardware list` and `accelsim workloads list`
# name the shipped chips and models; a chip or model may also be a path to a YAML file
# of your own (relative to this file).
description: One ranking model served by a pool of MTIA-like chips.

simulation:
  duration_s: 2         # measured time
  warmup_s: 0.5         # simulated first, then left out of every figure
  seed: 1               # same seed, same results

workloads:
  feed:                 # a name of your choice
    model: dlrm-dcn-large
    traffic: {{kind: poisson, rate_per_s: 5000 /s}}  # bursty, diurnal, trace, offline, closed_loop
    items_per_query: {{kind: lognormal, median: 200, sigma: 0.6, max: 2000}}
    sla: {{latency_s: 20 ms, percentile: 99}}

  # An LLM workload (and the pool below that serves it) reports TTFT and TPOT:
  # chat:
  #   kind: llm
  #   model: llm-dense-8b
  #   traffic: {{kind: poisson, rate_per_s: 2 /s}}
  #   prompt_tokens: {{kind: lognormal, median: 1000, sigma: 0.6, max: 8000}}
  #   output_tokens: {{kind: lognormal, median: 250, sigma: 0.5, max: 2000}}
  #   sla: {{ttft_s: 1 s, tpot_s: 50 ms, percentile: 99}}

pools:
  rank:
    chip: mtia-like-gen2
    count: 2
    serves: [feed]
    batching: {{max_batch_items: 512, max_wait_s: 1 ms}}
  # llm:
  #   chip: gpu-like-gen2-hbm
  #   count: 2
  #   serves: [chat]
  #   continuous_batching: {{max_batch_sequences: 64, max_batch_tokens: 4096}}

router:
  policy: join_shortest_queue   # or round_robin, least_work, shared_queue
"""


def register(app: typer.Typer) -> None:
    app.command()(init)


@user_errors
def init(
    path: Annotated[
        Path,
        typer.Argument(help="Where to write the scenario.", metavar="[PATH]", show_default=True),
    ] = Path("scenario.yaml"),
) -> None:
    """Write a commented starter scenario (a ranking workload on MTIA-like chips, and an
    LLM workload to uncomment) that runs as it is; never over an existing file."""
    from accelsim.config.loader import data_root
    from accelsim.errors import AccelsimError

    exists = f"{path}: already exists; choose another path (init never writes over a file)"
    if path.exists() or path.is_symlink():
        raise AccelsimError(exists)
    text = STARTER.format(name=path)
    schema = data_root() / "schemas" / "scenario.schema.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if schema.is_file():
            target = os.path.relpath(schema.resolve(), path.expanduser().resolve().parent)
            text = f"# yaml-language-server: $schema={target}\n" + text
        with path.open("x", encoding="utf-8") as handle:  # fails if it appeared meanwhile
            handle.write(text)
    except FileExistsError:
        raise AccelsimError(exists) from None
    except OSError as exc:
        raise AccelsimError(f"{path}: cannot write: {exc.strerror or exc}") from None
    stderr(f"wrote {path}; run it with: accelsim run {path}")
