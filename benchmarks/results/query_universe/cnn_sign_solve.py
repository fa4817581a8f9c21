"""Per-neuron SCIP sign solves ("can g be positive?") on the open dense-layer questions of
c64-8s1-16s2-d64-gl1_0, each capped at SECONDS, from the bounds after bounds and witnesses.

    python benchmarks/results/query_universe/cnn_sign_solve.py SECONDS NEURON [NEURON ...]   (from the repository root)
"""

import sys
import time
from pathlib import Path

import numpy as np

from exactcompress.engine import analyze
from exactcompress.engine.progress import ignore
from exactcompress.engine.prove.per_neuron import solve_layer
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box

LAYER = 2
limit, neurons = float(sys.argv[1]), [int(x) for x in sys.argv[2:]]
network, _ = load_network(Path("out/bench_zoo_cnn/c64-8s1-16s2-d64-gl1_0.pt"))
box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
state = analyze._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0), ignore)
for neuron in neurons:
    ask = np.zeros(network.hidden_widths[LAYER], bool)
    ask[neuron] = True
    start = time.monotonic()
    solved = solve_layer(network, box, state.bounds, LAYER, ask_max=ask, ask_min=np.zeros_like(ask), mode="sign",
                         solve_limit=limit)
    print(neuron, "proved" if solved.proved_inactive[neuron] else "open", f"upper {solved.upper[neuron]:.3f}",
          f"{time.monotonic() - start:.1f} s", flush=True)
