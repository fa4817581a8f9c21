"""Training CNNs: the group-L1 penalty, the CNN builder, and a trained CNN saved with its architecture file."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from exactcompress.io import load_network
from exactcompress.training.datasets import digits_data
from exactcompress.training.trainer import (
    Regularization,
    cnn,
    penalty,
    save_state_dict,
    train_network,
)


def test_group_l1_sums_filter_norms_per_output_channel_and_l1_of_linear_weights():
    kernel = torch.zeros(3, 2, 2, 2)
    kernel[0] = 1.0  # 8 ones: norm sqrt(8)
    kernel[2, 1, 0, 0] = -3.0  # norm 3
    linear = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    value = penalty("group-l1", [kernel, linear], 0.5)
    assert abs(float(value) - 0.5 * (np.sqrt(8) + 3 + 3.5)) < 1e-5


def test_cnn_builder_shapes_and_padding():
    model = cnn((1, 8, 8), (8, 16), (1, 2), (64,), 10)
    convs = [module for module in model if isinstance(module, nn.Conv2d)]
    assert [(c.out_channels, c.stride, c.padding) for c in convs] == [(8, (1, 1), (1, 1)), (16, (2, 2), (1, 1))]
    assert model(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
    assert next(m for m in model if isinstance(m, nn.Linear)).in_features == 16 * 4 * 4


def test_group_l1_zeroes_whole_filters_and_the_saved_cnn_loads_with_its_architecture_file(tmp_path):
    X, y = digits_data("train")
    X = X[:400].reshape(-1, 1, 8, 8)
    smallest = {}
    for strength in (0.0, 1e-2):
        model, losses = train_network(lambda: cnn((1, 8, 8), (4,), (2,), (16,), 10), X, y[:400], seed=0, epochs=8,
                                      regularization=Regularization("group-l1", strength))
        smallest[strength] = float(model[0].weight.detach().flatten(1).norm(dim=1).min())
        assert np.isfinite(losses).all()
    assert smallest[0.0] > 0.5 and smallest[1e-2] < 0.02  # a strong group penalty all but empties whole filters

    save_state_dict(model, tmp_path / "net.pt", input_shape=(1, 8, 8))
    network, info = load_network(tmp_path / "net.pt")
    assert info.input_shape == [1, 8, 8] and network.layers[0].conv is not None
    x = np.random.default_rng(0).uniform(0, 1, size=(32, 64))
    with torch.no_grad():
        expected = model.double()(torch.from_numpy(x).reshape(-1, 1, 8, 8)).numpy()
    assert np.allclose(network.forward(x), expected, atol=1e-5)  # float32 weights, float64 pass

