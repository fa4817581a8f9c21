"""Interval arithmetic bounds on one affine layer, and the shared rounding guard."""

from __future__ import annotations

import numpy as np

from ..domain import Box
from ..network import AffineLayer
from . import LayerBounds

#: relative outward widening applied to every computed bound (see ``concretise``)
ROUNDING_WIDENING = 1e-12


def concretise(coefficients: np.ndarray, offset: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> LayerBounds:
    """Bounds of ``coefficients @ v + offset`` over ``lower <= v <= upper``.

    ``coefficients`` (m, n), ``offset`` (m,), ``lower``/``upper`` (n,). Float64 rounding guard: each bound
    is widened outward by ``ROUNDING_WIDENING * (1 + |bound| + magnitude)``, where ``magnitude =
    |coefficients| @ max(|lower|, |upper|) + |offset|`` bounds the size of the terms summed, so that the
    widening also covers rounding under cancellation (it is a guard, not rigorous outward rounding).
    """
    positive = np.maximum(coefficients, 0.0)
    negative = np.minimum(coefficients, 0.0)
    low = positive @ lower + negative @ upper + offset
    high = positive @ upper + negative @ lower + offset
    magnitude = np.abs(coefficients) @ np.maximum(np.abs(lower), np.abs(upper)) + np.abs(offset)
    return LayerBounds(
        lower=low - ROUNDING_WIDENING * (1.0 + np.abs(low) + magnitude),
        upper=high + ROUNDING_WIDENING * (1.0 + np.abs(high) + magnitude),
    )


def interval_layer(layer: AffineLayer, previous: LayerBounds | None, box: Box) -> LayerBounds:
    """Interval bounds on ``g = W h + b`` (shape (out,)), with ``h = relu(g_prev)`` for ``g_prev`` within
    ``previous`` or, when ``previous`` is None, ``h = x`` in ``box``. Widened as in ``concretise``."""
    if previous is None:
        lower, upper = box.lower, box.upper
    else:
        lower, upper = np.maximum(previous.lower, 0.0), np.maximum(previous.upper, 0.0)
    return concretise(layer.weight, layer.bias, lower, upper)
