"""State dicts with an architecture file (``NAME.arch.json`` beside ``NAME.pt`` / ``NAME.safetensors``).

A state dict cannot tell a convolution's stride or padding, nor where the ReLUs, pools and the Flatten go;
``schema/arch.py``'s ``ArchFile`` does. The layers it lists are built as an ``nn.Sequential``, the tensors
are loaded into it (every tensor must be used, every parameter given) and ``from_sequential`` reads it,
so a state dict with an architecture file follows exactly the rules of an in-memory module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import TypeVar

import torch
from pydantic import ValidationError
from torch import nn

from ..engine.network import Network
from ..errors import InputError
from ..schema.arch import (
    ARCH_SUFFIX,
    AdaptiveAvgPool2dLayer,
    ArchFile,
    AvgPool2dLayer,
    BatchNorm1dLayer,
    BatchNorm2dLayer,
    Conv2dLayer,
    FlattenLayer,
    LinearLayer,
    ReluLayer,
)
from .conv import pair
from .rules import float_dtype, strip_wrappers, stripped_keys, torch_dtype_name

AnyPath = TypeVar("AnyPath", bound=PurePath)


def arch_path(model_path: AnyPath) -> AnyPath:
    """``dir/NAME.pt`` → ``dir/NAME.arch.json`` (a local path or a storage key's ``PurePosixPath``)."""
    return model_path.with_name(model_path.stem + ARCH_SUFFIX)


def read_arch_file(path: Path) -> ArchFile:
    """The validated architecture file at ``path``; InputError (naming it) with the first problem."""
    try:
        return ArchFile.model_validate_json(path.read_bytes())
    except OSError as error:
        raise InputError(str(path), f"cannot be read: {error.strerror or error}") from None
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise InputError(str(path), f"is not a valid architecture file: {where}: {problem['msg']}") from None


def sequential_from_arch(source: str, arch: ArchFile, tensors: Mapping[str, torch.Tensor]) -> nn.Sequential:
    """The ``nn.Sequential`` that ``arch`` describes, holding ``tensors`` (keys ``KEY.weight`` ...), in float64;
    wrapper prefixes (``module.``) are stripped from the tensors' keys and the architecture file's alike.

    InputError when a listed key has no tensor, a tensor is not used by any layer, or the sizes disagree.
    A batch norm without ``KEY.weight`` / ``KEY.bias`` (``affine=False``) scales by 1 and shifts by 0.
    """
    tensors = stripped_keys(source, tensors)
    used: set[str] = set()

    def tensor(key: str, param: str, required: bool = True) -> torch.Tensor | None:
        name = strip_wrappers(f"{key}.{param}")  # stripped as the tensors' keys are
        if name not in tensors:
            if required:
                raise InputError(source, f"the architecture file lists '{key}' but the state dict has no "
                                 f"'{key}.{param}'")
            return None
        used.add(name)
        value = tensors[name]
        if param != "num_batches_tracked":
            float_dtype(source, name, torch_dtype_name(value.dtype))
        return value.detach().to(torch.float64)

    modules: list[nn.Module] = []
    for position, layer in enumerate(arch.layers):
        label = f"layer {position} ({layer.kind} '{getattr(layer, 'key', '')}')"
        if isinstance(layer, Conv2dLayer):
            weight, bias = tensor(layer.key, "weight"), tensor(layer.key, "bias", required=False)
            if weight.ndim != 4:
                raise InputError(source, f"{label}: '{layer.key}.weight' has shape {tuple(weight.shape)}; a conv2d "
                                 "needs (out_channels, in_channels, kh, kw)")
            if layer.out_channels is not None and layer.out_channels != weight.shape[0]:
                raise InputError(source, f"{label}: out_channels {layer.out_channels} but the weight has "
                                 f"{weight.shape[0]}")
            if layer.kernel_size is not None and pair(layer.kernel_size, "kernel_size") != tuple(weight.shape[2:]):
                raise InputError(source, f"{label}: kernel_size {layer.kernel_size} but the weight's kernel is "
                                 f"{tuple(weight.shape[2:])}")
            module = nn.Conv2d(weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), pair(layer.stride, "stride"),
                               pair(layer.padding, "padding"), bias=bias is not None, dtype=torch.float64)
            _fill(source, label, module, weight, bias)
        elif isinstance(layer, (BatchNorm2dLayer, BatchNorm1dLayer)):
            mean = tensor(layer.key, "running_mean")
            if mean.ndim != 1:
                raise InputError(source, f"{label}: '{layer.key}.running_mean' has shape {tuple(mean.shape)}; batch "
                                 "norm statistics are one value per channel (a vector)")
            kind = nn.BatchNorm2d if isinstance(layer, BatchNorm2dLayer) else nn.BatchNorm1d
            module = kind(mean.shape[0], eps=layer.eps, dtype=torch.float64)
            with torch.no_grad():
                module.running_mean.copy_(mean)
                module.running_var.copy_(_same_shape(source, label, tensor(layer.key, "running_var"), mean))
                for param in ("weight", "bias"):
                    value = tensor(layer.key, param, required=False)
                    if value is not None:
                        getattr(module, param).copy_(_same_shape(source, label, value, mean))
            tensor(layer.key, "num_batches_tracked", required=False)
        elif isinstance(layer, LinearLayer):
            weight, bias = tensor(layer.key, "weight"), tensor(layer.key, "bias", required=False)
            if weight.ndim != 2:
                raise InputError(source, f"{label}: '{layer.key}.weight' has shape {tuple(weight.shape)}; a linear "
                                 "layer needs (out, in)")
            module = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=torch.float64)
            _fill(source, label, module, weight, bias)
        elif isinstance(layer, AdaptiveAvgPool2dLayer):
            size = layer.output_size
            module = nn.AdaptiveAvgPool2d(tuple(size) if isinstance(size, list) else size)
        elif isinstance(layer, AvgPool2dLayer):
            module = nn.AvgPool2d(pair(layer.kernel_size, "kernel_size"),
                                  pair(layer.stride, "stride") if layer.stride is not None else None,
                                  pair(layer.padding, "padding"), ceil_mode=layer.ceil_mode,
                                  count_include_pad=layer.count_include_pad,
                                  divisor_override=layer.divisor_override)
        elif isinstance(layer, ReluLayer):
            module = nn.ReLU()
        else:
            assert isinstance(layer, FlattenLayer)
            module = nn.Flatten()
        modules.append(module)
    unused = sorted(set(tensors) - used)
    if unused:
        raise InputError(source, f"tensor '{unused[0]}' is not used by any layer of the architecture file"
                         + (f" ({len(unused) - 1} more)" if len(unused) > 1 else ""))
    return nn.Sequential(*modules).eval()


def _same_shape(source: str, label: str, value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if value.shape != like.shape:
        raise InputError(source, f"{label}: a tensor of shape {tuple(value.shape)} where {tuple(like.shape)} is needed")
    return value


def _fill(source: str, label: str, module: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    with torch.no_grad():
        module.weight.copy_(weight)
        if bias is not None:
            if bias.shape != (weight.shape[0],):
                raise InputError(source, f"{label}: bias of shape {tuple(bias.shape)} for {weight.shape[0]} outputs")
            module.bias.copy_(bias)


def arch_network(source: str, arch_file: Path, tensors: Mapping[str, torch.Tensor], dtype: str,
                 require_hidden_layer: bool = True) -> Network:
    """The network of a state dict and its architecture file (``ModelInfo`` is made by the caller)."""
    from .sequential import from_sequential

    arch = read_arch_file(arch_file)
    module = sequential_from_arch(source, arch, tensors)
    try:
        network, _ = from_sequential(module, source, require_hidden_layer, input_shape=arch.input_shape)
    except InputError as error:
        raise InputError(source, f"{error.reason} (with architecture file {arch_file.name})") from None
    return Network(network.layers, dtype=dtype)


def arch_of(module: nn.Sequential, input_shape: tuple[int, ...]) -> ArchFile:
    """The architecture file of a module written by ``to_sequential`` (keys ``0``, ``2``, ...)."""
    layers = []
    for index, child in enumerate(module):
        if isinstance(child, nn.Conv2d):
            layers.append(Conv2dLayer(kind="conv2d", key=str(index), out_channels=child.out_channels,
                                      kernel_size=list(child.kernel_size), stride=list(child.stride),
                                      padding=list(child.padding)))
        elif isinstance(child, nn.Linear):
            layers.append(LinearLayer(kind="linear", key=str(index)))
        elif isinstance(child, nn.ReLU):
            layers.append(ReluLayer(kind="relu"))
        elif isinstance(child, nn.Flatten):
            layers.append(FlattenLayer(kind="flatten"))
        elif isinstance(child, nn.AvgPool2d) and not child.ceil_mode and child.divisor_override is None:
            layers.append(AvgPool2dLayer(kind="avgpool2d", kernel_size=list(pair(child.kernel_size, "kernel_size")),
                                         stride=list(pair(child.stride, "stride")),
                                         padding=list(pair(child.padding, "padding")),
                                         count_include_pad=child.count_include_pad))
        else:
            raise ValueError(f"no architecture-file layer for {type(child).__name__}")
    return ArchFile(input_shape=list(input_shape), layers=layers)


def arch_json(arch: ArchFile) -> str:
    return json.dumps(arch.model_dump(mode="json", exclude_none=True), indent=2) + "\n"


