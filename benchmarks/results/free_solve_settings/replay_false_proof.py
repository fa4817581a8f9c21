"""Replays the spare thread's first sign solve of d784-2x400-l1_1e-5's question "can layer 2 neuron 61 be
active?" from the bounds of a sweep after which SCIP, with more root cuts kept, reported it impossible
(``false_proof_bounds.npz``, saved by a run on a loaded machine: the sweep's bounds depend on its timing). SCIP is
deterministic from fixed bounds and seed, so each line is reproducible. Prints per solve SCIP's status and
dual bound (a proof shows as ``dual -1e-06``: the hypothesis ``g >= -1e-6`` found infeasible), the verdict, and
the float64 value of g at each point SCIP returned; last, the size of the neuron's row.

    python benchmarks/results/free_solve_settings/replay_false_proof.py out/bench_zoo/d784-2x400-l1_1e-5.pt \
        VARIANT FIRST:STOP

Outputs: ``replay_*.log`` here at ``e90767c`` (MILP margin 1e-6); ``../milp_margin/replay_relative_*.log`` with the
margin scaled to the row (the solves, hypothesis row included, follow the engine's margin).

VARIANT: ``default``, ``selection`` (the cut selection of aggressive) or ``aggressive``, optionally followed by
``+PARAM=VALUE`` terms (e.g. ``selection+conflict/enable=0``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from pyscipopt import SCIP_PARAMSETTING

from exactcompress.engine import analyze as auto
from exactcompress.engine.bounds import LayerBounds
from exactcompress.engine.prove import per_neuron
from exactcompress.engine.prove.per_neuron import solve_layer
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box

LAYER, NEURON = 1, 61


def main() -> None:
    network, _ = load_network(sys.argv[1])
    box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
    saved = np.load(Path(__file__).parent / "false_proof_bounds.npz")
    bounds = [LayerBounds(saved[f"lower{k}"], saved[f"upper{k}"]) for k in range(2)]
    variant, *extra = sys.argv[2].split("+")
    first, _, stop = sys.argv[3].rpartition(":")
    run = per_neuron._run
    for seed in range(int(first or 0), int(stop)):
        def configured(layer_model, *args, seed=seed, **kwargs):
            model = layer_model.model
            if variant == "selection":
                model.setParams({"cutselection/hybrid/minorthoroot": 0.1, "separating/maxcutsroot": 5000,
                                 "separating/maxaddrounds": 5, "separating/maxroundsrootsubrun": 5})
            elif variant == "aggressive":
                model.setSeparating(SCIP_PARAMSETTING.AGGRESSIVE)
            for term in extra:
                key, value = term.split("=")
                current = model.getParam(key)
                model.setParam(key, value == "1" if isinstance(current, bool) else type(current)(value))
            model.setParam("randomization/randomseedshift", seed)
            result = run(layer_model, *args, **kwargs)
            print(f"   status {result[0]} dual {result[1]} nodes {result[3]}", flush=True)
            return result
        per_neuron._run = configured
        ask = np.zeros(network.hidden_widths[LAYER], bool)
        ask[NEURON] = True
        solved = solve_layer(network, box, bounds, LAYER, ask_max=ask, ask_min=np.zeros_like(ask), mode="sign",
                             deadline=None, solve_limit=20)
        print(sys.argv[2], seed, auto._answer(network, LAYER, NEURON, 1, solved), round(solved.seconds, 1), flush=True)
        for g in network.preactivations(solved.candidates)[LAYER] if len(solved.candidates) else []:
            print("   float64 g at SCIP's point", g[NEURON])
    inputs = bounds[0].after_relu()
    weights = network.hidden[1].weight[NEURON]
    largest = np.maximum(np.abs(inputs.lower), np.abs(inputs.upper))
    size = abs(network.hidden[1].bias[NEURON]) + np.abs(weights) @ largest
    print(f"size of the row, |b| + sum |w| max |h|: {size:.2f}")


if __name__ == "__main__":
    main()
