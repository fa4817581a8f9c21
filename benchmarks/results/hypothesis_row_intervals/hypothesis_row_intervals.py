"""Interval reasoning on the hypothesis row (feasibility-based bound tightening) in branch and bound's open domains:
does it tighten the first-layer bounds the Adam loop left, or close a domain?

Under the hypothesis g = sum_k a_k relu(z_k) + c >= -margin, each term satisfies a_k relu(z_k) >= -margin - c - (the
largest the other terms can be on the domain's bounds): a lower bound on z_k where a_k > 0, an upper bound where a_k < 0
(z <= relu(z)), and the domain is empty when even the largest sum is below -margin (``interval_bound``). Rounds until
nothing moves. For sampled open domains at each depth of d64-2x100-l1_0's second-layer neuron 78 (the search of
``../query_lp_gap/search_domains.py``), the script prints the Adam bound, the interval bound, how many unstable
first-layer intervals the rounds shrank and the exact LP bound of the target before and after (HiGHS, no rounding
guard: a measurement, not a proof).

    PYTHONPATH=benchmarks/results/query_lp_gap python benchmarks/results/hypothesis_row_intervals/hypothesis_row_intervals.py \
        out/bench_zoo/d64-2x100-l1_0.pt --neuron 78 --seconds 30      (n78.log)"""
import argparse, json
import numpy as np
from exactcompress.engine.prove.bab_bounds import lp_certificate
from exactcompress.tolerances import BOUND_MARGIN
from search_domains import sampled_open, searched_domains

def fbbt(a, c, m, l, u, rounds=20):
    l, u = l.copy(), u.copy()
    for _ in range(rounds):
        ylo, yhi = np.maximum(l, 0), np.maximum(u, 0)
        term_max = np.maximum(a * ylo, a * yhi)
        S = term_max.sum()
        if S + c < -m:
            return None, None, S + c
        R = -m - c - (S - term_max)       # a_k y_k >= R_k
        pos, neg = a > 0, a < 0
        ylow = np.where(pos, R / np.where(pos, a, 1), -np.inf)    # y_k >= ylow
        nl = np.where(pos & (ylow > 0), np.maximum(l, ylow), l)  # relu(z_k) >= ylow > 0: z_k >= ylow
        yup = np.where(neg, R / np.where(neg, a, -1), np.inf)      # y_k <= yup
        if (yup < 0).any():
            return None, None, S + c
        nu = np.where(neg & (yup < u), yup, u)  # z_k <= relu(z_k) <= yup
        moved = np.abs(nl - l).sum() + np.abs(nu - u).sum()
        l, u = nl, nu
        if moved < 1e-9:
            break
    return l, u, S + c

ap = argparse.ArgumentParser(); ap.add_argument("model"); ap.add_argument("--neuron", type=int)
ap.add_argument("--seconds", type=float, default=30); ap.add_argument("--sample", type=int, default=4)
a_ = ap.parse_args()
j = a_.neuron
W0, b0, W1, b1, lo, hi, by_depth = searched_domains(a_.model, j, a_.seconds)
rng = np.random.default_rng(0)
for depth in sorted(by_depth):
    if depth < 3: continue
    for bd, split, l, u, keep in sampled_open(by_depth, depth, a_.sample, rng)[0]:
        Wk, bk, c = W0[keep], b0[keep], W1[j, keep]
        nl, nu, interval = fbbt(c, b1[j], BOUND_MARGIN, l, u)
        row = {"depth": depth, "adam_bound": round(float(bd), 4), "interval_bound": round(float(interval), 4)}
        if nl is None:
            row["fbbt"] = "infeasible"
        else:
            unst = (l < 0) & (u > 0)
            w = (u - l)[unst]
            row["fbbt_shrink_median"] = round(float(np.median(((u - nu) + (nl - l))[unst] / w)), 4)
            row["fbbt_shrunk"] = int((((u - nu) + (nl - l))[unst] > 1e-9).sum())
            lp0, _ = lp_certificate([Wk], [bk], c, b1[j], lo, hi, [l], [u])
            lp1, _ = lp_certificate([Wk], [bk], c, b1[j], lo, hi, [nl], [nu])
            row.update(lp_before=round(lp0, 4), lp_after_fbbt=round(lp1, 4))
        print(json.dumps(row), flush=True)
