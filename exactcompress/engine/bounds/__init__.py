"""Bounds on every hidden pre-activation over a box: interval arithmetic and symbolic back-substitution.

``propagate`` computes both, layer by layer, and keeps the tighter bound per neuron; each layer's
relaxations use the (tightest) bounds already found for the layers below it. ``term_signs`` gives the signs
that hold exactly, without a rounding guard (a pre-activation all of whose terms have one sign).
"""

from __future__ import annotations

from typing import Sequence

from ..domain import Box
from ..network import Network
from .concretise import concretise
from .interval import interval_layer
from .symbolic import relu_relaxation, symbolic_layer
from .term_signs import term_signs
from .types import LayerBounds


def layer_bounds(network: Network, box: Box, below: Sequence[LayerBounds], index: int) -> LayerBounds:
    """The tighter of interval and symbolic bounds on hidden layer ``index``'s pre-activation (width,).

    ``below[j]`` (j < index) are the bounds already fixed for the layers under it. Every bound is
    widened outward by ``tolerances.ROUNDING_WIDENING * (1 + |bound| + magnitude)`` against float64 rounding
    (see ``concretise.concretise``).
    """
    previous = below[index - 1] if index > 0 else None
    interval = interval_layer(network.layers[index], previous, box)
    if index == 0:
        return interval
    return interval.intersect(symbolic_layer(network, box, below, index))


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
    "concretise",
    "interval_layer",
    "layer_bounds",
    "propagate",
    "relu_relaxation",
    "symbolic_layer",
    "term_signs",
]
