"""Converting between in-memory ``torch.nn.Sequential`` ReLU MLPs and the ``Network`` IR."""

from __future__ import annotations

import hashlib
import math
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.modules import module as torch_module

from ..engine.convolution import conv_kernel
from ..engine.network import Network
from ..errors import InputError
from ..schema import ModelInfo
from .conv import (
    adaptive_avgpool,
    avgpool_matrix,
    conv_layer,
    fold_batchnorm2d,
    pair,
    PendingPools,
    pooled_linear,
    written_pool,
)
from .rules import (
    NamedAffine,
    checked_network,
    finite_float64,
    float_dtype,
    fold_batchnorm,
    torch_dtype_name,
    wider_dtype_name,
)

#: modules that are the identity in eval mode
PASS_THROUGH_MODULES = (nn.Identity, nn.Dropout, nn.Flatten)
#: the leaf modules ``from_sequential`` reads, by exact type: a subclass may compute something else
SUPPORTED_MODULES = (nn.Linear, nn.Conv2d, nn.ReLU, nn.BatchNorm1d, nn.BatchNorm2d, nn.AvgPool2d,
                     nn.AdaptiveAvgPool2d, *PASS_THROUGH_MODULES)
#: the advice of a refusal of a module whose forward is not its type's
OWN_FORWARD = "export ONNX or rebuild the model as an nn.Sequential of plain torch modules"
IN_MEMORY_PATH = "<in-memory nn.Sequential>"


def from_sequential(
    module: nn.Sequential, name: str = "sequential", require_hidden_layer: bool = True,
    input_shape: Sequence[int] | None = None,
) -> tuple[Network, ModelInfo]:
    """The IR of a Sequential of Linear, ReLU, BatchNorm1d (folded with its running stats, eval mode),
    Identity, Dropout and Flatten (start_dim 1) modules, nested Sequentials flattened; and for CNNs
    Conv2d (dilation 1, groups 1, zero padding; held as its dense unrolled matrix), BatchNorm2d (folded
    into the Conv2d before it) and AvgPool2d or AdaptiveAvgPool2d (after a ReLU, composed into the Linear after
    the Flatten that follows it). A CNN needs ``input_shape`` (C, H, W) of one input; given for an MLP, its size must be
    the first Linear's input count.

    Only what ``nn.Sequential`` computes is read: ``module`` and its nested Sequentials must be ``nn.Sequential``
    or a subclass that only adds methods off its call path (``_check_forward``), and the modules in them exactly of
    the types above (a subclass may have a forward of its own), with no forward hooks (nor global ones), and every
    BatchNorm and Dropout in eval mode (``module.eval()``).

    ``ModelInfo.sha256`` hashes the float64 weights and biases of the IR, layer by layer.
    Raises InputError (source ``name``) for other modules, subclasses, hooks, training mode, two ReLUs in a
    row, a ReLU after the last Linear, NaN/Inf weights, mismatched shapes or no hidden layer.
    """
    layers: list[NamedAffine] = []
    closed = 0  # layers[:closed] are followed by a ReLU
    dtype = ""
    shape = _image_shape(name, input_shape)  # (C, H, W) of the tensor between modules; None once flat
    pool: PendingPools | None = None  # pools read, to compose into the next Linear
    for path, child in _leaf_modules(name, module):
        label = f"module {path} ({type(child).__name__})"
        if isinstance(child, nn.Linear):
            if len(layers) > closed:
                raise InputError(name, f"{label} follows another Linear without a ReLU between them")
            if shape is not None:
                raise InputError(name, f"{label} gets a C×H×W tensor; put a Flatten before it")
            layer = _linear(name, path, child)
            if pool is not None:
                layer, pool = pooled_linear(name, label, layer, pool), None
            if not layers and input_shape is not None and layer.weight.shape[1] != math.prod(input_shape):
                raise InputError(name, f"{label} takes {layer.weight.shape[1]} inputs but input_shape "
                                 f"{list(input_shape)} has {math.prod(input_shape)} features")
            layers.append(layer)
            dtype = wider_dtype_name(dtype, torch_dtype_name(child.weight.dtype))
        elif isinstance(child, nn.Conv2d):
            if len(layers) > closed:
                raise InputError(name, f"{label} follows another layer without a ReLU between them")
            if pool is not None:
                raise InputError(name, f"{label} follows {pool.label}; an average pool is supported only before "
                                 "Flatten and Linear")
            if shape is None:
                where = ("needs the input shape: pass input_shape=(C, H, W)" if not layers and input_shape is None
                         else "gets a flat tensor; only Conv2d before Flatten is supported")
                raise InputError(name, f"{label} {where}")
            layers.append(_conv2d(name, path, child, shape))
            shape = (layers[-1].conv.out_channels, layers[-1].conv.out_height, layers[-1].conv.out_width)
            dtype = wider_dtype_name(dtype, torch_dtype_name(child.weight.dtype))
        elif isinstance(child, nn.BatchNorm2d):
            if len(layers) == closed or layers[-1].conv is None:
                raise InputError(name, f"{label} does not directly follow a Conv2d")
            layers[-1] = _folded_batchnorm(name, layers[-1], path, child)
        elif isinstance(child, nn.BatchNorm1d):
            if len(layers) == closed or layers[-1].conv is not None:
                raise InputError(name, f"{label} does not directly follow a Linear")
            layers[-1] = _folded_batchnorm(name, layers[-1], path, child)
        elif isinstance(child, nn.ReLU):
            if len(layers) == closed:
                raise InputError(name, f"{label} does not follow a Linear (two activations in a row?)")
            closed += 1
        elif isinstance(child, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            if shape is None or len(layers) > closed:
                raise InputError(name, f"{label} is supported only after a ReLU on a C×H×W tensor (then Flatten and "
                                 "Linear)")
            if isinstance(child, nn.AdaptiveAvgPool2d):
                matrix, out_shape, written = adaptive_avgpool(name, label, shape, child.output_size)
            else:
                options = (pair(child.kernel_size, "kernel_size"), pair(child.stride, "stride"),
                           pair(child.padding, "padding"), child.ceil_mode, child.count_include_pad,
                           child.divisor_override)
                written = written_pool(shape, *options)
                matrix, out_shape = avgpool_matrix(name, path, shape, *options)
            written, shape = (written if layers else None), out_shape  # on the input: nothing to write it after
            pool = (PendingPools.first if pool is None else pool.then)(label, matrix, shape[0], written)
        elif isinstance(child, nn.Flatten) and child.start_dim != 1:
            raise InputError(name, f"{label} flattens from dim {child.start_dim}; only start_dim 1 is supported")
        elif isinstance(child, nn.Flatten):
            shape = None
        elif not isinstance(child, PASS_THROUGH_MODULES):
            raise InputError(name, f"unsupported {label}; only Linear, Conv2d, ReLU, BatchNorm1d, BatchNorm2d, "
                             "AvgPool2d, AdaptiveAvgPool2d, Identity, Dropout, Flatten")
    if pool is not None:
        raise InputError(name, f"{pool.label} is not followed by Flatten and Linear; only that is supported")
    if layers and closed == len(layers):
        raise InputError(name, "the output passes through a ReLU; expected a linear output layer")
    _check_eval_mode(name, module)
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
        input_shape=list(network.input_shape) if network.is_convolutional else None,
    )


def _image_shape(source: str, input_shape: Sequence[int] | None) -> tuple[int, ...] | None:
    if input_shape is None:
        return None
    shape = tuple(int(value) for value in input_shape)
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise InputError(source, f"input_shape {list(input_shape)} must be (C, H, W) or (features,) of positive sizes")
    return shape if len(shape) == 3 else None


def to_sequential(network: Network, dtype: str | None = None) -> nn.Sequential:
    """Linear, ReLU, ..., Linear (no ReLU after the last) with weights cast to ``dtype or network.dtype``.

    The state dict keys are ``0.weight``, ``0.bias``, ``2.weight``, ... (ReLUs hold no parameters).
    Convolution layers become ``Conv2d`` (kernel recovered from the dense matrix), and a ``Flatten`` goes
    between the last convolution's ReLU and the next Linear (or after a convolution output layer), after the
    ``AvgPool2d`` modules of a pooled Linear (``AffineLayer.written_pooled``), which takes the pooled tensor: the module
    takes inputs of shape (N, C, H, W) when the first layer is a convolution. The module is in eval mode; building
    it leaves torch's random number generator as it was (no random initialisation).
    """
    torch_dtype = torch_float_dtype(dtype or network.dtype)
    modules: list[nn.Module] = []
    for position, layer in enumerate(network.layers):
        if layer.conv is not None:
            kernel, bias = conv_kernel(layer)
            shape = layer.conv
            module = nn.utils.skip_init(nn.Conv2d, shape.in_channels, shape.out_channels, shape.kernel_size,
                                        shape.stride, shape.padding, dtype=torch_dtype)
            weight, bias = torch.from_numpy(kernel), torch.from_numpy(bias)
        else:
            if position and network.layers[position - 1].conv is not None:
                modules += [nn.AvgPool2d(pool.kernel_size, pool.stride, pool.padding,
                                         count_include_pad=pool.count_include_pad)
                            for pool in (layer.written_pooled.pools if layer.written_pooled is not None else ())]
                modules.append(nn.Flatten())
            dense = layer.written_pooled.weight if layer.written_pooled is not None else layer.weight
            module = nn.utils.skip_init(nn.Linear, dense.shape[1], layer.out_features, dtype=torch_dtype)
            weight, bias = torch.from_numpy(np.array(dense)), torch.from_numpy(np.array(layer.bias))
        with torch.no_grad():
            module.weight.copy_(weight)
            module.bias.copy_(bias)
        modules += [module, nn.ReLU()]
    modules = modules[:-1]
    if network.layers[-1].conv is not None:
        modules.append(nn.Flatten())
    return nn.Sequential(*modules).eval()


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
        activation_assumed=False, input_shape=list(network.input_shape) if network.is_convolutional else None,
    )


def weights_sha256(network: Network) -> str:
    """sha256 over the float64 bytes of each layer's weight then bias, in layer order."""
    digest = hashlib.sha256()
    for layer in network.layers:
        digest.update(np.ascontiguousarray(layer.weight).tobytes())
        digest.update(np.ascontiguousarray(layer.bias).tobytes())
    return digest.hexdigest()


def _leaf_modules(source: str, module: nn.Module) -> list[tuple[str, nn.Module]]:
    """(dotted path, module) of the non-Sequential modules in ``module``, nested Sequentials expanded in order;
    InputError for a global forward hook and (``_check_forward``) for the model, a nested Sequential or a
    supported module whose forward may not be its type's."""
    _check_global_hooks(source)
    _check_forward(source, "", module, nn.Sequential)
    return _children(source, module, "")


def _children(source: str, module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    """Every child in the order ``nn.Sequential.forward`` calls them, a module placed twice read twice (as it is
    computed twice; ``named_children`` would yield it once)."""
    leaves = []
    for child_name, child in module._modules.items():
        path = f"{prefix}{child_name}"
        kind = next((kind for kind in (nn.Sequential, *SUPPORTED_MODULES) if isinstance(child, kind)), None)
        if kind is not None:  # others are refused as unsupported by from_sequential
            _check_forward(source, path, child, kind)
        leaves += _children(source, child, f"{path}.") if kind is nn.Sequential else [(path, child)]
    return leaves


def _label(path: str, module: nn.Module) -> str:
    return f"module {path} ({type(module).__name__})" if path else f"the model ({type(module).__name__})"


#: the attributes through which ``nn.Sequential`` computes (``Module.__call__`` → ``_wrapped_call_impl`` →
#: ``_compiled_call_impl`` or ``_call_impl`` → ``forward`` → ``__iter__``), and through which this module reads it:
#: a subclass whose type resolves every one of them to ``nn.Sequential``'s computes as it does
SEQUENTIAL_CALL_PATH = ("forward", "__call__", "_call_impl", "_wrapped_call_impl", "_compiled_call_impl", "_slow_forward",
                        "__iter__", "__len__", "__getitem__", "_get_item_by_idx", "named_children", "children",
                        "named_modules", "modules", "__getattribute__", "__getattr__", "__class__")


def _check_forward(source: str, path: str, module: nn.Module, kind: type[nn.Module]) -> None:
    """InputError unless ``module`` (at ``path``; "" for the model itself) is of type ``kind`` with no forward of its
    own and no forward hooks. A subclass of ``nn.Sequential`` (e.g. one that only builds its layers in
    ``__init__``) is read where its type resolves every attribute of ``SEQUENTIAL_CALL_PATH`` to the very object
    ``nn.Sequential`` does (over the whole method resolution order, mixins included); a subclass of any other type
    is refused."""
    label, name = _label(path, module), f"nn.{kind.__name__}"
    computes_as_kind = type(module) is kind or (kind is nn.Sequential and _computes_as_sequential(type(module)))
    if not isinstance(module, kind) or not computes_as_kind:
        relation = "a subclass of" if isinstance(module, kind) else "not"
        raise InputError(source, f"{label} is {relation} {name}: its forward is its own, not {name}'s: {OWN_FORWARD}")
    replaced = [attribute for attribute in SEQUENTIAL_CALL_PATH if attribute in vars(module)]
    if replaced:  # set on the instance, e.g. module.forward = … or module.compile()
        what = "forward" if replaced == ["forward"] else ", ".join(replaced)
        raise InputError(source, f"{label} has its {what} replaced, not {name}'s: {OWN_FORWARD}")
    if module._forward_hooks or module._forward_pre_hooks:
        raise InputError(source, f"{label} has a forward hook or pre-hook, which changes what it computes: remove "
                         "it or export ONNX")


def _computes_as_sequential(cls: type) -> bool:
    """Whether ``cls`` resolves every attribute of ``SEQUENTIAL_CALL_PATH`` to ``nn.Sequential``'s own object."""
    return all(getattr(cls, attribute, None) is getattr(nn.Sequential, attribute, None)
               for attribute in SEQUENTIAL_CALL_PATH)


def _check_global_hooks(source: str) -> None:
    """InputError while a global forward hook (``register_module_forward_hook``) changes what every module computes."""
    if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
        raise InputError(source, "a global forward hook is registered (torch.nn.modules.module."
                         "register_module_forward_hook), which changes what every module computes: remove it or export "
                         "ONNX")


def _check_eval_mode(source: str, module: nn.Module) -> None:
    """InputError if a BatchNorm or Dropout in ``module`` is in training mode (BatchNorm would use the batch's
    statistics, Dropout would drop inputs); the other supported modules compute the same in either mode."""
    for path, child in module.named_modules():
        if child.training and isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout)):
            raise InputError(source, f"{_label(path, child)} is in training mode, where BatchNorm uses batch "
                             "statistics and Dropout drops inputs: call .eval() on the model first")


def _tensor64(source: str, key: str, tensor: torch.Tensor) -> np.ndarray:
    float_dtype(source, key, torch_dtype_name(tensor.dtype))
    if tensor.is_meta:
        raise InputError(source, f"tensor '{key}' is on the meta device, so it holds no values; load the model's "
                         "weights first")
    return finite_float64(source, key, tensor.detach().to(torch.float64).cpu().numpy())


def _linear(source: str, path: str, linear: nn.Linear) -> NamedAffine:
    weight = _tensor64(source, f"{path}.weight", linear.weight)
    bias = _tensor64(source, f"{path}.bias", linear.bias) if linear.bias is not None else np.zeros(weight.shape[0])
    return NamedAffine(path, weight, bias)


def _conv2d(source: str, path: str, conv: nn.Conv2d, in_shape: tuple[int, int, int]) -> NamedAffine:
    label = f"module {path} (Conv2d)"
    if pair(conv.dilation, "dilation") != (1, 1):
        raise InputError(source, f"{label} has dilation {conv.dilation}; only dilation 1 is supported")
    if conv.groups != 1:
        raise InputError(source, f"{label} has groups={conv.groups}; only groups 1 is supported")
    if conv.padding_mode != "zeros":
        raise InputError(source, f"{label} has padding_mode '{conv.padding_mode}'; only 'zeros' is supported")
    padding = conv.padding
    if isinstance(padding, str):
        kernel_size = pair(conv.kernel_size, "kernel_size")
        if padding == "same" and all(size % 2 for size in kernel_size):
            padding = tuple(size // 2 for size in kernel_size)
        elif padding == "valid":
            padding = (0, 0)
        else:
            raise InputError(source, f"{label} has padding '{padding}' with an even kernel; give the padding as ints")
    weight = _tensor64(source, f"{path}.weight", conv.weight)
    bias = _tensor64(source, f"{path}.bias", conv.bias) if conv.bias is not None else None
    return conv_layer(source, path, in_shape, weight, bias, pair(conv.stride, "stride"), pair(padding, "padding"))


def _folded_batchnorm(source: str, affine: NamedAffine, path: str, bn: nn.BatchNorm1d) -> NamedAffine:
    if bn.running_mean is None or bn.running_var is None:
        raise InputError(source, f"batch norm {path} tracks no running statistics; it cannot be folded")
    width = bn.num_features
    scale = _tensor64(source, f"{path}.weight", bn.weight) if bn.weight is not None else np.ones(width)
    shift = _tensor64(source, f"{path}.bias", bn.bias) if bn.bias is not None else np.zeros(width)
    mean = _tensor64(source, f"{path}.running_mean", bn.running_mean)
    var = _tensor64(source, f"{path}.running_var", bn.running_var)
    if affine.conv is not None:
        return fold_batchnorm2d(source, affine, path, scale, shift, mean, var, bn.eps)
    return fold_batchnorm(source, affine, path, scale, shift, mean, var, bn.eps)
