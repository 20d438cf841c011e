"""CLI commands of individual features, registered on the main app by accelsim.cli.

Each module here defines ``register(app: typer.Typer) -> None``; keep heavy
imports (numpy, simpy, plotting, dask) inside the command functions so that
``accelsim --help`` stays fast. Shared helpers (``user_errors``,
``write_atomic``, ``emit_json``, and ``refuse_overwriting_inputs``, which every
command that writes calls before any work) live in :mod:`accelsim.commands.common`.
"""

from __future__ import annotations

from types import ModuleType

COMMAND_MODULES: list[ModuleType] = []

from accelsim.commands import study  # noqa: E402  (after COMMAND_MODULES: study imports common)

COMMAND_MODULES.append(study)

from accelsim.commands import validate  # noqa: E402

COMMAND_MODULES.append(validate)

from accelsim.commands import report  # noqa: E402

COMMAND_MODULES.append(report)

from accelsim.commands import calibrate  # noqa: E402

COMMAND_MODULES.append(calibrate)

from accelsim.commands import init  # noqa: E402

COMMAND_MODULES.append(init)

from accelsim.commands import plan  # noqa: E402

COMMAND_MODULES.append(plan)
