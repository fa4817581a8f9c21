"""Symbolic (CROWN/DeepPoly-style) bounds by back-substituting linear relaxations down to the input."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..domain import Box
from ..network import Network
from .concretise import concretise
from .types import LayerBounds


def relu_relaxation(bounds: LayerBounds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear relaxation ``lower_slope * g <= relu(g) <= upper_slope * g + upper_intercept`` on [L, U].

    Returns ``(upper_slope, upper_intercept, lower_slope)``, each (width,): stably inactive (U <= 0) →
    0 / 0 / 0; stably active (L >= 0) → 1 / 0 / 1; unstable → the line through (L, 0), (U, U) above and
    CROWN's adaptive lower slope (1 if U > -L, else 0).
    """
    lower, upper = bounds.lower, bounds.upper
    inactive = upper <= 0.0
    active = (lower >= 0.0) & ~inactive
    unstable = ~inactive & ~active
    span = np.where(unstable, upper - lower, 1.0)
    upper_slope = np.where(active, 1.0, np.where(unstable, upper / span, 0.0))
    upper_intercept = np.where(unstable, -upper_slope * lower, 0.0)
    lower_slope = np.where(active | (unstable & (upper > -lower)), 1.0, 0.0)
    return upper_slope, upper_intercept, lower_slope


def symbolic_layer(network: Network, box: Box, below: Sequence[LayerBounds], index: int) -> LayerBounds:
    """Bounds on the pre-activation of ``network.layers[index]`` (shape (width,)) over ``box``.

    ``below[j]`` (j < index) are valid bounds on the hidden pre-activations ``g^j``; they fix the ReLU
    relaxations. Linear upper and lower bounds on ``g^index`` as functions of ``g^j`` are pushed down
    layer by layer to the input and concretised over the box (matrix products only, no per-neuron loops).
    For ``index == 0`` this equals ``interval_layer``. Widened for rounding as in ``concretise``.
    """
    layer = network.layers[index]
    upper_coef, upper_const = layer.weight, layer.bias.copy()
    lower_coef, lower_const = layer.weight, layer.bias.copy()
    # the size of the terms that formed the coefficients and constants (for the rounding guard): each product
    # ``on_g @ weight`` is off by at most n u |on_g| |weight| entry-wise, which moves the bound by that times
    # max |input of layer j| at most, however much the computed coefficients cancelled
    upper_formed = lower_formed = np.zeros(layer.out_features)
    for j in range(index - 1, -1, -1):
        upper_slope, upper_intercept, lower_slope = relu_relaxation(below[j])
        # upper bound: positive coefficients take the upper line, negative ones the lower line
        up_pos, up_neg = np.maximum(upper_coef, 0.0), np.minimum(upper_coef, 0.0)
        upper_const = upper_const + up_pos @ upper_intercept
        upper_on_g = up_pos * upper_slope + up_neg * lower_slope
        # lower bound: positive coefficients take the lower line, negative ones the upper line
        low_pos, low_neg = np.maximum(lower_coef, 0.0), np.minimum(lower_coef, 0.0)
        lower_const = lower_const + low_neg @ upper_intercept
        lower_on_g = low_pos * lower_slope + low_neg * upper_slope
        weight, bias = network.layers[j].weight, network.layers[j].bias
        reach = np.abs(weight) @ (np.maximum(below[j - 1].upper, 0.0) if j else
                                  np.maximum(np.abs(box.lower), np.abs(box.upper))) + np.abs(bias)
        upper_formed = upper_formed + up_pos @ upper_intercept + np.abs(upper_on_g) @ reach
        lower_formed = lower_formed - low_neg @ upper_intercept + np.abs(lower_on_g) @ reach
        upper_coef, upper_const = upper_on_g @ weight, upper_const + upper_on_g @ bias
        lower_coef, lower_const = lower_on_g @ weight, lower_const + lower_on_g @ bias
    upper = concretise(upper_coef, upper_const, box.lower, box.upper, upper_formed).upper
    lower = concretise(lower_coef, lower_const, box.lower, box.upper, lower_formed).lower
    return LayerBounds(lower=lower, upper=upper)
