"""Depth profile and split neurons of one question's tree (debug hook of prove_sign)."""
import sys, time, collections
from pathlib import Path
import numpy as np, torch
from exactcompress.engine.prove import bab
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box
from exactcompress.tolerances import BOUND_MARGIN, WITNESS_MARGIN
torch.set_num_threads(1)
path, layer, neuron, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
network, _ = load_network(Path(path))
box = scalar_box(0, 1).broadcast(network.input_dim).boxes[0]
sys.path.insert(0, "benchmarks")
from bab_questions import open_questions
_, lbs = open_questions(network, box, layer, 1)
below = [(b.lower, b.upper) for b in lbs[:layer]]
W = [h.weight for h in network.hidden[: layer + 1]]; B = [h.bias for h in network.hidden[: layer + 1]]
depth_open = collections.Counter(); depth_closed = collections.Counter(); split_count = collections.Counter()
unst_root = None
def dbg(d):
    global unst_root
    s = d["split"][0]; dep = (s != 0).sum(1); closed = d["bound"] <= -BOUND_MARGIN
    for k, c in zip(dep, closed):
        (depth_closed if c else depth_open)[int(k)] += 1
    for j in np.nonzero(s.any(0))[0]:
        split_count[int(j)] += int((s[:, j] != 0).sum())
    if unst_root is None:
        unst_root = int(((d["lb"][0] < 0) & (d["ub"][0] > 0)).sum())
r = bab.prove_sign(W, B, box.lower, box.upper, below, layer, neuron, 1, margin=BOUND_MARGIN, witness_margin=WITNESS_MARGIN,
                   deadline=time.monotonic() + limit, debug=dbg)
c = network.hidden[layer].weight[neuron]
print(r.status, r.domains, round(r.seconds, 1), r.best_bound, "unstable at root (kept)", unst_root, "positive c", int((c > 0).sum()))
print("depth: bounded(open/closed)", {k: (depth_open[k], depth_closed[k]) for k in sorted(set(depth_open) | set(depth_closed))})
print("distinct split neurons", len(split_count), "top", split_count.most_common(20))
