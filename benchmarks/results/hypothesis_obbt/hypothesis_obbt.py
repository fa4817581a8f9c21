"""What LP bound tightening under the hypothesis, run to a fixpoint at the root, does for an open sign question,
and whether a sign MILP built on the tightened bounds then settles it (a what-if measurement).

    .venv/bin/python benchmarks/results/hypothesis_obbt/hypothesis_obbt.py out/bench_zoo/d3072-5x100-l1_1e-4.pt \
        --layer 4 --neurons 49 --rounds 2 --milp 120      (the run of n49.log; needs `pip install highspy`)

For each question ("can sign * g_j of hidden layer ``layer`` reach -margin?"): the engine's bounds after its bounds
and witness stage; the LP bound of sign * g over the triangle relaxation; then rounds of LP tightening under the
hypothesis row ``sign * g_j >= -margin``: each unstable neuron of each layer below, layer by layer (the LP rebuilt
after each layer, so the next layer sees the tightened triangles), max and min of its pre-activation; bounds
intersected; until no bound moves by more than 1e-6 or ``--rounds``. An infeasible LP proves the question. Then the
LP bound again, and with ``--milp S`` the engine's sign MILP (``per_neuron.solve_layer``, sign mode) on the engine's
bounds and on the tightened ones, S seconds each. HiGHS (highspy, warm-started simplex) with no rounding guard: a
measurement, not a proof.
"""
import argparse
import sys
import time

import highspy
import numpy as np

sys.path.insert(0, ".")
from exactcompress.engine import analyze as analyze_module  # noqa: E402
from exactcompress.engine.bounds import LayerBounds  # noqa: E402
from exactcompress.engine.progress import ignore  # noqa: E402
from exactcompress.engine.prove import per_neuron  # noqa: E402
from exactcompress.engine.prove.bab_bounds import _lp  # noqa: E402
from exactcompress.io import load_network  # noqa: E402
from exactcompress.io.domain_files import scalar_box  # noqa: E402
from exactcompress.tolerances import BOUND_MARGIN  # noqa: E402


class LP:
    """The triangle LP of layers 0..q-1 with the hypothesis row, in HiGHS; objective changed per query."""

    def __init__(self, Ws, bs, c, d, lo, hi, lb, ub, margin):
        cv, A, b, E, e, vlo, vhi, keep, h_off = _lp(Ws, bs, c, lo, hi, lb, ub)
        from scipy import sparse
        rows = sparse.vstack([A, E, sparse.csr_matrix(-cv.reshape(1, -1))]).tocsr()
        rlo = np.concatenate([np.full(A.shape[0], -np.inf), e, [-np.inf]])
        rhi = np.concatenate([b, e, [d + margin]])
        self.cv, self.n = cv, len(vlo)
        self.z_off = []
        off = len(lo)
        for k in range(len(Ws)):
            self.z_off.append(off)
            off += Ws[k].shape[0] + len(keep[k])
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = self.n, rows.shape[0]
        lp.col_cost_ = np.zeros(self.n)
        lp.col_lower_, lp.col_upper_ = vlo, vhi
        lp.row_lower_, lp.row_upper_ = rlo, rhi
        csc = rows.tocsc()
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = csc.indptr, csc.indices, csc.data
        h.passModel(lp)
        self.h = h

    def optimum(self, cost, sense):
        """max (sense 1) or min (-1) of cost . v; None when infeasible."""
        self.h.changeColsCost(self.n, np.arange(self.n, dtype=np.int32), -sense * cost)
        self.h.run()
        status = self.h.getModelStatus()
        if status == highspy.HighsModelStatus.kInfeasible:
            return None
        if status != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(f"HiGHS: {self.h.modelStatusToString(status)}")
        return -sense * self.h.getInfo().objective_function_value

    def preactivation(self, k, i, sense):
        cost = np.zeros(self.n)
        cost[self.z_off[k] + i] = 1.0
        return self.optimum(cost, sense)


def tighten(Ws, bs, c, d, lo, hi, lb, ub, margin, rounds):
    """Rounds of hypothesis-conditioned LP tightening; returns (lb, ub, infeasible, lps, seconds)."""
    lb, ub = [x.copy() for x in lb], [x.copy() for x in ub]
    lps, start = 0, time.monotonic()
    for r in range(rounds):
        moved = 0.0
        for k in range(len(Ws)):
            lp = LP(Ws, bs, c, d, lo, hi, lb, ub, margin)
            for i in np.flatnonzero((lb[k] < 0) & (ub[k] > 0)):
                top, bottom = lp.preactivation(k, i, 1), lp.preactivation(k, i, -1)
                lps += 2
                if top is None or bottom is None or bottom > top:
                    return lb, ub, True, lps, time.monotonic() - start
                moved = max(moved, ub[k][i] - top, bottom - lb[k][i])
                ub[k][i], lb[k][i] = min(ub[k][i], top), max(lb[k][i], bottom)
        widths = [float(np.mean((u - l)[(l < 0) | (u > 0)])) for l, u in zip(lb, ub)]
        print(f"    round {r + 1}: moved {moved:.4g}, mean widths {[round(w, 2) for w in widths]}, "
              f"unstable {[int(((l < 0) & (u > 0)).sum()) for l, u in zip(lb, ub)]}, {lps} LPs, "
              f"{time.monotonic() - start:.1f} s", flush=True)
        if moved < 1e-6:
            break
    return lb, ub, False, lps, time.monotonic() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--layer", type=int, required=True)
    ap.add_argument("--neurons", type=int, nargs="+", required=True)
    ap.add_argument("--sign", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--milp", type=float, default=0.0)
    a = ap.parse_args()
    net, _ = load_network(a.model)
    box = scalar_box(0.0, 1.0).broadcast(net.input_dim).boxes[0]
    state = analyze_module._bounds_and_witnesses(net, box, None, None, np.random.default_rng(0), ignore)
    q = a.layer
    Ws = [net.hidden[k].weight for k in range(q)]
    bs = [net.hidden[k].bias for k in range(q)]
    lb = [np.asarray(state.bounds[k].lower, dtype=float) for k in range(q)]
    ub = [np.asarray(state.bounds[k].upper, dtype=float) for k in range(q)]
    print(f"unstable below: {[int(((l < 0) & (u > 0)).sum()) for l, u in zip(lb, ub)]}", flush=True)
    for j in a.neurons:
        c, d = a.sign * net.hidden[q].weight[j], a.sign * net.hidden[q].bias[j]
        root = LP(Ws, bs, c, d, box.lower, box.upper, lb, ub, np.inf).optimum(_top_cost(Ws, c, box, lb, ub), 1)
        print(f"neuron {j}: LP bound on the engine's bounds {root + d:.4f}", flush=True)
        tl, tu, infeasible, lps, secs = tighten(Ws, bs, c, d, box.lower, box.upper, lb, ub, BOUND_MARGIN, a.rounds)
        if infeasible:
            print(f"  proved by the fixpoint (infeasible) after {lps} LPs, {secs:.1f} s", flush=True)
        else:
            after = LP(Ws, bs, c, d, box.lower, box.upper, tl, tu, np.inf).optimum(
                _top_cost(Ws, c, box, tl, tu), 1)
            print(f"  LP bound after the fixpoint {after + d:.4f} ({lps} LPs, {secs:.1f} s)", flush=True)
        if a.milp > 0 and not infeasible:
            for name, (bl, bu) in (("engine's bounds", (lb, ub)), ("tightened bounds", (tl, tu))):
                bounds = [LayerBounds(x, y) for x, y in zip(bl, bu)]
                ask = np.zeros(net.hidden[q].out_features, dtype=bool)
                ask[j] = True
                none = np.zeros_like(ask)
                t = time.monotonic()
                solved = per_neuron.solve_layer(net, box, bounds, q, ask_max=ask if a.sign > 0 else none,
                                                ask_min=none if a.sign > 0 else ask, mode="sign",
                                                deadline=time.monotonic() + a.milp)
                proved = solved.proved_inactive[j] if a.sign > 0 else solved.proved_active[j]
                bound = solved.upper[j] if a.sign > 0 else -solved.lower[j]
                print(f"  sign MILP on the {name}: proved {bool(proved)}, timed out {bool(solved.timed_out[j])}, "
                      f"bound {bound:.4f}, nodes {solved.nodes}, {time.monotonic() - t:.1f} s", flush=True)


def _top_cost(Ws, c, box, lb, ub):
    """The LP's cost vector of c . h of the top layer (the same layout as ``_lp``)."""
    cv = _lp(Ws, [np.zeros(W.shape[0]) for W in Ws], c, box.lower, box.upper, lb, ub)[0]
    return cv


main()
