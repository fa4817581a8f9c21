# python sign_solve_n64.py SECONDS [CAP]   (from the repository root; CAP: g_64 <= CAP on the asked layer, as branch and
# bound leaves it for the engine's later sign solves)
# SCIP sign solve ("can it be positive?") of d3072-5x100-l1_1e-4's fourth-layer neuron 64, from the bounds after
# bounds and the witness stage (as bab_questions.py has them), under a deadline of argv[1] seconds.
import sys, time, numpy as np, torch
sys.path.insert(0, "benchmarks")
from bab_questions import open_questions
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box
from exactcompress.engine.prove.per_neuron import solve_layer
torch.set_num_threads(1)
net, _ = load_network("out/bench_zoo/d3072-5x100-l1_1e-4.pt")
box = scalar_box(0.0, 1.0).broadcast(net.input_dim).boxes[0]
qs, bounds = open_questions(net, box, 3, 1)
print("open 'positive?' questions, layer 3:", qs, flush=True)
ask = np.zeros(net.hidden[3].out_features, dtype=bool); ask[64] = True
if len(sys.argv) > 2:  # the question's own bound as branch and bound leaves it (g <= cap), as the engine passes it
    from exactcompress.engine.bounds.types import LayerBounds
    upper = bounds[3].upper.copy(); upper[64] = min(upper[64], float(sys.argv[2]))
    bounds = list(bounds); bounds[3] = bounds[3].intersect(LayerBounds(bounds[3].lower, upper))
    print("g_64 capped at", bounds[3].upper[64], flush=True)
t = time.monotonic()
r = solve_layer(net, box, bounds[:4], 3, ask_max=ask, ask_min=np.zeros_like(ask), mode="sign",
                deadline=time.monotonic() + float(sys.argv[1]))
print("neuron 64: proved inactive", bool(r.proved_inactive[64]), "upper", r.upper[64], "timed out", bool(r.timed_out[64]),
      "nodes", r.nodes, "seconds", round(time.monotonic() - t, 1))
