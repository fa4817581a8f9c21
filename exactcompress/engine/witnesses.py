"""Witnesses: inputs in the box that show a hidden neuron's sign in a float64 forward pass.

A witness for neuron i of hidden layer l with sign +1 is an input x with ``g_i^l(x) > WITNESS_MARGIN``
(sign -1: ``g_i^l(x) < -WITNESS_MARGIN``) in ``Network.preactivations`` of the *original* network.
Search heuristics (uniform samples, box corners, data, projected gradient in torch) only propose
candidates; ``record`` alone decides, by the float64 numpy forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..tolerances import WITNESS_MARGIN
from .bounds import LayerBounds
from .convolution import conv_kernel
from .deadline import expired
from .domain import Box
from .network import AffineLayer, Network
from .progress import Progress, ignore
from .torch_threads import torch_threads

#: memory cap on the float64 arrays of one forward-pass chunk
CHUNK_BYTES = 64 * 2**20
#: rows per projected-gradient batch
GRADIENT_ROWS = 4096
#: the gradient search hands its points to ``record`` every this many steps (and after the last)
RECORD_EVERY = 10
#: a start stops when, at the rate its objective rose over the last this many record points, it would not
#: show the sign within the steps left (on regularised nets most open signs are stable: the steps are waste)
STALL_RECORDS = 3

Masks = tuple[list[np.ndarray], list[np.ndarray]]


def _frozen(array: np.ndarray, dtype) -> np.ndarray:
    """A read-only copy of ``array`` as ``dtype``; an array already frozen that way (read-only, owning its data)
    is kept as it is, so that a ``WitnessSet`` made from another's arrays copies nothing."""
    if isinstance(array, np.ndarray) and array.dtype == dtype and not array.flags.writeable and array.flags.owndata:
        return array
    out = np.array(array, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class WitnessSet:
    """Witness points, which neuron-signs they show, and the range of each pre-activation seen so far.

    ``points`` (n, input_dim) float64; ``positive[l]`` / ``negative[l]`` int64 (width_l,): the row of
    ``points`` with ``g > WITNESS_MARGIN`` / ``g < -WITNESS_MARGIN`` for that neuron, or -1 if none yet.
    ``highest[l]`` / ``lowest[l]`` float64 (width_l,): the largest / smallest g of the float64 forward passes
    ``record`` ran, over every candidate it was given (kept as a witness or not; -inf / +inf before any, and
    not updated once all neuron-signs are witnessed): inner estimates of g's range, never bounds. Empty tuples
    (the default) mean none seen yet.
    """

    points: np.ndarray
    positive: tuple[np.ndarray, ...]
    negative: tuple[np.ndarray, ...]
    highest: tuple[np.ndarray, ...] = ()
    lowest: tuple[np.ndarray, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", _frozen(self.points, np.float64))
        object.__setattr__(self, "positive", tuple(_frozen(a, np.int64) for a in self.positive))
        object.__setattr__(self, "negative", tuple(_frozen(a, np.int64) for a in self.negative))
        for name, start in (("highest", -np.inf), ("lowest", np.inf)):
            values = getattr(self, name) or tuple(np.full(a.shape, start) for a in self.positive)
            object.__setattr__(self, name, tuple(_frozen(a, np.float64) for a in values))

    def __setstate__(self, state: dict) -> None:
        """Unpickled (or deep-copied) arrays come back writeable: read-only again, as ``__post_init__`` makes them."""
        self.__dict__.update(state)
        for value in state.values():
            for array in value if isinstance(value, tuple) else (value,):
                array.setflags(write=False)

    def with_range_of(self, other: "WitnessSet") -> "WitnessSet":
        """This set with ``highest`` / ``lowest`` widened to cover ``other``'s (same network)."""
        return replace(self, highest=tuple(np.maximum(a, b) for a, b in zip(self.highest, other.highest)),
                       lowest=tuple(np.minimum(a, b) for a, b in zip(self.lowest, other.lowest)))

    @classmethod
    def empty(cls, network: Network) -> "WitnessSet":
        """No points, nothing witnessed."""
        missing = tuple(np.full(width, -1, dtype=np.int64) for width in network.hidden_widths)
        return cls(np.zeros((0, network.input_dim)), missing, missing)

    def open_signs(self) -> Masks:
        """Per hidden layer, boolean masks (width,) of neurons lacking a positive / a negative witness."""
        return [a < 0 for a in self.positive], [a < 0 for a in self.negative]

    def unstable(self, layer: int) -> np.ndarray:
        """Boolean mask (width,) of the neurons of hidden layer ``layer`` witnessed with both signs."""
        return (self.positive[layer] >= 0) & (self.negative[layer] >= 0)

    def witnessed(self, layers: np.ndarray, neurons: np.ndarray, signs: np.ndarray) -> np.ndarray:
        """Boolean (k,): whether neuron-sign ``(layers[i], neurons[i], signs[i])`` has a witness (sign +1/-1)."""
        offsets = np.cumsum([0] + [a.size for a in self.positive])[np.asarray(layers)] + np.asarray(neurons)
        rows = np.where(np.asarray(signs) > 0, np.concatenate(self.positive)[offsets],
                        np.concatenate(self.negative)[offsets])
        return rows >= 0


def _chunk_rows(network: Network, max_bytes: int) -> int:
    widths = network.hidden_widths
    row_bytes = 8 * (network.input_dim + sum(widths) + 2 * max(widths, default=0))
    return max(1, max_bytes // row_bytes)


@dataclass(frozen=True)
class FirstLayerShortcut:
    """The first-layer neurons that are below ``-WITNESS_MARGIN`` in every float64 forward pass at every point of
    a box (``negative``, mask (width_0,)), and ``reduced``: the network without them (its first layer's rows and
    its second layer's columns; plain affine layers). Their outputs are exactly 0 there, so ``reduced`` gives
    the same later pre-activations (up to the order of float64 summation), and every candidate is a negative
    witness of each of them: ``record`` then skips their share of the largest product."""

    negative: np.ndarray
    reduced: Network

    @classmethod
    def for_box(cls, network: Network, box: Box) -> "FirstLayerShortcut | None":
        """None when no such neuron exists or the network has one hidden layer. A neuron counts when its largest
        value over ``box`` (``W+ upper + W- lower + b``, exact for a first layer) is below ``-WITNESS_MARGIN`` by
        more than ``2.02 (d + 8) 2**-53 (|W| |x|max + |b|)``: float64 rounding of that sum and of any forward
        pass, and candidates a few ulps outside the box (uniform samples are not clipped)."""
        if len(network.hidden) < 2:
            return None
        first = network.layers[0]
        largest, magnitude = first.largest_on_boxes(box.lower[None], box.upper[None])
        negative = largest + 2.02 * (first.in_features + 8) * 2.0**-53 * magnitude < -WITNESS_MARGIN
        if not negative.any():
            return None
        negative.setflags(write=False)
        return cls(negative, network.without_first_neurons(~negative))


def record(network: Network, witnesses: WitnessSet, candidates: np.ndarray, *, max_bytes: int = CHUNK_BYTES,
           shortcut: FirstLayerShortcut | None = None) -> WitnessSet:
    """Witnesses extended by ``candidates`` (n, input_dim), assumed inside the domain (callers clip).

    Runs the float64 forward pass in chunks of at most ``max_bytes``; every neuron-sign not yet witnessed
    takes the first candidate showing it with margin ``WITNESS_MARGIN``. Only the candidates actually
    used are appended to ``points``, in candidate order (so the result does not depend on chunking). Returns a
    new ``WitnessSet`` (the input is unchanged). With ``shortcut`` (made for the box the candidates lie in) the
    pass runs through ``shortcut.reduced`` and the first candidate is the negative witness of each neuron in
    ``shortcut.negative``: the same witnesses as the full pass.
    """
    candidates = np.asarray(candidates, dtype=np.float64).reshape(-1, network.input_dim)
    positive = [a.copy() for a in witnesses.positive]
    negative = [a.copy() for a in witnesses.negative]
    highest = [a.copy() for a in witnesses.highest]
    lowest = [a.copy() for a in witnesses.lowest]
    hits: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (found array, neurons, candidate rows)
    columns = [np.arange(width) for width in network.hidden_widths]  # the neuron each pre-activation column is
    forward = network
    if shortcut is not None:
        forward, columns[0] = shortcut.reduced, np.flatnonzero(~shortcut.negative)
        certain = np.flatnonzero(shortcut.negative & (negative[0] < 0))
        if certain.size and candidates.shape[0]:
            negative[0][certain] = 0
            hits.append((negative[0], certain, np.zeros(certain.size, dtype=np.int64)))
    step = _chunk_rows(forward, max_bytes)
    evaluated = False
    for start in range(0, candidates.shape[0], step):
        if not any(np.any(a < 0) for a in positive + negative):
            break
        evaluated = True
        preactivations = forward.preactivations(candidates[start : start + step])
        for layer, g in enumerate(preactivations):
            if g.shape[0]:
                highest[layer][columns[layer]] = np.maximum(highest[layer][columns[layer]], g.max(axis=0))
                lowest[layer][columns[layer]] = np.minimum(lowest[layer][columns[layer]], g.min(axis=0))
            for found, shows in ((positive[layer], g > WITNESS_MARGIN), (negative[layer], g < -WITNESS_MARGIN)):
                open_columns = np.flatnonzero(found[columns[layer]] < 0)
                if open_columns.size == 0:
                    continue
                shows = shows[:, open_columns]
                hit = shows.any(axis=0)
                if hit.any():
                    neurons = columns[layer][open_columns[hit]]
                    found[neurons] = 0  # placeholder, so later chunks skip it; remapped below
                    hits.append((found, neurons, start + shows.argmax(axis=0)[hit]))
    if not hits:
        return replace(witnesses, highest=tuple(highest), lowest=tuple(lowest)) if evaluated else witnesses
    used = np.unique(np.concatenate([rows for _, _, rows in hits]))  # sorted: order of the candidates
    base = witnesses.points.shape[0]
    for found, neurons, rows in hits:
        found[neurons] = base + np.searchsorted(used, rows)
    return WitnessSet(np.concatenate([witnesses.points, candidates[used]]), tuple(positive), tuple(negative),
                      tuple(highest), tuple(lowest))


def _targets(witnesses: WitnessSet, bounds: Sequence[LayerBounds] | None, skip: Masks | None) -> np.ndarray:
    """Open neuron-signs worth searching, as rows (layer, neuron, sign) of an int64 array (k, 3)."""
    missing_positive, missing_negative = witnesses.open_signs()
    rows = []
    for layer in range(len(witnesses.positive)):
        for sign, missing in ((1, missing_positive[layer]), (-1, missing_negative[layer])):
            wanted = missing.copy()
            if skip is not None:
                wanted &= ~np.asarray((skip[0] if sign > 0 else skip[1])[layer], dtype=bool)
            if bounds is not None:
                possible = bounds[layer].upper > WITNESS_MARGIN if sign > 0 else bounds[layer].lower < -WITNESS_MARGIN
                wanted &= possible
            neurons = np.flatnonzero(wanted)
            rows.append(np.stack([np.full(neurons.size, layer), neurons, np.full(neurons.size, sign)], axis=1))
    return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 3), dtype=np.int64)


def _still_open(witnesses: WitnessSet, targets: np.ndarray) -> np.ndarray:
    """Boolean mask (k,) of ``targets`` rows (layer, neuron, sign) that still lack a witness."""
    return ~witnesses.witnessed(targets[:, 0], targets[:, 1], targets[:, 2])


def _first_layer_corners(network: Network, box: Box, witnesses: WitnessSet,
                         shortcut: FirstLayerShortcut | None) -> list[np.ndarray]:
    """Box corners maximising (minimising) each open first-layer neuron, in blocks of rows (m, input_dim);
    none for the neurons of ``shortcut``, negative everywhere."""
    if not network.hidden:
        return []
    weight = network.hidden[0].weight
    missing_positive, missing_negative = (masks[0] for masks in witnesses.open_signs())
    if shortcut is not None:
        missing_positive, missing_negative = (missing & ~shortcut.negative
                                              for missing in (missing_positive, missing_negative))
    blocks = []
    for missing, towards_upper in ((missing_positive, True), (missing_negative, False)):
        rows = weight[missing]
        if rows.size:
            high, low = (box.upper, box.lower) if towards_upper else (box.lower, box.upper)
            blocks.append(np.where(rows > 0, high, low))
    return blocks


def _torch_layer(layer: AffineLayer) -> Callable[[torch.Tensor], torch.Tensor]:
    """``layer`` in float32 torch on a batch (n, in_features) -> (n, out_features): a convolution as
    ``conv2d`` on its kernel (its dense matrix has mostly zeros), anything else as a matrix product."""
    bias = torch.from_numpy(np.array(layer.bias, dtype=np.float32))
    shape = layer.conv
    if shape is None:
        weight = torch.from_numpy(np.array(layer.weight, dtype=np.float32))
        return lambda h: h @ weight.T + bias
    kernel = torch.from_numpy(conv_kernel(layer)[0].astype(np.float32))
    return lambda h: F.conv2d(h.reshape(-1, shape.in_channels, shape.in_height, shape.in_width), kernel,
                              stride=shape.stride, padding=shape.padding).flatten(1) + bias


def _gradient_chunk(
    network: Network,
    box: Box,
    witnesses: WitnessSet,
    targets: np.ndarray,
    *,
    rng: np.random.Generator,
    starts: int,
    steps: int,
    learning_rate: float,
    deadline: float | None,
    shortcut: FirstLayerShortcut | None,
) -> WitnessSet:
    """Projected Adam on ``starts`` random points per target (layer, neuron, sign), minimising
    ``-sign * g`` in float32 torch (twice float64's speed; only a search), clipped to the box after every
    step; points are clipped to the box again in float64 and go through ``record``, which decides on a float64
    forward pass. With ``shortcut`` the steps run through ``shortcut.reduced`` (no target may be one of the
    neurons it drops)."""
    depth = int(targets[:, 0].max()) + 1
    searched, columns = network, targets[:, 1]  # the target's column in ``searched``'s layer
    if shortcut is not None and not any(layer.conv is not None for layer in network.layers[:2]):
        searched = shortcut.reduced  # (the reduced layers are dense: slower than the convolutions they replace)
        first = targets[:, 0] == 0  # the first layer's columns move up past the dropped rows; no other layer's do
        columns = targets[:, 1].copy()
        columns[first] = (np.cumsum(~shortcut.negative) - 1)[columns[first]]
    layers = [_torch_layer(layer) for layer in searched.hidden[:depth]]
    lower, upper = (torch.from_numpy(np.array(side, dtype=np.float32)) for side in (box.lower, box.upper))
    step_size = learning_rate * (upper - lower)
    row_targets, row_columns = np.repeat(targets, starts, axis=0), np.repeat(columns, starts)
    x = torch.from_numpy(box.sample(row_targets.shape[0], rng).astype(np.float32))

    def candidates() -> np.ndarray:  # float32 bounds may round outwards: clip in float64
        return box.clip(x.detach().numpy().astype(np.float64))

    first_moment, second_moment = torch.zeros_like(x), torch.zeros_like(x)
    objectives: list[torch.Tensor] = []  # per start, sign * g at the last record points
    beta1, beta2, eps = 0.9, 0.999, 1e-12
    for step in range(1, steps + 1):
        if expired(deadline):
            return record(network, witnesses, candidates(), shortcut=shortcut)
        layer_of, neuron_of = torch.from_numpy(row_targets[:, 0]), torch.from_numpy(row_columns)
        sign_of = torch.from_numpy(row_targets[:, 2].astype(np.float32))
        with torch.enable_grad():  # local: callers may have disabled autograd
            x.requires_grad_(True)
            h, chosen = x, torch.zeros(x.shape[0], dtype=torch.float32)
            for layer, apply in enumerate(layers):
                g = apply(h)
                rows = torch.nonzero(layer_of == layer).flatten()
                chosen = chosen.index_put((rows,), g[rows, neuron_of[rows]])
                h = torch.relu(g)
            (gradient,) = torch.autograd.grad(-(sign_of * chosen).sum(), x)
        with torch.no_grad():
            first_moment.mul_(beta1).add_(gradient, alpha=1 - beta1)
            second_moment.mul_(beta2).addcmul_(gradient, gradient, value=1 - beta2)
            corrected = (first_moment / (1 - beta1**step)) / ((second_moment / (1 - beta2**step)).sqrt() + eps)
            x = torch.clamp(x.detach() - step_size * corrected, lower, upper)
        if step % RECORD_EVERY == 0 or step == steps:
            witnesses = record(network, witnesses, candidates(), shortcut=shortcut)
            keep = _still_open(witnesses, row_targets)
            objectives.append((sign_of * chosen).detach())
            if len(objectives) > STALL_RECORDS:
                earlier, now = objectives.pop(0), objectives[-1]
                reachable = now + (now - earlier) * (steps - step) / (STALL_RECORDS * RECORD_EVERY)
                keep &= (reachable > 0).numpy()
            if not keep.any():
                break
            if not keep.all():
                selector = torch.from_numpy(np.flatnonzero(keep))
                row_targets, row_columns = row_targets[keep], row_columns[keep]
                x, first_moment, second_moment = x[selector], first_moment[selector], second_moment[selector]
                objectives = [values[selector] for values in objectives]
    return witnesses


def search(
    network: Network,
    box: Box,
    witnesses: WitnessSet,
    *,
    data: np.ndarray | None = None,
    bounds: Sequence[LayerBounds] | None = None,
    rng: np.random.Generator,
    n_samples: int = 20000,
    gradient_starts: int = 8,
    gradient_steps: int = 200,
    learning_rate: float = 0.05,
    deadline: float | None = None,
    skip: Masks | None = None,
    progress: Progress | None = None,
) -> WitnessSet:
    """Witnesses in ``box`` for neuron-signs still open in ``witnesses``; returns the extended set.

    Stages, each feeding candidates to ``record``: ``n_samples`` uniform samples; the first-layer box
    corners that attain each neuron's max / min; the rows of ``data`` (n, input_dim) inside the box
    (others ignored); a batched projected-gradient search (torch, CPU, float32, one intra-op thread;
    ``gradient_starts`` random starts per open neuron-sign, ``gradient_steps`` Adam steps with step
    ``learning_rate * (upper - lower)`` per feature, in batches of at most ``GRADIENT_ROWS`` rows). The gradient stage
    skips neuron-signs marked in ``skip`` (masks shaped like ``WitnessSet.open_signs``) and those that ``bounds``
    rule out (upper <= WITNESS_MARGIN for +, lower >= -WITNESS_MARGIN for -), and the first layer once
    its corners have been tried. First-layer neurons negative on the whole box (``FirstLayerShortcut``) are
    left out of every forward pass and step (on L1-trained nets most of the widest layer). Work stops once
    ``time.monotonic() > deadline``; the set found so far is returned. ``rng`` drives samples and starts; torch's
    global settings are as they were on return.
    """
    report = progress or ignore

    def remaining() -> int:
        return sum(int(m.sum()) for masks in witnesses.open_signs() for m in masks)

    shortcut = FirstLayerShortcut.for_box(network, box)
    step = _chunk_rows(network if shortcut is None else shortcut.reduced, CHUNK_BYTES)
    buffer = np.empty((min(step, max(n_samples, 0)), network.input_dim))  # reused: ``record`` copies what it keeps
    for start in range(0, n_samples, step):
        if expired(deadline) or remaining() == 0:
            break
        samples = box.sample_into(buffer[: min(step, n_samples - start)], rng)
        witnesses = record(network, witnesses, samples, shortcut=shortcut)
    report(f"uniform samples: {remaining()} neuron-signs open")
    corners_done = not expired(deadline)
    if corners_done:
        for block in _first_layer_corners(network, box, witnesses, shortcut):
            witnesses = record(network, witnesses, block, shortcut=shortcut)
    if data is not None:
        inside = np.asarray(data, dtype=np.float64).reshape(-1, network.input_dim)
        inside = inside[box.contains(inside)]
        for start in range(0, inside.shape[0], step):
            if expired(deadline) or remaining() == 0:
                break
            witnesses = record(network, witnesses, inside[start : start + step], shortcut=shortcut)
    report(f"corners and data: {remaining()} neuron-signs open")
    if gradient_starts <= 0 or gradient_steps <= 0:
        return witnesses
    targets = _targets(witnesses, bounds, skip)
    if corners_done:  # the corners attain the exact first-layer extremes: gradient steps cannot beat them
        targets = targets[targets[:, 0] > 0]
    if shortcut is not None:  # any candidate shows their negative sign, none their positive one
        first = np.flatnonzero(targets[:, 0] == 0)  # (the mask is the first layer's: no other layer's index)
        targets = np.delete(targets, first[shortcut.negative[targets[first, 1]]], axis=0)
    per_chunk = max(1, GRADIENT_ROWS // max(1, gradient_starts))
    # one intra-op thread: the steps' products are small, and a second thread only adds synchronisation, which
    # collapses when another process holds a core (a 64-input 12x100 net: 1.3 s alone, 47-61 s beside a busy
    # core with torch's default of two threads, 3.6 s with one); alone on 2 cores one thread took 0.4-0.8x the
    # time on the MLP bench nets and 1.2x on a 784-input CNN (benchmarks/README.md, "Witness search threads")
    with torch_threads(1):
        for first in range(0, targets.shape[0], per_chunk):
            if expired(deadline):
                break
            chunk = targets[first : first + per_chunk]
            chunk = chunk[_still_open(witnesses, chunk)]
            if chunk.shape[0] == 0:
                continue
            witnesses = _gradient_chunk(
                network, box, witnesses, chunk, rng=rng, starts=gradient_starts, steps=gradient_steps,
                learning_rate=learning_rate, deadline=deadline, shortcut=shortcut,
            )
            report(f"gradient search ({remaining()} neuron-signs open)", min(first + per_chunk, targets.shape[0]),
                   targets.shape[0])
    return witnesses
