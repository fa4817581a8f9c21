# python first_layer_box.py out/bench_zoo/d3072-5x100-l1_1e-4.pt 3 60 64,95,1 relaxed,box   (from the repository root, HEAD 40f6a17)
"""BaB on a deep question of a wide-input net with the input box replaced by the first layer's exact
pre-activation box (a superset of the zonotope): valid proofs only, much cheaper domains."""
import sys, time, numpy as np, torch
from exactcompress.allocator import tune_allocator
from exactcompress.engine import analyze as A
from exactcompress.engine.progress import ignore
from exactcompress.engine.prove import bab
from exactcompress.engine.network import AffineLayer, Network
from exactcompress.engine.domain import Box
from exactcompress.engine import bounds as bounds_mod
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box
from exactcompress.tolerances import BOUND_MARGIN, WITNESS_MARGIN
tune_allocator(); torch.set_num_threads(1)
model, layer, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
neurons = [int(x) for x in sys.argv[4].split(",")]
net, _ = load_network(model)
box = scalar_box(0.0, 1.0).broadcast(net.input_dim).boxes[0]
state = A._bounds_and_witnesses(net, box, None, None, np.random.default_rng(0), ignore)
l0, u0 = state.bounds[0].lower, state.bounds[0].upper
n0 = len(l0)
ident = AffineLayer(np.eye(n0), np.zeros(n0))
relaxed = Network((ident, *net.layers[1:]))
ybox = Box(l0.copy(), u0.copy())
rb = bounds_mod.propagate(relaxed, ybox)
for k in range(layer + 1):
    print(f"layer {k}: mean width box {np.mean(state.bounds[k].upper - state.bounds[k].lower):.2f}  relaxed {np.mean(rb[k].upper - rb[k].lower):.2f}")
for mode in sys.argv[5].split(","):
    for neuron in neurons:
        if mode == "relaxed":
            W = [l.weight for l in relaxed.hidden[: layer + 1]]; b = [l.bias for l in relaxed.hidden[: layer + 1]]
            lo, hi, below = l0, u0, [(x.lower, x.upper) for x in rb[:layer]]
        else:
            W = [l.weight for l in net.hidden[: layer + 1]]; b = [l.bias for l in net.hidden[: layer + 1]]
            lo, hi, below = box.lower, box.upper, [(x.lower, x.upper) for x in state.bounds[:layer]]
        r = bab.prove_sign(W, b, lo, hi, below, layer, neuron, 1, margin=BOUND_MARGIN, witness_margin=WITNESS_MARGIN,
                           deadline=time.monotonic() + limit, seed=neuron)
        print(f"{mode:8s} neuron {neuron}: {r.status} {r.domains} domains {r.seconds:.1f} s bound {r.best_bound:.4f}", flush=True)
