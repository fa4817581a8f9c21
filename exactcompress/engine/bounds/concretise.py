"""Concretisation: the bounds of a linear function over a box, with the shared float64 rounding guard."""

from __future__ import annotations

import numpy as np

from ...tolerances import ROUNDING_WIDENING
from .types import LayerBounds


def concretise(coefficients: np.ndarray, offset: np.ndarray, lower: np.ndarray, upper: np.ndarray,
               formed: np.ndarray | float = 0.0) -> LayerBounds:
    """Bounds of ``coefficients @ v + offset`` over ``lower <= v <= upper``.

    ``coefficients`` (m, n), ``offset`` (m,), ``lower``/``upper`` (n,). Float64 rounding guard: each bound
    is widened outward by ``ROUNDING_WIDENING * (1 + |bound| + magnitude)``, where ``magnitude =
    |coefficients| @ max(|lower|, |upper|) + |offset| + formed`` bounds the size of the terms summed, so that the
    widening also covers rounding under cancellation (it is a guard, not rigorous outward rounding); ``formed``
    (m,) adds the size of the terms that formed the coefficients and the offset where they are themselves results
    of sums (back-substitution), whose cancellation the computed values no longer show.
    """
    positive = np.maximum(coefficients, 0.0)
    negative = np.minimum(coefficients, 0.0)
    low = positive @ lower + negative @ upper + offset
    high = positive @ upper + negative @ lower + offset
    magnitude = np.abs(coefficients) @ np.maximum(np.abs(lower), np.abs(upper)) + np.abs(offset) + formed
    return LayerBounds(
        lower=low - ROUNDING_WIDENING * (1.0 + np.abs(low) + magnitude),
        upper=high + ROUNDING_WIDENING * (1.0 + np.abs(high) + magnitude),
    )
