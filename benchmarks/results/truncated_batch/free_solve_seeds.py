"""How much the spare thread's free sign solve of one question varies with SCIP's random seed alone: the bounds
after branch and bound's 2 s sweep (as ``free_solve_after_sweep.py``), then the same solve once per value of
``randomization/randomseedshift`` (SCIP's default is 0), each capped at LIMIT seconds.

    python benchmarks/results/truncated_batch/free_solve_seeds.py MODEL.pt LAYER(1-based) NEURON LIMIT SEEDS
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from exactcompress.allocator import tune_allocator
from exactcompress.engine import analyze as auto
from exactcompress.engine.progress import ignore
from exactcompress.engine.prove import per_neuron
from exactcompress.engine.prove.per_neuron import solve_layer
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box


def main() -> None:
    tune_allocator()
    torch.set_num_threads(1)
    network, _ = load_network(sys.argv[1])
    layer, neuron, limit, seeds = int(sys.argv[2]) - 1, int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
    state = auto._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0), ignore)
    auto._bab(network, box, state, None, auto.Fanout(device="cpu"), ignore, auto.BAB_SWEEP_LIMIT)
    ask = np.zeros(network.hidden_widths[layer], bool)
    ask[neuron] = True
    run = per_neuron._run
    for seed in range(seeds):
        def seeded(layer_model, *args, seed=seed, **kwargs):
            layer_model.model.setParam("randomization/randomseedshift", seed)
            return run(layer_model, *args, **kwargs)
        per_neuron._run = seeded
        solved = solve_layer(network, box, list(state.bounds)[:layer], layer, ask_max=ask,
                             ask_min=np.zeros_like(ask), mode="sign", deadline=None, solve_limit=limit)
        print(json.dumps({"seed_shift": seed, "answer": auto._answer(network, layer, neuron, 1, solved),
                          "seconds": round(solved.seconds, 1)}), flush=True)


if __name__ == "__main__":
    main()
