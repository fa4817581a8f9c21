"""One model, end to end: load → domain → analyse → compress → verify → write outputs and report.

Outputs in ``out_dir``: ``compressed.<ext>`` (per requested format), ``witnesses.npz``, ``report.md``,
``report.html``, ``report_layers.png`` and, written last, ``report.json`` (the commit marker).
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
import platform
import reprlib
import time
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence, get_args

import numpy as np
from torch import nn

from . import __version__
from .engine.analyze import SETTLERS, Analysis, analyze
from .engine.compression import CompressionLog, channel_states, compress
from .engine.domain import UNION_SEMANTICS, Domain
from .engine.network import Network
from .engine.progress import Progress, ignore
from .engine.prove.bab_layer import resolve_device
from .engine.prove.parallel import ParallelMap
from .engine.verify import DEFAULT_SAMPLES, round_to_dtype, verify
from .errors import InputError, SolverError, SoundnessError, described
from .io import from_sequential, load_network, network_info, save_network
from .io.domain_files import data_points, from_file, load_data, scalar_box
from .io.save import ARCH_FILE_NAME, FILE_NAMES, arch_file_written, dtype_holding
from .reports.report import PAGES, REPORT_JSON, remove_earlier_outputs, write_report_json, write_reports
from .schema import (
    BoxRecord,
    ChannelReport,
    CompressionReport,
    ConvLayerReport,
    Device,
    DomainRecord,
    ErrorKind,
    FileDigest,
    IfUndecidedSettled,
    LayerCompression,
    LayerReport,
    Method,
    ModelInfo,
    Outputs,
    SaveFormat,
    UndecidedNeuron,
    Versions,
)
from .storage.files import probe_writable
from .tolerances import VERIFY_TOLERANCE
from .tolerances import record as tolerance_record

MAX_LISTED_BOXES = 16


def versions() -> Versions:
    import pyscipopt
    import torch

    return Versions(
        exactcompress=__version__,
        python=platform.python_version(),
        numpy=np.__version__,
        torch=torch.__version__,
        pyscipopt=pyscipopt.__version__,
        scip=str(pyscipopt.Model().version()),
    )


def domain_record(domain: Domain) -> DomainRecord:
    lowers = np.concatenate([box.lower for box in domain.boxes])
    uppers = np.concatenate([box.upper for box in domain.boxes])
    return DomainRecord(
        kind=domain.kind,
        source=domain.source,
        n_boxes=len(domain.boxes),
        margin=domain.margin,
        epsilon=domain.epsilon,
        union_semantics=UNION_SEMANTICS,
        scalar_lower=float(lowers[0]) if np.all(lowers == lowers[0]) else None,
        scalar_upper=float(uppers[0]) if np.all(uppers == uppers[0]) else None,
        boxes=[BoxRecord(lower=b.lower.tolist(), upper=b.upper.tolist()) for b in domain.boxes[:MAX_LISTED_BOXES]],
    )


def conv_layer_report(network: Network, compressed: Network, analysis: Analysis, log: CompressionLog,
                      index: int) -> ConvLayerReport | None:
    """Per-channel states of hidden layer ``index`` when it is a convolution (else None). Convolutions are never
    merged and come before every dense layer, so the compressed network's layer ``index`` is the same one."""
    shape = network.layers[index].conv
    if shape is None:
        return None
    counts = {name: channel_states(shape, getattr(analysis, name)[index]).sum(axis=1)
              for name in ("stably_inactive", "stably_active", "unstable", "undecided")}
    removed = set(log.removed_channels[index]) if log.removed_channels else set()
    channels = []
    for channel in range(shape.out_channels):
        count = {name: int(values[channel]) for name, values in counts.items()}
        if count["stably_inactive"] == shape.positions:
            state = "inactive_everywhere"
        elif count["stably_active"] == shape.positions:
            state = "active_everywhere"
        elif count["undecided"]:
            state = "undecided"
        else:
            state = "mixed"
        channels.append(ChannelReport(channel=channel, state=state, removed=channel in removed, **count))
    after = compressed.layers[index]
    return ConvLayerReport(
        in_shape=[shape.in_channels, shape.in_height, shape.in_width],
        out_shape=[shape.out_channels, shape.out_height, shape.out_width],
        kernel_size=list(shape.kernel_size), stride=list(shape.stride), padding=list(shape.padding),
        channels=channels, channels_removed=sorted(removed),
        channels_after=after.conv.out_channels if after.conv is not None else 0,
        parameters_before=shape.n_params, parameters_after=after.n_params,
    )


def layer_reports(analysis: Analysis, log: CompressionLog, network: Network | None = None,
                  compressed: Network | None = None) -> list[LayerReport]:
    """One ``LayerReport`` per hidden layer of the original network: states, settlers, what compression did
    (with ``network`` and ``compressed``, per-channel states of convolution layers too)."""
    reports = []
    for index, active in enumerate(analysis.stably_active):
        settled = analysis.settled_by[index]
        reports.append(
            LayerReport(
                index=index,
                width=int(active.shape[0]),
                stably_active=np.flatnonzero(active).tolist(),
                stably_inactive=np.flatnonzero(analysis.stably_inactive[index]).tolist(),
                unstable=np.flatnonzero(analysis.unstable[index]).tolist(),
                undecided=np.flatnonzero(analysis.undecided[index]).tolist(),
                undecided_bounds=undecided_bounds(analysis, index),
                settled_by={name: np.flatnonzero(settled == code).tolist() for code, name in enumerate(SETTLERS)},
                compression=LayerCompression(removed_inactive=log.removed_inactive[index],
                                             folded_active=log.folded_active[index],
                                             skipped_folds=log.skipped_folds[index],
                                             merged=index in log.merged_layers,
                                             removed_unused=log.removed_unused[index] if log.removed_unused else 0),
                conv=(conv_layer_report(network, compressed, analysis, log, index)
                      if network is not None and compressed is not None else None),
            )
        )
    return reports


def undecided_bounds(analysis: Analysis, layer: int) -> list[UndecidedNeuron]:
    """Each undecided neuron of hidden ``layer``: its proved pre-activation interval, the sign still open (a
    witness shows at most one sign of an undecided neuron; no proof excludes either) and the range of g at the
    inputs evaluated (``WitnessSet.lowest`` / ``highest``; None where none was)."""
    bounds = analysis.bounds[layer]
    positive = analysis.witnesses.positive[layer] >= 0
    negative = analysis.witnesses.negative[layer] >= 0
    lowest, highest = analysis.witnesses.lowest[layer], analysis.witnesses.highest[layer]

    def found(value: float) -> float | None:
        return float(value) if np.isfinite(value) else None

    return [UndecidedNeuron(neuron=int(neuron), lower=float(bounds.lower[neuron]), upper=float(bounds.upper[neuron]),
                            open="negative" if positive[neuron] else "positive" if negative[neuron] else "both",
                            smallest_found=found(lowest[neuron]), largest_found=found(highest[neuron]))
            for neuron in np.flatnonzero(analysis.undecided[layer])]


def settled_as_asked(analysis: Analysis) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The stable flags (stably_active, stably_inactive; per hidden layer, bool (width,)) with every undecided
    neuron settled the way its open question asks: stably active where a witness shows g > 0 (only "can g be
    negative?" is open), stably inactive otherwise ("can g be positive?" or both open)."""
    active, inactive = [], []
    for layer, undecided in enumerate(analysis.undecided):
        shows_positive = analysis.witnesses.positive[layer] >= 0
        active.append(analysis.stably_active[layer] | (undecided & shows_positive))
        inactive.append(analysis.stably_inactive[layer] | (undecided & ~shows_positive))
    return active, inactive


def _if_undecided_settled(network: Network, analysis: Analysis) -> IfUndecidedSettled | None:
    """The compressed model with the undecided neurons settled as asked (``settled_as_asked``); None if none is
    undecided."""
    if not any(mask.any() for mask in analysis.undecided):
        return None
    compressed, _ = compress(network, *settled_as_asked(analysis))
    return IfUndecidedSettled(neurons_after=compressed.n_neurons, parameters_after=compressed.n_params,
                              hidden_widths_after=compressed.hidden_widths)


def save_witnesses(analysis: Analysis, path: Path) -> None:
    """``points`` (n, input_dim); per hidden layer ``layer{l}_positive`` / ``layer{l}_negative``: the row of
    ``points`` showing g > 0 / g < 0 for each neuron, -1 where none (all inputs float64)."""
    arrays = {"points": analysis.witnesses.points}
    for layer, (positive, negative) in enumerate(zip(analysis.witnesses.positive, analysis.witnesses.negative)):
        arrays[f"layer{layer}_positive"] = positive
        arrays[f"layer{layer}_negative"] = negative
    np.savez_compressed(path, **arrays)


def compress_model(
    model: str | Path | Network | nn.Module | tuple[Network, ModelInfo],
    out_dir: str | Path,
    *,
    domain: Domain | None = None,
    data: str | Path | np.ndarray | None = None,
    method: Method = "auto",
    time_limit: float | None = None,
    workers: int = 1,
    threads: int = 1,
    parallel_map: ParallelMap | None = None,
    formats: Sequence[SaveFormat] = ("torch",),
    seed: int = 0,
    device: Device = "auto",
    verify_samples: int = DEFAULT_SAMPLES,
    progress: Progress | None = None,
    input_shape: Sequence[int] | None = None,
) -> CompressionReport:
    """Run the whole engine on one model and write its outputs into ``out_dir``.

    ``model`` is a file path, an ``nn.Sequential`` in eval mode (``from_sequential``: exactly ``nn.Sequential``
    of supported modules, no hooks, activations checked), a ``Network`` or an already loaded
    ``(Network, ModelInfo)``; an ``nn.Sequential`` CNN needs ``input_shape`` (C, H, W).
    ``domain`` is a ``Domain``, a domain file's path (as ``--domain`` takes: ``io.domain_files.from_file``) or None
    for the box [0, 1] on every input (flattened, channel-major, for a CNN); ``data`` an array (n, features) or a
    ``.npy``/``.npz`` path (as ``--data`` takes).

    Bad input does not raise: the returned (and written) report has status ``failed``, ``error_kind`` ``input``
    and a one-line ``error`` naming what was wrong, and no model or witnesses are written. That includes every
    setting, checked before anything is loaded or analysed, with the command line's rules: ``method`` one of
    auto, per-neuron, milp, bab; ``time_limit`` None or a finite number of seconds > 0; ``workers`` and
    ``threads`` integers >= 1; ``formats`` one or more of torch, safetensors, onnx (or one such name); ``seed``
    an integer >= 0; ``device`` auto, cpu or cuda (cuda only where torch sees a GPU); ``verify_samples`` an
    integer >= 0; ``out_dir`` a folder that can be created and written (``probe_writable``). Only an ``out_dir``
    that cannot be created or written leaves the failed report unwritten. A failed verification is also
    ``failed`` and writes no model, and so is a failure to write the outputs (a full disk: error kind
    ``internal``).
    ``workers``/``parallel_map`` split independent questions, ``threads`` answers branch-and-bound questions
    at once in this process (and verifies that many passes of draws at once), ``device`` places branch and bound
    (see ``analyze``); ``verify_samples`` uniform draws check the compressed model besides the corners,
    witnesses and data rows (see ``verify``).
    """
    seconds: dict[str, float] = {}
    started = time.monotonic()
    checked, bad_setting = _checked_settings(
        method=method, time_limit=time_limit, workers=workers, threads=threads, formats=formats, seed=seed,
        device=device, verify_samples=verify_samples, input_shape=input_shape, parallel_map=parallel_map,
        progress=progress)
    base = dict(model_path=_model_path(model), method=checked.get("method", "auto"),
                time_limit_s=checked.get("time_limit"), workers=checked.get("workers", 1),
                threads=checked.get("threads", 1), versions=versions())
    out_dir, bad_out_dir = _out_folder(out_dir)

    def failed(kind: ErrorKind, reason: str, **known) -> CompressionReport:
        seconds["total"] = time.monotonic() - started
        report = CompressionReport(status="failed", error=reason, error_kind=kind, seconds=seconds, **base, **known)
        if out_dir is not None:
            with suppress(OSError):  # a folder that refuses it (a full disk): the report is returned only
                remove_earlier_outputs(out_dir)
                write_reports(report, out_dir)
                write_report_json(report, out_dir)
        return report

    if bad_out_dir is not None or bad_setting is not None:
        return failed("input", str(bad_out_dir or bad_setting))
    method, time_limit, workers, threads = (checked[name] for name in ("method", "time_limit", "workers", "threads"))
    formats, seed, device, verify_samples = (checked[name] for name in ("formats", "seed", "device", "verify_samples"))
    say = progress or ignore
    say("loading")

    try:
        clock = time.monotonic()
        network, info = _loaded(model, input_shape)
        seconds["load"] = time.monotonic() - clock
        clock = time.monotonic()
        domain = _domain(domain).broadcast(network.input_dim, network.input_shape)
        points = _data_points(data, network.input_dim, network.input_shape)
        seconds["domain"] = time.monotonic() - clock
    except InputError as error:
        return failed("input", str(error))
    except Exception as error:  # a loader's own bug: this model fails with its reason, as in the analysis below
        return failed("internal", f"internal error while loading ({described(error)})")

    try:
        analysis = analyze(network, domain, method=method, data=points, time_limit=time_limit, workers=workers,
                           threads=threads, parallel_map=parallel_map, seed=seed, device=device, progress=say)
        seconds.update(analysis.seconds)

        best_case = _if_undecided_settled(network, analysis)
        extra = analysis.witnesses.points if points is None else np.concatenate([analysis.witnesses.points, points])
        seconds["compress"] = seconds["verify"] = 0.0
        for fold_dependent in (True, False):  # folds within tolerance that still move the outputs: none
            clock = time.monotonic()
            say("compressing")
            compressed, log = compress(network, analysis.stably_active, analysis.stably_inactive,
                                       fold_dependent=fold_dependent)
            compressed = replace(compressed, dtype=dtype_holding(compressed))
            seconds["compress"] += time.monotonic() - clock
            clock = time.monotonic()
            say("verifying")
            verification = verify(
                network, compressed, domain, extra_points=extra, n_samples=verify_samples,
                rng=np.random.default_rng(seed + 1), saved_dtype=compressed.dtype, threads=threads, progress=say
            )
            seconds["verify"] += time.monotonic() - clock
            if verification.passed or not any(log.folded_active):
                break
    except SoundnessError as error:  # a bug in a proof: nothing is written but this report
        return failed("soundness", f"soundness check failed, no compressed model written (please report this "
                      f"bug): {error}", model=info)
    except SolverError as error:
        return failed("solver", f"solver error: {error}", model=info)
    except Exception as error:  # an internal error fails this model loudly, with its reason
        return failed("internal", f"internal error during analysis ({described(error)})", model=info)

    known = dict(
        model=info,
        domain=domain_record(domain),
        layers=layer_reports(analysis, log, network, compressed),
        neurons_before=network.n_neurons,
        neurons_after=compressed.n_neurons,
        parameters_before=network.n_params,
        parameters_after=compressed.n_params,
        hidden_widths_after=compressed.hidden_widths,
        if_undecided_settled=best_case,
        verification=verification,
        milp=analysis.milp,
        bab=analysis.bab,
        time_limit_reached=analysis.timed_out,
        policy=analysis.policy,
        tolerances=tolerance_record(),
    )
    if not verification.passed:
        return failed(
            "verification",
            f"verification failed: compressed output differs by {verification.max_abs_error:.3g} "
            f"(tolerance {VERIFY_TOLERANCE:g}·(1+|y|)); no compressed model written",
            **known,
        )

    clock = time.monotonic()
    say("writing outputs")
    architecture = arch_file_written(compressed, formats)
    try:
        remove_earlier_outputs(out_dir)
        written = save_network(compressed, out_dir, formats)
        try:
            problem = reload_mismatch(compressed, out_dir, written)
        except InputError as error:  # a written file the loaders refuse
            problem = str(error)
        if problem is not None:
            for name in [*written, *filter(None, [architecture])]:
                (out_dir / name).unlink(missing_ok=True)
            return failed("verification", f"a written file does not hold the verified model ({problem}); no "
                          "compressed model written", **known)
        save_witnesses(analysis, out_dir / "witnesses.npz")
        seconds["write"] = time.monotonic() - clock
        seconds["total"] = time.monotonic() - started
        status = "partial" if any(mask.any() for mask in analysis.undecided) else "exact"
        files = {name: file_digest(out_dir / name)
                 for name in [*written, *filter(None, [architecture]), "witnesses.npz"]}
        outputs = Outputs(compressed=written, architecture=architecture, witnesses="witnesses.npz",
                          report_md="report.md", report_html="report.html", files=files)
        report = CompressionReport(status=status, outputs=outputs, seconds=seconds, **base, **known)
        write_reports(report, out_dir)
        write_report_json(report, out_dir)
    except (OSError, RuntimeError) as error:  # a full disk; torch.save reports a failed write as a RuntimeError
        _remove_outputs(out_dir, formats)
        return failed("internal", f"{out_dir}: cannot write the outputs ({described(error)}); no compressed model "
                      "written", **known)
    return report


def _remove_outputs(out_dir: Path, formats: Sequence[str]) -> None:
    """Delete what a failed write of the outputs in ``formats`` may have left in ``out_dir`` (names a successful
    one would have overwritten), as far as the folder allows."""
    for name in [*(FILE_NAMES[name] for name in formats), ARCH_FILE_NAME, "witnesses.npz"]:
        with suppress(OSError):
            (out_dir / name).unlink(missing_ok=True)


def reload_mismatch(network: Network, out_dir: Path, written: Sequence[str]) -> str | None:
    """Why a file of ``written`` (names in ``out_dir``), read back by this package's loaders, does not hold
    ``network`` with every weight and bias rounded to ``network.dtype`` exactly (a pooled Linear: its pools and its
    weight on the pooled tensor); None when each one does. This checks the writing (layer order, transposes,
    kernels, pools, dtype) that verification of the network in memory cannot see."""
    for name in written:
        loaded, info = load_network(Path(out_dir) / name, require_hidden_layer=False)
        if info.dtype != network.dtype:
            return f"{name} holds {info.dtype} weights, not {network.dtype}"
        if len(loaded.layers) != len(network.layers):
            return f"{name} holds {len(loaded.layers)} affine layers, not {len(network.layers)}"
        for index, (read, meant) in enumerate(zip(loaded.layers, network.layers)):
            read_pooled, meant_pooled = read.written_pooled, meant.written_pooled
            if (read_pooled is None) != (meant_pooled is None) or (
                    meant_pooled is not None and read_pooled.pools != meant_pooled.pools):
                return f"{name}: the average pools before affine layer {index} differ from the compressed network's"
            parts = {"bias": (read.bias, meant.bias)}
            parts["weight"] = ((read_pooled.weight, meant_pooled.weight) if meant_pooled is not None
                               else (read.weight, meant.weight))
            for part, (value, meant_value) in parts.items():
                expected = round_to_dtype(meant_value, network.dtype)
                if value.shape != expected.shape or not np.array_equal(value, expected):
                    return f"{name}: the {part} of affine layer {index} differs from the compressed network's"
    return None


def file_digest(path: Path) -> FileDigest:
    """Size (bytes) and sha256 of the file at ``path``."""
    with open(path, "rb") as handle:
        return FileDigest(bytes=path.stat().st_size, sha256=hashlib.file_digest(handle, "sha256").hexdigest())


def _shown(value: Any) -> str:
    """``value`` as an error message shows it: its repr, shortened."""
    return reprlib.repr(value)


def _one_of(name: str, choices: Sequence[str]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise InputError(name, f"{_shown(value)} is not one of {', '.join(choices)}")
        return value

    return check


def _integer(name: str, least: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            raise InputError(name, f"{_shown(value)} is not an integer >= {least}")
        return int(value)

    return check


def _seconds(value: Any) -> float | None:
    """``time_limit``: None (no limit) or a finite number of seconds > 0 (``--time-limit``'s rule)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise InputError("time_limit", f"{_shown(value)} is not a positive number of seconds (None: no limit)")
    return float(value)


def _formats(value: Any) -> list[str]:
    """``formats``: one or more of ``SaveFormat`` (a single name counts as one)."""
    expected = list(get_args(SaveFormat))
    if isinstance(value, str):
        value = [value]
    try:
        names = list(value)
    except TypeError:
        raise InputError("formats", f"{_shown(value)} is not a list of save formats; expected any of "
                         f"{expected}") from None
    if not names:
        raise InputError("formats", f"is empty; name at least one of {expected}")
    unknown = [name for name in names if not isinstance(name, str) or name not in expected]
    if unknown:
        raise InputError("formats", f"unknown save format(s) {_shown(unknown)}; expected any of {expected}")
    return names


def _device(value: Any) -> str:
    """``device``: auto, cpu or cuda, and cuda only where torch sees a GPU."""
    resolve_device(_one_of("device", get_args(Device))(value))
    return value


def _input_shape(value: Any) -> Sequence[int] | None:
    """``input_shape``: None or a sequence of integers (``from_sequential`` checks its length and sizes)."""
    if value is not None and (isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not all(
            isinstance(size, numbers.Integral) and not isinstance(size, bool) for size in value)):
        raise InputError("input_shape", f"{_shown(value)} is not a sequence of integers (C, H, W)")
    return value


def _callable_or_none(name: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is not None and not callable(value):
            raise InputError(name, f"is a {type(value).__name__}; expected a function or None")
        return value

    return check


#: how ``compress_model`` checks each setting (the command line's rules for its flags); each check returns the
#: value to use or raises an ``InputError`` naming the setting
_SETTING_CHECKS: dict[str, Callable[[Any], Any]] = {
    "method": _one_of("method", get_args(Method)),
    "time_limit": _seconds,
    "workers": _integer("workers", 1),
    "threads": _integer("threads", 1),
    "formats": _formats,
    "seed": _integer("seed", 0),  # numpy's generators take no negative seed
    "device": _device,
    "verify_samples": _integer("verify_samples", 0),
    "input_shape": _input_shape,
    "parallel_map": _callable_or_none("parallel_map"),
    "progress": _callable_or_none("progress"),
}


def _checked_settings(**given: Any) -> tuple[dict[str, Any], InputError | None]:
    """The settings that pass their checks (``_SETTING_CHECKS``), and the first one's error that does not (None
    if all pass)."""
    checked, first = {}, None
    for name, value in given.items():
        try:
            checked[name] = _SETTING_CHECKS[name](value)
        except InputError as error:
            first = first or error
    return checked, first


def _model_path(model: Any) -> str:
    """What the report records as the model's path."""
    if isinstance(model, tuple) and len(model) == 2 and isinstance(model[1], ModelInfo):
        return model[1].path
    if isinstance(model, (str, os.PathLike)):
        return os.fsdecode(model)
    return f"<in-memory {type(model).__name__}>"


def _out_folder(out_dir: Any) -> tuple[Path | None, InputError | None]:
    """``out_dir`` as a created folder that takes files, or why it cannot be one (then no report can be written)."""
    if not isinstance(out_dir, (str, os.PathLike)):
        return None, InputError("out_dir", f"is a {type(out_dir).__name__}; expected a folder path")
    path = Path(out_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return None, InputError(str(path), f"cannot create the output folder ({type(error).__name__}: "
                                f"{error.strerror or error})")
    try:
        probe_writable(path)
    except OSError as error:
        return None, InputError(str(path), f"cannot write into the output folder ({type(error).__name__}: "
                                f"{error.strerror or error})")
    foreign = _foreign_outputs(path)
    if foreign:
        return None, InputError(str(path), f"holds {', '.join(foreign)}, which this run would replace, but no "
                                "report.json of an earlier exactcompress run: choose another folder, or remove them")
    return path, None


def _foreign_outputs(folder: Path) -> list[str]:
    """Names this run writes (report, pages, figures, models, witnesses) that exist in ``folder`` although it holds
    no report.json of an earlier run (one that validates): the user's own files, never to be replaced."""
    try:
        CompressionReport.model_validate_json((folder / REPORT_JSON).read_bytes())
        return []
    except (OSError, ValueError):
        names = [REPORT_JSON, *PAGES, *FILE_NAMES.values(), ARCH_FILE_NAME, "witnesses.npz"]
        return [name for name in names if (folder / name).exists()]


def _domain(domain: Any) -> Domain:
    """``compress_model``'s ``domain``: a ``Domain``, a domain file's path (``from_file``) or None ([0, 1])."""
    if domain is None:
        return scalar_box(0.0, 1.0)
    if isinstance(domain, Domain):
        return domain
    if isinstance(domain, (str, os.PathLike)):
        return from_file(domain)
    raise InputError("domain", f"is a {type(domain).__name__}; expected a Domain, a domain file path or None")


def _loaded(model, input_shape: Sequence[int] | None = None) -> tuple[Network, ModelInfo]:
    """``compress_model``'s ``model`` as ``(Network, ModelInfo)``; InputError for a bad file or module."""
    if isinstance(model, tuple):
        if len(model) == 2 and isinstance(model[0], Network) and isinstance(model[1], ModelInfo):
            return model
        raise InputError("model", "is a tuple but not a loaded (Network, ModelInfo) pair")
    if isinstance(model, Network):
        return network_info(model)
    if isinstance(model, (str, Path)):
        return load_network(model)
    if isinstance(model, nn.Module):
        return from_sequential(model, name=type(model).__name__, input_shape=input_shape)
    raise InputError("model", f"is a {type(model).__name__}; expected a file path, an nn.Sequential, a Network "
                     "or a (Network, ModelInfo) pair")


def _data_points(data, input_dim: int, input_shape: tuple[int, ...]) -> np.ndarray | None:
    """``compress_model``'s ``data`` as points (n, input_dim), float64: an array (rows are points, flattened) or
    a file (``load_data``, as ``--data`` takes); InputError for anything else, or for points that are no fit."""
    if data is None:
        return None
    if isinstance(data, (str, os.PathLike)):
        return load_data(data, input_dim, input_shape)
    if not isinstance(data, np.ndarray):
        raise InputError("data", f"is a {type(data).__name__}; expected an array (n, features), a .npy/.npz path "
                         "or None")
    return data_points("data", data, input_dim, input_shape)
