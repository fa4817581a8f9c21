"""Interval arithmetic bounds on one affine layer."""

from __future__ import annotations

from ..domain import Box
from ..network import AffineLayer
from .concretise import concretise
from .types import LayerBounds


def interval_layer(layer: AffineLayer, previous: LayerBounds | None, box: Box) -> LayerBounds:
    """Interval bounds on ``g = W h + b`` (shape (out,)), with ``h = relu(g_prev)`` for ``g_prev`` within
    ``previous`` or, when ``previous`` is None, ``h = x`` in ``box``. Widened as in ``concretise``."""
    if previous is None:
        lower, upper = box.lower, box.upper
    else:
        relu = previous.after_relu()
        lower, upper = relu.lower, relu.upper
    return concretise(layer.weight, layer.bias, lower, upper)
