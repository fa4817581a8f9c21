"""State-dict layouts of ReLU MLPs (torch files; safetensors files share the layout).

A state dict is read as Linear weight/bias pairs in module order, each optionally followed by a
``BatchNorm1d`` that is folded into it (eval mode). Activations are invisible in a state dict:
loading one *assumes* a ReLU after every Linear but the last, and a BatchNorm1d directly after its
Linear (before the ReLU).
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..engine.network import Network
from ..errors import InputError
from .architecture import arch_path
from .rules import (
    NamedAffine,
    checked_network,
    finite_float64,
    fold_batchnorm,
    strip_wrappers,
    torch_dtype_name,
    wider_dtype_name,
)

#: ``BatchNorm1d``'s default epsilon, used when folding a BN layer of a state dict
BATCHNORM_EPS = 1e-5
#: checkpoint keys whose value is the model's state dict (other keys such as ``epoch`` are ignored)
NESTED_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")

_LINEAR_PARAMS = frozenset({"weight", "bias"})
_BATCHNORM_PARAMS = frozenset({"weight", "bias", "running_mean", "running_var", "num_batches_tracked"})


#: a torch zip archive may declare at most this many times its own size (+ the slack) unpacked
MAX_UNPACK_RATIO = 4
MAX_UNPACK_SLACK_BYTES = 16 * 2**20
#: the first bytes of a torch.save zip archive, and of a legacy (pre-1.6) pickled checkpoint
ZIP_MAGIC = b"PK"
PICKLE_PROTOCOL = b"\x80"


def load_torch_file(path: Path, require_hidden_layer: bool = True) -> tuple[Network, str]:
    """Read a ``torch.save``-d state dict (or a checkpoint dict nesting one); returns (network, dtype name).

    Uses ``torch.load(map_location="cpu", weights_only=True)`` only: pickled modules are refused.
    """
    source = str(path)
    with open(path, "rb") as file:
        head = file.read(2)
    if head != ZIP_MAGIC and head[:1] != PICKLE_PROTOCOL:
        raise InputError(source, f"is not a torch checkpoint (torch.save writes a zip archive; this file starts with "
                         f"{head!r}); accepted: a .pt/.pth state dict, .safetensors or .onnx")
    _check_unpacked_size(source, Path(path))
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "GLOBAL" in str(error):  # the weights-only unpickler met a class or function: pickled objects
            raise InputError(
                source,
                "holds pickled Python objects, not a plain state_dict; refusing to unpickle "
                "(save model.state_dict() instead)",
            ) from None
        raise InputError(source, "is a damaged torch checkpoint (its pickle cannot be read)") from None
    except Exception:  # torch raises RuntimeError, EOFError, zipfile errors, ... for bad bytes
        raise InputError(source, "is a truncated or damaged torch checkpoint (its zip archive cannot be read)") from None
    tensors = unwrap_checkpoint(source, loaded)
    arch_file = arch_path(Path(path))
    if arch_file.exists():
        return arch_state_dict_network(source, arch_file, tensors, require_hidden_layer)
    return state_dict_network(source, tensors, require_hidden_layer)


def arch_state_dict_network(source: str, arch_file: Path, tensors: Mapping[str, torch.Tensor],
                            require_hidden_layer: bool = True) -> tuple[Network, str]:
    """The network of a state dict described by its architecture file; returns (network, the dtype that holds
    every floating tensor's)."""
    from .architecture import arch_network

    floats = [tensor for tensor in tensors.values() if tensor.is_floating_point()]
    dtype = wider_dtype_name(*(torch_dtype_name(tensor.dtype) for tensor in floats))
    return arch_network(source, arch_file, tensors, dtype, require_hidden_layer), dtype


def _check_unpacked_size(source: str, path: Path) -> None:
    """InputError when the zip archive declares far more bytes than it holds (a zip bomb): torch.save stores
    its entries uncompressed, so a real checkpoint unpacks to about its own size. Declared sizes are read from
    the archive's directory, before anything is inflated."""
    if not zipfile.is_zipfile(path):
        return
    packed = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(entry.file_size for entry in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        return  # torch.load says what is wrong with it
    if unpacked > MAX_UNPACK_RATIO * packed + MAX_UNPACK_SLACK_BYTES:
        raise InputError(source, f"declares {unpacked} bytes unpacked from {packed} bytes (more than "
                         f"{MAX_UNPACK_RATIO}x + {MAX_UNPACK_SLACK_BYTES >> 20} MiB); refusing to inflate it")


def unwrap_checkpoint(source: str, loaded: object) -> dict[str, torch.Tensor]:
    """The state dict inside ``loaded``: itself, or the value under one of ``NESTED_STATE_DICT_KEYS``."""
    if not isinstance(loaded, Mapping):
        raise InputError(source, f"holds a {type(loaded).__name__}, not a state_dict (a dict of tensors)")
    for key in NESTED_STATE_DICT_KEYS:
        if isinstance(loaded.get(key), Mapping):
            return unwrap_checkpoint(source, loaded[key])
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise InputError(
                source, f"key '{key}' holds a {type(value).__name__}, not a tensor; expected a state_dict of tensors"
            )
    return dict(loaded)


def state_dict_network(
    source: str, tensors: Mapping[str, torch.Tensor], require_hidden_layer: bool = True, keeps_order: bool = True
) -> tuple[Network, str]:
    """The network of a state dict of tensors; returns (network, dtype name of the first weight).

    Modules are taken in key order; for formats that do not keep key order (``keeps_order=False``,
    e.g. safetensors) in the order of the numbers in their names (see ``indexed_order``). Where every name
    holds distinct layer numbers and they order the modules otherwise than the keys do (e.g. a dict re-sorted
    as text: ``0, 10, 2``), the file is refused: square layers chain in either order, so neither can be trusted.
    """
    modules = module_groups(source, tensors)
    if not keeps_order:
        modules = indexed_order(source, modules)
    elif (numbered := _numbered_order(modules)) is not None and numbered != [prefix for prefix, _ in modules]:
        raise InputError(
            source,
            f"its tensors are stored in the module order {', '.join(prefix for prefix, _ in modules)} but the layer "
            f"numbers in their names give {', '.join(numbered)}, so the layer order is ambiguous (save "
            "model.state_dict() unchanged, which keeps module order, or export ONNX)",
        )
    layers: list[NamedAffine] = []
    follows_linear = False
    for prefix, params in modules:
        if _is_batchnorm(params):
            if not follows_linear:
                raise InputError(source, f"batch norm '{prefix}' does not directly follow a Linear layer")
            layers[-1] = _folded_state_dict_batchnorm(source, layers[-1], prefix, params)
            follows_linear = False
        else:
            layers.append(_linear(source, prefix, params))
            follows_linear = True
    dtype = wider_dtype_name(*(torch_dtype_name(params["weight"].dtype) for _, params in modules)) if layers else ""
    return checked_network(source, layers, dtype, require_hidden_layer), dtype


def indexed_order(
    source: str, modules: list[tuple[str, dict[str, torch.Tensor]]]
) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """Modules sorted by the numbers in their names (``layers.2`` < ``layers.10``, ``fc1`` < ``bn1`` < ``fc2``).

    A Linear sorts before a batch norm with the same numbers. Every name must hold a number, as
    names alone (``input``, ``hidden``, ``output``) do not fix an order.
    """
    unnumbered = [prefix or "(no prefix)" for prefix, _ in modules if not re.search(r"\d", prefix)]
    if unnumbered and len(modules) > 1:
        raise InputError(
            source,
            f"the file does not keep tensor order and module name(s) {', '.join(unnumbered)} hold no layer "
            "number, so the layer order is ambiguous (name layers like '0.weight' or 'fc1.weight')",
        )

    def order(item: tuple[str, dict[str, torch.Tensor]]) -> tuple[tuple[int, ...], bool]:
        prefix, params = item
        return tuple(int(number) for number in re.findall(r"\d+", prefix)), _is_batchnorm(params)

    ordered = sorted(modules, key=order)
    for before, after in zip(ordered, ordered[1:]):
        if order(before) == order(after):
            raise InputError(
                source,
                f"the file does not keep tensor order and modules '{before[0]}' and '{after[0]}' hold the same "
                "layer numbers, so the layer order is ambiguous",
            )
    return ordered


def _numbered_order(modules: list[tuple[str, dict[str, torch.Tensor]]]) -> list[str] | None:
    """The module names in the order of the numbers in them (a batch norm after the Linear with its numbers), or
    None where a name holds no number or two names hold the same numbers (then the numbers fix no order)."""
    keys = [(tuple(int(n) for n in re.findall(r"\d+", prefix)), _is_batchnorm(params), prefix)
            for prefix, params in modules]
    if any(not numbers for numbers, _, _ in keys) or len({key[:2] for key in keys}) < len(keys):
        return None
    return [prefix for _, _, prefix in sorted(keys)]


def module_groups(source: str, tensors: Mapping[str, torch.Tensor]) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """Tensors grouped by module prefix (``fc1.weight`` → ``fc1``), wrapper prefixes stripped, in key order."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for raw_key, tensor in tensors.items():
        key = strip_wrappers(raw_key)
        prefix, _, param = key.rpartition(".")
        groups.setdefault(prefix, {})[param] = tensor
    for prefix, params in groups.items():
        allowed = _BATCHNORM_PARAMS if _is_batchnorm(params) else _LINEAR_PARAMS
        for param in params:
            if param not in allowed:
                raise InputError(
                    source, f"key '{_key(prefix, param)}' is not part of a Linear or BatchNorm1d layer"
                )
    return list(groups.items())


def _is_batchnorm(params: Mapping[str, torch.Tensor]) -> bool:
    return "running_mean" in params


def _key(prefix: str, param: str) -> str:
    return f"{prefix}.{param}" if prefix else param


def _float64(source: str, key: str, tensor: torch.Tensor) -> np.ndarray:
    if not tensor.is_floating_point():
        raise InputError(source, f"tensor '{key}' has dtype {torch_dtype_name(tensor.dtype)}, not a float dtype")
    return finite_float64(source, key, tensor.detach().to(torch.float64).numpy())


def _linear(source: str, prefix: str, params: dict[str, torch.Tensor]) -> NamedAffine:
    weight_key = _key(prefix, "weight")
    if "weight" not in params:
        raise InputError(source, f"key '{_key(prefix, 'bias')}' has no matching '{weight_key}'")
    weight = params["weight"]
    if weight.ndim == 4:
        raise InputError(
            source,
            f"key '{weight_key}' has shape {tuple(weight.shape)}, a convolution: a state dict cannot tell its "
            f"stride and padding, so an architecture file is needed: put {arch_path(Path(source)).name} beside it "
            "(see README, 'Convolutional networks')",
        )
    if weight.ndim != 2:
        raise InputError(
            source,
            f"key '{weight_key}' has shape {tuple(weight.shape)}; only Linear (2-D weight) and BatchNorm1d "
            "layers are supported",
        )
    weight64 = _float64(source, weight_key, weight)
    if "bias" in params:
        bias64 = _float64(source, _key(prefix, "bias"), params["bias"])
    else:
        bias64 = np.zeros(weight64.shape[0])
    return NamedAffine(prefix or "weight", weight64, bias64)


def _folded_state_dict_batchnorm(
    source: str, affine: NamedAffine, prefix: str, params: dict[str, torch.Tensor]
) -> NamedAffine:
    if "running_var" not in params:
        raise InputError(source, f"batch norm '{prefix}' has running_mean but no running_var")
    width = affine.weight.shape[0]

    def vector(param: str, default: float) -> np.ndarray:
        if param not in params:
            return np.full(width, default)
        return _float64(source, _key(prefix, param), params[param])

    return fold_batchnorm(
        source, affine, prefix, vector("weight", 1.0), vector("bias", 0.0),
        vector("running_mean", 0.0), vector("running_var", 1.0), BATCHNORM_EPS,
    )
