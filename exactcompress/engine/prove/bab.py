"""Branch and bound on ReLU splits (beta-CROWN style) for one neuron-sign question of a ReLU MLP.

Question (``sign = +1``): is ``max_{x in box} g^layer_neuron(x) <= -margin``?  ``sign = -1`` asks the mirror
question ``min g >= +margin`` and is handled by negating the target row.  Everything below works with the
sign-flipped objective ``f(x) = sign * g^layer_neuron(x)``; "proved" means ``max f <= -margin``.

Algorithm:

* Stably inactive neurons of the layers below the target (by the caller's bounds) are dropped: exact, their
  output is 0 on the box.
* Domains are sets of ReLU splits of unstable neurons in the layers below the target (``bab_domains``).  Each
  domain carries its own pre-activation bounds ``(lb, ub)`` for every layer below the target, valid on its
  *hypothesis set* ``S = {x in box : splits hold, f(x) >= -margin}``.  That is all a proof needs: if the
  bound on ``f`` over ``S`` is ``<= -margin`` (or ``S`` is empty), no input of the domain has
  ``f > -margin``.  The bounds never leave the question.
* The root is bounded by CROWN and by the exact LP (``bab_bounds.lp_certificate``), whose duals give the
  root's slopes; its coefficients choose the query universe (``bab_batch.QueryUniverse``).
* Domains are bounded in batches, highest parent bound first (``bab_batch.Bounder``: the joint Lagrangian of
  the target and the queries, optimised by projected Adam, every evaluation a certified bound), open ones are
  split (``bab_domains.branching_choice``; leaves go to the LP certificate).  Proved: no open domain left and
  no leaf that could be neither pruned nor split.
* Witnesses: every domain's relaxation maximiser (a box corner), LP primal points and short
  projected-gradient attacks are checked by a plain float64 numpy forward pass on the caller's weights;
  only such a check produces a "witness".
* Resuming: a search stopped by its deadline keeps its open domains (it finishes the batch in hand: open
  domains split, leaves not yet decided put back unchanged) and can go on later from where it stopped
  (``BabResult.suspended``).  Bounds computed since on the layers below are not used by it: its own stay
  valid, only less tight.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .bab_batch import Bounder, QueryUniverse, default_batch_size
from .bab_bounds import GUARD, Net, lagrangian, lp_certificate
from .bab_domains import (
    Pool,
    branching_choice,
    children,
    leaf_choice,
    root_domain,
    subset,
    unsplit,
)

STEPS = 40  # Adam steps per batch of domains
ROOT_STEPS = 60  # Adam steps for the root domain
MAX_POOL_BYTES = 512 * 2**20  # open domains beyond this memory: give up ("undecided")
#: the witness search at the root of each question: at most this many starts (the box centre and random points)
#: and Adam steps, fewer where their weight multiply-adds would exceed ROOT_ATTACK_WORK (about 0.1 s here; at
#: least 16 starts and 50 steps, as before: 784- and 3072-input nets get 16-29 starts of 50 steps).  The
#: engine's witness stage (8 starts, 200 steps, stopped when stalling) leaves a few witnessable questions on
#: unregularised nets that branch and bound's maximisers do not find either: 3 of the 119 open questions of
#: d64-5x100-l1_0 (64 starts, 214 steps here) and 1 of the 35 of d64-2x400-l1_0 (53 starts, 50 steps), each of
#: which took its whole time limit (20 s in the first round); they are found in 0.1-0.2 s
ROOT_ATTACK_STARTS = 64
ROOT_ATTACK_STEPS = 300
ROOT_ATTACK_WORK = 5e8


@dataclass(frozen=True)
class BabResult:
    status: str  # "proved" | "witness" | "undecided"
    witness: np.ndarray | None  # (input_dim,) float64 input in the box, only when status == "witness"
    domains: int  # branch-and-bound domains bounded in this call
    seconds: float  # wall seconds of this call
    best_bound: float  # best float64-valid bound on max(sign * g) found (inf if none)
    timed_out: bool = False  # "undecided" because the deadline passed (not for memory or a stuck leaf)
    suspended: SuspendedSearch | None = None  # set when the deadline stopped a search that can go on


class SuspendedSearch:
    """A search stopped by its deadline: its open domains, its bounder and its bookkeeping, in this process.
    ``resume_sign`` continues it; ``nbytes`` is the memory its open domains hold."""

    def __init__(self, search: _Search):
        self._search = search

    def nbytes(self) -> int:
        return self._search.pool.nbytes()

    @property
    def best_bound(self) -> float:
        """The best float64-valid bound on ``max(sign * g)`` the search has reached."""
        return self._search.best_bound


def resume_sign(suspended: SuspendedSearch, *, deadline: float | None = None,
                stop: threading.Event | None = None) -> BabResult:
    """Continue a search stopped by its deadline (``BabResult.suspended``) until ``deadline``
    (``time.monotonic()`` value) or a set ``stop``; the result counts the domains and seconds of this call only."""
    flushed = torch.set_flush_denormal(True)
    try:
        return suspended._search.resume(deadline, stop)
    finally:
        if flushed:
            torch.set_flush_denormal(False)


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
    steps: int = STEPS,
    root_steps: int = ROOT_STEPS,
    debug: Callable[[dict], None] | None = None,
    stop: threading.Event | None = None,
) -> BabResult:
    """Prove ``max_{x in box} sign * g^layer_neuron(x) <= -margin`` by branch and bound, or find a witness
    ``x`` with ``sign * g(x) > witness_margin`` (float64 numpy forward pass), or give up ("undecided").

    ``layer_bounds[k]`` (lower, upper): box-valid bounds on the pre-activations of layer k, for the layers
    below ``layer`` and optionally ``layer`` itself.  ``deadline``: ``time.monotonic()`` value.
    ``batch_size``: domains bounded together (default from a memory budget).  ``debug``: called with every
    bounded batch, ``{"split", "lb", "ub", "bound", "keep"}`` (``keep``: the kept neurons of each layer, the
    columns of the other entries).

    A search that its deadline stops returns ``suspended``, to go on with ``resume_sign``; so does one stopped by
    setting ``stop`` (another thread settled the question; checked where the deadline is).

    Denormal floats are flushed to zero while it runs (torch.set_flush_denormal; subnormal arithmetic in the
    optimiser's moments is 100x slower on CPU), and the flag is reset to False on return."""
    flushed = torch.set_flush_denormal(True)
    try:
        search = _Search(weights, biases, lower, upper, layer, neuron, sign, margin=margin,
                         witness_margin=witness_margin, deadline=deadline, stop=stop)
        return search.run(layer_bounds, device=device, seed=seed, batch_size=batch_size, steps=steps,
                          root_steps=root_steps, debug=debug)
    finally:
        if flushed:
            torch.set_flush_denormal(False)


# ----------------------------------------------------------------------------------------------------------
# witnesses


def _target_values(weights, biases, layer, neuron, sign, X) -> np.ndarray:
    """sign * g^layer_neuron(x) for each row of X (n, d), plain float64 numpy."""
    h = np.asarray(X, dtype=np.float64)
    for k in range(layer):
        h = np.maximum(h @ np.asarray(weights[k], dtype=np.float64).T + np.asarray(biases[k], dtype=np.float64), 0.0)
    w = np.asarray(weights[layer], dtype=np.float64)[neuron]
    return sign * (h @ w + float(biases[layer][neuron]))


def _worst(bounds) -> float:
    """The largest of valid upper bounds (a number or (n,)), +inf where one is NaN (an overflowed bound proves
    nothing)."""
    bounds = np.asarray(bounds, dtype=np.float64)
    return math.inf if np.isnan(bounds).any() else float(np.max(bounds, initial=-math.inf))


def _constant_above(weights, biases, c, d, dead: int) -> float:
    """Upper bound on the target ``c . h^{L-1} + d`` when hidden layer ``dead`` (below L) is inactive on the whole
    box: the layers above it are constants, propagated from ``h^dead = 0`` in float64 with the rounding guard
    (the size of every term added up the way the bounds do)."""
    h = size = np.zeros(np.asarray(weights[dead]).shape[0])
    for w, b in zip(weights[dead + 1:-1], biases[dead + 1:-1]):
        h = np.maximum(w @ h + b, 0.0)
        size = np.abs(w) @ size + np.abs(b)
    value = float(c @ h + d)
    return value + GUARD * (1.0 + abs(value) + float(np.abs(c) @ size) + abs(d))


def root_attack_size(n_weights: int) -> tuple[int, int]:
    """(starts, steps) of the witness search at a question's root for a network of ``n_weights`` weights:
    ROOT_ATTACK_STARTS and ROOT_ATTACK_STEPS, cut to about ROOT_ATTACK_WORK weight multiply-adds."""
    affordable = int(ROOT_ATTACK_WORK // max(1, n_weights))  # start-steps
    steps = min(ROOT_ATTACK_STEPS, max(50, affordable // ROOT_ATTACK_STARTS))
    return min(ROOT_ATTACK_STARTS, max(16, affordable // steps)), steps


def _attack(P: Net, starts: np.ndarray, steps: int, lr: float, deadline, stop_above: float = math.inf):
    """Projected Adam on x within the box from ``starts`` (n, d), maximising f; returns each start's best point
    (n, d).  Every 50 steps: stops once some point has ``f > stop_above``, or when the best value, rising at
    its rate over the last 50 steps, would not pass ``stop_above`` within the steps left."""
    x = torch.as_tensor(starts, dtype=torch.float64, device=P.device).clone().requires_grad_(True)
    best_x = x.detach().clone()
    best_v = torch.full((x.shape[0],), -math.inf, dtype=torch.float64, device=P.device)
    m1 = torch.zeros_like(best_x)
    m2 = torch.zeros_like(best_x)
    checked = -math.inf  # the best value at the last check
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
        if t % 50 == 0 and stop_above < math.inf:
            best = float(best_v.max())
            if best > stop_above or best + (best - checked) * (steps - t) / 50 <= stop_above:
                break
            checked = best
    with torch.no_grad():
        v = P.forward(x)
        better = v > best_v
        best_x[better] = x.detach()[better]
    return best_x.cpu().numpy()


# ----------------------------------------------------------------------------------------------------------
# the search


class _Search:
    """One sign question: the caller's network and box, the verdict's bookkeeping (domains bounded, best
    bound so far, stuck leaves), and, once ``run`` has reduced it, the network below the target on the kept
    neurons (``keep``: their indices per layer; ``W``, ``b``, target row ``c``, ``d``; ``P`` on torch)."""

    def __init__(self, weights, biases, lower, upper, layer, neuron, sign, *, margin, witness_margin, deadline,
                 stop=None):
        self.t0 = time.monotonic()
        if sign not in (1, -1):
            raise ValueError("sign must be +1 or -1")
        self.weights, self.biases = weights, biases
        self.layer, self.neuron, self.sign = layer, neuron, sign
        self.margin, self.witness_margin, self.deadline, self.stop = margin, witness_margin, deadline, stop
        self.lo = np.asarray(lower, dtype=np.float64)
        self.hi = np.asarray(upper, dtype=np.float64)
        self.domains = 0
        self.best_bound = math.inf
        self.stuck = 0  # leaves neither pruned nor splittable
        self.stuck_max = -math.inf  # the best valid bound over the stuck leaves
        self.pool = None  # the open domains, once the root is bounded (None before: nothing to resume)

    def result(self, status, witness=None) -> BabResult:
        bb = -self.margin if status == "proved" else _worst(self.best_bound)
        return BabResult(status, witness, self.domains, time.monotonic() - self.t0, float(bb))

    def stopped(self) -> BabResult:
        """"undecided" because the deadline passed; resumable once the search has open domains."""
        result = self.result("undecided")
        suspended = None if self.pool is None else SuspendedSearch(self)
        return BabResult(result.status, None, result.domains, result.seconds, result.best_bound, True, suspended)

    def resume(self, deadline, stop) -> BabResult:
        self.t0, self.domains, self.deadline, self.stop = time.monotonic(), 0, deadline, stop
        return self._search()

    def check(self, X):
        """float64 witness check of candidate inputs (n, d); returns a witness or None."""
        X = np.clip(np.atleast_2d(np.asarray(X, dtype=np.float64)), self.lo, self.hi)
        if X.shape[0] == 0:
            return None
        v = _target_values(self.weights, self.biases, self.layer, self.neuron, self.sign, X)
        i = int(np.argmax(v))
        if v[i] > self.witness_margin:
            return X[i].copy()
        return None

    def late(self) -> bool:
        return ((self.deadline is not None and time.monotonic() > self.deadline)
                or (self.stop is not None and self.stop.is_set()))

    def _closed_form(self, val, corner) -> BabResult:
        """Verdict for a target with the valid bound ``val`` whose maximiser ``corner`` is known."""
        self.best_bound = val
        if val <= -self.margin:
            return self.result("proved")
        w = self.check(corner)
        return self.result("witness", w) if w is not None else self.result("undecided")

    def run(self, layer_bounds, *, device, seed, batch_size, steps, root_steps, debug) -> BabResult:
        layer, sign, lo, hi = self.layer, self.sign, self.lo, self.hi
        Ws = [np.asarray(w, dtype=np.float64) for w in self.weights[: layer + 1]]
        bs = [np.asarray(b, dtype=np.float64) for b in self.biases[: layer + 1]]
        c_full = sign * Ws[layer][self.neuron]
        d = sign * float(bs[layer][self.neuron])
        if self.late():
            return self.stopped()
        if layer == 0:  # f is linear in x
            g = c_full
            val = np.maximum(g, 0) @ hi + np.minimum(g, 0) @ lo + d
            val = float(val + GUARD * (1 + abs(val) + np.abs(g) @ np.maximum(np.abs(lo), np.abs(hi)) + abs(d)))
            return self._closed_form(val, np.where(g > 0, hi, lo))
        LB = [(np.asarray(l, dtype=np.float64), np.asarray(u, dtype=np.float64)) for l, u in layer_bounds[:layer]]
        root_prio = math.inf
        if len(layer_bounds) > layer:  # the caller's own (box-valid) bound on the target
            ut = float(layer_bounds[layer][1 if sign > 0 else 0][self.neuron]) * sign
            self.best_bound = root_prio = ut
            if ut <= -self.margin:
                return self.result("proved")
        # drop stably inactive neurons of the layers below (exact: their output is 0 on the box)
        self.keep = [np.nonzero(~(u <= 0))[0] for (l, u) in LB]  # (a NaN bound keeps its neuron)
        self.W, self.b, lb, ub = [], [], [], []
        for k in range(layer):
            kk = self.keep[k]
            w = Ws[k][kk]
            if k > 0:
                w = w[:, self.keep[k - 1]]
            self.W.append(w)
            self.b.append(bs[k][kk])
            lb.append(LB[k][0][kk])
            ub.append(LB[k][1][kk])
        dead = [k for k, kk in enumerate(self.keep) if len(kk) == 0]
        if dead:  # a layer entirely inactive: the target is constant on the box
            return self._closed_form(_constant_above(Ws, bs, c_full, d, dead[-1]), lo[None])
        self.c, self.d = c_full[self.keep[layer - 1]], d
        self.P = Net(self.W, self.b, self.c, d, lo, hi, torch.float64, torch.device(device), upper=ub)
        rng = np.random.default_rng(seed)
        # witness search from random starts
        n_starts, n_steps = root_attack_size(sum(weight.size for weight in self.W) + self.c.size)
        starts = np.concatenate([(lo + hi)[None] / 2, lo + (hi - lo) * rng.random((n_starts - 1, len(lo)))])
        w = self.check(_attack(self.P, starts, n_steps, 0.05, self.deadline, self.witness_margin))
        if w is not None:
            return self.result("witness", w)
        root = self._root(lb, ub, root_prio)
        if isinstance(root, BabResult):
            return root
        pool, universe = root
        if batch_size is None:
            batch_size = default_batch_size(universe.size, [len(kk) for kk in self.keep], len(lo))
        self.pool, self.bounder, self.first = pool, Bounder(self.P, universe, self.margin, self.late), True
        self.batch_size, self.steps, self.root_steps, self.debug = batch_size, steps, root_steps, debug
        return self._search()

    def _root(self, lb, ub, prio):
        """Bound the root by CROWN and by the LP certificate; returns a verdict, or the pool holding the root
        domain (LP slopes as its alphas) and the query universe."""
        P, L, dev, margin = self.P, self.layer, self.P.device, self.margin
        lb0 = [torch.as_tensor(x[None], device=dev) for x in lb]
        ub0 = [torch.as_tensor(x[None], device=dev) for x in ub]
        alpha = [np.where(ub[k] > -lb[k], 1.0, 0.0) for k in range(L)]
        top_cols = np.nonzero((self.c < 0) & (lb[L - 1] < 0) & (ub[L - 1] > 0))[0]
        a0 = [torch.as_tensor(a, device=dev)[None, None] for a in alpha[:-1]]
        a0.append(torch.as_tensor(alpha[-1][top_cols], device=dev)[None, None])
        e0 = [torch.zeros(1, 1, 0, dtype=torch.float64, device=dev) for _ in range(L)]
        empty_idx = torch.zeros(0, dtype=torch.long, device=dev)
        U0, _, coefs0, _ = lagrangian(P, lb0, ub0, [(None, None, None)] * L,
                                      torch.zeros(1, 1, dtype=torch.float64, device=dev), a0, e0,
                                      torch.as_tensor(top_cols, device=dev), [empty_idx] * L, margin, False)
        self.best_bound = min(self.best_bound, float(U0[0, 0]))
        if float(U0[0, 0]) <= -margin:
            self.domains = 1
            return self.result("proved")
        universe = QueryUniverse.at_root([x[0].cpu().numpy() for x in coefs0], lb, ub, top_cols)
        lpb, xlp, lp_alpha = lp_certificate(self.W, self.b, self.c, self.d, self.lo, self.hi, lb, ub,
                                            want_alpha=True)
        if xlp is not None:
            w = self.check(xlp)
            if w is not None:
                return self.result("witness", w)
        if lpb <= -margin:
            self.domains = 1
            return self.result("proved")
        self.best_bound = min(self.best_bound, lpb)
        prio = min(prio, lpb)
        if lp_alpha is not None:
            for k in range(L):
                alpha[k] = np.where(np.isnan(lp_alpha[k]), alpha[k], lp_alpha[k])
        pool = Pool([len(kk) for kk in self.keep])
        pool.push(root_domain(lb, ub, alpha, top_cols, universe.size, prio))
        return pool, universe

    def _search(self) -> BabResult:
        """Bound batches of domains, highest priority first, until none is open.  Each call bounds at least the
        batch it takes, even past the deadline.  Domains whose Adam steps the deadline cut short go back to the
        pool unsplit, with their bounds, warm starts and the steps spent on them (``bab_domains.unsplit``: a split
        chosen from a bound optimised for a few steps can cost the search many times the domains); a domain is
        split once it has had its steps, over as many calls as it takes, so a resumed search always gets
        further.  Where a batch had its steps, its open domains are split, at least one leaf is decided and the
        leaves left go back to the pool."""
        pool, margin = self.pool, self.margin
        while pool.n:
            if pool.nbytes() > MAX_POOL_BYTES:
                return self.result("undecided")
            if self.late():
                return self.stopped()
            batch = pool.pop(self.batch_size)
            needed = self.root_steps if self.first else self.steps
            out = self.bounder.bound(batch, needed)
            spent = batch["steps"] + out["steps"]
            self.domains += batch["prio"].shape[0]
            bnd = out["bound"]
            if self.debug is not None:
                self.debug({"split": [x.copy() for x in batch["split"]], "lb": out["lb"], "ub": out["ub"],
                            "bound": bnd, "keep": [k_.copy() for k_ in self.keep]})
            w = self.check(out["xmax"])
            if w is not None:
                return self.result("witness", w)
            open_ = ~(bnd <= -margin)  # (a NaN bound proves nothing: open)
            unfinished = open_ & (spent < needed)
            if unfinished.any():
                pool.push(unsplit(batch, out, np.nonzero(unfinished)[0], spent[unfinished]))
                open_ &= ~unfinished
            else:
                self.first = False
            self.best_bound = min(self.best_bound, max(-margin, _worst(bnd), pool.max_prio(), self.stuck_max))
            if not open_.any():
                continue
            if not self.late():
                order = np.argsort(-bnd)[: min(8, int(open_.sum()))]
                w = self.check(_attack(self.P, out["xmax"][order], 20, 0.02, self.deadline))
                if w is not None:
                    return self.result("witness", w)
            idx = np.nonzero(open_)[0]
            score, layers, neurons = branching_choice([x[idx] for x in out["lb"]], [x[idx] for x in out["ub"]],
                                                      [x[idx] for x in out["coefs"]],
                                                      [x[idx] for x in batch["split"]])
            witness, left = self._leaves(batch, out, idx, score, layers, neurons)
            if witness is not None:
                return witness
            go = score > 0
            if go.any():
                pool.push(children(batch, out, idx[go], layers[go], neurons[go]))
            pool.push(subset(batch, idx[left]))
        return self.result("undecided" if self.stuck else "proved")

    def _leaves(self, batch, out, idx, score, layers, neurons):
        """Settle the open domains ``idx`` with no branching candidate (score <= 0): pruned by the LP
        certificate (score -2), else split on ``bab_domains.leaf_choice`` (score, layers, neurons updated),
        else stuck.  Once the deadline has passed, the leaves after the current one are left as they are.
        Returns (a witness verdict or None, the positions in ``idx`` of the leaves left)."""
        leaves = np.nonzero(score <= 0)[0]
        for done, pos in enumerate(leaves):
            i = idx[pos]
            lbs = [x[i] for x in out["lb"]]
            ubs = [x[i] for x in out["ub"]]
            lpb, xlp = lp_certificate(self.W, self.b, self.c, self.d, self.lo, self.hi, lbs, ubs)
            if xlp is not None:
                w = self.check(xlp)
                if w is not None:
                    return self.result("witness", w), leaves[:0]
            if lpb <= -self.margin:
                score[pos] = -2.0
            else:
                bsc, bk, bj = leaf_choice(lbs, ubs, [x[i] for x in out["coefs"]], [x[i] for x in batch["split"]])
                if bk < 0:
                    self.stuck += 1
                    self.stuck_max = max(self.stuck_max, _worst(min(float(out["bound"][i]), lpb)))
                    score[pos] = -2.0
                else:
                    score[pos], layers[pos], neurons[pos] = bsc, bk, bj
            if self.late():
                left = leaves[done + 1:]
                score[left] = -2.0
                return None, left
        return None, leaves[:0]
