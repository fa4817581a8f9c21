"""The domains of one branch-and-bound search on a 2-hidden-layer net's second-layer question, grouped by depth
(shared by the scripts beside it; ``obbt_fixpoint.py`` in ``../obbt_fixpoint/`` predates it)."""
import time
from collections import defaultdict

import numpy as np

from exactcompress.engine.prove import bab
from exactcompress.io import load_network
from exactcompress.tolerances import BOUND_MARGIN, WITNESS_MARGIN


def searched_domains(model, neuron, seconds):
    """Run ``bab.prove_sign`` on "can neuron ``neuron`` of the second hidden layer be positive?" on the box
    [0, 1] for at most ``seconds`` and print its verdict. Returns (W0, b0, W1, b1, lo, hi, by_depth) with
    ``by_depth[depth]``: a list of (bound, split, lb, ub, keep) per bounded domain, its first-layer splits and
    bounds with the splits applied (``keep``: the first-layer neurons the search kept)."""
    net, _ = load_network(model)
    dim = net.input_dim
    lo, hi = np.zeros(dim), np.ones(dim)
    W0, b0 = net.hidden[0].weight, net.hidden[0].bias
    l0 = np.minimum(W0, 0) @ hi + np.maximum(W0, 0) @ lo + b0
    u0 = np.maximum(W0, 0) @ hi + np.minimum(W0, 0) @ lo + b0
    W1, b1 = net.hidden[1].weight, net.hidden[1].bias
    batches = []
    res = bab.prove_sign([W0, W1], [b0, b1], lo, hi, [(l0, u0)], 1, neuron, 1, margin=BOUND_MARGIN,
                         witness_margin=WITNESS_MARGIN, deadline=time.monotonic() + seconds, seed=neuron,
                         debug=batches.append)
    print(f"neuron {neuron}: {res.status} {res.domains} domains", flush=True)
    by_depth = defaultdict(list)
    for bt in batches:
        keep = bt["keep"][0]
        for r in range(len(bt["bound"])):
            depth = int(sum((s[r] != 0).sum() for s in bt["split"]))
            split, l, u = bt["split"][0][r], bt["lb"][0][r], bt["ub"][0][r]
            l = np.where(split > 0, np.maximum(l, 0), l)
            u = np.where(split < 0, np.minimum(u, 0), u)
            by_depth[depth].append((bt["bound"][r], split, l, u, keep))
    return W0, b0, W1, b1, lo, hi, by_depth


def sampled_open(by_depth, depth, sample, rng):
    """Up to ``sample`` of the open domains (bound > -margin) at ``depth``, drawn by ``rng``, and their count."""
    open_ = [x for x in by_depth.get(depth, []) if x[0] > -BOUND_MARGIN]
    return [open_[i] for i in rng.permutation(len(open_))[:sample]], len(open_)
