"""A hand-built CNN whose channel states are known, shared by the engine and CLI tests."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

IN = (1, 4, 4)


def known_cnn() -> nn.Sequential:
    """conv1 (3x3, padding 1) on a 1x4x4 input in [0, 1]:
    - channel 0: all-one kernel, bias -4.5: a corner output sees 4 inputs (max 4 < 4.5, stably inactive),
      an edge 6 and an inner one 9 (both signs occur): mixed, 4 positions inactive, 12 unstable;
    - channel 1: all-negative kernel, bias -0.1: inactive at every position (removable);
    - channel 2: all-positive kernel, bias +0.1: active at every position (kept, not folded).
    conv2 (2x2, stride 2) sums its input channels; then Flatten, Linear 8 → 3, ReLU, Linear 3 → 2.
    """
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 2, 2, stride=2), nn.ReLU(),
                           nn.Flatten(), nn.Linear(8, 3), nn.ReLU(), nn.Linear(3, 2)).double().eval()
    with torch.no_grad():
        conv1 = module[0]
        conv1.weight[0] = 1.0
        conv1.bias[0] = -4.5
        conv1.weight[1] = -torch.rand(1, 3, 3, dtype=torch.float64) - 0.1
        conv1.bias[1] = -0.1
        conv1.weight[2] = torch.rand(1, 3, 3, dtype=torch.float64) + 0.1
        conv1.bias[2] = 0.1
        module[2].weight.copy_(torch.randn(2, 3, 2, 2, dtype=torch.float64))
    return module


def box_inputs(n: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(0, 1, size=(n, *IN)))
