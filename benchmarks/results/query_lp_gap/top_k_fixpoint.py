"""Exact LP bound-tightening fixpoint under the hypothesis restricted to the k most important unstable
first-layer neurons (importance |c_i| (-l u / (u - l)) with the target's coefficients c, recomputed each round)
vs all of them, on sampled open domains of one question: domains closed and seconds.

    python benchmarks/results/query_lp_gap/top_k_fixpoint.py out/bench_zoo/d64-2x100-l1_0.pt --neuron 78 --seconds 30 --sample 4
        (from the repository root; the run of top_k_fixpoint_n78.log)
"""
import argparse, json, sys, time
from collections import defaultdict
import numpy as np
from scipy import sparse
from scipy.optimize import linprog
from exactcompress.engine.prove import bab
from exactcompress.engine.prove.bab_bounds import _lp, lp_certificate
from exactcompress.io import load_network
from exactcompress.tolerances import BOUND_MARGIN, WITNESS_MARGIN

def fixpoint(W, b, c, d, lo, hi, l, u, margin, k, rounds=6):
    l, u = l.copy(), u.copy(); nlp = 0
    for r in range(rounds):
        cv, A, bb, E, e, vlo, vhi, keep, h_off = _lp([W], [b], c, lo, hi, [l], [u])
        A2 = sparse.vstack([A, sparse.csr_matrix((-cv).reshape(1, -1))]).tocsr(); b2 = np.concatenate([bb, [d + margin]])
        dim = len(lo); moved = 0.0
        unst = np.nonzero((l < 0) & (u > 0))[0]
        imp = np.abs(c[unst]) * (-l[unst] * u[unst] / (u[unst] - l[unst]))
        pick = unst[np.argsort(-imp)[:k]] if k else unst
        for i in pick:
            for s in (1, -1):
                obj = np.zeros(A2.shape[1]); obj[dim + i] = -s
                res = linprog(obj, A_ub=A2, b_ub=b2, A_eq=E, b_eq=e, bounds=np.stack([vlo, vhi], 1), method="highs"); nlp += 1
                if res.status == 2: return -np.inf, nlp
                if res.status != 0: continue
                val = -res.fun if s == 1 else res.fun
                if s == 1 and val < u[i] - 1e-6: moved = max(moved, u[i] - val); u[i] = val
                if s == -1 and val > l[i] + 1e-6: moved = max(moved, val - l[i]); l[i] = val
                if l[i] > u[i]: return -np.inf, nlp
        if moved < 1e-6: break
    bound, _ = lp_certificate([W], [b], c, d, lo, hi, [l], [u])
    return bound, nlp

ap = argparse.ArgumentParser(); ap.add_argument("model"); ap.add_argument("--neuron", type=int)
ap.add_argument("--seconds", type=float, default=30); ap.add_argument("--sample", type=int, default=4)
ap.add_argument("--depths", type=int, nargs="+", default=[5, 7, 9, 11]); ap.add_argument("--ks", type=int, nargs="+", default=[8, 16, 0])
a = ap.parse_args()
net, _ = load_network(a.model)
dim = net.input_dim; lo, hi = np.zeros(dim), np.ones(dim)
W0, b0 = net.hidden[0].weight, net.hidden[0].bias
l0 = np.minimum(W0, 0) @ hi + np.maximum(W0, 0) @ lo + b0
u0 = np.maximum(W0, 0) @ hi + np.minimum(W0, 0) @ lo + b0
W1, b1 = net.hidden[1].weight, net.hidden[1].bias
j = a.neuron; batches = []
res = bab.prove_sign([W0, W1], [b0, b1], lo, hi, [(l0, u0)], 1, j, 1, margin=BOUND_MARGIN,
                     witness_margin=WITNESS_MARGIN, deadline=time.monotonic() + a.seconds, seed=j, debug=batches.append)
print(f"neuron {j}: {res.status} {res.domains} domains", flush=True)
by_depth = defaultdict(list)
for bt in batches:
    keep = bt["keep"][0]
    for r in range(len(bt["bound"])):
        depth = int(sum((s[r] != 0).sum() for s in bt["split"]))
        by_depth[depth].append((bt["bound"][r], bt["split"][0][r], bt["lb"][0][r], bt["ub"][0][r], keep))
rng = np.random.default_rng(0)
for depth in a.depths:
    doms = by_depth.get(depth, [])
    open_ = [x for x in doms if x[0] > -BOUND_MARGIN]
    pick = [open_[i] for i in rng.permutation(len(open_))[: a.sample]]
    row = {"depth": depth, "domains": len(doms), "open": len(open_), "sampled": len(pick)}
    for k in a.ks:
        closed, t0, nlps = 0, time.monotonic(), 0
        for bd, split, l, u, keep in pick:
            l = np.where(split > 0, np.maximum(l, 0), l); u = np.where(split < 0, np.minimum(u, 0), u)
            fb, nlp = fixpoint(W0[keep], b0[keep], W1[j, keep], b1[j], lo, hi, l, u, BOUND_MARGIN, k)
            closed += fb <= -BOUND_MARGIN; nlps += nlp
        row[f"k{k or 'all'}"] = {"closed": int(closed), "lps_per_domain": nlps / max(1, len(pick)),
                                "s_per_domain": round((time.monotonic() - t0) / max(1, len(pick)), 2)}
    print(json.dumps(row), flush=True)
