"""Big-M MILP of a ReLU network's first hidden layers over a box, built once and reused per neuron.

The model holds the inputs ``x`` (in the box), hidden layers ``0 .. layer-1`` encoded with the big-M
formulation of method.md using valid bounds ``L <= g <= U`` on their pre-activations, and the
pre-activations ``g = W h + b`` of hidden layer ``layer`` as continuous variables (the objectives).
Settled neurons of earlier layers get no binary: ``U <= 0`` gives ``h = 0``, ``L >= 0`` gives ``h = g``.
Every pre-activation variable carries its valid bounds, which are implied cuts of the encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from pyscipopt import SCIP_PARAMSETTING, Expr, Model, Variable
from pyscipopt.scip import Term

from ...errors import SolverError
from ...tolerances import (
    MILP_MARGIN,
    MILP_MAX_BOUND,
    MILP_MAX_WEIGHT,
    MILP_RELATIVE_MARGIN,
    SCIP_BOUND_PAD,
    SCIP_DUALFEASTOL,
    SCIP_FEASTOL,
)
from ..bounds import LayerBounds
from ..domain import Box
from ..network import Network
from .cuts import IdealReluCuts, ReluEncoding, include_ideal_cuts


@dataclass(frozen=True)
class LayerModel:
    """A SCIP model with input variables ``x`` (input_dim,) and the pre-activations ``g`` (width,) of one layer.

    ``z_below`` (width of layer - 1): the binaries of the layer below (``None`` where that neuron is settled;
    empty for layer 0). ``cuts``: the separator of the ideal cuts of the encoded layers' unstable neurons when
    the model was built with it. Reuse: set an objective on one ``g[i]``, optimize, read
    results, then ``model.freeTransform()``.
    """

    model: Model
    x: tuple[Variable, ...]
    g: tuple[Variable, ...]
    layer: int
    z_below: tuple[Variable | None, ...] = ()
    cuts: IdealReluCuts | None = None
    #: holds True once SCIP has found a point of the model without a hypothesis (``per_neuron._feasible_alone``)
    found_feasible: list[bool] = field(default_factory=list, compare=False)


def proof_margins(network: Network, box: Box, bounds: Sequence[LayerBounds], layer: int,
                  relative: float = MILP_RELATIVE_MARGIN) -> np.ndarray:
    """(width of ``layer``,) the margin ``m_j`` that a MILP proof about neuron j of hidden layer ``layer`` must
    clear (``tolerances.MILP_MARGIN``): ``max(MILP_MARGIN, relative * size_j)`` (``relative``: MILP_RELATIVE_MARGIN,
    or MILP_AGGRESSIVE_RELATIVE_MARGIN for a solve with aggressive separators), with
    ``size_j = |b_j| + sum_i |W_ji| max(|lo_i|, |hi_i|)`` over the bounds of the layer's inputs (the box for
    layer 0, else ``bounds[layer - 1]`` after the ReLU), the same units as ``g_j``."""
    affine = network.hidden[layer]
    inputs = LayerBounds(box.lower, box.upper) if layer == 0 else bounds[layer - 1].after_relu()
    largest = np.nan_to_num(np.maximum(np.abs(inputs.lower), np.abs(inputs.upper)), posinf=np.finfo(float).max)
    with np.errstate(over="ignore"):  # an unbounded input makes the margin infinite: nothing is proved then
        size = np.abs(affine.bias) + np.abs(affine.weight) @ largest
    return np.maximum(MILP_MARGIN, relative * size)


def check_scale(network: Network, box: Box, bounds: Sequence[LayerBounds], layers: int, source: str) -> None:
    """SolverError (from ``source``) unless hidden layers ``0 .. layers-1`` (their weights), the box and
    ``bounds[:layers]`` (their finite values) are within ``MILP_MAX_WEIGHT`` and ``MILP_MAX_BOUND`` in magnitude:
    beyond them SCIP's tolerances lose thin regions of the box, and nothing a MILP says there is taken."""
    weight = max(float(np.max(np.abs(layer.weight), initial=0.0)) for layer in network.hidden[:layers])
    values = [box.lower, box.upper, *(side for bound in bounds[:layers] for side in (bound.lower, bound.upper))]
    bound = max(float(np.max(np.abs(value[np.isfinite(value)]), initial=0.0)) for value in values)
    if weight > MILP_MAX_WEIGHT or bound > MILP_MAX_BOUND:
        raise SolverError(source, f"weights up to {weight:.3g} and bounds up to {bound:.3g} are beyond what SCIP "
                          f"solves reliably (limits {MILP_MAX_WEIGHT:g} and {MILP_MAX_BOUND:g}); no MILP is built")


def new_model(name: str) -> Model:
    """An empty SCIP model with the settings every MILP here shares.

    Output hidden; feasibility tolerances SCIP_FEASTOL / SCIP_DUALFEASTOL; one LP thread; *fast*
    presolving. SCIP's default presolving compares linear rows pairwise, which on nets with 784 dense
    inputs took ~1 s of a 1.4 s sign solve and made per-neuron solves 3.5x slower (37 vs 128 solves in
    30 s on d784-2x200-l1_1e-3); it changes no bound, so proofs are unaffected. Both the per-neuron
    baseline and the single MILP use it, so the benchmark compares like with like.

    Weak and strong dual reductions are off. They may drop any solution that is not optimal, which the single
    MILP's harvest cannot allow, and with the feasibility tolerance 1e-9 they lost the optimum itself in a sign
    solve: SCIP fixed the input inside the box and reported a first-layer neuron's max as -236.04, where it
    reaches +1e-5, a false proof of stability (found by ``benchmarks/soundness_fuzz.py``; the per-neuron test
    ``test_no_proof_from_scip_dual_presolving_where_it_loses_the_optimum``). Without them the per-neuron
    baseline's MILPs took the same time (``benchmarks/results/dual_reductions/``).
    """
    model = Model(name)
    model.hideOutput()
    model.setPresolve(SCIP_PARAMSETTING.FAST)
    model.setParam("numerics/feastol", SCIP_FEASTOL)
    model.setParam("numerics/dualfeastol", SCIP_DUALFEASTOL)
    model.setParam("lp/threads", 1)
    model.setParam("misc/allowstrongdualreds", False)
    model.setParam("misc/allowweakdualreds", False)
    return model


def _scip_bound(value: float, side: int) -> float | None:
    """A valid bound ``value`` on the ``side`` (-1 lower, +1 upper) widened outward by ``SCIP_BOUND_PAD * (1 +
    |value|)`` for SCIP, whose epsilon makes bounds narrower than it inconsistent; ``None`` (SCIP's infinity) for
    infinite bounds."""
    return float(value) + side * SCIP_BOUND_PAD * (1.0 + abs(float(value))) if np.isfinite(value) else None


def add_preactivations(model: Model, prefix: str, weight: np.ndarray, bias: np.ndarray, inputs: list,
                        lower: np.ndarray, upper: np.ndarray) -> list[Variable]:
    """Variables ``g = weight @ inputs + bias`` with bounds ``lower <= g <= upper`` (widened by ``_scip_bound``);
    ``inputs`` may hold ``None`` (= 0).

    Each row ``g_i - sum_j weight_ij h_j = bias_i`` is built from a dict of its nonzero terms, not by summing
    products (2.8x faster: about 0.9 s instead of 2.7 s for 1,000 rows of 3072 inputs)."""
    present = np.array([var is not None for var in inputs], dtype=bool)
    terms = [Term(var) if var is not None else None for var in inputs]
    g = []
    for i in range(weight.shape[0]):
        var = model.addVar(f"{prefix}_g{i}", vtype="C", lb=_scip_bound(lower[i], -1), ub=_scip_bound(upper[i], 1))
        row = np.asarray(weight[i], dtype=np.float64)
        used = np.flatnonzero(present & (row != 0.0))
        coefficients = {Term(var): 1.0}
        coefficients.update(zip([terms[j] for j in used], (-row[used]).tolist()))
        model.addCons(Expr(coefficients) == float(bias[i]), name=f"{prefix}_def{i}")
        g.append(var)
    return g


def add_relus(model: Model, prefix: str, g: list[Variable], bounds: LayerBounds) -> tuple[list, list]:
    """``(h, z)``: outputs ``h = relu(g)`` in big-M form and each neuron's binary ``z`` (1 = active side).

    Settled neurons get no binary (``z`` is ``None``): ``h`` is ``None`` (= 0) where ``U <= 0`` and ``g``
    itself where ``L >= 0``. ``bounds`` must be finite where the neuron is unstable.
    """
    h: list = []
    z: list = []
    for i, var in enumerate(g):
        low, up = float(bounds.lower[i]), float(bounds.upper[i])
        if up <= 0.0:
            h.append(None)
            z.append(None)
        elif low >= 0.0:
            h.append(var)
            z.append(None)
        else:
            if not (np.isfinite(low) and np.isfinite(up)):
                raise ValueError(f"{prefix} neuron {i}: big-M needs finite bounds, got [{low}, {up}]")
            out = model.addVar(f"{prefix}_h{i}", vtype="C", lb=0.0, ub=up)
            active = model.addVar(f"{prefix}_z{i}", vtype="B")
            model.addCons(out >= var, name=f"{prefix}_ge{i}")
            model.addCons(out <= var - low * (1 - active), name=f"{prefix}_lo{i}")
            model.addCons(out <= up * active, name=f"{prefix}_up{i}")
            h.append(out)
            z.append(active)
    return h, z


def relu_encodings(weight: np.ndarray, bias: np.ndarray, inputs: list, input_lower: np.ndarray,
                   input_upper: np.ndarray, h: list, z: list) -> list[ReluEncoding]:
    """The unstable neurons (those with a binary in ``z``) of one encoded layer ``h = relu(weight @ inputs +
    bias)`` for ``cuts``, each with the inputs it has a non-zero weight on (a convolution's receptive field);
    ``inputs`` may hold ``None`` (= 0), ``input_lower``/``input_upper`` bound them."""
    present = np.array([var is not None for var in inputs], dtype=bool)
    encodings = []
    for i in range(len(z)):
        if z[i] is None:
            continue
        used = np.flatnonzero(present & (weight[i] != 0.0))
        encodings.append(ReluEncoding(inputs=tuple(inputs[j] for j in used),
                                      weights=np.asarray(weight[i, used], dtype=np.float64),
                                      lower=np.asarray(input_lower[used], dtype=np.float64),
                                      upper=np.asarray(input_upper[used], dtype=np.float64), bias=float(bias[i]),
                                      out=h[i], active=z[i]))
    return encodings


def build_layer_model(network: Network, box: Box, bounds: Sequence[LayerBounds], layer: int, *,
                      ideal_cuts: bool = False) -> LayerModel:
    """SCIP model whose feasible ``x`` are the box and whose ``g`` are hidden layer ``layer``'s pre-activations.

    ``ideal_cuts``: separate the ideal ReLU cuts of ``cuts`` at the root of each solve.

    ``bounds[k]`` (k < layer) must be valid bounds on hidden layer k's pre-activations (finite where
    the neuron is unstable); ``bounds[layer]``, if present, bounds ``g`` (otherwise ``g`` is free).
    SCIP settings: ``new_model``.
    """
    if not 0 <= layer < len(network.hidden):
        raise ValueError(f"layer {layer} is not a hidden layer (network has {len(network.hidden)})")
    if len(bounds) < layer:
        raise ValueError(f"bounds given for {len(bounds)} layers; layer {layer} needs bounds on every layer below it")
    if box.dim != network.input_dim:
        raise ValueError(f"box has {box.dim} features but the network takes {network.input_dim} inputs")
    check_scale(network, box, bounds, layer + 1, f"MILP of hidden layer {layer}")
    model = new_model(f"layer{layer}")
    x = [model.addVar(f"x{j}", vtype="C", lb=float(box.lower[j]), ub=float(box.upper[j])) for j in range(box.dim)]
    h: list = list(x)
    h_bounds = LayerBounds(box.lower, box.upper)  # of the encoded layer's inputs
    z: list = []
    relus: list[ReluEncoding] = []
    for k in range(layer):
        affine = network.hidden[k]
        g = add_preactivations(model, f"l{k}", affine.weight, affine.bias, h, bounds[k].lower, bounds[k].upper)
        below = h
        h, z = add_relus(model, f"l{k}", g, bounds[k])
        relus += relu_encodings(affine.weight, affine.bias, below, h_bounds.lower, h_bounds.upper, h, z)
        h_bounds = bounds[k].after_relu()
    affine = network.hidden[layer]
    width = affine.out_features
    if len(bounds) > layer:
        lower, upper = bounds[layer].lower, bounds[layer].upper
    else:
        lower, upper = np.full(width, -np.inf), np.full(width, np.inf)
    g = add_preactivations(model, f"l{layer}", affine.weight, affine.bias, h, lower, upper)
    cuts = include_ideal_cuts(model, relus) if ideal_cuts else None
    return LayerModel(model=model, x=tuple(x), g=tuple(g), layer=layer, z_below=tuple(z), cuts=cuts)
