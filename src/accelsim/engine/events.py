"""The one SimPy shortcut the fleets share: a bare scheduled callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import simpy
from simpy.events import NORMAL, Event


def call_at(env: simpy.Environment, delay: float, callback: Callable[[Any], None]) -> None:
    """Call ``callback`` after ``delay``: a bare, already-triggered event scheduled
    directly (what ``env.timeout`` does, without its checks and bookkeeping)."""
    event = Event.__new__(Event)
    event.env = env
    event.callbacks = [callback]
    event._ok = True
    event._value = None
    env.schedule(event, NORMAL, delay)
