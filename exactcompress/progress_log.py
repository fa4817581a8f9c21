"""Progress as plain log lines, for a console that is not a terminal (a batch job's log file, a pipe).

rich draws no live bar there, so a long run would print nothing until it ends. These print plain lines instead,
each headed by the seconds since the work started: ``[   12.3 s] model.pt: branch and bound, layer 1: 3/34``.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable

from rich.console import Console

#: a counted stage prints its count at most this often (seconds), besides when it starts and when it is complete
LOG_EVERY_S = 30.0


class LogLines:
    """Writes ``[SECONDS s] TEXT`` lines on ``console``, SECONDS counted from construction."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic):
        self._console, self._clock = console, clock
        self._started = clock()

    def seconds(self) -> float:
        """Seconds since construction."""
        return self._clock() - self._started

    def __call__(self, text: str) -> None:
        self._console.print(f"[{self.seconds():8.1f} s] {text}", markup=False, highlight=False, soft_wrap=True)


class StageLines:
    """A ``Progress`` (``engine.progress``) as log lines ``NAME: MESSAGE``: one for each new message (a count
    that falls back, as when a round of questions starts again, counts as new), and for counted stages
    ``NAME: MESSAGE: DONE/TOTAL`` when the count is complete or ``every`` seconds after the last line.
    Thread-safe: one call at a time decides and prints."""

    def __init__(self, console: Console, name: str, every: float = LOG_EVERY_S,
                 clock: Callable[[], float] = time.monotonic):
        self._line = LogLines(console, clock)
        self._name, self._every = name, every
        self._lock = threading.Lock()
        self._message: str | None = None
        self._done: int | None = None
        self._printed_at = -math.inf

    def __call__(self, message: str, done: int | None = None, total: int | None = None) -> None:
        with self._lock:
            new = message != self._message or (done is not None and self._done is not None and done < self._done)
            moved = done is not None and done != self._done
            due = moved and (done == total or self._line.seconds() - self._printed_at >= self._every)
            self._message, self._done = message, done
            if not (new or due):
                return
            self._printed_at = self._line.seconds()
            self._line(f"{self._name}: {message}" + ("" if done is None else f": {done}/{total}"))
