"""Writing a ``Network`` as ``compressed.pt``, ``compressed.safetensors`` and ``compressed.onnx``."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, get_args

import safetensors.torch
import torch
from safetensors import SafetensorError

from ..engine.network import Network
from ..errors import InputError
from ..schema import SaveFormat
from .sequential import to_sequential, torch_float_dtype

FILE_NAMES: dict[str, str] = {
    "torch": "compressed.pt",
    "safetensors": "compressed.safetensors",
    "onnx": "compressed.onnx",
}
#: the architecture file of a compressed CNN's state dict (``compressed.pt`` and ``compressed.safetensors``)
ARCH_FILE_NAME = "compressed.arch.json"


def dtype_holding(network: Network) -> str:
    """``network.dtype`` when every weight and bias is finite in it, else float32 where that holds them, else
    float64: folding and merging multiply weights, and a product past a float16's 65,504 would be written as inf
    (a file that computes NaN)."""
    if network.dtype == "float64":
        return "float64"
    for dtype in dict.fromkeys((network.dtype, "float32")):
        torch_dtype = torch_float_dtype(dtype)
        if all(torch.isfinite(torch.tensor(array).to(torch_dtype)).all()
               for layer in network.layers
               for array in (layer.written_pooled.weight if layer.written_pooled is not None else layer.weight,
                             layer.bias)):
            return dtype
    return "float64"


def save_network(network: Network, out_dir: Path, formats: Sequence[str]) -> list[str]:
    """Write ``network`` (weights in ``network.dtype``) into ``out_dir`` in each of ``formats``.

    ``torch`` and ``safetensors`` hold the state dict of ``to_sequential`` (keys ``0.weight``,
    ``0.bias``, ``2.weight``, ...); ``onnx`` holds a Gemm/Relu chain with input ``input`` of shape
    [batch, in] and output ``output``. Returns the file names written, in the order of ``formats``.

    A convolutional network's state dict holds ``Conv2d`` and ``Linear`` modules (``to_sequential``, with a
    ``Flatten``) and is written with ``ARCH_FILE_NAME`` (not in the list returned; see ``arch_file_written``);
    its ONNX file holds ``Conv`` nodes and takes inputs of shape [batch, C, H, W].
    """
    unknown = sorted(set(formats) - set(get_args(SaveFormat)))
    if unknown:
        raise InputError("formats", f"unknown save format(s) {unknown}; expected any of {list(get_args(SaveFormat))}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    module = to_sequential(network)
    state_dict = module.state_dict()
    if arch_file_written(network, formats):
        from .architecture import arch_json, arch_of

        (out_dir / ARCH_FILE_NAME).write_text(arch_json(arch_of(module, network.input_shape)))
    written = []
    for save_format in dict.fromkeys(formats):
        path = out_dir / FILE_NAMES[save_format]
        if save_format == "torch":
            torch.save(state_dict, path)
        elif save_format == "safetensors":
            _save_safetensors(state_dict, path)
        else:  # onnx takes about a second to import: only when an ONNX file is asked for
            from .onnx_format import save_onnx, save_onnx_sequential

            if network.is_convolutional:
                save_onnx_sequential(module, network.input_shape, path)
            else:
                save_onnx(state_dict, path)
        written.append(path.name)
    return written


def _save_safetensors(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """``safetensors.torch.save_file``, whose failed write (a full disk) raises an OSError as ``torch.save``'s
    and ``open``'s do, not a SafetensorError."""
    try:
        safetensors.torch.save_file(state_dict, path)
    except SafetensorError as error:
        raise OSError(f"{path.name}: {error}") from error


def arch_file_written(network: Network, formats: Sequence[str]) -> str | None:
    """``ARCH_FILE_NAME`` when ``save_network(network, ..., formats)`` writes it, else None."""
    return ARCH_FILE_NAME if network.is_convolutional and {"torch", "safetensors"} & set(formats) else None
