"""Per-neuron MILP method (Serra et al. 2020): solve max g_i and min g_i of one hidden layer in SCIP.

Two modes:
- ``"optimize"``: solve each asked question to optimality; the dual bounds (widened by
  ``m_i + MILP_MARGIN * |d|``) are valid bounds, used as the next layer's big-M.
- ``"sign"``: stop each solve as soon as its sign question is settled: for ``max g_i``, SCIP stops
  when the dual bound is ``<= -m_i`` (a proof that the neuron is stably inactive) or when a
  solution with ``g_i >= SIGN_PRIMAL_THRESHOLD`` is found (a candidate witness of the active sign).
  ``min g_i`` mirrors this. Sign solves separate the ideal ReLU cuts of ``cuts`` at the root; ``optimize``
  (the 2020 baseline) stays plain big-M. ``aggressive_separation`` sets SCIP's own separators to aggressive
  (more root cuts: some questions proved at the root that default settings leave open), and every proof of
  such a solve must clear the wider margin ``MILP_AGGRESSIVE_RELATIVE_MARGIN * size``: with those cuts SCIP's
  floating-point errors were larger.

Soundness: a neuron is proved stable only from a dual bound of a solve that ended with a status whose
dual bound is valid (optimal, primal/dual/gap limit), beyond the neuron's margin ``m_i``
(``encoding.proof_margins``: at least MILP_MARGIN, more for rows whose terms add up to large values, where
SCIP's floating-point errors grow with them); a solve cut by the deadline or a ``StopSignal``
proves nothing and leaves the given bound. Solutions are only *candidates*: the caller confirms them by a
float64 pass.

SCIP solves without holding the GIL (``optimizeNogil``), so a solve in one thread runs beside branch and
bound's torch work in another (``analyze``'s companion solves); ``StopSignal`` ends such solves from another
thread.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from pyscipopt import SCIP_PARAMSETTING

from ...errors import SolverError
from ...tolerances import (
    MILP_AGGRESSIVE_RELATIVE_MARGIN,
    MILP_MARGIN,
    MILP_RELATIVE_MARGIN,
    SIGN_PRIMAL_THRESHOLD,
    WITNESS_MARGIN,
)
from ..bounds import LayerBounds
from ..deadline import deadline_in, seconds_left
from ..domain import Box
from ..network import Network
from ..progress import Progress, ignore
from .encoding import LayerModel, build_layer_model, proof_margins
from .parallel import ParallelMap, process_pool_map
from .stop import StopSignal, user_interrupt

#: SCIP's value for "no primal/dual limit"
_NO_LIMIT = 1e99
#: statuses after which SCIP's dual bound is a valid bound on the objective
_VALID_DUAL_STATUSES = frozenset({"optimal", "primallimit", "duallimit", "gaplimit"})
#: statuses of a solve cut short (deadline, solve limit or ``stop``): no bound, perhaps a solution
_CUT_STATUSES = frozenset({"timelimit", "userinterrupt"})
#: statuses that cannot occur on a non-empty box with bounded pre-activations
_IMPOSSIBLE_STATUSES = frozenset({"infeasible", "unbounded", "inforunbd"})

Mode = Literal["sign", "optimize"]


@dataclass(frozen=True)
class LayerSolve:
    """Results of the per-neuron MILPs of one hidden layer of width ``w`` over a box.

    ``upper``/``lower`` (w,): valid bounds on g_i: the widened dual bound (intersected with the given
    bound) where a solve gave one, else the given bound (±inf if none). ``proved_inactive`` (w,):
    dual bound of max g_i <= -m_i; ``proved_active`` (w,): dual bound of min g_i >= m_i (``m``: the layer's
    ``encoding.proof_margins``, at least MILP_MARGIN).
    ``candidates`` (k, input_dim): inputs of SCIP's solutions, clipped to the box, NOT yet confirmed.
    ``timed_out`` (w,): some asked question of the neuron was cut (or never started) by the deadline.
    ``solves``/``nodes``/``lp_iterations``: SCIP runs and their branch-and-bound nodes and LP
    iterations; ``seconds``: wall time of the whole call.
    """

    upper: np.ndarray
    lower: np.ndarray
    proved_inactive: np.ndarray
    proved_active: np.ndarray
    candidates: np.ndarray
    solves: int
    nodes: int
    lp_iterations: int
    seconds: float
    timed_out: np.ndarray


@dataclass(frozen=True)
class _Answer:
    """One question ``max g_i`` (sense +1) or ``min g_i`` (sense -1): its dual bound (None if invalid)."""

    dual_bound: float | None
    x: np.ndarray | None
    timed_out: bool
    solves: int
    nodes: int
    lp_iterations: int


def _given_bounds(bounds: Sequence[LayerBounds], layer: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    if len(bounds) > layer:
        return np.array(bounds[layer].lower, dtype=np.float64), np.array(bounds[layer].upper, dtype=np.float64)
    return np.full(width, -np.inf), np.full(width, np.inf)


def _run(layer_model: LayerModel, weights_in: np.ndarray, neuron: int, sense: int, primal_limit: float,
         dual_limit: float, deadline: float | None, box: Box,
         solve_limit: float | None,
         stop: StopSignal | None = None) -> tuple[str, float | None, np.ndarray | None, int, int]:
    """One SCIP solve; returns (status, dual bound in the original sense or None, clipped x or None, nodes, LP iters).
    A ``dual_limit`` (sign mode: ``-sense * margin``) is also stated as the hypothesis ``sense * g >= sense *
    dual_limit``; an infeasible model then returns ``dual_limit`` as its bound. That, and a dual bound at or beyond
    ``dual_limit`` (which says the same), counts only once SCIP has found a point of the model without the
    hypothesis (``_feasible_alone``; cut short: status "timelimit"; none: SolverError). Under the
    hypothesis a dual bound d holds only where the hypothesis can hold; elsewhere the hypothesis is false, so the
    bound returned is the weaker of d and ``dual_limit`` (for a max, max(d, dual_limit)): a solve stopped at its
    dual limit once returned a lower bound of 0.2295 on a neuron whose minimum is 0.0569, and the next layer's
    big-M used it. The proof test (beyond the margin) is the same either way.
    ``weights_in``: the neuron's weights from the layer below (``phase_free_binaries``). A set ``stop`` ends it
    with status "userinterrupt" (no bound)."""
    model = layer_model.model
    if stop is not None and stop.is_set():
        return "userinterrupt", None, None, 0, 0
    model.setParam("limits/primal", primal_limit)
    model.setParam("limits/dual", dual_limit)
    remaining = min(seconds_left(deadline), np.inf if solve_limit is None else solve_limit)
    model.setParam("limits/time", min(float(remaining), 1e20))
    model.setObjective(layer_model.g[neuron], "maximize" if sense > 0 else "minimize")
    source = f"MILP of hidden layer {layer_model.layer} neuron {neuron}"
    relaxed = phase_free_binaries(layer_model, weights_in, sense)
    for binary in relaxed:
        model.chgVarType(binary, "CONTINUOUS")
    # sign mode states the hypothesis being refuted (g >= -margin for max, g <= margin for min): SCIP's
    # propagation then tightens earlier neurons under it, and an infeasible model is the proof
    hypothesis = (model.addCons(sense * layer_model.g[neuron] >= sense * dual_limit, name="hypothesis")
                  if dual_limit != _NO_LIMIT else None)
    try:
        try:
            with nullcontext() if stop is None else stop.watching(model):
                model.optimizeNogil()
        except Exception as error:  # SCIP raises plain Exception, e.g. "SCIP: error in LP solver!"
            raise SolverError(source, f"SCIP failed: {error}") from None
        status = model.getStatus()
        if status == "userinterrupt" and not (stop is not None and stop.is_set()):  # the user's Ctrl-C
            user_interrupt()
        counts = int(model.getNNodes()), int(model.getNLPIterations())
        refuted = hypothesis is not None and status == "infeasible"  # no input reaches the hypothesis
        if status in _IMPOSSIBLE_STATUSES and not refuted:
            raise SolverError(source, f"SCIP reports it {status}; the box is non-empty, so the given bounds or the "
                              "model are wrong")
        if status not in _VALID_DUAL_STATUSES and status not in _CUT_STATUSES and not refuted:
            raise SolverError(source, f"SCIP ended with status '{status}'; no bound can be trusted")
        dual = float(model.getDualbound()) if status in _VALID_DUAL_STATUSES else None
        if dual is not None and model.isInfinity(abs(dual)):
            dual = None
        if dual is not None and hypothesis is not None:  # see below
            dual = sense * max(sense * dual, sense * dual_limit)
        x = None
        if model.getNSols() > 0:
            solution = model.getBestSol()
            x = box.clip(np.array([solution[var] for var in layer_model.x], dtype=np.float64))
    finally:
        model.freeTransform()
        if hypothesis is not None:
            model.delCons(hypothesis)
        for binary in relaxed:
            model.chgVarType(binary, "BINARY")
    if x is not None and not relaxed and not layer_model.found_feasible:  # a point of the model itself (with
        layer_model.found_feasible.append(True)  # binaries relaxed, only of a relaxation: that shows nothing)
    # a dual bound at the hypothesis's limit says as much as an infeasible model: no input reaches the hypothesis
    proves = refuted or (hypothesis is not None and dual is not None and sense * dual <= sense * dual_limit)
    if not proves:
        return status, dual, x, *counts
    remaining = min(seconds_left(deadline), np.inf if solve_limit is None else solve_limit)
    feasible = _feasible_alone(layer_model, remaining, stop)  # a proof only where the model alone has a point
    if feasible is None:
        return "timelimit", None, None, *counts
    if not feasible:
        raise SolverError(source, "SCIP reports the model infeasible without a hypothesis too, though the box's "
                          "centre satisfies it: its numerics fail on this model, so no proof is taken from it")
    return ("optimal", dual_limit, None, *counts) if refuted else (status, dual, x, *counts)


def _feasible_alone(layer_model: LayerModel, seconds: float, stop: StopSignal | None) -> bool | None:
    """Whether SCIP finds a point of ``layer_model`` without any hypothesis: True, False (SCIP says infeasible), or
    None (cut by its ``seconds`` or ``stop``: nothing shown). Solved once per model, then remembered in
    ``layer_model.found_feasible``. An infeasible model under a hypothesis is a proof only if the model alone is
    feasible, as it is in exact arithmetic (the box's centre satisfies it); SCIP's numerics once made a whole
    model infeasible (``tolerances.SCIP_BOUND_PAD``)."""
    if layer_model.found_feasible:
        return True
    model = layer_model.model
    model.setParam("limits/primal", _NO_LIMIT)
    model.setParam("limits/dual", _NO_LIMIT)
    model.setParam("limits/time", min(float(seconds), 1e20))
    model.setParam("limits/solutions", 1)
    try:
        try:
            with nullcontext() if stop is None else stop.watching(model):
                model.optimizeNogil()
        except Exception as error:  # SCIP raises plain Exception, e.g. "SCIP: error in LP solver!"
            raise SolverError(f"MILP of hidden layer {layer_model.layer}", f"SCIP failed: {error}") from None
        status, found = model.getStatus(), model.getNSols() > 0
    finally:
        model.freeTransform()
        model.setParam("limits/solutions", -1)
    if status == "userinterrupt" and not (stop is not None and stop.is_set()):
        user_interrupt()
    if found:
        layer_model.found_feasible.append(True)
        return True
    return False if status == "infeasible" else None


def phase_free_binaries(layer_model: LayerModel, weights_in: np.ndarray, sense: int) -> list:
    """Binaries of the layer below whose phase cannot matter to ``max`` (sense +1) / ``min`` (-1) of
    ``g_j = sum_i weights_in[i] * relu(g_i) + b_j``: those with ``sense * weights_in[i] <= 0``.

    Why they can be continuous in [0, 1]: then neuron i's big-M rows are its triangle relaxation
    (``h_i >= 0``, ``h_i >= g_i``, ``h_i`` below the chord), which contains ``relu(g_i)``, so the relaxed
    optimum is at least the exact one (its dual bound stays a valid bound). Conversely, from any relaxed
    solution, lowering each such ``h_i`` to ``relu(g_i)`` keeps every row feasible (``h_i`` of the layer
    below feeds only ``g`` of this, the last encoded, layer) and changes the objective by
    ``sense * weights_in[i] * (relu(g_i) - h_i) >= 0``: the exact optimum is at least the relaxed one. So
    the two optima are equal, a relaxed solution's ``x`` reaches at least the same objective in the
    network, and each question branches only on the ReLUs whose phase can help it.
    """
    return [binary for binary, weight in zip(layer_model.z_below, weights_in)
            if binary is not None and sense * weight <= 0.0]


def _ask(layer_model: LayerModel, network: Network, box: Box, neuron: int, sense: int, mode: Mode, margin: float,
         deadline: float | None, solve_limit: float | None, stop: StopSignal | None = None) -> _Answer:
    """Answer one question; in sign mode rerun without the primal limit if its solution fails the float64 check.
    ``margin``: the neuron's proof margin (a sign solve stops once its dual bound is beyond ``-margin``)."""
    if seconds_left(deadline) <= 0:
        return _Answer(None, None, True, 0, 0, 0)
    primal = sense * SIGN_PRIMAL_THRESHOLD if mode == "sign" else _NO_LIMIT
    dual = -sense * margin if mode == "sign" else _NO_LIMIT
    weights_in = network.hidden[layer_model.layer].weight[neuron]
    status, bound, x, nodes, iterations = _run(layer_model, weights_in, neuron, sense, primal, dual, deadline, box,
                                               solve_limit, stop)
    solves = 1
    if status == "primallimit" and not _shows_sign(network, layer_model.layer, neuron, sense, x):
        if seconds_left(deadline) <= 0 or (stop is not None and stop.is_set()):
            return _Answer(bound, x, True, solves, nodes, iterations)
        status, bound, x, more_nodes, more_iterations = _run(layer_model, weights_in, neuron, sense, _NO_LIMIT, dual,
                                                             deadline, box, solve_limit, stop)
        solves, nodes, iterations = 2, nodes + more_nodes, iterations + more_iterations
    return _Answer(bound, x, status in _CUT_STATUSES, solves, nodes, iterations)


def _check_bounds_hold(network: Network, box: Box, bounds: Sequence[LayerBounds], layer: int) -> None:
    """SolverError unless the pre-activations of the box's centre lie within ``bounds`` of the layers below
    ``layer``. Valid bounds hold everywhere in the box; wrong ones (a bug) could make a model infeasible, and
    a sign solve reads an infeasible model under its hypothesis as a proof, so this is checked first."""
    centre = (box.lower + box.upper) / 2
    for below, (g, bound) in enumerate(zip(network.preactivations(centre[None, :])[:layer], bounds[:layer])):
        outside = (g[0] < bound.lower - 1e-9 * (1 + np.abs(g[0]))) | (g[0] > bound.upper + 1e-9 * (1 + np.abs(g[0])))
        if outside.any():
            raise SolverError(f"bounds of hidden layer {below}", f"exclude the box centre at neuron "
                              f"{int(np.flatnonzero(outside)[0])}: the model would be infeasible; the bounds are wrong")


def _shows_sign(network: Network, layer: int, neuron: int, sense: int, x: np.ndarray | None) -> bool:
    if x is None:
        return False
    return bool(sense * network.preactivations(x[None, :])[layer][0, neuron] > WITNESS_MARGIN)


def _widen(bound: float, sense: int, margin: float) -> float:
    """A dual bound made a valid bound on g: moved outward by the neuron's proof margin plus MILP_MARGIN * |bound|."""
    return bound + sense * (margin + MILP_MARGIN * abs(bound))


def solve_chunk(network: Network, box: Box, bounds: Sequence[LayerBounds], layer: int, ask_max: np.ndarray,
                ask_min: np.ndarray, mode: Mode, time_left: float | None, solve_limit: float | None,
                aggressive_separation: bool = False) -> LayerSolve:
    """One worker's share of ``solve_layer``; the time left travels in seconds (clocks of other machines differ)."""
    deadline = deadline_in(time_left)
    return _solve_in_process(network, box, bounds, layer, ask_max, ask_min, mode, deadline, solve_limit,
                             aggressive_separation=aggressive_separation)


def _solve_in_process(network: Network, box: Box, bounds: Sequence[LayerBounds], layer: int,
                      ask_max: np.ndarray, ask_min: np.ndarray, mode: Mode, deadline: float | None,
                      solve_limit: float | None = None, progress: Progress = ignore,
                      stop: StopSignal | None = None, aggressive_separation: bool = False) -> LayerSolve:
    start = time.monotonic()
    width = network.hidden[layer].out_features
    lower, upper = _given_bounds(bounds, layer, width)
    proved_inactive = np.zeros(width, dtype=bool)
    proved_active = np.zeros(width, dtype=bool)
    timed_out = np.zeros(width, dtype=bool)
    candidates: list[np.ndarray] = []
    solves = nodes = iterations = 0
    asked = np.flatnonzero(ask_max | ask_min)
    layer_model = margins = None
    label, total, done = f"per-neuron MILPs, layer {layer}", int(ask_max.sum() + ask_min.sum()), 0
    progress(label, done, total)
    try:
        for neuron in asked:
            for sense, wanted in ((1, ask_max[neuron]), (-1, ask_min[neuron])):
                if not wanted:
                    continue
                if layer_model is None and seconds_left(deadline) > 0:
                    _check_bounds_hold(network, box, bounds, layer)
                    layer_model = build_layer_model(network, box, bounds, layer, ideal_cuts=mode == "sign")
                    if aggressive_separation:
                        layer_model.model.setSeparating(SCIP_PARAMSETTING.AGGRESSIVE)
                    margins = proof_margins(network, box, bounds, layer, MILP_AGGRESSIVE_RELATIVE_MARGIN
                                            if aggressive_separation else MILP_RELATIVE_MARGIN)
                answer = (_Answer(None, None, True, 0, 0, 0) if layer_model is None
                          else _ask(layer_model, network, box, neuron, sense, mode, margins[neuron], deadline,
                                    solve_limit, stop))
                solves, nodes = solves + answer.solves, nodes + answer.nodes
                iterations += answer.lp_iterations
                done += 1
                progress(label, done, total)
                timed_out[neuron] |= answer.timed_out
                if answer.x is not None:
                    candidates.append(answer.x)
                if answer.timed_out or answer.dual_bound is None:
                    continue
                if sense > 0:
                    upper[neuron] = min(upper[neuron], _widen(answer.dual_bound, 1, margins[neuron]))
                    proved_inactive[neuron] = answer.dual_bound <= -margins[neuron]
                else:
                    lower[neuron] = max(lower[neuron], _widen(answer.dual_bound, -1, margins[neuron]))
                    proved_active[neuron] = answer.dual_bound >= margins[neuron]
    finally:  # its ideal-cut separator and the model refer to each other: free SCIP now, not at a later gc
        if layer_model is not None:
            layer_model.model.free()
    found = np.unique(np.array(candidates), axis=0) if candidates else np.empty((0, network.input_dim))
    return LayerSolve(upper=upper, lower=lower, proved_inactive=proved_inactive, proved_active=proved_active,
                      candidates=found, solves=solves, nodes=nodes, lp_iterations=iterations,
                      seconds=time.monotonic() - start, timed_out=timed_out)


def _merge(parts: list[LayerSolve], chunks: list[np.ndarray], seconds: float) -> LayerSolve:
    """Combine per-chunk results: each neuron's entries come from the chunk that asked about it."""
    merged = {name: getattr(parts[0], name).copy() for name in ("upper", "lower", "proved_inactive", "proved_active", "timed_out")}
    for part, neurons in zip(parts, chunks):
        for name, values in merged.items():
            values[neurons] = getattr(part, name)[neurons]
    candidates = np.concatenate([part.candidates for part in parts])
    return LayerSolve(candidates=np.unique(candidates, axis=0) if len(candidates) else candidates,
                      solves=sum(p.solves for p in parts), nodes=sum(p.nodes for p in parts),
                      lp_iterations=sum(p.lp_iterations for p in parts), seconds=seconds, **merged)


def solve_layer(network: Network, box: Box, bounds: Sequence[LayerBounds], layer: int, *, ask_max: np.ndarray,
                ask_min: np.ndarray, mode: Mode, deadline: float | None = None, workers: int = 1,
                solve_limit: float | None = None, parallel_map: ParallelMap | None = None,
                progress: Progress = ignore, stop: StopSignal | None = None,
                aggressive_separation: bool = False) -> LayerSolve:
    """Solve ``max g_i`` where ``ask_max[i]`` and ``min g_i`` where ``ask_min[i]`` for hidden layer ``layer``.

    ``bounds[k]`` (k < layer) are valid bounds on the layers below (big-M); ``bounds[layer]``, if given,
    is the current bound on this layer (kept where no solve improves it). ``ask_max``/``ask_min``: bool
    (width,). ``deadline``: a ``time.monotonic()`` instant; each solve gets the time left as SCIP's time
    limit. ``workers > 1`` solves interleaved chunks of the asked neurons through ``parallel_map`` (default:
    spawned processes here; the zoo job passes Ray tasks), each given the seconds left. ``solve_limit`` (seconds) caps each
    single solve as well; a question cut by it counts as ``timed_out`` like one cut by the deadline, and so does
    one that ``stop`` interrupted (in this process only: ``workers`` 1). Raises SolverError if SCIP
    fails, reports the model infeasible/unbounded or ends with a status whose bound cannot be trusted.
    ``progress`` hears done/total questions (after each one in this process; at start and end when the chunks run elsewhere).
    ``aggressive_separation``: SCIP's separators at their aggressive setting, proofs beyond the wider margins
    (``proof_margins`` with MILP_AGGRESSIVE_RELATIVE_MARGIN; module docstring).
    """
    if mode not in ("sign", "optimize"):
        raise ValueError(f"mode must be 'sign' or 'optimize', got {mode!r}")
    width = network.hidden[layer].out_features
    ask_max = np.asarray(ask_max, dtype=bool).reshape(-1)
    ask_min = np.asarray(ask_min, dtype=bool).reshape(-1)
    if ask_max.shape != (width,) or ask_min.shape != (width,):
        raise ValueError(f"ask_max/ask_min must have shape ({width},), got {ask_max.shape} and {ask_min.shape}")
    bounds = tuple(bounds)
    asked = np.flatnonzero(ask_max | ask_min)
    chunks = [chunk for chunk in (asked[offset::max(workers, 1)] for offset in range(max(workers, 1))) if len(chunk)]
    if len(chunks) <= 1 or seconds_left(deadline) <= 0:  # no pool of processes to start for nothing
        return _solve_in_process(network, box, bounds, layer, ask_max, ask_min, mode, deadline, solve_limit, progress,
                                 stop, aggressive_separation)
    start = time.monotonic()
    time_left = None if deadline is None else max(0.0, seconds_left(deadline))
    argument_tuples = []
    for chunk in chunks:
        mine = np.zeros(width, dtype=bool)
        mine[chunk] = True
        argument_tuples.append((network, box, bounds, layer, ask_max & mine, ask_min & mine, mode, time_left, solve_limit,
                                aggressive_separation))
    label, total = f"per-neuron MILPs, layer {layer} ({len(chunks)} workers)", int(ask_max.sum() + ask_min.sum())
    progress(label, 0, total)
    parts = (parallel_map or process_pool_map)(solve_chunk, argument_tuples)
    progress(label, total, total)
    return _merge(parts, chunks, time.monotonic() - start)
