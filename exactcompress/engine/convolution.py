"""A convolution layer of the IR (an ``AffineLayer`` holding the dense unrolled matrix of its ``ConvShape``) and
its kernel: ``unroll_conv`` builds the dense matrix, ``conv_kernel`` recovers the kernel from it."""

from __future__ import annotations

import numpy as np

from .network import AffineLayer, ConvShape


def _taps(shape: ConvShape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (output position, input position, kernel tap) triple where the kernel touches the input
    (padding taps excluded); positions within one channel, taps as ``i * kw + j``."""
    kh, kw = shape.kernel_size
    ys, xs, ii, jj = np.meshgrid(np.arange(shape.out_height), np.arange(shape.out_width), np.arange(kh),
                                 np.arange(kw), indexing="ij")
    iy = ys * shape.stride[0] - shape.padding[0] + ii
    ix = xs * shape.stride[1] - shape.padding[1] + jj
    valid = (iy >= 0) & (iy < shape.in_height) & (ix >= 0) & (ix < shape.in_width)
    out_pos = (ys * shape.out_width + xs)[valid]
    in_pos = (iy * shape.in_width + ix)[valid]
    return out_pos, in_pos, (ii * kw + jj)[valid]


def _index(shape: ConvShape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row and column of the dense matrix (out_channels, in_channels, n_taps) per kernel entry, and the taps."""
    out_pos, in_pos, tap = _taps(shape)
    rows = np.arange(shape.out_channels)[:, None, None] * shape.positions + out_pos[None, None, :]
    cols = np.arange(shape.in_channels)[None, :, None] * (shape.in_height * shape.in_width) + in_pos[None, None, :]
    return rows, cols, tap


def unroll_conv(shape: ConvShape, kernel: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The dense (out_features, in_features) matrix and (out_features,) bias of the convolution: exact, each
    entry is one kernel entry or 0, so ``weight @ x.flatten()`` equals ``conv2d(x).flatten()``."""
    kernel = np.asarray(kernel, dtype=np.float64)
    rows, cols, tap = _index(shape)
    dense = np.zeros((shape.out_features, shape.in_features))
    dense[rows, cols] = kernel.reshape(shape.out_channels, shape.in_channels, -1)[:, :, tap]
    return dense, np.repeat(np.asarray(bias, dtype=np.float64), shape.positions)


def conv_kernel(layer: AffineLayer) -> tuple[np.ndarray, np.ndarray]:
    """The kernel (out, in, kh, kw) and bias (out,) whose unrolled matrix is ``layer``'s weight and bias.

    Kernel taps that never touch the input (only padding) are 0. ValueError if ``layer`` is not exactly the
    unrolled convolution of its ``conv`` shape (compression keeps it so: it only deletes whole channels).
    """
    shape = layer.conv
    if shape is None:
        raise ValueError("not a convolution layer")
    rows, cols, tap = _index(shape)
    kernel = np.zeros((shape.out_channels, shape.in_channels, shape.kernel_size[0] * shape.kernel_size[1]))
    kernel[:, :, tap] = layer.weight[rows, cols]
    kernel = kernel.reshape(shape.out_channels, shape.in_channels, *shape.kernel_size)
    bias = layer.bias.reshape(shape.out_channels, shape.positions)[:, 0].copy()
    dense, dense_bias = unroll_conv(shape, kernel, bias)
    if not (np.array_equal(dense, layer.weight) and np.array_equal(dense_bias, layer.bias)):
        raise ValueError(f"the dense matrix of {shape} is not a convolution (it was edited within a channel)")
    return kernel, bias
