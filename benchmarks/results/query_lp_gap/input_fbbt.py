"""Interval propagation (FBBT) of the domain's first-layer bounds l <= W x + b <= u back onto the input box, then
the box's interval bounds of the first layer intersected, repeated: how much the box and the target's LP bound
move on sampled open domains (no hypothesis row; measurement only).

    python benchmarks/results/query_lp_gap/input_fbbt.py out/bench_zoo/d64-2x100-l1_0.pt --neuron 78 --seconds 30 --sample 4
        (from the repository root; the run of input_fbbt_n78.log)
"""
import argparse, json
import numpy as np
from exactcompress.engine.prove.bab_bounds import lp_certificate
from search_domains import sampled_open, searched_domains

def fbbt(W, b, lo, hi, l, u, rounds=10):
    lo, hi, l, u = lo.copy(), hi.copy(), l.copy(), u.copy()
    for _ in range(rounds):
        Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
        zmax = Wp @ hi + Wn @ lo + b; zmin = Wp @ lo + Wn @ hi + b
        l, u = np.maximum(l, zmin), np.minimum(u, zmax)
        # row k: W_kd x_d <= u_k - b_k - (min of the rest)  and  >= l_k - b_k - (max of the rest)
        term_min = Wp * lo + Wn * hi; term_max = Wp * hi + Wn * lo  # (n, d)
        rest_min = (zmin - b)[:, None] - term_min; rest_max = (zmax - b)[:, None] - term_max
        upper_t = (u - b)[:, None] - rest_min; lower_t = (l - b)[:, None] - rest_max  # bounds on W_kd x_d
        with np.errstate(divide="ignore", invalid="ignore"):
            pos = W > 1e-12; neg = W < -1e-12
            new_hi = np.where(pos, upper_t / W, np.where(neg, lower_t / W, np.inf)).min(0)
            new_lo = np.where(pos, lower_t / W, np.where(neg, upper_t / W, -np.inf)).max(0)
        nlo, nhi = np.maximum(lo, new_lo), np.minimum(hi, new_hi)
        if np.any(nlo > nhi) or np.any(l > u): return None
        if np.allclose(nlo, lo) and np.allclose(nhi, hi): break
        lo, hi = nlo, nhi
    return lo, hi, l, u

ap = argparse.ArgumentParser(); ap.add_argument("model"); ap.add_argument("--neuron", type=int)
ap.add_argument("--seconds", type=float, default=30); ap.add_argument("--sample", type=int, default=6)
a = ap.parse_args()
j = a.neuron
W0, b0, W1, b1, lo, hi, by_depth = searched_domains(a.model, j, a.seconds)
rng = np.random.default_rng(0)
for depth in (5, 7, 9, 11):
    for bd, split, l, u, keep in sampled_open(by_depth, depth, a.sample, rng)[0]:
        Wk, bk, c = W0[keep], b0[keep], W1[j, keep]
        r = fbbt(Wk, bk, lo, hi, l, u)
        lp0, _ = lp_certificate([Wk], [bk], c, b1[j], lo, hi, [l], [u])
        if r is None:
            print(json.dumps({"depth": depth, "adam": round(float(bd), 4), "fbbt": "infeasible"})); continue
        nlo, nhi, nl, nu = r
        lp1, _ = lp_certificate([Wk], [bk], c, b1[j], nlo, nhi, [nl], [nu])
        print(json.dumps({"depth": depth, "adam": round(float(bd), 4), "lp": round(lp0, 4), "lp_after_fbbt": round(lp1, 4),
                          "box_width_mean": round(float(np.mean(nhi - nlo)), 3), "inputs_narrowed": int(np.sum((nhi - nlo) < 0.999))}), flush=True)
