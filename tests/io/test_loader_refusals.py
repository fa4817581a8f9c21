"""Inputs the loaders used to read as another function or crash on, each now refused with one line naming the
file and the tensor, node or layer (or, for the AvgPool2d options, read as torch computes them)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import safetensors.torch
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from exactcompress.errors import InputError
from exactcompress.io import from_sequential, load_network
from exactcompress.io.rules import finite_float64

RNG = np.random.default_rng(0)
W1, B1, W2, B2 = RNG.normal(size=(6, 4)), RNG.normal(size=6), RNG.normal(size=(3, 6)), RNG.normal(size=3)


def _refusal(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        load_network(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    return message


def _mlp(*sizes: int) -> nn.Sequential:
    torch.manual_seed(0)
    modules: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        modules += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*modules[:-1]).eval()


def _initializer(name: str, array) -> TensorProto:
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def _onnx(path: Path, nodes, initializers, opset: int = 13, in_dims=("n", 4), out_dims=("n", 3),
          domains=()) -> Path:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_dims))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_dims))],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]
                              + [helper.make_opsetid(domain, 1) for domain in domains])
    model.ir_version = 8 if opset >= 7 else 3
    onnx.save(model, path)
    return path


def _mlp_onnx(path: Path, middle, extra=(), opset: int = 13, w1=None, domains=()) -> Path:
    """Gemm → MIDDLE (nodes from 'h' to 'r') → Gemm, weights float32 unless ``w1`` is given as an initializer."""
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="gemm1", transB=1), *middle,
             helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], name="gemm2", transB=1)]
    initializers = [w1 if w1 is not None else _initializer("W1", W1), _initializer("b1", B1),
                    _initializer("W2", W2), _initializer("b2", B2), *extra]
    return _onnx(path, nodes, initializers, opset, domains=domains)


RELU = helper.make_node("Relu", ["h"], ["r"], name="relu1")


# ---------------------------------------------------------------- ONNX


def test_a_node_of_another_domain_is_refused_naming_it(tmp_path: Path) -> None:
    """A model-local 'Relu' of domain 'custom' may compute Tanh: it used to be read as a ReLU."""
    custom = helper.make_node("Relu", ["h"], ["r"], name="relu1", domain="custom")
    message = _refusal(_mlp_onnx(tmp_path / "custom.onnx", [custom], domains=["custom"]))
    assert "Relu node 'relu1' is of domain 'custom'; only standard ONNX ops" in message, message
    standard = helper.make_node("Relu", ["h"], ["r"], name="relu1", domain="ai.onnx")
    assert load_network(_mlp_onnx(tmp_path / "standard.onnx", [standard]))[1].hidden_widths == [6]


def _dropout(training_mode: str | None, **attributes) -> list[helper.NodeProto]:
    """Relu (h → h0) then Dropout (h0 → r), with inputs (data, ratio, training_mode) where that is given."""
    inputs = ["h0", "ratio", training_mode] if training_mode is not None else ["h0"]
    return [helper.make_node("Relu", ["h"], ["h0"]), helper.make_node("Dropout", inputs, ["r"], name="drop",
                                                                      **attributes)]


TRUE, FALSE = numpy_helper.from_array(np.array(True), "tm"), numpy_helper.from_array(np.array(False), "tm")
RATIO = _initializer("ratio", np.array(0.5))
TRAINING_DROPOUTS = {
    "constant_true": (_dropout("tm"), [TRUE, RATIO], 13, "training_mode input 'tm' is [True]"),
    "computed": (_dropout("h"), [RATIO], 13, "training_mode input 'h' is not a constant"),
    "opset6_default": (_dropout(None), [], 6, "is_test 0"),
    "opset6_is_test0": (_dropout(None, is_test=0), [], 6, "is_test 0"),
}


@pytest.mark.parametrize("case", sorted(TRAINING_DROPOUTS))
def test_a_dropout_in_training_mode_is_refused(tmp_path: Path, case: str) -> None:
    """torch.onnx.export(training=TRAINING) writes Dropout with a constant True training_mode: it drops at random,
    and used to be read as the identity (as was an opset-6 Dropout, whose is_test defaults to 0: training)."""
    middle, extra, opset, telling = TRAINING_DROPOUTS[case]
    message = _refusal(_mlp_onnx(tmp_path / f"{case}.onnx", middle, extra, opset))
    assert "Dropout node 'drop'" in message and "training mode" in message and telling in message, message


@pytest.mark.parametrize("middle, extra, opset", [
    (_dropout("tm"), [FALSE, RATIO], 13),
    ([helper.make_node("Constant", [], ["tm"], value=FALSE), *_dropout("tm")], [RATIO], 13),
    (_dropout(None), [], 13),
    (_dropout(None, is_test=1), [], 6),
], ids=["constant_false", "constant_node_false", "no_training_mode", "opset6_is_test1"])
def test_a_dropout_in_inference_mode_is_the_identity(tmp_path: Path, middle, extra, opset) -> None:
    network, _ = load_network(_mlp_onnx(tmp_path / "drop.onnx", middle, extra, opset))
    x = RNG.uniform(size=(8, 4))
    np.testing.assert_allclose(network.forward(x), np.maximum(x @ W1.T + B1, 0) @ W2.T + B2, atol=1e-5)


@pytest.mark.parametrize("opset, attributes, outputs", [(6, {"is_test": 0}, 1), (6, {}, 1), (9, {}, 5),
                                                        (15, {"training_mode": 1}, 1)])
def test_a_batchnormalization_in_training_mode_is_refused(tmp_path: Path, opset, attributes, outputs) -> None:
    """Batch statistics are not the running ones that folding uses."""
    names = ["h", "s", "t", "mu", "var"]
    bn = helper.make_node("BatchNormalization", names, ["b", "m1", "v1", "sm", "sv"][:outputs], name="bn1",
                          **attributes)
    extra = [_initializer(name, RNG.uniform(0.5, 2, 6)) for name in names[1:]]
    path = _mlp_onnx(tmp_path / "bn.onnx", [bn, helper.make_node("Relu", ["b"], ["r"])], extra, opset)
    message = _refusal(path)
    assert "BatchNormalization node 'bn1' is in training mode" in message, message


@pytest.mark.parametrize("attribute, value, telling", [
    ("sparse_value", helper.make_sparse_tensor(_initializer("v", [1.0]), numpy_helper.from_array(np.array([0]), "i"),
                                               [6]), "holds a sparse tensor (sparse_value)"),
    ("value_string", "abc", "holds strings (value_string)"),
    ("value", helper.make_tensor("c", TensorProto.STRING, [1], [b"abc"]), "tensor 'c' has dtype object"),
])
def test_a_constant_that_is_sparse_or_a_string_is_refused(tmp_path: Path, attribute, value, telling) -> None:
    constant = helper.make_node("Constant", [], ["c"], name="const", **{attribute: value})
    middle = [constant, helper.make_node("Add", ["h", "c"], ["a"]), helper.make_node("Relu", ["a"], ["r"])]
    message = _refusal(_mlp_onnx(tmp_path / "const.onnx", middle))
    assert telling in message, message


def test_finite_float64_turns_values_that_are_not_numbers_into_an_input_error() -> None:
    with pytest.raises(InputError, match=r"^f: tensor 'k' holds .* values, not numbers$"):
        finite_float64("f", "k", np.array([b"abc"]))
    with pytest.raises(InputError, match=r"^f: tensor 'k' holds object values, not numbers$"):
        finite_float64("f", "k", object())


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_weights_past_the_domain_bound_limit_are_refused_as_input_naming_the_tensor(tmp_path: Path, suffix) -> None:
    """A weight or bias of 4.8e17 used to fail in the solver (SCIP's errors, a zoo retrying it every run); at
    most 1e15 in magnitude is read, as for domain bounds."""
    state = {"0.weight": torch.tensor(W1), "0.bias": torch.tensor(B1), "2.weight": torch.tensor(W2),
             "2.bias": torch.tensor(B2)}
    path = tmp_path / f"huge{suffix}"
    save = safetensors.torch.save_file if suffix == ".safetensors" else torch.save
    save({**state, "2.bias": torch.full_like(state["2.bias"], 4.8e17)}, path)
    message = _refusal(path)
    assert "tensor '2.bias' holds a value of size 4.8e+17; at most 1e+15 is accepted" in message, message
    torch.save({**state, "0.weight": torch.full_like(state["0.weight"], 9e14)}, tmp_path / "large.pt")
    assert load_network(tmp_path / "large.pt")[0].layers[0].weight.max() == 9e14


@pytest.mark.parametrize("element_type", [TensorProto.INT32, TensorProto.INT64, TensorProto.FLOAT8E4M3FN])
def test_onnx_weights_of_a_dtype_other_than_float16_to_float64_are_refused(tmp_path: Path, element_type) -> None:
    """Integer weights used to fail only in the analysis (exit 1), float8 ones with a torch promotion error."""
    w1 = helper.make_tensor("W1", element_type, [6, 4], np.round(W1).astype(int).ravel().tolist())
    message = _refusal(_mlp_onnx(tmp_path / "w.onnx", [RELU], w1=w1))
    assert "tensor 'W1' has dtype " in message and "not one of float16, bfloat16, float32, float64" in message


def test_a_residual_add_of_two_computed_tensors_is_named_as_such(tmp_path: Path) -> None:
    """Conv → Relu → Conv → Add(conv, relu) used to be refused as an Add 'to a Conv's output' to be given as its
    bias."""
    k1, k2 = RNG.normal(size=(2, 1, 3, 3)), RNG.normal(size=(2, 2, 3, 3))
    nodes = [helper.make_node("Conv", ["x", "K1"], ["c1"]), helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "K2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "r1"], ["a"], name="residual"), helper.make_node("Relu", ["a"], ["r2"]),
             helper.make_node("Flatten", ["r2"], ["f"]), helper.make_node("Gemm", ["f", "W"], ["y"], transB=1)]
    path = _onnx(tmp_path / "residual.onnx", nodes, [_initializer("K1", k1), _initializer("K2", k2),
                                                     _initializer("W", RNG.normal(size=(3, 8)))],
                 in_dims=("n", 1, 4, 4))
    message = _refusal(path)
    assert "Add node 'residual' adds two computed tensors (a residual connection), which is not supported" in message


def test_a_node_output_named_like_an_initializer_is_refused(tmp_path: Path) -> None:
    """A review's graph: Gemm → g, Relu, Gemm → c, Add(c, g), and a zero initializer also named g. The loader read
    the residual Add as adding the constant g; ONNX defines each name once."""
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["g"], transB=1), helper.make_node("Relu", ["g"], ["r"]),
             helper.make_node("Gemm", ["r", "S", "b1"], ["c"], transB=1), helper.make_node("Add", ["c", "g"], ["y"])]
    path = _onnx(tmp_path / "shadow.onnx", nodes, [_initializer("W1", W1), _initializer("b1", B1),
                                                   _initializer("S", RNG.normal(size=(6, 6))),
                                                   _initializer("g", np.zeros(6))], out_dims=("n", 6))
    assert "tensor 'g' is defined more than once (by Gemm node #0" in _refusal(path)


@pytest.mark.parametrize("attribute, value", [("alpha", float("nan")), ("alpha", 1e30), ("beta", float("inf"))])
def test_gemm_alpha_and_beta_are_checked_with_the_weights(tmp_path: Path, attribute, value) -> None:
    """The NaN/Inf and size checks ran before alpha and beta scaled the weights: NaN and 1e30 weights loaded."""
    middle = [helper.make_node("Relu", ["h"], ["r"])]
    path = _mlp_onnx(tmp_path / "scaled.onnx", middle)
    model = onnx.load(path)
    model.graph.node[0].attribute.append(helper.make_attribute(attribute, value))
    onnx.save(model, path)
    assert f"times {attribute}" in _refusal(path)


@pytest.mark.parametrize("mutate, telling", [
    (lambda graph: graph.node[0].input.pop(), "Gemm node 'gemm1' has 1 inputs; Gemm needs 2"),
    (lambda graph: graph.node[1].output.pop(), "Relu node 'relu1' has no output"),
])
def test_malformed_onnx_nodes_are_refused_not_crashed_on(tmp_path: Path, mutate, telling) -> None:
    path = _mlp_onnx(tmp_path / "malformed.onnx", [RELU])
    model = onnx.load(path)
    while len(model.graph.node[0].input) > 2:
        model.graph.node[0].input.pop()
    mutate(model.graph)
    onnx.save(model, path)
    assert telling in _refusal(path)


def test_bias_shifts_that_add_up_past_the_size_limit_are_refused(tmp_path: Path) -> None:
    """Each Add's shift passes the 1e15 check alone; their sum is checked on the layer as read."""
    shifts = [helper.make_node("Add", ["h", "s1"], ["h1"]), helper.make_node("Add", ["h1", "s2"], ["h2"]),
              helper.make_node("Relu", ["h2"], ["r"])]
    path = _mlp_onnx(tmp_path / "shifts.onnx", shifts, extra=[numpy_helper.from_array(np.full(6, 9e14), "s1"),
                                                             numpy_helper.from_array(np.full(6, 9e14), "s2")])
    assert "bias as read (batch norms folded, shifts added)' holds a value of size 1.8e+15" in _refusal(path)


def test_from_sequential_refuses_meta_parameters() -> None:
    with torch.device("meta"):
        model = _mlp(4, 6, 3)
    with pytest.raises(InputError, match="tensor '0.weight' is on the meta device"):
        from_sequential(model)


# ---------------------------------------------------------------- torch state dicts


def test_partly_numbered_names_stored_against_their_numbers_are_refused(tmp_path: Path) -> None:
    """Modules registered as fc2, fc1, out (forward: fc1 → fc2 → out) used to load in key order, fc2 first."""
    layers = {name: nn.Linear(6, 6 if name != "out" else 3) for name in ("fc2", "fc1", "out")}
    state = {f"{name}.{param}": value for name, layer in layers.items() for param, value in layer.state_dict().items()}
    torch.save(state, tmp_path / "misordered.pt")
    message = _refusal(tmp_path / "misordered.pt")
    assert "module order fc2, fc1, out but the layer numbers in their names give fc1, fc2" in message, message
    assert "misordered.arch.json" in message
    ordered = {key: state[key] for key in sorted(state, key=lambda key: key.replace("out", "fc9"))}
    torch.save(ordered, tmp_path / "ordered.pt")
    assert load_network(tmp_path / "ordered.pt")[1].hidden_widths == [6, 6]


@pytest.mark.parametrize("names", [("fc_256", "fc_128", "out"), ("hidden512", "hidden256", "output"),
                                   ("fc_in", "fc_256", "fc_128")])
def test_numbers_that_are_sizes_not_places_keep_the_stored_order(tmp_path: Path, names) -> None:
    """Where the numbers' order does not chain (fc_128 first would need 256 inputs), they are not layer places:
    the stored order stands (a review found these refused)."""
    sizes = {"fc_256": (4, 256), "fc_128": (256, 128), "out": (128, 3), "hidden512": (4, 512),
             "hidden256": (512, 256), "output": (256, 3), "fc_in": (4, 256)}
    if names[0] == "fc_in":
        sizes.update(fc_256=(256, 128), fc_128=(128, 3))
    state = {f"{name}.{param}": value for name in names
             for param, value in nn.Linear(*sizes[name]).state_dict().items()}
    torch.save(state, tmp_path / "sized.pt")
    network = load_network(tmp_path / "sized.pt")[0]
    assert network.input_dim == 4 and network.output_dim == 3


STATE = _mlp(4, 6, 3).state_dict()
BAD_STATE_DICTS = {
    "float8": ({**STATE, "0.weight": STATE["0.weight"].to(torch.float8_e4m3fn)},
               "tensor '0.weight' has dtype float8_e4m3fn, not one of float16, bfloat16, float32, float64"),
    "int8": ({**STATE, "0.weight": STATE["0.weight"].to(torch.int8)}, "tensor '0.weight' has dtype int8"),
    "sparse": ({**STATE, "0.weight": STATE["0.weight"].to_sparse()},
               "tensor '0.weight' is a sparse tensor (sparse_coo); save it dense"),
    "meta": ({**STATE, "0.weight": torch.empty(6, 4, device="meta")},
             "tensor '0.weight' is on the meta device, so it holds no values"),
    "zero_outputs": ({"0.weight": torch.zeros(0, 4), "0.bias": torch.zeros(0), "2.weight": torch.zeros(3, 0),
                      "2.bias": torch.zeros(3)}, "layer '0' has weight shape (0, 4): 0 outputs and 4 inputs"),
    "zero_inputs": ({"0.weight": torch.zeros(6, 0), "2.weight": torch.zeros(3, 6)},
                    "layer '0' has weight shape (6, 0): 6 outputs and 0 inputs"),
    "duplicate_after_strip": ({**STATE, **{f"module.{key}": value for key, value in STATE.items()}},
                              "keys '0.weight' and 'module.0.weight' are both '0.weight' once the wrapper prefixes"),
}


@pytest.mark.parametrize("case", sorted(BAD_STATE_DICTS))
def test_bad_state_dicts_are_refused_naming_the_tensor(tmp_path: Path, case: str) -> None:
    state, telling = BAD_STATE_DICTS[case]
    torch.save(state, tmp_path / f"{case}.pt")
    message = _refusal(tmp_path / f"{case}.pt")
    assert telling in message, message


@pytest.mark.parametrize("case", ["float8", "duplicate_after_strip"])
def test_bad_state_dicts_are_refused_with_an_architecture_file_too(tmp_path: Path, case: str) -> None:
    state, telling = BAD_STATE_DICTS[case]
    torch.save(state, tmp_path / "m.pt")
    arch = {"input_shape": [4], "layers": [{"kind": "linear", "key": "0"}, {"kind": "relu"},
                                           {"kind": "linear", "key": "2"}]}
    (tmp_path / "m.arch.json").write_text(json.dumps(arch))
    assert telling in _refusal(tmp_path / "m.pt")


def test_float8_safetensors_and_modules_are_refused(tmp_path: Path) -> None:
    safetensors.torch.save_file(BAD_STATE_DICTS["float8"][0], tmp_path / "f8.safetensors")
    assert "tensor '0.weight' has dtype float8_e4m3fn" in _refusal(tmp_path / "f8.safetensors")
    module = _mlp(4, 6, 3)
    module[0].weight.data = module[0].weight.data.to(torch.float8_e4m3fn)
    with pytest.raises(InputError, match=r"tensor '0\.weight' has dtype float8_e4m3fn"):
        from_sequential(module)


def test_a_torchscript_archive_is_named_as_such_without_torchs_warning(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(_mlp(4, 6, 3)), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        message = _refusal(path)
    assert message == (f"{path}: is a TorchScript archive (torch.jit.save); save the state_dict "
                       "(torch.save(model.state_dict(), path)) or export ONNX")
