"""One bounding pass of branch and bound (``bab``) over a batch of domains (``bab_domains``): projected Adam on
the joint Lagrangian (``bab_bounds.lagrangian``) of the target and the queries of the query universe.

The Adam steps run in float32; every ``CERTIFY_EVERY``-th evaluation (and the first and last few) is float64 with
valid bounds and projected parameters, so it is a certified bound: the domains' bounds are intersected with
its query results (``bab_bounds.tighten``; the tightened bounds feed the next steps, an empty interval proves
the hypothesis set empty), and the target bound is the best certified one.  Parameters are warm-started from
the domain's stored values and stored back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.optim.adam import adam

from .bab_bounds import Net, lagrangian, tighten
from .bab_domains import flat_positions, quantized_alpha, splits_by_layer

MAX_QUERY_NEURONS = 256  # size of the query universe
LR_LAMBDA = 0.3  # Adam learning rates of the hypothesis multipliers lam, the slopes alpha, the bound rows eta
LR_ALPHA = 0.1
LR_ETA = 0.05
WARMUP = 5  # steps of linear learning-rate warm-up
LR_DECAY = 0.97  # learning-rate factor per step
#: lam's rate in domains with fewer than LAMBDA_SHALLOW_SPLITS splits (the root's included): LR_LAMBDA there doubled
#: one question's tree (d784-2x400-l1_1e-5's neuron 5: 351 -> 717 domains), while deeper in the trees it bounds
#: 5-8% fewer domains than this rate throughout (d64-2x100-l1_0's neurons 8, 78, 60: 2,361 -> 2,187; the five
#: hardest of d64-2x200-l1_0: 6,525 -> 6,171; that neuron 5: 379); ``benchmarks/README.md``
LR_LAMBDA_SHALLOW = 0.1
LAMBDA_SHALLOW_SPLITS = 4
#: the smallest factor a domain's Adam steps are scaled by (see ``Bounder._optimise``): deep in a tree dozens of
#: split multipliers each moved by a full first step can lift a warm-started bound 100-fold
LR_MIN_SCALE = 1 / 64
ADAM_BETAS = (0.9, 0.999)
#: a float64 evaluation (the only kind that tightens bounds or settles a domain) every this many Adam steps,
#: and at each of the last CERTIFIED_TAIL steps (where the decayed steps settle); the others run in float32.
#: On d64-2x100-l1_0's three hardest questions: float64 throughout 11.3 s (2,713 domains), every 4th 10.7 s
#: (3,235), every 4th and the last 4 8.9-9.7 s (2,917)
CERTIFY_EVERY = 4
CERTIFIED_TAIL = 4
#: the float32 steps follow the box term Huber-smoothed at this fraction of each row's rms (``bab_bounds.box_max``):
#: d64-2x100-l1_0's three hardest questions 2,919 -> 2,361 domains (benchmarks/README.md, "A smoothed box term")
BOX_SMOOTHING = 0.1


@dataclass(frozen=True)
class QueryUniverse:
    """The neurons below the target whose bounds get tightened under the hypothesis, both directions: query
    ``1 + j`` of a batch's universe asks for an upper bound of ``z`` of neuron j (``layer[j]``, ``index[j]``),
    query ``1 + nU + j`` for one of ``-z`` (nU = ``len(layer)``).

    Stored query alphas (``qalpha`` of a batch) have dense columns for the lower layers and, for the top
    layer, columns only for the root's unstable neurons with c < 0 (the only top-layer columns where alpha is
    ever used): ``alpha_columns`` maps layer-k neuron columns to them."""

    layer: np.ndarray  # (nU,) int64
    index: np.ndarray  # (nU,) int64
    layer_offset: np.ndarray  # (depth,) int64: first stored column of each layer
    top_position: np.ndarray  # (n_{L-1},) int64: stored column of a top-layer neuron (offset excluded), -1 none

    @classmethod
    def at_root(cls, coefs, lb, ub, top_cols, max_neurons=MAX_QUERY_NEURONS) -> QueryUniverse:
        """The ``max_neurons`` unstable neurons with the largest importance ``|a| * (-l u / (u - l))`` (``a``:
        the target's root coefficients ``coefs``, lists of (n_k,); on the top layer only a > 0 counts);
        ``top_cols``: the root's top-layer columns with c < 0, unstable."""
        depth = len(lb)
        cand = []  # (importance, layer, index)
        for k in range(depth):
            l, u, a = lb[k], ub[k], coefs[k]
            unst = (l < 0) & (u > 0)
            gap = np.where(unst, -l * u / np.where(unst, u - l, 1.0), 0.0)
            imp = np.abs(a) * gap if k < depth - 1 else np.where(a > 0, a * gap, 0.0)
            for i in np.nonzero(unst & (imp > 0))[0]:
                cand.append((float(imp[i]), k, int(i)))
        cand.sort(reverse=True)
        cand = cand[:max_neurons]
        widths = [len(x) for x in lb]
        top_position = np.full(widths[-1], -1, dtype=np.int64)
        top_position[top_cols] = np.arange(len(top_cols))
        return cls(layer=np.array([k for _, k, _ in cand], dtype=np.int64),
                   index=np.array([i for _, _, i in cand], dtype=np.int64),
                   layer_offset=np.concatenate([[0], np.cumsum(widths[:-1])]).astype(np.int64),
                   top_position=top_position)

    @property
    def size(self) -> int:
        return len(self.layer)

    def alpha_columns(self, k, cols):
        """Stored query-alpha columns of the layer-k neuron columns ``cols``."""
        depth = len(self.layer_offset)
        return self.layer_offset[k] + (cols if k < depth - 1 else self.top_position[cols])


def default_batch_size(n_queries, widths, dim) -> int:
    """Domains per batch from a budget on the (B, Q, n) tensors and the (B, Q, d) product."""
    depth = len(widths)
    per = (1 + 2 * n_queries) * (sum(widths) * 12 + dim * 3
                                 + sum(widths[k] * (widths[k - 1] if k else dim) for k in range(depth)) // 64)
    return int(max(2, min(256, 4e7 // max(per, 1))))


def lam_step_factors(lr_scale, sorder):
    """(B,) the factor of LR_LAMBDA's Adam step for each domain's hypothesis multipliers: its step factor
    ``lr_scale`` (B,) float32 tensor, times LR_LAMBDA_SHALLOW / LR_LAMBDA where it has fewer than LAMBDA_SHALLOW_SPLITS
    splits (``sorder`` (B, t) numpy, the neuron split at each step, -1: none)."""
    shallow = (np.asarray(sorder) >= 0).sum(1) < LAMBDA_SHALLOW_SPLITS
    factor = np.where(shallow, LR_LAMBDA_SHALLOW / LR_LAMBDA, 1.0)
    return lr_scale * torch.as_tensor(factor, dtype=lr_scale.dtype, device=lr_scale.device)


def _adam_step(params, grads, m1, m2, lrs, t):
    """Adam step ``t`` (from 1) in place on ``params`` with moments m1/m2, learning rates ``lrs`` scaled by
    a linear warm-up over WARMUP steps and a decay by LR_DECAY per step.

    torch's fused Adam kernel (``torch.optim.adam.adam(fused=True)``: one pass over each tensor; the same
    update as written out with in-place ops, 3.4x faster on the (B, Q, n) parameters of a 64-input 2x200 net,
    where those ops took 27% of the bounding loop). The kernel reads every tensor as contiguous memory, so a
    strided one is refused (ValueError) rather than updated wrongly."""
    sched = min(1.0, t / WARMUP) * LR_DECAY ** t
    b1, b2 = ADAM_BETAS
    for p, g_, ma, va, lr in zip(params, grads, m1, m2, lrs):
        if not all(x.is_contiguous() for x in (p, g_, ma, va)):
            raise ValueError("Adam step on a strided tensor: the fused kernel needs contiguous ones")
        step = torch.tensor(float(t - 1), dtype=torch.float32, device=p.device)  # the kernel counts it up to t
        adam([p], [g_], [ma], [va], [], [step], fused=True, amsgrad=False, beta1=b1, beta2=b2, lr=lr * sched,
             weight_decay=0.0, eps=1e-8, maximize=False)


@dataclass
class _Optimised:
    """The outcome of the Adam loop for B domains (torch: bounds float64, parameters float32)."""

    params: list  # [lam (B, Q)] + alpha (depth) + eta (depth): each domain's parameters when it left the loop
    target: list  # alpha + eta of the target query (B, .) at the best of the loop's own evaluations
    lb: list  # (B, n_k) tightened bounds
    ub: list
    bound: torch.Tensor  # (B,) best target bound: the batch's ``prio`` (the parent's) or a better own one
    empty: torch.Tensor  # (B,) bool: hypothesis set proved empty
    x_coefs: torch.Tensor  # (B, d) the target's x-coefficients at the best of the loop's own evaluations
    coefs: list  # (B, n_k) the target's coefficients on h^k at the last evaluation
    steps: int  # the loop's steps: fewer than asked only when ``late()`` cut it short
    lr: torch.Tensor  # (B,) float32 the step factor for the domains' children (``bab_domains``: ``lr``)


class Bounder:
    """Bounds batches of domains of one question: the network ``P`` (target f = c . h^{L-1} + d), the query
    universe, the question's ``margin`` (proved: bound <= -margin) and ``late()`` (the deadline has passed:
    the current step is the last)."""

    def __init__(self, P: Net, universe: QueryUniverse, margin: float, late: Callable[[], bool]):
        self.P, self.universe, self.margin, self.late = P, universe, margin, late
        self.P32 = P.with_dtype(torch.float32)
        self.widths = [b.shape[0] for b in P.b]
        self.depth = len(self.widths)
        self.neg_c = (P.c < 0).cpu().numpy()
        self.layer_of, self.pos_of = flat_positions(self.widths)

    def _t64(self, a):
        return torch.as_tensor(a, dtype=torch.float64, device=self.P.device)

    def bound(self, batch, nsteps):
        """Bound a batch with ``nsteps`` Adam steps; domains settled (bound <= -margin or an empty interval)
        leave the loop early.  Returns numpy arrays: ``bound`` (B,) (-inf: hypothesis set empty), ``lb``/``ub``
        (tightened), ``xmax`` (B, d) the box corner maximising the target's relaxation, ``coefs`` (the target's
        coefficients on each h^k), the warm starts ``alpha``, ``eta``, ``qlam``, ``qalpha``, ``qeta`` and ``steps``
        (int: the steps run, fewer than ``nsteps`` only when ``late()`` cut them short).
        The batch's ``lb``/``ub`` arrays may be overwritten."""
        qs, inject, qmask = self._queries(batch)
        ncols_np, ecols_np = self._columns(batch)
        params, eta_pos = self._warm_start(batch, qs, ncols_np, ecols_np)
        dev = self.P.device
        ncols = torch.as_tensor(ncols_np, device=dev)
        ecols = [torch.as_tensor(x, device=dev) for x in ecols_np]
        split = [self._t64(batch["split"][k][:, ecols_np[k]])[:, None, :] for k in range(self.depth)]
        opt = self._optimise(batch, params, split, qmask, inject, ncols, ecols, nsteps)
        return self._stored(batch, opt, qs, ncols_np, ecols_np, eta_pos)

    def _queries(self, batch):
        """The batch's queries: universe neurons unstable and unsplit in some domain.  Returns (qs: their
        universe indices (nq,), inject: per layer (query rows, neuron columns, signs) for ``lagrangian``,
        qmask (B, 1 + 2 nq): 1 where the query is open in the domain; the target row is always 1)."""
        U, dev = self.universe, self.P.device
        B = batch["prio"].shape[0]
        act_q = np.zeros((B, U.size), dtype=bool)
        for k in range(self.depth):
            sel = U.layer == k
            if sel.any():
                ii = U.index[sel]
                act_q[:, sel] = ((batch["lb"][k][:, ii] < 0) & (batch["ub"][k][:, ii] > 0)
                                 & (batch["split"][k][:, ii] == 0))
        qs = np.nonzero(act_q.any(0))[0]
        nq = len(qs)
        inject = []
        for k in range(self.depth):
            selq = np.nonzero(U.layer[qs] == k)[0]
            if len(selq) == 0:
                inject.append((None, None, None))
                continue
            qi = torch.as_tensor(np.concatenate([1 + selq, 1 + nq + selq]), device=dev)
            ni = torch.as_tensor(np.concatenate([U.index[qs[selq]], U.index[qs[selq]]]), device=dev)
            sg = np.concatenate([np.ones(len(selq)), -np.ones(len(selq))])
            inject.append((qi, ni, self._t64(sg)))
        qmask = torch.ones(B, 1 + 2 * nq, dtype=torch.float64, device=dev)
        if nq:
            am = self._t64(act_q[:, qs].astype(np.float64))
            qmask[:, 1:1 + nq] = am
            qmask[:, 1 + nq:] = am
        return qs, inject, qmask

    def _columns(self, batch):
        """Parameter columns: top-layer alpha where c < 0 and some domain is unstable (ncols); eta on the
        columns split in some domain (ecols, per layer)."""
        top = self.depth - 1
        top_unst = ((batch["lb"][top] < 0) & (batch["ub"][top] > 0)).any(0)
        ncols = np.nonzero(top_unst & self.neg_c)[0]
        ecols = [np.nonzero((batch["split"][k] != 0).any(0))[0] for k in range(self.depth)]
        return ncols, ecols

    def _alpha_columns(self, ncols):
        return [np.arange(n) for n in self.widths[:-1]] + [ncols]

    def _warm_start(self, batch, qs, ncols, ecols):
        """Parameters [lam (B, Q)] + alpha + eta (each (B, Q, columns)) from the domains' stored values, and
        each layer's position of a neuron among the eta columns (-1: none)."""
        U, L, dev = self.universe, self.depth, self.P.device
        B = batch["prio"].shape[0]
        nU, nq = U.size, len(qs)
        Q = 1 + 2 * nq
        t64 = self._t64
        lam = torch.zeros(B, Q, dtype=torch.float64, device=dev)
        if nq:
            lam[:, 1:1 + nq] = t64(batch["qlam"][:, qs])
            lam[:, 1 + nq:] = t64(batch["qlam"][:, nU + qs])
        alpha, eta, eta_pos = [], [], []
        for k, ac in enumerate(self._alpha_columns(ncols)):
            ecl = ecols[k]
            ta = t64(batch["alpha"][k][:, ac])[:, None, :].expand(B, Q, len(ac)).contiguous()
            te = t64(batch["eta"][k][:, ecl])[:, None, :].expand(B, Q, len(ecl)).contiguous()
            if nq:
                qa = batch["qalpha"][:, :, U.alpha_columns(k, ac)]
                ta[:, 1:1 + nq] = t64(qa[:, qs].astype(np.float64) / 255.0)
                ta[:, 1 + nq:] = t64(qa[:, nU + qs].astype(np.float64) / 255.0)
            alpha.append(ta)
            eta.append(te)
            ps = np.full(self.widths[k], -1, dtype=np.int64)
            ps[ecl] = np.arange(len(ecl))
            eta_pos.append(ps)
        sorder = batch["sorder"]
        if nq:
            for t_, k, rr in splits_by_layer(sorder, self.layer_of, L):
                p_ = torch.as_tensor(eta_pos[k][self.pos_of[sorder[rr, t_]]], device=dev)
                rt = torch.as_tensor(rr, device=dev)
                qe = batch["qeta"][rr, :, t_].astype(np.float64)  # (r, 2 nU)
                eta[k][rt, 1:1 + nq, p_] = t64(qe[:, qs])
                eta[k][rt, 1 + nq:, p_] = t64(qe[:, nU + qs])
        return [lam] + alpha + eta, eta_pos

    def _project(self, params, split):
        """lam >= 0 (0 for the target row), alpha in [0, 1], eta >= 0 on active splits, <= 0 on inactive
        ones, 0 on unsplit columns (``split``: per layer (B, 1, |ecols|))."""
        L = self.depth
        params[0].clamp_(min=0.0)
        params[0][:, 0] = 0.0
        for k in range(L):
            params[1 + k].clamp_(0.0, 1.0)
            e = params[1 + L + k]
            s_ = split[k]
            e.copy_(torch.where(s_ > 0, e.clamp(min=0.0), torch.where(s_ < 0, e.clamp(max=0.0), torch.zeros_like(e))))

    def _optimise(self, batch, params, split, qmask, inject, ncols, ecols, nsteps) -> _Optimised:
        """Projected Adam with the hand-written gradients of ``lagrangian``.  The Adam steps run in float32
        (``P32``, 2-4x faster than float64 per evaluation), without the rounding guard and the passes that size it,
        on a working copy of the bounds that their own results tighten; that copy only steers the optimisation.
        The first, every ``CERTIFY_EVERY``-th and the last ``CERTIFIED_TAIL`` evaluations are float64 on the certified
        bounds (valid for any projected parameters): only they tighten the domains' bounds, set the best target bound
        and settle domains (bound <= -margin or an empty interval), which then leave the loop."""
        P, L, dev, margin = self.P, self.depth, self.P.device, self.margin
        B = batch["prio"].shape[0]
        params = [p.to(torch.float32) for p in params]
        split = [x.to(torch.float32) for x in split]
        qmask = qmask.to(torch.float32)
        inject32 = [(qi, ni, None if sg is None else sg.to(torch.float32)) for qi, ni, sg in inject]
        self._project(params, split)
        out_params = [p.clone() for p in params]
        tgt = [p[:, 0].clone() for p in params[1:]]  # the target row's alpha/eta at its best own evaluation
        lb64 = [self._t64(a) for a in batch["lb"]]
        ub64 = [self._t64(a) for a in batch["ub"]]
        best64 = self._t64(batch["prio"]).clone()  # the certified bound: the parent's, or one of this bounding's
        own64 = torch.full((B,), math.inf, dtype=torch.float64, device=dev)  # the best of this bounding's own
        empty64 = torch.zeros(B, dtype=torch.bool, device=dev)
        A64 = torch.zeros(B, P.lo.shape[0], dtype=torch.float64, device=dev)
        cf64 = [torch.zeros(B, n, dtype=torch.float64, device=dev) for n in self.widths]
        rows = torch.arange(B, device=dev)
        lr_list = [LR_LAMBDA] + [LR_ALPHA] * L + [LR_ETA] * L
        lr_scale = torch.as_tensor(batch["lr"], dtype=torch.float32, device=dev)  # (B,) each domain's step factor
        lam_scale = lam_step_factors(lr_scale, batch["sorder"])
        first64 = None  # (B,) the target's bound at the warm start (the first evaluation)
        m1 = [torch.zeros_like(p) for p in params]
        m2 = [torch.zeros_like(p) for p in params]
        nsteps = max(1, nsteps)
        steps_run = nsteps
        for step in range(nsteps):
            last = step == nsteps - 1 or self.late()
            if last or step % CERTIFY_EVERY == 0 or step >= nsteps - CERTIFIED_TAIL:
                llb = [x[rows] for x in lb64]
                lub = [x[rows] for x in ub64]
                p64 = [p.double() for p in params]
                U, A, cf, _ = lagrangian(P, llb, lub, inject, p64[0], p64[1:1 + L], p64[1 + L:], ncols, ecols,
                                         margin, False)
                llb, lub, em = tighten(U, llb, lub, inject)
                # the target's parameters are kept at the best of this bounding's own evaluations, not only where
                # one beats the parent's bound: with bounds tightened under the hypothesis a child's bound at its
                # parent's parameters can be far above the parent's, and warm starts that kept the first
                # evaluation's parameters then carried no progress down the tree (benchmarks/README.md)
                improved = U[:, 0] < own64[rows]
                A64[rows] = torch.where(improved[:, None], A, A64[rows])
                ri = rows[improved]
                for tp, p in zip(tgt, params[1:]):
                    tp[ri] = p[improved, 0]
                own64[rows] = torch.minimum(own64[rows], U[:, 0])
                if first64 is None:
                    first64 = U[:, 0].clone()
                best64[rows] = torch.minimum(best64[rows], U[:, 0])
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
                        steps_run = step + 1
                        break
                    keep_ = ~done
                    rows = rows[keep_]
                    if rows.numel() == 0:
                        break
                    split = [x[keep_] for x in split]
                    qmask = qmask[keep_]
                    params = [p[keep_] for p in params]
                    m1 = [x[keep_] for x in m1]
                    m2 = [x[keep_] for x in m2]
                work_lb = [x[rows].to(torch.float32) for x in lb64]
                work_ub = [x[rows].to(torch.float32) for x in ub64]
            U32, _, _, (glam, gal, get_) = lagrangian(self.P32, work_lb, work_ub, inject32, params[0],
                                                      params[1:1 + L], params[1 + L:], ncols, ecols, margin, True,
                                                      guard=False, smoothing=BOX_SMOOTHING)
            work_lb, work_ub, _ = tighten(U32, work_lb, work_ub, inject32)
            gs = [glam * qmask] + [x * qmask[..., None] for x in gal] + [x * qmask[..., None] for x in get_]
            # (factor, rows below 1) per parameter: lam's own, then the domain's for alpha and eta
            scaled = [(f, torch.nonzero(f < 1.0).flatten()) for f in (lam_scale[rows], lr_scale[rows])]
            scaled = scaled[:1] + scaled[1:] * (2 * L)
            before = [p[rs] if rs.numel() else None for p, (_, rs) in zip(params, scaled)]
            _adam_step(params, gs, m1, m2, lr_list, step + 1)
            for p, b, (f, rs) in zip(params, before, scaled):  # those domains take only their factor of the step
                if b is not None:
                    p[rs] = b + f[rs].view(-1, *[1] * (p.dim() - 1)) * (p[rs] - b)
            self._project(params, split)
        # a domain whose steps never bounded it below its warm start passes its children half its step factor (at
        # most down to LR_MIN_SCALE), one whose steps did, twice it (at most 1); a bounding that a deadline cut within
        # its first CERTIFY_EVERY steps says too little, and passes its factors on unchanged
        lr_next = lr_scale
        if steps_run > CERTIFY_EVERY:
            lr_next = torch.where(own64 < first64, (lr_scale * 2).clamp(max=1.0),
                                  (lr_scale / 2).clamp(min=LR_MIN_SCALE))
        return _Optimised(out_params, tgt, lb64, ub64, best64, empty64, A64, cf64, steps_run, lr_next)

    def _stored(self, batch, opt: _Optimised, qs, ncols, ecols, eta_pos):
        """The numpy outcome of ``bound``, the warm starts written back into copies of the batch's."""
        P, U, L, dev = self.P, self.universe, self.depth, self.P.device
        B = batch["prio"].shape[0]
        nU, nq = U.size, len(qs)
        acols = self._alpha_columns(ncols)
        best = torch.where(opt.empty, torch.full_like(opt.bound, -math.inf), opt.bound)
        lam, alpha, eta = opt.params[0], opt.params[1:1 + L], opt.params[1 + L:]
        out = {
            "bound": best.cpu().numpy(),
            "lb": [x.cpu().numpy() for x in opt.lb],
            "ub": [x.cpu().numpy() for x in opt.ub],
            "xmax": torch.where(opt.x_coefs > 0, P.hi, P.lo).cpu().numpy(),
            "coefs": [x.cpu().numpy() for x in opt.coefs],
            "steps": opt.steps,
            "lr": opt.lr.cpu().numpy(),
            "alpha": [x.copy() for x in batch["alpha"]],
            "eta": [x.copy() for x in batch["eta"]],
            "qlam": batch["qlam"].copy(),
        }
        for k in range(L):
            out["alpha"][k][:, acols[k]] = opt.target[k].float().cpu().numpy()
            out["eta"][k][:, ecols[k]] = opt.target[L + k].float().cpu().numpy()
        if nq:
            lm = lam.float().cpu().numpy()
            out["qlam"][:, qs] = lm[:, 1:1 + nq]
            out["qlam"][:, nU + qs] = lm[:, 1 + nq:]
        qa = batch["qalpha"].copy()
        qe = batch["qeta"].copy()
        if nq:
            bi = np.arange(B)
            for k in range(L):
                ak = quantized_alpha(alpha[k].cpu().numpy())
                ca = U.alpha_columns(k, acols[k])
                qa[np.ix_(bi, qs, ca)] = ak[:, 1:1 + nq]
                qa[np.ix_(bi, nU + qs, ca)] = ak[:, 1 + nq:]
            sorder = batch["sorder"]
            for t_, k, rr in splits_by_layer(sorder, self.layer_of, L):
                p_ = eta_pos[k][self.pos_of[sorder[rr, t_]]]
                ek = eta[k][torch.as_tensor(rr, device=dev)].cpu().numpy()  # (r, Q, |S|)
                vals = ek[np.arange(len(rr)), :, p_]  # (r, Q)
                qe[np.ix_(rr, qs, [t_])] = vals[:, 1:1 + nq, None].astype(np.float16)
                qe[np.ix_(rr, nU + qs, [t_])] = vals[:, 1 + nq:, None].astype(np.float16)
        out["qalpha"], out["qeta"] = qa, qe
        return out
