"""Writing a ``Network`` as ``compressed.pt``, ``compressed.safetensors`` and ``compressed.onnx``."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, get_args

import safetensors.torch
import torch

from ..engine.network import Network
from ..errors import InputError
from ..schema import SaveFormat
from .sequential import to_sequential

FILE_NAMES: dict[str, str] = {
    "torch": "compressed.pt",
    "safetensors": "compressed.safetensors",
    "onnx": "compressed.onnx",
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
        else:  # onnx takes about a second to import: only when an ONNX file is asked for
            from .onnx_format import save_onnx

            save_onnx(state_dict, path)
        written.append(path.name)
    return written
