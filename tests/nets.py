"""Small deterministic networks for tests (plain numpy, no training)."""

from __future__ import annotations

import numpy as np

from exactcompress.engine.network import Network


def random_net(seed: int, input_dim: int, hidden: list[int], output_dim: int = 2, bias_shift: float = 0.0) -> Network:
    """Gaussian weights scaled by 1/sqrt(fan_in); biases uniform in ±1 plus ``bias_shift`` on a third of the
    neurons of every hidden layer (pushes some of them towards stability)."""
    rng = np.random.default_rng(seed)
    sizes = [input_dim, *hidden, output_dim]
    weights, biases = [], []
    for index, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        weights.append(rng.normal(size=(fan_out, fan_in)) / np.sqrt(fan_in))
        bias = rng.uniform(-1, 1, size=fan_out)
        if index < len(hidden) and bias_shift:
            shifted = rng.choice(fan_out, size=max(1, fan_out // 3), replace=False)
            bias[shifted] += rng.choice([-bias_shift, bias_shift], size=shifted.size)
        biases.append(bias)
    return Network.from_arrays(weights, biases, dtype="float64")


def grid_extremes(network: Network, lower: float, upper: float, steps: int = 401) -> list[tuple[np.ndarray, np.ndarray]]:
    """(max, min) of every hidden pre-activation over a dense grid of a 2-D box."""
    axis = np.linspace(lower, upper, steps)
    grid = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    return [(g.max(axis=0), g.min(axis=0)) for g in network.preactivations(grid)]
