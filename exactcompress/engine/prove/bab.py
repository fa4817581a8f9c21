"""Branch and bound on ReLU splits (beta-CROWN style) for one neuron-sign question of a ReLU MLP.

Question (``sign = +1``): is ``max_{x in box} g^layer_neuron(x) <= -margin``?  ``sign = -1`` asks the mirror
question ``min g >= +margin`` and is handled by negating the target row.  Everything below works with the
sign-flipped objective ``f(x) = sign * g^layer_neuron(x)``; "proved" means ``max f <= -margin``.

Algorithm (NOTES.md has the measurements):

* Domains are sets of ReLU splits of unstable neurons in the layers below the target (active: ``z >= 0``,
  inactive: ``z <= 0``).  Each domain carries its own pre-activation bounds ``(lb, ub)`` for every layer
  below the target, valid on its *hypothesis set* ``S = {x in box : splits hold, f(x) >= -margin}``.  That
  is all a proof needs: if the bound on ``f`` over ``S`` is ``<= -margin`` (or ``S`` is empty), no input of
  the domain has ``f > -margin``.  Children inherit the bounds (their hypothesis sets are subsets); the
  bounds never leave the question.
* Bounding (batched over domains, torch): one joint Lagrangian (``lagrangian``) for Q queries per domain:
  query 0 bounds the target (CROWN back-substitution, per-neuron lower slopes alpha, bound-row multipliers
  eta that play beta-CROWN's beta on split neurons); the other queries bound ``+-z_i`` of unstable neurons
  below the target *under the hypothesis*: the objective gets ``lam (f_relaxed(x) + margin) >= 0`` added,
  each query with its own lam, alpha (the relaxation of f inside the hypothesis term is per query) and eta.
  This is the Lagrangian dual of LP-based bound tightening over box + splits + {f >= -margin}.  Projected
  Adam with hand-written gradients optimises all of them; after every step the domains' bounds are
  intersected with the query results (the tightened bounds feed the next step), and an empty interval
  proves ``S`` empty.
* Soundness: every evaluation is float64 with valid bounds and projected parameters (lam >= 0,
  alpha in [0, 1]), and carries the project's outward rounding guard ``1e-12 * (1 + |bound| + magnitude)``,
  so every bound the search uses or stores is valid.  LP (HiGHS) results are used only through their dual
  multipliers, re-checked in float64 by a Lagrangian bound with the same guard.
* Witnesses: every domain's relaxation maximiser (a box corner), LP primal points and short
  projected-gradient attacks are checked by a plain float64 numpy forward pass on the caller's weights;
  only such a check produces a "witness".
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .bab_bounds import GUARD, Net, lagrangian, lp_certificate, tighten
from .bab_domains import (
    Pool,
    branching_choice,
    children,
    flat_positions,
    leaf_choice,
    root_domain,
    splits_by_layer,
)


@dataclass(frozen=True)
class BabResult:
    status: str  # "proved" | "witness" | "undecided"
    witness: np.ndarray | None  # (input_dim,) float64 input in the box, only when status == "witness"
    domains: int  # branch-and-bound domains bounded
    seconds: float
    best_bound: float  # best float64-valid bound on max(sign * g) found (inf if none)


# ----------------------------------------------------------------------------------------------------------
# float64 numpy forward pass (the only judge of witnesses)


def _target_values(weights, biases, layer, neuron, sign, X) -> np.ndarray:
    """sign * g^layer_neuron(x) for each row of X (n, d), plain float64 numpy."""
    h = np.asarray(X, dtype=np.float64)
    for k in range(layer):
        h = np.maximum(h @ np.asarray(weights[k], dtype=np.float64).T + np.asarray(biases[k], dtype=np.float64), 0.0)
    w = np.asarray(weights[layer], dtype=np.float64)[neuron]
    return sign * (h @ w + float(biases[layer][neuron]))


# ----------------------------------------------------------------------------------------------------------
# witness search


def _attack(P: Net, starts: np.ndarray, steps: int, lr: float, deadline):
    """Projected Adam on x within the box from ``starts`` (n, d); returns the final points (n, d)."""
    x = torch.as_tensor(starts, dtype=torch.float64, device=P.device).clone().requires_grad_(True)
    best_x = x.detach().clone()
    best_v = torch.full((x.shape[0],), -math.inf, dtype=torch.float64, device=P.device)
    m1 = torch.zeros_like(best_x)
    m2 = torch.zeros_like(best_x)
    for t in range(1, steps + 1):
        v = P.forward(x)
        (g,) = torch.autograd.grad(-v.sum(), x)
        with torch.no_grad():
            better = v > best_v
            best_v = torch.where(better, v, best_v)
            best_x[better] = x.detach()[better]
            m1.mul_(0.9).add_(g, alpha=0.1)
            m2.mul_(0.999).addcmul_(g, g, value=0.001)
            x.addcdiv_(m1, (m2 / (1 - 0.999 ** t)).sqrt_().add_(1e-8), value=-lr / (1 - 0.9 ** t))
            x.copy_(torch.maximum(torch.minimum(x, P.hi), P.lo))
        if deadline is not None and time.monotonic() > deadline:
            break
    with torch.no_grad():
        v = P.forward(x)
        better = v > best_v
        best_x[better] = x.detach()[better]
    return best_x.cpu().numpy()


# ----------------------------------------------------------------------------------------------------------
# the prover


def prove_sign(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    lower: np.ndarray,
    upper: np.ndarray,
    layer_bounds: Sequence[tuple[np.ndarray, np.ndarray]],
    layer: int,
    neuron: int,
    sign: int,
    *,
    margin: float = 1e-9,
    witness_margin: float = 1e-9,
    deadline: float | None = None,
    device: str = "cpu",
    seed: int = 0,
    batch_size: int | None = None,
    steps: int = 40,
    root_steps: int = 60,
    max_query_neurons: int = 256,
    lr_alpha: float = 0.1,
    lr_lambda: float = 0.1,
    lr_eta: float = 0.05,
    warmup: int = 5,
    lr_decay: float = 0.97,
    max_pool_bytes: int = 512 * 2**20,
    debug=None,
) -> BabResult:
    """Prove ``max_{x in box} sign * g^layer_neuron(x) <= -margin`` by branch and bound, or find a witness
    ``x`` with ``sign * g(x) > witness_margin`` (float64 numpy forward pass), or give up ("undecided").

    Denormal floats are flushed to zero while it runs (torch.set_flush_denormal; subnormal arithmetic in the
    optimiser's moments is 100x slower on CPU), and the flag is reset to False on return."""
    flushed = torch.set_flush_denormal(True)
    try:
        return _prove_sign(weights, biases, lower, upper, layer_bounds, layer, neuron, sign, margin=margin,
                           witness_margin=witness_margin, deadline=deadline, device=device, seed=seed,
                           batch_size=batch_size, steps=steps, root_steps=root_steps,
                           max_query_neurons=max_query_neurons, lr_alpha=lr_alpha, lr_lambda=lr_lambda,
                           lr_eta=lr_eta, warmup=warmup, lr_decay=lr_decay,
                           max_pool_bytes=max_pool_bytes, debug=debug)
    finally:
        if flushed:
            torch.set_flush_denormal(False)


def _prove_sign(weights, biases, lower, upper, layer_bounds, layer, neuron, sign, *, margin, witness_margin,
                deadline, device, seed, batch_size, steps, root_steps, max_query_neurons, lr_alpha, lr_lambda,
                lr_eta, warmup, lr_decay, max_pool_bytes, debug) -> BabResult:
    t0 = time.monotonic()
    if sign not in (1, -1):
        raise ValueError("sign must be +1 or -1")
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    Ws = [np.asarray(w, dtype=np.float64) for w in weights[: layer + 1]]
    bs = [np.asarray(b, dtype=np.float64) for b in biases[: layer + 1]]
    c_full = sign * Ws[layer][neuron]
    d = sign * float(bs[layer][neuron])
    counters = {"domains": 0}
    best_bound = [math.inf]

    def result(status, witness=None):
        bb = -margin if status == "proved" else best_bound[0]
        return BabResult(status, witness, counters["domains"], time.monotonic() - t0, float(bb))

    def check(X):
        """float64 witness check of candidate inputs (n, d); returns a witness or None."""
        X = np.clip(np.atleast_2d(np.asarray(X, dtype=np.float64)), lo, hi)
        if X.shape[0] == 0:
            return None
        v = _target_values(weights, biases, layer, neuron, sign, X)
        i = int(np.argmax(v))
        if v[i] > witness_margin:
            return X[i].copy()
        return None

    def late():
        return deadline is not None and time.monotonic() > deadline

    if late():
        return result("undecided")

    # ---- layer 0 target: f is linear in x
    if layer == 0:
        g = c_full
        val = np.maximum(g, 0) @ hi + np.minimum(g, 0) @ lo + d
        val = float(val + GUARD * (1 + abs(val) + np.abs(g) @ np.maximum(np.abs(lo), np.abs(hi)) + abs(d)))
        best_bound[0] = val
        if val <= -margin:
            return result("proved")
        w = check(np.where(g > 0, hi, lo))
        return result("witness", w) if w is not None else result("undecided")

    LB = [(np.asarray(l, dtype=np.float64), np.asarray(u, dtype=np.float64)) for l, u in layer_bounds[:layer]]
    root_prio = math.inf
    if len(layer_bounds) > layer:  # the caller's own (box-valid) bound on the target
        ut = float(layer_bounds[layer][1 if sign > 0 else 0][neuron]) * sign
        best_bound[0] = root_prio = ut
        if ut <= -margin:
            return result("proved")
    # ---- drop stably inactive neurons of the layers below (exact: their output is 0 on the box)
    keep = [np.nonzero(u > 0)[0] for (l, u) in LB]
    rW, rb, rlb, rub = [], [], [], []
    for k in range(layer):
        w = Ws[k][keep[k]]
        if k > 0:
            w = w[:, keep[k - 1]]
        rW.append(w)
        rb.append(bs[k][keep[k]])
        rlb.append(LB[k][0][keep[k]])
        rub.append(LB[k][1][keep[k]])
    widths = [len(kk) for kk in keep]
    if min(widths) == 0:  # a layer entirely inactive: the target is the constant d
        val = d + GUARD * (1 + 2 * abs(d))
        best_bound[0] = val
        if val <= -margin:
            return result("proved")
        w = check(lo[None])
        return result("witness", w) if w is not None else result("undecided")
    c = c_full[keep[layer - 1]]

    dev = torch.device(device)
    P = Net(rW, rb, c, d, lo, hi, torch.float64, dev)
    L = layer
    dim = len(lo)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)

    # ---- witness search from random starts
    starts = np.concatenate([(lo + hi)[None] / 2, lo + (hi - lo) * rng.random((15, dim))])
    w = check(_attack(P, starts, 50, 0.05, deadline))
    if w is not None:
        return result("witness", w)

    # ---- query universe: neurons whose bounds get tightened under the hypothesis (both directions)
    lb0 = [torch.as_tensor(x[None], device=dev) for x in rlb]
    ub0 = [torch.as_tensor(x[None], device=dev) for x in rub]
    alpha_root = [np.where(rub[k] > -rlb[k], 1.0, 0.0) for k in range(L)]
    nc0 = np.nonzero((c < 0) & (rlb[L - 1] < 0) & (rub[L - 1] > 0))[0]
    a0 = [torch.as_tensor(a, device=dev)[None, None] for a in alpha_root[:-1]]
    a0.append(torch.as_tensor(alpha_root[-1][nc0], device=dev)[None, None])
    e0 = [torch.zeros(1, 1, 0, dtype=torch.float64, device=dev) for _ in range(L)]
    empty_idx = torch.zeros(0, dtype=torch.long, device=dev)
    U0, _, coefs0, _ = lagrangian(P, lb0, ub0, [(None, None, None)] * L,
                                   torch.zeros(1, 1, dtype=torch.float64, device=dev), a0, e0,
                                   torch.as_tensor(nc0, device=dev), [empty_idx] * L, margin, False)
    best_bound[0] = min(best_bound[0], float(U0[0, 0]))
    if float(U0[0, 0]) <= -margin:
        counters["domains"] = 1
        return result("proved")
    cand = []  # (importance, layer, index)
    for k in range(L):
        l, u = rlb[k], rub[k]
        a = coefs0[k][0].cpu().numpy()
        unst = (l < 0) & (u > 0)
        gap = np.where(unst, -l * u / np.where(unst, u - l, 1.0), 0.0)
        imp = np.abs(a) * gap if k < L - 1 else np.where(a > 0, a * gap, 0.0)
        for i in np.nonzero(unst & (imp > 0))[0]:
            cand.append((float(imp[i]), k, int(i)))
    lpb, xlp, lp_alpha = lp_certificate(rW, rb, c, d, lo, hi, rlb, rub, want_alpha=True)
    if xlp is not None:
        w = check(xlp)
        if w is not None:
            return result("witness", w)
    if lpb <= -margin:
        counters["domains"] = 1
        return result("proved")
    best_bound[0] = min(best_bound[0], lpb)
    root_prio = min(root_prio, lpb)
    if lp_alpha is not None:
        for k in range(L):
            alpha_root[k] = np.where(np.isnan(lp_alpha[k]), alpha_root[k], lp_alpha[k])
    cand.sort(reverse=True)
    cand = cand[:max_query_neurons]
    uni_layer = np.array([k for _, k, _ in cand], dtype=np.int64)
    uni_idx = np.array([i for _, _, i in cand], dtype=np.int64)
    nU = len(cand)
    sum_n = sum(widths)
    layer_of, pos_of = flat_positions(widths)
    # stored query alphas (uint8, alpha * 255): dense on the lower layers, on the root's c < 0 unstable
    # columns of the top layer (the only top-layer columns where alpha is ever used)
    a_off = np.concatenate([[0], np.cumsum(widths[:-1])]).astype(np.int64)
    top_pos = np.full(widths[-1], -1, dtype=np.int64)
    top_pos[nc0] = np.arange(len(nc0))

    def acol_index(k, cols):
        return a_off[k] + (cols if k < L - 1 else top_pos[cols])

    # ---- batch size from a budget on the (B, Q, n) tensors and the (B, Q, d) product
    per = (1 + 2 * nU) * (sum_n * 12 + dim * 3 + sum(widths[k] * (widths[k - 1] if k else dim) for k in range(L)) // 64)
    if batch_size is None:
        batch_size = int(max(2, min(256, 4e7 // max(per, 1))))

    def t64(a):
        return torch.as_tensor(a, dtype=torch.float64, device=dev)

    def bound_batch(batch, nsteps):
        """Optimise the joint Lagrangian by projected Adam, in float64 with the rounding guard and valid
        bounds only, so that every evaluation is a certified bound: the domains' bounds are tightened after
        every step (the chain), the target bound is the best seen.  Settled domains (bound <= -margin or
        an empty interval) leave the batch.  Returns numpy arrays."""
        B = batch["prio"].shape[0]
        # active queries: universe neurons unstable and unsplit in some domain of the batch
        act_q = np.zeros((B, nU), dtype=bool)
        for k in range(L):
            sel = uni_layer == k
            if sel.any():
                ii = uni_idx[sel]
                act_q[:, sel] = ((batch["lb"][k][:, ii] < 0) & (batch["ub"][k][:, ii] > 0)
                                 & (batch["split"][k][:, ii] == 0))
        qs = np.nonzero(act_q.any(0))[0]
        nq = len(qs)
        Q = 1 + 2 * nq
        inject = []
        for k in range(L):
            selq = np.nonzero(uni_layer[qs] == k)[0]
            if len(selq) == 0:
                inject.append((None, None, None))
                continue
            qi = torch.as_tensor(np.concatenate([1 + selq, 1 + nq + selq]), device=dev)
            ni = torch.as_tensor(np.concatenate([uni_idx[qs[selq]], uni_idx[qs[selq]]]), device=dev)
            sg = np.concatenate([np.ones(len(selq)), -np.ones(len(selq))])
            inject.append((qi, ni, t64(sg)))
        qmask = torch.ones(B, Q, dtype=torch.float64, device=dev)
        if nq:
            am = t64(act_q[:, qs].astype(np.float64))
            qmask[:, 1:1 + nq] = am
            qmask[:, 1 + nq:] = am
        # parameter columns: top-layer alpha where c < 0 and some domain is unstable; eta on split columns
        top_unst = ((batch["lb"][L - 1] < 0) & (batch["ub"][L - 1] > 0)).any(0)
        ncols_np = np.nonzero(top_unst & (c < 0))[0]
        ecols_np = [np.nonzero((batch["split"][k] != 0).any(0))[0] for k in range(L)]
        ncols = torch.as_tensor(ncols_np, device=dev)
        ecols = [torch.as_tensor(x, device=dev) for x in ecols_np]
        acols_np = [np.arange(n) for n in widths[:-1]] + [ncols_np]
        # parameters (warm start from the domain's stored values)
        lam = torch.zeros(B, Q, dtype=torch.float64, device=dev)
        if nq:
            lam[:, 1:1 + nq] = t64(batch["qlam"][:, qs])
            lam[:, 1 + nq:] = t64(batch["qlam"][:, nU + qs])
        alpha, eta = [], []
        posS = []
        for k in range(L):
            ac, ecl = acols_np[k], ecols_np[k]
            ta = t64(batch["alpha"][k][:, ac])[:, None, :].expand(B, Q, len(ac)).clone()
            te = t64(batch["eta"][k][:, ecl])[:, None, :].expand(B, Q, len(ecl)).clone()
            if nq:
                qa = batch["qalpha"][:, :, acol_index(k, ac)]
                ta[:, 1:1 + nq] = t64(qa[:, qs].astype(np.float64) / 255.0)
                ta[:, 1 + nq:] = t64(qa[:, nU + qs].astype(np.float64) / 255.0)
            alpha.append(ta)
            eta.append(te)
            ps = np.full(widths[k], -1, dtype=np.int64)
            ps[ecl] = np.arange(len(ecl))
            posS.append(ps)
        sorder = batch["sorder"]
        if nq:
            for t_, k, rr in splits_by_layer(sorder, layer_of, L):
                p_ = torch.as_tensor(posS[k][pos_of[sorder[rr, t_]]], device=dev)
                rt = torch.as_tensor(rr, device=dev)
                qe = batch["qeta"][rr, :, t_].astype(np.float64)  # (r, 2 nU)
                eta[k][rt, 1:1 + nq, p_] = t64(qe[:, qs])
                eta[k][rt, 1 + nq:, p_] = t64(qe[:, nU + qs])
        spS = [t64(batch["split"][k][:, ecols_np[k]])[:, None, :] for k in range(L)]

        def project(params, spS):
            params[0].clamp_(min=0.0)
            params[0][:, 0] = 0.0
            for k in range(L):
                params[1 + k].clamp_(0.0, 1.0)
                e = params[1 + L + k]
                s_ = spS[k]
                e.copy_(torch.where(s_ > 0, e.clamp(min=0.0), torch.where(s_ < 0, e.clamp(max=0.0), torch.zeros_like(e))))

        params = [lam] + alpha + eta
        project(params, spS)
        out_params = [p.clone() for p in params]
        tgt = [p[:, 0].clone() for p in params[1:]]  # the target row's alpha/eta at its best bound
        lb64 = [t64(a) for a in batch["lb"]]
        ub64 = [t64(a) for a in batch["ub"]]
        best64 = t64(batch["prio"]).clone()
        empty64 = torch.zeros(B, dtype=torch.bool, device=dev)
        A64 = torch.zeros(B, dim, dtype=torch.float64, device=dev)
        A_set = torch.zeros(B, dtype=torch.bool, device=dev)
        cf64 = [torch.zeros(B, n, dtype=torch.float64, device=dev) for n in widths]
        rows = torch.arange(B, device=dev)
        lr_list = [lr_lambda] + [lr_alpha] * L + [lr_eta] * L
        m1 = [torch.zeros_like(p) for p in params]
        m2 = [torch.zeros_like(p) for p in params]
        b1, b2 = 0.9, 0.999
        nsteps = max(1, nsteps)
        for step in range(nsteps):
            last = step == nsteps - 1 or late()
            llb = [x[rows] for x in lb64]
            lub = [x[rows] for x in ub64]
            U, A, cf, grads = lagrangian(P, llb, lub, inject, params[0], params[1:1 + L], params[1 + L:], ncols,
                                          ecols, margin, not last)
            llb, lub, em = tighten(U, llb, lub, inject)
            old = best64[rows]
            improved = (U[:, 0] < old) | ~A_set[rows]
            A64[rows] = torch.where(improved[:, None], A, A64[rows])
            ri = rows[improved]
            for tp, p in zip(tgt, params[1:]):
                tp[ri] = p[improved, 0]
            A_set[rows] = True
            best64[rows] = torch.minimum(old, U[:, 0])
            empty64[rows] |= em
            for k in range(L):
                lb64[k][rows] = llb[k]
                ub64[k][rows] = lub[k]
                cf64[k][rows] = cf[k]
            done = empty64[rows] | (best64[rows] <= -margin)
            if done.any() or last:
                fin = torch.ones_like(done) if last else done
                for o, p in zip(out_params, params):
                    o[rows[fin]] = p[fin]
                if last:
                    break
                keep_ = ~done
                rows = rows[keep_]
                if rows.numel() == 0:
                    break
                spS = [x[keep_] for x in spS]
                qmask = qmask[keep_]
                params = [p[keep_] for p in params]
                m1 = [x[keep_] for x in m1]
                m2 = [x[keep_] for x in m2]
                glam, gal, get_ = grads
                grads = (glam[keep_], [x[keep_] for x in gal], [x[keep_] for x in get_])
            glam, gal, get_ = grads
            gs = [glam * qmask] + [x * qmask[..., None] for x in gal] + [x * qmask[..., None] for x in get_]
            t = step + 1
            c1, c2 = 1 - b1 ** t, 1 - b2 ** t
            sched = (min(1.0, t / warmup) if warmup > 0 else 1.0) * lr_decay ** t
            for p, g_, ma, va, lr in zip(params, gs, m1, m2, lr_list):
                ma.mul_(b1).add_(g_, alpha=1 - b1)
                va.mul_(b2).addcmul_(g_, g_, value=1 - b2)
                p.addcdiv_(ma, va.div(c2).sqrt_().add_(1e-8), value=-lr * sched / c1)
            project(params, spS)
        best = torch.where(empty64, torch.full_like(best64, -math.inf), best64)
        lam, alpha, eta = out_params[0], out_params[1:1 + L], out_params[1 + L:]
        out = {
            "bound": best.cpu().numpy(),
            "lb": [x.cpu().numpy() for x in lb64],
            "ub": [x.cpu().numpy() for x in ub64],
            "xmax": torch.where(A64 > 0, P.hi, P.lo).cpu().numpy(),
            "coefs": [x.cpu().numpy() for x in cf64],
            "alpha": [x.copy() for x in batch["alpha"]],
            "eta": [x.copy() for x in batch["eta"]],
            "qlam": batch["qlam"].copy(),
            "qalpha": None,
            "qeta": None,
        }
        for k in range(L):
            out["alpha"][k][:, acols_np[k]] = tgt[k].float().cpu().numpy()
            out["eta"][k][:, ecols_np[k]] = tgt[L + k].float().cpu().numpy()
        if nq:
            lm = lam.float().cpu().numpy()
            out["qlam"][:, qs] = lm[:, 1:1 + nq]
            out["qlam"][:, nU + qs] = lm[:, 1 + nq:]
        qa = batch["qalpha"].copy()
        qe = batch["qeta"].copy()
        if nq:
            bi = np.arange(B)
            for k in range(L):
                ak = np.rint(alpha[k].cpu().numpy() * 255.0).astype(np.uint8)
                ca = acol_index(k, acols_np[k])
                qa[np.ix_(bi, qs, ca)] = ak[:, 1:1 + nq]
                qa[np.ix_(bi, nU + qs, ca)] = ak[:, 1 + nq:]
            for t_, k, rr in splits_by_layer(sorder, layer_of, L):
                p_ = posS[k][pos_of[sorder[rr, t_]]]
                ek = eta[k][torch.as_tensor(rr, device=dev)].cpu().numpy()  # (r, Q, |S|)
                vals = ek[np.arange(len(rr)), :, p_]  # (r, Q)
                qe[np.ix_(rr, qs, [t_])] = vals[:, 1:1 + nq, None].astype(np.float16)
                qe[np.ix_(rr, nU + qs, [t_])] = vals[:, 1 + nq:, None].astype(np.float16)
        out["qalpha"], out["qeta"] = qa, qe
        return out

    # ---- root domain
    pool = Pool(widths)
    pool.push(root_domain(rlb, rub, alpha_root, nc0, nU, root_prio))
    first = True
    stuck = 0  # leaves neither pruned nor splittable
    stuck_max = -math.inf  # the best valid bound over the stuck leaves
    while pool.n:
        if late():
            return result("undecided")
        if pool.nbytes() > max_pool_bytes:
            return result("undecided")
        batch = pool.pop(batch_size)
        B = batch["prio"].shape[0]
        out = bound_batch(batch, root_steps if first else steps)
        first = False
        counters["domains"] += B
        bnd = out["bound"]
        if debug is not None:
            debug({"split": [x.copy() for x in batch["split"]], "lb": out["lb"], "ub": out["ub"], "bound": bnd,
                   "keep": [k_.copy() for k_ in keep]})
        w = check(out["xmax"])
        if w is not None:
            return result("witness", w)
        open_ = bnd > -margin
        best_bound[0] = min(best_bound[0], max(-margin, float(bnd.max()), pool.max_prio(), stuck_max))
        if late():
            return result("undecided")
        if not open_.any():
            continue
        order = np.argsort(-bnd)[: min(8, int(open_.sum()))]
        w = check(_attack(P, out["xmax"][order], 20, 0.02, deadline))
        if w is not None:
            return result("witness", w)
        idx = np.nonzero(open_)[0]
        best_score, best_layer, best_neuron = branching_choice(
            [x[idx] for x in out["lb"]], [x[idx] for x in out["ub"]], [x[idx] for x in out["coefs"]],
            [x[idx] for x in batch["split"]])
        leaf = best_score <= 0
        for pos in np.nonzero(leaf)[0]:
            if late():
                return result("undecided")
            i = idx[pos]
            lbs = [x[i] for x in out["lb"]]
            ubs = [x[i] for x in out["ub"]]
            lpb, xlp = lp_certificate(rW, rb, c, d, lo, hi, lbs, ubs)
            if xlp is not None:
                w = check(xlp)
                if w is not None:
                    return result("witness", w)
            if lpb <= -margin:
                best_score[pos] = -2.0
                continue
            bsc, bk, bj = leaf_choice(lbs, ubs, [x[i] for x in out["coefs"]], [x[i] for x in batch["split"]])
            if bk < 0:
                stuck += 1
                stuck_max = max(stuck_max, min(float(bnd[i]), lpb))
                best_score[pos] = -2.0
            else:
                best_score[pos], best_layer[pos], best_neuron[pos] = bsc, bk, bj
            if late():
                return result("undecided")
        go = best_score > 0
        idx, bl, bn = idx[go], best_layer[go], best_neuron[go]
        if len(idx) == 0:
            continue
        pool.push(children(batch, out, idx, bl, bn))
    if stuck:
        return result("undecided")
    return result("proved")
