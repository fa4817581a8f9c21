"""Convolutions as dense unrolled (Toeplitz) matrices on the flattened C×H×W tensor, and back.

A ``Conv2d`` (dilation 1, groups 1, zero padding) is stored in the IR as the ``AffineLayer`` of its dense
matrix plus a ``ConvShape`` (see ``engine/network.py``); ``AvgPool2d`` is a linear map per channel that
is composed into the ``Linear`` after the ``Flatten`` that follows it, which keeps its pooled form for writing
(``AffineLayer.pooled``). Every loader builds its
convolutions here (``engine.convolution.unroll_conv``; ``engine.convolution.conv_kernel`` recovers the kernel
from a (possibly channel-sliced) dense matrix to write the compressed model as a real convolution again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..engine.convolution import unroll_conv
from ..engine.network import AvgPool, ConvShape, Pooled, compose_pool
from ..errors import InputError
from .rules import NamedAffine, finite_float64, fold_batchnorm

#: a convolution whose dense matrix (float64) would exceed this many bytes is refused, not swapped to disk
MAX_DENSE_BYTES = 256 * 2**20


def pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    """``3`` → ``(3, 3)``; ``(1, 2)`` stays; ValueError otherwise."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    values = tuple(int(item) for item in value)
    if len(values) != 2:
        raise ValueError(f"{what} must be an int or a pair, got {value!r}")
    return values


def conv_shape(source: str, name: str, in_shape: tuple[int, int, int], kernel: np.ndarray,
               stride: Sequence[int], padding: Sequence[int]) -> ConvShape:
    """The ``ConvShape`` of a kernel (out, in, kh, kw) applied to ``in_shape`` (C, H, W); InputError when the
    channels disagree, the kernel does not fit, or the dense matrix would exceed ``MAX_DENSE_BYTES``."""
    channels, height, width = in_shape
    if kernel.ndim != 4:
        raise InputError(source, f"convolution '{name}' has a weight of shape {tuple(kernel.shape)}; expected "
                         "(out_channels, in_channels, kh, kw)")
    if kernel.shape[1] != channels:
        raise InputError(source, f"convolution '{name}' expects {kernel.shape[1]} input channels but its input "
                         f"has shape {list(in_shape)} ({channels} channels)")
    try:
        shape = ConvShape(channels, height, width, kernel.shape[0], kernel.shape[2:], tuple(stride), tuple(padding))
    except ValueError:
        raise InputError(source, f"convolution '{name}': the {tuple(kernel.shape[2:])} kernel with padding "
                         f"{tuple(padding)} does not fit its {height}x{width} input") from None
    dense_bytes = 8 * shape.out_features * shape.in_features
    if dense_bytes > MAX_DENSE_BYTES:
        raise InputError(source, f"convolution '{name}' on a {list(in_shape)} input has a dense unrolled matrix of "
                         f"{dense_bytes / 2**20:.0f} MiB (> {MAX_DENSE_BYTES >> 20} MiB, the limit); "
                         "inputs this large are not supported yet")
    return shape


def conv_layer(source: str, name: str, in_shape: tuple[int, int, int], kernel: np.ndarray, bias: np.ndarray | None,
               stride: Sequence[int], padding: Sequence[int]) -> NamedAffine:
    """The ``NamedAffine`` (dense matrix + ``ConvShape``) of a convolution read from a file or module."""
    shape = conv_shape(source, name, in_shape, kernel, stride, padding)
    kernel = finite_float64(source, f"{name}.weight", kernel)
    bias = np.zeros(shape.out_channels) if bias is None else finite_float64(source, f"{name}.bias", bias)
    if bias.shape != (shape.out_channels,):
        raise InputError(source, f"convolution '{name}' has a bias of shape {tuple(bias.shape)}; expected "
                         f"({shape.out_channels},)")
    weight, dense_bias = unroll_conv(shape, kernel, bias)
    return NamedAffine(name, weight, dense_bias, shape)


def fold_batchnorm2d(source: str, affine: NamedAffine, bn_name: str, scale: np.ndarray, shift: np.ndarray,
                     mean: np.ndarray, var: np.ndarray, eps: float) -> NamedAffine:
    """Fold an eval-mode ``BatchNorm2d`` (per-channel vectors) into the convolution ``affine`` before it."""
    channels = affine.conv.out_channels
    for label, vector in (("weight", scale), ("bias", shift), ("running_mean", mean), ("running_var", var)):
        if np.shape(vector) != (channels,):
            raise InputError(source, f"batch norm '{bn_name}' {label} has shape {tuple(np.shape(vector))} but "
                             f"convolution '{affine.name}' has {channels} channels")
    positions = affine.conv.positions
    spread = [np.repeat(np.asarray(vector, dtype=np.float64), positions) for vector in (scale, shift, mean, var)]
    folded = fold_batchnorm(source, affine, bn_name, *spread, eps)
    return NamedAffine(folded.name, folded.weight, folded.bias, affine.conv)


def avgpool_matrix(source: str, name: str, in_shape: tuple[int, int, int], kernel_size: Sequence[int],
                   stride: Sequence[int], padding: Sequence[int], ceil_mode: bool = False,
                   count_include_pad: bool = True, divisor_override: int | None = None
                   ) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The per-channel matrix (out_h*out_w, in_h*in_w) of an ``AvgPool2d`` and its output shape (C, h, w),
    computed by torch's own ``avg_pool2d`` on the unit basis (exact up to one rounding of 1/divisor)."""
    channels, height, width = in_shape
    basis = torch.eye(height * width, dtype=torch.float64).reshape(height * width, 1, height, width)
    try:
        pooled = F.avg_pool2d(basis, tuple(kernel_size), tuple(stride), tuple(padding), ceil_mode,
                              count_include_pad, divisor_override)
    except RuntimeError as error:
        raise InputError(source, f"average pool '{name}' does not fit its {list(in_shape)} input: "
                         f"{str(error).splitlines()[0]}") from None
    out_h, out_w = pooled.shape[2:]
    return pooled.reshape(height * width, out_h * out_w).T.numpy().copy(), (channels, int(out_h), int(out_w))


def adaptive_avgpool(source: str, name: str, in_shape: tuple[int, int, int], output_size
                     ) -> tuple[np.ndarray, tuple[int, int, int], AvgPool | None]:
    """An ``AdaptiveAvgPool2d(output_size)`` (an int, a pair, None keeping that side) or ONNX ``GlobalAveragePool``
    (``output_size`` 1), called ``name`` in refusals, on ``in_shape`` (C, H, W): its per-channel matrix (out_h*out_w, H*W), computed by torch's own
    ``adaptive_avg_pool2d`` on the unit basis, its output shape (C, out_h, out_w), and the ``AvgPool`` that computes
    the same where each output side divides the input side (equal windows that do not overlap), else None."""
    channels, height, width = in_shape

    def positive(side: object) -> bool:
        return isinstance(side, (int, np.integer)) and not isinstance(side, bool) and side >= 1

    pair_given = isinstance(output_size, (tuple, list))
    sides = tuple(output_size) if pair_given else (output_size, output_size)
    if not (positive(output_size) or (pair_given and len(sides) == 2
                                      and all(side is None or positive(side) for side in sides))):
        raise InputError(source, f"{name} has output size {output_size!r}; expected an int >= 1 or a pair of them "
                         "(None keeps that side of the input)")
    out_h, out_w = (int(side) if side is not None else full for side, full in zip(sides, (height, width)))
    basis = torch.eye(height * width, dtype=torch.float64).reshape(height * width, 1, height, width)
    pooled = F.adaptive_avg_pool2d(basis, (out_h, out_w))
    matrix = pooled.reshape(height * width, out_h * out_w).T.numpy().copy()
    written = None
    if height % out_h == 0 and width % out_w == 0:
        kernel = (height // out_h, width // out_w)
        written = AvgPool(kernel, kernel, (0, 0), True)
    return matrix, (channels, out_h, out_w), written


@dataclass(frozen=True)
class PendingPools:
    """The average pools read since the last ReLU, waiting for the Linear after the Flatten: their map of one
    channel (h*w, H*W), the channels, the pools as a file can hold them again (None where one cannot:
    ``written_pool``, or a pool on the input) and the first one's label, which refusals name."""

    matrix: np.ndarray
    channels: int
    written: tuple[AvgPool, ...] | None
    label: str

    def then(self, label: str, matrix: np.ndarray, channels: int, written: AvgPool | None) -> "PendingPools":
        """These pools followed by one more (``label``, its map ``matrix`` of one channel, its written form)."""
        return PendingPools(matrix @ self.matrix, channels,
                            None if self.written is None or written is None else (*self.written, written), self.label)

    @staticmethod
    def first(label: str, matrix: np.ndarray, channels: int, written: AvgPool | None) -> "PendingPools":
        return PendingPools(matrix, channels, None if written is None else (written,), label)


def pooled_linear(source: str, label: str, layer: NamedAffine, pools: PendingPools) -> NamedAffine:
    """The Linear ``layer`` after the average ``pools`` and a Flatten, composed into one affine map of the unpooled
    tensor; InputError naming ``label`` if its inputs do not match the pooled tensor. The layer keeps its pooled
    form (``AffineLayer.pooled``), with ``pools.written`` (None where a file cannot hold the pools)."""
    if layer.weight.shape[1] != pools.channels * pools.matrix.shape[0]:
        raise InputError(source, f"{label} expects {layer.weight.shape[1]} inputs but the pooled tensor has "
                         f"{pools.channels * pools.matrix.shape[0]} features")
    pooled = Pooled(pools.written, pools.matrix, layer.weight)
    return NamedAffine(layer.name, compose_pool(layer.weight, pools.matrix), layer.bias, pooled=pooled)


def written_pool(in_shape: tuple[int, int, int], kernel_size: Sequence[int], stride: Sequence[int],
                 padding: Sequence[int], ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> AvgPool | None:
    """The ``AvgPool`` that computes what these ``AvgPool2d`` options compute on an ``in_shape`` (C, H, W)
    tensor, for writing the pool back; None where a written ``AvgPool2d`` and ONNX ``AveragePool`` could not
    both say it: a divisor override, or ceil mode where it changes the output size (torch and ONNX opsets differ
    on its last window). Ceil mode that changes nothing is dropped."""
    if divisor_override is not None:
        return None
    if ceil_mode:
        sizes = [(size + 2 * pad - kernel) / step + 1 for size, pad, kernel, step
                 in zip(in_shape[1:], padding, kernel_size, stride)]
        if any(size != int(size) for size in sizes):
            return None
    return AvgPool(tuple(kernel_size), tuple(stride), tuple(padding), bool(count_include_pad))
