"""Branch and bound on one sign question (engine.prove.bab.prove_sign) against exact truth on tiny random ReLU MLPs.

Truth: the exact max of sign * g^layer_j over the box, (a) by enumerating the activation patterns of the
layers below (depth-first, pruning patterns whose region is empty by an LP feasibility check) and solving
one LP per feasible pattern (the target is affine in x on each pattern's region); (b) faster, by a big-M
MILP (scipy.optimize.milp, HiGHS, zero gap).  (a) cross-checks (b) on a few questions; (b) is used elsewhere.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from exactcompress.engine.prove import bab, bab_batch, bab_bounds, bab_domains
from exactcompress.engine.prove.bab_batch import (
    ADAM_BETAS,
    LR_DECAY,
    LR_MIN_SCALE,
    WARMUP,
    _adam_step,
)

GUARD = 1e-12
OBJECTIVE_SCALE = 1e4  # milp_max's objective scale


# ---------------------------------------------------------------------------------------------------------
# helpers


def make_net(seed, dims, bias_scale=0.5):
    rng = np.random.default_rng(seed)
    Ws, bs = [], []
    for i in range(len(dims) - 1):
        Ws.append(rng.normal(size=(dims[i + 1], dims[i])) / np.sqrt(dims[i]))
        bs.append(rng.normal(size=dims[i + 1]) * bias_scale)
    return Ws, bs


def concretise(C, off, lo, hi):
    P, N = np.maximum(C, 0), np.minimum(C, 0)
    low = P @ lo + N @ hi + off
    high = P @ hi + N @ lo + off
    mag = np.abs(C) @ np.maximum(np.abs(lo), np.abs(hi)) + np.abs(off)
    return low - GUARD * (1 + np.abs(low) + mag), high + GUARD * (1 + np.abs(high) + mag)


def interval_bounds(Ws, bs, lo, hi):
    out = []
    l, u = lo, hi
    for W, b in zip(Ws, bs):
        L, U = concretise(W, b, l, u)
        out.append((L, U))
        l, u = np.maximum(L, 0), np.maximum(U, 0)
    return out


def forward(Ws, bs, X):
    gs, h = [], np.atleast_2d(X)
    for W, b in zip(Ws, bs):
        g = h @ W.T + b
        gs.append(g)
        h = np.maximum(g, 0)
    return gs


def exact_max(Ws, bs, lo, hi, layer, neuron, sign, with_point=False):
    """max over the box of sign * g^layer_neuron, by activation-pattern enumeration + one LP per region (and the
    LP's maximiser with ``with_point``: up to the LP's tolerances, so only a float64 pass of it confirms a value)."""
    d = len(lo)
    bounds = list(zip(lo, hi))
    best = [-math.inf, None]

    def feasible(A, b):
        if not A:
            return True
        r = linprog(np.zeros(d), A_ub=np.array(A), b_ub=np.array(b), bounds=bounds, method="highs")
        return r.status == 0

    def rec(k, i, M, m, A, b, Hm, hv):
        # M, m: z^k = M x + m for the current layer k; Hm, hv: h^{k} rows built so far (list)
        if k == layer:
            obj = sign * M[neuron]
            const = sign * m[neuron]
            r = linprog(-obj, A_ub=np.array(A) if A else None, b_ub=np.array(b) if b else None, bounds=bounds,
                        method="highs")
            if r.status == 0 and -r.fun + const > best[0]:
                best[:] = [-r.fun + const, r.x]
            return
        if i == len(m):
            Hm = np.array(Hm)
            hv = np.array(hv)
            rec(k + 1, 0, Ws[k + 1] @ Hm, Ws[k + 1] @ hv + bs[k + 1], A, b, [], [])
            return
        row, off = M[i], m[i]
        zl, zu = concretise(row[None], np.array([off]), lo, hi)
        for side in (1, -1):
            if side == 1 and zu[0] < 0:
                continue
            if side == -1 and zl[0] > 0:
                continue
            A2, b2 = list(A), list(b)
            if not (side == 1 and zl[0] >= 0) and not (side == -1 and zu[0] <= 0):
                # active: -z <= 0 ; inactive: z <= 0
                A2.append(-side * row)
                b2.append(side * off)
                if not feasible(A2, b2):
                    continue
            if side == 1:
                rec(k, i + 1, M, m, A2, b2, Hm + [row], hv + [off])
            else:
                rec(k, i + 1, M, m, A2, b2, Hm + [np.zeros(d)], hv + [0.0])

    rec(0, 0, Ws[0], bs[0], [], [], [], [])
    return (best[0], best[1]) if with_point else best[0]


def milp_max(Ws, bs, lo, hi, layer, neuron, sign, with_point=False):
    """max over the box of sign * g^layer_neuron by a big-M MILP with interval bounds (HiGHS, relative gap 0).

    HiGHS also stops within an absolute gap of 1e-6, which scipy does not expose: the objective is scaled by
    OBJECTIVE_SCALE so that the value found is within 1e-6 / OBJECTIVE_SCALE of the max (unscaled, a fuzz run
    found it 7.3e-7 below the max, inside the slack that ``assert_consistent`` gives a proof)."""
    from scipy.optimize import LinearConstraint, milp

    LB = interval_bounds(Ws, bs, lo, hi)
    d = len(lo)
    # variables: x, then per layer k < layer: h_k (n_k), delta_k (n_k)
    sizes = [W.shape[0] for W in Ws[:layer]]
    nv = d + 2 * sum(sizes)
    off_h, off_d, o = [], [], d
    for n in sizes:
        off_h.append(o)
        off_d.append(o + n)
        o += 2 * n
    rows, lbs, ubs = [], [], []
    vlo = np.concatenate([lo] + [np.concatenate([np.zeros(n), np.zeros(n)]) for n in sizes])
    vhi = np.concatenate([hi] + [np.concatenate([np.maximum(LB[k][1], 0), np.ones(n)]) for k, n in enumerate(sizes)])
    integ = np.zeros(nv)
    for k, n in enumerate(sizes):
        integ[off_d[k]:off_d[k] + n] = 1
        L, U = LB[k]
        for i in range(n):
            z = np.zeros(nv)
            if k == 0:
                z[:d] = Ws[0][i]
            else:
                z[off_h[k - 1]:off_h[k - 1] + sizes[k - 1]] = Ws[k][i]
            b = bs[k][i]
            h = np.zeros(nv)
            h[off_h[k] + i] = 1
            dl = np.zeros(nv)
            dl[off_d[k] + i] = 1
            # h >= z + b ; h <= z + b - L (1 - delta) ; h <= U delta
            rows.append(h - z); lbs.append(b); ubs.append(np.inf)
            rows.append(h - z - L[i] * dl); lbs.append(-np.inf); ubs.append(b - L[i])
            rows.append(h - U[i] * dl); lbs.append(-np.inf); ubs.append(0.0)
    obj = np.zeros(nv)
    if layer == 0:
        obj[:d] = Ws[0][neuron]
    else:
        obj[off_h[layer - 1]:off_h[layer - 1] + sizes[layer - 1]] = Ws[layer][neuron]
    const = bs[layer][neuron]
    cons = LinearConstraint(np.array(rows), np.array(lbs), np.array(ubs)) if rows else None
    from scipy.optimize import Bounds
    r = milp(-sign * OBJECTIVE_SCALE * obj, constraints=cons, integrality=integ, bounds=Bounds(vlo, vhi),
             options={"mip_rel_gap": 0.0})
    assert r.status == 0, r.message
    value = -r.fun / OBJECTIVE_SCALE + sign * const
    return (value, r.x[:d]) if with_point else value


def run(Ws, bs, lo, hi, layer, neuron, sign, budget=5.0, **kw):
    LB = interval_bounds(Ws, bs, lo, hi)
    return bab.prove_sign(Ws, bs, lo, hi, LB[:layer], layer, neuron, sign, deadline=time.monotonic() + budget, **kw)


def assert_consistent(res, truth, Ws, bs, lo, hi, layer, neuron, sign, margin=1e-9, wm=1e-9):
    if res.status == "proved":
        assert truth <= -margin + 1e-7, (neuron, sign, truth)
    elif res.status == "witness":
        x = res.witness
        assert x.shape == (len(lo),) and x.dtype == np.float64
        assert np.all(x >= lo) and np.all(x <= hi)
        g = forward(Ws[: layer + 1], bs[: layer + 1], x)[layer][0, neuron]
        assert sign * g > wm
        assert truth >= sign * g - 1e-9
    else:
        assert res.status == "undecided"


# ---------------------------------------------------------------------------------------------------------
# tests


def test_truths_agree():
    """The pattern-enumeration truth and the MILP truth agree (so the MILP can be used as the truth)."""
    for seed, dims in ((11, [3, 6, 5]), (12, [3, 5, 4, 3])):
        Ws, bs = make_net(seed, dims)
        lo, hi = -np.ones(3), np.ones(3)
        layer = len(dims) - 2
        for j, sign in ((0, 1), (1, -1), (2, 1)):
            assert abs(exact_max(Ws, bs, lo, hi, layer, j, sign) - milp_max(Ws, bs, lo, hi, layer, j, sign)) < 1e-7
    # found by a fuzz run: HiGHS's absolute gap left the unscaled MILP 7.3e-7 below the max here
    Ws, bs = make_net(100137, [3, 5, 6, 7, 6], 0.123)
    assert abs(exact_max(Ws, bs, lo, hi, 3, 0, -1) - milp_max(Ws, bs, lo, hi, 3, 0, -1)) < 1e-9


@pytest.mark.parametrize("seed,dims", [(0, [4, 8, 8]), (1, [4, 10, 6]), (2, [4, 6, 8, 6])])
def test_random_nets_against_exact(seed, dims):
    Ws, bs = make_net(seed, dims)
    lo, hi = -np.ones(4), np.ones(4)
    layer = len(dims) - 2
    decided = 0
    for j in range(dims[-1]):
        for sign in (1, -1):
            truth = milp_max(Ws, bs, lo, hi, layer, j, sign)
            res = run(Ws, bs, lo, hi, layer, j, sign)
            assert_consistent(res, truth, Ws, bs, lo, hi, layer, j, sign)
            # clear cases must be decided
            if truth < -1e-4 or truth > 1e-4:
                assert res.status == ("proved" if truth < 0 else "witness"), (j, sign, truth, res)
            decided += res.status != "undecided"
    assert decided > 0


def test_tiny_margins_by_shifted_biases():
    """Biases shifted so that the exact extremes are +-1e-5: proofs and witnesses at the edge."""
    Ws, bs = make_net(3, [4, 8, 8, 4])
    lo, hi = np.zeros(4), np.ones(4)
    layer = 2
    for j in range(4):
        top = milp_max(Ws, bs, lo, hi, layer, j, 1)
        for shift, expect in ((-1e-5, "proved"), (1e-5, "witness")):
            b2 = [b.copy() for b in bs]
            b2[layer][j] -= top - shift  # now max g_j = shift
            truth = milp_max(Ws, b2, lo, hi, layer, j, 1)
            assert abs(truth - shift) < 1e-7
            res = run(Ws, b2, lo, hi, layer, j, 1, budget=10.0)
            assert_consistent(res, truth, Ws, b2, lo, hi, layer, j, 1)
            assert res.status == expect, (j, shift, res)
        # also a first-layer neuron of the layer below made stable with a tiny margin
    b3 = [b.copy() for b in bs]
    l0 = milp_max(Ws, bs, lo, hi, 0, 0, 1)
    b3[0][0] -= l0 + 1e-5  # neuron (0, 0) stably inactive by 1e-5: interval bounds see it exactly
    for j in range(4):
        truth = milp_max(Ws, b3, lo, hi, layer, j, 1)
        res = run(Ws, b3, lo, hi, layer, j, 1)
        assert_consistent(res, truth, Ws, b3, lo, hi, layer, j, 1)


def test_nothing_stable():
    Ws, bs = make_net(4, [4, 8, 8], bias_scale=0.0)
    lo, hi = -np.ones(4), np.ones(4)
    for j in range(8):
        for sign in (1, -1):
            truth = milp_max(Ws, bs, lo, hi, 1, j, sign)
            assert truth > 1e-3  # every neuron-sign is possible in this net
            res = run(Ws, bs, lo, hi, 1, j, sign)
            assert res.status == "witness"
            assert_consistent(res, truth, Ws, bs, lo, hi, 1, j, sign)


def test_whole_layer_stable():
    """Every neuron of the last hidden layer made stable (half inactive, half active) with margin 1e-3,
    where interval bounds do not see it."""
    Ws, bs = make_net(5, [4, 10, 8, 6])
    lo, hi = -np.ones(4), np.ones(4)
    layer = 2
    b2 = [b.copy() for b in bs]
    signs = []
    for j in range(6):
        if j % 2 == 0:
            b2[layer][j] -= milp_max(Ws, bs, lo, hi, layer, j, 1) + 1e-3
            signs.append(1)  # question "can it be positive?" -> proved
        else:
            b2[layer][j] += milp_max(Ws, bs, lo, hi, layer, j, -1) + 1e-3
            signs.append(-1)
    LB = interval_bounds(Ws, b2, lo, hi)
    assert all(LB[layer][0][j] < 0 < LB[layer][1][j] for j in range(6))  # not visible to intervals
    for j, sign in enumerate(signs):
        res = run(Ws, b2, lo, hi, layer, j, sign, budget=10.0)
        assert res.status == "proved", (j, res)
        assert res.best_bound <= -1e-9
        # and the opposite sign has a witness
        res2 = run(Ws, b2, lo, hi, layer, j, -sign)
        assert res2.status == "witness"
        assert_consistent(res2, milp_max(Ws, b2, lo, hi, layer, j, -sign), Ws, b2, lo, hi, layer, j, -sign)


def test_budget_passed_is_undecided():
    Ws, bs = make_net(6, [4, 8, 8])
    lo, hi = -np.ones(4), np.ones(4)
    LB = interval_bounds(Ws, bs, lo, hi)
    res = bab.prove_sign(Ws, bs, lo, hi, LB[:1], 1, 0, 1, deadline=time.monotonic() - 1.0)
    assert res.status == "undecided" and res.witness is None
    assert res.suspended is None  # stopped before its root was bounded: nothing to go on from


def test_a_search_stopped_again_and_again_still_proves():
    """The stable questions of test_whole_layer_stable, given 20 ms at a time and resumed from their open
    domains each time (one domain per batch, so each needs several calls): the same proofs as in one go."""
    Ws, bs = make_net(5, [4, 10, 8, 6])
    lo, hi = -np.ones(4), np.ones(4)
    layer, b2 = 2, [b.copy() for b in bs]
    for j in range(6):
        b2[layer][j] -= milp_max(Ws, bs, lo, hi, layer, j, 1) + 1e-3
    LB = interval_bounds(Ws, b2, lo, hi)
    most_calls = 0
    for j in range(6):
        res = bab.prove_sign(Ws, b2, lo, hi, LB[:layer], layer, j, 1, deadline=time.monotonic() + 0.02,
                             batch_size=1)
        calls = 1
        while res.suspended is not None:
            assert res.status == "undecided" and calls < 200
            res = bab.resume_sign(res.suspended, deadline=time.monotonic() + 0.02)
            calls += 1
        assert res.status == "proved", (j, res)
        most_calls = max(most_calls, calls)
    assert most_calls >= 3  # the slices did stop searches that had open domains


class _SetFromCheck:
    """A stop flag that reads as set from its ``n``-th check on: the search checks it before its root, before
    each batch and at each Adam step, so a small ``n`` cuts the root's bounding short at a known step."""

    def __init__(self, n: int):
        self.n, self.checks = n, 0

    def is_set(self) -> bool:
        self.checks += 1
        return self.checks >= self.n


def _question_needing_splits():
    """Question 0 of test_whole_layer_stable's layer (proved in 7 domains of one, so its root is split)."""
    Ws, bs = make_net(5, [4, 10, 8, 6])
    lo, hi = -np.ones(4), np.ones(4)
    layer, b2 = 2, [b.copy() for b in bs]
    b2[layer][0] -= milp_max(Ws, bs, lo, hi, layer, 0, 1) + 1e-3
    return Ws, b2, lo, hi, interval_bounds(Ws, b2, lo, hi)[:layer], layer


def test_a_bound_cut_short_is_finished_before_its_domain_is_split():
    """Stopped two Adam steps into the root's bounding, the search keeps the root unsplit: resumed, it bounds
    the root again (the same single unsplit domain) and only then splits it, and proves the question."""
    Ws, bs, lo, hi, below, layer = _question_needing_splits()
    batches = []
    res = bab.prove_sign(Ws, bs, lo, hi, below, layer, 0, 1, batch_size=1, stop=_SetFromCheck(4),
                         debug=batches.append)
    assert res.status == "undecided" and res.suspended is not None and len(batches) == 1
    res = bab.resume_sign(res.suspended, deadline=time.monotonic() + 10.0)
    assert res.status == "proved"
    assert [batch["split"][0].shape[0] for batch in batches[:2]] == [1, 1]
    assert not any(split.any() for batch in batches[:2] for split in batch["split"])  # the root, twice
    assert any(split.any() for split in batches[2]["split"])  # then its children


def test_a_search_given_two_adam_steps_a_call_still_proves():
    """Each call stopped after two Adam steps of its batch (no batch ever gets its steps in one call): the
    steps add up over the calls, domains are split once they have had theirs, and the question is proved."""
    Ws, bs, lo, hi, below, layer = _question_needing_splits()
    res = bab.prove_sign(Ws, bs, lo, hi, below, layer, 0, 1, batch_size=1, stop=_SetFromCheck(4))
    calls = 1
    while res.suspended is not None:
        assert res.status == "undecided" and calls < 1000
        res = bab.resume_sign(res.suspended, stop=_SetFromCheck(3))
        calls += 1
    assert res.status == "proved" and calls > 20


def test_the_hypothesis_multipliers_take_the_smaller_step_above_a_few_splits():
    """lam's step factor: a domain with fewer than LAMBDA_SHALLOW_SPLITS splits takes LR_LAMBDA_SHALLOW's step (its
    own step factor times LR_LAMBDA_SHALLOW / LR_LAMBDA), a deeper one LR_LAMBDA's; merged rows' -1 entries are no
    splits."""
    deep = bab_batch.LAMBDA_SHALLOW_SPLITS
    sorder = np.full((4, deep + 1), -1, dtype=np.int32)
    sorder[1, :deep - 1] = 7  # one split short
    sorder[2, :deep] = 7
    sorder[3, :] = 7
    own = torch.tensor([1.0, 0.5, 1.0, 0.25])
    shallow = bab_batch.LR_LAMBDA_SHALLOW / bab_batch.LR_LAMBDA
    assert shallow < 1.0
    factors = bab_batch.lam_step_factors(own, sorder)
    assert torch.allclose(factors, torch.tensor([shallow, 0.5 * shallow, 1.0, 0.25]))
    assert torch.equal(bab_batch.lam_step_factors(own[:1], np.zeros((1, 0), dtype=np.int32)), own[:1] * shallow)


def test_a_domain_whose_steps_only_worsened_its_warm_start_halves_its_childrens_steps(monkeypatch):
    """Every bounded batch of a question that needs splits, with the learning rates made 1000x too large (so that
    most steps lift the bound): a domain whose float64 evaluations never went below its first (its warm start)
    gives its children half its step factor (not below LR_MIN_SCALE), one whose did, twice it (not above 1); the
    root starts at 1, the factors do go down, and the question is still proved."""
    for name in ("LR_LAMBDA", "LR_ALPHA", "LR_ETA"):
        monkeypatch.setattr(bab_batch, name, 1000 * getattr(bab_batch, name))
    evaluations, batches, seen = [], [], []  # seen: every bounded batch's factors
    honest_lagrangian, honest_bound = bab_batch.lagrangian, bab_batch.Bounder.bound

    def recorded_lagrangian(*args, **kwargs):
        result = honest_lagrangian(*args, **kwargs)
        if kwargs.get("guard", True) and args[4].dtype == torch.float64:  # a certified evaluation
            evaluations.append(result[0][:, 0].clone())
        return result

    def recorded_bound(self, batch, nsteps):
        evaluations.clear()
        factors = batch["lr"].copy()
        seen.append(factors)
        out = honest_bound(self, batch, nsteps)
        if len(evaluations) > 1 and all(e.shape[0] == factors.shape[0] for e in evaluations):  # none left early
            batches.append((factors, out["lr"], torch.stack(evaluations).numpy()))
        return out

    monkeypatch.setattr(bab_batch, "lagrangian", recorded_lagrangian)
    monkeypatch.setattr(bab_batch.Bounder, "bound", recorded_bound)
    Ws, bs = make_net(5, [4, 10, 8, 6])
    lo, hi = -np.ones(4), np.ones(4)
    layer, shifted = 2, [b.copy() for b in bs]
    halved, lowest = 0, 1.0
    for j in range(6):
        shifted[layer][j] -= milp_max(Ws, bs, lo, hi, layer, j, 1) + 1e-3
        batches.clear()
        seen.clear()
        res = bab.prove_sign(Ws, shifted, lo, hi, interval_bounds(Ws, shifted, lo, hi)[:layer], layer, j, 1,
                             batch_size=2, deadline=time.monotonic() + 60)
        assert res.status == "proved", (j, res)
        assert seen[0].tolist() == [1.0]  # the root
        for factors, passed_on, values in batches:
            progressed = values.min(0) < values[0]
            expected = np.where(progressed, np.minimum(2 * factors, 1.0), np.maximum(factors / 2, LR_MIN_SCALE))
            assert np.allclose(passed_on, expected), (factors, passed_on, values)
            halved += int((~progressed).sum())
        assert all(set(factors.tolist()) <= {LR_MIN_SCALE * 2 ** k for k in range(7)} for factors in seen)
        lowest = min([lowest] + [float(factors.min()) for factors in seen])
    assert halved > 0 and lowest < 1.0


def test_deadline_respected_on_a_hard_question():
    """A 64-input 2x100 net, the target's bias shifted 0.02 below the best value a gradient search finds: not
    decidable in 0.5 s; the answer comes back promptly after the deadline."""
    Ws, bs = make_net(7, [64, 100, 100])
    lo, hi = np.zeros(64), np.ones(64)
    j = 0
    P = bab_bounds.Net([Ws[0]], [bs[0]], Ws[1][j], bs[1][j], lo, hi, torch.float64, torch.device("cpu"))
    xs = bab._attack(P, np.random.default_rng(0).random((64, 64)), 200, 0.05, None)
    b2 = [b.copy() for b in bs]
    b2[1][j] -= forward(Ws, bs, xs)[1][:, j].max() + 0.02
    LB = interval_bounds(Ws, b2, lo, hi)
    t = time.monotonic()
    res = bab.prove_sign(Ws, b2, lo, hi, LB[:1], 1, j, 1, deadline=t + 0.5)
    assert time.monotonic() - t < 1.2
    assert res.status in ("undecided", "proved", "witness")
    if res.status == "witness":
        assert forward(Ws, b2, res.witness)[1][0, j] > 1e-9
    if res.status == "undecided":
        assert res.best_bound > -1e-9 and res.witness is None


def test_layer0_target_and_sign_minus():
    Ws, bs = make_net(8, [4, 6, 5])
    lo, hi = np.zeros(4), np.ones(4)
    b2 = [b.copy() for b in bs]
    # neuron 0 of layer 0: max exactly computable; make it stably inactive by 1e-6
    w = Ws[0][0]
    top = np.maximum(w, 0) @ hi + np.minimum(w, 0) @ lo + bs[0][0]
    b2[0][0] -= top + 1e-6
    LB = interval_bounds(Ws, b2, lo, hi)
    assert bab.prove_sign(Ws, b2, lo, hi, LB[:0], 0, 0, 1).status == "proved"
    res = bab.prove_sign(Ws, b2, lo, hi, LB[:0], 0, 0, -1)
    assert res.status == "witness" and forward(Ws, b2, res.witness)[0][0, 0] < -1e-9
    # sign -1 on layer 1 equals sign +1 on the negated neuron
    for j in range(5):
        t_minus = milp_max(Ws, b2, lo, hi, 1, j, -1)
        r = run(Ws, b2, lo, hi, 1, j, -1)
        assert_consistent(r, t_minus, Ws, b2, lo, hi, 1, j, -1)


def test_a_dead_layer_below_the_target_leaves_the_constant_the_layers_above_it_make():
    """Layer 0 is inactive on the whole box, so the target is the constant c . relu(b1) + d, not d alone: it is
    proved only where that constant is below the margin, and its bound is that constant."""
    Ws = [np.array([[1.0]]), np.array([[1.0]]), np.array([[1.0]])]
    lo, hi = np.zeros(1), np.ones(1)
    for top_bias, truth in ((-0.5, 0.5), (-1.5, -0.5)):  # g2 = relu(relu(x - 10) + 1) + top_bias
        bs = [np.array([-10.0]), np.array([1.0]), np.array([top_bias])]
        res = bab.prove_sign(Ws, bs, lo, hi, interval_bounds(Ws, bs, lo, hi)[:2], 2, 0, 1)
        if truth > 0:
            assert res.status == "witness" and forward(Ws, bs, res.witness)[2][0, 0] == pytest.approx(truth)
        else:
            assert res.status == "proved"
        assert res.best_bound == pytest.approx(max(truth, -1e-9), abs=1e-9)


def test_a_bound_that_overflows_proves_nothing():
    """NaN from relaxations of infinite (valid) bounds, and from float32 steering steps past float32's range on
    bounds finite in float64, never prune a domain: max g1 = 0 here, and a bump of 5e32 there."""
    Ws, bs = [np.eye(2), np.array([[-1.0, -1.0]])], [np.zeros(2), np.zeros(1)]
    lo, hi = -np.ones(2), np.ones(2)
    res = bab.prove_sign(Ws, bs, lo, hi, [(np.full(2, -np.inf), np.full(2, np.inf))], 1, 0, 1)
    assert res.status == "undecided" and res.best_bound == math.inf
    scale, peak, width = 1e39, 0.3, 1e-6  # a triangle bump of height scale * width at x = peak + width, less half
    Ws = [scale * np.ones((3, 1)), np.array([[1.0, -2.0, 1.0]])]
    bs = [-scale * np.array([peak, peak + width, peak + 2 * width]), np.array([-scale * width / 2])]
    lo, hi = np.zeros(1), np.ones(1)
    with np.errstate(over="ignore", invalid="ignore"):
        res = bab.prove_sign(Ws, bs, lo, hi, interval_bounds(Ws, bs, lo, hi)[:1], 1, 0, 1,
                             deadline=time.monotonic() + 20)
    assert forward(Ws, bs, np.array([peak + width]))[1][0, 0] > 1e32
    assert res.status != "proved" and not res.best_bound <= 0


def test_domains_sampled_inside_are_sound():
    """Every bounded domain: sampled inputs satisfying its splits never exceed its bound where f >= -margin,
    and the hypothesis-tightened bounds hold on the sampled hypothesis set; pruned domains never show
    f > -margin."""
    Ws, bs = make_net(9, [4, 10, 10, 6])
    lo, hi = -np.ones(4), np.ones(4)
    layer = 2
    # make question (2, 0, +1) hard: max at -1e-3 (stable by a small margin)
    b2 = [b.copy() for b in bs]
    b2[layer][0] -= milp_max(Ws, bs, lo, hi, layer, 0, 1) + 1e-3
    margin = 1e-9
    seen = []
    # few optimisation steps: weaker bounds, so that the search splits and tightens over many domains
    res = run(Ws, b2, lo, hi, layer, 0, 1, budget=20.0, debug=seen.append, batch_size=4, root_steps=2, steps=3)
    assert res.status == "proved"
    assert res.domains >= 3 and len(seen) >= 2
    rng = np.random.default_rng(0)
    X = lo + (hi - lo) * rng.random((40000, 4))
    gs = forward(Ws[: layer + 1], b2[: layer + 1], X)
    f = gs[layer][:, 0]
    LB = interval_bounds(Ws, b2, lo, hi)
    checked = opened = tightened = 0
    for rec in seen:
        keep = rec["keep"]
        for i in range(rec["bound"].shape[0]):
            inside = np.ones(len(X), dtype=bool)
            for k in range(layer):
                z = gs[k][:, keep[k]]
                sp = rec["split"][k][i]
                inside &= np.all(np.where(sp > 0, z >= 0, True) & np.where(sp < 0, z <= 0, True), axis=1)
            hyp = inside & (f >= -margin)
            bound = rec["bound"][i]
            if bound <= -margin:
                assert not np.any(f[inside] > -margin)
            assert np.all(f[hyp] <= bound + 1e-12)
            for k in range(layer):
                z = gs[k][hyp][:, keep[k]]
                assert np.all(z >= rec["lb"][k][i] - 1e-12) and np.all(z <= rec["ub"][k][i] + 1e-12)
            checked += int(inside.sum())
            opened += bound > -margin
            tightened += any(np.any(rec["lb"][k][i] > LB[k][0][keep[k]]) for k in range(layer))
    assert checked > 0 and opened > 0 and tightened > 0


def test_lp_certificate_matches_linprog():
    Ws, bs = make_net(10, [4, 8, 6])
    lo, hi = -np.ones(4), np.ones(4)
    LB = interval_bounds(Ws, bs, lo, hi)
    c, d = Ws[1][0], bs[1][0]
    bound, x = bab_bounds.lp_certificate([Ws[0]], [bs[0]], c, d, lo, hi, [LB[0][0]], [LB[0][1]])
    assert math.isfinite(bound) and x is not None
    truth = milp_max(Ws, bs, lo, hi, 1, 0, 1)
    assert bound >= truth - 1e-9  # a relaxation bound is never below the true max
    # the bound equals the LP value up to the guard; the LP's own optimum is at most the bound
    val = forward(Ws, bs, x)[1][0, 0]
    assert val <= bound + 1e-9


def test_lp_certificate_proves_an_empty_domain_with_a_checked_farkas_vector_and_nothing_else():
    # z = x0 + x1 <= 0.5 on the box, so a domain whose bounds ask z >= 1 is empty
    Ws, bs = [np.array([[1.0, 1.0]]), np.array([[1.0]])], [np.zeros(1), np.zeros(1)]
    lo, hi = np.zeros(2), np.full(2, 0.25)
    bound, x = bab_bounds.lp_certificate(Ws[:1], bs[:1], Ws[1][0], 0.0, lo, hi, [np.array([1.0])], [np.array([2.0])])
    assert bound == -math.inf and x is None
    # the same bounds loosened to what the box allows: a finite bound at least the true max 0.5
    bound, x = bab_bounds.lp_certificate(Ws[:1], bs[:1], Ws[1][0], 0.0, lo, hi, [np.array([0.0])], [np.array([0.5])])
    assert 0.5 <= bound <= 0.5 + 1e-9 and np.allclose(x, hi)


def test_adam_step_is_the_written_out_update():
    """The fused kernel makes the update of Adam with bias correction, warm-up and decay written out below
    (sqrt(v / c2) + 1e-8 in the denominator), for every parameter group and several steps."""
    generator = torch.Generator().manual_seed(0)
    shapes, lrs = [(3, 5), (3, 5, 7), (3, 5, 2)], [0.1, 0.1, 0.05]
    params = [torch.rand(shape, generator=generator, dtype=torch.float64) for shape in shapes]
    initial = [p.clone() for p in params]
    expected = [p.clone() for p in params]
    m1, m2 = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    e1, e2 = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    b1, b2 = ADAM_BETAS
    for t in range(1, 9):
        grads = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in shapes]
        _adam_step(params, grads, m1, m2, lrs, t)
        sched = min(1.0, t / WARMUP) * LR_DECAY ** t
        for p, g, m, v, lr in zip(expected, grads, e1, e2, lrs):
            m.copy_(b1 * m + (1 - b1) * g)
            v.copy_(b2 * v + (1 - b2) * g * g)
            p -= lr * sched / (1 - b1 ** t) * m / ((v / (1 - b2 ** t)).sqrt() + 1e-8)
        for p, e in zip(params, expected):
            assert torch.allclose(p, e, rtol=1e-12, atol=1e-14)
    assert all(not torch.allclose(p, p0) for p, p0 in zip(params, initial))  # the steps moved every group


def test_adam_step_refuses_a_strided_tensor():
    """The fused kernel would read a strided tensor's memory as contiguous and update the wrong entries."""
    strided = torch.zeros(4, 6, dtype=torch.float64).T
    with pytest.raises(ValueError, match="contiguous"):
        _adam_step([strided], [torch.ones(6, 4, dtype=torch.float64)], [torch.zeros(6, 4, dtype=torch.float64)],
                   [torch.zeros(6, 4, dtype=torch.float64)], [0.1], 1)


def test_root_attack_stops_once_a_point_shows_the_sign_or_cannot_reach_it():
    """The witness search at a question's root ends at a check (every 50 steps) once some point has
    f > stop_above, or once its best value, rising as over the last 50 steps, would not get there in the steps
    left; it does not run its 10^7 steps in either case."""
    Ws, bs = make_net(7, [64, 100, 100])
    lo, hi = np.zeros(64), np.ones(64)
    starts = np.random.default_rng(0).random((64, 64))
    for shift in (100.0, -100.0):  # the target far above 0 everywhere, far below 0 everywhere
        P = bab_bounds.Net([Ws[0]], [bs[0]], Ws[1][0], bs[1][0] + shift, lo, hi, torch.float64, torch.device("cpu"))
        t = time.monotonic()
        xs = bab._attack(P, starts, 10**7, 0.05, t + 30.0, stop_above=0.0)
        assert time.monotonic() - t < 5.0
        assert xs.shape == (64, 64) and np.all((xs >= lo) & (xs <= hi))


def test_root_attack_size_follows_the_network_size():
    """Full size (64 starts, 300 steps) on small nets; on larger ones fewer steps first, then fewer starts,
    within the work budget, never under 16 starts of 50 steps."""
    assert bab.root_attack_size(64 * 100 + 100 * 100) == (bab.ROOT_ATTACK_STARTS, bab.ROOT_ATTACK_STEPS)
    for n_weights in (64 * 100 + 4 * 100 * 100, 64 * 400 + 400 * 400, 3072 * 100 + 3 * 100 * 100):
        starts, steps = bab.root_attack_size(n_weights)
        assert 16 <= starts <= bab.ROOT_ATTACK_STARTS and 50 <= steps <= bab.ROOT_ATTACK_STEPS
        assert starts == bab.ROOT_ATTACK_STARTS or steps == 50  # steps go first
        assert starts * steps * n_weights <= bab.ROOT_ATTACK_WORK
    assert bab.root_attack_size(10**9) == (16, 50)


def test_float32_steps_only_steer_the_parameters(monkeypatch):
    """The Adam steps run on a float32 copy of the network; only float64 evaluations may prove, tighten or set
    the best bound.  Each question's bias is shifted so that max g = 5e-10, inside the band that can be neither
    proved (bound <= -1e-9) nor witnessed (g > 1e-9): with a float32 copy that lies (target row 0, offset -1e6,
    so every float32 bound says "proved"), every question must still end undecided with a bound above 5e-10."""
    honest = bab_bounds.Net.with_dtype

    def lying(self, dtype):
        other = honest(self, dtype)
        other.c = torch.zeros_like(other.c)
        other.d = -1e6
        return other

    monkeypatch.setattr(bab_bounds.Net, "with_dtype", lying)
    Ws, bs = make_net(5, [4, 12, 8])
    lo, hi = -np.ones(4), np.ones(4)
    bounded = 0
    for j in range(8):
        shifted = [b.copy() for b in bs]
        shifted[1][j] -= milp_max(Ws, bs, lo, hi, 1, j, 1) - 5e-10
        assert abs(milp_max(Ws, shifted, lo, hi, 1, j, 1) - 5e-10) < 1e-10
        res = run(Ws, shifted, lo, hi, 1, j, 1, budget=1.0)
        assert res.status == "undecided", (j, res)
        assert res.best_bound >= 5e-10 - 1e-10, (j, res.best_bound)
        bounded += res.domains > 0
    assert bounded > 0  # some questions reached the bounding loop


def test_pool_pops_the_highest_priorities_and_loses_no_domain():
    """Random pushes (parts of 1-40 domains with split histories of different lengths) and pops of random
    sizes: every pop holds the highest priorities left, rows stay whole, and every pushed domain comes out
    exactly once, also after the small parts were merged."""
    rng = np.random.default_rng(0)
    widths = [3, 2]
    pool = bab_domains.Pool(widths)
    pushed, popped, next_id = [], [], 0
    for _ in range(200):
        if rng.random() < 0.6:
            size, steps = int(rng.integers(1, 41)), int(rng.integers(0, 4))
            ids = np.arange(next_id, next_id + size, dtype=np.float64)
            next_id += size
            prio = rng.choice([0.0, 0.5, 1.0], size=size) + rng.random(size) * (rng.random() < 0.5)
            batch = {"lb": [np.tile(ids[:, None], (1, w)) for w in widths],
                     "ub": [np.tile(ids[:, None] + 1, (1, w)) for w in widths],
                     "sorder": np.tile(ids[:, None], (1, steps)).astype(np.int32),
                     "qeta": np.ones((size, 2, steps), dtype=np.float16), "prio": prio}
            pool.push(batch)
            pushed += list(zip(ids, prio))
            assert len(pool.parts) <= bab_domains.MAX_POOL_PARTS
        elif pool.n:
            left = sorted((p for _, p in set(pushed) - set(popped)), reverse=True)
            count = int(rng.integers(1, 30))
            out = pool.pop(count)
            ids = out["lb"][0][:, 0]
            assert len(ids) == min(count, len(left))
            assert sorted(out["prio"], reverse=True) == left[:len(ids)]  # the highest (ties: any of them)
            assert np.array_equal(out["ub"][1][:, 0], ids + 1)
            width = out["sorder"].shape[1]
            assert all((row[row >= 0] == i).all() and (row[(row >= 0).sum():] == -1).all()
                       for row, i in zip(out["sorder"], ids))
            assert out["qeta"].shape[2] == width
            popped += list(zip(ids, out["prio"]))
        assert pool.n == len(pushed) - len(popped)
    while pool.n:
        out = pool.pop(50)
        popped += list(zip(out["lb"][0][:, 0], out["prio"]))
    assert sorted(popped) == sorted(pushed) and len(set(popped)) == len(popped)
    assert pool.pop(5) is None


@pytest.mark.parametrize("dims", [[5, 6], [5, 6, 7, 4]])
def test_lagrangian_gradients_are_those_of_its_value(dims):
    """The hand-written gradients of ``lagrangian`` (w.r.t. lam, alpha, eta; what the Adam steps follow) equal
    autograd's gradients of the value it returns, with queries, split rows and negative top-layer
    coefficients on every layer, for a target on the first hidden layer (the box step takes the top layer's
    coefficients) and on the third.  The box is degenerate in one input (lo == hi)."""
    Ws, bs = make_net(3, dims + [1])
    rng = np.random.default_rng(4)
    lo, hi = -np.ones(dims[0]), np.ones(dims[0])
    lo[1] = hi[1] = 0.3
    L = len(dims) - 1
    c = rng.normal(size=dims[-1])
    c[:2] = [-0.7, -0.4]
    P = bab_bounds.Net(Ws[:L], bs[:L], c, 0.1, lo, hi, torch.float64, torch.device("cpu"))
    bounds = interval_bounds(Ws[:L], bs[:L], lo, hi)
    B = 3
    lb = [torch.tensor(np.tile(low, (B, 1))) - 0.5 for low, _ in bounds]  # every neuron unstable
    ub = [torch.tensor(np.tile(high, (B, 1))) + 0.5 for _, high in bounds]
    lb[0][:, 3] = 0.2  # one stably active neuron
    ub[0][:, 4] = -0.1  # one stably inactive neuron
    questions = [(k, i) for k in range(L) for i in (0, 2)]
    nq = len(questions)
    Q = 1 + 2 * nq
    inject = []
    for k in range(L):
        sel = [q for q, (layer, _) in enumerate(questions) if layer == k]
        inject.append((torch.tensor([1 + q for q in sel] + [1 + nq + q for q in sel]),
                       torch.tensor([questions[q][1] for q in sel] * 2),
                       torch.tensor([1.0] * len(sel) + [-1.0] * len(sel), dtype=torch.float64)))
    ncols = torch.tensor([0, 1])
    ecols = [torch.tensor([1, 3]) for _ in range(L)]
    lam = torch.tensor(rng.random((B, Q)))
    alpha = [torch.tensor(rng.random((B, Q, dims[k + 1]))) for k in range(L - 1)]
    alpha.append(torch.tensor(rng.random((B, Q, 2))))
    eta = [torch.tensor(rng.normal(size=(B, Q, 2))) for _ in range(L)]
    params = [lam] + alpha + eta
    U, _, _, (glam, galpha, geta) = bab_bounds.lagrangian(P, lb, ub, inject, lam, alpha, eta, ncols, ecols, 1e-9,
                                                          True)
    leaves = [p.clone().requires_grad_(True) for p in params]
    U_again, _, _, _ = bab_bounds.lagrangian(P, lb, ub, inject, leaves[0], leaves[1:1 + L], leaves[1 + L:], ncols,
                                             ecols, 1e-9, False)
    assert torch.allclose(U, U_again, rtol=1e-12, atol=1e-12)
    U_again.sum().backward()
    for mine, leaf in zip([glam] + galpha + geta, leaves):
        assert torch.allclose(mine, leaf.grad, rtol=1e-6, atol=1e-9), (mine - leaf.grad).abs().max()


@pytest.mark.parametrize("dims", [[5, 6], [5, 6, 7, 4]])
def test_the_rounding_guard_covers_the_box_term_and_only_steering_steps_leave_it_out(dims):
    """On a box far from 0 the box term's rounding is the largest: the guard of a certified evaluation is at least
    ``GUARD * |A| xmag`` (A: the target's x-coefficients), which it is not without that term (one product sizes
    the first layer's bias and box terms when the target is above the first hidden layer).  ``guard=False``, for
    the float32 steps that only steer, gives the value less its guard and the same gradients."""
    Ws, bs = make_net(3, dims + [1])
    rng = np.random.default_rng(4)
    lo, hi = np.full(dims[0], 50.0), np.full(dims[0], 51.0)
    L = len(dims) - 1
    c = rng.normal(size=dims[-1])
    P = bab_bounds.Net(Ws[:L], bs[:L], c, 0.1, lo, hi, torch.float64, torch.device("cpu"))
    B = 3
    lb = [torch.tensor(np.tile(low, (B, 1))) for low, _ in interval_bounds(Ws[:L], bs[:L], lo, hi)]
    ub = [torch.tensor(np.tile(high, (B, 1))) for _, high in interval_bounds(Ws[:L], bs[:L], lo, hi)]
    ncols = torch.tensor(np.nonzero(c < 0)[0])
    lam = torch.zeros(B, 1, dtype=torch.float64)
    alpha = [torch.tensor(rng.random((B, 1, dims[k + 1]))) for k in range(L - 1)]
    alpha.append(torch.tensor(rng.random((B, 1, len(ncols)))))
    eta = [torch.zeros(B, 1, 0, dtype=torch.float64) for _ in range(L)]
    args = (P, lb, ub, [(None, None, None)] * L, lam, alpha, eta, ncols, [torch.zeros(0, dtype=torch.long)] * L, 1e-9,
            True)
    guarded, A, _, gradients = bab_bounds.lagrangian(*args)
    steering, _, _, steering_gradients = bab_bounds.lagrangian(*args, guard=False)
    guard = (guarded - steering)[:, 0]
    assert torch.all(guard >= bab_bounds.GUARD * (A.abs() @ P.xmag))
    def flat(grads):  # (lam, alpha per layer, eta per layer)
        return [grads[0], *grads[1], *grads[2]]

    for mine, theirs in zip(flat(gradients), flat(steering_gradients), strict=True):
        assert torch.equal(mine, theirs)


def test_the_rounding_guard_covers_products_whose_coefficients_cancel():
    """The target's coefficients on the first layer's outputs cancel (c = [1, -1] on two equal rows), while those
    outputs are about 1e8: the products that formed the coefficients had terms of 1e8 however small the result,
    and a certified evaluation's guard is at least GUARD * |c| |W_1| max h^0 (it was not before)."""
    big = 1e8
    Ws = [np.ones((2, 1)), np.array([[0.1, 0.3], [0.1, 0.3]])]
    bs = [np.full(2, big), np.zeros(2)]
    lo, hi = np.zeros(1), np.ones(1)
    c = np.array([1.0, -1.0])
    P = bab_bounds.Net(Ws, bs, c, 0.0, lo, hi, torch.float64, torch.device("cpu"))
    bounds = interval_bounds(Ws, bs, lo, hi)
    lb, ub = ([torch.tensor(side[None]) for side in sides] for sides in zip(*bounds))
    ncols = torch.tensor(np.nonzero(c < 0)[0])
    args = (P, lb, ub, [(None, None, None)] * 2, torch.zeros(1, 1, dtype=torch.float64),
            [torch.ones(1, 1, 2, dtype=torch.float64), torch.ones(1, 1, len(ncols), dtype=torch.float64)],
            [torch.zeros(1, 1, 0, dtype=torch.float64)] * 2, ncols, [torch.zeros(0, dtype=torch.long)] * 2, 1e-9, False)
    guard = float((bab_bounds.lagrangian(*args)[0] - bab_bounds.lagrangian(*args, guard=False)[0])[0, 0])
    assert guard >= bab_bounds.GUARD * float(np.abs(c) @ np.abs(Ws[1]) @ bounds[0][1])  # about 8e-5


def test_box_max_is_the_maximum_over_the_box_corners():
    """``box_max`` (the first layer's coefficients taken to the input box, formed in row chunks) equals the
    largest value over every corner of the box, including a degenerate input and more rows than one chunk."""
    Ws, bs = make_net(6, [6, 9, 1])
    lo, hi = np.array([-1.0, 0.0, 0.5, 0.2, -3.0, 1.0]), np.array([1.0, 2.0, 0.5, 0.9, -1.0, 4.0])
    P = bab_bounds.Net(Ws[:1], bs[:1], np.ones(9), 0.0, lo, hi, torch.float64, torch.device("cpu"))
    cz0 = torch.tensor(np.random.default_rng(1).normal(size=(7, 2 * bab_bounds.BOX_CHUNK_ELEMENTS // 6 // 7 + 5, 9)))
    value, magnitude, gradient = bab_bounds.box_max(P, cz0, True)
    corners = np.array(np.meshgrid(*zip(lo, hi))).reshape(6, -1).T  # (64, 6)
    values = cz0.numpy() @ (corners @ Ws[0].T).T  # (B, Q, 64)
    assert np.allclose(value.numpy(), values.max(-1), rtol=1e-12, atol=1e-12)
    assert np.all(magnitude.numpy() >= np.abs(values).max(-1))
    best = corners[values.argmax(-1)]  # (B, Q, 6): a maximising corner; the gradient is its image
    assert np.allclose(gradient.numpy(), best @ Ws[0].T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dims", [[6, 9], [40, 4]])
def test_the_smoothed_box_term_is_hubers_and_never_a_bound(dims):
    """``box_max(smoothing=s)``, for the float32 steps that only steer: each ``|p_j|`` (``p = cz0 spread``) becomes
    its Huber function with ``eps = s * rms(p)`` per row, so the gradient takes ``clip(p_j / eps, -1, 1)`` for the
    sign and the value is ``sum_j min(|p_j|, p_j^2 / eps)``, at most ``d eps / 4`` below the exact one; where
    ``n_0^2 <= 4 d`` the scale comes from the Gram matrix of ``spread`` (the same numbers).  ``lagrangian``
    refuses a smoothed box term where it would add the rounding guard, i.e. for a bound."""
    d, n0 = dims
    Ws, bs = make_net(7, [d, n0, 1])
    rng = np.random.default_rng(2)
    lo = rng.uniform(-1.0, 0.0, size=d)
    hi = lo + rng.uniform(0.0, 2.0, size=d)
    P = bab_bounds.Net(Ws[:1], bs[:1], np.ones(n0), 0.0, lo, hi, torch.float64, torch.device("cpu"))
    assert (P.gram is None) == (n0 * n0 > 4 * d)
    cz0 = torch.tensor(rng.normal(size=(3, 5, n0)))
    smoothing = 0.5
    value, _, gradient = bab_bounds.box_max(P, cz0, True, smoothing=smoothing)
    exact, _, exact_gradient = bab_bounds.box_max(P, cz0, True)
    spread = Ws[0] * (hi - lo) / 2
    p = cz0.numpy() @ spread  # (3, 5, d)
    eps = smoothing * np.sqrt((p ** 2).mean(-1, keepdims=True))
    assert (np.abs(p) < eps).any() and (np.abs(p) > eps).any()  # both pieces of the Huber function are used
    center = Ws[0] @ ((hi + lo) / 2)
    assert np.allclose(gradient.numpy(), center + np.clip(p / eps, -1.0, 1.0) @ spread.T, rtol=1e-10, atol=1e-12)
    assert np.allclose(value.numpy(), cz0.numpy() @ center + np.minimum(np.abs(p), p ** 2 / eps).sum(-1),
                       rtol=1e-10, atol=1e-12)
    assert np.all(value.numpy() <= exact.numpy() + 1e-12)
    assert np.all(value.numpy() >= exact.numpy() - d * eps[..., 0] / 4 - 1e-12)
    assert not torch.allclose(gradient, exact_gradient)
    lam = torch.zeros(1, 1, dtype=torch.float64)
    none = torch.zeros(0, dtype=torch.long)
    args = (P, [torch.zeros(1, n0) - 1.0], [torch.ones(1, n0)], [(None, None, None)], lam,
            [torch.zeros(1, 1, 0, dtype=torch.float64)], [torch.zeros(1, 1, 0, dtype=torch.float64)], none, [none],
            1e-9, True)
    with pytest.raises(ValueError, match="no bound"):
        bab_bounds.lagrangian(*args, smoothing=0.1)
    bab_bounds.lagrangian(*args, guard=False, smoothing=0.1)


def test_the_smoothed_box_term_stays_finite_where_rounding_makes_its_scale_negative():
    """Three nearly equal first-layer rows and coefficients that cancel them: ``c^T gram c`` is about 0 and
    float32 rounding makes it negative on hundreds of rows (checked here); its square root must not turn the
    steering gradient into NaN (Adam would carry the NaN into every parameter of the domain)."""
    rng = np.random.default_rng(0)
    d, n0 = 64, 4
    W = rng.normal(size=(n0, d))
    W[1] = W[0] + 1e-6 * rng.normal(size=d)
    W[2] = W[0] + 1e-6 * rng.normal(size=d)
    P = bab_bounds.Net([W], [np.zeros(n0)], np.ones(n0), 0.0, np.zeros(d), np.ones(d), torch.float64,
                       torch.device("cpu")).with_dtype(torch.float32)
    assert P.gram is not None
    cz0 = torch.zeros(1, 4096, n0)
    cz0[..., :3] = torch.tensor([1.0, -0.5, -0.5])
    cz0 *= torch.tensor(rng.uniform(0.1, 10.0, size=(1, 4096, 1)), dtype=torch.float32)
    rows = cz0.reshape(-1, n0)
    assert int((((rows @ P.gram) * rows).sum(-1) < 0).sum()) > 100
    value, _, gradient = bab_bounds.box_max(P, cz0, True, smoothing=0.1)
    assert torch.isfinite(value).all() and torch.isfinite(gradient).all()


def test_stored_slopes_are_in_range_and_a_nan_is_stored_as_zero_without_a_warning():
    """A float32 step that overflowed on a net of extreme scale leaves NaN slopes; storing them for a resumed search
    warned ("invalid value encountered in cast") and stored an arbitrary byte."""
    import warnings

    from exactcompress.engine.prove.bab_domains import quantized_alpha

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stored = quantized_alpha(np.array([np.nan, -0.1, 0.5, 1.2, 1.0]))
    np.testing.assert_array_equal(stored, [0, 0, 128, 255, 255])
