"""The rules every loader shares: one affine layer as read, batch-norm folding, finiteness, structure checks.

Each loader (torch state dict, safetensors, ONNX, ``nn.Sequential``) turns its format into a list of
``NamedAffine`` layers and hands it to ``checked_network``; every problem is an ``InputError`` that names the
file and the layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Sequence, TypeVar

import numpy as np
import torch

from ..engine.domain import MAX_BOUND
from ..engine.network import AffineLayer, ConvShape, Network, Pooled
from ..errors import InputError

#: key prefixes added by ``nn.DataParallel`` (``module.``) and ``torch.compile`` (``_orig_mod.``)
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: the dtypes a weight may have (torch's and numpy's names): each holds its values exactly in float64
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")

Value = TypeVar("Value")


def strip_wrappers(key: str) -> str:
    """A state dict key without the ``WRAPPER_PREFIXES`` (``module._orig_mod.fc1.weight`` → ``fc1.weight``)."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


def stripped_keys(source: str, tensors: Mapping[str, Value]) -> dict[str, Value]:
    """``tensors`` keyed without their ``WRAPPER_PREFIXES``, in order; InputError naming both keys where two
    become one (``module.0.weight`` and ``0.weight``: neither may silently replace the other)."""
    stripped: dict[str, Value] = {}
    raw_keys: dict[str, str] = {}
    for key, value in tensors.items():
        name = strip_wrappers(key)
        if name in stripped:
            raise InputError(source, f"keys '{raw_keys[name]}' and '{key}' are both '{name}' once the wrapper prefixes "
                             f"({', '.join(WRAPPER_PREFIXES)}) are stripped; keep one of them")
        stripped[name], raw_keys[name] = value, key
    return stripped


def float_dtype(source: str, key: str, dtype_name: str) -> str:
    """``dtype_name`` (torch's or numpy's) when it is one of ``FLOAT_DTYPES``; InputError naming tensor ``key``
    otherwise (integers, bool, complex, float8, strings, ...)."""
    if dtype_name not in FLOAT_DTYPES:
        raise InputError(source, f"tensor '{key}' has dtype {dtype_name}, not one of {', '.join(FLOAT_DTYPES)}")
    return dtype_name


@dataclass(frozen=True)
class NamedAffine:
    """One affine layer as read from a file, float64, shapes not yet checked against its neighbours.

    ``name`` is how error messages call it (a module prefix such as ``fc1``, or an ONNX node name);
    ``conv`` is set for a convolution held as its dense unrolled matrix (``io/conv.py``), ``pooled`` for a Linear
    after average pools held composed with them (``AffineLayer.pooled``).
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray
    conv: ConvShape | None = None
    pooled: Pooled | None = None


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first line of an exception message, at most ``limit`` characters, for one-line reasons."""
    lines = str(error).strip().splitlines()
    text = lines[0].strip() if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: the largest size of a weight or bias accepted: the domain's bound limit, so that bounds, big-M constants and
#: SCIP's coefficients stay finite and below SCIP's infinity (1e20); larger weights fail in the solver otherwise
MAX_PARAMETER_SIZE = MAX_BOUND


def finite_float64(source: str, key: str, values: np.ndarray) -> np.ndarray:
    """``values`` as a float64 array; InputError naming ``key`` if it holds NaN or Inf, or values beyond
    ``MAX_PARAMETER_SIZE`` in size, or values that are not numbers (strings, sparse tensors, ...)."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        kind = getattr(values, "dtype", None) or type(values).__name__
        raise InputError(source, f"tensor '{key}' holds {kind} values, not numbers") from None
    if not np.all(np.isfinite(array)):
        raise InputError(source, f"tensor '{key}' contains NaN or Inf values")
    largest = float(np.abs(array).max(initial=0.0))
    if largest > MAX_PARAMETER_SIZE:
        raise InputError(source, f"tensor '{key}' holds a value of size {largest:.3g}; at most {MAX_PARAMETER_SIZE:g} "
                         "is accepted (beyond, bounds and the solver's coefficients would not stay finite)")
    return array


def fold_batchnorm(
    source: str,
    affine: NamedAffine,
    bn_name: str,
    scale: np.ndarray,
    shift: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    eps: float,
) -> NamedAffine:
    """Fold eval-mode batch norm ``y = scale * (x - mean) / sqrt(var + eps) + shift`` into ``affine``.

    All vectors have shape (out,) of ``affine``; returns the folded layer (same name, same shapes).
    """
    width = affine.weight.shape[0]
    for label, vector in (("weight", scale), ("bias", shift), ("running_mean", mean), ("running_var", var)):
        if vector.shape != (width,):
            raise InputError(
                source,
                f"batch norm '{bn_name}' {label} has shape {tuple(vector.shape)} but layer '{affine.name}' "
                f"has {width} outputs",
            )
    if np.any(var + eps <= 0):
        raise InputError(source, f"batch norm '{bn_name}' has running_var + eps <= 0")
    factor = scale / np.sqrt(var + eps)
    bias = finite_float64(source, bn_name, factor * (affine.bias - mean) + shift)
    if affine.pooled is not None:
        pooled = affine.pooled.with_weight(finite_float64(source, bn_name, factor[:, None] * affine.pooled.weight))
        layer = AffineLayer.pooled_layer(pooled, bias)
        return NamedAffine(affine.name, finite_float64(source, bn_name, layer.weight), bias, pooled=pooled)
    weight = finite_float64(source, bn_name, factor[:, None] * affine.weight)
    return NamedAffine(affine.name, weight, bias, affine.conv)


def checked_network(
    source: str, layers: Sequence[NamedAffine], dtype: str, require_hidden_layer: bool = True
) -> Network:
    """The ``Network`` of ``layers`` after the structure rules shared by every format.

    Rules: weights 2-D and biases (out,); at least one input and one output per layer; consecutive shapes
    match; at least one hidden layer (two affine layers) unless ``require_hidden_layer`` is False. Finiteness and
    size are checked when reading, and again on the layers as read: folding a batch norm, adding bias shifts or
    composing an average pool can take a value past ``MAX_PARAMETER_SIZE``.
    """
    if not layers:
        raise InputError(source, "no Linear (affine) layers found")
    for layer in layers:
        if layer.weight.ndim != 2 or layer.bias.shape != (layer.weight.shape[0],):
            raise InputError(
                source,
                f"layer '{layer.name}' has weight shape {tuple(layer.weight.shape)} and bias shape "
                f"{tuple(layer.bias.shape)}; expected (out, in) and (out,)",
            )
        if 0 in layer.weight.shape:
            raise InputError(source, f"layer '{layer.name}' has weight shape {tuple(layer.weight.shape)}: "
                             f"{layer.weight.shape[0]} outputs and {layer.weight.shape[1]} inputs; every layer needs "
                             "at least one of each")
        pooled_weight = () if layer.pooled is None else (("weight on the pooled tensor", layer.pooled.weight),)
        for part, values in (("weight", layer.weight), ("bias", layer.bias), *pooled_weight):
            finite_float64(source, f"{layer.name} {part} as read (batch norms folded, shifts added)", values)
    for before, after in zip(layers, layers[1:]):
        if after.weight.shape[1] != before.weight.shape[0]:
            raise InputError(
                source,
                f"shape mismatch: layer '{after.name}' (weight shape {tuple(after.weight.shape)}) expects "
                f"{after.weight.shape[1]} inputs but layer '{before.name}' (weight shape "
                f"{tuple(before.weight.shape)}) gives {before.weight.shape[0]} outputs",
            )
    if require_hidden_layer and len(layers) < 2:
        raise InputError(
            source, f"fewer than one hidden layer: found {len(layers)} affine layer{'s' * (len(layers) != 1)} and no ReLU, "
            "so there is nothing to compress (a compressed model whose every hidden neuron was removed or folded is "
            "a single affine map)"
        )
    return Network(tuple(AffineLayer(layer.weight, layer.bias, layer.conv, layer.pooled) for layer in layers),
                   dtype=dtype)


def wider_dtype_name(*names: str) -> str:
    """The dtype that holds every one of ``names`` exactly ("" where none is given), as torch promotes them:
    ``("float16", "float64")`` → ``"float64"``, ``("float16", "bfloat16")`` → ``"float32"``. A model whose layers
    have several dtypes is saved compressed in this one, so that no layer loses digits."""
    dtypes = [getattr(torch, name) for name in names if name]
    if not dtypes:
        return ""
    widest = dtypes[0]
    for dtype in dtypes[1:]:
        widest = torch.promote_types(widest, dtype)
    return torch_dtype_name(widest)


def torch_dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` → ``"float32"`` (numpy's names; ``"bfloat16"`` has no numpy counterpart)."""
    return str(dtype).removeprefix("torch.")
