"""Convolutional networks in and out: the dense unrolled conv against torch's own conv2d, BatchNorm2d and
AvgPool2d folding, the rebuilt torch module, state dicts with an architecture file, ONNX, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import safetensors.torch
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from exactcompress.engine.convolution import conv_kernel, unroll_conv
from exactcompress.engine.network import AffineLayer, ConvShape, Network
from exactcompress.errors import InputError
from exactcompress.io import from_sequential, load_network, save_network, to_sequential
from exactcompress.io.conv import MAX_DENSE_BYTES

IN = (2, 6, 8)


def images(n: int, shape, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(0, 1, size=(n, *shape)))


def ir_forward(network: Network, x: torch.Tensor) -> np.ndarray:
    return network.forward(x.reshape(len(x), -1).numpy())


def small_cnn(seed: int = 0, batchnorm: bool = False, pool: bool = False) -> nn.Sequential:
    torch.manual_seed(seed)
    modules = [nn.Conv2d(2, 4, 3, stride=1, padding=1)]
    modules += [nn.BatchNorm2d(4)] if batchnorm else []
    modules += [nn.ReLU(), nn.Conv2d(4, 3, 3, stride=2, padding=(1, 0)), nn.ReLU()]
    modules += [nn.AvgPool2d(2)] if pool else []
    features = 3 * (1 if pool else 9)  # conv2 gives 3 x 3 x 3 on a 2 x 6 x 8 input (IN)
    modules += [nn.Flatten(), nn.Linear(features, 5), nn.ReLU(), nn.Linear(5, 2)]
    module = nn.Sequential(*modules).double().eval()
    if batchnorm:
        with torch.no_grad():
            bn = module[1]
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.normal_()
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.3, 3.0)
    return module


@pytest.mark.parametrize("in_shape", [(2, 5, 5), (3, 6, 9), (1, 7, 4)])
@pytest.mark.parametrize("kernel", [1, 3])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [0, 1, (1, 2)])
def test_unrolled_conv_equals_torch_conv2d(in_shape, kernel, stride, padding) -> None:
    rng = np.random.default_rng(kernel * 10 + stride)
    weight = rng.normal(size=(4, in_shape[0], kernel, kernel))
    bias = rng.normal(size=4)
    pad = (padding, padding) if isinstance(padding, int) else padding
    shape = ConvShape(in_shape[0], in_shape[1], in_shape[2], 4, (kernel, kernel), (stride, stride), pad)
    dense, dense_bias = unroll_conv(shape, weight, bias)
    x = torch.from_numpy(rng.normal(size=(6, *in_shape)))
    expected = F.conv2d(x, torch.from_numpy(weight), torch.from_numpy(bias), stride, pad)
    assert expected.shape[1:] == (4, shape.out_height, shape.out_width)
    got = x.reshape(6, -1).numpy() @ dense.T + dense_bias
    np.testing.assert_allclose(got, expected.reshape(6, -1).numpy(), rtol=0, atol=1e-12)
    layer = AffineLayer(dense, dense_bias, shape)
    back_kernel, back_bias = conv_kernel(layer)  # the kernel comes back from the dense matrix
    touched = np.abs(dense).sum() > 0
    assert touched and np.array_equal(back_bias, bias)
    if max(pad) < kernel:  # every tap touches the input: the kernel is recovered entry for entry
        assert np.array_equal(back_kernel, weight)


@pytest.mark.parametrize("channels,sparse", [(1, True), (2, True), (16, False)])
def test_a_sparse_convolution_layer_equals_torch_conv2d(channels, sparse) -> None:
    # a 3x3 convolution of a 28x28 input touches 9 * channels of 784 * channels inputs per output: below
    # SPARSE_MAX_DENSITY the layer applies a CSR product, above it the dense one; both are conv2d
    rng = np.random.default_rng(channels)
    shape = ConvShape(channels, 28, 28, 3, (3, 3), (2, 2), (1, 1))
    if not sparse:  # 9 of 16 input positions: dense
        shape = ConvShape(channels, 4, 4, 3, (3, 3), (1, 1), (1, 1))
    weight, bias = rng.normal(size=(3, channels, 3, 3)), rng.normal(size=3)
    layer = AffineLayer(*unroll_conv(shape, weight, bias), shape)
    assert (layer._sparse_transpose is not None) == sparse
    x = rng.normal(size=(7, shape.in_features))
    expected = F.conv2d(torch.from_numpy(x).reshape(7, channels, shape.in_height, shape.in_width),
                        torch.from_numpy(weight), torch.from_numpy(bias), shape.stride, shape.padding).reshape(7, -1)
    np.testing.assert_allclose(layer(x), expected.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer(x[3]), expected.numpy()[3], rtol=0, atol=1e-12)  # one input, (in,)
    assert layer(x[:0]).shape == (0, shape.out_features)
    assert AffineLayer(np.eye(4), np.zeros(4))._sparse_transpose is None  # a dense layer never is


def test_conv_kernel_refuses_a_matrix_edited_inside_a_channel() -> None:
    shape = ConvShape(1, 4, 4, 2, (3, 3), (1, 1), (1, 1))
    dense, bias = unroll_conv(shape, np.ones((2, 1, 3, 3)), np.zeros(2))
    dense = dense.copy()
    dense[0, 0] = 5.0  # one position's weight differs: no longer a convolution
    with pytest.raises(ValueError, match="not a convolution"):
        conv_kernel(AffineLayer(dense, bias, shape))


def test_batchnorm2d_folding_equals_the_module_in_eval_mode() -> None:
    module = small_cnn(seed=1, batchnorm=True)
    network, info = from_sequential(module, input_shape=IN)
    assert info.input_shape == list(IN) and network.layers[0].conv.out_channels == 4
    x = images(50, IN, seed=1)
    reference = module(x).detach().numpy()
    assert np.ptp(reference) > 1e-3  # the outputs vary: the comparison means something
    np.testing.assert_allclose(ir_forward(network, x), reference, rtol=1e-12, atol=1e-12)


def test_avgpool_is_composed_into_the_linear_after_flatten() -> None:
    module = small_cnn(seed=2, pool=True)
    network, _ = from_sequential(module, input_shape=IN)
    assert network.layers[2].conv is None and network.layers[2].in_features == 27  # the un-pooled tensor
    x = images(50, IN, seed=2)
    np.testing.assert_allclose(ir_forward(network, x), module(x).detach().numpy(), rtol=1e-12, atol=1e-12)


def test_rebuilt_torch_conv_module_equals_the_dense_ir() -> None:
    network, _ = from_sequential(small_cnn(seed=3, batchnorm=True), input_shape=IN)
    rebuilt = to_sequential(network, "float64")
    assert [type(child).__name__ for child in rebuilt] == [
        "Conv2d", "ReLU", "Conv2d", "ReLU", "Flatten", "Linear", "ReLU", "Linear"]
    x = images(40, IN, seed=3)
    np.testing.assert_allclose(rebuilt(x).detach().numpy(), ir_forward(network, x), rtol=1e-12, atol=1e-12)


def test_pt_with_architecture_file_loads_and_round_trips(tmp_path: Path) -> None:
    module = nn.Sequential()
    module.add_module("features", nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                                nn.Conv2d(4, 3, 3, stride=2, padding=(1, 0)), nn.ReLU()))
    module.add_module("flatten", nn.Flatten())
    module.add_module("classifier", nn.Sequential(nn.Linear(27, 5), nn.ReLU(), nn.Linear(5, 2)))
    module = module.eval()
    torch.save(module.state_dict(), tmp_path / "net.pt")
    safetensors.torch.save_file(module.state_dict(), tmp_path / "net.safetensors")
    arch = {"input_shape": list(IN), "layers": [
        {"kind": "conv2d", "key": "features.0", "out_channels": 4, "kernel_size": 3, "stride": 1, "padding": 1},
        {"kind": "batchnorm2d", "key": "features.1"}, {"kind": "relu"},
        {"kind": "conv2d", "key": "features.3", "stride": 2, "padding": [1, 0]}, {"kind": "relu"},
        {"kind": "flatten"}, {"kind": "linear", "key": "classifier.0"}, {"kind": "relu"},
        {"kind": "linear", "key": "classifier.2"}]}
    for name in ("net.arch.json",):
        (tmp_path / name).write_text(json.dumps(arch))
    x = images(30, IN, seed=4)
    reference = module.double()(x).detach().numpy()
    for model in ("net.pt", "net.safetensors"):
        network, info = load_network(tmp_path / model)
        assert info.input_shape == list(IN) and info.activation_assumed is False and info.dtype == "float32"
        np.testing.assert_allclose(ir_forward(network, x), reference, rtol=1e-6, atol=1e-6)
    # the compressed outputs (here: the network unchanged) load back through the same loader
    written = save_network(network, tmp_path / "out", ["torch", "safetensors", "onnx"])
    assert written == ["compressed.pt", "compressed.safetensors", "compressed.onnx"]
    assert (tmp_path / "out" / "compressed.arch.json").exists()
    for name in written:
        again, info = load_network(tmp_path / "out" / name)
        assert info.input_shape == list(IN)
        np.testing.assert_allclose(ir_forward(again, x), ir_forward(network, x), rtol=1e-6, atol=1e-6)
    ops = [node.op_type for node in onnx.load(tmp_path / "out" / "compressed.onnx").graph.node]
    assert ops == ["Conv", "Relu", "Conv", "Relu", "Flatten", "Gemm", "Relu", "Gemm"]


def test_architecture_file_mismatches_are_one_line_errors(tmp_path: Path) -> None:
    module = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 1))
    torch.save(module.state_dict(), tmp_path / "m.pt")
    base = {"input_shape": [1, 4, 4], "layers": [{"kind": "conv2d", "key": "0"}, {"kind": "relu"},
                                                 {"kind": "flatten"}, {"kind": "linear", "key": "3"}]}
    cases = {
        "unused": ({**base, "layers": base["layers"][:2] + [{"kind": "flatten"}]}, "'3.bias' is not used by any layer of the architecture file (1 more)"),
        "extra field": ({**base, "layers": [{"kind": "conv2d", "key": "0", "dilation": 2}, *base["layers"][1:]]},
                        "dilation"),
        "missing key": ({**base, "layers": [{"kind": "conv2d", "key": "conv"}, *base["layers"][1:]]},
                        "no 'conv.weight'"),
        "out_channels": ({**base, "layers": [{"kind": "conv2d", "key": "0", "out_channels": 3},
                                             *base["layers"][1:]]}, "out_channels 3"),
        "shape": ({**base, "input_shape": [1, 5, 5]}, "expects 8 inputs"),
    }
    for case, (arch, telling) in cases.items():
        (tmp_path / "m.arch.json").write_text(json.dumps(arch))
        with pytest.raises(InputError) as caught:
            load_network(tmp_path / "m.pt")
        message = str(caught.value)
        assert telling in message and "\n" not in message, (case, message)
    (tmp_path / "m.arch.json").write_text(json.dumps(base))
    assert load_network(tmp_path / "m.pt")[0].hidden_widths == [8]


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_conv_state_dict_without_architecture_file_is_refused_naming_the_file(tmp_path: Path, suffix) -> None:
    state = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 1)).state_dict()
    path = tmp_path / f"cnn{suffix}"
    (torch.save if suffix == ".pt" else safetensors.torch.save_file)(state, path)
    with pytest.raises(InputError) as caught:
        load_network(path)
    message = str(caught.value)
    assert str(path) in message and "architecture file is needed" in message and "cnn.arch.json" in message
    assert "\n" not in message


@pytest.mark.parametrize(("module", "telling"), [
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2, 1)),
     "module 2 (MaxPool2d)"),
    (nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 1)),
     "module 0 (Conv2d) has dilation (2, 2)"),
    (nn.Sequential(nn.Conv2d(2, 2, 3, groups=2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 1)),
     "module 0 (Conv2d) has groups=2"),
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.ReLU(), nn.Flatten(),
                   nn.Linear(8, 1)), "padding_mode 'reflect'"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(8, 1)), "module 1 (Tanh)"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Linear(6, 1)), "module 2 (Linear) gets a C×H×W tensor"),
    (nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(2, 2, 1), nn.ReLU(), nn.Flatten(),
                   nn.Linear(8, 1)), "module 3 (Conv2d) follows module 2 (AvgPool2d)"),
    (nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Conv2d(2, 2, 1), nn.ReLU(),
                   nn.Flatten(), nn.Linear(2, 1)), "module 3 (Conv2d) follows module 2 (AdaptiveAvgPool2d)"),
    (nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
     "module 2 (AdaptiveAvgPool2d) is not followed by Flatten and Linear"),
    (nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d((2,)), nn.Flatten(), nn.Linear(8, 1)),
     "module 2 (AdaptiveAvgPool2d) has output size (2,)"),
    (nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(None), nn.Flatten(), nn.Linear(8, 1)),
     "module 2 (AdaptiveAvgPool2d) has output size None"),
])
def test_unsupported_cnn_modules_are_refused_with_one_line_naming_the_layer(module, telling) -> None:
    with pytest.raises(InputError) as caught:
        from_sequential(module, input_shape=(module[0].in_channels, 4, 6))
    message = str(caught.value)
    assert telling in message and "\n" not in message, message


def test_a_conv_needs_the_input_shape() -> None:
    module = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 1)).eval()
    with pytest.raises(InputError, match=r"input_shape=\(C, H, W\)"):
        from_sequential(module)
    assert from_sequential(module, input_shape=(1, 4, 4))[0].input_dim == 16


def test_a_conv_whose_dense_matrix_exceeds_the_limit_is_refused() -> None:
    side = 72  # 16 x 72 x 72 outputs times 72 x 72 inputs, float64: about 3.2 GiB
    assert 8 * 16 * side**4 > MAX_DENSE_BYTES
    module = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * side * side, 1))
    with pytest.raises(InputError, match=r"dense unrolled matrix of \d+ MiB \(> 256 MiB"):
        from_sequential(module, input_shape=(1, side, side))


def _onnx_cnn(tmp_path: Path, extra_node) -> Path:
    nodes = [helper.make_node("Conv", ["x", "K", "b"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu1"), extra_node,
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "W"], ["y"], name="gemm", transB=1)]
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1])],
        initializer=[numpy_helper.from_array(rng.normal(size=(2, 1, 3, 3)).astype(np.float32), "K"),
                     numpy_helper.from_array(rng.normal(size=2).astype(np.float32), "b"),
                     numpy_helper.from_array(rng.normal(size=(1, 8)).astype(np.float32), "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "cnn.onnx"
    onnx.save(model, path)
    return path


def test_onnx_maxpool_is_refused_naming_the_node(tmp_path: Path) -> None:
    path = _onnx_cnn(tmp_path, helper.make_node("MaxPool", ["r"], ["p"], name="pool1", kernel_shape=[2, 2],
                                                 strides=[2, 2]))
    with pytest.raises(InputError) as caught:
        load_network(path)
    assert "unsupported op MaxPool node 'pool1'" in str(caught.value) and "\n" not in str(caught.value)


def test_onnx_average_pool_is_composed_like_torch(tmp_path: Path) -> None:
    path = _onnx_cnn(tmp_path, helper.make_node("AveragePool", ["r"], ["p"], name="pool1", kernel_shape=[2, 2],
                                                 strides=[2, 2]))
    network, info = load_network(path)
    assert info.input_shape == [1, 4, 4] and network.hidden_widths == [32]
    model = onnx.load(path)
    weights = {tensor.name: torch.from_numpy(numpy_helper.to_array(tensor).astype(np.float64))
               for tensor in model.graph.initializer}
    x = images(20, (1, 4, 4), seed=5)
    hidden = F.avg_pool2d(torch.relu(F.conv2d(x, weights["K"], weights["b"], padding=1)), 2).flatten(1)
    reference = (hidden @ weights["W"].T).numpy()
    np.testing.assert_allclose(ir_forward(network, x), reference, rtol=1e-12, atol=1e-12)


def test_onnx_export_of_a_torch_cnn_loads_as_the_same_function(tmp_path: Path) -> None:
    module = small_cnn(seed=6, batchnorm=True, pool=True).float()
    path = tmp_path / "exported.onnx"
    torch.onnx.export(module, (torch.zeros(1, *IN),), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}})
    network, info = load_network(path)
    assert info.format == "onnx" and info.input_shape == list(IN) and info.activation_assumed is False
    x = images(30, IN, seed=6)
    reference = module.double()(x).detach().numpy()
    assert np.ptp(reference) > 1e-3
    np.testing.assert_allclose(ir_forward(network, x), reference, rtol=1e-5, atol=1e-5)


def test_onnx_batchnorm_after_conv_and_a_flattening_reshape(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    arrays = {"K": rng.normal(size=(3, 2, 3, 3)), "b": rng.normal(size=3), "scale": rng.uniform(0.5, 2, size=3),
              "shift": rng.normal(size=3), "mean": rng.normal(size=3), "var": rng.uniform(0.3, 3, size=3),
              "shape": np.array([0, -1], dtype=np.int64), "W": rng.normal(size=(2, 3 * 3 * 3)), "c": rng.normal(size=2)}
    nodes = [helper.make_node("Conv", ["x", "K", "b"], ["c1"], name="conv1", strides=[2, 2], pads=[1, 0, 1, 0]),
             helper.make_node("BatchNormalization", ["c1", "scale", "shift", "mean", "var"], ["n1"], name="bn1",
                              epsilon=1e-3),
             helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
             helper.make_node("Reshape", ["r1", "shape"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "W", "c"], ["y"], name="head", transB=1)]
    initializers = [numpy_helper.from_array(value if key == "shape" else value.astype(np.float64), key)
                    for key, value in arrays.items()]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["n", *IN])],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["n", 2])],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "bn.onnx")
    network, info = load_network(tmp_path / "bn.onnx")
    assert info.dtype == "float64" and network.layers[0].conv.stride == (2, 2)
    t = {key: torch.from_numpy(value) for key, value in arrays.items()}
    x = images(25, IN, seed=7)
    hidden = F.batch_norm(F.conv2d(x, t["K"], t["b"], stride=2, padding=(1, 0)), t["mean"], t["var"], t["scale"],
                          t["shift"], eps=float(np.float32(1e-3)))  # ONNX stores the epsilon as float32
    reference = (torch.relu(hidden).flatten(1) @ t["W"].T + t["c"]).numpy()
    assert np.ptp(reference) > 1e-3
    np.testing.assert_allclose(ir_forward(network, x), reference, rtol=1e-12, atol=1e-12)
    # a Reshape to anything but [batch, features] is refused, naming the node
    model.graph.initializer.remove(next(tensor for tensor in model.graph.initializer if tensor.name == "shape"))
    model.graph.initializer.append(numpy_helper.from_array(np.array([0, 3, -1], dtype=np.int64), "shape"))
    onnx.save(model, tmp_path / "reshape3.onnx")
    with pytest.raises(InputError) as caught:
        load_network(tmp_path / "reshape3.onnx")
    assert "Reshape node 'flat' is supported only as a flatten" in str(caught.value)


def test_a_batch_norm_after_a_pooled_linear_is_folded_into_its_pooled_weight() -> None:
    torch.manual_seed(5)
    module = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                           nn.Linear(3 * 3 * 4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2)).double().eval()
    with torch.no_grad():
        module[5].weight.uniform_(0.5, 2.0)
        module[5].running_mean.normal_()
        module[5].running_var.uniform_(0.3, 3.0)
    network, _ = from_sequential(module, input_shape=IN)
    pooled = network.layers[1].pooled
    assert pooled is not None and pooled.weight.shape == (5, 36) and network.layers[1].in_features == 3 * 48
    x = images(40, IN, seed=5)
    reference = module(x).detach().numpy()
    np.testing.assert_allclose(ir_forward(network, x), reference, rtol=1e-12, atol=1e-12)
    rebuilt = to_sequential(network, "float64")
    assert [type(child).__name__ for child in rebuilt] == [
        "Conv2d", "ReLU", "AvgPool2d", "Flatten", "Linear", "ReLU", "Linear"]
    np.testing.assert_allclose(rebuilt(x).detach().numpy(), reference, rtol=1e-12, atol=1e-12)


def test_a_pool_on_the_input_stays_composed_into_the_first_linear(tmp_path: Path) -> None:
    # no convolution before it: the written model is an MLP on the flat input, so there is no place for the pool
    torch.manual_seed(6)
    module = nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(2 * 3 * 4, 5), nn.ReLU(), nn.Linear(5, 2)).double()
    network, _ = from_sequential(module.eval(), input_shape=IN)
    assert network.layers[0].written_pooled is None and network.input_dim == 2 * 6 * 8
    assert network.n_params == sum(parameter.numel() for parameter in module.parameters())  # as its file holds them
    written = save_network(network, tmp_path, ["torch", "onnx"])
    x = images(30, IN, seed=6)
    for name in written:
        loaded, _ = load_network(tmp_path / name)
        np.testing.assert_allclose(ir_forward(loaded, x), module(x).detach().numpy(), rtol=1e-5, atol=1e-5)
