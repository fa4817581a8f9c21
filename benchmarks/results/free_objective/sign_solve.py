# Run in a tree (cd TREE; PYTHONPATH=TREE python /path/to/sign_solve.py ...) to use that tree's engine; MODEL from the
# repository root of the working checkout.
# python signq.py MODEL LAYER NEURON SECONDS [CAP]: one SCIP sign solve ("can g be positive?") of a neuron, from the
# bounds after bounds and the witness stage (bab_questions.open_questions), with g <= CAP given on the asked layer.
import sys, time, numpy as np, torch
sys.path.insert(0, "benchmarks")
from bab_questions import open_questions
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box
from exactcompress.engine.bounds.types import LayerBounds
from exactcompress.engine.prove.per_neuron import solve_layer
torch.set_num_threads(1)
model, layer, neuron, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
net, _ = load_network(model)
box = scalar_box(0.0, 1.0).broadcast(net.input_dim).boxes[0]
qs, bounds = open_questions(net, box, layer, 1)
bounds = list(bounds[: layer + 1])
if len(sys.argv) > 5:
    upper = bounds[layer].upper.copy(); upper[neuron] = min(upper[neuron], float(sys.argv[5]))
    bounds[layer] = bounds[layer].intersect(LayerBounds(bounds[layer].lower, upper))
ask = np.zeros(net.hidden[layer].out_features, dtype=bool); ask[neuron] = True
t = time.monotonic()
r = solve_layer(net, box, bounds, layer, ask_max=ask, ask_min=np.zeros_like(ask), mode="sign", deadline=time.monotonic() + seconds)
print(model.split("/")[-1], "layer", layer, "neuron", neuron, "g <=", bounds[layer].upper[neuron], "proved", bool(r.proved_inactive[neuron]),
      "witness", len(r.candidates), "timed out", bool(r.timed_out[neuron]), "nodes", r.nodes, "seconds", round(time.monotonic() - t, 1), flush=True)
