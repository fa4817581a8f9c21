"""The network IR crosses process and Ray task boundaries (pickle) and copies with its arrays still read-only."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from exactcompress.engine.network import AffineLayer, AvgPool, ConvShape, Network, Pooled


def out_of_band(value):
    """A protocol-5 round trip with the arrays' buffers sent apart, as Ray does, into writeable memory."""
    buffers = []
    data = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    return pickle.loads(data, buffers=[bytearray(buffer.raw()) for buffer in buffers])


ROUND_TRIPS = {"pickle": lambda value: pickle.loads(pickle.dumps(value)), "out-of-band": out_of_band,
               "deepcopy": copy.deepcopy}


@pytest.mark.parametrize("round_trip", ROUND_TRIPS)
def test_a_network_comes_back_equal_and_read_only(round_trip):
    """Unpickled copies of the frozen arrays were writeable: a network could be changed under its caches."""
    conv = AffineLayer(np.eye(4), np.zeros(4), ConvShape(1, 2, 2, 1, (1, 1)))
    network = Network((conv, AffineLayer(np.ones((3, 4)), np.arange(3.0))), dtype="float64")
    again = ROUND_TRIPS[round_trip](network)
    assert again.dtype == "float64" and again.layers[0].conv == conv.conv
    for layer, original in zip(again.layers, network.layers):
        for name in ("weight", "bias"):
            array = getattr(layer, name)
            np.testing.assert_array_equal(array, getattr(original, name))
            assert not array.flags.writeable
            with pytest.raises(ValueError, match="read-only"):
                array[0] = 1.0
    np.testing.assert_array_equal(again.forward(np.ones(4)), network.forward(np.ones(4)))


@pytest.mark.parametrize("round_trip", ROUND_TRIPS)
def test_a_witness_set_comes_back_equal_and_read_only(round_trip):
    """Witness sets cross to pool processes and Ray tasks; their arrays stay read-only there too."""
    from exactcompress.engine.witnesses import WitnessSet

    witnesses = WitnessSet(np.ones((2, 3)), (np.array([0, -1]),), (np.array([-1, 1]),))
    again = ROUND_TRIPS[round_trip](witnesses)
    arrays = [again.points, *again.positive, *again.negative, *again.highest, *again.lowest]
    originals = [witnesses.points, *witnesses.positive, *witnesses.negative, *witnesses.highest, *witnesses.lowest]
    assert len(arrays) == 5
    for array, original in zip(arrays, originals):
        np.testing.assert_array_equal(array, original)
        assert not array.flags.writeable


@pytest.mark.parametrize("round_trip", ROUND_TRIPS)
def test_a_pooled_layer_comes_back_with_its_pools_and_read_only(round_trip):
    pooled = Pooled((AvgPool((2, 1), (2, 1), (0, 0)),), np.array([[0.5, 0.5]]), np.ones((3, 1)))
    layer = AffineLayer.pooled_layer(pooled, np.arange(3.0))
    again = ROUND_TRIPS[round_trip](layer)
    assert again.pooled.pools == pooled.pools
    for array in (again.pooled.matrix, again.pooled.weight):
        assert not array.flags.writeable
    np.testing.assert_array_equal(again.weight, layer.weight)
