"""State-dict layouts of ReLU MLPs (torch files; safetensors files share the layout).

A state dict is read as Linear weight/bias pairs in module order. Activations are invisible in a state dict:
loading one *assumes* a ReLU after every Linear but the last. A ``BatchNorm1d`` is refused: its tensors tell
neither its eps nor whether it comes before or after the ReLU (an architecture file, ONNX or the
``nn.Sequential`` says both).
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
    float_dtype,
    stripped_keys,
    torch_dtype_name,
    wider_dtype_name,
)

#: checkpoint keys whose value is the model's state dict (other keys such as ``epoch`` are ignored)
NESTED_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")

_LINEAR_PARAMS = frozenset({"weight", "bias"})
_BATCHNORM_PARAMS = frozenset({"weight", "bias", "running_mean", "running_var", "num_batches_tracked"})
#: the parameters only a batch norm has (``BatchNorm1d`` with running statistics), as error messages name them
_BATCHNORM_ONLY_PARAMS = ("running_mean", "running_var", "num_batches_tracked")


#: a torch zip archive may declare at most this many times its own size (+ the slack) unpacked
MAX_UNPACK_RATIO = 4
MAX_UNPACK_SLACK_BYTES = 16 * 2**20
#: the first bytes of a torch.save zip archive, and of a legacy (pre-1.6) pickled checkpoint
ZIP_MAGIC = b"PK"
PICKLE_PROTOCOL = b"\x80"
#: entries of a ``torch.jit.save`` archive (under its top folder) that a ``torch.save`` checkpoint never holds
TORCHSCRIPT_ENTRIES = ("constants.pkl", "code/")


def load_torch_file(path: Path, require_hidden_layer: bool = True) -> tuple[Network, str]:
    """Read a ``torch.save``-d state dict (or a checkpoint dict nesting one); returns (network, dtype name).

    Uses ``torch.load(map_location="cpu", weights_only=True)`` only: pickled modules are refused.
    """
    source = str(path)
    with open(path, "rb") as file:
        head = file.read(2)
    if head != ZIP_MAGIC and head[:1] != PICKLE_PROTOCOL:
        raise InputError(source, f"is not a torch checkpoint (torch.save writes a zip archive; this file starts with "
                         f"{head!r}); accepted: a .pt/.pth/.ckpt state dict, .safetensors or .onnx")
    entries = _zip_entries(Path(path))
    if entries is not None:
        _check_unpacked_size(source, Path(path), entries)
        _check_not_torchscript(source, entries)
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

    dtype = wider_dtype_name(*(float_dtype(source, key, torch_dtype_name(tensor.dtype))
                               for key, tensor in tensors.items() if tensor.is_floating_point()))
    return arch_network(source, arch_file, tensors, dtype, require_hidden_layer), dtype


def _zip_entries(path: Path) -> list[zipfile.ZipInfo] | None:
    """The entries of the zip archive at ``path`` (read from its directory, nothing inflated); None where it is
    not a readable zip archive (a legacy pickle, or damaged: ``torch.load`` says what is wrong with it)."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.infolist()
    except (zipfile.BadZipFile, OSError):
        return None


def _check_unpacked_size(source: str, path: Path, entries: list[zipfile.ZipInfo]) -> None:
    """InputError when the zip archive declares far more bytes than it holds (a zip bomb): torch.save stores
    its entries uncompressed, so a real checkpoint unpacks to about its own size."""
    packed = path.stat().st_size
    unpacked = sum(entry.file_size for entry in entries)
    if unpacked > MAX_UNPACK_RATIO * packed + MAX_UNPACK_SLACK_BYTES:
        raise InputError(source, f"declares {unpacked} bytes unpacked from {packed} bytes (more than "
                         f"{MAX_UNPACK_RATIO}x + {MAX_UNPACK_SLACK_BYTES >> 20} MiB); refusing to inflate it")


def _check_not_torchscript(source: str, entries: list[zipfile.ZipInfo]) -> None:
    """InputError for a ``torch.jit.save`` archive (``TORCHSCRIPT_ENTRIES`` under its top folder), found before
    ``torch.load`` would warn and fail on it."""
    for entry in entries:
        inner = entry.filename.partition("/")[2]
        if inner.startswith(TORCHSCRIPT_ENTRIES):
            raise InputError(source, "is a TorchScript archive (torch.jit.save); save the state_dict "
                             "(torch.save(model.state_dict(), path)) or export ONNX")


def unwrap_checkpoint(source: str, loaded: object) -> dict[str, torch.Tensor]:
    """The state dict inside ``loaded``: itself, the value under one of ``NESTED_STATE_DICT_KEYS``, or else, where
    ``loaded`` holds no tensor itself, its one value that is a dict of tensors (``{"net": …, "epoch": 5}``) when no
    other value holds a tensor at any depth (an optimizer's state aside); InputError naming the keys otherwise."""
    if not isinstance(loaded, Mapping):
        raise InputError(source, f"holds a {type(loaded).__name__}, not a state_dict (a dict of tensors)")
    for key in NESTED_STATE_DICT_KEYS:
        if isinstance(loaded.get(key), Mapping):
            return unwrap_checkpoint(source, loaded[key])
    if not any(isinstance(value, torch.Tensor) for value in loaded.values()):
        nested = [key for key, value in loaded.items() if isinstance(value, Mapping) and value
                  and all(isinstance(tensor, torch.Tensor) for tensor in value.values())]
        holding = [key for key, value in loaded.items() if _holds_tensors(value) and not _is_optimizer_state(value)]
        if len(nested) == 1 and holding == nested:
            return unwrap_checkpoint(source, loaded[nested[0]])
        if nested:
            raise InputError(source, f"holds tensors under several keys ({', '.join(repr(str(key)) for key in holding)})"
                             "; save the state dict to compress alone (torch.save(checkpoint[KEY], path))")
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise InputError(
                source, f"key '{key}' holds a {type(value).__name__}, not a tensor; expected a state_dict of tensors"
            )
        if value.layout != torch.strided:
            raise InputError(source, f"tensor '{key}' is a sparse tensor ({str(value.layout).removeprefix('torch.')}); "
                             "save it dense (tensor.to_dense())")
        if value.is_meta:
            raise InputError(source, f"tensor '{key}' is on the meta device, so it holds no values; save the state "
                             "dict of a model whose weights are loaded")
    return dict(loaded)


def _holds_tensors(value: object) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, Mapping):
        return any(_holds_tensors(item) for item in value.values())
    return isinstance(value, (list, tuple)) and any(_holds_tensors(item) for item in value)


def _is_optimizer_state(value: object) -> bool:
    """An optimizer's ``state_dict()``: its ``state`` holds tensors, but no network's weights."""
    return isinstance(value, Mapping) and set(value) == {"state", "param_groups"}


def state_dict_network(
    source: str, tensors: Mapping[str, torch.Tensor], require_hidden_layer: bool = True, keeps_order: bool = True
) -> tuple[Network, str]:
    """The network of a state dict of Linear layers; returns (network, the dtype that holds every weight's).

    Modules are taken in key order; for formats that do not keep key order (``keeps_order=False``,
    e.g. safetensors) in the order of the numbers in their names (see ``indexed_order``). Where the names that
    hold distinct layer numbers order their modules otherwise than the keys do (a dict re-sorted as text:
    ``0, 10, 2``; modules registered as ``fc2, fc1, out``), the file is refused: square layers chain in either
    order, so neither can be trusted. A batch norm is refused (``_refuse_batchnorm``).
    """
    modules = module_groups(source, tensors)
    _refuse_batchnorm(source, modules)
    if not keeps_order:
        modules = indexed_order(source, modules)
    else:
        _check_numbered_order(source, modules)
    layers = [_linear(source, prefix, params) for prefix, params in modules]
    dtype = wider_dtype_name(*(torch_dtype_name(params["weight"].dtype) for _, params in modules)) if layers else ""
    return checked_network(source, layers, dtype, require_hidden_layer), dtype


def _refuse_batchnorm(source: str, modules: list[tuple[str, dict[str, torch.Tensor]]]) -> None:
    """InputError for the first batch norm: its tensors tell neither its eps nor whether it comes before or after
    the ReLU, and a guess of either computes another function."""
    for prefix, params in modules:
        if _is_batchnorm(params):
            param = next(param for param in _BATCHNORM_ONLY_PARAMS if param in params)
            raise InputError(
                source,
                f"key '{_key(prefix, param)}' is a BatchNorm1d: a state dict tells neither its eps nor whether it "
                f"comes before or after the ReLU, so it is not guessed; one directly after a Linear (before its "
                f"ReLU) can be read: put {arch_path(Path(source)).name} beside it listing the layers in order, this "
                f"one as {{\"kind\": \"batchnorm1d\", \"key\": \"{prefix}\", \"eps\": ...}} (see README, "
                "'Convolutional networks'), export ONNX, or give the nn.Sequential to the Python API",
            )


def _check_numbered_order(source: str, modules: list[tuple[str, dict[str, torch.Tensor]]]) -> None:
    """InputError where the modules holding layer numbers in their names are stored in another order than their
    numbers give and that order chains too (each weight taking the previous one's outputs): then both orders are
    networks, and neither can be trusted. Names without a number keep their places; where two names hold the same
    numbers, or the numbers' order does not chain (``fc_256, fc_128``: sizes, not places), the stored order stands."""
    prefixes = [prefix for prefix, _ in modules]
    numbered = [index for index, prefix in enumerate(prefixes) if _numbers(prefix)]
    if len({_numbers(prefixes[index]) for index in numbered}) < len(numbered):
        return
    by_number = list(range(len(modules)))
    for place, index in zip(numbered, sorted(numbered, key=lambda index: _numbers(prefixes[index]))):
        by_number[place] = index
    if by_number == list(range(len(modules))) or not _chains([modules[index][1] for index in by_number]):
        return
    raise InputError(
        source,
        f"its tensors are stored in the module order {', '.join(prefixes)} but the layer numbers in their names "
        f"give {', '.join(prefixes[index] for index in by_number)}, which chains as well, so the layer order is "
        f"ambiguous (save model.state_dict() of an nn.Sequential, which keeps module order, put "
        f"{arch_path(Path(source)).name} beside it listing the layers in order, or export ONNX)",
    )


def _chains(params: list[dict[str, torch.Tensor]]) -> bool:
    """Whether 2-D weights in this order each take the previous one's outputs."""
    weights = [group.get("weight") for group in params]
    if any(weight is None or weight.ndim != 2 for weight in weights):
        return False
    return all(later.shape[1] == earlier.shape[0] for earlier, later in zip(weights, weights[1:]))


def _numbers(prefix: str) -> tuple[int, ...]:
    """The numbers in a module name: ``layers.2`` → (2,), ``fc1`` → (1,), ``out`` → ()."""
    return tuple(int(number) for number in re.findall(r"\d+", prefix))


def indexed_order(
    source: str, modules: list[tuple[str, dict[str, torch.Tensor]]]
) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """Modules sorted by the numbers in their names (``layers.2`` < ``layers.10``, ``fc1`` < ``fc2``).

    Every name must hold a number, as names alone (``input``, ``hidden``, ``output``) do not fix an order,
    and no two names the same numbers.
    """
    unnumbered = [prefix or "(no prefix)" for prefix, _ in modules if not _numbers(prefix)]
    if unnumbered and len(modules) > 1:
        raise InputError(
            source,
            f"the file does not keep tensor order and module name(s) {', '.join(unnumbered)} hold no layer "
            "number, so the layer order is ambiguous (name layers like '0.weight' or 'fc1.weight')",
        )
    ordered = sorted(modules, key=lambda item: _numbers(item[0]))
    for (before, _), (after, _) in zip(ordered, ordered[1:]):
        if _numbers(before) == _numbers(after):
            raise InputError(
                source,
                f"the file does not keep tensor order and modules '{before}' and '{after}' hold the same "
                "layer numbers, so the layer order is ambiguous",
            )
    return ordered


def module_groups(source: str, tensors: Mapping[str, torch.Tensor]) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """Tensors grouped by module prefix (``fc1.weight`` → ``fc1``), wrapper prefixes stripped, in key order."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in stripped_keys(source, tensors).items():
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
    return any(param in params for param in _BATCHNORM_ONLY_PARAMS)


def _key(prefix: str, param: str) -> str:
    return f"{prefix}.{param}" if prefix else param


def _float64(source: str, key: str, tensor: torch.Tensor) -> np.ndarray:
    float_dtype(source, key, torch_dtype_name(tensor.dtype))
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
            f"key '{weight_key}' has shape {tuple(weight.shape)}; a state dict without an architecture file is read "
            "as Linear layers (2-D weights) only",
        )
    weight64 = _float64(source, weight_key, weight)
    if "bias" in params:
        bias64 = _float64(source, _key(prefix, "bias"), params["bias"])
    else:
        bias64 = np.zeros(weight64.shape[0])
    return NamedAffine(prefix or "weight", weight64, bias64)
