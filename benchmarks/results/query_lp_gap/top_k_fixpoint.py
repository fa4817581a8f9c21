"""Exact LP bound-tightening fixpoint under the hypothesis restricted to the k most important unstable
first-layer neurons (importance |c_i| (-l u / (u - l)) with the target's coefficients c, recomputed each round)
vs all of them, on sampled open domains of one question: domains closed and seconds.

    python benchmarks/results/query_lp_gap/top_k_fixpoint.py out/bench_zoo/d64-2x100-l1_0.pt --neuron 78 --seconds 30 --sample 4
        (from the repository root; the run of top_k_fixpoint_n78.log)
"""
import argparse, json, time
import numpy as np
from scipy import sparse
from scipy.optimize import linprog
from exactcompress.engine.prove.bab_bounds import _lp, lp_certificate
from exactcompress.tolerances import BOUND_MARGIN
from search_domains import sampled_open, searched_domains

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
j = a.neuron
W0, b0, W1, b1, lo, hi, by_depth = searched_domains(a.model, j, a.seconds)
rng = np.random.default_rng(0)
for depth in a.depths:
    pick, n_open = sampled_open(by_depth, depth, a.sample, rng)
    row = {"depth": depth, "domains": len(by_depth.get(depth, [])), "open": n_open, "sampled": len(pick)}
    for k in a.ks:
        closed, t0, nlps = 0, time.monotonic(), 0
        for bd, split, l, u, keep in pick:
            fb, nlp = fixpoint(W0[keep], b0[keep], W1[j, keep], b1[j], lo, hi, l, u, BOUND_MARGIN, k)
            closed += fb <= -BOUND_MARGIN; nlps += nlp
        row[f"k{k or 'all'}"] = {"closed": int(closed), "lps_per_domain": nlps / max(1, len(pick)),
                                "s_per_domain": round((time.monotonic() - t0) / max(1, len(pick)), 2)}
    print(json.dumps(row), flush=True)
