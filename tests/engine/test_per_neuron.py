"""Per-neuron MILPs against a dense-grid ground truth on tiny 2-input networks over [-1, 1]^2."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from exactcompress.engine.bounds import LayerBounds, propagate
from exactcompress.engine.domain import Box
from exactcompress.engine.network import Network
from exactcompress.engine.prove.encoding import build_layer_model, proof_margins
from exactcompress.engine.prove.parallel import thread_map
from exactcompress.engine.prove.per_neuron import SIGN_PRIMAL_THRESHOLD, solve_layer
from exactcompress.engine.prove.stop import StopSignal
from exactcompress.tolerances import (
    MILP_AGGRESSIVE_RELATIVE_MARGIN,
    MILP_MARGIN,
    MILP_RELATIVE_MARGIN,
    WITNESS_MARGIN,
)

BOX = Box(-np.ones(2), np.ones(2))
GRID = 600


def random_net(widths: list[int], seed: int) -> Network:
    """2 inputs, hidden ``widths``, 1 output; biases shifted so that several neurons are stable."""
    rng = np.random.default_rng(seed)
    sizes = [2, *widths, 1]
    weights = [rng.normal(size=(out, inp)) for inp, out in zip(sizes, sizes[1:])]
    biases = [rng.normal(size=out) + rng.choice([-1.5, 0.0, 1.5], size=out) for out in sizes[1:]]
    return Network.from_arrays(weights, biases, dtype="float64")


def interval_bounds(net: Network, box: Box) -> list[LayerBounds]:
    lower, upper, out = box.lower, box.upper, []
    for layer in net.hidden:
        positive, negative = np.maximum(layer.weight, 0), np.minimum(layer.weight, 0)
        g_lower = positive @ lower + negative @ upper + layer.bias
        g_upper = positive @ upper + negative @ lower + layer.bias
        out.append(LayerBounds(g_lower, g_upper))
        lower, upper = np.maximum(g_lower, 0), np.maximum(g_upper, 0)
    return out


def grid_truth(net: Network) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per layer: grid max, grid min and a Lipschitz slack such that true max <= grid max + slack."""
    axis = np.linspace(-1, 1, GRID)
    points = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    half_step = 1.0 / (GRID - 1)
    gain, maxima, minima, slacks = np.ones(2), [], [], []
    for g, layer in zip(net.preactivations(points), net.hidden):
        gain = np.abs(layer.weight) @ gain
        maxima.append(g.max(axis=0))
        minima.append(g.min(axis=0))
        slacks.append(gain * half_step * 1.01 + 1e-9)
    return maxima, minima, slacks


def everything(width: int) -> np.ndarray:
    return np.ones(width, dtype=bool)


@pytest.mark.parametrize("widths, seed, bound_target", [([6, 5], 0, False), ([4, 4, 3], 1, True), ([6, 5], 7, True)])
def test_optimize_matches_grid_layer_by_layer(widths, seed, bound_target):
    net = random_net(widths, seed)
    maxima, minima, slacks = grid_truth(net)
    intervals = interval_bounds(net, BOX)
    bounds: list[LayerBounds] = []
    for layer, width in enumerate(net.hidden_widths):
        given = [*bounds, intervals[layer]] if bound_target else bounds
        solve = solve_layer(net, BOX, given, layer, ask_max=everything(width), ask_min=everything(width), mode="optimize")
        widen_up = MILP_MARGIN * (1 + np.abs(maxima[layer])) + 1e-7
        widen_low = MILP_MARGIN * (1 + np.abs(minima[layer])) + 1e-7
        assert np.all(solve.upper >= maxima[layer] - 1e-7), "MILP max below a grid value: unsound"
        assert np.all(solve.lower <= minima[layer] + 1e-7), "MILP min above a grid value: unsound"
        assert np.all(solve.upper <= maxima[layer] + slacks[layer] + widen_up)
        assert np.all(solve.lower >= minima[layer] - slacks[layer] - widen_low)
        assert solve.solves == 2 * width and not solve.timed_out.any()
        assert np.all(BOX.contains(solve.candidates)) and len(solve.candidates) > 0
        np.testing.assert_array_equal(solve.proved_inactive, solve.upper < 0)
        bounds.append(LayerBounds(solve.lower, solve.upper))


@pytest.mark.parametrize("widths, seed, bound_target", [([6, 5], 0, False), ([4, 4, 3], 1, False), ([6, 5], 7, True),
                                                       ([5, 5, 4], 3, False), ([5, 5, 4], 4, True)])
def test_sign_mode_agrees_with_grid(widths, seed, bound_target):
    net = random_net(widths, seed)
    maxima, minima, slacks = grid_truth(net)
    intervals = interval_bounds(net, BOX)  # looser big-M than MILP bounds: still valid
    proofs = 0
    for layer, width in enumerate(net.hidden_widths):
        given = intervals[: layer + 1] if bound_target else intervals[:layer]
        solve = solve_layer(net, BOX, given, layer, ask_max=everything(width), ask_min=everything(width), mode="sign")
        surely_inactive = maxima[layer] + slacks[layer] < -10 * MILP_MARGIN
        surely_active = minima[layer] - slacks[layer] > 10 * MILP_MARGIN
        assert np.all(solve.proved_inactive[surely_inactive]) and np.all(solve.proved_active[surely_active])
        assert not np.any(solve.proved_inactive & (maxima[layer] > 0)), "proved inactive but the grid shows g > 0"
        assert not np.any(solve.proved_active & (minima[layer] < 0)), "proved active but the grid shows g < 0"
        assert np.all(BOX.contains(solve.candidates))
        g = net.preactivations(solve.candidates)[layer] if len(solve.candidates) else np.zeros((0, width))
        for neuron in range(width):  # every sign the grid shows clearly has a candidate witness
            if maxima[layer][neuron] > 1e-3:
                assert np.any(g[:, neuron] > WITNESS_MARGIN)
            if minima[layer][neuron] < -1e-3:
                assert np.any(g[:, neuron] < -WITNESS_MARGIN)
        proofs += int(solve.proved_inactive.sum() + solve.proved_active.sum())
    assert proofs > 0


def margin_net() -> Network:
    """Layer-0 neurons g = x0 + 0.5 x1 + b with max over the box 1.5 + b and min -1.5 + b (rows of size about 3:
    proof margins of about 3e-6)."""
    offsets = np.array([1e-5, -1e-3, -1e-7])  # max of neurons 0..2; min of neurons 3..5 are +1e-3, -1e-5, 1e-7
    bias = np.concatenate([offsets - 1.5, [1.5 + 1e-3, 1.5 - 1e-5, 1.5 + 1e-7]])
    weight = np.tile([1.0, 0.5], (6, 1))
    return Network.from_arrays([weight, np.ones((1, 6))], [bias, np.zeros(1)], dtype="float64")


@pytest.mark.parametrize("mode", ["sign", "optimize"])
def test_margins_near_zero(mode):
    """max 1e-5: not inactive; max -1e-3: inactive (beyond its margin, about 3e-6); max -1e-7: within the margin,
    not proved (the neuron is truly inactive but too close to 0 for a MILP proof). Mirrored for min."""
    net = margin_net()
    solve = solve_layer(net, BOX, [], 0, ask_max=np.array([1, 1, 1, 0, 0, 0], bool),
                        ask_min=np.array([0, 0, 0, 1, 1, 1], bool), mode=mode)
    np.testing.assert_array_equal(solve.proved_inactive, [False, True, False, False, False, False])
    np.testing.assert_array_equal(solve.proved_active, [False, False, False, True, False, False])
    g = net.preactivations(solve.candidates)[0]
    assert np.any(g[:, 0] > WITNESS_MARGIN) and np.any(g[:, 4] < -WITNESS_MARGIN)  # optima are witnesses
    assert solve.upper[0] >= 1e-5 and solve.upper[1] >= -1e-3 and solve.lower[3] <= 1e-3
    assert np.all(np.isinf(solve.upper[3:])) and np.all(np.isinf(solve.lower[:3]))  # not asked, no bound given


def test_dual_bound_sense_on_first_layer():
    """With no given bounds, max g gives the exact interval upper bound and min g the lower one (layer 0 is affine)."""
    net = random_net([6, 5], 2)
    exact = interval_bounds(net, BOX)[0]
    solve = solve_layer(net, BOX, [], 0, ask_max=everything(6), ask_min=everything(6), mode="optimize")
    margins = proof_margins(net, BOX, [], 0)
    slack = margins + MILP_MARGIN * np.abs(exact.upper) + 1e-5, margins + MILP_MARGIN * np.abs(exact.lower) + 1e-5
    assert np.all(solve.upper - exact.upper <= slack[0]) and np.all(exact.lower - solve.lower <= slack[1])
    assert np.all(solve.upper >= exact.upper) and np.all(solve.lower <= exact.lower)
    np.testing.assert_array_equal(solve.proved_active, exact.lower >= margins)
    np.testing.assert_array_equal(solve.proved_inactive, exact.upper <= -margins)


@pytest.mark.parametrize("mode", ["sign", "optimize"])
def test_no_proof_from_scip_dual_presolving_where_it_loses_the_optimum(mode):
    """Two first-layer neurons of one input (found by the soundness fuzz, ``benchmarks/soundness_fuzz.py``): with the
    interval bounds on both rows and SCIP's feasibility tolerance 1e-9, SCIP's dual reductions in presolving fixed
    ``x`` inside the box and reported max g_0 = -236.04 as optimal, where g_0 reaches +1e-5 at the box's lower end, so
    neuron 0 was "proved" stably inactive. The MILPs here presolve without dual reductions."""
    weight = np.array([[-579.3278466962262], [205.15159763285632]])
    bias = np.array([-35.51623795206024, -441.30879202728954])
    net = Network.from_arrays([weight, np.ones((1, 2))], [bias, np.zeros(1)], dtype="float64")
    box = Box(np.array([-0.06130595681633677]), np.array([0.7535533238580456]))
    true_max = float(weight[0, 0] * box.lower[0] + bias[0])
    assert true_max > 9e-6
    bounds = propagate(net, box)
    solve = solve_layer(net, box, bounds, 0, ask_max=np.array([True, False]), ask_min=np.zeros(2, bool), mode=mode)
    assert not solve.proved_inactive[0]
    assert solve.upper[0] >= true_max


@pytest.mark.parametrize("mode", ["sign", "optimize"])
def test_a_proof_must_clear_the_margin_of_its_row(mode):
    """Two neurons with the same max -5e-6 at x = 1: ``100 x - 100 - 5e-6``, whose row's terms reach 200, is not
    proved; ``0.1 x - 0.1 - 5e-6`` (size 0.2) is. Their bounds stay valid."""
    box = Box(np.zeros(1), np.ones(1))
    net = Network.from_arrays([np.array([[100.0], [0.1]]), np.ones((1, 2))],
                              [np.array([-100.0 - 5e-6, -0.1 - 5e-6]), np.zeros(1)], dtype="float64")
    margins = proof_margins(net, box, [], 0)
    sizes = np.array([200.0 + 5e-6, 0.2 + 5e-6])
    np.testing.assert_allclose(margins, np.maximum(MILP_MARGIN, MILP_RELATIVE_MARGIN * sizes), rtol=1e-9)
    assert margins[0] > 5e-6 > margins[1]
    solve = solve_layer(net, box, [], 0, ask_max=everything(2), ask_min=np.zeros(2, bool), mode=mode)
    np.testing.assert_array_equal(solve.proved_inactive, [False, True])
    assert np.all(solve.upper >= -5e-6)


@pytest.mark.parametrize("mode", ["sign", "optimize"])
def test_aggressive_separation_proves_only_beyond_its_wider_margin(mode):
    """Rows of size about 200 (margins 2e-4, and 2e-3 with aggressive separators): a max of -5e-4 is proved with the
    engine's settings only, a max of -5e-3 with both; the dual bounds stay valid either way."""
    box = Box(np.zeros(1), np.ones(1))
    offsets = np.array([-5e-4, -5e-3])
    net = Network.from_arrays([np.array([[100.0], [100.0]]), np.ones((1, 2))], [offsets - 100.0, np.zeros(1)],
                              dtype="float64")
    wide = proof_margins(net, box, [], 0, MILP_AGGRESSIVE_RELATIVE_MARGIN)
    np.testing.assert_allclose(wide, MILP_AGGRESSIVE_RELATIVE_MARGIN * (200.0 - offsets), rtol=1e-9)
    assert proof_margins(net, box, [], 0)[0] < 5e-4 < wide[0] < 5e-3
    for aggressive, proved in ((False, [True, True]), (True, [False, True])):
        solve = solve_layer(net, box, [], 0, ask_max=everything(2), ask_min=np.zeros(2, bool), mode=mode,
                            aggressive_separation=aggressive)
        np.testing.assert_array_equal(solve.proved_inactive, proved)
        assert np.all(solve.upper >= offsets) and not solve.timed_out.any()


def test_sign_mode_stops_on_the_primal_limit():
    """An active-side question with a large max stops at the first solution past the threshold."""
    net = random_net([6, 5], 0)
    bounds = interval_bounds(net, BOX)
    clearly_positive = grid_truth(net)[0][1] > 1.0
    assert clearly_positive.any()
    solve = solve_layer(net, BOX, bounds, 1, ask_max=clearly_positive, ask_min=np.zeros(5, bool), mode="sign")
    g = net.preactivations(solve.candidates)[1]
    assert np.all(g[:, clearly_positive].max(axis=0) >= SIGN_PRIMAL_THRESHOLD / 2)
    assert not solve.proved_inactive.any() and not solve.timed_out.any()


def test_passed_deadline_proves_nothing():
    net = random_net([4, 4, 3], 1)
    bounds = interval_bounds(net, BOX)
    asked = np.array([True, False, True])
    start = time.monotonic()
    solve = solve_layer(net, BOX, bounds, 2, ask_max=asked, ask_min=asked, mode="sign", deadline=start - 1.0)
    assert time.monotonic() - start < 0.5
    np.testing.assert_array_equal(solve.timed_out, asked)
    assert not solve.proved_inactive.any() and not solve.proved_active.any()
    np.testing.assert_array_equal(solve.upper, bounds[2].upper)
    np.testing.assert_array_equal(solve.lower, bounds[2].lower)
    assert solve.solves == 0 and solve.candidates.shape == (0, 2)


def test_infeasible_model_is_an_error():
    """Wrong (jointly infeasible) bounds must raise, never read as 'every neuron stable'."""
    net = random_net([6, 5], 0)
    bounds = interval_bounds(net, BOX)
    wrong = LayerBounds(bounds[0].upper + 1.0, bounds[0].upper + 2.0)  # g_0 can never reach these values
    with pytest.raises(RuntimeError, match="infeasible"):
        solve_layer(net, BOX, [wrong], 1, ask_max=everything(5), ask_min=everything(5), mode="sign")


def constants_near_scips_epsilon() -> Network:
    """Hidden layer 2 holds constants of about 1e-10 (a dead neuron of layer 1 with bias 1e-9 times small weights),
    whose interval bounds are only ~2e-12 wide, and one constant 0.3 (from soundness_fuzz.py, seed 16, net 128)."""
    weights = [np.array([[1.0, -0.5], [0.3, 0.8]]), np.array([[0.0, 0.0]]),
               np.array([[0.180260179175233], [-0.155225557539866], [-0.842723065780782], [-0.685232257824964],
                         [-1.28184166047768], [0.0]]), np.ones((1, 6))]
    biases = [np.array([0.1, -0.2]), np.array([1e-9]),
              np.array([0.0, 0.0, -8.42723065780782e-10, -1.0685232257825e-08, 0.0, 0.3]), np.zeros(1)]
    return Network.from_arrays(weights, biases)


@pytest.mark.parametrize("mode", ["optimize", "sign"])
def test_bounds_narrower_than_scips_epsilon_leave_the_model_feasible(mode):
    """Stated exactly, such bounds made SCIP's presolve call the whole model infeasible (optimize mode raised; sign
    mode read every hypothesis as refuted); widened by SCIP_BOUND_PAD the questions are answered."""
    net = constants_near_scips_epsilon()
    solve = solve_layer(net, BOX, propagate(net, BOX), 2, ask_max=everything(6), ask_min=everything(6), mode=mode)
    assert not solve.proved_inactive.any()
    np.testing.assert_array_equal(solve.proved_active, [False] * 5 + [True])


def test_no_proof_from_a_hypothesis_where_the_model_alone_is_infeasible(monkeypatch):
    """A model that SCIP finds infeasible without any hypothesis refutes every hypothesis: that must fail the solve,
    never prove the neuron stable in both directions."""
    import exactcompress.engine.prove.per_neuron as per_neuron

    def broken(*args, **kwargs):  # a model SCIP cannot satisfy, as its numerics once made one
        layer_model = build_layer_model(*args, **kwargs)
        layer_model.model.addCons(layer_model.x[0] >= 2.0)  # outside the box [-1, 1]^2
        return layer_model

    monkeypatch.setattr(per_neuron, "build_layer_model", broken)
    net = random_net([4, 3], 2)
    with pytest.raises(RuntimeError, match="no proof is taken"):
        solve_layer(net, BOX, propagate(net, BOX), 1, ask_max=everything(3), ask_min=everything(3), mode="sign")


class _DualLimitInsteadOfInfeasible:
    """A SCIP model that reports "duallimit" with its dual limit as the bound where SCIP found it infeasible under a
    sign solve's hypothesis: the same claim (no input reaches the hypothesis) in the other form SCIP can state it."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    def _hypothesis_refuted(self):
        return self._model.getStatus() == "infeasible" and abs(self._model.getParam("limits/dual")) < 1e98

    def getStatus(self):
        return "duallimit" if self._hypothesis_refuted() else self._model.getStatus()

    def getDualbound(self):
        return self._model.getParam("limits/dual") if self._hypothesis_refuted() else self._model.getDualbound()


def test_no_proof_from_a_dual_bound_at_the_hypothesis_where_the_model_alone_is_infeasible(monkeypatch):
    """A sign solve that stops at its dual limit says what a refuted hypothesis says; where SCIP cannot find a point
    of the model at all, neither may prove the neuron stable."""
    import dataclasses

    import exactcompress.engine.prove.per_neuron as per_neuron

    def broken(*args, **kwargs):
        layer_model = build_layer_model(*args, **kwargs)
        layer_model.model.addCons(layer_model.x[0] >= 2.0)  # outside the box [-1, 1]^2
        return dataclasses.replace(layer_model, model=_DualLimitInsteadOfInfeasible(layer_model.model))

    monkeypatch.setattr(per_neuron, "build_layer_model", broken)
    net = random_net([4, 3], 2)
    with pytest.raises(RuntimeError, match="no proof is taken"):
        solve_layer(net, BOX, propagate(net, BOX), 1, ask_max=everything(3), ask_min=everything(3), mode="sign")


def test_a_point_of_a_relaxed_model_does_not_stand_in_for_the_model_alone(monkeypatch):
    """A question's solve relaxes its phase-free binaries, so its solution is a point of a relaxation only; taken as a
    point of the model (found by a review), it let later refutations skip the check, and a model SCIP cannot
    satisfy with its binaries integral "proved" neurons whose minima are -3.2, -0.56 and -1.6 stably active."""
    import exactcompress.engine.prove.per_neuron as per_neuron

    rng = np.random.default_rng(2)
    sizes = [2, 4, 3, 1]
    net = Network.from_arrays([rng.normal(size=(o, i)) for i, o in zip(sizes, sizes[1:])],
                              [rng.normal(size=o) + rng.choice([-1.5, 0.0, 1.5], size=o) for o in sizes[1:]])

    def broken(*args, **kwargs):
        layer_model = build_layer_model(*args, **kwargs)
        weights = net.hidden[1].weight[0]
        relaxed_by_the_first_question = next(binary for binary, weight in zip(layer_model.z_below, weights)
                                             if binary is not None and weight <= 0)
        layer_model.model.addCons(relaxed_by_the_first_question == 0.5)  # satisfiable only where it is relaxed
        return layer_model

    monkeypatch.setattr(per_neuron, "build_layer_model", broken)
    with pytest.raises(RuntimeError, match="no proof is taken"):
        solve_layer(net, BOX, propagate(net, BOX), 1, ask_max=everything(3), ask_min=everything(3), mode="sign")


def test_sign_solves_return_bounds_valid_where_their_hypothesis_is_false():
    """A sign solve of max g_j states g_j >= -m; where no input satisfies it, the dual bound SCIP stops with says
    nothing about g_j. The returned bound is the weaker of it and -m (the mirror for min). On this net (weights near
    -1e3, found by a review) the bound returned for neuron 0 was -0.23 where its maximum is -0.057, and the next
    layer's big-M used it."""
    weights = [np.array([[0.16896517943704198, -999.2073884887101], [0.7578072102733953, -998.1189738857807],
                         [1.555657850196471, -1.6711822478750038], [0.9366335755557045, -1.0798874964107446]]),
               np.array([[-1.3894935551890548, 0.749714038050878, -0.6637461649694971, -0.2774606662465995],
                         [1.1084840430363248, -0.62494802561938, -0.8568428776511895, 0.36520937495405337]]),
               np.ones((1, 2))]
    biases = [np.array([0.6307998123612263, 0.2835963426348868, -0.757617354743083, -0.30632718168832]),
              np.array([-0.056851158035962496, 0.6043170270166096]), np.zeros(1)]
    net, box = Network.from_arrays(weights, biases), Box(np.zeros(2), np.ones(2))
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 401), np.linspace(0, 1, 401)), -1).reshape(-1, 2)
    probes = np.concatenate([grid, [[0.32784302173268404, 0.00068673818394531], [0.0, 0.0]]])
    values = net.preactivations(probes)[1]
    solve = solve_layer(net, box, propagate(net, box), 1, ask_max=everything(2), ask_min=everything(2), mode="sign")
    assert np.all(solve.upper >= values.max(axis=0)) and np.all(solve.lower <= values.min(axis=0))
    assert solve.proved_inactive[0] and values[:, 0].max() < -0.05  # the proof itself stands


def test_no_milp_on_weights_beyond_scips_reliable_range():
    """With a first-layer weight of -1e6 SCIP's presolve lost a thin region of the box and 'proved' a neuron whose
    minimum is -1e-8 to be >= +0.076. Such a net gets no MILP at all: SolverError, nothing claimed."""
    net = Network.from_arrays([np.array([[-1e6, 1.0], [0.5, 0.5]]), np.array([[1.0, 1.0]]), np.ones((1, 1))],
                              [np.array([0.1, 0.0]), np.array([-0.2]), np.zeros(1)])
    box = Box(np.zeros(2), np.ones(2))
    with pytest.raises(RuntimeError, match="beyond what SCIP solves reliably"):
        solve_layer(net, box, propagate(net, box), 1, ask_max=everything(1), ask_min=everything(1), mode="sign")


def test_a_net_beyond_scips_range_is_left_undecided_with_the_reason():
    """The per-neuron method on such a net claims nothing from SCIP: its questions stay undecided (partial), the
    policy says why, and the model does not fail (the single MILP's failure was already handled so)."""
    from exactcompress.engine.analyze import analyze
    from exactcompress.engine.domain import Domain

    net = Network.from_arrays([np.array([[-1e6, 1.0], [0.5, 0.5]]), np.array([[1.0, 1.0]]), np.ones((1, 1))],
                              [np.array([0.1, 0.0]), np.array([-0.2]), np.zeros(1)])
    analysis = analyze(net, Domain("box", (Box(np.zeros(2), np.ones(2)),)), method="per-neuron",
                       time_limit=30)
    assert "beyond what SCIP solves reliably" in analysis.policy
    assert not any(inactive.any() or active.any() for inactive, active
                   in zip(analysis.stably_inactive[1:], analysis.stably_active[1:]))


@pytest.mark.parametrize("parallel_map", [None, thread_map])
def test_two_workers_match_one(parallel_map):
    net = random_net([4, 4, 3], 1)
    bounds = interval_bounds(net, BOX)
    kwargs = dict(ask_max=everything(4), ask_min=everything(4), mode="optimize")
    one = solve_layer(net, BOX, bounds, 1, **kwargs)
    two = solve_layer(net, BOX, bounds, 1, workers=2, parallel_map=parallel_map, **kwargs)
    np.testing.assert_array_equal(one.proved_inactive, two.proved_inactive)
    np.testing.assert_array_equal(one.proved_active, two.proved_active)
    np.testing.assert_allclose(one.upper, two.upper, atol=1e-6)
    np.testing.assert_allclose(one.lower, two.lower, atol=1e-6)
    assert one.solves == two.solves == 8


def test_thread_map_runs_every_tuple_at_once_in_this_process_and_keeps_their_order():
    together = threading.Barrier(3, timeout=10.0)  # passes only when all three calls run at the same time

    def job(index):
        together.wait()
        return index, threading.current_thread().name

    results = thread_map(job, [(0,), (1,), (2,)])
    assert [index for index, _ in results] == [0, 1, 2]
    assert all(name.startswith("exactcompress solves") for _, name in results)


def harder_net() -> tuple[Network, Box]:
    """10 inputs in [-1, 1], hidden 40-40-40: optimising one third-layer neuron takes SCIP over 40 s here."""
    rng = np.random.default_rng(5)
    sizes = [10, 40, 40, 40, 1]
    weights = [rng.normal(size=(out, inp)) / np.sqrt(inp) for inp, out in zip(sizes, sizes[1:])]
    net = Network.from_arrays(weights, [rng.normal(size=out) * 0.1 for out in sizes[1:]], dtype="float64")
    return net, Box(-np.ones(10), np.ones(10))


def test_deadline_during_a_solve():
    """A deadline that cuts the first solve of a harder MILP: that question and all later ones stay unsettled."""
    net, box = harder_net()
    bounds = interval_bounds(net, box)
    start = time.monotonic()
    solve = solve_layer(net, box, bounds, 2, ask_max=everything(40), ask_min=np.zeros(40, bool), mode="optimize",
                        deadline=start + 0.5)
    assert time.monotonic() - start < 3.0
    assert solve.solves >= 1 and solve.timed_out.all()
    assert not solve.proved_inactive.any() and not solve.proved_active.any()
    np.testing.assert_array_equal(solve.upper, bounds[2].upper)


def test_failed_recheck_reruns_without_the_primal_limit(monkeypatch):
    """If a solution past the primal threshold does not show the sign in float64, the solve goes on to a proof.

    The float64 re-check is made to fail on every solution: each question that stopped at a solution is
    solved again without the primal limit, and the proofs must be those of the normal run."""
    net = random_net([6, 5], 7)
    bounds = interval_bounds(net, BOX)[:1]
    kwargs = dict(ask_max=everything(5), ask_min=np.zeros(5, bool), mode="sign")
    normal = solve_layer(net, BOX, bounds, 1, **kwargs)
    monkeypatch.setattr("exactcompress.engine.prove.per_neuron._shows_sign", lambda *args: False)
    rerun = solve_layer(net, BOX, bounds, 1, **kwargs)
    assert rerun.solves > normal.solves == 5
    assert normal.proved_inactive.sum() == 2
    np.testing.assert_array_equal(rerun.proved_inactive, normal.proved_inactive)


def test_phase_free_binaries_change_no_optimum_and_relaxing_every_binary_would(monkeypatch):
    # the rule relaxes a question's binaries of the layer below whose weight sign cannot help it; the optima
    # must equal those of the full encoding, while relaxing the other binaries too must loosen some of them
    import exactcompress.engine.prove.per_neuron as per_neuron

    net = random_net([8, 8, 6], 11)
    bounds = interval_bounds(net, BOX)
    everything_asked = dict(ask_max=everything(8), ask_min=everything(8), mode="optimize")
    relaxed_counts = []
    rule = per_neuron.phase_free_binaries

    def counting_rule(layer_model, weights_in, sense):
        chosen = rule(layer_model, weights_in, sense)
        relaxed_counts.append(len(chosen))
        return chosen

    monkeypatch.setattr(per_neuron, "phase_free_binaries", counting_rule)
    with_rule = solve_layer(net, BOX, bounds[:1], 1, **everything_asked)
    assert sum(relaxed_counts) > 0
    monkeypatch.setattr(per_neuron, "phase_free_binaries", lambda *args: [])
    exact = solve_layer(net, BOX, bounds[:1], 1, **everything_asked)
    np.testing.assert_allclose(with_rule.upper, exact.upper, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(with_rule.lower, exact.lower, rtol=1e-6, atol=1e-6)
    monkeypatch.setattr(per_neuron, "phase_free_binaries",
                        lambda layer_model, weights_in, sense: [z for z in layer_model.z_below if z is not None])
    loose = solve_layer(net, BOX, bounds[:1], 1, **everything_asked)
    assert np.all(loose.upper >= exact.upper - 1e-6) and np.any(loose.upper > exact.upper + 1e-3)


def test_a_stop_signal_from_another_thread_ends_the_running_solve():
    """One long solve (over 40 s alone) in a thread, stopped after 0.5 s from this one: it ends within seconds,
    proves nothing and keeps the given bound."""
    net, box = harder_net()
    bounds = interval_bounds(net, box)
    ask = np.zeros(40, bool)
    ask[0] = True
    stop, results = StopSignal(), []
    thread = threading.Thread(target=lambda: results.append(solve_layer(
        net, box, bounds, 2, ask_max=ask, ask_min=np.zeros(40, bool), mode="optimize",
        deadline=time.monotonic() + 60, stop=stop)))
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive()
    until = time.monotonic() + 5.0
    while thread.is_alive() and time.monotonic() < until:  # repeated, as its docstring asks of a waiting caller
        stop.set()
        thread.join(0.05)
    assert not thread.is_alive()
    (solve,) = results
    assert solve.timed_out[0] and not solve.proved_inactive.any() and not solve.proved_active.any()
    assert solve.upper[0] == bounds[2].upper[0]


def test_a_stop_signal_set_before_the_solves_start_ends_them_at_once():
    net, box = harder_net()
    bounds = interval_bounds(net, box)
    stop = StopSignal()
    stop.set()
    start = time.monotonic()
    solve = solve_layer(net, box, bounds, 2, ask_max=everything(40), ask_min=everything(40), mode="optimize",
                        deadline=start + 60, stop=stop)
    assert time.monotonic() - start < 5.0
    assert solve.timed_out.all() and solve.nodes == 0
    assert not solve.proved_inactive.any() and not solve.proved_active.any()


def test_a_layer_asked_after_the_deadline_starts_no_workers():
    """Each layer after the deadline started a pool of processes (~0.75 s each) that then did nothing."""
    net = random_net([6, 5], 0)

    def no_pool(function, argument_tuples):
        raise AssertionError("a pool was started after the deadline")

    asked = np.ones(5, dtype=bool)
    result = solve_layer(net, BOX, propagate(net, BOX), 1, ask_max=asked, ask_min=asked, mode="sign",
                         deadline=time.monotonic() - 1, workers=2, parallel_map=no_pool)
    assert result.timed_out.all() and result.solves == 0


@pytest.mark.parametrize("method", ["per_neuron", "MILP", "nope"])
def test_analyze_refuses_a_method_it_does_not_know(method):
    """An unknown method ran auto's policy silently (a review found 'per_neuron' and 'MILP' doing so)."""
    from exactcompress.engine.analyze import analyze
    from exactcompress.engine.domain import Domain

    with pytest.raises(ValueError, match="method must be one of auto, per-neuron, milp, bab"):
        analyze(random_net([3, 2], 0), Domain("box", (BOX,)), method=method)
