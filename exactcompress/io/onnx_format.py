"""Loading ReLU MLPs from ONNX graphs, and writing them (``save_onnx``).

Supported: one chain from the single data input to the single output made of ``Gemm`` (transA=0,
any transB, alpha, beta) or ``MatMul`` (data on the left) optionally followed by ``Add`` of a
constant, ``BatchNormalization`` (inference mode, folded into the preceding affine), ``Relu`` between
affine layers, and the pass-through ops ``Flatten`` (axis 1), ``Identity`` and ``Dropout`` (inference
mode). Weights must be float16, bfloat16, float32 or float64 initializers or dense ``Constant`` nodes. Only
standard ops (domain ``""`` or ``ai.onnx``) are read. The output layer must be linear.

CNNs (the data input declares a fixed [batch, C, H, W]): ``Conv`` (dilation 1, group 1, symmetric pads or
auto_pad VALID; held as its dense unrolled matrix), ``BatchNormalization`` after it (folded per channel),
``AveragePool`` or ``GlobalAveragePool`` after a ``Relu`` (composed into the ``Gemm``/``MatMul`` after the
``Flatten``), and
``Flatten`` or a ``Reshape`` to [batch, features] with a constant shape.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from ..engine.network import AvgPool, Network
from ..errors import InputError
from .conv import (
    PendingPools,
    adaptive_avgpool,
    avgpool_matrix,
    conv_layer,
    fold_batchnorm2d,
    pair,
    pooled_linear,
    written_pool,
)
from .rules import (
    NamedAffine,
    checked_network,
    finite_float64,
    first_line,
    float_dtype,
    fold_batchnorm,
    wider_dtype_name,
)

PASS_THROUGH_OPS = frozenset({"Identity", "Dropout", "Flatten"})
SUPPORTED_OPS = PASS_THROUGH_OPS | {"Gemm", "MatMul", "Add", "BatchNormalization", "Relu", "Conv", "AveragePool",
                                    "GlobalAveragePool", "Reshape"}
#: ops named as non-ReLU activations in error messages (any other unknown op is "unsupported")
OTHER_ACTIVATION_OPS = frozenset({
    "Sigmoid", "Tanh", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu", "Mish", "Softplus", "Softsign",
    "HardSigmoid", "HardSwish", "ThresholdedRelu", "Softmax", "LogSoftmax", "Clip", "Abs",
})
#: BatchNormalization's default epsilon in ONNX
ONNX_BATCHNORM_EPS = 1e-5
#: the domains of the standard ONNX ops (a node of another domain may compute anything under a known name)
STANDARD_DOMAINS = ("", "ai.onnx")
#: before this opset, Dropout and BatchNormalization have ``is_test`` (default 0: training mode)
IS_TEST_OPSET = 7
#: the ONNX opset and IR version written (opset 13 has Gemm and Relu with every float type)
ONNX_OPSET = 13
ONNX_IR_VERSION = 8
ONNX_ELEMENT_TYPES = {
    torch.float16: TensorProto.FLOAT16,
    torch.bfloat16: TensorProto.BFLOAT16,
    torch.float32: TensorProto.FLOAT,
    torch.float64: TensorProto.DOUBLE,
}


def load_onnx_file(path: Path, require_hidden_layer: bool = True) -> tuple[Network, str]:
    """Read an ONNX MLP graph; returns (network, numpy dtype name of the first weight initializer)."""
    source = str(path)
    try:
        model = onnx.load(str(path))
    except Exception as error:  # protobuf DecodeError, missing external data, ...
        raise InputError(
            source, f"could not be parsed as ONNX (truncated or corrupt file?): {first_line(error)}"
        ) from None
    if not model.graph.node:
        raise InputError(source, "holds no ONNX graph nodes (not an ONNX model, or truncated?)")
    _check_domains(source, model.graph)
    _check_node_shapes(source, model.graph)
    constants = _constants(source, model.graph)
    layers, dtype = _affine_chain(source, model.graph, constants, _opset(model))
    _check_input_shape(source, model.graph, constants, layers[0].weight.shape[1])
    return checked_network(source, layers, dtype, require_hidden_layer), dtype


def _label(node: onnx.NodeProto, index: int) -> str:
    return f"{node.op_type} node '{node.name}'" if node.name else f"{node.op_type} node #{index}"


def _attributes(node: onnx.NodeProto) -> dict[str, object]:
    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _opset(model: onnx.ModelProto) -> int | None:
    """The version of the standard op set the model imports (None where it names none)."""
    versions = [entry.version for entry in model.opset_import if entry.domain in STANDARD_DOMAINS]
    return versions[0] if versions else None


def _check_domains(source: str, graph: onnx.GraphProto) -> None:
    """InputError for a node outside ``STANDARD_DOMAINS``: a custom ``Relu`` may compute anything."""
    for index, node in enumerate(graph.node):
        if node.domain not in STANDARD_DOMAINS:
            raise InputError(source, f"{_label(node, index)} is of domain '{node.domain}'; only standard ONNX ops "
                             "(domain '' or 'ai.onnx') are supported")


#: the fewest inputs each op reads here (an optional one past them may be empty)
MIN_INPUTS = {"Gemm": 2, "MatMul": 2, "Conv": 2, "Add": 2, "BatchNormalization": 5, "Reshape": 2}


def _check_node_shapes(source: str, graph: onnx.GraphProto) -> None:
    """InputError for a node without an output or with fewer inputs than its op reads (``MIN_INPUTS``; the others
    one), and for a tensor name defined twice (by initializers, graph inputs or node outputs): an ONNX graph
    defines each name once, and a node output named like an initializer was read as that constant (a residual
    Add read as a bias)."""
    defined = {tensor.name for tensor in graph.initializer}
    for value in graph.input:
        if value.name not in defined:  # an initializer may also be listed as an input (IR version < 4)
            defined.add(value.name)
    for index, node in enumerate(graph.node):
        label = _label(node, index)
        needed = MIN_INPUTS.get(node.op_type, 0 if node.op_type == "Constant" else 1)
        if len(node.input) < needed or any(not name for name in node.input[:needed]):
            raise InputError(source, f"{label} has {len(node.input)} inputs; {node.op_type} needs {needed}")
        if not node.output or not node.output[0]:
            raise InputError(source, f"{label} has no output")
        for name in node.output:
            if name and name in defined:
                raise InputError(source, f"tensor '{name}' is defined more than once (by {label} and an earlier "
                                 "initializer, input or node); an ONNX graph defines each name once")
            defined.add(name)


def _constants(source: str, graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Initializers and dense ``Constant`` node outputs by tensor name, in their stored dtype."""
    try:
        constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    except Exception as error:
        raise InputError(source, f"could not read the ONNX weights: {first_line(error)}") from None
    for index, node in enumerate(graph.node):
        if node.op_type == "Constant":
            constants[node.output[0]] = _constant_value(source, node, _label(node, index))
    return constants


def _constant_value(source: str, node: onnx.NodeProto, label: str) -> np.ndarray:
    """The array of a ``Constant`` node: a dense tensor (``value``) or numbers (``value_float(s)``,
    ``value_int(s)``); InputError naming ``label`` for a sparse tensor or strings."""
    if len(node.attribute) != 1:
        raise InputError(source, f"{label} has {len(node.attribute)} attributes; a Constant has exactly one")
    (attribute,) = node.attribute
    if attribute.name in ("sparse_value", "value_string", "value_strings"):
        kind = "a sparse tensor" if attribute.name == "sparse_value" else "strings"
        raise InputError(source, f"{label} holds {kind} ({attribute.name}); only dense numeric constants are "
                         "supported")
    value = helper.get_attribute_value(attribute)
    try:
        return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)
    except Exception as error:
        raise InputError(source, f"{label}: its value could not be read: {first_line(error)}") from None


def _constant(source: str, constants: dict[str, np.ndarray], name: str, label: str) -> np.ndarray:
    """The weight ``name`` that ``label`` takes: an initializer or Constant of a float dtype (``float_dtype``)."""
    if name not in constants:
        raise InputError(source, f"input '{name}' of {label} is not an initializer or Constant")
    float_dtype(source, name, constants[name].dtype.name)
    return constants[name]


def _vector(source: str, constants: dict[str, np.ndarray], name: str, width: int, label: str) -> np.ndarray:
    """A finite float64 constant broadcast to shape (width,) (scalar, (width,) or (1, width))."""
    array = finite_float64(source, name, _constant(source, constants, name, label))
    try:
        return np.broadcast_to(array, (1, width)).reshape(width)
    except ValueError:
        raise InputError(
            source, f"input '{name}' of {label} has shape {tuple(array.shape)}, not broadcastable to ({width},)"
        ) from None


def _matrix(source: str, constants: dict[str, np.ndarray], name: str, label: str) -> np.ndarray:
    array = _constant(source, constants, name, label)
    if array.ndim != 2:
        raise InputError(source, f"weight '{name}' of {label} has shape {tuple(array.shape)}; expected 2-D")
    return array


def _affine_chain(
    source: str, graph: onnx.GraphProto, constants: dict[str, np.ndarray], opset: int | None = None
) -> tuple[list[NamedAffine], str]:
    """Walk the nodes from the data input to the output; returns the affine layers and the weight dtype.
    ``opset`` (the standard op set's version; None: unknown, read as recent) decides how a node says it is in
    training mode."""
    data_inputs = [value.name for value in graph.input if value.name not in constants]
    if len(data_inputs) != 1:
        raise InputError(source, f"expected one data input, found {len(data_inputs)}: {data_inputs}")
    current = data_inputs[0]
    closed: list[NamedAffine] = []
    pending: NamedAffine | None = None
    dtype = ""
    shape = _image_input_shape(graph, constants)  # (C, H, W) between nodes; None once flat
    pool: PendingPools | None = None  # pools read, to compose into the next Gemm/MatMul
    for index, node in enumerate(graph.node):
        if node.op_type == "Constant":
            continue
        label = _label(node, index)
        op = node.op_type
        inputs = list(node.input)
        if op not in SUPPORTED_OPS:
            raise InputError(source, _unsupported(op, label))
        if current not in inputs:
            raise InputError(source, f"{label} does not take the previous node's output; only chains are supported")
        data_position = inputs.index(current)
        if data_position != 0 and op != "Add":
            raise InputError(source, f"{label} takes the data as input {data_position}; expected it as input 0")
        attributes = _attributes(node)
        if op in ("Dropout", "BatchNormalization"):
            _check_inference_mode(source, constants, node, label, attributes, opset)
        if op == "Add" and inputs[1 - data_position] not in constants:
            raise InputError(source, f"{label} adds two computed tensors (a residual connection), which is not "
                             "supported; only a chain of layers with constant biases is")
        if op in ("Gemm", "MatMul"):
            if pending is not None:
                raise InputError(source, f"{label} follows another affine layer without an activation between them")
            if shape is not None:
                raise InputError(source, f"{label} gets a C×H×W tensor; put a Flatten before it")
            pending, weight_dtype = _gemm(source, constants, node, label, attributes)
            if pool is not None:
                pending, pool = pooled_linear(source, label, pending, pool), None
            dtype = wider_dtype_name(dtype, weight_dtype)
        elif op == "Conv":
            if pending is not None:
                raise InputError(source, f"{label} follows another affine layer without an activation between them")
            if pool is not None:
                raise InputError(source, f"{label} follows {pool.label}; an average pool is supported only before "
                                 "Flatten and Gemm/MatMul")
            if shape is None:
                raise InputError(source, f"{label} needs a C×H×W input: the data input must declare a fixed shape "
                                 "[batch, C, H, W] and no Flatten may come before it")
            pending, weight_dtype = _conv(source, constants, node, label, attributes, shape)
            shape = (pending.conv.out_channels, pending.conv.out_height, pending.conv.out_width)
            dtype = wider_dtype_name(dtype, weight_dtype)
        elif op in ("AveragePool", "GlobalAveragePool"):
            if pending is not None or shape is None:
                raise InputError(source, f"{label} is supported only after a Relu on a C×H×W tensor (then Flatten "
                                 "and Gemm/MatMul)")
            if op == "GlobalAveragePool":
                matrix, shape, written = adaptive_avgpool(source, label, shape, 1)
            else:
                matrix, shape, written = _average_pool(source, label, attributes, shape)
            written = written if closed else None  # on the input: nothing to write it after
            pool = (PendingPools.first if pool is None else pool.then)(label, matrix, shape[0], written)
        elif op == "Reshape":
            shape = _flattening_reshape(source, constants, node, label, shape)
        elif op == "Add" and pending is not None and pending.conv is not None:
            raise InputError(source, f"{label} adds to a Conv's output; give the bias as the Conv's third input")
        elif op == "Add":
            if pending is None:
                raise InputError(source, f"{label} does not directly follow a Gemm or MatMul")
            other = inputs[1 - data_position]
            shift = _vector(source, constants, other, pending.weight.shape[0], label)
            pending = dataclasses.replace(pending, bias=pending.bias + shift)
        elif op == "BatchNormalization":
            if pending is None:
                raise InputError(source, f"{label} does not directly follow a Gemm or MatMul")
            width = pending.weight.shape[0] if pending.conv is None else pending.conv.out_channels
            scale, shift, mean, var = (_vector(source, constants, name, width, label) for name in inputs[1:5])
            eps = float(attributes.get("epsilon", ONNX_BATCHNORM_EPS))
            fold = fold_batchnorm if pending.conv is None else fold_batchnorm2d
            pending = fold(source, pending, node.name or label, scale, shift, mean, var, eps)
        elif op == "Relu":
            if pending is None:
                where = "before any affine layer" if not closed else "after another activation (two activations in a row)"
                raise InputError(source, f"{label} comes {where}")
            closed.append(pending)
            pending = None
        elif op in PASS_THROUGH_OPS:
            if op == "Flatten" and attributes.get("axis", 1) != 1:
                raise InputError(source, f"{label} flattens with axis {attributes['axis']}; only axis 1 is supported")
            if op == "Flatten":
                shape = None
        else:
            raise InputError(source, _unsupported(op, label))
        current = node.output[0]
    if pool is not None:
        raise InputError(source, f"{pool.label} is not followed by Flatten and Gemm/MatMul; only that is supported")
    if len(graph.output) != 1 or graph.output[0].name != current:
        raise InputError(source, f"the graph output is not the end of the node chain (ends at '{current}')")
    if pending is None:
        reason = "no Gemm or MatMul layers found" if not closed else "the output passes through Relu; expected a linear output layer"
        raise InputError(source, reason)
    return closed + [pending], dtype


def _check_inference_mode(source: str, constants: dict[str, np.ndarray], node: onnx.NodeProto, label: str,
                          attributes: dict[str, object], opset: int | None) -> None:
    """InputError for a Dropout or BatchNormalization in training mode (random, or batch statistics), as its
    opset says it: ``is_test`` 0 or absent (opset < 7); a ``training_mode`` input that is not a constant False
    (Dropout, opset >= 12); ``training_mode`` 1, or more than one output (BatchNormalization)."""
    has_is_test = "is_test" in attributes or (opset is not None and opset < IS_TEST_OPSET)
    if has_is_test and not attributes.get("is_test", 0):
        raise InputError(source, f"{label} is in training mode (is_test {attributes.get('is_test', 0)}; before opset "
                         f"{IS_TEST_OPSET} its default is 0); export the model in eval mode")
    if node.op_type == "Dropout":
        name = node.input[2] if len(node.input) > 2 else ""
        value = constants.get(name)
        if name and (value is None or value.size != 1 or bool(value.reshape(-1)[0])):
            what = "is not a constant" if value is None else f"is {value.reshape(-1)[:1].tolist()}"
            raise InputError(source, f"{label} may be in training mode: its training_mode input '{name}' {what}; "
                             "only a constant False (inference: the identity) is supported")
        return
    outputs = [name for name in node.output if name]
    if attributes.get("training_mode", 0) or len(outputs) > 1:
        raise InputError(source, f"{label} is in training mode (batch statistics: training_mode "
                         f"{attributes.get('training_mode', 0)}, {len(outputs)} outputs); export the model in eval "
                         "mode")


def _unsupported(op: str, label: str) -> str:
    if op in OTHER_ACTIVATION_OPS:
        return f"non-ReLU activation {label} is not supported; only ReLU networks can be compressed"
    return (
        f"unsupported op {label}; expected Gemm, MatMul, Add, Relu, BatchNormalization, Flatten, Identity, Dropout, "
        "Conv, AveragePool, GlobalAveragePool, Reshape"
    )


def _image_input_shape(graph: onnx.GraphProto, constants: dict[str, np.ndarray]) -> tuple[int, int, int] | None:
    """(C, H, W) when the data input declares fixed dims [batch, C, H, W], else None."""
    values = [value for value in graph.input if value.name not in constants]
    if len(values) != 1:
        return None
    dims = values[0].type.tensor_type.shape.dim[1:]
    dims = values[0].type.tensor_type.shape.dim[1:]
    if len(dims) == 3 and all(dim.HasField("dim_value") and dim.dim_value > 0 for dim in dims):
        return tuple(int(dim.dim_value) for dim in dims)
    return None


def _symmetric_pads(source: str, label: str, attributes: dict[str, object]) -> tuple[int, int]:
    auto_pad = attributes.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    if auto_pad not in ("NOTSET", "VALID"):
        raise InputError(source, f"{label} has auto_pad {auto_pad}; give explicit pads")
    pads = [int(pad) for pad in attributes.get("pads", [0, 0, 0, 0])] if auto_pad == "NOTSET" else [0, 0, 0, 0]
    if len(pads) != 4 or pads[:2] != pads[2:]:
        raise InputError(source, f"{label} has pads {pads}; only 2-D symmetric pads (top = bottom, left = right) are "
                         "supported")
    return pads[0], pads[1]


def _conv(source: str, constants: dict[str, np.ndarray], node: onnx.NodeProto, label: str,
          attributes: dict[str, object], shape: tuple[int, int, int]) -> tuple[NamedAffine, str]:
    """The dense unrolled layer of a Conv node (weight (out, in, kh, kw), optional bias)."""
    raw = _constant(source, constants, node.input[1], label)
    if raw.ndim != 4:
        raise InputError(source, f"{label} has a weight of shape {tuple(raw.shape)}; only 2-D convolutions "
                         "(out, in, kh, kw) are supported")
    if any(int(value) != 1 for value in attributes.get("dilations", [1, 1])):
        raise InputError(source, f"{label} has dilations {list(attributes['dilations'])}; only dilation 1 is supported")
    if int(attributes.get("group", 1)) != 1:
        raise InputError(source, f"{label} has group {attributes['group']}; only group 1 is supported")
    if "kernel_shape" in attributes and tuple(attributes["kernel_shape"]) != tuple(raw.shape[2:]):
        raise InputError(source, f"{label} has kernel_shape {list(attributes['kernel_shape'])} but a weight of shape "
                         f"{tuple(raw.shape)}")
    strides = tuple(int(value) for value in attributes.get("strides", [1, 1]))
    if len(strides) != 2:
        raise InputError(source, f"{label} has strides {list(strides)}; a 2-D convolution needs two")
    has_bias = len(node.input) > 2 and node.input[2]
    bias = _constant(source, constants, node.input[2], label) if has_bias else None
    layer = conv_layer(source, node.name or node.input[1], shape, raw, bias, strides,
                       _symmetric_pads(source, label, attributes))
    return layer, raw.dtype.name


def _average_pool(source: str, label: str, attributes: dict[str, object], shape: tuple[int, int, int]
                  ) -> tuple[np.ndarray, tuple[int, int, int], AvgPool | None]:
    """The per-channel map of an AveragePool node, its output shape and the pool as it can be written back
    (``written_pool``)."""
    kernel = tuple(int(value) for value in attributes.get("kernel_shape", []))
    if len(kernel) != 2:
        raise InputError(source, f"{label} has kernel_shape {list(kernel)}; only 2-D pools are supported")
    if any(int(value) != 1 for value in attributes.get("dilations", [1, 1])):
        raise InputError(source, f"{label} has dilations; only dilation 1 is supported")
    strides = tuple(int(value) for value in attributes.get("strides", [1, 1]))
    options = (kernel, strides, _symmetric_pads(source, label, attributes), bool(attributes.get("ceil_mode", 0)),
               bool(attributes.get("count_include_pad", 0)))
    matrix, out_shape = avgpool_matrix(source, label, shape, *options)
    return matrix, out_shape, written_pool(shape, *options)


def _flattening_reshape(source: str, constants: dict[str, np.ndarray], node: onnx.NodeProto, label: str,
                        shape: tuple[int, int, int] | None) -> None:
    """A Reshape to [batch, features] (constant target shape [0 or -1 or batch, -1 or features]): flattens."""
    target = constants.get(node.input[1]) if len(node.input) > 1 else None
    features = int(np.prod(shape)) if shape is not None else None
    if target is None or np.ndim(target) != 1 or len(target) != 2 or int(target[1]) not in (-1, features):
        raise InputError(source, f"{label} is supported only as a flatten to [batch, features] with a constant "
                         "shape input")
    return None


def _gemm(
    source: str, constants: dict[str, np.ndarray], node: onnx.NodeProto, label: str, attributes: dict[str, object]
) -> tuple[NamedAffine, str]:
    """The affine layer of a Gemm (``alpha * x @ B' + beta * C``) or MatMul (``x @ B``) node."""
    weight_name = node.input[1]
    raw = _matrix(source, constants, weight_name, label)
    matrix = finite_float64(source, weight_name, raw)
    if node.op_type == "MatMul":
        return NamedAffine(node.name or weight_name, matrix.T, np.zeros(matrix.shape[1])), raw.dtype.name
    if attributes.get("transA", 0):
        raise InputError(source, f"{label} has transA=1; only transA=0 is supported")
    alpha = float(attributes.get("alpha", 1.0))
    beta = float(attributes.get("beta", 1.0))
    weight = finite_float64(source, f"{weight_name} times alpha {alpha:g}",
                            alpha * (matrix if attributes.get("transB", 0) else matrix.T))
    has_bias = len(node.input) > 2 and node.input[2]
    bias = (finite_float64(source, f"{node.input[2]} times beta {beta:g}",
                           beta * _vector(source, constants, node.input[2], weight.shape[0], label))
            if has_bias else np.zeros(weight.shape[0]))
    return NamedAffine(node.name or weight_name, weight, bias), raw.dtype.name


def _check_input_shape(source: str, graph: onnx.GraphProto, constants: dict[str, np.ndarray], in_features: int) -> None:
    """Where the data input declares fixed feature dimensions, their product must be ``in_features``."""
    (value,) = [value for value in graph.input if value.name not in constants]
    dims = value.type.tensor_type.shape.dim[1:]
    if dims and all(dim.HasField("dim_value") for dim in dims):
        shape = [dim.dim_value for dim in dims]
        if int(np.prod(shape)) != in_features:
            raise InputError(
                source, f"data input '{value.name}' has feature shape {shape} but the first layer expects {in_features} features"
            )


def save_onnx(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Write ``onnx_model(state_dict)`` to ``path``."""
    onnx.save(onnx_model(state_dict), path)


def onnx_model(state_dict: dict[str, torch.Tensor]) -> onnx.ModelProto:
    """A Gemm (transB=1) / Relu chain of the Linear layers in ``state_dict`` (keys ``{i}.weight``, ``{i}.bias``)."""
    prefixes = [key.removesuffix(".weight") for key in state_dict if key.endswith(".weight")]
    element_type = ONNX_ELEMENT_TYPES[state_dict[f"{prefixes[0]}.weight"].dtype]
    initializers, nodes = [], []
    current = "input"
    for position, prefix in enumerate(prefixes):
        weight, bias = state_dict[f"{prefix}.weight"], state_dict[f"{prefix}.bias"]
        initializers += [_tensor(f"{prefix}.weight", weight, element_type), _tensor(f"{prefix}.bias", bias, element_type)]
        is_last = position == len(prefixes) - 1
        affine_out = "output" if is_last else f"gemm_{position}"
        nodes.append(
            helper.make_node("Gemm", [current, f"{prefix}.weight", f"{prefix}.bias"], [affine_out], name=f"gemm_{position}", transB=1)
        )
        current = affine_out
        if not is_last:
            current = f"relu_{position}"
            nodes.append(helper.make_node("Relu", [affine_out], [current], name=current))
    in_features = state_dict[f"{prefixes[0]}.weight"].shape[1]
    out_features = state_dict[f"{prefixes[-1]}.weight"].shape[0]
    graph = helper.make_graph(
        nodes,
        "exactcompress",
        [helper.make_tensor_value_info("input", element_type, ["batch", in_features])],
        [helper.make_tensor_value_info("output", element_type, ["batch", out_features])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="exactcompress")
    model.ir_version = ONNX_IR_VERSION
    return model


def save_onnx_sequential(module: torch.nn.Sequential, input_shape: Sequence[int], path: Path) -> None:
    """Write ``onnx_sequential_model(module, input_shape)`` to ``path``."""
    onnx.save(onnx_sequential_model(module, input_shape), path)


def onnx_sequential_model(module: torch.nn.Sequential, input_shape: Sequence[int]) -> onnx.ModelProto:
    """A Conv / Relu / AveragePool / Flatten / Gemm chain of a ``to_sequential`` CNN: input ``input`` of shape
    [batch, C, H, W], output ``output``; initializers named by the state dict keys (``0.weight``, ...)."""
    from torch import nn

    first = next(child for child in module if isinstance(child, (nn.Conv2d, nn.Linear)))
    element_type = ONNX_ELEMENT_TYPES[first.weight.dtype]
    initializers, nodes = [], []
    current = "input"
    out_features = 0
    for index, child in enumerate(module):
        is_last = index == len(module) - 1
        name = "output" if is_last else f"{type(child).__name__.lower()}_{index}"
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            weight, bias = f"{index}.weight", f"{index}.bias"
            initializers += [_tensor(weight, child.weight, element_type), _tensor(bias, child.bias, element_type)]
            if isinstance(child, nn.Conv2d):
                pads = [*child.padding, *child.padding]
                nodes.append(helper.make_node("Conv", [current, weight, bias], [name], name=name,
                                              kernel_shape=list(child.kernel_size), strides=list(child.stride),
                                              pads=pads))
            else:
                nodes.append(helper.make_node("Gemm", [current, weight, bias], [name], name=name, transB=1))
                out_features = child.out_features
        elif isinstance(child, nn.ReLU):
            nodes.append(helper.make_node("Relu", [current], [name], name=name))
        elif isinstance(child, nn.Flatten):
            nodes.append(helper.make_node("Flatten", [current], [name], name=name, axis=1))
        elif isinstance(child, nn.AvgPool2d) and not child.ceil_mode and child.divisor_override is None:
            kernel, stride, padding = (pair(value, what) for value, what in (
                (child.kernel_size, "kernel_size"), (child.stride, "stride"), (child.padding, "padding")))
            nodes.append(helper.make_node("AveragePool", [current], [name], name=name, kernel_shape=list(kernel),
                                          strides=list(stride), pads=[*padding, *padding],
                                          count_include_pad=int(child.count_include_pad)))
        else:
            raise ValueError(f"no ONNX node for {type(child).__name__}")
        current = name
    if not isinstance(module[-1], nn.Linear):
        out_features = int(np.prod(module(torch.zeros(1, *input_shape, dtype=first.weight.dtype)).shape[1:]))
    graph = helper.make_graph(
        nodes,
        "exactcompress",
        [helper.make_tensor_value_info("input", element_type, ["batch", *input_shape])],
        [helper.make_tensor_value_info("output", element_type, ["batch", out_features])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="exactcompress")
    model.ir_version = ONNX_IR_VERSION
    return model


def _tensor(name: str, tensor: torch.Tensor, element_type: int) -> TensorProto:
    """An ONNX initializer holding ``tensor``'s little-endian bytes (works for bfloat16 too)."""
    raw = tensor.detach().contiguous().view(torch.uint8).numpy().tobytes()
    return helper.make_tensor(name, element_type, list(tensor.shape), raw, raw=True)
