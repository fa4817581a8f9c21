"""Whether a SCIP setting makes the spare thread's free sign solve of one question less dependent on SCIP's random
seed: the bounds after branch and bound's 2 s sweep (as ``truncated_batch/free_solve_seeds.py``), then the same
solve once per seed shift 0 .. SEEDS-1 under each named setting, each capped at LIMIT seconds.

    python benchmarks/results/free_solve_settings/free_solve_settings.py MODEL.pt LAYER(1-based) NEURON LIMIT SEEDS \
        [--with-bound] SETTING [SETTING ...]

``--with-bound``: the spare thread's first solve instead, with the bound the sweep left on the neuron's own layer.
SEEDS: a count N (seed shifts 0 .. N-1) or a range FIRST:STOP.

Settings (each also as SETTING-no-ideal-cuts): default, heuristics_off, no_restarts, separating_aggressive,
optimality, heuristics_off_no_restarts, root_cut_selection.
One JSON line per solve: setting, seed shift, answer, seconds, nodes.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
from pyscipopt import SCIP_PARAMEMPHASIS, SCIP_PARAMSETTING

from exactcompress.allocator import tune_allocator
from exactcompress.engine import analyze as auto
from exactcompress.engine.progress import ignore
from exactcompress.engine.prove import per_neuron
from exactcompress.engine.prove.per_neuron import solve_layer
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box

SETTINGS = {
    "default": lambda model: None,
    "heuristics_off": lambda model: model.setHeuristics(SCIP_PARAMSETTING.OFF),
    "no_restarts": lambda model: model.setParam("presolving/maxrestarts", 0),
    "separating_aggressive": lambda model: model.setSeparating(SCIP_PARAMSETTING.AGGRESSIVE),
    "optimality": lambda model: model.setEmphasis(SCIP_PARAMEMPHASIS.OPTIMALITY),
    "heuristics_off_no_restarts": lambda model: (model.setHeuristics(SCIP_PARAMSETTING.OFF),
                                                 model.setParam("presolving/maxrestarts", 0)),
    # the part of *aggressive* that is not about SCIP's own separators: more cuts kept at the root, nearly
    # parallel ones included (the ideal ReLU cuts of one neuron are), more rounds
    "root_cut_selection": lambda model: model.setParams({"cutselection/hybrid/minorthoroot": 0.1,
                                                         "separating/maxcutsroot": 5000,
                                                         "separating/maxaddrounds": 5,
                                                         "separating/maxroundsrootsubrun": 5}),
}


def main() -> None:
    tune_allocator()
    torch.set_num_threads(1)
    network, _ = load_network(sys.argv[1])
    layer, neuron, limit = int(sys.argv[2]) - 1, int(sys.argv[3]), float(sys.argv[4])
    first, _, stop = sys.argv[5].rpartition(":")
    seeds = range(int(first or 0), int(stop))
    box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
    state = auto._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0), ignore)
    auto._bab(network, box, state, None, auto.Fanout(device="cpu"), ignore, auto.BAB_SWEEP_LIMIT)
    ask = np.zeros(network.hidden_widths[layer], bool)
    ask[neuron] = True
    run = per_neuron._run
    settings = sys.argv[6:]
    given = list(state.bounds)[:layer]
    if settings[0] == "--with-bound":
        settings, given = settings[1:], list(state.bounds)
    build = per_neuron.build_layer_model
    for name in settings:
        # "SETTING-no-ideal-cuts": the same setting on the model without the ideal ReLU cuts of ``prove/cuts.py``
        setting, no_ideal_cuts, _ = name.partition("-no-ideal-cuts")
        per_neuron.build_layer_model = (build if not no_ideal_cuts
                                        else lambda *args, **kwargs: build(*args, **{**kwargs, "ideal_cuts": False}))
        for seed in seeds:
            nodes = []

            def configured(layer_model, *args, seed=seed, setting=setting, **kwargs):
                model = layer_model.model  # built anew by each solve_layer call, with the engine's settings
                SETTINGS[setting](model)
                model.setParam("randomization/randomseedshift", seed)
                result = run(layer_model, *args, **kwargs)
                nodes.append(result[3])
                return result
            per_neuron._run = configured
            solved = solve_layer(network, box, given, layer, ask_max=ask,
                                 ask_min=np.zeros_like(ask), mode="sign", deadline=None, solve_limit=limit)
            print(json.dumps({"setting": name, "seed_shift": seed,
                              "answer": auto._answer(network, layer, neuron, 1, solved),
                              "seconds": round(solved.seconds, 1), "nodes": nodes}), flush=True)


if __name__ == "__main__":
    main()
