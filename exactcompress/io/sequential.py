"""Converting between in-memory ``torch.nn.Sequential`` ReLU MLPs and the ``Network`` IR."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn

from ..engine.network import Network
from ..errors import InputError
from ..schema import ModelInfo
from .rules import (
    NamedAffine,
    checked_network,
    finite_float64,
    fold_batchnorm,
    torch_dtype_name,
)

#: modules that are the identity in eval mode
PASS_THROUGH_MODULES = (nn.Identity, nn.Dropout, nn.Flatten)
IN_MEMORY_PATH = "<in-memory nn.Sequential>"


def from_sequential(
    module: nn.Sequential, name: str = "sequential", require_hidden_layer: bool = True
) -> tuple[Network, ModelInfo]:
    """The IR of a Sequential of Linear, ReLU, BatchNorm1d (folded with its running stats, eval mode),
    Identity, Dropout and Flatten (start_dim 1) modules, nested Sequentials flattened.

    ``ModelInfo.sha256`` hashes the float64 weights and biases of the IR, layer by layer.
    Raises InputError (source ``name``) for other modules, two ReLUs in a row, a ReLU after the last
    Linear, NaN/Inf weights, mismatched shapes or no hidden layer.
    """
    layers: list[NamedAffine] = []
    closed = 0  # layers[:closed] are followed by a ReLU
    dtype = ""
    for path, child in _leaf_modules(module):
        label = f"module {path} ({type(child).__name__})"
        if isinstance(child, nn.Linear):
            if len(layers) > closed:
                raise InputError(name, f"{label} follows another Linear without a ReLU between them")
            layers.append(_linear(name, path, child))
            dtype = dtype or torch_dtype_name(child.weight.dtype)
        elif isinstance(child, nn.BatchNorm1d):
            if len(layers) == closed:
                raise InputError(name, f"{label} does not directly follow a Linear")
            layers[-1] = _folded_batchnorm(name, layers[-1], path, child)
        elif isinstance(child, nn.ReLU):
            if len(layers) == closed:
                raise InputError(name, f"{label} does not follow a Linear (two activations in a row?)")
            closed += 1
        elif isinstance(child, nn.Flatten) and child.start_dim != 1:
            raise InputError(name, f"{label} flattens from dim {child.start_dim}; only start_dim 1 is supported")
        elif not isinstance(child, PASS_THROUGH_MODULES):
            raise InputError(name, f"unsupported {label}; only Linear, ReLU, BatchNorm1d, Identity, Dropout, Flatten")
    if layers and closed == len(layers):
        raise InputError(name, "the output passes through a ReLU; expected a linear output layer")
    network = checked_network(name, layers, dtype, require_hidden_layer)
    return network, ModelInfo(
        name=name,
        path=IN_MEMORY_PATH,
        sha256=weights_sha256(network),
        format="sequential",
        dtype=dtype,
        input_dim=network.input_dim,
        hidden_widths=network.hidden_widths,
        output_dim=network.output_dim,
        activation_assumed=False,
    )


def to_sequential(network: Network, dtype: str | None = None) -> nn.Sequential:
    """Linear, ReLU, ..., Linear (no ReLU after the last) with weights cast to ``dtype or network.dtype``.

    The state dict keys are ``0.weight``, ``0.bias``, ``2.weight``, ... (ReLUs hold no parameters).
    """
    torch_dtype = torch_float_dtype(dtype or network.dtype)
    modules: list[nn.Module] = []
    for layer in network.layers:
        linear = nn.Linear(layer.in_features, layer.out_features, dtype=torch_dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.array(layer.weight)))
            linear.bias.copy_(torch.from_numpy(np.array(layer.bias)))
        modules += [linear, nn.ReLU()]
    return nn.Sequential(*modules[:-1])


def torch_float_dtype(name: str) -> torch.dtype:
    """``"float32"`` → ``torch.float32``; InputError for names that are not torch float dtypes."""
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InputError("dtype", f"'{name}' is not a torch floating point dtype (e.g. float32, float64)")
    return dtype


def network_info(network: Network, name: str = "network") -> tuple[Network, ModelInfo]:
    """``network`` with the ``ModelInfo`` of an in-memory IR (path ``<in-memory Network>``, sha256 of its
    float64 weights; its activations are ReLU by construction)."""
    return network, ModelInfo(
        name=name, path="<in-memory Network>", sha256=weights_sha256(network), format="network", dtype=network.dtype,
        input_dim=network.input_dim, hidden_widths=network.hidden_widths, output_dim=network.output_dim,
        activation_assumed=False,
    )


def weights_sha256(network: Network) -> str:
    """sha256 over the float64 bytes of each layer's weight then bias, in layer order."""
    digest = hashlib.sha256()
    for layer in network.layers:
        digest.update(np.ascontiguousarray(layer.weight).tobytes())
        digest.update(np.ascontiguousarray(layer.bias).tobytes())
    return digest.hexdigest()


def _leaf_modules(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """(dotted path, module) of the non-Sequential modules, nested Sequentials expanded in order."""
    leaves = []
    for child_name, child in module.named_children():
        path = f"{prefix}{child_name}"
        leaves += _leaf_modules(child, f"{path}.") if isinstance(child, nn.Sequential) else [(path, child)]
    return leaves


def _tensor64(source: str, key: str, tensor: torch.Tensor) -> np.ndarray:
    return finite_float64(source, key, tensor.detach().to(torch.float64).cpu().numpy())


def _linear(source: str, path: str, linear: nn.Linear) -> NamedAffine:
    weight = _tensor64(source, f"{path}.weight", linear.weight)
    bias = _tensor64(source, f"{path}.bias", linear.bias) if linear.bias is not None else np.zeros(weight.shape[0])
    return NamedAffine(path, weight, bias)


def _folded_batchnorm(source: str, affine: NamedAffine, path: str, bn: nn.BatchNorm1d) -> NamedAffine:
    if bn.running_mean is None or bn.running_var is None:
        raise InputError(source, f"batch norm {path} tracks no running statistics; it cannot be folded")
    width = bn.num_features
    scale = _tensor64(source, f"{path}.weight", bn.weight) if bn.weight is not None else np.ones(width)
    shift = _tensor64(source, f"{path}.bias", bn.bias) if bn.bias is not None else np.zeros(width)
    mean = _tensor64(source, f"{path}.running_mean", bn.running_mean)
    var = _tensor64(source, f"{path}.running_var", bn.running_var)
    return fold_batchnorm(source, affine, path, scale, shift, mean, var, bn.eps)
