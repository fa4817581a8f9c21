"""Per-query gap: the bounds branch and bound's Adam loop leaves on each unstable first-layer neuron of an open
domain vs the exact LP max/min of z_i under the hypothesis on those same bounds (one Jacobi round), and the
target's LP bound after that one exact round.

    python benchmarks/results/query_lp_gap/query_gap.py out/bench_zoo/d64-2x100-l1_0.pt --neuron 78 --seconds 30 \
        --sample 3   (from the repository root; the run of query_gap_n78.log)

Exact HiGHS LPs, no rounding guard: a measurement, not a proof."""
import argparse, json
import numpy as np
from scipy import sparse
from scipy.optimize import linprog
from exactcompress.engine.prove.bab_bounds import _lp, lp_certificate
from exactcompress.tolerances import BOUND_MARGIN
from search_domains import sampled_open, searched_domains

def one_round(W, b, c, d, lo, hi, l, u, margin):
    cv, A, bb, E, e, vlo, vhi, keep, h_off = _lp([W], [b], c, lo, hi, [l], [u])
    hyp = sparse.csr_matrix((-cv).reshape(1, -1))
    A2 = sparse.vstack([A, hyp]).tocsr(); b2 = np.concatenate([bb, [d + margin]])
    dim = len(lo); nl, nu = l.copy(), u.copy()
    unst = np.nonzero((l < 0) & (u > 0))[0]
    for i in unst:
        for s in (1, -1):
            obj = np.zeros(A2.shape[1]); obj[dim + i] = -s
            res = linprog(obj, A_ub=A2, b_ub=b2, A_eq=E, b_eq=e, bounds=np.stack([vlo, vhi], 1), method="highs")
            if res.status == 2:
                return None, None, unst
            if res.status != 0:
                continue
            if s == 1: nu[i] = min(u[i], -res.fun)
            else: nl[i] = max(l[i], res.fun)
    return nl, nu, unst

ap = argparse.ArgumentParser(); ap.add_argument("model"); ap.add_argument("--neuron", type=int)
ap.add_argument("--seconds", type=float, default=30); ap.add_argument("--sample", type=int, default=3)
a = ap.parse_args()
j = a.neuron
W0, b0, W1, b1, lo, hi, by_depth = searched_domains(a.model, j, a.seconds)
rng = np.random.default_rng(0)
for depth in (3, 6, 8, 10):
    for bd, split, l, u, keep in sampled_open(by_depth, depth, a.sample, rng)[0]:
        Wk, bk, c = W0[keep], b0[keep], W1[j, keep]
        nl, nu, unst = one_round(Wk, bk, c, b1[j], lo, hi, l, u, BOUND_MARGIN)
        if nl is None:
            print(json.dumps({"depth": depth, "adam_bound": round(float(bd), 4), "one_exact_round": "infeasible"})); continue
        width = (u - l)[unst]; shrink = ((u - nu) + (nl - l))[unst] / width
        lp_before, _ = lp_certificate([Wk], [bk], c, b1[j], lo, hi, [l], [u])
        lp_after, _ = lp_certificate([Wk], [bk], c, b1[j], lo, hi, [nl], [nu])
        print(json.dumps({"depth": depth, "unstable": len(unst), "adam_bound": round(float(bd), 4),
                          "lp_on_adam_bounds": round(lp_before, 4), "lp_after_one_exact_round": round(lp_after, 4),
                          "width_shrink_median": round(float(np.median(shrink)), 3),
                          "width_shrink_p90": round(float(np.quantile(shrink, 0.9)), 3),
                          "stabilised": int(((nl >= 0) | (nu <= 0))[unst].sum())}), flush=True)
