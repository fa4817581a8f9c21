"""Single MILP with in-solve harvesting against dense grids (2 inputs) and per-neuron solves, from no witnesses."""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest
import pyscipopt
from nets import grid_extremes, random_net

from exactcompress.engine.bounds import LayerBounds, propagate
from exactcompress.engine.domain import Box
from exactcompress.engine.network import Network
from exactcompress.engine.prove.encoding import proof_margins
from exactcompress.engine.prove.per_neuron import solve_layer
from exactcompress.engine.prove.single_milp import SingleMilpResult, solve_network
from exactcompress.engine.witnesses import WitnessSet
from exactcompress.tolerances import BOUND_MARGIN, MILP_RELATIVE_MARGIN, WITNESS_MARGIN

BOX = Box(-np.ones(2), np.ones(2))
GRID = 401


def bound_masks(bounds):
    return [b.upper <= -BOUND_MARGIN for b in bounds], [b.lower >= BOUND_MARGIN for b in bounds]


def solve(net: Network, bounds, witnesses=None, box=BOX, deadline=None, masks=None) -> SingleMilpResult:
    inactive, active = masks if masks is not None else bound_masks(bounds)
    return solve_network(net, box, bounds, witnesses or WitnessSet.empty(net), stably_inactive=inactive,
                         stably_active=active, deadline=deadline)


def assert_witnesses_reproduce(net: Network, result: SingleMilpResult, box: Box = BOX) -> None:
    points = result.witnesses.points
    assert np.all(box.contains(points))
    g = net.preactivations(points) if len(points) else None
    for layer in range(len(net.hidden)):
        for found, sign in ((result.witnesses.positive[layer], 1), (result.witnesses.negative[layer], -1)):
            for neuron in np.flatnonzero(found >= 0):
                assert sign * g[layer][found[neuron], neuron] > WITNESS_MARGIN


def grid_slack(net: Network) -> list[np.ndarray]:
    """Per layer a Lipschitz bound on how far the true extreme can lie beyond the grid's."""
    gain, out = np.ones(2), []
    for layer in net.hidden:
        gain = np.abs(layer.weight) @ gain
        out.append(gain * (1.0 / (GRID - 1)) * 1.01 + 1e-9)
    return out


@pytest.mark.parametrize("seed, widths, shift",
                         [(2, [8, 8], 2.0), (6, [5, 5, 4], 1.0), (11, [8, 8], 2.0), (9, [5, 5, 4], 1.0)])
def test_proofs_match_grid_and_per_neuron(seed, widths, shift):
    net = random_net(seed, 2, widths, bias_shift=shift)
    bounds = propagate(net, BOX)
    by_bounds_inactive, by_bounds_active = bound_masks(bounds)
    result = solve(net, bounds)
    assert result.finished and result.open_states > 0
    assert result.solutions_harvested + result.lp_points_harvested > 0 and result.states_fixed > 0
    assert_witnesses_reproduce(net, result)
    extremes, slacks = grid_extremes(net, -1.0, 1.0, GRID), grid_slack(net)
    proved_somewhere = 0
    for layer, ((grid_max, grid_min), slack) in enumerate(zip(extremes, slacks)):
        inactive = result.proved_inactive[layer] | by_bounds_inactive[layer]
        active = result.proved_active[layer] | by_bounds_active[layer]
        assert not np.any(inactive & (grid_max > 0)), "claimed inactive but positive on the grid"
        assert not np.any(active & (grid_min < 0)), "claimed active but negative on the grid"
        assert np.all(inactive[grid_max + slack < -1e-6]) and np.all(active[grid_min - slack > 1e-6])
        unstable = (grid_max > 1e-3) & (grid_min < -1e-3)
        assert np.all(result.witnesses.positive[layer][unstable] >= 0)
        assert np.all(result.witnesses.negative[layer][unstable] >= 0)
        # no state was given up in the tolerance band: each sign is witnessed or proven impossible
        assert np.all((result.witnesses.positive[layer] >= 0) | inactive)
        assert np.all((result.witnesses.negative[layer] >= 0) | active)
        # the per-neuron method on the same bounds proves exactly the same neurons
        width = net.hidden_widths[layer]
        everything = np.ones(width, bool)
        per_neuron = solve_layer(net, BOX, bounds, layer, ask_max=everything, ask_min=everything, mode="optimize")
        np.testing.assert_array_equal(result.proved_inactive[layer],
                                      per_neuron.proved_inactive & ~by_bounds_inactive[layer])
        np.testing.assert_array_equal(result.proved_active[layer], per_neuron.proved_active & ~by_bounds_active[layer])
        proved_somewhere += int(result.proved_inactive[layer].sum() + result.proved_active[layer].sum())
    assert proved_somewhere > 0, "the net should need the MILP for some proof"
    assert result.dual_trace and result.dual_trace[-1][1] < 1


def test_no_stable_neuron_every_state_is_harvested():
    net = random_net(8, 2, [6, 5])
    for grid_max, grid_min in grid_extremes(net, -1.0, 1.0, GRID):
        assert np.all(grid_max > 1e-2) and np.all(grid_min < -1e-2)  # precondition: every neuron is unstable
    # loose bounds: nothing settled by bounds, every neuron-sign is a state the solve must witness
    bounds = [LayerBounds(b.lower - 1.0, b.upper + 1.0) for b in propagate(net, BOX)]
    result = solve(net, bounds)
    assert result.finished and result.open_states == 2 * net.n_neurons
    assert result.states_fixed == result.open_states
    assert not any(a.any() for a in result.proved_inactive + result.proved_active)
    assert all(np.all(found >= 0) for found in result.witnesses.positive + result.witnesses.negative)
    assert_witnesses_reproduce(net, result)
    # nothing left open: an immediate return
    again = solve(net, bounds, witnesses=result.witnesses)
    assert again.finished and again.open_states == 0 and again.nodes == 0


def test_whole_layer_stably_active_with_loose_bounds():
    rng = np.random.default_rng(3)
    w0, b0 = rng.normal(size=(6, 2)), rng.normal(size=6)
    w1 = rng.normal(size=(4, 6))
    b1 = np.abs(w1) @ (np.abs(w0).sum(axis=1) + np.abs(b0)) + 0.5  # every g of layer 1 is >= 0.5 on the box
    net = Network.from_arrays([w0, w1, rng.normal(size=(1, 4))], [b0, b1, np.zeros(1)], dtype="float64")
    exact = propagate(net, BOX)
    bounds = [exact[0], LayerBounds(np.minimum(exact[1].lower, 0.0) - 1.0, exact[1].upper)]  # valid, but settle nothing
    assert np.all(bounds[1].lower < 0)
    result = solve(net, bounds)
    assert result.finished and result.proved_active[1].all() and not result.proved_inactive[1].any()
    assert np.all(grid_extremes(net, -1.0, 1.0, GRID)[1][1] > 0)
    assert_witnesses_reproduce(net, result)


def band_net(extremes: list[float], depth: int) -> Network:
    """Hidden layer ``depth`` (0 or 1) holds, per c in ``extremes``, a neuron with max g = c (at x = (1, 1))
    followed by one with min g = -c (at x = (1, 1)); at depth 1 it sits behind relu(x + 1), relu(1 - x), which
    carry x exactly on the box."""
    weights = np.array([[s, s] for _ in extremes for s in (1.0, -1.0)])
    biases = np.array([b for c in extremes for b in (c - 2.0, 2.0 - c)])
    rng = np.random.default_rng(0)
    head = [rng.normal(size=(3, weights.shape[0])), rng.normal(size=(1, 3))], [rng.normal(size=3), np.zeros(1)]
    if depth == 0:
        return Network.from_arrays([weights, *head[0]], [biases, *head[1]], dtype="float64")
    identity = np.vstack([np.eye(2), -np.eye(2)])  # x = (relu(x + 1) - relu(1 - x)) / 2 on [-1, 1]
    return Network.from_arrays([identity, 0.5 * np.hstack([weights, -weights]), *head[0]],
                               [np.ones(4), biases, *head[1]], dtype="float64")


@pytest.mark.parametrize("depth", [0, 1])
def test_extremes_in_and_near_the_tolerance_band(depth):
    extremes = [1e-5, -1e-3, -1e-7, 1e-7, -2e-6]
    net = band_net(extremes, depth)
    g = net.preactivations(np.ones((1, 2)))[depth][0]
    np.testing.assert_allclose(g[::2], extremes, rtol=0, atol=1e-15)  # max of the even neurons
    np.testing.assert_allclose(g[1::2], [-c for c in extremes], rtol=0, atol=1e-15)  # min of the odd ones
    exact = propagate(net, BOX)
    bounds = propagate(net, BOX, known=[LayerBounds(b.lower - 1.0, b.upper + 1.0) for b in exact[: depth + 1]])
    nothing = [np.zeros(w, bool) for w in net.hidden_widths]
    result = solve(net, bounds, masks=(nothing, nothing))
    assert result.finished
    assert_witnesses_reproduce(net, result)
    inactive, active = (masks[depth].reshape(-1, 2) for masks in (result.proved_inactive, result.proved_active))
    positive, negative = result.witnesses.positive[depth].reshape(-1, 2), result.witnesses.negative[depth].reshape(-1, 2)
    # a state given up in the band is neither proven nor witnessed
    ambiguous = np.stack([~inactive[:, 0] & (positive[:, 0] < 0), ~active[:, 1] & (negative[:, 1] < 0)], axis=1)
    # column 0: neuron with max = c (inactive side); column 1: neuron with min = -c (active side)
    # each row's terms add up to at most |c - 2| + 2 at depth 0, |c - 2| + 6 at depth 1 (over its inputs' bounds,
    # loosened by 1 here), so its margin is about 4e-6 or 8e-6: only -1e-3 lies beyond it; -2e-6, beyond the
    # absolute MILP_MARGIN, is inside the band of its row
    margins = proof_margins(net, BOX, bounds, depth)[::2]
    sizes = np.abs(np.array(extremes) - 2) + (2, 6)[depth]
    np.testing.assert_allclose(margins, MILP_RELATIVE_MARGIN * sizes, rtol=1e-9)
    expected_proved = [False, True, False, False, False]
    np.testing.assert_array_equal(np.array(extremes) <= -margins, expected_proved)
    np.testing.assert_array_equal(inactive[:, 0], expected_proved)
    np.testing.assert_array_equal(active[:, 1], expected_proved)
    assert not inactive[:, 1].any() and not active[:, 0].any()
    assert ambiguous[2].all(), "an extreme of -1e-7 is in the band: it can be neither witnessed nor proven"
    assert ambiguous[4].all(), "an extreme of -2e-6 is in its row's band: it can be neither witnessed nor proven"
    # extremes of +1e-5 and +1e-7 have witnesses (g > WITNESS_MARGIN), which the solve finds or leaves undecided
    assert np.all((positive[[0, 3], 0] >= 0) | ambiguous[[0, 3], 0])
    assert np.all((negative[[0, 3], 1] >= 0) | ambiguous[[0, 3], 1])


def test_a_state_given_up_again_and_again_is_abandoned_and_the_solve_finishes():
    """A neuron with g = h8 - h9 = 0 everywhere (h9 duplicates h8): both its states lie in the tolerance band, so
    every integral LP point claiming them is given up. Before states were abandoned, the solve split on them at node
    after node and ran to its 20 s limit (about 100,000 nodes); now it finishes, the band neuron neither proved nor
    witnessed."""
    rng = np.random.default_rng(0)
    first, first_bias = rng.normal(size=(10, 4)), rng.normal(size=10) * 0.5
    first[9], first_bias[9] = first[8], first_bias[8]
    second, second_bias = rng.normal(size=(7, 10)), rng.normal(size=7) * 0.5
    second[6], second_bias[6] = 0.0, 0.0
    second[6, 8], second[6, 9] = 1.0, -1.0
    net = Network.from_arrays([first, second, rng.normal(size=(1, 7))], [first_bias, second_bias, np.zeros(1)],
                              dtype="float64")
    box = Box(-np.ones(4), np.ones(4))
    nothing = [np.zeros(w, bool) for w in net.hidden_widths]
    result = solve(net, propagate(net, box), box=box, deadline=time.monotonic() + 20, masks=(nothing, nothing))
    assert result.finished and result.nodes < 10_000
    assert_witnesses_reproduce(net, result, box)
    assert not result.proved_inactive[1][6] and not result.proved_active[1][6]
    assert result.witnesses.positive[1][6] < 0 and result.witnesses.negative[1][6] < 0


def test_past_deadline_proves_nothing_and_returns_at_once():
    net = random_net(2, 2, [8, 8], bias_shift=2.0)
    start = time.monotonic()
    result = solve(net, propagate(net, BOX), deadline=time.monotonic() - 1.0)
    assert time.monotonic() - start < 1.0
    assert not result.finished and result.nodes == 0
    assert not any(a.any() for a in result.proved_inactive + result.proved_active)


def test_short_deadline_on_a_larger_net_makes_no_false_claim():
    net = random_net(5, 10, [30, 30], bias_shift=2.0)
    box = Box(np.zeros(10), np.ones(10))
    bounds = propagate(net, box)
    start = time.monotonic()
    result = solve(net, bounds, box=box, deadline=time.monotonic() + 1.0)
    assert time.monotonic() - start < 5.0
    assert_witnesses_reproduce(net, result, box)
    g = net.preactivations(box.sample(20000, np.random.default_rng(0)))
    for layer in range(2):
        assert not np.any(g[layer][:, result.proved_inactive[layer]] > 0)
        assert not np.any(g[layer][:, result.proved_active[layer]] < 0)
    if not result.finished:
        assert not any(a.any() for a in result.proved_inactive + result.proved_active)


def test_invalid_bounds_raise_instead_of_claiming():
    net = random_net(2, 2, [8, 8], bias_shift=2.0)
    bounds = propagate(net, BOX)
    wrong = LayerBounds(bounds[0].lower.copy(), bounds[0].upper.copy())
    unstable = int(np.flatnonzero((wrong.lower < 0) & (wrong.upper > 0))[0])
    wrong.lower[unstable], wrong.upper[unstable] = wrong.upper[unstable] + 1.0, wrong.upper[unstable] + 2.0  # empty model
    with pytest.raises(RuntimeError):
        solve(net, [wrong, bounds[1]])


def test_an_error_inside_a_plugin_is_raised_not_swallowed(monkeypatch):
    import exactcompress.engine.prove.single_milp as single_milp

    def broken(*args, **kwargs):
        raise ValueError("forward pass failed")

    monkeypatch.setattr(single_milp, "record", broken)
    net = random_net(2, 2, [8, 8], bias_shift=2.0)
    with pytest.raises(RuntimeError, match="forward pass failed"):
        solve(net, propagate(net, BOX))


def live_scip_models() -> int:
    return sum(type(thing) is pyscipopt.Model for thing in gc.get_objects())


def test_scip_is_freed_when_a_solve_returns_or_raises():
    """Plugins and their model refer to each other, so without an explicit free SCIP's memory waited for Python's
    cyclic garbage collector: here it is disabled, and no model may outlive its solve."""
    net = random_net(2, 2, [8, 8], bias_shift=2.0)
    bounds = propagate(net, BOX)
    wrong = LayerBounds(bounds[0].lower.copy(), bounds[0].upper.copy())
    unstable = int(np.flatnonzero((wrong.lower < 0) & (wrong.upper > 0))[0])
    wrong.lower[unstable], wrong.upper[unstable] = wrong.upper[unstable] + 1.0, wrong.upper[unstable] + 2.0
    everything = np.ones(net.hidden_widths[1], bool)
    gc.collect()
    gc.disable()
    try:
        before = live_scip_models()
        assert solve(net, bounds).finished  # harvesting plugins
        assert live_scip_models() == before
        solve_layer(net, BOX, bounds, 1, ask_max=everything, ask_min=everything, mode="sign")  # ideal-cut separator
        assert live_scip_models() == before
        with pytest.raises(RuntimeError):
            solve(net, [wrong, bounds[1]])
        assert live_scip_models() == before
    finally:
        gc.enable()
