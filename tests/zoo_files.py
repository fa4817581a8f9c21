"""Model files for zoo-job tests: small good nets and the bad inputs a zoo meets in practice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from nets import random_net
from onnx import TensorProto, helper, numpy_helper

from exactcompress.io.sequential import to_sequential


def write_good(path: Path, seed: int, input_dim: int = 4, hidden=(6, 5), bias_shift: float = 2.5) -> Path:
    """A small ReLU MLP state_dict (float32) with some stable neurons on [0, 1]^input_dim."""
    network = random_net(seed, input_dim, list(hidden), bias_shift=bias_shift)
    state = {key: value.float() for key, value in to_sequential(network).state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def write_corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK\x03\x04 this is not a zip archive at all")
    return path


def write_nan(path: Path) -> Path:
    network = random_net(3, 4, [5])
    state = {key: value.float() for key, value in to_sequential(network).state_dict().items()}
    first = next(key for key in state if key.endswith("weight"))
    state[first][0, 0] = float("nan")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def write_sigmoid_onnx(path: Path) -> Path:
    """Gemm → Sigmoid → Gemm: a network that is not ReLU."""
    rng = np.random.default_rng(0)
    initializers = {"W1": rng.normal(size=(5, 4)), "b1": rng.normal(size=5), "W2": rng.normal(size=(2, 5)), "b2": rng.normal(size=2)}
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["g1"], transB=1),
        helper.make_node("Sigmoid", ["g1"], ["h1"]),
        helper.make_node("Gemm", ["h1", "W2", "b2"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "sigmoid", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])],
        initializer=[numpy_helper.from_array(value.astype(np.float32), name) for name, value in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def write_mixed_zoo(directory: Path, n_good: int = 3) -> dict[str, str]:
    """Good and bad model files under ``directory``; returns {relative key: expected status or 'failed:<word>'}.

    The oversized model is a wide net (about 90 kB); jobs over this zoo use ``max_model_bytes = 20_000``.
    """
    expected = {}
    for index in range(n_good):
        write_good(directory / f"good/net{index}.pt", seed=10 + index)
        expected[f"good/net{index}.pt"] = "exact"
    write_corrupt(directory / "bad/corrupt.pt")
    expected["bad/corrupt.pt"] = "failed:zip"
    write_nan(directory / "bad/nan.pt")
    expected["bad/nan.pt"] = "failed:NaN"
    write_sigmoid_onnx(directory / "bad/sigmoid.onnx")
    expected["bad/sigmoid.onnx"] = "failed:Sigmoid"
    write_good(directory / "bad/huge.pt", seed=99, input_dim=64, hidden=(200, 100))
    expected["bad/huge.pt"] = "failed:max_model_bytes"
    return expected


def write_slow(path: Path, seed: int) -> Path:
    """A net whose per-neuron analysis runs into a short time limit (input 8, hidden (40, 40), no bias shift):
    about time_limit_s + 0.5 s per model with ``method: per-neuron`` and ``fallback_tasks: 1``; status partial."""
    return write_good(path, seed, input_dim=8, hidden=(40, 40), bias_shift=0)
