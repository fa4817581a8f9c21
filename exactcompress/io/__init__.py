"""Loading ReLU MLPs from torch / safetensors / ONNX files into the ``Network`` IR, and saving them.

Every bad input raises ``InputError(str(path), one-line reason)``. State dicts carry no activations:
loading one assumes ReLU between consecutive Linear layers and a linear output (ONNX graphs and
``nn.Sequential`` modules are checked instead).
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

from ..engine.network import Network
from ..errors import InputError
from ..schema import ModelInfo
from .architecture import arch_path
from .safetensors_format import load_safetensors_file
from .save import FILE_NAMES, save_network
from .sequential import from_sequential, network_info, to_sequential
from .torch_state_dict import load_torch_file

__all__ = ["FILE_NAMES", "load_network", "from_sequential", "network_info", "to_sequential", "save_network"]



def _load_onnx_file(path: Path, require_hidden_layer: bool) -> tuple[Network, str]:
    from .onnx_format import (
        load_onnx_file,  # onnx takes about a second to import: only for ONNX files
    )

    return load_onnx_file(path, require_hidden_layer)


LOADERS = {"torch": load_torch_file, "safetensors": load_safetensors_file, "onnx": _load_onnx_file}
#: formats holding only tensors: the activation between Linear layers is assumed to be ReLU
STATE_DICT_FORMATS = frozenset({"torch", "safetensors"})
#: what the terminal and report.md/html say when it was assumed
ACTIVATION_ASSUMED_NOTE = ("a state dict records no activations: ReLU was assumed between its Linear layers "
                           "(export ONNX, or give the nn.Sequential module to the Python API, for a checked one)")
FORMAT_BY_SUFFIX = {".pt": "torch", ".pth": "torch", ".ckpt": "torch", ".safetensors": "safetensors", ".onnx": "onnx"}


def load_network(path: str | Path, require_hidden_layer: bool = True) -> tuple[Network, ModelInfo]:
    """Load the ReLU network in ``path``: the format comes from the suffix (.pt/.pth/.ckpt, .safetensors, .onnx),
    else from the file's first bytes (zip or pickle → torch, safetensors header, ONNX protobuf). A state dict
    with an architecture file ``NAME.arch.json`` beside it is read as that file describes (CNNs need one).

    Weights become float64; ``ModelInfo.dtype`` is the dtype they had in the file. With
    ``require_hidden_layer=False`` a single affine layer is accepted (to reload compressed outputs).
    """
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise InputError(source, "no such file")
    if not path.is_file():
        raise InputError(source, "is not a regular file")
    data = _read(path)
    if not data:
        raise InputError(source, "is empty (0 bytes)")
    model_format = FORMAT_BY_SUFFIX.get(path.suffix.lower()) or sniff_format(data)
    if model_format is None:
        raise InputError(source, "unknown format: expected a torch .pt/.pth/.ckpt state_dict, .safetensors or .onnx "
                         "file")
    network, dtype = LOADERS[model_format](path, require_hidden_layer)
    with_arch = model_format in STATE_DICT_FORMATS and arch_path(path).exists()
    return network, ModelInfo(
        name=path.stem,
        path=source,
        sha256=hashlib.sha256(data).hexdigest(),
        format=model_format,
        dtype=dtype,
        input_dim=network.input_dim,
        hidden_widths=network.hidden_widths,
        output_dim=network.output_dim,
        activation_assumed=model_format in STATE_DICT_FORMATS and not with_arch,
        input_shape=list(network.input_shape) if network.is_convolutional else None,
    )


def sniff_format(data: bytes) -> str | None:
    """"safetensors" (8-byte header length then ``{``), "torch" (zip archive or legacy pickle
    ``\\x80`` + protocol 2..5), "onnx" (protobuf starting with field 1, ``ir_version``) or None."""
    if len(data) > 9 and data[8:9] == b"{" and struct.unpack("<Q", data[:8])[0] <= len(data) - 8:
        return "safetensors"
    if data.startswith(b"PK\x03\x04") or (data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        return "torch"
    if data.startswith(b"\x08"):
        return "onnx"
    return None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise InputError(str(path), f"cannot be read: {error.strerror or error}") from None
