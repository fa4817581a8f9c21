"""Running independent proof work in parallel: the ``ParallelMap`` contract and its local default."""

from __future__ import annotations

import ctypes
import signal
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import get_context
from typing import Any, Callable, Sequence

#: prctl's option that sets the signal a process gets when its parent ends
PR_SET_PDEATHSIG = 1

ParallelMap = Callable[[Callable[..., Any], Sequence[tuple]], list]
"""``parallel_map(function, argument_tuples) -> [function(*arguments) for each tuple]``, run in parallel.

The engine passes only picklable arguments and module-level functions, and a deadline as seconds left.
Locally this is ``process_pool_map``; zoo jobs pass ``distributed.parallel.ray_parallel_map``.
"""


def process_pool_map(function: Callable[..., Any], argument_tuples: Sequence[tuple]) -> list:
    """The default ``ParallelMap``: one spawned process per argument tuple on this machine. When the caller is
    interrupted (Ctrl-C, or SIGTERM turned into it by the CLI) the processes are ended at once instead of being
    waited for, and a process whose parent has ended (killed outright) ends too."""
    pool = get_context("spawn").Pool(len(argument_tuples), initializer=_end_with_parent)
    try:
        results = pool.starmap(function, argument_tuples, chunksize=1)
    except BaseException:
        pool.terminate()
        raise
    pool.close()
    pool.join()
    return results


def _end_with_parent() -> None:
    """In a pool's process: ask Linux to send it SIGTERM when its parent ends (``PR_SET_PDEATHSIG``), so a killed
    run leaves no solver working on; elsewhere nothing."""
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux
        pass


def thread_map(function: Callable[..., Any], argument_tuples: Sequence[tuple]) -> list:
    """A ``ParallelMap`` of one thread per argument tuple in this process: for work that runs without the GIL
    (SCIP's ``optimizeNogil``), at no process start-up and with no arguments pickled. Interrupted, it does not
    wait for its threads (their SCIP solves end on the same Ctrl-C)."""
    pool = ThreadPoolExecutor(max_workers=len(argument_tuples), thread_name_prefix="exactcompress solves")
    try:
        futures = [pool.submit(function, *arguments) for arguments in argument_tuples]
        results = [future.result() for future in futures]
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results
