"""The spare thread's free sign solve of one question, from the bounds `auto` has after branch and bound's 2 s
sweep (as the thread gets them: ``state.bounds``, the layers below the question); also the mean widths of those
layers and the solve's seconds and outcome.  Run from a source tree (cwd) to measure that tree's engine.

    python benchmarks/results/truncated_batch/free_solve_after_sweep.py MODEL.pt LAYER(1-based) NEURON LIMIT
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from exactcompress.allocator import tune_allocator
from exactcompress.engine import analyze as auto
from exactcompress.engine.progress import ignore
from exactcompress.engine.prove.per_neuron import solve_layer
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box


def main() -> None:
    tune_allocator()
    torch.set_num_threads(1)
    network, _ = load_network(sys.argv[1])
    layer, neuron, limit = int(sys.argv[2]) - 1, int(sys.argv[3]), float(sys.argv[4])
    box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
    state = auto._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0), ignore)
    auto._bab(network, box, state, None, auto.Fanout(device="cpu"), ignore, auto.BAB_SWEEP_LIMIT)
    ask = np.zeros(network.hidden_widths[layer], bool)
    ask[neuron] = True
    solved = solve_layer(network, box, list(state.bounds)[:layer], layer, ask_max=ask, ask_min=np.zeros_like(ask),
                         mode="sign", deadline=None, solve_limit=limit)
    widths = [round(float(np.mean(b.upper - b.lower)), 3) for b in state.bounds[:layer]]
    print(json.dumps({"open_after_sweep": auto._count_open(state), "widths_below": widths,
                      "answer": auto._answer(network, layer, neuron, 1, solved), "seconds": round(solved.seconds, 1)}),
          flush=True)


if __name__ == "__main__":
    main()
