"""What-if studies: a base scenario swept over axes of field values and seeds.

* the study file itself (frozen, ``extra="forbid"``, every problem naming
  file:line:field) is configuration: its schema and loader are in
  :mod:`accelsim.config.study`;
* :mod:`~accelsim.study.plan`: axes expanded into runs with stable ids, and a preflight
  that checks every axis value against the base scenario before anything runs;
* :mod:`~accelsim.study.store`: the append-only JSON Lines result store (one complete
  line per finished run, fsynced; a torn last line after a kill is ignored);
* :mod:`~accelsim.study.executors`: the picklable worker function and the executors
  (a local process pool, or Dask through its ``concurrent.futures`` interface);
* :mod:`~accelsim.study.analysis`: Pareto frontiers and comparisons;
* :mod:`~accelsim.study.capacity`: the capacity searches (largest rate, fewest chips);
* :mod:`~accelsim.study.views`: rich tables for the commands.

Nothing here prints; the commands in :mod:`accelsim.commands.study` do.
"""
