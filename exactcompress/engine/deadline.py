"""Deadlines: ``time.monotonic()`` instants in seconds, ``None`` for no limit.

They never cross a process boundary as instants (clocks of other processes and machines differ): a worker
gets ``seconds_left`` and makes its own deadline with ``deadline_in``.
"""

from __future__ import annotations

import math
import time


def deadline_in(seconds: float | None) -> float | None:
    """The instant ``seconds`` from now; None (no limit) for None."""
    return None if seconds is None else time.monotonic() + seconds


def seconds_left(deadline: float | None) -> float:
    """Seconds until ``deadline`` (negative once it has passed); ``inf`` without one."""
    return math.inf if deadline is None else deadline - time.monotonic()


def expired(deadline: float | None) -> bool:
    """True once ``deadline`` has passed (never without one)."""
    return seconds_left(deadline) < 0
