"""Immutable network IR: a chain of affine layers in float64 with ReLU between them.

A network with layers ``A_1 .. A_{L+1}`` computes ``g^l = W^l h^{l-1} + b^l``, ``h^l = relu(g^l)``
for the hidden layers ``l = 1..L`` and an affine output ``y = W^{L+1} h^L + b^{L+1}``.
Hidden layers are indexed from 0 in code and reports (``hidden[0]`` is ``l = 1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

#: a convolution whose dense unrolled matrix has at most this share of nonzeros is applied as a sparse product
#: (scipy CSR, one thread); measured per pass of 2,006 rows: a 1-channel 3x3 convolution of a 28x28 input
#: (1.1% nonzeros) 15-20 ms sparse vs 56 ms dense on 2 BLAS threads, an 8-channel one (4.6%) 36-53 vs 54-60 ms
SPARSE_MAX_DENSITY = 0.05


def _frozen(array: np.ndarray) -> np.ndarray:
    out = np.array(array, dtype=np.float64, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class ConvShape:
    """The structure of a 2-D convolution (dilation 1, groups 1, zero padding) whose dense unrolled matrix
    an ``AffineLayer`` holds: inputs and outputs are C×H×W tensors flattened channel-major (``torch.flatten``
    order), so output neuron ``(o, y, x)`` is row ``o * out_height * out_width + y * out_width + x``."""

    in_channels: int
    in_height: int
    in_width: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        for name in ("kernel_size", "stride", "padding"):
            object.__setattr__(self, name, tuple(int(value) for value in getattr(self, name)))
        if min(self.in_channels, self.in_height, self.in_width, self.out_channels, *self.kernel_size,
               *self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"invalid convolution shape {self}")
        if self.out_height < 1 or self.out_width < 1:
            raise ValueError(f"the {self.kernel_size} kernel does not fit the padded {self.in_height}x{self.in_width} input")

    @property
    def out_height(self) -> int:
        return (self.in_height + 2 * self.padding[0] - self.kernel_size[0]) // self.stride[0] + 1

    @property
    def out_width(self) -> int:
        return (self.in_width + 2 * self.padding[1] - self.kernel_size[1]) // self.stride[1] + 1

    @property
    def positions(self) -> int:
        """Output positions per channel (out_height * out_width)."""
        return self.out_height * self.out_width

    @property
    def in_features(self) -> int:
        return self.in_channels * self.in_height * self.in_width

    @property
    def out_features(self) -> int:
        return self.out_channels * self.positions

    @property
    def n_params(self) -> int:
        """Kernel and bias entries of the convolution (not of its dense matrix)."""
        return self.out_channels * (self.in_channels * self.kernel_size[0] * self.kernel_size[1] + 1)

    def with_channels(self, in_channels: int, out_channels: int) -> "ConvShape":
        return ConvShape(in_channels, self.in_height, self.in_width, out_channels, self.kernel_size, self.stride,
                         self.padding)


@dataclass(frozen=True)
class AvgPool:
    """An ``nn.AvgPool2d`` (torch's semantics; floor mode, no divisor override) as a compressed file holds it."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    count_include_pad: bool = True


@dataclass(frozen=True)
class Pooled:
    """A Linear read after average pools and a Flatten, as a file holds it: ``pools`` (in order) on the C×H×W
    tensor, then ``weight`` (out, C*h*w) on the pooled tensor. ``matrix`` (h*w, H*W) is the pools' map of one
    channel; the layer's dense weight is ``compose_pool(weight, matrix)`` (``AffineLayer.pooled_layer``).
    ``pools`` is None where no written pool computes the map (the layer is then written composed, on the un-pooled
    tensor); the weight still counts the original file's parameters."""

    pools: tuple[AvgPool, ...] | None
    matrix: np.ndarray
    weight: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "pools", tuple(self.pools) if self.pools is not None else None)
        object.__setattr__(self, "matrix", _frozen(self.matrix))
        object.__setattr__(self, "weight", _frozen(self.weight))
        if self.matrix.ndim != 2 or self.weight.ndim != 2 or self.weight.shape[1] % self.matrix.shape[0]:
            raise ValueError(f"a pooled weight of shape {self.weight.shape} does not fit a pool map of shape "
                             f"{self.matrix.shape}")

    def __setstate__(self, state: dict) -> None:
        """Read-only arrays again after unpickling (see ``AffineLayer.__setstate__``)."""
        self.__dict__.update(state)
        self.matrix.setflags(write=False)
        self.weight.setflags(write=False)

    @property
    def channels(self) -> int:
        return self.weight.shape[1] // self.matrix.shape[0]

    def with_weight(self, weight: np.ndarray) -> "Pooled":
        return Pooled(self.pools, self.matrix, weight)


def compose_pool(weight: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``weight`` (out, C*h*w) of a Linear after a pooled, flattened tensor, composed with the pool
    (block-diagonal: the per-channel ``pool`` (h*w, H*W) for each channel): (out, C*H*W)."""
    out, channels = weight.shape[0], weight.shape[1] // pool.shape[0]
    blocks = weight.reshape(out, channels, pool.shape[0])
    return np.einsum("ocp,pq->ocq", blocks, pool).reshape(out, channels * pool.shape[1])


@dataclass(frozen=True)
class AffineLayer:
    """``x ↦ weight @ x + bias``; ``weight`` has shape (out, in), ``bias`` shape (out,), float64, read-only.

    ``conv`` is set when the layer is a convolution stored as its dense unrolled matrix (see ``ConvShape``);
    ``pooled`` when it is a Linear after average pools, stored composed with them (``weight`` is
    ``compose_pool(pooled.weight, pooled.matrix)``; build it with ``pooled_layer``) and written as the pools and
    that Linear. Every engine step reads only ``weight`` and ``bias``.
    """

    weight: np.ndarray
    bias: np.ndarray
    conv: ConvShape | None = None
    pooled: Pooled | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _frozen(self.weight))
        object.__setattr__(self, "bias", _frozen(self.bias))
        if self.weight.ndim != 2 or self.bias.ndim != 1 or self.weight.shape[0] != self.bias.shape[0]:
            raise ValueError(f"affine layer shapes do not match: weight {self.weight.shape}, bias {self.bias.shape}")
        if self.conv is not None and self.weight.shape != (self.conv.out_features, self.conv.in_features):
            raise ValueError(f"convolution {self.conv} needs a dense weight of shape "
                             f"{(self.conv.out_features, self.conv.in_features)}, got {self.weight.shape}")
        if self.pooled is not None and self.weight.shape != (
                self.pooled.weight.shape[0], self.pooled.channels * self.pooled.matrix.shape[1]):
            raise ValueError(f"a pooled Linear of weight {self.pooled.weight.shape} after a pool of map "
                             f"{self.pooled.matrix.shape} has no dense weight of shape {self.weight.shape}")

    @classmethod
    def pooled_layer(cls, pooled: Pooled, bias: np.ndarray) -> "AffineLayer":
        """The layer of ``pooled`` (its weight composed with its pools) and ``bias`` (out,)."""
        return cls(compose_pool(pooled.weight, pooled.matrix), bias, pooled=pooled)

    @property
    def written_pooled(self) -> Pooled | None:
        """``pooled`` where a file can hold its pools (the layer is written as them and a Linear on the pooled
        tensor), else None (written as ``weight``)."""
        return self.pooled if self.pooled is not None and self.pooled.pools is not None else None

    def rows(self, keep: np.ndarray) -> "AffineLayer":
        """The fully connected (or pooled) layer with only the rows (neurons) ``keep`` (a mask or indices)."""
        if self.pooled is not None:
            return AffineLayer.pooled_layer(self.pooled.with_weight(self.pooled.weight[keep]), self.bias[keep])
        return AffineLayer(self.weight[keep], self.bias[keep])

    def __setstate__(self, state: dict) -> None:
        """Unpickled (or deep-copied) arrays come back writeable: read-only again, as ``__post_init__`` makes them."""
        self.__dict__.update(state)
        self.weight.setflags(write=False)
        self.bias.setflags(write=False)

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    @property
    def n_params(self) -> int:
        """Weight and bias entries as a file holds them: a convolution's kernel and bias entries, a pooled Linear's
        weight on the pooled tensor (a layer that ``compress`` returns is pooled only where it is written so)."""
        if self.conv is not None:
            return self.conv.n_params
        return (self.pooled.weight if self.pooled is not None else self.weight).size + self.bias.size

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Apply to a batch ``x`` of shape (n, in) (or one input (in,)); returns (n, out) (or (out,)), float64.
        A sparse convolution (``SPARSE_MAX_DENSITY``) sums only its nonzero terms, in another order than the
        dense product: the results agree to float64 rounding."""
        if self._sparse_transpose is not None:
            return np.asarray(x @ self._sparse_transpose) + self.bias
        return x @ self.weight.T + self.bias

    @cached_property
    def _sparse_transpose(self):
        """The weight's transpose as a scipy CSR matrix when the layer is a convolution with at most
        ``SPARSE_MAX_DENSITY`` nonzeros, else None (built on first use)."""
        if self.conv is None or np.count_nonzero(self.weight) > SPARSE_MAX_DENSITY * self.weight.size:
            return None
        # only networks with sparse convolutions import scipy.sparse
        from scipy.sparse import csr_matrix

        return csr_matrix(self.weight.T)

    def largest_on_boxes(self, lowers: np.ndarray, uppers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For inputs ``x`` in any of the boxes ``lowers[k] <= x <= uppers[k]`` ((k, in) each): each neuron's
        largest value ``max_k W+ uppers[k] + W- lowers[k] + b`` (exact up to float64 rounding) and the size of
        the terms summed, ``|W| xmag + |b|`` with ``xmag`` the largest |x| per input over the boxes; both (out,)."""
        positive, negative = np.maximum(self.weight, 0.0), np.minimum(self.weight, 0.0)
        largest = np.max(uppers @ positive.T + lowers @ negative.T, axis=0)
        xmag = np.max(np.maximum(np.abs(lowers), np.abs(uppers)), axis=0)
        return largest + self.bias, np.abs(self.weight) @ xmag + np.abs(self.bias)


@dataclass(frozen=True)
class Network:
    """A ReLU MLP: ``layers[:-1]`` are hidden (ReLU after each), ``layers[-1]`` is the affine output.

    ``dtype`` is the dtype the weights had when loaded (``"float32"``, ``"float64"``, ...); all
    computation here is float64 and saving converts back to it. A network may have zero hidden layers
    only as the result of compression (the loaders refuse such inputs).
    """

    layers: tuple[AffineLayer, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ValueError("a network needs at least one affine layer")
        for index, (before, after) in enumerate(zip(self.layers, self.layers[1:])):
            if after.in_features != before.out_features:
                raise ValueError(
                    f"layer {index + 1} expects {after.in_features} inputs but layer {index} gives "
                    f"{before.out_features}"
                )
            if after.conv is not None and (
                before.conv is None or before.conv.out_channels != after.conv.in_channels
                or (before.conv.out_height, before.conv.out_width) != (after.conv.in_height, after.conv.in_width)
            ):
                raise ValueError(f"convolution layer {index + 1} does not take the C×H×W output of a convolution")

    @classmethod
    def from_arrays(cls, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], dtype: str = "float32") -> "Network":
        return cls(tuple(AffineLayer(w, b) for w, b in zip(weights, biases, strict=True)), dtype=dtype)

    @property
    def is_convolutional(self) -> bool:
        return any(layer.conv is not None for layer in self.layers)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) when the first layer is a convolution, else (input_dim,)."""
        conv = self.layers[0].conv
        return (conv.in_channels, conv.in_height, conv.in_width) if conv is not None else (self.input_dim,)

    @property
    def hidden(self) -> tuple[AffineLayer, ...]:
        return self.layers[:-1]

    @property
    def input_dim(self) -> int:
        return self.layers[0].in_features

    @property
    def output_dim(self) -> int:
        return self.layers[-1].out_features

    def without_first_neurons(self, keep: np.ndarray) -> "Network":
        """The network on the first-layer neurons ``keep`` (indices or mask) only: their rows of the first layer,
        their columns of the second; the rest as they are. Plain affine layers (a convolution's shape does not
        survive dropping positions). It computes the same function where the dropped neurons are <= 0."""
        first, second = self.layers[0], self.layers[1]
        return Network((AffineLayer(first.weight[keep], first.bias[keep]),
                        AffineLayer(second.weight[:, keep], second.bias),
                        *(AffineLayer(layer.weight, layer.bias) for layer in self.layers[2:])), dtype=self.dtype)

    @property
    def hidden_widths(self) -> list[int]:
        return [layer.out_features for layer in self.hidden]

    @property
    def n_neurons(self) -> int:
        return sum(self.hidden_widths)

    @property
    def n_params(self) -> int:
        return sum(layer.n_params for layer in self.layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Outputs for inputs ``x`` of shape (n, input_dim) or (input_dim,), in float64."""
        h = np.asarray(x, dtype=np.float64)
        for layer in self.hidden:
            h = np.maximum(layer(h), 0.0)
        return self.layers[-1](h)

    def preactivations(self, x: np.ndarray) -> list[np.ndarray]:
        """Hidden pre-activations ``g^l`` for a batch ``x`` (n, input_dim): one (n, width_l) array per hidden layer."""
        h = np.atleast_2d(np.asarray(x, dtype=np.float64))
        out = []
        for layer in self.hidden:
            g = layer(h)
            out.append(g)
            h = np.maximum(g, 0.0)
        return out
