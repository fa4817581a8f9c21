"""Running independent proof work in parallel: the ``ParallelMap`` contract and its local default."""

from __future__ import annotations

from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from typing import Any, Callable, Sequence

ParallelMap = Callable[[Callable[..., Any], Sequence[tuple]], list]
"""``parallel_map(function, argument_tuples) -> [function(*arguments) for each tuple]``, run in parallel.

The engine passes only picklable arguments and module-level functions, and a deadline as seconds left.
Locally this is ``process_pool_map``; zoo jobs pass ``distributed.parallel.ray_parallel_map``.
"""


def process_pool_map(function: Callable[..., Any], argument_tuples: Sequence[tuple]) -> list:
    """The default ``ParallelMap``: one spawned process per argument tuple on this machine."""
    return _one_each(ProcessPoolExecutor(max_workers=len(argument_tuples), mp_context=get_context("spawn")),
                     function, argument_tuples)


def thread_map(function: Callable[..., Any], argument_tuples: Sequence[tuple]) -> list:
    """A ``ParallelMap`` of one thread per argument tuple in this process: for work that runs without the GIL
    (SCIP's ``optimizeNogil``), at no process start-up and with no arguments pickled."""
    return _one_each(ThreadPoolExecutor(max_workers=len(argument_tuples), thread_name_prefix="exactcompress solves"),
                     function, argument_tuples)


def _one_each(pool: Executor, function: Callable[..., Any], argument_tuples: Sequence[tuple]) -> list:
    """``function(*arguments)`` for every tuple on ``pool``, results in order; the pool is shut down after."""
    with pool:
        futures = [pool.submit(function, *arguments) for arguments in argument_tuples]
        return [future.result() for future in futures]
