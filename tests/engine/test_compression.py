"""Exact compression on random nets whose stability flags are true by construction on a box."""

from __future__ import annotations

import numpy as np
import pytest

from exactcompress.engine.compression import CompressionLog, compress
from exactcompress.engine.domain import Box, Domain
from exactcompress.engine.network import Network
from exactcompress.engine.verify import verify

LOWER, UPPER = -1.0, 1.0


def build(input_dim: int, specs: list[str], output_dim: int, seed: int, dependent: dict | None = None):
    """A net whose hidden neuron states on [LOWER, UPPER]^input_dim are set by ``specs``.

    One string per hidden layer, one letter per neuron: 'a' stably active, 'i' stably inactive (both proven
    by interval arithmetic with a margin >= 0.5), 'u' centred (left unflagged). ``dependent[l]`` lists
    ``(k, p, q)``: row k of layer l is set to 2 * row p - row q before the biases are chosen.
    Returns the network and its (stably_active, stably_inactive) flags.
    """
    rng = np.random.default_rng(seed)
    lower, upper = np.full(input_dim, LOWER), np.full(input_dim, UPPER)
    weights, biases, active, inactive = [], [], [], []
    for index, spec in enumerate(specs):
        weight = rng.normal(size=(len(spec), lower.size))
        for k, p, q in (dependent or {}).get(index, []):
            weight[k] = 2 * weight[p] - weight[q]
        centre, radius = weight @ ((lower + upper) / 2), np.abs(weight) @ ((upper - lower) / 2)
        margin = rng.uniform(0.5, 1.5, size=len(spec))
        states = np.array(list(spec))
        lowest_active, highest_inactive = radius - centre + margin, -radius - centre - margin
        bias = np.where(states == "a", lowest_active, np.where(states == "i", highest_inactive, -centre))
        weights.append(weight)
        biases.append(bias)
        active.append(states == "a")
        inactive.append(states == "i")
        lower, upper = np.maximum(centre + bias - radius, 0.0), np.maximum(centre + bias + radius, 0.0)
    weights.append(rng.normal(size=(output_dim, lower.size)))
    biases.append(rng.normal(size=output_dim))
    return Network.from_arrays(weights, biases, dtype="float64"), active, inactive


def assert_same_function(original: Network, compressed: Network, n: int = 20_000) -> None:
    x = np.random.default_rng(0).uniform(LOWER, UPPER, size=(n, original.input_dim))
    y, y_compressed = original.forward(x), compressed.forward(x)
    assert np.all(np.abs(y - y_compressed) <= 1e-9 * (1 + np.abs(y)))


def test_stably_inactive_neurons_are_removed():
    net, active, inactive = build(4, ["iuuiu", "uiuu"], 2, seed=1)
    compressed, log = compress(net, active, inactive)
    assert compressed.hidden_widths == [3, 3]
    assert log == CompressionLog(removed_inactive=(2, 1), folded_active=(0, 0), merged_layers=(), skipped_folds=(0, 0),
                                 removed_unused=(0, 0))
    assert_same_function(net, compressed)


def test_neurons_that_nothing_reads_are_removed_whatever_their_state():
    """A pruned column (every outgoing weight 0) makes its neuron unread: removed exactly, though unflagged."""
    net, active, inactive = build(4, ["uuuu", "uuu"], 2, seed=6)
    weights = [np.array(layer.weight) for layer in net.layers]
    weights[2][:, 1] = 0.0  # second layer's neuron 1 feeds nothing
    weights[1][:, 3] = 0.0  # first layer's neuron 3 feeds nothing
    net = Network.from_arrays(weights, [layer.bias for layer in net.layers], dtype="float64")
    compressed, log = compress(net, active, inactive)
    assert compressed.hidden_widths == [3, 2] and log.removed_unused == (1, 1) and log.removed_inactive == (0, 0)
    assert_same_function(net, compressed)


def test_a_layer_stably_inactive_everywhere_leaves_a_constant_network():
    """Every neuron of the second layer inactive: the output is the last bias, and the first layer, unread once
    the second is gone, goes too (it was kept before, feeding zeros)."""
    net, active, inactive = build(3, ["uuau", "iii"], 2, seed=7)
    compressed, log = compress(net, active, inactive)
    assert compressed.hidden_widths == [] and log.removed_inactive == (0, 3) and log.removed_unused == (4, 0)
    np.testing.assert_array_equal(compressed.layers[0].weight, np.zeros((2, 3)))
    assert_same_function(net, compressed)


def test_unflagged_network_is_unchanged():
    net, _, _ = build(3, ["uuu", "uu"], 1, seed=2)
    flags = [np.zeros(3, dtype=bool), np.zeros(2, dtype=bool)]
    compressed, log = compress(net, flags, flags)
    for before, after in zip(net.layers, compressed.layers):
        np.testing.assert_array_equal(before.weight, after.weight)
        np.testing.assert_array_equal(before.bias, after.bias)
    assert log.removed_inactive == (0, 0) and log.merged_layers == ()


def test_linearly_dependent_active_rows_are_folded():
    # rows 2 = 2*row0 - row1 and 4 = row0 (2*row0 - row0) are dependent; row 3 is active and independent
    net, active, inactive = build(5, ["aaaaau", "uuu"], 2, seed=3, dependent={0: [(2, 0, 1), (4, 0, 0)]})
    compressed, log = compress(net, active, inactive)
    assert compressed.hidden_widths == [4, 3]
    assert log.folded_active == (2, 0) and log.skipped_folds == (0, 0)
    assert_same_function(net, compressed)
    unfolded, log = compress(net, active, inactive, fold_dependent=False)  # even exact folds are left out
    assert unfolded.hidden_widths == [6, 3] and log.folded_active == (0, 0) and log.skipped_folds == (2, 0)
    assert_same_function(net, unfolded)


def test_fold_with_rank_zero_active_rows_moves_their_constant_into_the_next_bias():
    net, active, inactive = build(3, ["aau", "uu"], 1, seed=4)
    weights = [np.array(layer.weight) for layer in net.layers]
    weights[0][:2] = 0.0  # two constant active neurons: h = b > 0
    net = Network.from_arrays(weights, [layer.bias for layer in net.layers], dtype="float64")
    compressed, log = compress(net, active, inactive)
    assert compressed.hidden_widths == [1, 2]
    assert log.folded_active == (2, 0)
    assert_same_function(net, compressed)


def test_fold_is_skipped_when_the_residual_exceeds_fold_atol():
    net, active, inactive = build(4, ["aaau", "uu"], 1, seed=5, dependent={0: [(2, 0, 1)]})
    weights = [np.array(layer.weight) for layer in net.layers]
    weights[0][2, 0] += 1e-7  # nearly dependent: rank tolerance 1e-3 calls it dependent, fold_atol refuses
    net = Network.from_arrays(weights, [layer.bias for layer in net.layers], dtype="float64")
    compressed, log = compress(net, active, inactive, rank_rtol=1e-3)
    assert compressed.hidden_widths == [4, 2]
    assert log.folded_active == (0, 0) and log.skipped_folds == (1, 0)
    assert_same_function(net, compressed)
    folded, log = compress(net, active, inactive, rank_rtol=1e-3, fold_atol=1e-6)
    assert folded.hidden_widths == [3, 2] and log.folded_active == (1, 0)


def test_fully_active_layer_is_merged_into_the_next():
    net, active, inactive = build(3, ["uuu", "aaaa", "uu"], 2, seed=6)
    compressed, log = compress(net, active, inactive)
    assert compressed.hidden_widths == [3, 2]
    assert log.merged_layers == (1,)
    assert_same_function(net, compressed)


def test_layer_of_inactive_and_active_neurons_only_is_merged():
    net, active, inactive = build(3, ["uuu", "aiaai", "uu"], 2, seed=7)
    compressed, log = compress(net, active, inactive)
    assert compressed.hidden_widths == [3, 2]
    assert log.removed_inactive == (0, 2, 0) and log.merged_layers == (1,)
    assert_same_function(net, compressed)


def test_all_inactive_layer_makes_the_next_layer_input_constant():
    net, active, inactive = build(3, ["uuu", "iiii", "uuu"], 2, seed=8)
    compressed, log = compress(net, active, inactive)
    assert compressed.hidden_widths == [3]  # the first layer, read by nothing once the second is gone, goes too
    assert log.removed_inactive == (0, 4, 0) and log.merged_layers == (1,) and log.removed_unused == (3, 0, 0)
    np.testing.assert_array_equal(compressed.layers[0].weight, 0.0)
    np.testing.assert_array_equal(compressed.layers[0].bias, net.layers[2].bias)
    assert_same_function(net, compressed)


def test_active_neurons_behind_an_all_inactive_layer_fold_to_constants():
    # after layer 1 is removed, layer 2's active rows have zero weights (rank 0): all are folded
    net, active, inactive = build(3, ["uuu", "iiii", "aaau", "uu"], 2, seed=14)
    compressed, log = compress(net, active, inactive)
    assert compressed.hidden_widths == [1, 2]
    assert log.folded_active == (0, 0, 3, 0) and log.removed_unused == (3, 0, 0, 0)
    assert_same_function(net, compressed)


def test_fully_active_last_layers_merge_into_the_output_map():
    net, active, inactive = build(4, ["aaa", "aiaa"], 3, seed=9)
    compressed, log = compress(net, active, inactive)
    assert compressed.hidden_widths == [] and len(compressed.layers) == 1
    assert log.merged_layers == (0, 1)
    assert_same_function(net, compressed)


@pytest.mark.parametrize("seed", range(5))
def test_mixed_deep_network_stays_exact(seed):
    specs = ["aaaiuuaa", "aaaaaa", "iuuaai", "iuuui", "uuaaa", "aiai"]
    dependent = {0: [(1, 0, 6), (7, 2, 0)], 4: [(4, 2, 3)]}
    net, active, inactive = build(6, specs, 3, seed=seed, dependent=dependent)
    compressed, log = compress(net, active, inactive)
    assert log.removed_inactive == (1, 0, 2, 2, 0, 2)
    assert log.folded_active == (2, 0, 0, 0, 1, 0)
    assert log.merged_layers == (1, 5)
    # layer 0: 8 - 1 inactive - 2 folded; layer 4: 5 - 1 folded; layer 5 merged into the output
    assert compressed.hidden_widths == [5, 4, 3, 4]
    assert compressed.dtype == "float64"
    assert_same_function(net, compressed)


def test_dtype_is_kept():
    net, active, inactive = build(3, ["ua"], 1, seed=10)
    net32 = Network(net.layers, dtype="float32")
    assert compress(net32, active, inactive)[0].dtype == "float32"


def test_neuron_flagged_both_active_and_inactive_is_refused():
    net, active, inactive = build(3, ["uua", "uu"], 1, seed=11)
    inactive[0] = inactive[0].copy()
    inactive[0][2] = True
    with pytest.raises(ValueError, match=r"\[2\].*both"):
        compress(net, active, inactive)


@pytest.mark.parametrize(
    "flags",
    [
        lambda a: a[:1],  # one layer missing
        lambda a: [a[0][:2], a[1]],  # wrong width
        lambda a: [a[0].astype(int), a[1]],  # not boolean
    ],
)
def test_malformed_flags_are_refused(flags):
    net, active, inactive = build(3, ["uua", "uu"], 1, seed=12)
    with pytest.raises(ValueError):
        compress(net, flags(active), inactive)


def test_wrong_inactive_flag_is_caught_by_verify():
    net, active, inactive = build(3, ["uuu", "uu"], 2, seed=13)
    x = np.random.default_rng(1).uniform(LOWER, UPPER, size=(1000, 3))
    g = net.preactivations(x)[0][:, 1]
    assert g.min() < 0 < g.max()  # neuron 1 is truly unstable
    wrong = [inactive[0].copy(), inactive[1]]
    wrong[0][1] = True
    compressed, _ = compress(net, active, wrong)
    domain = Domain("box", (Box(np.full(3, LOWER), np.full(3, UPPER)),))
    report = verify(net, compressed, domain, n_samples=2000, rng=np.random.default_rng(2))
    assert not report.passed and report.max_abs_error > 1e-3
    right, _ = compress(net, active, inactive)
    assert verify(net, right, domain, n_samples=2000, rng=np.random.default_rng(2)).passed
