"""SIGTERM (a scheduler's stop) handled as Ctrl-C, at once even while C code holds the main thread.

Python runs a signal's handler in the main thread between bytecodes, so a SIGTERM that arrives while the main
thread is inside a SCIP solve (``optimizeNogil`` returns only when the solve ends) waited for that solve: a
per-neuron run took 191 s to stop. Python's own C-level handler also writes the signal's number to the
wakeup fd (``signal.set_wakeup_fd``); a daemon thread reading it sends the process a SIGINT, which a running SCIP
solve catches and ends on (``prove.stop.user_interrupt`` then raises KeyboardInterrupt), and which otherwise
raises KeyboardInterrupt in the main thread. The Python-level handler does the same where it runs first (or where
another library replaced the wakeup fd): whichever runs first acts, once.
"""

from __future__ import annotations

import os
import signal
import threading


class SigtermAsCtrlC:
    """Installs the handling above (``install``, from the main thread); ``terminated`` tells whether a SIGTERM came.

    Where SIGINT was ignored (a process started in the background), a SIGINT this handling sends itself still ends
    the run, and other SIGINTs stay ignored (except by a running SCIP solve, which catches them as it always does).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._terminated = False

    @property
    def terminated(self) -> bool:
        return self._terminated

    def install(self) -> None:
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            signal.signal(signal.SIGINT, self._on_sigint_when_ignored)
        signal.signal(signal.SIGTERM, lambda signum, frame: self._stop())
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        threading.Thread(target=self._watch, args=(read_end,), name="sigterm-watch", daemon=True).start()

    def _stop(self) -> None:
        """The first call sends this process a SIGINT; later calls do nothing."""
        with self._lock:
            if self._terminated:
                return
            self._terminated = True
        os.kill(os.getpid(), signal.SIGINT)

    def _watch(self, read_end: int) -> None:
        while True:
            signals = os.read(read_end, 512)
            if not signals:
                return
            if signal.SIGTERM in signals:
                self._stop()

    def _on_sigint_when_ignored(self, signum, frame) -> None:
        if self._terminated:
            raise KeyboardInterrupt
