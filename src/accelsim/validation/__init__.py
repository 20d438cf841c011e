"""``accelsim validate``'s fidelity suite: the simulator against closed-form answers.

* :mod:`~accelsim.validation.checks`: the check registry, :func:`run_checks` and the
  checks themselves (queueing, Little's law, roofline, energy, LLM decode);
* :mod:`~accelsim.validation.formulas`: the closed forms (Pollaczek-Khinchine, Erlang C)
  and batch means, as pure functions;
* :mod:`~accelsim.validation.reference`: the reference chip, model and scenarios,
  built in memory (tests use them as fixtures too).

Checking configuration files (``accelsim validate --configs``) is in
:mod:`accelsim.config.files`.
"""

from accelsim.validation.checks import CHECKS, FULL, NOT_CHECKED, QUICK, run_checks

__all__ = ["CHECKS", "FULL", "NOT_CHECKED", "QUICK", "run_checks"]
