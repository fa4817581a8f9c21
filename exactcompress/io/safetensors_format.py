"""Loading ReLU MLPs from ``.safetensors`` files (the state-dict layouts of ``torch_state_dict``)."""

from __future__ import annotations

from pathlib import Path

import safetensors.torch

from ..engine.network import Network
from ..errors import InputError
from .architecture import arch_path
from .rules import first_line
from .torch_state_dict import arch_state_dict_network, state_dict_network


def load_safetensors_file(path: Path, require_hidden_layer: bool = True) -> tuple[Network, str]:
    """Read a safetensors state dict; returns (network, dtype name of the first weight).

    safetensors does not keep tensor order, so layers are ordered by the numbers in their module
    names (``0``, ``2``, ``layers.10``, ``fc1``); ReLU is assumed between Linear layers.
    """
    try:
        tensors = safetensors.torch.load_file(path, device="cpu")
    except Exception as error:  # SafetensorError, OSError, ... for truncated or foreign bytes
        raise InputError(
            str(path), f"could not be read as safetensors (truncated or corrupt file?): {first_line(error)}"
        ) from None
    arch_file = arch_path(Path(path))
    if arch_file.exists():
        return arch_state_dict_network(str(path), arch_file, tensors, require_hidden_layer)
    return state_dict_network(str(path), tensors, require_hidden_layer, keeps_order=False)
