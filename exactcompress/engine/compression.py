"""Exact compression ("LEO++", method.md): remove stably inactive neurons, fold linearly dependent
stably active neurons into the next layer, and merge layers whose remaining neurons are all stably
active into the next affine map.

Layers are processed in order; each step sees the layer as already changed by the steps before it
(its input columns may have been edited or merged). Row operations never reorder the rows of the layer
being processed, so the flags of the original hidden layer ``l`` always index the rows of its current map.

A convolution layer (``AffineLayer.conv`` set) loses only whole channels: those whose neurons are stably
inactive at every position (its rows, and the next layer's columns: the next convolution's input channel);
it is never folded or merged, so it stays a convolution. A Linear read after average pools (``AffineLayer.pooled``)
keeps its pooled form through every step, so the compressed file holds the pools and a Linear on the pooled
tensor, as the original did (where no written pool computes its pools' map, it comes out plain: written composed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..tolerances import FOLD_ATOL, RANK_RTOL
from .network import AffineLayer, ConvShape, Network


@dataclass(frozen=True)
class CompressionLog:
    """What ``compress`` did, per original hidden layer (0-based)."""

    removed_inactive: tuple[int, ...]  # neurons removed as stably inactive
    folded_active: tuple[int, ...]  # stably active neurons folded into the next layer (dependent rows)
    merged_layers: tuple[int, ...]  # layers merged into the next affine map (the layer became affine)
    skipped_folds: tuple[int, ...]  # dependent active rows NOT folded: residual over fold_atol, or folds off
    removed_channels: tuple[tuple[int, ...], ...] = ()  # per layer: channels removed (() for an MLP)
    removed_unused: tuple[int, ...] = ()  # neurons removed because nothing reads them (outgoing weights all 0)


@dataclass(frozen=True)
class _Fold:
    """Result of folding the dependent stably active rows of one layer."""

    layer: AffineLayer  # the layer without the folded rows
    following: AffineLayer  # the next layer with the folded rows' contribution added
    n_folded: int
    n_skipped: int


def _check_flags(network: Network, stably_active: Sequence[np.ndarray], stably_inactive: Sequence[np.ndarray]) -> None:
    widths = network.hidden_widths
    if len(stably_active) != len(widths) or len(stably_inactive) != len(widths):
        raise ValueError(
            f"need one flag array per hidden layer ({len(widths)}), got {len(stably_active)} active "
            f"and {len(stably_inactive)} inactive"
        )
    for index, (width, active, inactive) in enumerate(zip(widths, stably_active, stably_inactive)):
        for name, flags in (("stably_active", active), ("stably_inactive", inactive)):
            flags = np.asarray(flags)
            if flags.dtype != np.bool_ or flags.shape != (width,):
                raise ValueError(
                    f"{name}[{index}] must be a boolean array of shape ({width},), got {flags.dtype} {flags.shape}"
                )
        both = np.flatnonzero(np.asarray(active) & np.asarray(inactive))
        if both.size:
            raise ValueError(
                f"hidden layer {index}: neurons {both.tolist()} are flagged both stably active and inactive"
            )


def _remove_rows(layer: AffineLayer, following: AffineLayer, keep: np.ndarray) -> tuple[AffineLayer, AffineLayer]:
    """Drop the rows of ``layer`` (and the matching columns of ``following``) where ``keep`` is False."""
    return layer.rows(keep), AffineLayer(following.weight[:, keep], following.bias)


def channel_states(shape: ConvShape, flags: np.ndarray) -> np.ndarray:
    """Per-neuron flags (out_features,) of a convolution as (out_channels, positions)."""
    return np.asarray(flags).reshape(shape.out_channels, shape.positions)


def _remove_channels(
    layer: AffineLayer, following: AffineLayer, inactive: np.ndarray
) -> tuple[AffineLayer, AffineLayer, tuple[int, ...]]:
    """Drop the channels of the convolution ``layer`` stably inactive at every position, with the matching
    columns of ``following`` (its input channels when it is a convolution too). One channel is always kept,
    even when every channel is removable, so that the layer stays a convolution. A pooled Linear after it loses
    the same channels of its pooled weight."""
    shape = layer.conv
    removable = channel_states(shape, inactive).all(axis=1)
    if removable.all():
        removable[0] = False
    keep = np.repeat(~removable, shape.positions)
    kept = int(np.sum(~removable))
    if following.pooled is not None:
        pooled = following.pooled
        columns = np.repeat(~removable, pooled.matrix.shape[0])
        following = AffineLayer.pooled_layer(pooled.with_weight(pooled.weight[:, columns]), following.bias)
    else:
        following_conv = following.conv.with_channels(kept, following.conv.out_channels) if following.conv else None
        following = AffineLayer(following.weight[:, keep], following.bias, following_conv)
    return (
        AffineLayer(layer.weight[keep], layer.bias[keep], shape.with_channels(shape.in_channels, kept)),
        following,
        tuple(np.flatnonzero(removable).tolist()),
    )


def _numerical_rank(matrix: np.ndarray, rank_rtol: float) -> int:
    """Number of singular values of ``matrix`` that are > 0 and >= rank_rtol * s_max."""
    if matrix.size == 0:
        return 0
    singular = np.linalg.svd(matrix, compute_uv=False)
    return int(np.sum((singular > 0) & (singular >= rank_rtol * singular[0])))


def _fold_dependent_active(
    layer: AffineLayer, following: AffineLayer, active: np.ndarray, rank_rtol: float, fold_atol: float
) -> _Fold:
    """Fold stably active rows that are linear combinations of other stably active rows.

    With S the active rows, I ⊂ S independent (pivoted QR of W_S^T) and D = S \\ I with W_D ≈ K W_I
    (least squares), h_D = K h_I + (b_D - K b_I) on the domain. The fold is applied only if
    max |W_D - K W_I| <= fold_atol * (1 + max |W_S|); otherwise nothing changes and ``n_skipped = |D|``.
    """
    active_rows = np.flatnonzero(active)
    w_active = layer.weight[active_rows]
    rank = _numerical_rank(w_active, rank_rtol)
    if rank == active_rows.size:
        return _Fold(layer, following, 0, 0)
    if rank == 0:
        order = np.arange(active_rows.size)
    else:
        import scipy.linalg  # about 0.3 s to import: only when dependent active neurons need a pivoted QR

        _, _, order = scipy.linalg.qr(w_active.T, mode="economic", pivoting=True)
    independent = active_rows[np.sort(order[:rank])]
    dependent = active_rows[np.sort(order[rank:])]
    w_indep, w_dep = layer.weight[independent], layer.weight[dependent]
    if rank == 0:
        combination = np.zeros((dependent.size, 0))
    else:
        combination = np.linalg.lstsq(w_indep.T, w_dep.T, rcond=None)[0].T
    residual = np.max(np.abs(w_dep - combination @ w_indep), initial=0.0)
    if residual > fold_atol * (1.0 + np.max(np.abs(w_active), initial=0.0)):
        return _Fold(layer, following, 0, dependent.size)
    offset = layer.bias[dependent] - combination @ layer.bias[independent]
    next_weight = np.array(following.weight, copy=True)
    next_weight[:, independent] += following.weight[:, dependent] @ combination
    next_bias = following.bias + following.weight[:, dependent] @ offset
    keep = np.ones(layer.out_features, dtype=bool)
    keep[dependent] = False
    kept_layer, kept_following = _remove_rows(layer, AffineLayer(next_weight, next_bias), keep)
    return _Fold(kept_layer, kept_following, dependent.size, 0)


def _merge(layer: AffineLayer, following: AffineLayer) -> AffineLayer:
    """The composition ``following ∘ layer`` of two affine maps (no ReLU between them); pooled when ``layer`` is
    (``following`` applied to its pooled weight)."""
    bias = following.weight @ layer.bias + following.bias
    if layer.pooled is not None:
        return AffineLayer.pooled_layer(layer.pooled.with_weight(following.weight @ layer.pooled.weight), bias)
    return AffineLayer(following.weight @ layer.weight, bias)


def _drop_unused(layers: list[AffineLayer], origins: list[int], n_hidden: int) -> tuple[list[AffineLayer], list[int]]:
    """Remove, from the last hidden layer back, the fully connected neurons that nothing reads (their column in
    the next fully connected map is exactly zero: pruned weights, or a layer after them gone); exact on every
    input, whatever their state. A layer left without neurons is merged into the next (a map constant in its
    input), which leaves the layer before it unread in turn. ``layers``: the hidden maps and the output map;
    ``origins``: each hidden map's original layer. Returns the maps and the count removed per original layer."""
    layers, origins, unused = list(layers), list(origins), [0] * n_hidden
    for position in reversed(range(len(layers) - 1)):
        layer, following = layers[position], layers[position + 1]
        if layer.conv is not None or following.conv is not None:
            continue
        read = np.any(following.weight != 0, axis=0)
        if read.all():
            continue
        unused[origins[position]] += int(np.sum(~read))
        layer, following = _remove_rows(layer, following, read)
        if layer.out_features:
            layers[position:position + 2] = [layer, following]
        else:
            layers[position:position + 2] = [_merge(layer, following)]
            del origins[position]
    return layers, unused


def compress(
    network: Network,
    stably_active: Sequence[np.ndarray],
    stably_inactive: Sequence[np.ndarray],
    *,
    rank_rtol: float = RANK_RTOL,
    fold_atol: float = FOLD_ATOL,
    fold_dependent: bool = True,
) -> tuple[Network, CompressionLog]:
    """Compress ``network`` exactly on the domain the stability flags hold on.

    ``stably_active[l]`` / ``stably_inactive[l]``: boolean arrays of shape (width_l,) per hidden layer;
    a neuron may be in neither (kept as is) but never in both (ValueError). Per layer, in order:
    stably inactive rows are deleted; a layer whose remaining neurons are all stably active (or that
    has none left) is merged into the next affine map (no fold needed); otherwise dependent stably
    active rows are folded into the next layer (rank: singular values < ``rank_rtol * s_max`` count as
    zero; fold only if the residual max |W_D - K W_I| <= ``fold_atol * (1 + max |W_S|)``; with ``fold_dependent`` False
    none is folded, each counted as skipped).
    A convolution layer loses only the channels stably inactive at every position (never folded or merged).
    Last, fully connected neurons that nothing reads are removed (``_drop_unused``), whatever their flags.
    The result may have zero hidden layers and keeps ``network.dtype``. Flags are trusted: a wrong flag
    gives a wrong network (``verify`` catches it).
    """
    _check_flags(network, stably_active, stably_inactive)
    hidden: list[AffineLayer] = []
    origins: list[int] = []  # the original hidden layer of each map in ``hidden``
    removed, folded, merged, skipped, channels = [], [], [], [], []
    layer = network.layers[0]
    for index, following in enumerate(network.layers[1:]):
        if layer.conv is not None:
            layer, following, gone = _remove_channels(layer, following, np.asarray(stably_inactive[index]))
            removed.append(len(gone) * network.layers[index].conv.positions)
            channels.append(gone)
            folded.append(0)
            skipped.append(0)
            hidden.append(layer)
            origins.append(index)
            layer = following
            continue
        channels.append(())
        active = np.asarray(stably_active[index])
        keep = ~np.asarray(stably_inactive[index])
        layer, following = _remove_rows(layer, following, keep)
        removed.append(int(np.sum(~keep)))
        if np.all(active[keep]):
            folded.append(0)
            skipped.append(0)
            merged.append(index)
            layer = _merge(layer, following)
            continue
        fold = _fold_dependent_active(layer, following, active[keep], rank_rtol, fold_atol if fold_dependent else -1.0)
        folded.append(fold.n_folded)
        skipped.append(fold.n_skipped)
        hidden.append(fold.layer)
        origins.append(index)
        layer = fold.following
    layers, unused = _drop_unused([*hidden, layer], origins, len(network.hidden))
    layers = [AffineLayer(layer.weight, layer.bias) if layer.pooled is not None and layer.written_pooled is None
              else layer for layer in layers]  # pools no file holds: written composed, counted so
    log = CompressionLog(tuple(removed), tuple(folded), tuple(merged), tuple(skipped),
                         tuple(channels) if network.is_convolutional else (), tuple(unused))
    return Network(tuple(layers), dtype=network.dtype), log
