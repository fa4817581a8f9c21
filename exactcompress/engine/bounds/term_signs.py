"""Signs that hold exactly: a pre-activation all of whose terms have one sign.

A neuron whose weights are zero on every input that can be non-zero has ``g = b`` at every point, and one whose
terms ``W_ji h_i`` and bias are all <= 0 (>= 0) has ``g <= 0`` (``>= 0``) at every point. Both hold in float64
(in any IEEE precision, whatever the order of the sum or fused multiply-adds): a product of numbers of known signs
has that sign or is zero, and rounding a sum of terms of one sign keeps that sign. No margin is needed, so these
settle what a bound with a rounding guard cannot: a pruned neuron (zero row, zero bias) has the exact range
[0, 0], which the guarded bounds widen to ``[-1e-12, 1e-12]``, and ``-sum(h)`` over ReLU outputs reaches 0.
"""

from __future__ import annotations

import numpy as np

from ..domain import Box
from ..network import AffineLayer
from .types import LayerBounds


def term_signs(layer: AffineLayer, previous: LayerBounds | None, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """Masks (out,) of the neurons of ``g = W h + b`` with every term and ``b`` <= 0 (``g <= 0`` everywhere) and
    with every term and ``b`` >= 0 (``g >= 0`` everywhere); a neuron with ``g = 0`` everywhere is in both.

    ``h = relu(g_prev)`` with ``g_prev`` within the valid bounds ``previous`` (an input whose upper bound is <= 0
    is exactly 0), or ``h = x`` in ``box`` when ``previous`` is None. A term counts as <= 0 (>= 0) when its weight
    is 0, its input is exactly 0, or the weight's sign and the input's sign over the box make it so."""
    if previous is None:
        lower, upper = box.lower, box.upper
    else:
        relu = previous.after_relu()
        lower, upper = relu.lower, relu.upper
    nonnegative_input, nonpositive_input = lower >= 0, upper <= 0
    weight = layer.weight
    # weight (out, in) against the input signs (in,): broadcast per row
    zero_term = (weight == 0) | (nonnegative_input & nonpositive_input)
    term_nonpositive = zero_term | ((weight < 0) & nonnegative_input) | ((weight > 0) & nonpositive_input)
    term_nonnegative = zero_term | ((weight > 0) & nonnegative_input) | ((weight < 0) & nonpositive_input)
    bias = layer.bias
    return (bias <= 0) & term_nonpositive.all(axis=1), (bias >= 0) & term_nonnegative.all(axis=1)
