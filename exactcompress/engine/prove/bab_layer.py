"""The open sign questions of one hidden layer, each answered by branch and bound (``bab.prove_sign``), fanned
out over workers like the per-neuron MILPs.

A question is a neuron and a sign: +1 asks "can g_i be positive?" (proved impossible: stably inactive), -1
"can g_i be negative?" (proved impossible: stably active). Every proof is a float64-checked bound
(``bab``); every witness is a box input whose float64 forward pass shows the sign, re-checked by the caller
(``witnesses.record``) before it counts.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import Mapping, MutableMapping, Sequence

import numpy as np
import torch

from ...errors import InputError
from ...schema import Device
from ...tolerances import BOUND_MARGIN, WITNESS_MARGIN
from ..bounds import LayerBounds
from ..deadline import deadline_in, seconds_left
from ..domain import Box
from ..network import Network
from ..progress import Progress, ignore
from ..torch_threads import torch_threads
from .bab import BabResult, SuspendedSearch, prove_sign, resume_sign
from .parallel import ParallelMap, process_pool_map


@dataclass(frozen=True)
class BabLayer:
    """Answers for one hidden layer of width ``w``.

    ``proved_inactive`` / ``proved_active`` (w,): the positive / negative sign was proved impossible.
    ``candidates`` (k, input_dim): witness inputs found (in the box). ``questions``, ``proved``,
    ``witnessed``, ``undecided``: counts; ``timed_out``: how many of the undecided ones their time limit (or
    the deadline) stopped; ``domains``: branch-and-bound domains bounded; ``seconds``: the
    questions' wall seconds added up (several run at once when fanned out). ``suspended``: the searches its
    deadlines stopped, by (neuron, sign), to resume later (only those that ran in this process).
    ``best_bounds``: for each question left undecided, by (neuron, sign), the best float64-valid bound ``B``
    on ``max sign * g_neuron`` over the box that its search reached (so ``g <= B``, or ``g >= -B``; finite
    ones only).
    """

    proved_inactive: np.ndarray
    proved_active: np.ndarray
    candidates: np.ndarray
    questions: int
    proved: int
    witnessed: int
    undecided: int
    domains: int
    seconds: float
    timed_out: int = 0
    suspended: Mapping[tuple[int, int], SuspendedSearch] = field(default_factory=dict)
    best_bounds: Mapping[tuple[int, int], float] = field(default_factory=dict)


def resolve_device(device: Device) -> str:
    """``"cuda"`` for ``"auto"`` when torch sees a GPU, else ``"cpu"``; an explicit choice is kept. InputError
    for ``"cuda"`` when torch sees no GPU."""
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda", "torch sees no CUDA device here; use --device auto or cpu")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def bab_chunk(network: Network, box: Box, bounds: Sequence[LayerBounds], layer: int, questions: np.ndarray,
              time_left: float | None, question_limit: float | None, device: str, threads: int = 1,
              progress: Progress = ignore, resume: MutableMapping[tuple[int, int], SuspendedSearch] | None = None,
              keep_suspended: bool = False, stop: threading.Event | None = None,
              suspended_budget: int | None = None, nearest_first: bool = False) -> BabLayer:
    """Answer ``questions`` (k, 2) rows (neuron, sign); one worker's share of ``bab_layer``.
    A question found in ``resume`` goes on from where its search stopped (taken out of ``resume`` as it starts, so
    that a search dropped below is freed); with ``keep_suspended`` the result
    holds the searches stopped this time (in another process they would have to be copied back: not kept), at
    most ``suspended_budget`` bytes of them together with those in ``resume`` still waiting to go on
    (``SuspendedSearch.nbytes``; None: no cap), enforced as each search stops: the smallest are kept, the others
    dropped at once (a dropped waiting one starts afresh), so their memory is freed during the round, not after
    it. A set ``stop`` ends the running searches like their deadline and starts no more (in this
    process only).

    ``time_left`` (seconds, not an instant: clocks of other processes differ) bounds the whole chunk,
    ``question_limit`` each question. ``threads`` questions are answered at once, each in a thread of this
    process taking the next question when it is done, in neuron order; with ``nearest_first``, questions new to
    this round first, then those going on from an earlier round, lowest bound first (the nearest to a proof: where
    a round's time runs out before its questions do, it goes to them; ``benchmarks/README.md``). torch runs every
    operation on its calling thread meanwhile (one intra-op thread, restored after). The batched products are
    small: threads within one operation only add synchronisation (d64-2x100-l1_0's 9 questions: 28 s on one thread,
    over 300 s with two intra-op threads on a busy 2-core machine), while two long searches at once bound 1.7-2x the
    domains per second of one on 2 cores; in ``auto``'s 2 s sweep threads settled nothing more
    (``benchmarks/README.md``). Each answer depends only on its question, so the result is the same for any
    ``threads``, apart from where time limits cut; each running search holds its own open domains (up to
    ``bab.MAX_POOL_BYTES``).
    """
    with torch_threads(1):
        return _answer(network, box, bounds, layer, questions, deadline_in(time_left), question_limit, device,
                       max(1, threads), progress, resume or {}, keep_suspended, stop, suspended_budget, nearest_first)


def _answer(network: Network, box: Box, bounds: Sequence[LayerBounds], layer: int, questions: np.ndarray,
            deadline: float | None, question_limit: float | None, device: str, threads: int, progress: Progress,
            resume: MutableMapping[tuple[int, int], SuspendedSearch], keep_suspended: bool,
            stop: threading.Event | None, suspended_budget: int | None, nearest_first: bool) -> BabLayer:
    width = network.hidden[layer].out_features
    proved_inactive, proved_active = np.zeros(width, bool), np.zeros(width, bool)
    weights = [hidden.weight for hidden in network.hidden[: layer + 1]]
    biases = [hidden.bias for hidden in network.hidden[: layer + 1]]
    below = [(bound.lower, bound.upper) for bound in bounds[:layer]]
    kept = _KeptSearches(suspended_budget if keep_suspended else None, resume)

    def answer(neuron: int, sign: int) -> BabResult | None:
        """The question's result, its stopped search moved to ``kept`` (with ``keep_suspended``); None when the
        deadline passed before it started."""
        left = seconds_left(deadline)
        if left <= 0 or (stop is not None and stop.is_set()):
            return None
        budget = left if question_limit is None else min(left, question_limit)
        search = kept.take((neuron, sign))  # then only this question refers to it
        if search is not None:
            result = resume_sign(search, deadline=time.monotonic() + budget, stop=stop)
        else:
            result = prove_sign(weights, biases, box.lower, box.upper, below, layer, neuron, sign,
                                margin=BOUND_MARGIN, witness_margin=WITNESS_MARGIN,
                                deadline=time.monotonic() + budget, device=device, seed=neuron, stop=stop)
        if result.suspended is not None:
            if keep_suspended:
                kept.add((neuron, sign), result.suspended)
            result = replace(result, suspended=None)
        return result

    keys = [(int(neuron), int(sign)) for neuron, sign in questions]
    if nearest_first:
        keys.sort(key=lambda key: resume[key].best_bound if key in resume else -math.inf)
    label = f"branch and bound, layer {layer}" + (f" ({threads} threads)" if threads > 1 and len(keys) > 1 else "")
    progress(label, 0, len(keys))
    with ThreadPoolExecutor(max_workers=min(threads, max(1, len(keys)))) as pool:
        futures = [pool.submit(answer, *key) for key in keys]  # taken in this order as threads come free
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                future.result()  # an error raises here
                progress(label, done, len(keys))
        except BaseException:
            pool.shutdown(cancel_futures=True)  # questions not started are dropped; running ones end by their limit
            raise
    candidates, domains, seconds, undecided, timed_out, best_bounds = [], 0, 0.0, 0, 0, {}
    for key, future in zip(keys, futures):  # in question order, whatever order they finished in
        neuron, sign = key
        result = future.result()
        if result is None:
            undecided, timed_out = undecided + 1, timed_out + 1
            continue
        domains, seconds = domains + result.domains, seconds + result.seconds
        if result.status == "proved":
            (proved_inactive if sign > 0 else proved_active)[neuron] = True
        elif result.status == "witness":
            candidates.append(box.clip(result.witness))
        else:
            undecided, timed_out = undecided + 1, timed_out + result.timed_out
            if math.isfinite(result.best_bound):
                best_bounds[key] = result.best_bound
    found = np.array(candidates).reshape(-1, network.input_dim)
    return BabLayer(proved_inactive, proved_active, found, len(keys), int(proved_inactive.sum() + proved_active.sum()),
                    len(candidates), undecided, domains, seconds, timed_out,
                    {key: kept.searches[key] for key in keys if key in kept.searches},
                    best_bounds)


class _KeptSearches:
    """Stopped searches kept for the next round and the earlier round's searches still ``waiting`` to go on (the
    caller's ``resume``, taken out by ``take``): at most ``budget`` bytes together (None: no cap). As each search
    stops, the largest of both are dropped until the rest fit (the smallest are kept; a question whose waiting
    search was dropped starts afresh). Thread-safe: questions start and stop in several threads at once."""

    def __init__(self, budget: int | None, waiting: MutableMapping[tuple[int, int], SuspendedSearch]):
        self.budget, self.waiting, self.searches, self._lock = budget, waiting, {}, threading.Lock()
        self._sizes: dict[tuple[bool, tuple[int, int]], int] = {  # (waiting?, key) -> bytes; a search is measured once
            (True, key): search.nbytes() for key, search in waiting.items()} if budget is not None else {}

    def take(self, key: tuple[int, int]) -> SuspendedSearch | None:
        """The waiting search of a question that starts now, out of ``waiting`` (None: it starts afresh)."""
        with self._lock:
            self._sizes.pop((True, key), None)
            return self.waiting.pop(key, None)

    def add(self, key: tuple[int, int], search: SuspendedSearch) -> None:
        with self._lock:
            self.searches[key] = search
            if self.budget is None:
                return
            self._sizes[(False, key)] = search.nbytes()  # a stopped search does not change
            held = sum(self._sizes.values())
            for waiting, other in sorted(self._sizes, key=self._sizes.__getitem__, reverse=True):
                if held <= self.budget:
                    break
                held -= self._sizes.pop((waiting, other))
                del (self.waiting if waiting else self.searches)[other]


def bab_layer(network: Network, box: Box, bounds: Sequence[LayerBounds], layer: int, *, ask_max: np.ndarray,
              ask_min: np.ndarray, deadline: float | None = None, question_limit: float | None = None,
              workers: int = 1, threads: int = 1, parallel_map: ParallelMap | None = None,
              device: Device = "auto", progress: Progress = ignore,
              resume: MutableMapping[tuple[int, int], SuspendedSearch] | None = None,
              stop: threading.Event | None = None, suspended_budget: int | None = None,
              nearest_first: bool = False) -> BabLayer:
    """Branch and bound on every asked question of hidden layer ``layer``.

    ``bounds[k]`` (k < layer): valid bounds on the layers below over the whole box (proven states applied:
    ``U <= 0`` where stably inactive, ``L >= 0`` where stably active). ``ask_max`` / ``ask_min`` bool (w,):
    ask whether g_i can be positive / negative. ``deadline``: a ``time.monotonic()`` instant for all;
    ``question_limit``: seconds per question. ``workers > 1`` runs interleaved chunks through
    ``parallel_map`` (default: spawned processes here), each chunk one question at a time; one chunk (``workers``
    1) runs here, ``threads`` questions at once (``bab_chunk``). ``progress``
    hears done/total questions (per question in this process; at start and end when chunks run elsewhere).
    ``resume``: searches stopped earlier, by (neuron, sign); they go on (taken out of it), and the result's ``suspended`` holds
    those stopped this time, when the questions run in this process (one chunk), at most ``suspended_budget`` bytes
    of them (``bab_chunk``, which also takes ``nearest_first``); chunks run elsewhere start afresh. ``stop``: a set
    event ends the questions in this process like the deadline (``bab_chunk``).
    """
    rows = [(neuron, sign) for neuron in range(len(ask_max)) for sign, asked in ((1, ask_max), (-1, ask_min))
            if asked[neuron]]
    questions = np.array(rows, dtype=np.int64).reshape(-1, 2)
    where = resolve_device(device)
    time_left = None if deadline is None else max(0.0, seconds_left(deadline))
    chunks = [chunk for chunk in (questions[offset::max(workers, 1)] for offset in range(max(workers, 1))) if len(chunk)]
    if len(chunks) <= 1 or time_left == 0:  # no pool of processes to start for nothing
        return bab_chunk(network, box, bounds, layer, questions, time_left, question_limit, where, threads=threads,
                         progress=progress, resume=resume, keep_suspended=True, stop=stop,
                         suspended_budget=suspended_budget, nearest_first=nearest_first)
    arguments = [(network, box, tuple(bounds), layer, chunk, time_left, question_limit, where) for chunk in chunks]
    label = f"branch and bound, layer {layer} ({len(chunks)} workers)"
    progress(label, 0, len(questions))
    parts = (parallel_map or process_pool_map)(bab_chunk, arguments)
    progress(label, len(questions), len(questions))
    return BabLayer(
        proved_inactive=np.logical_or.reduce([part.proved_inactive for part in parts]),
        proved_active=np.logical_or.reduce([part.proved_active for part in parts]),
        candidates=np.concatenate([part.candidates for part in parts]),
        questions=sum(part.questions for part in parts), proved=sum(part.proved for part in parts),
        witnessed=sum(part.witnessed for part in parts), undecided=sum(part.undecided for part in parts),
        domains=sum(part.domains for part in parts), seconds=sum(part.seconds for part in parts),
        timed_out=sum(part.timed_out for part in parts),
        best_bounds={key: bound for part in parts for key, bound in part.best_bounds.items()},
    )
