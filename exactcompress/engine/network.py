"""Immutable network IR: a chain of affine layers in float64 with ReLU between them.

A network with layers ``A_1 .. A_{L+1}`` computes ``g^l = W^l h^{l-1} + b^l``, ``h^l = relu(g^l)``
for the hidden layers ``l = 1..L`` and an affine output ``y = W^{L+1} h^L + b^{L+1}``.
Hidden layers are indexed from 0 in code and reports (``hidden[0]`` is ``l = 1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


def _frozen(array: np.ndarray) -> np.ndarray:
    out = np.array(array, dtype=np.float64, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class AffineLayer:
    """``x ↦ weight @ x + bias``; ``weight`` has shape (out, in), ``bias`` shape (out,), float64, read-only."""

    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _frozen(self.weight))
        object.__setattr__(self, "bias", _frozen(self.bias))
        if self.weight.ndim != 2 or self.bias.ndim != 1 or self.weight.shape[0] != self.bias.shape[0]:
            raise ValueError(f"affine layer shapes do not match: weight {self.weight.shape}, bias {self.bias.shape}")

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    @property
    def n_params(self) -> int:
        return self.weight.size + self.bias.size

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Apply to a batch ``x`` of shape (n, in); returns (n, out)."""
        return x @ self.weight.T + self.bias


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

    @classmethod
    def from_arrays(cls, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], dtype: str = "float32") -> "Network":
        return cls(tuple(AffineLayer(w, b) for w, b in zip(weights, biases, strict=True)), dtype=dtype)

    @property
    def hidden(self) -> tuple[AffineLayer, ...]:
        return self.layers[:-1]

    @property
    def input_dim(self) -> int:
        return self.layers[0].in_features

    @property
    def output_dim(self) -> int:
        return self.layers[-1].out_features

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
