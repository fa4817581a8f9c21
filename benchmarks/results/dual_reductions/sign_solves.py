"""Per-neuron MILPs with and without SCIP's dual reductions, side by side in one process: every open question of
one layer (after bounds and witnesses) as a sign solve of at most CAP (20) s, one setting after the other,
repeated; seconds, nodes and verdicts.

    .venv/bin/python benchmarks/results/dual_reductions/sign_solves.py out/bench_zoo/NET.pt LAYER [MODE] [REPEATS] [CAP]

MODE ``optimize``: the per-neuron baseline's two MILPs for every neuron of the layer instead. CAP: seconds per solve.
"""

import sys
import time

import numpy as np

from exactcompress.engine import analyze as analyze_mod
from exactcompress.engine.domain import Box
from exactcompress.engine.prove import encoding, per_neuron
from exactcompress.pipeline import _loaded

path, layer = sys.argv[1], int(sys.argv[2])
mode = sys.argv[3] if len(sys.argv) > 3 else "sign"
repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 2
network, _ = _loaded(path)
box = Box(np.zeros(network.input_dim), np.ones(network.input_dim))
state = analyze_mod._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0), lambda *a, **k: None)
bounds = analyze_mod._settled_bounds(state)
ask_max, ask_min = analyze_mod._open_questions(state, layer)
if mode == "optimize":  # the per-neuron baseline asks both extremes of every neuron
    ask_max = ask_min = np.ones(network.hidden_widths[layer], dtype=bool)
print(f"{path}: layer {layer}, {int(ask_max.sum())} + {int(ask_min.sum())} open questions, mode {mode}", flush=True)
engine_model = encoding.new_model
SOLVE_LIMIT = float(sys.argv[5]) if len(sys.argv) > 5 else 20.0  # seconds per solve (a capped one proves nothing)


def with_dual_reductions(name):
    model = engine_model(name)
    model.setParam("misc/allowstrongdualreds", True)
    model.setParam("misc/allowweakdualreds", True)
    return model


for repeat in range(repeats):
    for label, factory in (("without dual reductions (engine)", engine_model),
                           ("with dual reductions (before)", with_dual_reductions)):
        encoding.new_model = factory
        start = time.monotonic()
        solved = per_neuron.solve_layer(network, box, bounds, layer, ask_max=ask_max, ask_min=ask_min, mode=mode,
                                        deadline=None, workers=1, solve_limit=SOLVE_LIMIT)
        seconds = time.monotonic() - start
        print(f"  {label:34s} {seconds:7.2f} s, {solved.solves} solves, {solved.nodes} nodes, "
              f"{int(solved.proved_inactive.sum())} inactive / {int(solved.proved_active.sum())} active proved",
              flush=True)
