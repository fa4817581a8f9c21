"""Single MILP over the whole network, harvesting witnesses inside one SCIP solve (Serra et al. 2021).

Model: inputs ``x`` in the box, every hidden layer in big-M form from the given valid bounds; neurons
already settled (the given masks, or bounds ``U <= 0`` / ``L >= 0``) enter linearly without a binary.
Each open neuron-sign (a *state*) gets a binary with the margin semantics of the per-neuron method (``m_i``:
the neuron's ``encoding.proof_margins``, at least MILP_MARGIN):

- ``p_i`` ("can be active", neuron without a positive witness): ``p_i = 1 => g_i >= -m_i``,
  i.e. ``g_i >= -m_i + (L_i + m_i)(1 - p_i)``;
- ``q_i`` ("can be inactive", neuron without a negative witness): ``q_i = 1 => g_i <= m_i``,
  i.e. ``g_i <= m_i + (U_i - m_i)(1 - q_i)``.

The objective is ``max sum p + sum q``. A dual bound below 1 proves that no input reaches
``g_i >= -m_i`` for any still-open ``p_i`` (stably inactive, the same proof as a per-neuron
dual bound ``<= -m_i``) nor ``g_i <= m_i`` for any still-open ``q_i`` (stably active).
No ``p_i <= z_i`` link is added: ``z_i = 1`` forces ``g_i >= 0``, so it would turn the proof into
"no input has ``g_i >= 0``" and claim neurons whose maximum lies in ``(-m_i, 0)``.

Harvesting (one solve): every point SCIP looks at -- candidate solutions (check), LP solutions of the
cut loop (separation) and of each node (heuristic, enforcement), pseudo solutions -- has its ``x``
clipped to the box and evaluated by the float64 forward pass of the original network
(``witnesses.record``); MILP values of z/p/q are never trusted. A witnessed state has its binary fixed
to 0 globally (in propagation, separation or enforcement). Candidates with any state binary at 1 are
rejected, so the primal bound stays 0 and cannot stop the solve early. An integral LP solution claiming
a state that the forward pass does not confirm (``g_i`` at its ``x`` lies in the tolerance band) is
split: one child demands ``g_i >= WITNESS_TARGET`` (``<= -WITNESS_TARGET`` for q), where a solution is
a confirmable witness; the other keeps the band and fixes the binary to 0 there. A state given up in
any subtree is *ambiguous* unless witnessed: never proven by this solve.

SCIP features that could drop feasible points without a proof are off: symmetry handling, weak and
strong dual reductions (off in every model here, ``encoding.new_model``) and component presolving (the
harvest fixes change the problem during the solve). A Python exception in a plugin interrupts the solve and
is raised as ``SolverError``; so are SCIP failures and statuses other than optimal, dual limit and time limit.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from pyscipopt import (
    SCIP_EVENTTYPE,
    SCIP_HEURTIMING,
    SCIP_LPSOLSTAT,
    SCIP_PROPTIMING,
    SCIP_RESULT,
    Conshdlr,
    Eventhdlr,
    Heur,
    Model,
    Variable,
)

from ...errors import SolverError, SoundnessError
from ...tolerances import SIGN_PRIMAL_THRESHOLD
from ..bounds import LayerBounds
from ..deadline import seconds_left
from ..domain import Box
from ..network import Network
from ..witnesses import WitnessSet, record
from .encoding import add_preactivations, add_relus, check_scale, new_model, proof_margins
from .stop import user_interrupt

#: the witness-side child of an ambiguity branch demands ``sign * g_i >= WITNESS_TARGET``: far enough
#: above WITNESS_MARGIN that the float64 pass confirms any solution there despite SCIP's tolerances
WITNESS_TARGET = SIGN_PRIMAL_THRESHOLD
#: a state given up this many times (integral LP points claiming it that no float64 pass confirms) is abandoned:
#: its binary is fixed to 0 globally and it stays open (a state whose extreme lies in the tolerance band is given up
#: at node after node; without this the solve ran to its limit on it, 23,158 nodes in 10 s on a 30-neuron net)
ABANDON_AFTER_GIVE_UPS = 20
#: SCIP stops once the dual bound of ``max sum p + sum q`` is <= this (the objective is integral)
DUAL_LIMIT = 0.5
#: at most this many (seconds, dual bound) points are kept in ``dual_trace``
TRACE_POINTS = 200
#: check/enforcement/separation priority below every SCIP constraint handler: all else is checked first
_LOWEST_PRIORITY = -(2**29)
_STATUSES_WITH_VALID_DUAL = frozenset({"optimal", "duallimit"})


@dataclass(frozen=True)
class SingleMilpResult:
    """Outcome of one single-MILP solve over a box.

    ``proved_inactive`` / ``proved_active``: per hidden layer, bool (width,): newly proven stably inactive /
    active by this solve. A neuron-sign given up without a witness (its extreme pre-activation lies in the
    tolerance band as far as this solve saw) is neither proven nor witnessed.
    ``witnesses``: the input set plus everything harvested. ``finished``: the dual bound (< 1) proved every
    remaining state. ``solutions_harvested``: candidate solutions checked; ``lp_points_harvested``:
    LP/pseudo/heuristic points evaluated; ``states_fixed``: states taken out of the objective (witnessed
    during the solve, or given up); ``open_states``: state binaries created; ``seconds``: wall time of the
    call; ``dual_trace``: (seconds since the call started, dual bound) pairs, at most ``TRACE_POINTS``.
    """

    proved_inactive: tuple[np.ndarray, ...]
    proved_active: tuple[np.ndarray, ...]
    witnesses: WitnessSet
    finished: bool
    solutions_harvested: int
    lp_points_harvested: int
    states_fixed: int
    open_states: int
    nodes: int
    lp_iterations: int
    seconds: float
    dual_trace: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class _States:
    """The open neuron-signs: hidden layer, neuron and sign (+1: p, -1: q) as int arrays (n,)."""

    layer: np.ndarray
    neuron: np.ndarray
    sign: np.ndarray

    def __len__(self) -> int:
        return int(self.layer.size)

    def witnessed(self, witnesses: WitnessSet) -> np.ndarray:
        """Bool (n,): the state has a witness in ``witnesses``."""
        return witnesses.witnessed(self.layer, self.neuron, self.sign)


@dataclass(frozen=True)
class _Encoding:
    """Variables of the model: inputs, per hidden layer g/h/z (h, z: None where not a variable), state binaries."""

    model: Model
    x: tuple[Variable, ...]
    g: tuple[tuple[Variable, ...], ...]
    h: tuple[tuple, ...]
    z: tuple[tuple, ...]
    binaries: tuple[Variable, ...]


def _open_states(witnesses: WitnessSet, settled: Sequence[LayerBounds]) -> _States:
    rows = []
    for layer, layer_bounds in enumerate(settled):
        unsettled = (layer_bounds.upper > 0.0) & (layer_bounds.lower < 0.0)
        for sign, found in ((1, witnesses.positive[layer]), (-1, witnesses.negative[layer])):
            for neuron in np.flatnonzero(unsettled & (found < 0)):
                rows.append((layer, neuron, sign))
    table = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return _States(table[:, 0], table[:, 1], table[:, 2])


def _build(network: Network, box: Box, settled: Sequence[LayerBounds], states: _States) -> _Encoding:
    check_scale(network, box, settled, len(network.hidden), "single MILP")
    model = new_model("single_milp")
    model.setParam("misc/usesymmetry", 0)  # (dual reductions are off in every model: new_model)
    model.setParam("constraints/components/maxprerounds", 0)  # would solve parts in sub-SCIPs without harvesting
    model.setParam("limits/dual", DUAL_LIMIT)
    x = [model.addVar(f"x{j}", vtype="C", lb=float(box.lower[j]), ub=float(box.upper[j])) for j in range(box.dim)]
    inputs: list = list(x)
    g_layers, h_layers, z_layers = [], [], []
    last = len(network.hidden) - 1
    for k, affine in enumerate(network.hidden):
        g = add_preactivations(model, f"l{k}", affine.weight, affine.bias, inputs,
                                settled[k].lower, settled[k].upper)
        h, z = add_relus(model, f"l{k}", g, settled[k]) if k < last else ([], [])
        g_layers.append(tuple(g))
        h_layers.append(tuple(h))
        z_layers.append(tuple(z))
        inputs = h
    margins = [proof_margins(network, box, settled, k) for k in range(len(network.hidden))]
    binaries = []
    for layer, neuron, sign in zip(states.layer, states.neuron, states.sign):
        g, margin = g_layers[layer][neuron], float(margins[layer][neuron])
        low, up = float(settled[layer].lower[neuron]), float(settled[layer].upper[neuron])
        if not (np.isfinite(low) and np.isfinite(up)):
            raise ValueError(f"hidden layer {layer} neuron {neuron}: the state link needs finite bounds, "
                             f"got [{low}, {up}]")
        name = f"l{layer}_{'p' if sign > 0 else 'q'}{neuron}"
        binary = model.addVar(name, vtype="B", obj=1.0)
        if sign > 0:
            model.addCons(g >= -margin + (low + margin) * (1 - binary), name=f"{name}_link")
        else:
            model.addCons(g <= margin + (up - margin) * (1 - binary), name=f"{name}_link")
        # bound changes during the solve go to these variables: keep them out of (multi-)aggregations
        for var in (binary, g):
            model.markDoNotAggrVar(var)
            model.markDoNotMultaggrVar(var)
        # branch on states before ReLU binaries: a state at 0 leaves the objective of its subtree (measured
        # 1.1-2.8x faster to a finished proof on 64-input [50, 50] nets)
        model.chgVarBranchPriority(binary, 1)
        binaries.append(binary)
    model.setMaximize()
    return _Encoding(model, tuple(x), tuple(g_layers), tuple(h_layers), tuple(z_layers), tuple(binaries))


class _Harvest:
    """Mutable bookkeeping of one solve, shared by its plugins (never outlives ``solve_network``)."""

    def __init__(self, network: Network, box: Box, witnesses: WitnessSet, states: _States, encoding: _Encoding,
                 start: float) -> None:
        self.network, self.box, self.states, self.encoding, self.start = network, box, states, encoding, start
        self.witnesses = witnesses
        self.seen = states.witnessed(witnesses)
        self.fixed = np.zeros(len(states), dtype=bool)  # binary fixed to 0 globally (witnessed or abandoned)
        self.lost = np.zeros(len(states), dtype=bool)  # binary fixed to 0 in some subtree without a witness
        self.give_ups = np.zeros(len(states), dtype=np.int64)
        self.abandoned = np.zeros(len(states), dtype=bool)  # given up ABANDON_AFTER_GIVE_UPS times: lost everywhere
        self.solutions = 0
        self.lp_points = 0
        self.trace: list[tuple[float, float]] = []
        self.error: BaseException | None = None
        self._transformed: dict[int, Variable] = {}

    # -- reading points ---------------------------------------------------------------------------
    def harvest(self, model: Model, solution) -> None:
        """Record the clipped ``x`` of ``solution`` (None: the current LP/pseudo solution) as witness candidate."""
        x = np.array([model.getSolVal(solution, var) for var in self.encoding.x], dtype=np.float64)
        if not np.all(np.isfinite(x)):
            return
        updated = record(self.network, self.witnesses, self.box.clip(x)[None, :])
        if updated is not self.witnesses:
            self.witnesses = updated
            self.seen = self.states.witnessed(updated)

    def claimed(self, model: Model, solution) -> np.ndarray:
        """Bool (n,): the state's binary is > 0.5 in ``solution`` (None: the current LP/pseudo solution)."""
        return np.array([model.getSolVal(solution, var) > 0.5 for var in self.encoding.binaries], dtype=bool)

    # -- changing the problem ---------------------------------------------------------------------
    def transformed(self, model: Model, var: Variable) -> Variable:
        key = id(var)
        if key not in self._transformed:
            self._transformed[key] = model.getTransformedVar(var)
        return self._transformed[key]

    def fix_closed(self, model: Model) -> tuple[int, bool]:
        """Fix the binaries of the states this solve no longer asks about (witnessed or abandoned) to 0 globally;
        returns (number fixed, node must be cut off). A binary at 0 drops its state from the objective and
        constrains no input, so the proofs of the other states stand.

        A binary fixed to 1 at the current node stays pending (the node contradicts the global fix and is
        cut off); it is fixed at a later node.
        """
        changed, cutoff = 0, False
        for state in np.flatnonzero((self.seen | self.abandoned) & ~self.fixed):
            var = self.transformed(model, self.encoding.binaries[state])
            if var.getUbGlobal() < 0.5:
                self.fixed[state] = True
            elif var.getLbLocal() > 0.5:
                cutoff = True
            else:
                model.chgVarUbGlobal(var, 0.0)
                self.fixed[state] = True
                changed += 1
        return changed, cutoff

    def give_up(self, model: Model, state: int) -> dict:
        """Resolve an integral LP point claiming ``state`` that the forward pass does not confirm.

        If the node still allows both, it splits at ``sign * g_i >= WITNESS_TARGET``: the witness side,
        where any solution is a confirmable witness, and the band side, where the binary is fixed to 0
        (unless the node forces it to 1). Otherwise the node gives the state up: binary fixed to 0 here,
        or, where the node forces it to 1, the node is cut off (its points with the binary at 0 lie in
        the sibling of that branching; propagation forces a state binary to 1 only where no other state
        is possible). A state given up anywhere is ``lost``: never proven by this solve; one given up
        ABANDON_AFTER_GIVE_UPS times is abandoned (``fix_closed`` then fixes its binary to 0 globally).
        """
        self.give_ups[state] += 1
        if self.give_ups[state] >= ABANDON_AFTER_GIVE_UPS:
            self.abandoned[state] = self.lost[state] = True
        sign = int(self.states.sign[state])
        layer, neuron = int(self.states.layer[state]), int(self.states.neuron[state])
        binary = self.transformed(model, self.encoding.binaries[state])
        g = self.transformed(model, self.encoding.g[layer][neuron])
        forced = binary.getLbLocal() > 0.5
        target = sign * WITNESS_TARGET
        low, up = g.getLbLocal(), g.getUbLocal()
        splits = (low < target <= up if sign > 0 else low <= target < up) and g.getStatus() in ("LOOSE", "COLUMN")
        if not splits:
            self.lost[state] = True
            if forced:
                return {"result": SCIP_RESULT.CUTOFF}
            model.chgVarUb(binary, 0.0)
            return {"result": SCIP_RESULT.REDUCEDDOM}
        estimate = model.getLocalEstimate()
        witness_side = model.createChild(1.0, estimate)
        band_side = model.createChild(0.0, estimate)
        if sign > 0:
            model.chgVarLbNode(witness_side, g, target)
            model.chgVarUbNode(band_side, g, target)
        else:
            model.chgVarUbNode(witness_side, g, target)
            model.chgVarLbNode(band_side, g, target)
        if not forced:
            self.lost[state] = True
            model.chgVarUbNode(band_side, binary, 0.0)
        return {"result": SCIP_RESULT.BRANCHED}

    def fail(self, model: Model, error: BaseException) -> None:
        if self.error is None:
            self.error = error
            model.interruptSolve()

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def _guarded(fallback: int):
    """Run a plugin callback; an exception is stored and interrupts the solve (SCIP would swallow it)."""

    def decorate(method):
        @functools.wraps(method)
        def run(self, *args):
            try:
                return method(self, *args)
            except Exception as error:  # re-raised by solve_network after the solve
                self.harvest.fail(self.model, error)
                return {"result": fallback}

        return run

    return decorate


def _domain_result(changed: int, cutoff: bool) -> dict | None:
    if cutoff:
        return {"result": SCIP_RESULT.CUTOFF}
    if changed:
        return {"result": SCIP_RESULT.REDUCEDDOM}
    return None


class _HarvestConshdlr(Conshdlr):
    """Harvests every point it is shown; rejects candidates claiming a state; fixes witnessed states."""

    def __init__(self, harvest: _Harvest) -> None:
        self.harvest = harvest

    @_guarded(SCIP_RESULT.INFEASIBLE)
    def conscheck(self, constraints, solution, checkintegrality, checklprows, printreason, completely):
        self.harvest.harvest(self.model, solution)
        self.harvest.solutions += 1
        rejected = self.harvest.claimed(self.model, solution).any()
        return {"result": SCIP_RESULT.INFEASIBLE if rejected else SCIP_RESULT.FEASIBLE}

    def _harvest_current(self) -> dict | None:
        """Harvest the current LP/pseudo solution and fix newly witnessed states; the result if domains changed."""
        self.harvest.harvest(self.model, None)
        self.harvest.lp_points += 1
        return _domain_result(*self.harvest.fix_closed(self.model))

    @_guarded(SCIP_RESULT.CUTOFF)
    def consenfolp(self, constraints, nusefulconss, solinfeasible):
        harvest = self.harvest
        reduced = self._harvest_current()
        if reduced is not None:
            return reduced
        unconfirmed = np.flatnonzero(harvest.claimed(self.model, None) & ~harvest.fixed)
        if unconfirmed.size == 0:
            return {"result": SCIP_RESULT.FEASIBLE}
        return harvest.give_up(self.model, int(unconfirmed[0]))

    @_guarded(SCIP_RESULT.CUTOFF)
    def consenfops(self, constraints, nusefulconss, solinfeasible, objinfeasible):
        harvest = self.harvest
        reduced = self._harvest_current()
        if reduced is not None:
            return reduced
        claims = (harvest.claimed(self.model, None) & ~harvest.fixed).any()
        return {"result": SCIP_RESULT.SOLVELP if claims else SCIP_RESULT.FEASIBLE}

    @_guarded(SCIP_RESULT.DIDNOTRUN)
    def conssepalp(self, constraints, nusefulconss):
        harvest = self.harvest
        if self.model.getLPSolstat() != SCIP_LPSOLSTAT.OPTIMAL:
            return {"result": SCIP_RESULT.DIDNOTRUN}
        harvest.harvest(self.model, None)
        harvest.lp_points += 1
        return _domain_result(*harvest.fix_closed(self.model)) or {"result": SCIP_RESULT.DIDNOTFIND}

    @_guarded(SCIP_RESULT.DIDNOTRUN)
    def consprop(self, constraints, nusefulconss, nmarkedconss, proptiming):
        if self.model.inProbing():  # diving heuristics propagate in probing mode: no global changes there
            return {"result": SCIP_RESULT.DIDNOTRUN}
        return _domain_result(*self.harvest.fix_closed(self.model)) or {"result": SCIP_RESULT.DIDNOTFIND}

    @_guarded(SCIP_RESULT.DIDNOTRUN)
    def conslock(self, constraint, locktype, nlockspos, nlocksneg):
        # raising a state binary can violate this handler (the state may be witnessed): an up-lock
        for binary in self.harvest.encoding.binaries:
            self.model.addVarLocksType(self.harvest.transformed(self.model, binary), locktype, nlocksneg, nlockspos)


class _HarvestHeur(Heur):
    """After each node LP: harvest its ``x``; until SCIP has a solution, offer the forward pass at ``x``
    with every state binary at 0 (objective 0: lets SCIP prune nodes whose bound is below 1)."""

    def __init__(self, harvest: _Harvest) -> None:
        self.harvest = harvest

    @_guarded(SCIP_RESULT.DIDNOTRUN)
    def heurexec(self, heurtiming, nodeinfeasible):
        model, harvest = self.model, self.harvest
        if model.getLPSolstat() != SCIP_LPSOLSTAT.OPTIMAL:
            return {"result": SCIP_RESULT.DIDNOTRUN}
        harvest.harvest(model, None)
        harvest.lp_points += 1
        if model.getNSols() > 0:
            return {"result": SCIP_RESULT.DIDNOTFIND}
        x = harvest.box.clip(np.array([model.getSolVal(None, var) for var in harvest.encoding.x]))
        solution = model.createSol(self)
        values = list(zip(harvest.encoding.x, x))
        for g_vars, h_vars, z_vars, g in zip(harvest.encoding.g, harvest.encoding.h, harvest.encoding.z,
                                             harvest.network.preactivations(x[None, :])):
            g = g[0]
            values += zip(g_vars, g)
            values += [(h, max(value, 0.0)) for h, g_var, value in zip(h_vars, g_vars, g)
                       if h is not None and h is not g_var]
            values += [(z, float(value > 0.0)) for z, value in zip(z_vars, g) if z is not None]
        values += [(var, 0.0) for var in harvest.encoding.binaries]
        for var, value in values:
            if harvest.transformed(model, var).getStatus() in ("LOOSE", "COLUMN"):
                model.setSolVal(solution, var, float(value))
        stored = model.trySol(solution, printreason=False)
        return {"result": SCIP_RESULT.FOUNDSOL if stored else SCIP_RESULT.DIDNOTFIND}


class _DualTrace(Eventhdlr):
    """Records (seconds, dual bound) whenever a solved LP or node changes the dual bound."""

    def __init__(self, harvest: _Harvest) -> None:
        self.harvest = harvest

    def eventinit(self):
        self.model.catchEvent(SCIP_EVENTTYPE.NODESOLVED | SCIP_EVENTTYPE.LPSOLVED, self)

    @_guarded(SCIP_RESULT.DIDNOTRUN)
    def eventexec(self, event):
        trace = self.harvest.trace
        bound = float(self.model.getDualbound())
        if self.model.isInfinity(abs(bound)):
            return {}
        if not trace or trace[-1][1] != bound:
            trace.append((self.harvest.elapsed(), bound))
            if len(trace) > 4 * TRACE_POINTS:
                del trace[1:-1:2]
        return {}


def _thin(trace: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    if len(trace) <= TRACE_POINTS:
        return tuple(trace)
    keep = np.unique(np.linspace(0, len(trace) - 1, TRACE_POINTS).round().astype(int))
    return tuple(trace[i] for i in keep)


def _per_layer(network: Network, states: _States, mask: np.ndarray, sign: int) -> tuple[np.ndarray, ...]:
    out = [np.zeros(width, dtype=bool) for width in network.hidden_widths]
    chosen = mask & (states.sign == sign)
    for layer, neuron in zip(states.layer[chosen], states.neuron[chosen]):
        out[layer][neuron] = True
    return tuple(out)


def solve_network(network: Network, box: Box, bounds: Sequence[LayerBounds], witnesses: WitnessSet, *,
                  stably_inactive: Sequence[np.ndarray], stably_active: Sequence[np.ndarray],
                  deadline: float | None = None) -> SingleMilpResult:
    """One SCIP solve of ``max sum p + sum q`` over all hidden layers, harvesting witnesses as it goes.

    ``bounds[k]``: valid bounds on hidden layer k's pre-activations (width_k,), finite where the neuron is
    not settled; ``stably_inactive[k]`` / ``stably_active[k]``: bool (width_k,) already proven (they enter
    linearly and get no state). ``witnesses``: states already witnessed get no binary. ``deadline``: a
    ``time.monotonic()`` instant (SCIP's time limit). Proofs use the margins of
    the per-neuron method (``encoding.proof_margins``); witnesses need ``|g| > WITNESS_MARGIN`` in the float64
    forward pass. With no open state it returns at once (finished); past the deadline, on SCIP's time limit or
    an interrupt, nothing is proven and the witnesses harvested are kept. Raises
    SolverError on any other SCIP status (e.g. infeasible, impossible on a box), a SCIP failure or a plugin
    error.
    """
    start = time.monotonic()
    widths = network.hidden_widths
    if box.dim != network.input_dim:
        raise ValueError(f"box has {box.dim} features but the network takes {network.input_dim} inputs")
    if len(bounds) != len(widths) or len(stably_inactive) != len(widths) or len(stably_active) != len(widths):
        raise ValueError(f"bounds and stability masks must be given for all {len(widths)} hidden layers")
    inactive = [np.asarray(m, dtype=bool).reshape(-1) for m in stably_inactive]
    active = [np.asarray(m, dtype=bool).reshape(-1) for m in stably_active]
    for layer, width in enumerate(widths):
        if inactive[layer].shape != (width,) or active[layer].shape != (width,):
            raise ValueError(f"stability masks of hidden layer {layer} must have shape ({width},)")
        if np.any(inactive[layer] & active[layer]):
            raise ValueError(f"hidden layer {layer} has neurons marked both stably active and stably inactive")
    settled = [b.settled(i, a) for b, i, a in zip(bounds, inactive, active)]
    states = _open_states(witnesses, settled)

    def result(harvest: _Harvest | None, proved: np.ndarray, finished: bool, nodes: int = 0,
               iterations: int = 0) -> SingleMilpResult:
        changed = 0 if harvest is None else int(np.sum(harvest.seen | harvest.lost))
        return SingleMilpResult(
            proved_inactive=_per_layer(network, states, proved, 1),
            proved_active=_per_layer(network, states, proved, -1),
            witnesses=witnesses if harvest is None else harvest.witnesses,
            finished=finished,
            solutions_harvested=0 if harvest is None else harvest.solutions,
            lp_points_harvested=0 if harvest is None else harvest.lp_points,
            states_fixed=changed,
            open_states=len(states),
            nodes=nodes,
            lp_iterations=iterations,
            seconds=time.monotonic() - start,
            dual_trace=() if harvest is None else _thin(harvest.trace),
        )

    none_proved = np.zeros(len(states), dtype=bool)
    if len(states) == 0:
        return result(None, none_proved, True)
    if seconds_left(deadline) <= 0:
        return result(None, none_proved, False)
    encoding = _build(network, box, settled, states)
    try:
        model = encoding.model
        harvest = _Harvest(network, box, witnesses, states, encoding, start)
        model.includeConshdlr(_HarvestConshdlr(harvest), "harvest", "witness harvesting and state fixing",
                              sepapriority=_LOWEST_PRIORITY, enfopriority=_LOWEST_PRIORITY,
                              chckpriority=_LOWEST_PRIORITY, sepafreq=1, propfreq=1, eagerfreq=-1,
                              maxprerounds=0, needscons=False, proptiming=SCIP_PROPTIMING.BEFORELP)
        model.includeHeur(_HarvestHeur(harvest), "harvestlp", "harvests node LP inputs", "H",
                          timingmask=SCIP_HEURTIMING.AFTERLPNODE)
        model.includeEventhdlr(_DualTrace(harvest), "dualtrace", "records the dual bound")
        remaining = seconds_left(deadline)
        if remaining <= 0:
            return result(harvest, none_proved, False)
        model.setParam("limits/time", min(float(remaining), 1e20))
        try:  # without the GIL where SCIP allows: the caller's other threads run meanwhile
            model.optimizeNogil()
        except Exception as error:  # SCIP raises plain Exception, e.g. "SCIP: error in LP solver!"
            raise SolverError("single MILP", f"SCIP failed: {error}") from None
        if harvest.error is not None:
            raise SolverError("single MILP", f"a harvesting plugin failed: {harvest.error!r}") from harvest.error
        status = model.getStatus()
        if status == "userinterrupt":  # not a harvesting plugin's (that sets harvest.error): the user's Ctrl-C
            user_interrupt()
        nodes, iterations = int(model.getNNodes()), int(model.getNLPIterations())
        dual = float(model.getDualbound())
        if not model.isInfinity(abs(dual)):
            harvest.trace.append((harvest.elapsed(), dual))
        if status == "timelimit":
            return result(harvest, none_proved, False, nodes, iterations)
        if status not in _STATUSES_WITH_VALID_DUAL:
            raise SolverError("single MILP", f"SCIP ended with status '{status}'; no state can be trusted")
        if not dual < 1.0:
            raise SolverError("single MILP", f"SCIP ended '{status}' with dual bound {dual} >= 1 although every "
                              "candidate claiming a state is rejected")
        proved = ~harvest.seen & ~harvest.lost
        inactive_new, active_new = _per_layer(network, states, proved, 1), _per_layer(network, states, proved, -1)
        if any(np.any(a & b) for a, b in zip(inactive_new, active_new)):
            raise SoundnessError("single MILP", "proved a neuron both stably active and stably inactive")
        return result(harvest, proved, True, nodes, iterations)
    finally:  # its plugins and the model refer to each other: free SCIP now, not at some later garbage collection
        encoding.model.free()
