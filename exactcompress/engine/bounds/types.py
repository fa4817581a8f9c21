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
