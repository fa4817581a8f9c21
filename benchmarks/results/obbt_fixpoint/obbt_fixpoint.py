"""How much an exact LP bound-tightening fixpoint under the hypothesis would close, domain by domain, beyond what
branch and bound's Adam-optimised Lagrangian closes (a what-if measurement on a 2-hidden-layer net's questions).

    python benchmarks/results/obbt_fixpoint/obbt_fixpoint.py out/bench_zoo/d64-2x100-l1_0.pt --layer 1 \
        --neurons 78 --seconds 30 --sample 4 --json n78.json   (from the repository root; the run of n78.log)

Runs ``bab.prove_sign`` on each question with ``debug`` collecting every bounded batch (splits, the bounds the
Adam loop tightened, its bound). Then for a sample of the open domains (bound > -margin) at each depth: the exact
LP bound of the triangle relaxation with those bounds (``lp_certificate``), and the exact fixpoint of LP bound
tightening under the hypothesis ``g >= -margin``: every unstable first-layer neuron's max and min of z over the
LP (triangles on the current bounds, the domain's splits, the hypothesis row), bounds intersected, repeated until
no bound moves by 1e-6 (at most 6 rounds); then the LP bound again. "closed": the fixpoint's LP is infeasible or
its bound <= -margin. Exact HiGHS LPs, no rounding guard: a measurement, not a proof.
"""
import argparse, json, sys, time
from collections import defaultdict
import numpy as np
from scipy import sparse
from scipy.optimize import linprog
sys.path.insert(0, ".")
from exactcompress.engine.prove import bab
from exactcompress.engine.prove.bab_bounds import _lp, lp_certificate
from exactcompress.io import load_network
from exactcompress.tolerances import BOUND_MARGIN, WITNESS_MARGIN

def fixpoint(W, b, c, d, lo, hi, l, u, margin, rounds=6):
    l, u = l.copy(), u.copy()
    for r in range(rounds):
        cv, A, bb, E, e, vlo, vhi, keep, h_off = _lp([W], [b], c, lo, hi, [l], [u])
        hyp = sparse.csr_matrix((-cv).reshape(1, -1))  # -(c . h) <= d + margin
        A2 = sparse.vstack([A, hyp]).tocsr(); b2 = np.concatenate([bb, [d + margin]])
        dim = len(lo)
        moved = 0.0
        unst = np.nonzero((l < 0) & (u > 0))[0]
        for i in unst:
            for s in (1, -1):
                obj = np.zeros(A2.shape[1]); obj[dim + i] = -s
                res = linprog(obj, A_ub=A2, b_ub=b2, A_eq=E, b_eq=e, bounds=np.stack([vlo, vhi], 1), method="highs")
                if res.status == 2:
                    return -np.inf, r, True
                if res.status != 0:
                    continue
                val = -res.fun * 1.0 if s == 1 else res.fun
                if s == 1 and val < u[i] - 1e-6:
                    moved = max(moved, u[i] - val); u[i] = val
                if s == -1 and val > l[i] + 1e-6:
                    moved = max(moved, val - l[i]); l[i] = val
                if l[i] > u[i]:
                    return -np.inf, r, True
        if moved < 1e-6:
            break
    bound, _ = lp_certificate([W], [b], c, d, lo, hi, [l], [u])
    return bound, r + 1, False

def main():
    ap = argparse.ArgumentParser(); ap.add_argument("model"); ap.add_argument("--layer", type=int, default=1)
    ap.add_argument("--neurons", type=int, nargs="+"); ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--sample", type=int, default=30); ap.add_argument("--json")
    a = ap.parse_args()
    net, _ = load_network(a.model)
    dim = net.input_dim; lo, hi = np.zeros(dim), np.ones(dim)
    W0, b0 = net.hidden[0].weight, net.hidden[0].bias
    l0 = np.minimum(W0, 0) @ hi + np.maximum(W0, 0) @ lo + b0
    u0 = np.maximum(W0, 0) @ hi + np.minimum(W0, 0) @ lo + b0
    W1, b1 = net.hidden[a.layer].weight, net.hidden[a.layer].bias
    out = []
    for j in a.neurons:
        batches = []
        t = time.monotonic()
        res = bab.prove_sign([W0, W1], [b0, b1], lo, hi, [(l0, u0)], a.layer, j, 1, margin=BOUND_MARGIN,
                             witness_margin=WITNESS_MARGIN, deadline=t + a.seconds, seed=j, debug=batches.append)
        print(f"neuron {j}: {res.status} {res.domains} domains {res.seconds:.1f} s", flush=True)
        by_depth = defaultdict(list)
        for bt in batches:
            keep = bt["keep"][0]
            for r in range(len(bt["bound"])):
                depth = int(sum((s[r] != 0).sum() for s in bt["split"]))
                by_depth[depth].append((bt["bound"][r], bt["split"][0][r], bt["lb"][0][r], bt["ub"][0][r], keep))
        rng = np.random.default_rng(0)
        for depth in sorted(by_depth):
            doms = by_depth[depth]
            n_closed_adam = sum(bd <= -BOUND_MARGIN for bd, *_ in doms)
            open_ = [x for x in doms if x[0] > -BOUND_MARGIN]
            pick = [open_[i] for i in rng.permutation(len(open_))[: a.sample]]
            lpb, fxb, closed, t0 = [], [], 0, time.monotonic()
            for bd, split, l, u, keep in pick:
                l, u = l.copy(), u.copy()
                l = np.where(split > 0, np.maximum(l, 0), l); u = np.where(split < 0, np.minimum(u, 0), u)
                Wk, bk, c = W0[keep], b0[keep], W1[j, keep]
                lb_, _ = lp_certificate([Wk], [bk], c, b1[j], lo, hi, [l], [u])
                fb, rounds, infeasible = fixpoint(Wk, bk, c, b1[j], lo, hi, l, u, BOUND_MARGIN)
                lpb.append(lb_); fxb.append(fb); closed += infeasible or fb <= -BOUND_MARGIN
            row = {"neuron": j, "depth": depth, "domains": len(doms), "closed_by_adam": int(n_closed_adam),
                   "open": len(open_), "sampled": len(pick), "closed_by_fixpoint": int(closed),
                   "adam_median": float(np.median([x[0] for x in pick])) if pick else None,
                   "lp_median": float(np.median(lpb)) if pick else None,
                   "fixpoint_median": float(np.median([x for x in fxb])) if pick else None,
                   "seconds_per_domain": (time.monotonic() - t0) / max(1, len(pick))}
            out.append(row)
            print(json.dumps(row), flush=True)
    if a.json:
        open(a.json, "w").write(json.dumps(out, indent=1))

main()
