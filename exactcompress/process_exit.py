"""Ending a command-line process without the interpreter's teardown.

Once torch is imported, Python's own shutdown (destroying the modules and objects of every imported package)
takes ~0.45 s on the 2-core bench machine: a sixth of what a small network's ``compress`` spends outside the
engine. Nothing is written during it. ``end_process`` does the part of that shutdown that matters — the atexit
handlers (logging's flush, multiprocessing's joins, Ray's shutdown) and flushing Python's and C's standard
streams — and then ends the process. While another non-daemon Python thread is alive it exits normally
instead, because the interpreter would wait for that thread.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import sys
import threading
from typing import NoReturn


def exit_status(done: SystemExit) -> int:
    """The status a ``SystemExit`` gives the process, as Python computes it: None → 0, an int as it is, anything
    else is printed to stderr and gives 1."""
    if done.code is None:
        return 0
    if isinstance(done.code, int):
        return done.code
    print(done.code, file=sys.stderr)
    return 1


def others_running() -> bool:
    """Whether a non-daemon Python thread other than this one is alive (the interpreter would wait for it)."""
    current = threading.current_thread()
    return any(thread is not current and not thread.daemon and thread.is_alive() for thread in threading.enumerate())


def end_process(status: int) -> NoReturn:
    """End the process with ``status``: the atexit handlers, then Python's and C's output buffers, then
    ``os._exit``; a normal ``sys.exit`` while ``others_running()``."""
    if others_running():
        sys.exit(status)
    atexit._run_exitfuncs()  # the handlers the interpreter's shutdown would run; they are cleared once run
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: what shutdown would have flushed is lost there too
            pass
    ctypes.CDLL(None).fflush(None)  # C stdio buffers (SCIP's messages among them)
    os._exit(status)
