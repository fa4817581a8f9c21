"""The bound type every bound method returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LayerBounds:
    """Valid bounds ``lower <= g_i(x) <= upper`` for all x in the box; arrays of shape (width,), float64."""

    lower: np.ndarray
    upper: np.ndarray

    def intersect(self, other: "LayerBounds") -> "LayerBounds":
        """Elementwise intersection of two valid bounds (max of lowers, min of uppers)."""
        return LayerBounds(np.maximum(self.lower, other.lower), np.minimum(self.upper, other.upper))

    def after_relu(self) -> "LayerBounds":
        """Bounds of ``relu(g)``: ``[max(L, 0), max(U, 0)]``."""
        return LayerBounds(np.maximum(self.lower, 0.0), np.maximum(self.upper, 0.0))

    def settled(self, inactive: np.ndarray, active: np.ndarray) -> "LayerBounds":
        """These bounds with proven states applied: ``U <= 0`` where ``inactive``, ``L >= 0`` where ``active``
        (valid when both masks (width,) hold proofs)."""
        return LayerBounds(np.where(active, np.maximum(self.lower, 0.0), self.lower),
                           np.where(inactive, np.minimum(self.upper, 0.0), self.upper))
