"""Interval arithmetic bounds on one affine layer."""

from __future__ import annotations

import numpy as np

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
        lower, upper = np.maximum(previous.lower, 0.0), np.maximum(previous.upper, 0.0)
    return concretise(layer.weight, layer.bias, lower, upper)
