"""Property tests for interval and symbolic bounds and their propagation."""

from __future__ import annotations

import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from exactcompress.engine.bounds import (
    LayerBounds,
    interval_layer,
    layer_bounds,
    propagate,
    symbolic_layer,
    term_signs,
)
from exactcompress.engine.domain import Box
from exactcompress.engine.network import AffineLayer, Network


def random_network(seed: int, input_dim: int, widths: list[int]) -> Network:
    rng = np.random.default_rng(seed)
    dims = [input_dim, *widths, 2]
    weights = [rng.normal(size=(o, i)) for i, o in zip(dims, dims[1:])]
    biases = [rng.normal(size=o) for o in dims[1:]]
    return Network.from_arrays(weights, biases, dtype="float64")


def random_box(seed: int, input_dim: int) -> Box:
    rng = np.random.default_rng(seed + 1)
    centre = rng.normal(size=input_dim)
    radius = rng.uniform(0.0, 2.0, size=input_dim) * (rng.random(input_dim) > 0.1)  # some flat features
    return Box(centre - radius, centre + radius)


def corners(box: Box) -> np.ndarray:
    bits = (np.arange(2**box.dim)[:, None] >> np.arange(box.dim)) & 1
    return np.where(bits == 1, box.upper, box.lower)


cases = st.tuples(
    st.integers(0, 2**32 - 1),
    st.integers(1, 5),
    st.lists(st.integers(1, 12), min_size=1, max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(cases)
def test_sampled_preactivations_lie_within_propagated_bounds(case):
    seed, input_dim, widths = case
    network, box = random_network(seed, input_dim, widths), random_box(seed, input_dim)
    points = np.concatenate([box.sample(2000, np.random.default_rng(seed)), corners(box)])
    bounds = propagate(network, box)
    assert len(bounds) == len(widths)
    for g, bound in zip(network.preactivations(points), bounds):
        assert np.all(bound.lower <= bound.upper)
        assert np.all(g >= bound.lower) and np.all(g <= bound.upper)


@settings(max_examples=150, deadline=None)
@given(cases)
def test_symbolic_bounds_are_valid_on_their_own_and_equal_interval_at_layer_zero(case):
    seed, input_dim, widths = case
    network, box = random_network(seed, input_dim, widths), random_box(seed, input_dim)
    points = np.concatenate([box.sample(500, np.random.default_rng(seed)), corners(box)])
    below = propagate(network, box)
    first_interval = interval_layer(network.hidden[0], None, box)
    first_symbolic = symbolic_layer(network, box, [], 0)
    np.testing.assert_array_equal(first_symbolic.lower, first_interval.lower)
    np.testing.assert_array_equal(first_symbolic.upper, first_interval.upper)
    for index, g in enumerate(network.preactivations(points)):
        symbolic = symbolic_layer(network, box, below, index)
        assert np.all(g >= symbolic.lower) and np.all(g <= symbolic.upper)


@settings(max_examples=150, deadline=None)
@given(cases)
def test_propagated_bounds_are_within_interval_bounds_from_the_same_below(case):
    seed, input_dim, widths = case
    network, box = random_network(seed, input_dim, widths), random_box(seed, input_dim)
    below = propagate(network, box)
    for index in range(1, len(widths)):
        interval = interval_layer(network.hidden[index], below[index - 1], box)
        assert np.all(below[index].lower >= interval.lower) and np.all(below[index].upper <= interval.upper)


def test_symbolic_bounds_cancel_what_interval_bounds_cannot():
    # g0 = (x, x) stably active on [1, 2]; g1 = h0_0 - h0_1 is identically 0, interval gives [-1, 1]
    network = Network.from_arrays(
        [np.array([[1.0], [1.0]]), np.array([[1.0, -1.0]]), np.array([[1.0]])],
        [np.zeros(2), np.zeros(1), np.zeros(1)],
    )
    box = Box(np.array([1.0]), np.array([2.0]))
    below = propagate(network, box)
    interval = interval_layer(network.hidden[1], below[0], box)
    symbolic = symbolic_layer(network, box, below, 1)
    np.testing.assert_allclose([interval.lower[0], interval.upper[0]], [-1.0, 1.0], atol=1e-9)
    np.testing.assert_allclose([symbolic.lower[0], symbolic.upper[0]], [0.0, 0.0], atol=1e-9)


def test_unstable_relaxation_uses_the_chord_above_and_crowns_slope_below():
    # g0 = x on [-1, 3]: chord 3/4 (g0 + 1) above (max 3); lower slope 1 since U = 3 > -L = 1 (min -1).
    # With a negative weight the roles swap: -relu(g0) lies in [-3, 1] symbolically.
    network = Network.from_arrays(
        [np.array([[1.0]]), np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])],
        [np.zeros(1), np.zeros(2), np.zeros(1)],
    )
    box = Box(np.array([-1.0]), np.array([3.0]))
    below = propagate(network, box)
    symbolic = symbolic_layer(network, box, below, 1)
    np.testing.assert_allclose(symbolic.lower, [-1.0, -3.0], atol=1e-9)
    np.testing.assert_allclose(symbolic.upper, [3.0, 1.0], atol=1e-9)
    np.testing.assert_allclose(below[1].lower, [0.0, -3.0], atol=1e-9)
    np.testing.assert_allclose(below[1].upper, [3.0, 0.0], atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(cases)
def test_layer_bounds_is_the_elementwise_tighter_of_interval_and_symbolic(case):
    seed, input_dim, widths = case
    network, box = random_network(seed, input_dim, widths), random_box(seed, input_dim)
    below = propagate(network, box)
    for index in range(1, len(widths)):
        interval = interval_layer(network.hidden[index], below[index - 1], box)
        symbolic = symbolic_layer(network, box, below, index)
        combined = layer_bounds(network, box, below, index)
        np.testing.assert_array_equal(combined.lower, np.maximum(interval.lower, symbolic.lower))
        np.testing.assert_array_equal(combined.upper, np.minimum(interval.upper, symbolic.upper))
        np.testing.assert_array_equal(below[index].lower, combined.lower)


@settings(max_examples=60, deadline=None)
@given(cases)
def test_known_bounds_are_used_as_given_and_feed_the_layers_above(case):
    seed, input_dim, widths = case
    network, box = random_network(seed, input_dim, widths), random_box(seed, input_dim)
    computed = propagate(network, box)
    # shrink the first layer's bounds (valid or not, they must be taken as given)
    middle = (computed[0].lower + computed[0].upper) / 2
    known = [LayerBounds(middle - 1e-3, middle + 1e-3)]
    bounds = propagate(network, box, known)
    assert bounds[0] is known[0]
    for index in range(1, len(widths)):
        expected = layer_bounds(network, box, bounds, index)
        np.testing.assert_array_equal(bounds[index].lower, expected.lower)
        np.testing.assert_array_equal(bounds[index].upper, expected.upper)
    assert propagate(network, box, computed) == computed


def test_symbolic_is_tighter_than_interval_on_a_deep_layer():
    network, box = random_network(3, 4, [12, 12, 12]), Box(-np.ones(4), np.ones(4))
    below = propagate(network, box)
    interval = interval_layer(network.hidden[2], below[1], box)
    symbolic = symbolic_layer(network, box, below, 2)
    assert np.sum(symbolic.upper - symbolic.lower) < np.sum(interval.upper - interval.lower)


def test_bounds_are_widened_outward_against_rounding():
    network = Network.from_arrays([np.array([[1.0]]), np.array([[1.0]])], [np.array([0.0]), np.array([0.0])])
    bounds = propagate(network, Box(np.array([0.0]), np.array([0.0])))
    assert bounds[0].lower[0] < 0.0 < bounds[0].upper[0]
    assert bounds[0].upper[0] - bounds[0].lower[0] < 1e-11


def test_stable_neurons_relax_exactly():
    # layer 0 neurons: x + 5 (stably active on [-1, 1]) and x - 5 (stably inactive); layer 1 reads both
    network = Network.from_arrays(
        [np.array([[1.0], [1.0]]), np.array([[2.0, 3.0]]), np.array([[1.0]])],
        [np.array([5.0, -5.0]), np.array([0.0]), np.array([0.0])],
    )
    bounds = propagate(network, Box(np.array([-1.0]), np.array([1.0])))
    np.testing.assert_allclose([bounds[1].lower[0], bounds[1].upper[0]], [8.0, 12.0], atol=1e-9)


def test_propagate_is_fast_on_a_mnist_sized_network():
    network = random_network(0, 784, [400, 400, 400])
    box = Box(np.zeros(784), np.ones(784))
    start = time.perf_counter()
    propagate(network, box)
    assert time.perf_counter() - start < 1.5


def test_term_signs_fix_the_signs_the_guarded_bounds_leave_open():
    """Each row's terms and bias of one sign give that sign exactly; the guarded bounds widen those rows past 0."""
    box = Box(np.array([0.0, -1.0, 0.0]), np.array([1.0, 0.0, 0.0]))  # x0 >= 0, x1 <= 0, x2 = 0
    weight = np.array([
        [0.0, 0.0, 0.0],    # pruned: g = 0 everywhere, in both masks
        [-2.0, 3.0, 5.0],   # every term <= 0 (x2 = 0 makes its term 0), bias 0: g <= 0, max 0 at x = 0
        [2.0, -3.0, -7.0],  # every term >= 0, bias 0.5: g >= 0.5 (bounds see it)
        [1.0, 1.0, 0.0],    # terms of both signs
        [0.0, 0.0, 0.0],    # g = -0.0 exactly
    ])
    bias = np.array([0.0, 0.0, 0.5, 0.0, -0.0])
    layer = AffineLayer(weight, bias)
    nonpositive, nonnegative = term_signs(layer, box)
    assert nonpositive.tolist() == [True, True, False, False, True]
    assert nonnegative.tolist() == [True, False, True, False, True]
    guarded = interval_layer(layer, None, box)
    assert guarded.upper[0] > 0 and guarded.upper[1] > 0  # no margin proof of either
    # on the ReLU outputs of a layer below: an input proven stably inactive is exactly 0, its weight irrelevant
    upper_layer = AffineLayer(np.array([[-1.0, 9.0, 9.0], [1.0, -9.0, -9.0], [-1.0, 0.0, 0.0]]),
                              np.array([0.0, 0.0, 1e-3]))
    nonpositive, nonnegative = term_signs(upper_layer, box, np.array([False, True, True]))
    assert nonpositive.tolist() == [True, False, False]
    assert nonnegative.tolist() == [False, True, False]
    points = box.lower + (box.upper - box.lower) * np.random.default_rng(0).random((2000, 3))
    g = points @ weight.T + bias
    assert np.all(g[:, [0, 1, 4]] <= 0) and np.all(g[:, [0, 2, 4]] >= 0)


def test_bounds_contain_the_float64_pass_where_back_substitution_cancels_large_terms():
    """g1 = relu(x + 1e8) - relu((1 - 2^-30) x + 1e8) + d: in exact arithmetic at most d < 0, but the float64 pass
    rounds x + 1e8 to about 1.5e-8 and reaches +1.2e-8. The symbolic bound's constant cancels 1e8 against 1e8; its
    guard must size those terms, not the cancelled result, and so contain every float64 value."""
    big, d = 1e8, -2e-9 - 2**-30
    network = Network.from_arrays([np.array([[1.0], [1.0 - 2**-30]]), np.array([[1.0, -1.0]]), np.array([[1.0]])],
                                  [np.array([big, big]), np.array([d]), np.zeros(1)], dtype="float64")
    box = Box(np.zeros(1), np.ones(1))
    values = network.preactivations(np.linspace(0, 1, 20001)[:, None])[1][:, 0]
    bounds = propagate(network, box)[1]
    assert values.max() > 1e-8 and bounds.upper[0] >= values.max() and bounds.lower[0] <= values.min()
