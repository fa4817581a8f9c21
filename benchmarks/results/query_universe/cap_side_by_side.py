"""Branch and bound on the open questions of one layer under several sizes of the query universe (the neurons
below the target whose bounds each domain tightens under the hypothesis; ``bab_batch.MAX_QUERY_NEURONS``).

    python benchmarks/results/query_universe/cap_side_by_side.py MODEL LAYER SECONDS [NEURONS] [CAPS]

e.g. ``... out/bench_zoo/d64-3x100-l1_0.pt 2 15 "" 256,96,48``: every open "can it be positive?" question of
hidden layer 2 (or the comma-separated NEURONS), SECONDS each, one cap after the other in this process (one
thread), as ``benchmarks/bab_questions.py`` asks them. Run from the repository root. The cap is set by
replacing the default of ``QueryUniverse.at_root``'s ``max_neurons`` (the engine passes none).
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, "benchmarks")
from bab_questions import ask, open_questions  # noqa: E402

from exactcompress.allocator import tune_allocator  # noqa: E402
from exactcompress.engine.prove.bab_batch import QueryUniverse  # noqa: E402
from exactcompress.io import load_network  # noqa: E402
from exactcompress.io.domain_files import scalar_box  # noqa: E402

tune_allocator()
torch.set_num_threads(1)
model, layer, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
neurons = [int(x) for x in sys.argv[4].split(",")] if len(sys.argv) > 4 and sys.argv[4] else None
caps = [int(x) for x in sys.argv[5].split(",")] if len(sys.argv) > 5 else [256, 96, 48]
network, _ = load_network(Path(model))
box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
questions, bounds = open_questions(network, box, layer, 1)
questions = neurons or questions
print(Path(model).name, "layer", layer, "questions", questions, flush=True)
below = [(b.lower, b.upper) for b in bounds[:layer]]
for cap in caps:
    QueryUniverse.at_root.__func__.__defaults__ = (cap,)
    print("cap", cap, flush=True)
    rows = ask(network, box, below, layer, questions, 1, limit)
    print("cap", cap, "proved", sum(r["status"] == "proved" for r in rows), "domains", sum(r["domains"] for r in rows),
          flush=True)
