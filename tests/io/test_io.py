"""Loading every supported layout, saving and reloading, and refusing bad model files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import safetensors.torch
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from torch import nn

from exactcompress.engine.network import Network
from exactcompress.errors import InputError
from exactcompress.io import from_sequential, load_network, save_network, to_sequential

ATOL = 1e-5  # float32 models against the float64 IR


def relu_mlp(sizes=(5, 7, 6, 3), seed=0, bias=True, dtype=torch.float32) -> nn.Sequential:
    torch.manual_seed(seed)
    modules: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        modules += [nn.Linear(fan_in, fan_out, bias=bias, dtype=dtype), nn.ReLU()]
    return nn.Sequential(*modules[:-1]).eval()


def batchnorm_mlp(seed=1, eps=1e-5, affine=True) -> nn.Sequential:
    """Linear-BN-ReLU blocks with non-trivial running statistics (and affine parameters), in eval mode."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(5, 8), nn.BatchNorm1d(8, eps=eps, affine=affine), nn.ReLU(), nn.Linear(8, 6),
        nn.BatchNorm1d(6, eps=eps, affine=affine), nn.ReLU(), nn.Linear(6, 2)
    )
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.randn(64, 5) * 3 + 2)
        for bn in (model[1], model[4]):
            bn.running_var.mul_(1e-3)  # small variances: eps matters
            if affine:
                bn.weight.uniform_(0.5, 2.0)
                bn.bias.uniform_(-1.0, 1.0)
    return model.eval()


class NamedMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.fc1, self.fc2, self.fc3 = nn.Linear(5, 9), nn.Linear(9, 4), nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class NestedMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = relu_mlp(seed=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def sample_inputs(dim: int, n: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=2.0, size=(n, dim))


def torch_outputs(module: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x).float()).double().numpy()


def onnx_outputs(path: Path, x: np.ndarray, dtype=np.float32) -> np.ndarray:
    session = ReferenceEvaluator(str(path))
    (name,) = [value.name for value in session.proto_.graph.input]
    return np.asarray(session.run(None, {name: x.astype(dtype)})[0], dtype=np.float64)


def assert_matches_torch(path: Path, module: nn.Module, widths: list[int]) -> Network:
    network, info = load_network(path)
    x = sample_inputs(network.input_dim)
    np.testing.assert_allclose(network.forward(x), torch_outputs(module, x), atol=ATOL, rtol=ATOL)
    assert info.hidden_widths == widths
    return network


# ---------------------------------------------------------------- torch state dicts


def test_plain_state_dict_and_model_info(tmp_path: Path) -> None:
    model = relu_mlp()
    path = tmp_path / "plain_mlp.pt"
    torch.save(model.state_dict(), path)
    assert_matches_torch(path, model, [7, 6])
    _, info = load_network(str(path))
    assert (info.name, info.path, info.format, info.dtype) == ("plain_mlp", str(path), "torch", "float32")
    assert (info.input_dim, info.output_dim) == (5, 3)
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("nest_key", ["state_dict", "model_state_dict"])
def test_checkpoint_dict_with_extras(tmp_path: Path, nest_key: str) -> None:
    model = NamedMLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 5)).sum().backward()
    optimizer.step()
    path = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 7, "best_prec1": 91.5, nest_key: model.state_dict(), "optimizer": optimizer.state_dict()}, path)
    assert_matches_torch(path, model, [9, 4])


def test_a_checkpoint_with_one_state_dict_under_another_key(tmp_path: Path) -> None:
    """{"net": state_dict, "acc": …} was refused ("key 'net' holds a OrderedDict"); one dict of tensors beside
    scalars and an optimizer's state is the state dict, two are refused naming both."""
    model = NamedMLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 5)).sum().backward()
    optimizer.step()
    path = tmp_path / "checkpoint.pth"
    torch.save({"net": model.state_dict(), "acc": 0.9, "optimizer": optimizer.state_dict()}, path)
    assert_matches_torch(path, model, [9, 4])
    torch.save({"net": model.state_dict(), "ema": model.state_dict(), "epoch": 3}, path)
    with pytest.raises(InputError, match=r"checkpoint.pth: holds tensors under several keys \('net', 'ema'\); save"):
        load_network(str(path))
    # a review found the discriminator read where the generator's state dict sat one level deeper
    torch.save({"generator": {"state_dict": model.state_dict(), "step": 100}, "discriminator": model.state_dict()},
               path)
    with pytest.raises(InputError, match=r"holds tensors under several keys \('generator', 'discriminator'\)"):
        load_network(str(path))


def test_module_prefix_and_nested_names(tmp_path: Path) -> None:
    model = NestedMLP()
    path = tmp_path / "data_parallel.pt"
    torch.save({f"module.{key}": value for key, value in model.state_dict().items()}, path)
    assert next(iter(model.state_dict())) == "layers.0.weight"
    assert_matches_torch(path, model, [7, 6])


BATCHNORM_MLP_ARCH = {"input_shape": [5], "layers": [
    {"kind": "linear", "key": "0"}, {"kind": "batchnorm1d", "key": "1", "eps": 1e-3}, {"kind": "relu"},
    {"kind": "linear", "key": "3"}, {"kind": "batchnorm1d", "key": "4", "eps": 1e-3}, {"kind": "relu"},
    {"kind": "linear", "key": "6"}]}


def test_a_state_dict_batchnorm_is_refused_and_read_as_its_architecture_file_says(tmp_path: Path) -> None:
    """A state dict tells neither a BatchNorm1d's eps nor whether it sits before or after the ReLU: it used to be
    folded with eps 1e-5 before the ReLU, another function than the model's, reported exact. Now it is refused
    unless NAME.arch.json says both."""
    model = batchnorm_mlp(eps=1e-3)
    assert not torch.allclose(model[1].running_var, torch.ones(8))
    path = tmp_path / "bn.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(InputError) as caught:
        load_network(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: key '1.running_mean' is a BatchNorm1d: a state dict tells neither its eps "
                              "nor whether it comes before or after the ReLU"), message
    assert "put bn.arch.json beside it" in message and "batchnorm1d" in message and "\n" not in message
    (tmp_path / "bn.arch.json").write_text(json.dumps(BATCHNORM_MLP_ARCH))
    network = assert_matches_torch(path, model, [8, 6])
    assert not load_network(path)[1].activation_assumed
    assert network.dtype == "float32"


def test_a_batchnorm_after_the_relu_is_refused_not_folded_before_it(tmp_path: Path) -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.BatchNorm1d(6), nn.Linear(6, 3)).eval()
    torch.save(model.state_dict(), tmp_path / "after.pt")
    with pytest.raises(InputError, match=r"after\.pt: key '2\.running_mean' is a BatchNorm1d"):
        load_network(tmp_path / "after.pt")
    arch = {"input_shape": [4], "layers": [{"kind": "linear", "key": "0"}, {"kind": "relu"},
                                           {"kind": "batchnorm1d", "key": "2"}, {"kind": "linear", "key": "3"}]}
    (tmp_path / "after.arch.json").write_text(json.dumps(arch))
    with pytest.raises(InputError, match=r"module 2 \(BatchNorm1d\) does not directly follow a Linear"):
        load_network(tmp_path / "after.pt")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_batchnorm_without_affine_parameters_is_refused_in_a_state_dict_and_read_elsewhere(tmp_path: Path,
                                                                                              suffix: str) -> None:
    """BatchNorm1d(affine=False) has no weight or bias: a state dict of one used to end in KeyError 'weight'."""
    model = batchnorm_mlp(affine=False)
    path = tmp_path / f"plain{suffix}"
    (safetensors.torch.save_file if suffix == ".safetensors" else torch.save)(model.state_dict(), path)
    with pytest.raises(InputError, match=r"key '1\.running_mean' is a BatchNorm1d"):
        load_network(path)
    arch = {**BATCHNORM_MLP_ARCH, "layers": [{**layer, "eps": 1e-5} if "eps" in layer else layer
                                             for layer in BATCHNORM_MLP_ARCH["layers"]]}
    (tmp_path / "plain.arch.json").write_text(json.dumps(arch))
    assert_matches_torch(path, model, [8, 6])
    network, _ = from_sequential(model)
    x = sample_inputs(5)
    np.testing.assert_allclose(network.forward(x), torch_outputs(model, x), atol=ATOL, rtol=ATOL)


def test_linear_without_bias_and_float64_dtype(tmp_path: Path) -> None:
    model = relu_mlp(bias=False, dtype=torch.float64)
    path = tmp_path / "nobias.pt"
    torch.save(model.state_dict(), path)
    network, info = load_network(path)
    x = sample_inputs(5)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(network.forward(x), expected, atol=1e-12)
    assert info.dtype == "float64" and network.dtype == "float64"
    assert not np.any(network.layers[0].bias)


def test_a_model_of_several_dtypes_is_saved_in_the_one_that_holds_them_all(tmp_path: Path) -> None:
    """A float16 first layer and a float64 last one used to be saved all in float16 (the first weight's dtype),
    cutting the float64 layer's digits (0.123456789 → 0.12347) while the run said exact."""
    model = relu_mlp(sizes=(3, 4, 2))
    model[0].half()
    model[2].double()
    with torch.no_grad():
        model[2].bias.copy_(torch.tensor([0.123456789, -1.0001], dtype=torch.float64))
    torch.save(model.state_dict(), tmp_path / "mixed.pt")
    network, info = load_network(tmp_path / "mixed.pt")
    assert info.dtype == "float64" and network.dtype == "float64"
    assert from_sequential(model)[0].dtype == "float64"
    save_network(network, tmp_path / "out", ["torch"])
    saved = torch.load(tmp_path / "out" / "compressed.pt", weights_only=True)
    assert saved["2.bias"].dtype == torch.float64 and saved["2.bias"][0].item() == 0.123456789
    halves = relu_mlp(sizes=(3, 4, 2))
    halves[0].half()
    halves[2].bfloat16()
    assert from_sequential(halves)[0].dtype == "float32"  # neither half type holds the other


def test_unknown_suffix_is_sniffed(tmp_path: Path) -> None:
    model = relu_mlp()
    torch.save(model.state_dict(), tmp_path / "a.ckpt")
    safetensors.torch.save_file(model.state_dict(), tmp_path / "b.bin")
    network, _ = load_network(tmp_path / "a.ckpt")
    save_network(network, tmp_path, ["onnx"])
    (tmp_path / "compressed.onnx").rename(tmp_path / "c.model")
    formats = [load_network(tmp_path / name)[1].format for name in ("a.ckpt", "b.bin", "c.model")]
    assert formats == ["torch", "safetensors", "onnx"]


# ---------------------------------------------------------------- safetensors


def test_safetensors_orders_layers_by_number(tmp_path: Path) -> None:
    model = relu_mlp(sizes=(4, 6, 5, 7, 3, 6, 2))  # Linear modules 0, 2, ..., 10: "10" sorts before "2" as text
    path = tmp_path / "deep.safetensors"
    safetensors.torch.save_file(model.state_dict(), path)
    network = assert_matches_torch(path, model, [6, 5, 7, 3, 6])
    assert load_network(path)[1].format == "safetensors" and network.dtype == "float32"


def test_a_torch_file_whose_key_order_contradicts_its_layer_numbers_is_refused(tmp_path: Path) -> None:
    """A state dict re-sorted as text (0, 10, 12, 2, ...) of square layers chains in either order: refused, never
    read in the wrong one; the same tensors in module order load, and so do names whose numbers fix no order."""
    torch.manual_seed(3)
    model = nn.Sequential(*[m for _ in range(6) for m in (nn.Linear(4, 4), nn.ReLU())], nn.Linear(4, 4)).eval()
    state = model.state_dict()
    torch.save(dict(sorted(state.items())), tmp_path / "sorted.pt")
    with pytest.raises(InputError, match=r"sorted\.pt: .*module order 0, 10, 12, 2, .* numbers in their names give 0, 2, 4"):
        load_network(tmp_path / "sorted.pt")
    torch.save(state, tmp_path / "ordered.pt")
    assert_matches_torch(tmp_path / "ordered.pt", model, [4] * 6)
    names = {"0": "input", "2": "hidden", "4": "output"}
    small = relu_mlp(sizes=(4, 4, 4, 4))
    torch.save({f"{names[k.split('.')[0]]}.{k.split('.')[1]}": v for k, v in small.state_dict().items()},
               tmp_path / "named.pt")
    assert_matches_torch(tmp_path / "named.pt", small, [4, 4])


def test_safetensors_named_batchnorm_needs_its_architecture_file(tmp_path: Path) -> None:
    model = batchnorm_mlp(eps=1e-3)
    names = {"0": "fc1", "1": "bn1", "3": "fc2", "4": "bn2", "6": "fc3"}
    state = {f"{names[key.split('.')[0]]}.{key.split('.')[1]}": value for key, value in model.state_dict().items()}
    path = tmp_path / "named_bn.safetensors"
    safetensors.torch.save_file(state, path)
    with pytest.raises(InputError, match=r"named_bn\.safetensors: key 'bn\d\.running_(mean|var)' is a BatchNorm1d"):
        load_network(path)
    arch = {**BATCHNORM_MLP_ARCH, "layers": [{**layer, "key": names[layer["key"]]} if "key" in layer else layer
                                             for layer in BATCHNORM_MLP_ARCH["layers"]]}
    (tmp_path / "named_bn.arch.json").write_text(json.dumps(arch))
    assert_matches_torch(path, model, [8, 6])


# ---------------------------------------------------------------- ONNX built with onnx.helper


def save_onnx(path: Path, nodes, initializers, in_shape, out_dim: int) -> Path:
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", *in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", out_dim])],
        initializer=[numpy_helper.from_array(np.asarray(array, dtype=np.float32), name) for name, array in initializers.items()],
    )
    # opset 15: onnx's ReferenceEvaluator runs opset-9..13 BatchNormalization with batch statistics
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def weights(*shape: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


def gemm_chain(path: Path) -> Path:
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["g1"], name="gemm1", transB=1, alpha=0.5, beta=2.0),
        helper.make_node("Relu", ["g1"], ["h1"], name="relu1"),
        helper.make_node("Gemm", ["h1", "W2t", "b2"], ["g2"], name="gemm2"),  # transB=0: weight stored (in, out)
        helper.make_node("Relu", ["g2"], ["h2"], name="relu2"),
        helper.make_node("Gemm", ["h2", "W3"], ["y"], name="gemm3", transB=1),  # no bias
    ]
    initializers = {"W1": weights(6, 4, seed=1), "b1": weights(6, seed=2), "W2t": weights(6, 5, seed=3),
                    "b2": weights(1, 5, seed=4), "W3": weights(2, 5, seed=5)}
    return save_onnx(path, nodes, initializers, [4], 2)


def matmul_add_chain(path: Path) -> Path:
    nodes = [
        helper.make_node("MatMul", ["x", "A1"], ["m1"], name="mm1"),
        helper.make_node("Add", ["m1", "c1"], ["a1"], name="add1"),
        helper.make_node("Relu", ["a1"], ["h1"], name="relu1"),
        helper.make_node("Constant", [], ["A2"], name="const_A2", value=numpy_helper.from_array(weights(7, 3, seed=8).astype(np.float32))),
        helper.make_node("MatMul", ["h1", "A2"], ["m2"], name="mm2"),
        helper.make_node("Add", ["c2", "m2"], ["y"], name="add2"),  # bias as the first operand
    ]
    return save_onnx(path, nodes, {"A1": weights(4, 7, seed=6), "c1": weights(7, seed=7), "c2": weights(3, seed=9)}, [4], 3)


def batchnorm_flatten_chain(path: Path) -> Path:
    rng = np.random.default_rng(10)
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "W1", "b1"], ["g1"], name="gemm1", transB=1),
        helper.make_node("BatchNormalization", ["g1", "s", "t", "mu", "var"], ["bn1"], name="bn1", epsilon=1e-3),
        helper.make_node("Relu", ["bn1"], ["h1"], name="relu1"),
        helper.make_node("Dropout", ["h1"], ["d1"], name="dropout1"),
        helper.make_node("Gemm", ["d1", "W2", "b2"], ["g2"], name="gemm2", transB=1),
        helper.make_node("Identity", ["g2"], ["y"], name="identity"),
    ]
    initializers = {"W1": weights(8, 6, seed=11), "b1": weights(8, seed=12), "s": rng.uniform(0.5, 2, 8),
                    "t": rng.normal(size=8), "mu": rng.normal(size=8), "var": rng.uniform(0.1, 3, 8),
                    "W2": weights(2, 8, seed=13), "b2": weights(2, seed=14)}
    return save_onnx(path, nodes, initializers, [2, 3], 2)


@pytest.mark.parametrize(
    ("build", "in_shape", "widths"),
    [(gemm_chain, (4,), [6, 5]), (matmul_add_chain, (4,), [7]), (batchnorm_flatten_chain, (2, 3), [8])],
)
def test_onnx_graphs_match_reference_evaluator(tmp_path: Path, build, in_shape, widths) -> None:
    path = build(tmp_path / "model.onnx")
    network, info = load_network(path)
    x = sample_inputs(int(np.prod(in_shape)))
    expected = onnx_outputs(path, x.reshape(-1, *in_shape))
    np.testing.assert_allclose(network.forward(x), expected, atol=ATOL, rtol=ATOL)
    assert (info.format, info.dtype, info.hidden_widths) == ("onnx", "float32", widths)


# ---------------------------------------------------------------- sequential and saving


def test_from_sequential_folds_batchnorm_and_hashes_weights() -> None:
    model = batchnorm_mlp()
    network, info = from_sequential(model, name="bn")
    x = sample_inputs(5)
    np.testing.assert_allclose(network.forward(x), torch_outputs(model, x), atol=ATOL, rtol=ATOL)
    assert (info.name, info.format, info.hidden_widths) == ("bn", "sequential", [8, 6])
    assert info.sha256 == from_sequential(batchnorm_mlp())[1].sha256
    assert info.sha256 != from_sequential(batchnorm_mlp(seed=2))[1].sha256


def test_to_sequential_is_the_same_function() -> None:
    network, _ = from_sequential(relu_mlp())
    module = to_sequential(network, dtype="float64")
    assert [type(m).__name__ for m in module] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    x = sample_inputs(5)
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), network.forward(x), atol=1e-12)
    assert to_sequential(network)[0].weight.dtype == torch.float32


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_and_reload_every_format(tmp_path: Path, dtype: str) -> None:
    network, _ = from_sequential(batchnorm_mlp())
    network = Network(network.layers, dtype=dtype)
    written = save_network(network, tmp_path / "out", ["torch", "safetensors", "onnx"])
    assert written == ["compressed.pt", "compressed.safetensors", "compressed.onnx"]
    x = sample_inputs(5)
    atol = ATOL if dtype == "float32" else 1e-12
    for name in written:
        reloaded, info = load_network(tmp_path / "out" / name)
        assert info.dtype == dtype and info.hidden_widths == network.hidden_widths
        np.testing.assert_allclose(reloaded.forward(x), network.forward(x), atol=atol, rtol=atol)
    state = torch.load(tmp_path / "out" / "compressed.pt", weights_only=True)
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    onnx.checker.check_model(onnx.load(tmp_path / "out" / "compressed.onnx"))
    np.testing.assert_allclose(
        onnx_outputs(tmp_path / "out" / "compressed.onnx", x, np.dtype(dtype)), network.forward(x), atol=atol, rtol=atol
    )


def test_zero_hidden_layer_network_round_trips(tmp_path: Path) -> None:
    network = Network.from_arrays([weights(2, 4, seed=20)], [weights(2, seed=21)], dtype="float64")
    written = save_network(network, tmp_path, ["torch", "safetensors", "onnx"])
    x = sample_inputs(4)
    for name in written:
        reloaded, info = load_network(tmp_path / name, require_hidden_layer=False)
        assert info.hidden_widths == []
        np.testing.assert_allclose(reloaded.forward(x), network.forward(x), atol=1e-12)
        with pytest.raises(InputError, match="fewer than one hidden layer"):
            load_network(tmp_path / name)


def test_unknown_save_format_is_refused(tmp_path: Path) -> None:
    network, _ = from_sequential(relu_mlp())
    with pytest.raises(InputError, match="keras"):
        save_network(network, tmp_path, ["torch", "keras"])


def test_from_sequential_refuses_other_activations() -> None:
    with pytest.raises(InputError, match="Tanh"):
        from_sequential(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)))
    with pytest.raises(InputError, match="linear output"):
        from_sequential(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1), nn.ReLU()))


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.relu, self.fc2 = nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(x)) + x)


class Doubled(nn.Sequential):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


class Halved(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) / 2


def hooked(hook: str, path: str) -> nn.Sequential:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2)))
    getattr(model.get_submodule(path), hook)(lambda *args: None)
    return model


def forward_replaced() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    model[2].forward = lambda x: x
    return model


@pytest.mark.parametrize("build,telling", [
    (Residual, r"the model \(Residual\) is not nn.Sequential: its forward is its own"),
    (lambda: Doubled(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)),
     r"the model \(Doubled\) is a subclass of nn.Sequential"),
    (lambda: nn.Sequential(Doubled(nn.Linear(4, 4)), nn.ReLU(), nn.Linear(4, 2)),
     r"module 0 \(Doubled\) is a subclass"),
    (lambda: nn.Sequential(Halved(4, 4), nn.ReLU(), nn.Linear(4, 2)),
     r"module 0 \(Halved\) is a subclass of nn.Linear: its forward is its own, not nn.Linear's"),
    (lambda: hooked("register_forward_hook", "2.0"), r"module 2.0 \(Linear\) has a forward hook"),
    (lambda: hooked("register_forward_pre_hook", "2"), r"module 2 \(Sequential\) has a forward hook"),
    (lambda: hooked("register_forward_hook", ""), r"the model \(Sequential\) has a forward hook"),
    (forward_replaced, r"module 2 \(Linear\) has its forward replaced"),
])
def test_from_sequential_reads_only_what_nn_sequential_computes(build, telling) -> None:
    """A custom forward, a subclass's forward or a hook was read as the children in order: a different function."""
    with pytest.raises(InputError, match=telling) as caught:
        from_sequential(build().eval())
    assert "\n" not in str(caught.value)


class Built(nn.Sequential):
    """The usual subclass: it only builds its layers."""

    def __init__(self, widths: tuple[int, ...] = (4, 4, 2)) -> None:
        layers = [module for fan_in, fan_out in zip(widths, widths[1:]) for module in (nn.Linear(fan_in, fan_out),
                                                                                      nn.ReLU())]
        super().__init__(*layers[:-1])

    def describe(self) -> str:
        return "a method off the call path"


class Reordered(Built):
    def __iter__(self):
        return reversed(list(super().__iter__()))


class HalvingMixin(nn.Module):
    def _call_impl(self, *args, **kwargs):
        return super()._call_impl(*args, **kwargs) / 2


class WithMixin(nn.Sequential, HalvingMixin):  # the mixin's _call_impl comes before Module's
    pass


class SwappedForward(Built):
    def __getattribute__(self, name):
        forward = super().__getattribute__("forward")
        return (lambda x: 2 * forward(x)) if name == "forward" else super().__getattribute__(name)


class Precompiled(Built):
    _compiled_call_impl = staticmethod(lambda *args, **kwargs: 0)


def test_from_sequential_reads_a_subclass_that_only_builds_its_layers() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(Built((4, 5, 3)), nn.ReLU(), nn.Linear(3, 2)).eval()
    network, _ = from_sequential(model)
    x = torch.rand(16, 4, dtype=torch.float64)
    np.testing.assert_allclose(network.forward(x.numpy()), model.double()(x).detach().numpy(), atol=1e-12)
    assert from_sequential(Built().eval())[0].hidden_widths == [4]
    for subclass in (Reordered, WithMixin, SwappedForward, Precompiled):  # a review found the last three read
        model = (WithMixin(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)) if subclass is WithMixin else subclass()).eval()
        with pytest.raises(InputError, match=rf"the model \({subclass.__name__}\) is a subclass of nn.Sequential: its"):
            from_sequential(model)
    compiled = Built().eval()
    compiled._call_impl = lambda *args, **kwargs: 0
    with pytest.raises(InputError, match=r"the model \(Built\) has its _call_impl replaced"):
        from_sequential(compiled)


def test_from_sequential_reads_a_module_placed_twice_twice() -> None:
    """nn.Sequential computes a module it holds twice twice; named_children yields it once (found by a review: the
    network read had one hidden layer where the module computes two)."""
    torch.manual_seed(0)
    block = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    model = nn.Sequential(block, block, nn.Linear(4, 2)).eval()
    network, _ = from_sequential(model)
    assert network.hidden_widths == [4, 4]
    x = torch.rand(16, 4, dtype=torch.float64)
    np.testing.assert_allclose(network.forward(x.numpy()), model.double()(x).detach().numpy(), atol=1e-12)


def test_from_sequential_refuses_a_global_forward_hook() -> None:
    handle = torch.nn.modules.module.register_module_forward_hook(lambda *args: None)
    try:
        with pytest.raises(InputError, match="a global forward hook is registered"):
            from_sequential(relu_mlp())
    finally:
        handle.remove()
    from_sequential(relu_mlp())


@pytest.mark.parametrize("train,telling", [
    (lambda model: model.train(), r"module 1 \(BatchNorm1d\) is in training mode"),
    (lambda model: model[1].train(), r"module 1 \(BatchNorm1d\) is in training mode.*call .eval\(\)"),
])
def test_from_sequential_refuses_a_module_in_training_mode(train, telling) -> None:
    """BatchNorm in training mode uses the batch's statistics, Dropout drops: not the function folded."""
    model = batchnorm_mlp()
    train(model)
    with pytest.raises(InputError, match=telling):
        from_sequential(model)


def test_a_model_of_linear_and_relu_in_training_mode_is_read() -> None:
    """Only BatchNorm and Dropout compute differently in training mode; a fresh nn.Sequential is in it."""
    assert from_sequential(relu_mlp().train())[0].hidden_widths


def test_to_sequential_leaves_torchs_random_numbers_alone_and_is_in_eval_mode() -> None:
    network, _ = from_sequential(small_cnn_for_rng(), input_shape=(1, 4, 4))
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    module = to_sequential(network)
    assert torch.equal(torch.rand(3), expected)
    assert not any(child.training for child in module.modules())


def small_cnn_for_rng() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3), nn.ReLU(),
                         nn.Linear(3, 2)).eval()


# ---------------------------------------------------------------- bad inputs


def state_dict_with(tmp_path: Path, name: str, change) -> Path:
    state = dict(relu_mlp().state_dict())
    change(state)
    path = tmp_path / name
    (safetensors.torch.save_file if name.endswith(".safetensors") else torch.save)(state, path)
    return path


def truncated(name: str, save_format: str):
    def build(tmp_path: Path) -> Path:
        network, _ = from_sequential(relu_mlp())
        (full,) = save_network(network, tmp_path / "full", [save_format])
        data = (tmp_path / "full" / full).read_bytes()
        path = tmp_path / name
        path.write_bytes(data[: len(data) // 2])
        return path

    return build


def onnx_with_activation(op: str):
    def build(tmp_path: Path) -> Path:
        nodes = [
            helper.make_node("Gemm", ["x", "W1"], ["g1"], name="gemm1", transB=1),
            helper.make_node(op, ["g1"], ["h1"], name=f"my_{op.lower()}"),
            helper.make_node("Gemm", ["h1", "W2"], ["y"], name="gemm2", transB=1),
        ]
        return save_onnx(tmp_path / f"{op}.onnx", nodes, {"W1": weights(3, 2, seed=0), "W2": weights(1, 3, seed=1)}, [2], 1)

    return build


def onnx_relu_relu(tmp_path: Path) -> Path:
    nodes = [
        helper.make_node("Gemm", ["x", "W1"], ["g1"], name="gemm1", transB=1),
        helper.make_node("Relu", ["g1"], ["h1"], name="relu1"),
        helper.make_node("Relu", ["h1"], ["h2"], name="relu2"),
        helper.make_node("Gemm", ["h2", "W2"], ["y"], name="gemm2", transB=1),
    ]
    return save_onnx(tmp_path / "relu_relu.onnx", nodes, {"W1": weights(3, 2, seed=0), "W2": weights(1, 3, seed=1)}, [2], 1)


def onnx_relu_output(tmp_path: Path) -> Path:
    nodes = [
        helper.make_node("Gemm", ["x", "W1"], ["g1"], name="gemm1", transB=1),
        helper.make_node("Relu", ["g1"], ["h1"], name="relu1"),
        helper.make_node("Gemm", ["h1", "W2"], ["g2"], name="gemm2", transB=1),
        helper.make_node("Relu", ["g2"], ["y"], name="relu2"),
    ]
    return save_onnx(tmp_path / "relu_out.onnx", nodes, {"W1": weights(3, 2, seed=0), "W2": weights(1, 3, seed=1)}, [2], 1)


def onnx_nan(tmp_path: Path) -> Path:
    w1 = weights(3, 2, seed=0)
    w1[1, 1] = np.nan
    nodes = [
        helper.make_node("Gemm", ["x", "W1"], ["g1"], name="gemm1", transB=1),
        helper.make_node("Relu", ["g1"], ["h1"], name="relu1"),
        helper.make_node("Gemm", ["h1", "W2"], ["y"], name="gemm2", transB=1),
    ]
    return save_onnx(tmp_path / "nan.onnx", nodes, {"W1": w1, "W2": weights(1, 3, seed=1)}, [2], 1)


def onnx_conv(tmp_path: Path) -> Path:
    nodes = [
        helper.make_node("Conv", ["x", "K"], ["c"], name="conv1", dilations=[2, 2]),  # conv is read; dilation 2 is not
        helper.make_node("Flatten", ["c"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "W"], ["y"], name="gemm", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1])],
        initializer=[numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "K"),
                     numpy_helper.from_array(np.ones((1, 4), np.float32), "W")],
    )
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph), path)
    return path


def full_pickled_module(tmp_path: Path) -> Path:
    path = tmp_path / "full_model.pt"
    torch.save(relu_mlp(), path)
    return path


def write(name: str, data: bytes):
    def build(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return build


def set_item(key: str, value):
    def change(state: dict) -> None:
        state[key] = value(state)

    return change


def _save(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def _save_safetensors(path: Path, tensors: dict) -> Path:
    safetensors.torch.save_file(tensors, path)
    return path


def zip_bomb(tmp_path: Path) -> Path:
    """A torch-like zip whose one entry inflates to 64 MiB from a few dozen KiB."""
    import zipfile

    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\x00" * (64 * 2**20))
    return path


BAD_INPUTS = {
    "zip_bomb": (zip_bomb, "refusing to inflate it"),
    "missing": (lambda tmp_path: tmp_path / "missing.pt", "no such file"),
    "empty_pt": (write("empty.pt", b""), "empty"),
    "empty_onnx": (write("empty.onnx", b""), "empty"),
    "truncated_pt": (truncated("cut.pt", "torch"), "truncated"),
    "truncated_safetensors": (truncated("cut.safetensors", "safetensors"), "truncated"),
    "truncated_onnx": (truncated("cut.onnx", "onnx"), "onnx"),
    "unknown_format": (write("model.weights", b"hello, I am not a model\n"), "unknown format"),
    "pickled_module": (full_pickled_module, "pickled"),
    "zero_bytes_pt": (write("zero.pt", b"\x00" * 10), "is not a torch checkpoint"),
    "text_as_pt": (write("notes.pt", b"hello, I am text\n"), "accepted: a .pt/.pth/.ckpt state dict, .safetensors or .onnx"),
    "not_a_dict": (lambda tmp_path: _save(tmp_path / "list.pt", [torch.ones(2)]), "not a state_dict"),
    "nan_torch": (lambda tmp_path: state_dict_with(tmp_path, "nan.pt", set_item("2.bias", lambda s: s["2.bias"] * np.nan)), "2.bias' contains NaN"),
    "inf_safetensors": (lambda tmp_path: state_dict_with(tmp_path, "inf.safetensors", set_item("0.weight", lambda s: s["0.weight"] / 0)), "0.weight' contains NaN or Inf"),
    "nan_onnx": (onnx_nan, "W1' contains NaN"),
    "huge_torch": (lambda tmp_path: state_dict_with(tmp_path, "huge.pt", set_item("0.weight", lambda s: s["0.weight"] * 1e25)),
                   "0.weight' holds a value of size"),
    "shape_mismatch": (lambda tmp_path: state_dict_with(tmp_path, "shape.pt", set_item("2.weight", lambda s: torch.ones(6, 8))), "shape mismatch"),
    "no_hidden_layer": (lambda tmp_path: _save(tmp_path / "single.pt", {"weight": torch.ones(2, 3), "bias": torch.ones(2)}), "fewer than one hidden layer"),
    "conv_weight": (lambda tmp_path: state_dict_with(tmp_path, "conv.pt", set_item("0.weight", lambda s: torch.ones(7, 5, 3, 3))), "'0.weight' has shape (7, 5, 3, 3)"),
    "unknown_key": (lambda tmp_path: state_dict_with(tmp_path, "norm.pt", set_item("0.weight_g", lambda s: torch.ones(7))), "0.weight_g"),
    "batchnorm_first": (lambda tmp_path: _save(tmp_path / "bnfirst.pt", {k: v for k, v in batchnorm_mlp().state_dict().items() if not k.startswith("0.")}), "key '1.running_mean' is a BatchNorm1d"),
    "unnumbered_safetensors": (lambda tmp_path: _save_safetensors(tmp_path / "names.safetensors", {"hidden.weight": torch.ones(3, 2), "output.weight": torch.ones(1, 3)}), "ambiguous"),
    "same_number_safetensors": (lambda tmp_path: _save_safetensors(tmp_path / "same.safetensors", {"block1.a.weight": torch.ones(3, 2), "block1.b.weight": torch.ones(1, 3)}), "same layer numbers"),
    "onnx_sigmoid": (onnx_with_activation("Sigmoid"), "Sigmoid node 'my_sigmoid'"),
    "onnx_tanh": (onnx_with_activation("Tanh"), "non-ReLU activation Tanh"),
    "onnx_conv": (onnx_conv, "Conv node 'conv1' has dilations [2, 2]"),
    "onnx_relu_relu": (onnx_relu_relu, "two activations in a row"),
    "onnx_relu_output": (onnx_relu_output, "linear output"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_raise_one_line_input_error(tmp_path: Path, case: str) -> None:
    build, telling = BAD_INPUTS[case]
    path = build(tmp_path)
    with pytest.raises(InputError) as caught:
        load_network(path)
    message = str(caught.value)
    assert str(path) in message
    assert telling.lower() in message.lower(), message
    assert "\n" not in message


def test_every_model_suffix_has_a_format_and_every_format_suffix_is_a_model():
    """The zoo's model suffixes (schema) and the loader's formats (io) are two lists: they must agree."""
    from exactcompress.io import FORMAT_BY_SUFFIX
    from exactcompress.schema import MODEL_SUFFIXES

    assert sorted(FORMAT_BY_SUFFIX) == sorted(MODEL_SUFFIXES)
