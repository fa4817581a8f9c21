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


def term_signs(layer: AffineLayer, box: Box, dead_inputs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Masks (out,) of the neurons of ``g = W h + b`` with every term and ``b`` <= 0 (``g <= 0`` everywhere) and
    with every term and ``b`` >= 0 (``g >= 0`` everywhere); a neuron with ``g = 0`` everywhere is in both.

    ``dead_inputs`` None: the first layer, ``h = x`` in ``box`` (a coordinate of sign fixed by the box). Otherwise
    ``h = relu(g_prev)`` >= 0, and exactly 0 where ``dead_inputs`` (in,) marks a neuron proven stably inactive. A
    term counts as <= 0 (>= 0) when its weight is 0, its input is exactly 0, or the signs of both make it so."""
    if dead_inputs is None:
        nonnegative_input, nonpositive_input = box.lower >= 0, box.upper <= 0
    else:
        nonnegative_input, nonpositive_input = np.ones(dead_inputs.shape, dtype=bool), dead_inputs
    weight = layer.weight
    # weight (out, in) against the input signs (in,): broadcast per row
    zero_term = (weight == 0) | (nonnegative_input & nonpositive_input)
    term_nonpositive = zero_term | ((weight < 0) & nonnegative_input) | ((weight > 0) & nonpositive_input)
    term_nonnegative = zero_term | ((weight > 0) & nonnegative_input) | ((weight < 0) & nonpositive_input)
    bias = layer.bias
    return (bias <= 0) & term_nonpositive.all(axis=1), (bias >= 0) & term_nonnegative.all(axis=1)
