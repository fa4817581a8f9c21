"""Ideal ReLU cuts (Anderson et al., "Strong mixed-integer programming formulations for trained neural
networks", Math. Programming 2020), separated in SCIP for the big-M encodings of ``encoding``.

For one unstable neuron ``h = relu(w . v + b)`` whose inputs lie in a box ``lo <= v <= hi`` with binary
``s`` (1 = active), write ``L_i = lo_i, U_i = hi_i`` where ``w_i >= 0`` and swapped where ``w_i < 0`` (so
``w_i L_i <= w_i v_i <= w_i U_i``). For every subset ``I`` of the inputs

    h <= sum_{i in I} w_i (v_i - L_i (1 - s)) + (b + sum_{i not in I} w_i U_i) s.

Valid: with ``s = 1`` (so ``h = w . v + b``) the right side is ``w . v + b + sum_{i not in I} w_i (U_i - v_i)
>= h``; with ``s = 0`` (``h = 0``) it is ``sum_{i in I} w_i (v_i - L_i) >= 0``. Together with the big-M rows
they describe the convex hull of the neuron's graph over the box (exact for the first hidden layer, whose
inputs are the domain's box; later layers use the box of their inputs' bounds, a relaxation); with ``I``
empty it is the big-M chord ``h <= U s`` at the interval bound ``U``. The big-M triangle relaxation alone is
far weaker when the inputs are a box: on the unregularised bench nets the root LP bound of a second-layer
question drops from 2.35 to 0.85 with these cuts. The most violated inequality for an LP point
``(v*, s*, h*)`` takes ``i`` into ``I`` exactly when ``w_i (v*_i - L_i (1 - s*)) < w_i U_i s*`` (linear time per
neuron).

Soundness: every cut is valid for every integer-feasible point of the encoding (the bounds ``lo``, ``hi``
are the variables' own global bounds), so SCIP's dual bound stays a valid bound on the MILP optimum; a
neuron whose binary a question relaxed (``per_neuron.phase_free_binaries``) keeps the argument there:
the cuts remove no point with ``h = relu(g)`` and ``s`` its phase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyscipopt import SCIP_RESULT, Model, Sepa, Variable

#: a cut is added only if the LP point violates it by more than this times (1 + |h*|)
VIOLATION = 1e-6
#: at most this many cuts (the most violated) and coefficients per separation round
MAX_CUTS_PER_ROUND = 100
MAX_NONZEROS_PER_ROUND = 20_000
#: neurons with more inputs than this get no cuts: on the 3072-input 5x100 bench nets the root cut loop over
#: first-layer neurons took a whole 34 s sign solve (98,799 LP iterations in one node) that settles its
#: question without the cuts
MAX_INPUTS = 1024


@dataclass(frozen=True)
class ReluEncoding:
    """One unstable neuron of a big-M encoding: ``out = relu(weights . inputs + bias)`` with binary ``active``;
    ``lower``/``upper`` (n,): global bounds of the ``inputs`` variables."""

    inputs: tuple[Variable, ...]
    weights: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    bias: float
    out: Variable
    active: Variable


@dataclass(frozen=True)
class Cut:
    """``out + active_coefficient * active + input_coefficients . inputs <= rhs``, violated by ``violation``."""

    input_coefficients: np.ndarray
    active_coefficient: float
    rhs: float
    violation: float


def most_violated_cut(weights: np.ndarray, bias: float, lower: np.ndarray, upper: np.ndarray, inputs: np.ndarray,
                      active: float, out: float) -> Cut:
    """The ideal cut (module docstring) most violated by the LP point ``(inputs, active, out)`` of the neuron
    ``out = relu(weights . inputs + bias)`` whose inputs lie in ``[lower, upper]``, all (n,) float64;
    ``violation`` <= 0 when no cut of the family is violated."""
    low = np.where(weights >= 0, lower, upper)
    high = np.where(weights >= 0, upper, lower)
    in_subset_term = weights * (inputs - low * (1 - active))
    outside_term = weights * high * active
    in_subset = in_subset_term < outside_term
    rhs_at_point = float(np.where(in_subset, in_subset_term, outside_term).sum() + bias * active)
    # out - sum_I w_i v_i - s (sum_I w_i L_i + b + sum_notI w_i U_i) <= - sum_I w_i L_i
    constant = float(np.sum(np.where(in_subset, weights * low, 0.0)))
    return Cut(input_coefficients=-np.where(in_subset, weights, 0.0),
               active_coefficient=-(constant + bias + float(np.sum(np.where(in_subset, 0.0, weights * high)))),
               rhs=-constant, violation=out - rhs_at_point)


class IdealReluCuts(Sepa):
    """SCIP separator adding, per round, the most violated ideal cut of each encoded neuron, the largest
    violations first, at most MAX_CUTS_PER_ROUND cuts and MAX_NONZEROS_PER_ROUND coefficients (rows are
    built in Python: a round on 3072 inputs could otherwise take seconds); ``cuts`` counts the cuts added."""

    def __init__(self, relus: list[ReluEncoding]):
        self.relus = relus
        self.cuts = 0

    def sepainit(self):
        model: Model = self.model
        columns: dict[int, int] = {}  # every variable the cuts read, once: LP values are fetched per round
        self._variables, self._positions = [], []
        for relu in self.relus:
            positions = []
            for var in (*relu.inputs, relu.out, relu.active):
                if var.ptr() not in columns:
                    columns[var.ptr()] = len(self._variables)
                    self._variables.append(model.getTransformedVar(var))
                positions.append(columns[var.ptr()])
            self._positions.append(np.array(positions, dtype=np.int64))

    def sepaexeclp(self):
        values = np.array([var.getLPSol() for var in self._variables])
        found = []
        for relu, positions in zip(self.relus, self._positions):
            point = values[positions]
            cut = most_violated_cut(relu.weights, relu.bias, relu.lower, relu.upper, point[:-2], point[-1], point[-2])
            if cut.violation > VIOLATION * (1 + abs(point[-2])):
                found.append((cut, positions))
        found.sort(key=lambda item: -item[0].violation)
        added = nonzeros = 0
        for cut, positions in found:
            if added >= MAX_CUTS_PER_ROUND or nonzeros >= MAX_NONZEROS_PER_ROUND:
                break
            row = self.model.createEmptyRowSepa(self, "ideal_relu", lhs=None, rhs=cut.rhs, local=False,
                                                removable=True)
            self.model.cacheRowExtensions(row)
            self.model.addVarToRow(row, self._variables[positions[-2]], 1.0)
            self.model.addVarToRow(row, self._variables[positions[-1]], cut.active_coefficient)
            for position, coefficient in zip(positions[:-2], cut.input_coefficients):
                if coefficient != 0.0:
                    self.model.addVarToRow(row, self._variables[position], float(coefficient))
                    nonzeros += 1
            self.model.flushRowExtensions(row)
            if self.model.isCutEfficacious(row):
                self.model.addCut(row)
                added += 1
            self.model.releaseRow(row)
        self.cuts += added
        return {"result": SCIP_RESULT.SEPARATED if added else SCIP_RESULT.DIDNOTFIND}


def include_ideal_cuts(model: Model, relus: list[ReluEncoding]) -> IdealReluCuts | None:
    """Attach the separator to ``model`` for the root node of each solve, for the neurons with at most
    MAX_INPUTS inputs (None when there is none). Root only: separating at every node (SCIP ``freq`` 1) added
    10-25x more cuts and bounded 2-5x fewer nodes per second, with no question settled sooner
    (d64-2x100/2x200-l1_0, 60 s)."""
    relus = [relu for relu in relus if len(relu.inputs) <= MAX_INPUTS]
    if not relus:
        return None
    separator = IdealReluCuts(relus)
    model.includeSepa(separator, "ideal_relu", "ideal cuts of ReLU neurons over box inputs", priority=10000,
                      freq=0, maxbounddist=1.0)
    return separator
