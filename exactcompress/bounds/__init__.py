"""Bounds on every hidden pre-activation over a box: interval arithmetic and symbolic back-substitution.

``propagate`` computes both, layer by layer, and keeps the tighter bound per neuron; each layer's
relaxations use the (tightest) bounds already found for the layers below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LayerBounds:
    """Valid bounds ``lower <= g_i(x) <= upper`` for all x in the box; arrays of shape (width,), float64."""

    lower: np.ndarray
    upper: np.ndarray


# Imported after ``LayerBounds``: both modules import it from this package.
from typing import Sequence  # noqa: E402

from ..domain import Box  # noqa: E402
from ..network import Network  # noqa: E402
from .interval import ROUNDING_WIDENING, concretise, interval_layer  # noqa: E402
from .symbolic import relu_relaxation, symbolic_layer  # noqa: E402


def tighter(first: LayerBounds, second: LayerBounds) -> LayerBounds:
    """Elementwise intersection of two valid bounds (max of lowers, min of uppers)."""
    return LayerBounds(np.maximum(first.lower, second.lower), np.minimum(first.upper, second.upper))


def layer_bounds(network: Network, box: Box, below: Sequence[LayerBounds], index: int) -> LayerBounds:
    """The tighter of interval and symbolic bounds on hidden layer ``index``'s pre-activation (width,).

    ``below[j]`` (j < index) are the bounds already fixed for the layers under it. Every bound is
    widened outward by ``ROUNDING_WIDENING * (1 + |bound| + magnitude)`` against float64 rounding
    (see ``interval.concretise``).
    """
    previous = below[index - 1] if index > 0 else None
    interval = interval_layer(network.layers[index], previous, box)
    if index == 0:
        return interval
    return tighter(interval, symbolic_layer(network, box, below, index))


def propagate(network: Network, box: Box, known: Sequence[LayerBounds] = ()) -> list[LayerBounds]:
    """Bounds on every hidden pre-activation over ``box``, one ``LayerBounds`` per hidden layer.

    Layers ``index < len(known)`` take ``known[index]`` as given (e.g. tighter MILP bounds); the others
    get ``layer_bounds`` computed from the bounds already fixed below them.
    """
    bounds: list[LayerBounds] = []
    for index in range(len(network.hidden)):
        if index < len(known):
            bounds.append(known[index])
        else:
            bounds.append(layer_bounds(network, box, bounds, index))
    return bounds


__all__ = [
    "LayerBounds",
    "ROUNDING_WIDENING",
    "concretise",
    "interval_layer",
    "layer_bounds",
    "propagate",
    "relu_relaxation",
    "symbolic_layer",
    "tighter",
]
