"""Bounds for branch and bound on ReLU splits (``bab``): the joint Lagrangian on torch tensors and the exact LP
used as a certificate.

The question is ``max f <= -margin`` for ``f(x) = c . h^{L-1}(x) + d`` over an input box, with the hidden
layers ``0..L-1`` below the target.  A domain is a set of ReLU splits (active: ``z >= 0``, inactive:
``z <= 0``) with pre-activation bounds ``(lb, ub)`` per layer, valid on its *hypothesis set*
``S = {x in box : splits hold, f(x) >= -margin}``.

* ``lagrangian`` bounds Q queries per domain at once: query 0 bounds the target (CROWN back-substitution,
  per-neuron lower slopes alpha, bound-row multipliers eta that play beta-CROWN's beta on split neurons);
  the other queries bound ``+-z_i`` of unstable neurons below the target *under the hypothesis*: the
  objective gets ``lam (f_relaxed(x) + margin) >= 0`` added, each query with its own lam, alpha (the
  relaxation of f inside the hypothesis term is per query) and eta.  This is the Lagrangian dual of LP-based
  bound tightening over box + splits + {f >= -margin}.  ``tighten`` intersects the domains' bounds with the
  query results; an empty interval proves ``S`` empty.
* Soundness: every evaluation that proves or tightens anything is float64 with valid bounds and projected
  parameters (lam >= 0, alpha in [0, 1]), and carries the project's outward rounding guard
  ``1e-12 * (1 + |bound| + magnitude)``, so every such bound is valid (float32 evaluations, ``Net.with_dtype``,
  only choose the parameters).  LP (HiGHS) results are used only through their dual multipliers, re-checked in
  float64 by a Lagrangian bound with the same guard (``lp_certificate``, ``farkas``).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from ...tolerances import ROUNDING_WIDENING

#: HiGHS's interior point method (with crossover): its dual simplex stalled on these degenerate LPs with
#: thousands of box-bounded inputs (0.6-5.8 s vs 0.17-0.46 s per LP on a 3072-input 5x100 net; equal on
#: 64- and 784-input nets)
LP_METHOD = "highs-ipm"
GUARD = ROUNDING_WIDENING  # the outward rounding guard every bound of the project uses


def _term_sizes(Ws, bs, lo, hi, upper=None) -> list[np.ndarray]:
    """Per hidden layer k (n_k,): |b_k| + |W_k| max(h^{k-1}, 0) (k >= 1), max h from ``upper`` or by intervals."""
    Ws = [np.asarray(w, dtype=np.float64) for w in Ws]
    bs = [np.asarray(b, dtype=np.float64) for b in bs]
    if upper is None:
        upper = [np.maximum(Ws[0], 0) @ np.asarray(hi, dtype=np.float64)
                 + np.minimum(Ws[0], 0) @ np.asarray(lo, dtype=np.float64) + bs[0]]
        for w, b in zip(Ws[1:], bs[1:]):
            upper.append(np.maximum(w, 0) @ np.maximum(upper[-1], 0) + b)
    return [np.abs(bs[0])] + [np.abs(b) + np.abs(w) @ np.maximum(np.asarray(u, dtype=np.float64), 0)
                              for w, b, u in zip(Ws[1:], bs[1:], upper)]


class Net:
    """Hidden layers 0..L-1 below the target (stably inactive neurons removed) and the target row."""

    def __init__(self, Ws, bs, c, d, lo, hi, dtype, device, upper=None):
        def t(a):
            return torch.as_tensor(np.array(a, dtype=np.float64), dtype=dtype, device=device)

        self.W = [t(w) for w in Ws]
        self.b = [t(b) for b in bs]
        # the size of layer k's terms, for the rounding guard: |b_k| and, above the first layer, |W_k| times the
        # largest h^{k-1} on the box (``upper``: valid upper bounds on the pre-activations of the layers below the
        # target; interval bounds where None). The guard multiplies the coefficients on z^k by it, which covers the
        # rounding of the product that takes them to h^{k-1}, cancellation included: an error δ there moves the
        # bound by δ · h^{k-1} at most, and |δ| <= n u |coefficients| |W_k| with n u < GUARD for n < 9,000 terms
        self.babs = [t(size) for size in _term_sizes(Ws, bs, lo, hi, upper)]
        self.c = t(c)
        self.d = float(d)
        self.lo, self.hi = t(lo), t(hi)
        self.xmag = torch.maximum(self.lo.abs(), self.hi.abs())
        # the first layer over the box: W_0 x = W_0 mid + spread e with e in [-1, 1]^d
        self.center = self.W[0] @ ((self.hi + self.lo) / 2)  # (n_0,)
        self.spread = self.W[0] * ((self.hi - self.lo) / 2)  # (n_0, d)
        self.reach = self.W[0].abs() @ self.xmag  # (n_0,): |W_0| xmag >= |W_0 x| and every rounding term's size
        self.reach_and_bias = self.reach + self.babs[0]  # (n_0,): the size of z^0's terms, for one product in the guard
        # (n_0, n_0) with c^T gram c = the mean of (c . spread_j)^2 over the d inputs: the smoothed box term's scale
        # from n_0^2 multiply-adds a row instead of two passes over d numbers; None where that costs more (n_0^2 > 4 d;
        # one thread: 10-20% less time than the passes for box_max at d = 3072, n_0 = 32-100, 5-25% more at d = 784)
        n0, dim = self.spread.shape
        self.gram = self.spread @ self.spread.T / dim if n0 * n0 <= 4 * dim else None
        self.L = len(Ws)
        self.dtype, self.device = dtype, device

    def with_dtype(self, dtype) -> Net:
        """This network with its tensors in ``dtype`` (the optimisation steps; every proof uses float64)."""
        other = copy.copy(self)
        for name in ("c", "lo", "hi", "xmag", "center", "spread", "reach", "reach_and_bias"):
            setattr(other, name, getattr(self, name).to(dtype))
        other.gram = None if self.gram is None else self.gram.to(dtype)
        other.W, other.b, other.babs = ([x.to(dtype) for x in xs] for xs in (self.W, self.b, self.babs))
        other.dtype = dtype
        return other

    def forward(self, x):
        """f(x) for a batch (n, d) (autograd-friendly)."""
        h = x
        for k in range(self.L):
            h = torch.relu(h @ self.W[k].T + self.b[k])
        return h @ self.c + self.d


#: elements of one chunk of the (rows, d) product in ``box_max`` on a CPU: small enough to stay in cache
BOX_CHUNK_ELEMENTS = 2 ** 17


def take_columns(x, cols):
    """``x[..., cols]`` for a (B, Q, n) tensor and column indices (m,), by ``torch.gather``: on a CPU 3-5x faster
    than advanced indexing on the last dimension (146 of 200 columns of a (128, 101, 200) tensor: 2.0 ms against
    6.7 ms in float32)."""
    return torch.gather(x, -1, cols.expand(*x.shape[:-1], cols.shape[0]))


def box_max(P: Net, cz0, grad: bool, magnitude: bool = True, smoothing: float = 0.0):
    """``max over the input box of cz0 . (W_0 x)`` for coefficients cz0 (B, Q, n_0) on the first layer's
    pre-activation: ``cz0 . W_0 mid + |cz0 spread|_1`` with ``spread = W_0 diag((hi - lo) / 2)``.

    On a CPU the (B Q, d) product is formed in row chunks of about BOX_CHUNK_ELEMENTS that stay in cache, never
    whole: on a 3072-input net 5-8x faster than forming it and taking its positive and negative parts.
    Returns (value (B, Q), magnitude (B, Q): ``|cz0| |W_0| xmag``, at least the size of every term the value
    sums, for the rounding guard (None without ``magnitude``); with ``grad`` the gradient of value w.r.t. cz0
    (B, Q, n_0): ``W_0 mid + sign(cz0 spread) spread^T``, else None).

    ``smoothing`` > 0 (with ``grad``; for the steps that only steer, never for a bound) replaces each ``|p_j|``,
    ``p = cz0 spread``, by its Huber function with ``eps = smoothing * rms(p)`` per row: the gradient takes
    ``clamp(p_j / eps, -1, 1)`` for the sign, and the value is ``sum_j min(|p_j|, p_j^2 / eps)``, at most
    ``d eps / 4`` below the exact one.  The exact sign makes the gradient jump wherever a coefficient crosses 0,
    and Adam's steps then oscillate (benchmarks/README.md, "A smoothed box term in the steering steps")."""
    B, Q, n0 = cz0.shape
    flat = cz0.reshape(B * Q, n0)
    dim = P.spread.shape[1]
    rows = max(32, BOX_CHUNK_ELEMENTS // max(dim, 1)) if flat.device.type == "cpu" else max(B * Q, 1)
    spread_sum = torch.empty(B * Q, dtype=flat.dtype, device=flat.device)
    gflat = torch.empty_like(flat) if grad else None
    spread_t = P.spread.T
    smooth = grad and smoothing > 0
    for i in range(0, B * Q, rows):
        chunk = flat[i:i + rows]
        if smooth and P.gram is not None:  # the product formed already divided by eps: one pass over it fewer
            scale = ((chunk @ P.gram) * chunk).sum(-1).clamp_(min=0.0).sqrt_().mul_(smoothing).clamp_(min=1e-30)
            part = (chunk / scale[:, None]) @ P.spread
        else:
            part = chunk @ P.spread
            if smooth:
                scale = part.square().mean(-1).sqrt_().mul_(smoothing).clamp_(min=1e-30)
                part.div_(scale[:, None])
        if grad:  # |part|_1 = sign(part) . part = (sign(part) spread^T) . chunk: n_0 terms a row, not d
            torch.mm(torch.nn.functional.hardtanh_(part) if smooth else part.sign_(), spread_t,
                     out=gflat[i:i + rows])
            spread_sum[i:i + rows] = (gflat[i:i + rows] * chunk).sum(-1)
        else:
            spread_sum[i:i + rows] = torch.linalg.vector_norm(part, ord=1, dim=-1)
    value = cz0 @ P.center + spread_sum.reshape(B, Q)
    size = cz0.abs() @ P.reach if magnitude else None
    return value, size, (gflat.reshape(B, Q, n0).add_(P.center) if grad else None)


def lagrangian(P: Net, lb, ub, inject, lam, alpha, eta, ncols, ecols, margin, grad: bool, guard: bool = True,
               smoothing: float = 0.0):
    """Joint Lagrangian upper bounds for a batch of B domains and Q queries per domain (in ``P.dtype``: valid
    bounds in float64 only; guarded), with hand-written gradients.

    Query 0 is the target f = c . h^{L-1} + d.  Query q >= 1 asks for an upper bound of ``s_q z^k_i``
    (``inject[k] = (q_index, neuron_index, s_q)``, s_q = +1: upper bound of z_i, -1: of -z_i) on the
    hypothesis set S = {x in box : the domain's splits hold, f(x) >= -margin}.  For q >= 1 the objective gets
    ``lam_q (f(x) + margin)`` added (>= 0 on S).  Every query gets bound-row terms ``eta (z_j - l_j)``
    (eta >= 0) or ``eta (z_j - u_j)`` (eta <= 0), nonnegative on S, on the columns ``ecols[k]``.  ReLUs are
    relaxed per query: exact when stable, the upper triangle line where the coefficient is >= 0, ``alpha z``
    where it is < 0.  For every lam >= 0, alpha in [0, 1] and eta of the right signs the result is a valid
    bound on S as long as lb/ub are valid on S; the rounding guard GUARD * (1 + |U| + magnitude) is added (a bound
    that overflowed comes back +inf).
    ``guard=False`` leaves the guard out, with the full-size passes that size it: for the float32 steps that only
    steer the parameters, whose results are no bound; so is ``smoothing`` > 0 (``box_max``: the box term's gradient
    and value Huber-smoothed).

    Layout: the top layer L-1 is handled in closed form (its coefficient is lam_q * c for every query), so
    ``alpha[L-1]`` (B, Q, len(ncols)) lives only on the columns ``ncols`` where c < 0; lower layers have
    dense ``alpha[k]`` (B, Q, n_k).  ``eta[k]``: (B, Q, len(ecols[k])).  lb/ub: lists (B, n_k); lam (B, Q).
    Returns U (B, Q), the target's x-coefficients (B, d), its coefficients on each h^k (list of (B, n_k)) and,
    with ``grad``, the gradients of U.sum() w.r.t. (lam, alpha list, eta list)."""
    if smoothing > 0 and guard:
        raise ValueError("a smoothed box term is no bound: smoothing only with guard=False")
    B, Q = lam.shape
    L = P.L
    dt = P.dtype
    mult = lam.clone()
    mult[:, 0] = 1.0
    mq = torch.full((Q,), margin, dtype=dt, device=P.device)
    mq[0] = 0.0
    top = P.d + mq  # (Q,)
    # ---- top layer k = L-1: coefficient on h^{L-1} is mult_q * c
    k = L - 1
    l, u = lb[k], ub[k]
    inact = u <= 0
    act = (l >= 0) & ~inact
    unst = ~(inact | act)
    s = torch.where(unst, u / torch.where(unst, u - l, torch.ones_like(u)), torch.zeros_like(u))
    T = -s * l
    c = P.c
    cpos = c >= 0
    v = c * torch.where(cpos, torch.where(act, torch.ones_like(u), s), act.to(dt))  # (B, n): shared slope part
    icv = (c.clamp(min=0) * T).sum(-1)  # (B,)
    Wk, bk = P.W[k], P.b[k]
    # L > 1: a holds the coefficients on h^{L-2}; L == 1: cz holds those on z^0 (box_max takes them to x)
    vW = v @ Wk if L > 1 else None
    vb = v @ bk
    if L > 1:
        a = mult[..., None] * vW[:, None, :]
    else:
        cz = mult[..., None] * v[:, None, :]
    const = mult * (top + icv[:, None] + vb[:, None])
    cabs = mult * (top.abs() + icv[:, None] + (v.abs() @ P.babs[k])[:, None])
    nN = ncols.shape[0]
    if nN:
        uN = unst[:, ncols].to(dt)
        wN = mult[..., None] * (c[ncols] * uN)[:, None, :]  # (B, Q, nN), <= 0
        czN = wN * alpha[k]
        if L > 1:
            a = a + czN @ Wk[ncols]
        else:
            cz.index_add_(2, ncols, czN)
        const = const + czN @ bk[ncols]
        if guard:
            cabs = cabs - czN @ P.babs[k][ncols]  # czN <= 0 (lam >= 0, c < 0, alpha >= 0): |czN| = -czN, exactly
    S = ecols[k]
    e_top = eta[k]
    if S.shape[0]:
        if L > 1:
            a = a + e_top @ Wk[S]
        else:
            cz.index_add_(2, S, e_top)
        lS, uS = l[:, S][:, None, :], u[:, S][:, None, :]
        ec = (e_top.clamp(min=0) * lS + e_top.clamp(max=0) * uS)
        const = const + e_top @ bk[S] - ec.sum(-1)
        cabs = cabs + e_top.abs() @ P.babs[k][S] + ec.abs().sum(-1)
    qi, ni, sg = inject[k]
    if qi is not None:
        if L > 1:
            a[:, qi, :] += sg[:, None] * Wk[ni]
        else:
            cz[:, qi, ni] += sg
        const[:, qi] += sg * bk[ni]
        cabs[:, qi] += P.babs[k][ni]
    coefs = [None] * L
    coefs[k] = c.expand(B, -1)
    # ---- lower layers: general back-substitution
    saved = [None] * L
    for k in reversed(range(L - 1)):
        l, u = lb[k][:, None, :], ub[k][:, None, :]
        inact = u <= 0
        act = (l >= 0) & ~inact
        unst = ~(inact | act)
        s = torch.where(unst, u / torch.where(unst, u - l, torch.ones_like(u)), torch.zeros_like(u))
        T = -s * l
        spos = torch.where(act, torch.ones_like(u), s)
        pos = a >= 0
        slope = torch.where(pos, spos, torch.where(unst, alpha[k], act.to(dt)))
        coefs[k] = a[:, 0, :]
        cz = a * slope
        ic = (a.clamp(min=0) @ T[:, 0, :, None])[..., 0]
        qi, ni, sg = inject[k]
        if qi is not None:
            cz[:, qi, ni] += sg
        S = ecols[k]
        e = eta[k]
        if S.shape[0]:
            cz.index_add_(2, S, e)
            ec = e.clamp(min=0) * l[..., S] + e.clamp(max=0) * u[..., S]
            const = const - ec.sum(-1)
            cabs = cabs + ec.abs().sum(-1)
        const = const + ic + cz @ P.b[k]
        if guard:  # on z^0 one product sizes both the bias terms and box_max's (P.reach_and_bias)
            cabs = cabs + ic + cz.abs() @ (P.babs[k] if k else P.reach_and_bias)
        if grad:
            saved[k] = (a, slope, pos & unst, unst & ~pos, T, l, u)
        if k:
            a = cz @ P.W[k]
    # cz: the coefficients on z^0
    value, magnitude, gz0 = box_max(P, cz, grad, magnitude=guard and L == 1, smoothing=smoothing)
    U = value + const
    if guard:  # a bound that overflowed (NaN, or -inf from terms past float64's range) proves nothing: +inf
        U = torch.nan_to_num(U + GUARD * (1.0 + U.abs() + (magnitude if L == 1 else 0.0) + cabs),
                             nan=math.inf, neginf=math.inf)
    A = cz[:, 0, :] @ P.W[0]
    if not grad:
        return U, A, coefs, None
    galpha, geta = [None] * L, [None] * L
    g = gz0  # dU/d(coefficients on z^0), less the bias
    for k in range(L - 1):
        a_k, slope, posu, negu, T, l, u = saved[k]
        # dU/dcz: the maximising corner pushed forward through layer k
        gcz = (g if k == 0 else g @ P.W[k].T) + P.b[k]
        galpha[k] = gcz * a_k * negu
        S = ecols[k]
        if S.shape[0]:
            geta[k] = take_columns(gcz, S) - torch.where(eta[k] >= 0, l[..., S], u[..., S])
        else:
            geta[k] = eta[k]
        g = gcz * slope + posu * T
    # top layer: g = dU/da_{L-2}; L == 1: g = dU/dcz less the bias
    k = L - 1
    glam = torch.bmm(g, (vW if L > 1 else v)[:, :, None])[..., 0] + vb[:, None] + top + icv[:, None]
    if nN:
        gzN = (g @ Wk[ncols].T if L > 1 else take_columns(g, ncols)) + bk[ncols]
        galpha[k] = gzN * wN
        glam = glam + ((gzN * alpha[k]) @ (c[ncols] * uN)[:, :, None])[..., 0]  # one pass fewer than a .sum
    else:
        galpha[k] = alpha[k]
    S = ecols[k]
    if S.shape[0]:
        gzS = (g @ Wk[S].T if L > 1 else take_columns(g, S)) + bk[S]
        geta[k] = gzS - torch.where(e_top >= 0, lb[k][:, S][:, None, :], ub[k][:, S][:, None, :])
    else:
        geta[k] = e_top
    glam[:, 0] = 0.0
    return U, A, coefs, (glam, galpha, geta)


def tighten(U, lb, ub, inject):
    """Intersect the bounds lb/ub (lists of (B, n_k)) with the query results U (B, Q) of ``lagrangian`` for the
    same ``inject``; returns (lb, ub, empty (B,) bool: some interval became empty, so S is empty)."""
    empty = torch.zeros(U.shape[0], dtype=torch.bool, device=U.device)
    lb, ub = list(lb), list(ub)
    for k in range(len(lb)):
        qi, ni, _ = inject[k]
        if qi is None:
            continue
        h = qi.shape[0] // 2
        nub, nlb = ub[k].clone(), lb[k].clone()
        nub[:, ni[:h]] = torch.minimum(ub[k][:, ni[:h]], U[:, qi[:h]])
        nlb[:, ni[h:]] = torch.maximum(lb[k][:, ni[h:]], -U[:, qi[h:]])
        ub[k], lb[k] = nub, nlb
        empty |= (nlb > nub).any(1)
    return lb, ub, empty


# ----------------------------------------------------------------------------------------------------------
# exact LP at leaves, used only as a certificate


def _lp(Ws, bs, c, lo, hi, lb, ub):
    """The triangle-relaxation LP of a domain: variables ``[x, z_0, h_0, z_1, h_1, ...]`` with every
    pre-activation ``z_k`` a variable bounded by ``[lb_k, ub_k]`` (so the dense weights appear once, in
    ``z_k = W_k h_{k-1} + b_k``) and ``h_k`` on the neurons with ``ub_k > 0``: ``h >= z``, ``h >= 0``,
    ``h <= s (z - l)`` (unstable) or ``h <= z`` (active).  Returns the arrays of ``max cv . v`` s.t.
    ``A v <= b``, ``E v = e``, ``vlo <= v <= vhi``, the kept neurons, and each h block's offset."""
    from scipy import sparse

    L, dim = len(Ws), len(lo)
    keep = [np.nonzero(u > 0)[0] for u in ub]
    z_off, h_off, nv = [], [], dim
    for k in range(L):
        z_off.append(nv)
        h_off.append(nv + Ws[k].shape[0])
        nv = h_off[k] + len(keep[k])
    vlo = np.concatenate([lo] + [part for k in range(L) for part in (lb[k], np.zeros(len(keep[k])))])
    vhi = np.concatenate([hi] + [part for k in range(L) for part in (ub[k], ub[k][keep[k]])])

    def block(values, rows, cols, n_rows):
        return sparse.csr_matrix((values, (rows, cols)), shape=(n_rows, nv))

    eq_rows, eq_rhs, ub_rows, ub_rhs = [], [], [], []
    for k in range(L):
        n = Ws[k].shape[0]
        inputs = np.arange(dim) if k == 0 else h_off[k - 1] + np.arange(len(keep[k - 1]))
        W = Ws[k] if k == 0 else Ws[k][:, keep[k - 1]]
        rows, cols = np.nonzero(W)
        eq_rows.append(block(np.ones(n), np.arange(n), z_off[k] + np.arange(n), n)
                       - block(W[rows, cols], rows, inputs[cols], n))  # z - W h_prev = b
        eq_rhs.append(bs[k])
        kk = keep[k]
        m = len(kk)
        if m == 0:
            continue
        Z = block(np.ones(m), np.arange(m), z_off[k] + kk, m)
        H = block(np.ones(m), np.arange(m), h_off[k] + np.arange(m), m)
        lk, uk = lb[k][kk], ub[k][kk]
        act = lk >= 0
        s = np.where(act, 1.0, uk / np.where(act, 1.0, uk - lk))
        ub_rows += [Z - H, H - sparse.diags(s) @ Z]  # h >= z; h <= s z + t
        ub_rhs += [np.zeros(m), np.where(act, 0.0, -s * lk)]
    cv = np.zeros(nv)
    cv[h_off[L - 1]:h_off[L - 1] + len(keep[L - 1])] = c[keep[L - 1]]
    A = sparse.vstack(ub_rows).tocsr() if ub_rows else sparse.csr_matrix((0, nv))
    b = np.concatenate(ub_rhs) if ub_rhs else np.zeros(0)
    return cv, A, b, sparse.vstack(eq_rows).tocsr(), np.concatenate(eq_rhs), vlo, vhi, keep, h_off


def lp_certificate(Ws, bs, c, d, lo, hi, lb, ub, want_alpha=False):
    """Bound on max f over the triangle relaxation of the domain (bounds lb/ub per layer), with every
    pre-activation constrained to [lb, ub].  Solves the LP (``_lp``) with HiGHS, then recomputes a Lagrangian
    bound in float64 from its duals (inequality duals clamped >= 0, equality duals free), with the rounding
    guard.  Returns (bound, x_primal or None), and with ``want_alpha`` also the lower-line slopes read off the
    duals (list of (n_k,), NaN where undetermined)."""
    from scipy import sparse
    from scipy.optimize import linprog

    cv, A, b, E, e, vlo, vhi, keep, h_off = _lp(Ws, bs, c, lo, hi, lb, ub)
    none = (None,) if want_alpha else ()
    try:
        res = linprog(-cv, A_ub=A, b_ub=b, A_eq=E, b_eq=e, bounds=np.stack([vlo, vhi], 1), method=LP_METHOD)
    except Exception:  # noqa: BLE001 - a solver failure (or an empty variable range) certifies nothing
        return (math.inf, None) + none
    if res.status == 2:  # infeasible: phase 1 for a Farkas certificate, equalities as two inequalities
        y = farkas(sparse.vstack([A, E, -E]).tocsr(), np.concatenate([b, e, -e]), vlo, vhi)
        return (-math.inf if y is not None else math.inf, None) + none
    if res.status != 0 or res.ineqlin is None or res.eqlin is None:
        return (math.inf, None) + none
    y = np.maximum(-np.asarray(res.ineqlin.marginals, dtype=np.float64), 0.0)
    mu = -np.asarray(res.eqlin.marginals, dtype=np.float64)
    g = cv - A.T @ y - E.T @ mu
    val = d + y @ b + mu @ e + np.maximum(g, 0) @ vhi + np.minimum(g, 0) @ vlo
    vmag = np.maximum(np.abs(vlo), np.abs(vhi))
    formed = (np.abs(cv) + abs(A).T @ y + abs(E).T @ np.abs(mu)) @ vmag  # the terms of g, before they cancel
    mag = formed + abs(d) + np.abs(y) @ np.abs(b) + np.abs(mu) @ np.abs(e)
    bound = float(val + GUARD * (1.0 + abs(val) + mag))
    if not math.isfinite(bound):  # overflowed: no bound
        bound = math.inf
    x = np.clip(res.x[:len(lo)], lo, hi)
    if not want_alpha:
        return bound, x
    lower_duals = np.abs(np.asarray(res.lower.marginals, dtype=np.float64))
    alphas, row = [], 0
    for k, kk in enumerate(keep):
        alpha = np.full(Ws[k].shape[0], np.nan)
        above = y[row:row + len(kk)]  # the "h >= z" rows of layer k
        at_zero = lower_duals[h_off[k]:h_off[k] + len(kk)]  # the bound h >= 0
        total = above + at_zero
        ok = total > 1e-12
        alpha[kk[ok]] = np.clip(above[ok] / total[ok], 0.0, 1.0)
        alphas.append(alpha)
        row += 2 * len(kk)
    return bound, x, alphas


def farkas(Asp, bub, vlo, vhi):
    """A y >= 0 with ``min_{v in box} y (A v - b) > guard``: proof that {A v <= b} misses the box."""
    from scipy import sparse
    from scipy.optimize import linprog

    m, nv = Asp.shape
    A2 = sparse.hstack([Asp, -sparse.identity(m)]).tocsr()
    cost = np.concatenate([np.zeros(nv), np.ones(m)])
    bnds = np.concatenate([np.stack([vlo, vhi], 1), np.stack([np.zeros(m), np.full(m, np.inf)], 1)])
    try:
        res = linprog(cost, A_ub=A2, b_ub=bub, bounds=bnds, method="highs")
    except Exception:  # noqa: BLE001
        return None
    if res.status != 0 or res.ineqlin is None:
        return None
    y = np.maximum(-np.asarray(res.ineqlin.marginals, dtype=np.float64), 0.0)
    g = Asp.T @ y
    low = np.maximum(g, 0) @ vlo + np.minimum(g, 0) @ vhi - y @ bub
    mag = (abs(Asp).T @ y) @ np.maximum(np.abs(vlo), np.abs(vhi)) + np.abs(y) @ np.abs(bub)  # (y >= 0)
    if low - GUARD * (1.0 + abs(low) + mag) > 0:
        return y
    return None
