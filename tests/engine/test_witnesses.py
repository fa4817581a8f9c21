"""Witness search: every witness is confirmed by a float64 forward pass; nothing findable is missed."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from exactcompress.engine.bounds import LayerBounds, propagate
from exactcompress.engine.domain import Box
from exactcompress.engine.network import Network
from exactcompress.engine.witnesses import (
    FirstLayerShortcut,
    WitnessSet,
    record,
    search,
)
from exactcompress.tolerances import WITNESS_MARGIN


def random_network(seed: int, dims: list[int], bias_scale: float = 0.5) -> Network:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(o, i)) / np.sqrt(i) for i, o in zip(dims, dims[1:])]
    biases = [rng.normal(size=o) * bias_scale for o in dims[1:]]
    return Network.from_arrays(weights, biases, dtype="float64")


def assert_witnesses_hold(network: Network, box: Box, witnesses: WitnessSet) -> None:
    assert witnesses.points.shape[1] == network.input_dim
    assert np.all(box.contains(witnesses.points))
    preactivations = network.preactivations(witnesses.points) if len(witnesses.points) else None
    used = set()
    for layer in range(len(network.hidden)):
        for found, sign in ((witnesses.positive[layer], 1.0), (witnesses.negative[layer], -1.0)):
            for neuron in np.flatnonzero(found >= 0):
                row = found[neuron]
                used.add(int(row))
                assert sign * preactivations[layer][row, neuron] > WITNESS_MARGIN
    assert used == set(range(len(witnesses.points)))  # no unused points are kept


def test_every_witness_reproduces_its_sign_in_a_fresh_forward_pass():
    network = random_network(0, [5, 16, 16, 12, 3])
    box = Box(-np.ones(5), np.linspace(0.5, 2.0, 5))
    witnesses = search(network, box, WitnessSet.empty(network), rng=np.random.default_rng(0), n_samples=2000)
    assert any(np.any(found >= 0) for found in witnesses.positive + witnesses.negative)
    assert_witnesses_hold(network, box, witnesses)
    missing_positive, missing_negative = witnesses.open_signs()
    for layer in range(3):
        assert np.array_equal(witnesses.unstable(layer), ~missing_positive[layer] & ~missing_negative[layer])
        neurons = np.arange(network.hidden_widths[layer])
        for sign, missing in ((1, missing_positive[layer]), (-1, missing_negative[layer])):
            layers, signs = np.full_like(neurons, layer), np.full_like(neurons, sign)
            assert np.array_equal(witnesses.witnessed(layers, neurons, signs), ~missing)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("n_samples", [20000, 0])
def test_search_finds_every_sign_seen_on_a_dense_grid(seed, n_samples):
    network = random_network(seed, [2, 10, 8, 6, 1], bias_scale=1.0)
    box = Box(np.array([-1.0, -0.5]), np.array([1.0, 1.5]))
    axes = [np.linspace(lo, hi, 400) for lo, hi in zip(box.lower, box.upper)]
    grid = np.stack(np.meshgrid(*axes), axis=-1).reshape(-1, 2)
    witnesses = search(network, box, WitnessSet.empty(network), rng=np.random.default_rng(seed), n_samples=n_samples)
    assert_witnesses_hold(network, box, witnesses)
    for layer, g in enumerate(network.preactivations(grid)):
        assert np.all(witnesses.positive[layer][g.max(axis=0) >= 1e-3] >= 0)
        assert np.all(witnesses.negative[layer][g.min(axis=0) <= -1e-3] >= 0)


def test_a_stably_inactive_neuron_never_gets_a_positive_witness():
    rng = np.random.default_rng(4)
    weights = [rng.normal(size=(6, 3)), rng.normal(size=(5, 6)), rng.normal(size=(1, 5))]
    biases = [rng.normal(size=6), rng.normal(size=5), np.zeros(1)]
    biases[0][2] = -100.0  # layer 0 neuron 2 is stably inactive on the box
    biases[1][4] = -100.0  # layer 1 neuron 4 too
    network = Network.from_arrays(weights, biases, dtype="float64")
    box = Box(-np.ones(3), np.ones(3))
    witnesses = search(network, box, WitnessSet.empty(network), rng=np.random.default_rng(0), n_samples=500)
    assert witnesses.positive[0][2] == -1 and witnesses.negative[0][2] >= 0
    assert witnesses.positive[1][4] == -1 and witnesses.negative[1][4] >= 0
    assert_witnesses_hold(network, box, witnesses)


def corner_blind_network() -> Network:
    """Layer 0 is (x1, x2); layer 1's only neuron h0 + h1 - 1.5 is positive only near the corner (1, 1),
    which none of the first-layer extreme corners visits."""
    return Network.from_arrays(
        [np.eye(2), np.array([[1.0, 1.0]]), np.array([[1.0]])],
        [np.zeros(2), np.array([-1.5]), np.zeros(1)],
        dtype="float64",
    )


def test_gradient_search_finds_a_sign_that_corners_miss_unless_skipped_or_ruled_out_by_bounds():
    network, box = corner_blind_network(), Box(-np.ones(2), np.ones(2))
    empty = WitnessSet.empty(network)
    no_gradient = search(network, box, empty, rng=np.random.default_rng(0), n_samples=0, gradient_steps=0)
    assert no_gradient.positive[1][0] == -1 and no_gradient.negative[1][0] >= 0
    found = search(network, box, empty, rng=np.random.default_rng(0), n_samples=0)
    assert found.positive[1][0] >= 0
    assert_witnesses_hold(network, box, found)
    skip = ([np.zeros(2, bool), np.array([True])], [np.zeros(2, bool), np.zeros(1, bool)])
    skipped = search(network, box, empty, rng=np.random.default_rng(0), n_samples=0, skip=skip)
    assert skipped.positive[1][0] == -1
    ruled_out = [*propagate(network, box)[:1], LayerBounds(np.array([-2.0]), np.array([0.0]))]
    by_bounds = search(network, box, empty, rng=np.random.default_rng(0), n_samples=0, bounds=ruled_out)
    assert by_bounds.positive[1][0] == -1


def test_gradient_search_leaves_torch_state_alone_and_works_without_autograd():
    network, box = corner_blind_network(), Box(-np.ones(2), np.ones(2))
    threads = torch.get_num_threads()
    with torch.no_grad():
        found = search(network, box, WitnessSet.empty(network), rng=np.random.default_rng(0), n_samples=0)
        assert not torch.is_grad_enabled()
    assert found.positive[1][0] >= 0
    assert torch.get_num_threads() == threads and torch.is_grad_enabled()


def test_the_gradient_steps_run_on_one_torch_thread(monkeypatch):
    import exactcompress.engine.witnesses as witnesses

    network, box = corner_blind_network(), Box(-np.ones(2), np.ones(2))
    threads_seen, gradient_chunk = [], witnesses._gradient_chunk

    def watched(*args, **kwargs):
        threads_seen.append(torch.get_num_threads())
        return gradient_chunk(*args, **kwargs)

    monkeypatch.setattr(witnesses, "_gradient_chunk", watched)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        found = search(network, box, WitnessSet.empty(network), rng=np.random.default_rng(0), n_samples=0)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert found.positive[1][0] >= 0 and threads_seen == [1]


def test_data_outside_the_box_is_ignored_and_data_inside_is_used():
    network, box = corner_blind_network(), Box(-np.ones(2), np.ones(2))
    outside = np.array([[3.0, 3.0], [1.0, 1.5]])  # both would show layer 1 positive
    inside = np.array([[0.9, 0.9]])
    kwargs = dict(rng=np.random.default_rng(0), n_samples=0, gradient_steps=0)
    ignored = search(network, box, WitnessSet.empty(network), data=outside, **kwargs)
    assert ignored.positive[1][0] == -1
    used = search(network, box, WitnessSet.empty(network), data=np.concatenate([outside, inside]), **kwargs)
    assert np.array_equal(used.points[used.positive[1][0]], inside[0])


def test_a_deadline_in_the_past_returns_promptly():
    network = random_network(5, [784, 400, 400, 400, 10])
    box = Box(np.zeros(784), np.ones(784))
    start = time.monotonic()
    witnesses = search(
        network, box, WitnessSet.empty(network), rng=np.random.default_rng(0), n_samples=10**6,
        data=np.full((1000, 784), 0.5), deadline=start - 1.0,
    )
    assert time.monotonic() - start < 0.5
    assert all(np.all(found < 0) for found in witnesses.positive + witnesses.negative)


def test_record_takes_the_first_showing_candidate_and_keeps_only_used_points():
    network = Network.from_arrays([np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])], [np.zeros(2), np.zeros(1)])
    candidates = np.array([[0.0], [2.0], [3.0], [1e-12], [-1.0]])
    witnesses = record(network, WitnessSet.empty(network), candidates)
    np.testing.assert_array_equal(witnesses.points, [[2.0], [-1.0]])  # 0 and 1e-12 show nothing (margin)
    np.testing.assert_array_equal(witnesses.positive[0], [0, 1])
    np.testing.assert_array_equal(witnesses.negative[0], [1, 0])
    again = record(network, witnesses, np.array([[5.0], [-5.0]]))
    assert again is witnesses  # nothing open: nothing appended


def test_record_in_small_chunks_matches_one_chunk_and_leaves_its_input_alone():
    network = random_network(6, [4, 20, 20, 2])
    box = Box(-np.ones(4), np.ones(4))
    candidates = box.sample(3000, np.random.default_rng(0))
    start = record(network, WitnessSet.empty(network), candidates[:5])
    before = [a.copy() for a in start.positive]
    whole = record(network, start, candidates)
    chunked = record(network, start, candidates, max_bytes=1000)
    np.testing.assert_array_equal(whole.points, chunked.points)
    for a, b in zip(whole.positive + whole.negative, chunked.positive + chunked.negative):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(start.positive, before):
        np.testing.assert_array_equal(a, b)
    assert_witnesses_hold(network, box, whole)


def test_record_keeps_the_range_of_g_over_every_candidate_it_evaluates():
    """highest / lowest: the max / min of g over every candidate evaluated (kept as a witness or not), in one chunk
    or many, accumulated over calls; nothing evaluated (every sign witnessed) returns the same set. A dead
    neuron keeps a sign open, so every chunk is evaluated."""
    network = random_network(7, [4, 20, 20, 2])
    weights, biases = [layer.weight for layer in network.layers], [layer.bias.copy() for layer in network.layers]
    biases[0][0] = -10.0
    network = Network.from_arrays(weights, biases, dtype="float64")
    box = Box(-np.ones(4), np.ones(4))
    first, second = box.sample(500, np.random.default_rng(0)), box.sample(700, np.random.default_rng(1))
    once = record(network, record(network, WitnessSet.empty(network), first), second, max_bytes=2000)
    g = network.preactivations(np.concatenate([first, second]))
    for layer in range(2):
        np.testing.assert_array_equal(once.highest[layer], g[layer].max(axis=0))
        np.testing.assert_array_equal(once.lowest[layer], g[layer].min(axis=0))
    assert np.all(np.isneginf(WitnessSet.empty(network).highest[0]))
    tiny = Network.from_arrays([np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])], [np.zeros(2), np.zeros(1)])
    settled = record(tiny, WitnessSet.empty(tiny), np.array([[2.0], [-1.0]]))
    assert record(tiny, settled, np.array([[5.0]])) is settled
    wider = settled.with_range_of(record(tiny, WitnessSet.empty(tiny), np.array([[7.0], [-3.0]])))
    np.testing.assert_array_equal(wider.highest[0], [7.0, 3.0])
    np.testing.assert_array_equal(wider.lowest[0], [-3.0, -7.0])
    assert wider.points is settled.points  # frozen arrays are shared, not copied


def test_a_union_of_boxes_keeps_the_range_of_g_found_in_every_box():
    """g = x on [0, 1] ∪ [5, 6]: the analysis' range covers both boxes' samples (near 0 and near 6), not only
    the other box's witness points (a dead neuron keeps a sign open, so every sample is evaluated)."""
    from exactcompress.engine.analyze import analyze
    from exactcompress.engine.domain import Domain

    network = Network.from_arrays([np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])], [np.array([0.0, -100.0]),
                                                                                        np.zeros(1)], dtype="float64")
    union = Domain("linf-balls", (Box(np.zeros(1), np.ones(1)), Box(np.full(1, 5.0), np.full(1, 6.0))))
    witnesses = analyze(network, union, method="auto").witnesses
    assert witnesses.highest[0][0] > 5.99 and witnesses.lowest[0][0] < 0.01


def test_first_layer_extremes_are_found_at_the_box_corners_alone():
    # on [0, 1]^5, g = sum(x) - 4.999 > 0 only very near the all-ones corner
    network = Network.from_arrays([np.ones((1, 5)), np.ones((1, 1))], [np.array([-4.999]), np.zeros(1)], dtype="float64")
    box = Box(np.zeros(5), np.ones(5))
    negative_known = record(network, WitnessSet.empty(network), np.full((1, 5), 0.5))
    assert negative_known.negative[0][0] == 0 and negative_known.positive[0][0] == -1
    kwargs = dict(rng=np.random.default_rng(0), n_samples=0, gradient_steps=0)
    found = search(network, box, negative_known, **kwargs)
    np.testing.assert_array_equal(found.points[found.positive[0][0]], np.ones(5))
    assert_witnesses_hold(network, box, found)


def _network_with_dead_first_neurons(seed: int = 0) -> tuple[Network, Box]:
    """A 6-input net on [0, 1]^6 whose first-layer neurons 0..9 are far below 0 on the whole box."""
    network = random_network(seed, [6, 24, 12, 3])
    weights, biases = [layer.weight for layer in network.layers], [layer.bias.copy() for layer in network.layers]
    biases[0][:10] = -np.abs(weights[0][:10]).sum(axis=1) - 0.5
    return Network.from_arrays(weights, biases, dtype="float64"), Box(np.zeros(6), np.ones(6))


def test_record_through_the_first_layer_shortcut_gives_the_witnesses_of_the_full_pass():
    network, box = _network_with_dead_first_neurons()
    shortcut = FirstLayerShortcut.for_box(network, box)
    assert shortcut.negative[:10].all() and 10 <= shortcut.negative.sum() < 24
    assert shortcut.reduced.hidden_widths == [24 - shortcut.negative.sum(), 12]
    # a set that already holds points (none for the dead neurons), extended by candidates in several chunks
    before = record(network, WitnessSet.empty(network), box.sample(40, np.random.default_rng(0))[:, ::-1] * 0.5)
    before = WitnessSet(before.points, before.positive, (before.negative[0].clip(max=-1), *before.negative[1:]))
    candidates = box.sample(300, np.random.default_rng(1))
    full = record(network, before, candidates, max_bytes=8 * 60 * 20)
    short = record(network, before, candidates, max_bytes=8 * 60 * 20, shortcut=shortcut)
    assert len(before.points) > 0 and np.array_equal(full.points, short.points)
    for mine, theirs in zip(short.positive + short.negative, full.positive + full.negative):
        assert np.array_equal(mine, theirs)
    assert (short.negative[0][:10] == len(before.points)).all() and (short.positive[0][:10] < 0).all()
    kept = ~shortcut.negative
    np.testing.assert_array_equal(short.highest[0][kept], full.highest[0][kept])
    for mine, theirs in zip(short.highest[1:] + short.lowest[1:], full.highest[1:] + full.lowest[1:]):
        np.testing.assert_array_equal(mine, theirs)
    assert np.array_equal(short.points[len(before.points)], candidates[0])


def test_the_first_layer_shortcut_leaves_out_neurons_only_beyond_float64_rounding():
    # neuron 0 reaches -5e-9 on the box and neuron 1 -1e-6, both with weights of 1e6: float64 rounding of a
    # pass may be ~1e-9 here, so only neuron 1 is certainly below -WITNESS_MARGIN in every forward pass
    weight = np.array([[1e6, -1e6, 1e6], [1e6, -1e6, 1e6], [1.0, 1.0, 1.0]])
    bias = np.array([-2e6 - 5e-9, -2e6 - 1e-6, 0.0])
    network = Network.from_arrays([weight, np.ones((2, 3)), np.ones((1, 2))], [bias, np.zeros(2), np.zeros(1)],
                                  dtype="float64")
    shortcut = FirstLayerShortcut.for_box(network, Box(np.zeros(3), np.ones(3)))
    assert shortcut.negative.tolist() == [False, True, False]
    assert FirstLayerShortcut.for_box(random_network(0, [3, 8, 2]), Box(np.zeros(3), np.ones(3))) is None


def test_search_with_the_shortcut_witnesses_what_the_full_search_does(monkeypatch):
    network, box = _network_with_dead_first_neurons(seed=3)
    bounds = propagate(network, box)
    found = search(network, box, WitnessSet.empty(network), bounds=bounds, rng=np.random.default_rng(0))
    monkeypatch.setattr(FirstLayerShortcut, "for_box", classmethod(lambda cls, network, box: None))
    plain = search(network, box, WitnessSet.empty(network), bounds=bounds, rng=np.random.default_rng(0))
    assert_witnesses_hold(network, box, found)
    for mine, theirs in zip(found.open_signs(), plain.open_signs()):
        assert all(np.array_equal(a, b) for a, b in zip(mine, theirs))


def test_the_shortcut_leaves_the_questions_of_a_wider_layer_above_to_the_gradient_search():
    """A first layer with a dead neuron under a wider second layer: the gradient stage's questions of the second
    layer have indices past the first layer's width (the shortcut's mask once indexed them: IndexError)."""
    from exactcompress.engine.witnesses import _targets

    rng = np.random.default_rng(10)
    first, first_bias = rng.normal(size=(4, 8)), rng.normal(size=4)
    first_bias[0] = -100.0  # dead on the box: the shortcut leaves it out
    network = Network.from_arrays([first, rng.normal(size=(20, 4)), rng.normal(size=(1, 20))],
                                  [first_bias, rng.normal(size=20) - 1.0, np.zeros(1)], dtype="float64")
    box = Box(-np.ones(8), np.ones(8))
    bounds = propagate(network, box)
    assert FirstLayerShortcut.for_box(network, box) is not None
    after_corners = search(network, box, WitnessSet.empty(network), rng=rng, n_samples=0, gradient_starts=0)
    asked = _targets(after_corners, bounds, None)
    assert ((asked[:, 0] == 1) & (asked[:, 1] >= 4)).any()  # open past the first layer's width, bounds allow them
    found = search(network, box, WitnessSet.empty(network), bounds=bounds, rng=rng, n_samples=0, gradient_steps=50)
    assert_witnesses_hold(network, box, found)
    assert sum(int(m.sum()) for masks in found.open_signs() for m in masks) < \
        sum(int(m.sum()) for masks in after_corners.open_signs() for m in masks)


def test_the_gradient_steps_through_the_shortcut_climb_the_first_layer_neuron_asked_for():
    from exactcompress.engine.witnesses import _gradient_chunk

    network, box = _network_with_dead_first_neurons()
    weights, biases = [layer.weight.copy() for layer in network.layers], [layer.bias.copy() for layer in network.layers]
    weights[0][15], biases[0][15] = np.ones(6), -5.9  # positive only where sum(x) > 5.9: a corner no sample hits
    network = Network.from_arrays(weights, biases, dtype="float64")
    shortcut = FirstLayerShortcut.for_box(network, box)
    assert shortcut.negative[:10].all() and not shortcut.negative[15]
    found = _gradient_chunk(network, box, WitnessSet.empty(network), np.array([[0, 15, 1]]),
                            rng=np.random.default_rng(0), starts=4, steps=200, learning_rate=0.05, deadline=None,
                            shortcut=shortcut)
    assert found.positive[0][15] >= 0
    assert_witnesses_hold(network, box, found)


@pytest.mark.parametrize("stride, padding", [((1, 1), (0, 0)), ((2, 2), (1, 1)), ((2, 1), (1, 0))])
def test_the_gradient_search_runs_a_convolution_layer_as_its_dense_matrix_computes_it(stride, padding):
    from exactcompress.engine.convolution import unroll_conv
    from exactcompress.engine.network import AffineLayer, ConvShape
    from exactcompress.engine.witnesses import _torch_layer

    rng = np.random.default_rng(0)
    shape = ConvShape(3, 7, 6, 4, (3, 2), stride, padding)
    weight, bias = unroll_conv(shape, rng.normal(size=(4, 3, 3, 2)), rng.normal(size=4))
    layer = AffineLayer(weight, bias, conv=shape)
    h = rng.random((5, shape.in_features))
    expected = layer(h)
    conv = _torch_layer(layer)(torch.from_numpy(h.astype(np.float32))).numpy()
    dense = _torch_layer(AffineLayer(weight, bias))(torch.from_numpy(h.astype(np.float32))).numpy()
    assert conv.shape == expected.shape == (5, shape.out_features)
    assert np.allclose(conv, expected, atol=1e-5) and np.allclose(dense, expected, atol=1e-5)
