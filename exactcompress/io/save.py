"""Writing a ``Network`` as ``compressed.pt``, ``compressed.safetensors`` and ``compressed.onnx``."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, get_args

import onnx
import safetensors.torch
import torch
from onnx import TensorProto, helper

from ..engine.network import Network
from ..errors import InputError
from ..schema import SaveFormat
from .sequential import to_sequential

FILE_NAMES: dict[str, str] = {
    "torch": "compressed.pt",
    "safetensors": "compressed.safetensors",
    "onnx": "compressed.onnx",
}
#: the ONNX opset and IR version written (opset 13 has Gemm and Relu with every float type)
ONNX_OPSET = 13
ONNX_IR_VERSION = 8
ONNX_ELEMENT_TYPES = {
    torch.float16: TensorProto.FLOAT16,
    torch.bfloat16: TensorProto.BFLOAT16,
    torch.float32: TensorProto.FLOAT,
    torch.float64: TensorProto.DOUBLE,
}


def save_network(network: Network, out_dir: Path, formats: Sequence[str]) -> list[str]:
    """Write ``network`` (weights in ``network.dtype``) into ``out_dir`` in each of ``formats``.

    ``torch`` and ``safetensors`` hold the state dict of ``to_sequential`` (keys ``0.weight``,
    ``0.bias``, ``2.weight``, ...); ``onnx`` holds a Gemm/Relu chain with input ``input`` of shape
    [batch, in] and output ``output``. Returns the file names written, in the order of ``formats``.
    """
    unknown = sorted(set(formats) - set(get_args(SaveFormat)))
    if unknown:
        raise InputError("formats", f"unknown save format(s) {unknown}; expected any of {list(get_args(SaveFormat))}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_dict = to_sequential(network).state_dict()
    written = []
    for save_format in dict.fromkeys(formats):
        path = out_dir / FILE_NAMES[save_format]
        if save_format == "torch":
            torch.save(state_dict, path)
        elif save_format == "safetensors":
            safetensors.torch.save_file(state_dict, path)
        else:
            onnx.save(onnx_model(state_dict), path)
        written.append(path.name)
    return written


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


def _tensor(name: str, tensor: torch.Tensor, element_type: int) -> TensorProto:
    """An ONNX initializer holding ``tensor``'s little-endian bytes (works for bfloat16 too)."""
    raw = tensor.detach().contiguous().view(torch.uint8).numpy().tobytes()
    return helper.make_tensor(name, element_type, list(tensor.shape), raw, raw=True)
