"""Does where a stop falls decide how long a resumed search takes?  One question of d3072-5x100-l1_1e-4 (fourth
hidden layer, neuron 1, "can it be active?"), from the witness stage's bounds: a search stopped after S seconds
(S from the command line), then resumed for up to 60 s; and one search without a stop. One thread.

    python benchmarks/results/truncated_batch/stop_point.py out/bench_zoo/d3072-5x100-l1_1e-4.pt 1.0 1.5 2.0 ...
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from exactcompress.allocator import tune_allocator
from exactcompress.engine import analyze as auto
from exactcompress.engine.progress import ignore
from exactcompress.engine.prove import bab
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box
from exactcompress.tolerances import BOUND_MARGIN, WITNESS_MARGIN

LAYER, NEURON, SIGN, LIMIT = 3, 1, 1, 60.0


def main() -> None:
    tune_allocator()
    torch.set_num_threads(1)
    network, _ = load_network(sys.argv[1])
    box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
    state = auto._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0), ignore)
    weights = [hidden.weight for hidden in network.hidden[: LAYER + 1]]
    biases = [hidden.bias for hidden in network.hidden[: LAYER + 1]]
    below = [(b.lower, b.upper) for b in state.bounds[:LAYER]]

    def ask(limit):
        return bab.prove_sign(weights, biases, box.lower, box.upper, below, LAYER, NEURON, SIGN, margin=BOUND_MARGIN,
                              witness_margin=WITNESS_MARGIN, deadline=time.monotonic() + limit, seed=NEURON)

    result = ask(LIMIT)
    print(f"no stop: {result.status}, {result.domains} domains, {result.seconds:.1f} s", flush=True)
    for stop_after in map(float, sys.argv[2:]):
        first = ask(stop_after)
        line = f"stopped at {stop_after:.1f} s: {first.status} after {first.domains} domains, {first.seconds:.1f} s"
        if first.suspended is not None:
            resumed = bab.resume_sign(first.suspended, deadline=time.monotonic() + LIMIT)
            line += f"; resumed: {resumed.status}, {resumed.domains} domains, {resumed.seconds:.1f} s"
        print(line, flush=True)


if __name__ == "__main__":
    main()
