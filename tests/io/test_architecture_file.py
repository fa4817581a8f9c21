"""Architecture files (``NAME.arch.json``): the input shape checked against the first Linear, kernel sizes and
strides of at least 1, DataParallel keys, and the schema version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from exactcompress.errors import InputError
from exactcompress.io import load_network

MLP_LAYERS = [{"kind": "linear", "key": "0"}, {"kind": "relu"}, {"kind": "linear", "key": "2"}]
CNN_LAYERS = [{"kind": "conv2d", "key": "0"}, {"kind": "relu"}, {"kind": "flatten"}, {"kind": "linear", "key": "3"}]


def _saved(tmp_path: Path, module: nn.Module, arch: dict, state: dict | None = None) -> Path:
    torch.save(state if state is not None else module.state_dict(), tmp_path / "m.pt")
    (tmp_path / "m.arch.json").write_text(json.dumps(arch))
    return tmp_path / "m.pt"


def _refusal(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        load_network(path)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def _mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def _cnn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))


@pytest.mark.parametrize("input_shape, layers, telling", [
    ([10], MLP_LAYERS, "module 0 (Linear) takes 4 inputs but input_shape [10] has 10 features"),
    ([1, 3, 3], [{"kind": "flatten"}, *MLP_LAYERS], "module 1 (Linear) takes 4 inputs but input_shape [1, 3, 3] has 9"),
], ids=["features", "flattened"])
def test_an_input_shape_that_is_not_the_first_linears_input_count_is_refused(tmp_path, input_shape, layers, telling):
    message = _refusal(_saved(tmp_path, _mlp(), {"input_shape": input_shape, "layers": layers}))
    assert telling in message and "m.arch.json" in message, message
    for right, right_layers in (([4], MLP_LAYERS), ([1, 2, 2], [{"kind": "flatten"}, *MLP_LAYERS])):
        arch = {"input_shape": right, "layers": right_layers}
        assert load_network(_saved(tmp_path, _mlp(), arch))[0].input_dim == 4


@pytest.mark.parametrize("field, value", [("stride", 0), ("stride", [1, 0]), ("kernel_size", 0)])
def test_a_kernel_size_or_stride_of_0_is_refused_naming_the_field(tmp_path, field, value):
    layers = [{**CNN_LAYERS[0], field: value}, *CNN_LAYERS[1:]]
    message = _refusal(_saved(tmp_path, _cnn(), {"input_shape": [1, 3, 3], "layers": layers}))
    assert "m.arch.json" in message and f"layers.0.conv2d.{field}" in message, message


def test_data_parallel_keys_in_the_architecture_file_are_stripped_like_the_tensors(tmp_path):
    module = _cnn()
    state = {f"module.{key}": value for key, value in module.state_dict().items()}
    layers = [{**layer, "key": f"module.{layer['key']}"} if "key" in layer else layer for layer in CNN_LAYERS]
    network, _ = load_network(_saved(tmp_path, module, {"input_shape": [1, 3, 3], "layers": layers}, state))
    assert network.input_dim == 9 and network.hidden_widths == [8]


@pytest.mark.parametrize("version, accepted", [("1.0", True), ("1.7", True), ("9.9", False), ("2.0", False)])
def test_architecture_schema_versions_of_another_major_are_refused(tmp_path, version, accepted):
    path = _saved(tmp_path, _mlp(), {"schema_version": version, "input_shape": [4], "layers": MLP_LAYERS})
    if accepted:
        assert load_network(path)[0].input_dim == 4
    else:
        message = _refusal(path)
        assert "m.arch.json" in message, message
        assert f"schema_version: Value error, version '{version}' is not supported" in message, message


@pytest.mark.parametrize("ceil_mode, count_include_pad, divisor_override", [
    (False, False, None), (True, False, None), (True, True, None), (False, True, 5)])
def test_avgpool2d_options_are_read_from_the_architecture_file(tmp_path, ceil_mode, count_include_pad,
                                                               divisor_override):
    """ceil_mode, count_include_pad and divisor_override change what an AvgPool2d computes (and its output size);
    the architecture file could not state them, so a pool with count_include_pad=False was read as torch's default."""
    torch.manual_seed(0)
    pool = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                        divisor_override=divisor_override)
    features = nn.Sequential(nn.Conv2d(2, 3, 2), nn.ReLU(), pool, nn.Flatten())
    width = features(torch.zeros(1, 2, 7, 7)).shape[1]
    module = nn.Sequential(*features, nn.Linear(width, 5), nn.ReLU(), nn.Linear(5, 2)).double().eval()
    options = {"ceil_mode": ceil_mode, "count_include_pad": count_include_pad, "divisor_override": divisor_override}
    layers = [{"kind": "conv2d", "key": "0"}, {"kind": "relu"},
              {"kind": "avgpool2d", "kernel_size": 3, "stride": 2, "padding": 1, **options}, {"kind": "flatten"},
              {"kind": "linear", "key": "4"}, {"kind": "relu"}, {"kind": "linear", "key": "6"}]
    network, _ = load_network(_saved(tmp_path, module, {"input_shape": [2, 7, 7], "layers": layers}))
    x = torch.rand(16, 2, 7, 7, dtype=torch.float64)
    with torch.no_grad():
        expected = module(x).numpy()
    assert abs(network.forward(x.reshape(16, -1).numpy()) - expected).max() < 1e-12


def test_avgpool2d_options_default_to_torchs_and_are_checked():
    from exactcompress.schema.arch import ARCH_SCHEMA_VERSION, AvgPool2dLayer

    assert ARCH_SCHEMA_VERSION == "1.2"
    layer = AvgPool2dLayer(kind="avgpool2d", kernel_size=2)
    default = nn.AvgPool2d(2)
    assert (layer.ceil_mode, layer.count_include_pad, layer.divisor_override) == (
        default.ceil_mode, default.count_include_pad, default.divisor_override)
    with pytest.raises(ValueError, match="divisor_override"):
        AvgPool2dLayer(kind="avgpool2d", kernel_size=2, divisor_override=0)


@pytest.mark.parametrize("output_size, written", [(1, 1), ([2, None], [2, None]), ((3, 2), [3, 2])])
def test_an_adaptive_average_pool_is_read_from_the_architecture_file(tmp_path, output_size, written):
    torch.manual_seed(1)
    features = nn.Sequential(nn.Conv2d(2, 3, 2), nn.ReLU(), nn.AdaptiveAvgPool2d(output_size), nn.Flatten())
    width = features(torch.zeros(1, 2, 7, 7)).shape[1]
    module = nn.Sequential(*features, nn.Linear(width, 5), nn.ReLU(), nn.Linear(5, 2)).double().eval()
    layers = [{"kind": "conv2d", "key": "0"}, {"kind": "relu"}, {"kind": "adaptiveavgpool2d", "output_size": written},
              {"kind": "flatten"}, {"kind": "linear", "key": "4"}, {"kind": "relu"}, {"kind": "linear", "key": "6"}]
    network, _ = load_network(_saved(tmp_path, module, {"input_shape": [2, 7, 7], "layers": layers}))
    x = torch.rand(16, 2, 7, 7, dtype=torch.float64)
    with torch.no_grad():
        expected = module(x).numpy()
    assert abs(network.forward(x.reshape(16, -1).numpy()) - expected).max() < 1e-12


@pytest.mark.parametrize("output_size", [[2], [1, 0], True, "1", 1.0, [None, None, 1]])
def test_a_wrong_adaptive_pool_output_size_in_the_architecture_file_is_named(tmp_path, output_size):
    module = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(2, 2)).double().eval()
    layers = [{"kind": "conv2d", "key": "0"}, {"kind": "relu"},
              {"kind": "adaptiveavgpool2d", "output_size": output_size}, {"kind": "flatten"}, {"kind": "linear", "key": "3"}]
    with pytest.raises(InputError) as caught:
        load_network(_saved(tmp_path, module, {"input_shape": [1, 4, 4], "layers": layers}))
    message = str(caught.value)
    assert "output_size: Value error" in message and "is not an int >= 1 or [h, w]" in message, message
