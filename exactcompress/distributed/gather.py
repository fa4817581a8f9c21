"""The driver's side of a job on Ray: wait for its tasks with a live progress bar (done · failed · running), or
plain log lines where the console is not a terminal, turning a task that failed for good into a failed result
instead of an exception.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import ray
from ray.actor import ActorHandle
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..errors import StorageUnavailable
from ..progress_log import LogLines
from .progress import ProgressBoard

POLL_SECONDS = 0.5
#: on a console that is not a terminal, a line every this many seconds while no task finishes
HEARTBEAT_SECONDS = 300.0
Item = TypeVar("Item")
Result = TypeVar("Result")


def driver_board() -> ActorHandle:
    """A ``ProgressBoard`` on the driver's node, so losing a worker node never takes the job's display with it."""
    node = ray.get_runtime_context().get_node_id()
    return ProgressBoard.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote()


def failure_reason(error: ray.exceptions.RayError) -> str:
    """One line: the exception raised inside the task, or the system failure."""
    cause = getattr(error, "cause", None) or error
    return f"{type(cause).__name__}: {' '.join(str(cause).split())}"[:400]


def gather(
    pending: dict[ray.ObjectRef, Item],
    board: ActorHandle,
    *,
    label: str,
    console: Console | None,
    on_failure: Callable[[Item, str], Result],
    is_failed: Callable[[Result], bool],
    done_before: int = 0,
    storage_down: Callable[[], bool] | None = None,
    describe: Callable[[Result], str] = str,
) -> list[Result]:
    """Wait for every task in ``pending`` (its ref → its input); returns the results in completion order.

    A task that raised (retries exhausted, or an exception it was not retried for) gives
    ``on_failure(input, "task failed: <reason>")``. The bar (on ``console``; None: no bar) counts the tasks
    that have called ``board.start`` as running, and ``done_before`` items finished without a task as done.
    When a task reports a storage outage to ``board``, ``storage_down()`` checks the storage from here: if it is
    down, every pending task is cancelled and ``StorageUnavailable`` raised (what was committed stays valid; a
    new run resumes); if not, the job goes on. Kills ``board`` at the end. On a console that is not a terminal
    (a job's log file) the bar is replaced by a line per finished task, ``LABEL: describe(result) · done D ·
    failed F · running R (of TOTAL)``, and a line of the counts every HEARTBEAT_SECONDS while none finishes.
    """
    pending = dict(pending)
    results: list[Result] = []
    total = len(pending) + done_before
    log = LogLines(console) if console is not None and not console.is_terminal else None
    logged_at = 0.0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=console is None or log is not None, transient=False) as bar:
        progress = bar.add_task(label, total=total, completed=done_before)
        if log is not None:
            log(f"{label}: {len(pending)} tasks" + (f", {done_before} done before" if done_before else ""))
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
            done = ray.wait(list(pending), num_returns=len(pending), timeout=0)[0] if ready else []
            finished_before = len(results)
            for ref in done:
                item = pending.pop(ref)
                try:
                    results.append(ray.get(ref))
                except ray.exceptions.RayError as error:
                    results.append(on_failure(item, f"task failed: {failure_reason(error)}"))
            outage = ray.get(board.storage_outage.remote()) if storage_down is not None else None
            if outage is not None:
                if storage_down():
                    for ref in pending:
                        ray.cancel(ref, force=True)
                    ray.kill(board)
                    raise StorageUnavailable("storage", f"the job stopped: {outage} ({done_before + len(results)} "
                                             "models were done before; run it again to resume)")
                board.report_outage.remote(None)  # reachable again: the task's retry will do
            failed = sum(is_failed(result) for result in results)
            running = max(0, ray.get(board.count.remote()) - len(results))
            counts = f"done {done_before + len(results) - failed} · failed {failed} · running {running}"
            bar.update(progress, completed=done_before + len(results), description=counts)
            if log is not None:
                heads = [f"{describe(result)} · " for result in results[finished_before:]]
                if heads or log.seconds() - logged_at >= HEARTBEAT_SECONDS:
                    for head in heads or [""]:
                        log(f"{label}: {head}{counts} (of {total})")
                    logged_at = log.seconds()
    ray.kill(board)
    return results
