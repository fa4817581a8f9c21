"""Structured pruning as a user would bring it: the bench zoo's nets with their smallest rows zeroed (weights and
bias), written as state dicts beside the originals.

    .venv/bin/python benchmarks/results/pruned_neurons/make_pruned.py out/bench_zoo out/pruned_zoo
"""

import sys
from pathlib import Path

import torch

NETS = ("d64-2x100-l1_0", "d64-2x100-l1_1e-4", "d784-2x400-l1_1e-4", "d64-3x100-l1_1e-3")
SHARE = 0.3  # of each hidden layer's rows, those with the smallest L1 norm

source, target = Path(sys.argv[1]), Path(sys.argv[2])
target.mkdir(parents=True, exist_ok=True)
for name in NETS:
    state = torch.load(source / f"{name}.pt", weights_only=True)
    weights = sorted(key for key in state if key.endswith(".weight"))
    weights.sort(key=lambda key: int(key.split(".")[0]))
    for key in weights[:-1]:  # the hidden layers
        rows = state[key].abs().sum(dim=1)
        pruned = rows.argsort()[: int(SHARE * rows.numel())]
        state[key][pruned] = 0.0
        state[key.replace(".weight", ".bias")][pruned] = 0.0
    torch.save(state, target / f"{name}-pruned.pt")
    print(target / f"{name}-pruned.pt")
