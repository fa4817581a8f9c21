"""Ending SCIP solves from another thread (``StopSignal``): ``auto``'s spare thread's sign solves; and a user's
Ctrl-C that SCIP caught (``user_interrupt``)."""

from __future__ import annotations

import _thread
import threading
from contextlib import contextmanager

from pyscipopt import Model


class StopSignal:
    """A request from another thread to end the SCIP solves of one thread: ``set`` interrupts the SCIP solve running
    now (``Model.interruptSolve`` raises a flag that SCIP checks between LP iterations and nodes, as for its own
    CTRL-C handler; it stays raised until a solve reads it), and every later solve ends before it starts. SCIP
    refuses the call in the brief stage between presolving and solving: a caller that waits for the thread sets
    it again until the thread has ended. No callback into Python is involved: one per node or LP solve would wait
    for the GIL of a busy thread (up to 5 ms each: a 28 s solve took over 40 s beside a thread running Python)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._set = False
        self._solving: Model | None = None

    def set(self) -> None:
        with self._lock:
            self._set = True
            if self._solving is not None:
                self._interrupt(self._solving)

    @staticmethod
    def _interrupt(model: Model) -> None:
        try:
            model.interruptSolve()
        except Exception:  # SCIP raises plain Exception; a stage that refuses it (the caller may retry)
            pass

    def is_set(self) -> bool:
        return self._set

    @contextmanager
    def watching(self, model: Model):
        """While the body runs, ``set`` interrupts ``model`` (at once if it was set already: SCIP keeps the flag until
        a solve reads it)."""
        with self._lock:
            self._solving = model
            if self._set:
                self._interrupt(model)
        try:
            yield
        finally:
            with self._lock:
                self._solving = None


def user_interrupt() -> None:
    """Raise KeyboardInterrupt for a Ctrl-C that SCIP caught: SCIP handles SIGINT while it solves and ends the solve
    as "userinterrupt", so Python never sees the signal, and a solve not interrupted by this package must stop the
    run as Ctrl-C does elsewhere. From a helper thread the main thread is interrupted too."""
    if threading.current_thread() is not threading.main_thread():
        _thread.interrupt_main()
    raise KeyboardInterrupt
