"""How many iterations a batched first-order LP method (PDHG with diagonal preconditioning, all queries of a
domain at once in torch) needs to bring the query LPs of branch and bound's open domains to their exact optima.

For sampled open domains of d64-2x100-l1_0's second-layer neuron 78, the query LPs are "max / min z_i under the
hypothesis g >= -margin" over the domain's triangle LP on the bounds the Adam loop left (``query_gap.py``'s LPs);
HiGHS gives each optimum. PDHG runs on all of them at once; every ``--every`` iterations its dual iterate gives a
valid Lagrangian bound (any multipliers do: ``min over the variable box of (c + A'y + E'w) . v - b.y - e.w``), and
the script prints the share of queries whose bound is within ``--tol`` of the optimum, and the time per iteration.

    PYTHONPATH=benchmarks/results/query_lp_gap python benchmarks/results/query_lp_pdhg/pdhg_queries.py \
        out/bench_zoo/d64-2x100-l1_0.pt --neuron 78 --sample 1 --iters 5000 --every 1000     (pdhg_n78.log)
    ... --iters 2000 --every 1000 --restart 0 100 400 --weight 0.1 1 10 --dtypes float32  (pdhg_n78_restart_weight.log)
    ... --iters 2000 --every 500 --restart 200 400 --weight 0.01 0.03 --dtypes float32    (pdhg_n78_small_weights.log)

A measurement, not a proof (no rounding guard)."""
import argparse
import json
import time

import numpy as np
import torch
from scipy import sparse
from scipy.optimize import linprog
from search_domains import sampled_open, searched_domains

from exactcompress.engine.prove.bab_bounds import _lp
from exactcompress.tolerances import BOUND_MARGIN


def query_lps(W, b, c, d, lo, hi, l, u, margin):
    """(A, b, E, e, vlo, vhi, objectives (Q, nv) to minimise, the neurons and signs) of a domain's query LPs."""
    cv, A, bb, E, e, vlo, vhi, keep, h_off = _lp([W], [b], c, lo, hi, [l], [u])
    A2 = sparse.vstack([A, sparse.csr_matrix((-cv).reshape(1, -1))]).tocsr()
    b2 = np.concatenate([bb, [d + margin]])
    dim = len(lo)
    unst = np.nonzero((l < 0) & (u > 0))[0]
    objs, asked = [], []
    for i in unst:
        for s in (1, -1):
            o = np.zeros(A2.shape[1])
            o[dim + i] = -s  # minimise -s z_i
            objs.append(o)
            asked.append((i, s))
    return A2, b2, E, e, vlo, vhi, np.array(objs), asked


def highs_optima(A, b, E, e, vlo, vhi, objs):
    out = []
    for o in objs:
        res = linprog(o, A_ub=A, b_ub=b, A_eq=E, b_eq=e, bounds=np.stack([vlo, vhi], 1), method="highs")
        out.append(res.fun if res.status == 0 else np.nan)
    return np.array(out)


def pdhg(A, b, E, e, vlo, vhi, objs, iters, every, optima, tol, dtype=torch.float64, restart=0, weight=1.0):
    """Batched PDHG (Pock-Chambolle diagonal steps, the primal steps divided and the dual ones multiplied by
    ``weight``; with ``restart`` > 0, every ``restart`` iterations both iterates restart from their averages since
    the last restart); returns the progress rows and the seconds per iteration."""
    K = sparse.vstack([A, E]).tocsr()
    m_ub = A.shape[0]
    absK = abs(K)
    tau = 1.0 / np.maximum(np.asarray(absK.sum(0)).ravel(), 1e-12)
    sigma = 1.0 / np.maximum(np.asarray(absK.sum(1)).ravel(), 1e-12)
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype)
    Kd, rhs = t(K.toarray()), t(np.concatenate([b, e]))
    lo_, hi_, tau_, sig_ = t(vlo), t(vhi), t(tau) / weight, t(sigma) * weight
    C = t(objs)
    Q = C.shape[0]
    v = ((lo_ + hi_) / 2).expand(Q, -1).clone()
    y = torch.zeros(Q, Kd.shape[0], dtype=dtype)
    rows = []
    v_sum, y_sum, count = torch.zeros_like(v), torch.zeros_like(y), 0
    start = time.perf_counter()
    for it in range(1, iters + 1):
        v_new = torch.minimum(torch.maximum(v - tau_ * (C + y @ Kd), lo_), hi_)
        y = y + sig_ * ((2 * v_new - v) @ Kd.T - rhs)
        y[:, :m_ub].clamp_(min=0.0)
        v = v_new
        if restart:
            v_sum += v
            y_sum += y
            count += 1
            if count == restart:
                v, y = v_sum / count, y_sum / count
                v_sum.zero_()
                y_sum.zero_()
                count = 0
        if it % every == 0:
            g = C + y @ Kd
            bound = torch.where(g > 0, g * lo_, g * hi_).sum(1) - y @ rhs  # a lower bound of each minimum
            gap = (torch.as_tensor(optima) - bound.double()).numpy()
            ok = np.isfinite(gap)
            rows.append({"iteration": it, "within_tol": round(float(np.mean(gap[ok] <= tol)), 3),
                         "median_gap": round(float(np.median(gap[ok])), 4)})
    seconds = (time.perf_counter() - start) / iters
    return rows, seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--neuron", type=int, default=78)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--sample", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--tol", type=float, default=0.01)
    ap.add_argument("--restart", type=int, nargs="+", default=[0])
    ap.add_argument("--weight", type=float, nargs="+", default=[1.0])
    ap.add_argument("--dtypes", nargs="+", choices=["float64", "float32"], default=["float64", "float32"])
    a = ap.parse_args()
    torch.set_num_threads(1)
    j = a.neuron
    W0, b0, W1, b1, lo, hi, by_depth = searched_domains(a.model, j, a.seconds)
    rng = np.random.default_rng(0)
    for depth in (6, 8, 10):
        for bd, split, l, u, keep in sampled_open(by_depth, depth, a.sample, rng)[0]:
            lps = query_lps(W0[keep], b0[keep], W1[j, keep], b1[j], lo, hi, l, u, BOUND_MARGIN)
            t0 = time.perf_counter()
            optima = highs_optima(*lps[:7])
            highs_s = time.perf_counter() - t0
            for dtype in (getattr(torch, name) for name in a.dtypes):
                for restart in a.restart:
                    for weight in a.weight:
                        rows, per_it = pdhg(*lps[:7], a.iters, a.every, optima, a.tol, dtype, restart, weight)
                        print(json.dumps({"depth": depth, "queries": len(optima),
                                          "rows": lps[0].shape[0] + lps[2].shape[0], "columns": lps[0].shape[1],
                                          "highs_s": round(highs_s, 2), "dtype": str(dtype)[6:], "restart": restart,
                                          "weight": weight, "ms_per_iteration": round(1e3 * per_it, 3),
                                          "progress": rows}), flush=True)


if __name__ == "__main__":
    main()
