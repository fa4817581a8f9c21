"""One question: uninterrupted branch and bound against the same search stopped and resumed in auto's rounds."""
import sys, time
sys.path.insert(0, "/work/main/benchmarks")
import torch
from bab_questions import open_questions
from exactcompress.allocator import tune_allocator
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box
from exactcompress.engine.prove import bab
from exactcompress.tolerances import BOUND_MARGIN, WITNESS_MARGIN
from pathlib import Path
tune_allocator(); torch.set_num_threads(1)
model, layer, sign, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
neurons = [int(x) for x in sys.argv[5:]]
network, _ = load_network(Path(model))
box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
_, bounds = open_questions(network, box, layer, sign)
below = [(b.lower, b.upper) for b in bounds[:layer]]
W = [h.weight for h in network.hidden[: layer + 1]]; B = [h.bias for h in network.hidden[: layer + 1]]
for n in neurons:
    budgets = [2, 20, 40, 80, 160, 320] if mode == "rounds" else [600]
    t0 = time.monotonic(); total = 0; res = None
    for i, b in enumerate(budgets):
        if res is None:
            res = bab.prove_sign(W, B, box.lower, box.upper, below, layer, n, sign, margin=BOUND_MARGIN,
                                 witness_margin=WITNESS_MARGIN, deadline=time.monotonic() + b, seed=n)
        else:
            res = bab.resume_sign(res.suspended, deadline=time.monotonic() + b)
        total += res.domains
        if res.status != "undecided" or res.suspended is None:
            break
    print(f"{mode}: neuron {n} {res.status} {total} domains {time.monotonic() - t0:.1f} s rounds {i + 1}", flush=True)
