"""Ideal ReLU cuts: every cut holds at every exact point of the neuron, the cuts separate LP points of the
big-M relaxation that lie outside the neuron's convex hull, and solves with them give the same optima."""

from __future__ import annotations

import numpy as np
import pytest
from pyscipopt import Model
from test_per_neuron import grid_truth, interval_bounds, random_net

from exactcompress.engine.domain import Box
from exactcompress.engine.prove.cuts import (
    MAX_INPUTS,
    ReluEncoding,
    include_ideal_cuts,
    most_violated_cut,
)
from exactcompress.engine.prove.encoding import build_layer_model

BOX = Box(-np.ones(2), np.ones(2))


@pytest.mark.parametrize("seed", range(5))
def test_every_cut_holds_at_every_exact_point(seed):
    rng = np.random.default_rng(seed)
    n = 6
    weights, bias = rng.normal(size=n), float(rng.normal())
    lower = rng.uniform(-1, 0, size=n)
    upper = lower + rng.uniform(0.1, 2, size=n)
    samples = lower + (upper - lower) * rng.random((4000, n))
    corners = np.where(rng.random((256, n)) < 0.5, lower, upper)
    points = np.concatenate([samples, corners])
    pre = points @ weights + bias
    out, active = np.maximum(pre, 0.0), (pre > 0).astype(float)
    violated = 0
    for _ in range(50):  # cuts for random LP points, some violated, some not
        cut = most_violated_cut(weights, bias, lower, upper, lower + (upper - lower) * rng.random(n),
                                float(rng.random()), float(rng.uniform(0, 3)))
        violated += cut.violation > 0
        lhs = out + cut.active_coefficient * active + points @ cut.input_coefficients
        assert np.all(lhs <= cut.rhs + 1e-9 * (1 + np.abs(cut.rhs))), "a cut removes a point of the neuron's graph"
    assert violated > 0


def test_cut_separates_a_big_m_point_outside_the_hull():
    # h = relu(v0 + v1 - 1) on [0, 1]^2: the big-M relaxation allows v = (1, 0), s = 1/2, h = 1/2, but (1, 0)
    # is a corner of the box where h can only be 0
    weights, bias, lower, upper = np.array([1.0, 1.0]), -1.0, np.zeros(2), np.ones(2)
    cut = most_violated_cut(weights, bias, lower, upper, np.array([1.0, 0.0]), 0.5, 0.5)
    assert cut.violation == pytest.approx(0.5)
    np.testing.assert_allclose(cut.input_coefficients, [0.0, -1.0])  # h <= v1 + 0 * s
    assert cut.active_coefficient == pytest.approx(0.0) and cut.rhs == pytest.approx(0.0)


@pytest.mark.parametrize("widths, seed", [([6, 5], 0), ([5, 5, 4], 3), ([8, 6], 5)])
def test_optima_with_cuts_equal_optima_without(widths, seed):
    net = random_net(widths, seed)
    maxima, minima, slacks = grid_truth(net)
    bounds = interval_bounds(net, BOX)
    last = len(widths) - 1
    plain = build_layer_model(net, BOX, bounds, last)
    strong = build_layer_model(net, BOX, bounds, last, ideal_cuts=True)
    assert plain.cuts is None and strong.cuts is not None
    for neuron in range(widths[-1]):
        for sense in ("maximize", "minimize"):
            values = []
            for layer_model in (plain, strong):
                layer_model.model.setObjective(layer_model.g[neuron], sense)
                layer_model.model.optimize()
                assert layer_model.model.getStatus() == "optimal"
                values.append(layer_model.model.getObjVal())
                layer_model.model.freeTransform()
            assert values[1] == pytest.approx(values[0], abs=1e-6)
            truth = maxima[last][neuron] if sense == "maximize" else minima[last][neuron]
            assert abs(values[1] - truth) <= slacks[last][neuron] + 1e-6
    assert strong.cuts.cuts > 0, "no cut was ever separated: the test would not see a wrong one"


def test_neurons_with_too_many_inputs_get_no_cuts():
    model = Model()
    inputs = tuple(model.addVar(f"v{i}", lb=0.0, ub=1.0) for i in range(MAX_INPUTS + 1))
    out, active = model.addVar("h", lb=0.0), model.addVar("s", vtype="B")
    wide = ReluEncoding(inputs, np.ones(MAX_INPUTS + 1), np.zeros(MAX_INPUTS + 1), np.ones(MAX_INPUTS + 1), -1.0,
                        out, active)
    narrow = ReluEncoding(inputs[:MAX_INPUTS], np.ones(MAX_INPUTS), np.zeros(MAX_INPUTS), np.ones(MAX_INPUTS), -1.0,
                          out, active)
    assert include_ideal_cuts(model, [wide]) is None
    assert include_ideal_cuts(model, [wide, narrow]).relus == [narrow]
