"""Domains of branch and bound (``bab``): the pool of open domains, the choice of the neuron to split and the
children of split domains.

A *batch* of B domains is a dict of numpy arrays, one row per domain (n_k: kept neurons of hidden layer k,
nU: neurons of the query universe, t: splits made so far):

* ``lb``, ``ub``: lists of (B, n_k) float64, pre-activation bounds valid on the domain's hypothesis set;
* ``split``: list of (B, n_k) int8, +1 split active (z >= 0), -1 split inactive (z <= 0), 0 unsplit;
* ``alpha``, ``eta``: lists of (B, n_k) float32, the target query's parameters (warm start);
* ``qlam``: (B, 2 nU) float32, the other queries' lam (upper bounds of +z, then of -z);
* ``qalpha``: (B, 2 nU, n_alpha) uint8, their alphas times 255 (``bab_batch.QueryUniverse.alpha_columns``);
* ``qeta``: (B, 2 nU, t) float16, their eta on the neuron split at each step;
* ``sorder``: (B, t) int32, flat index of the neuron split at each step (-1: none, after merging);
* ``prio``: (B,) float64, the parent's bound (a domain back unsplit: its own): the pool's priority;
* ``steps``: (B,) int32, the Adam steps already spent on the domain's bound where a deadline cut its batch short
  (0 for a new domain; see ``unsplit``);
* ``lr``: (B,) float32, the factor of Adam's steps for the domain (1 at the root; ``bab_batch.Bounder._optimise``
  halves it for the children of a domain whose steps never bounded it below its warm start; a domain whose
  bounding a deadline cut after its first ``CERTIFY_EVERY`` steps goes back to the pool with the factor updated the
  same way; the hypothesis multipliers' steps are scaled further by depth, ``bab_batch.lam_step_factors``).

Branching splits, in each open domain, the unsplit unstable neuron with the largest intercept score
``a * (-l u / (u - l))`` among those with a positive coefficient ``a`` into the target; where there is none
(a leaf), the LP certificate decides, and failing that any unsplit unstable neuron, largest
``|a| * min(u, -l)``.  Children inherit the parent's bounds (their hypothesis sets are subsets).
"""

from __future__ import annotations

import math

import numpy as np


def flat_positions(widths):
    """(layer_of, pos_of), each (sum of widths,) int64: the layer and the index within it of each flat neuron."""
    layer_of = np.concatenate([np.full(n, k) for k, n in enumerate(widths)])
    pos_of = np.concatenate([np.arange(n) for n in widths])
    return layer_of, pos_of


def quantized_alpha(alpha: np.ndarray) -> np.ndarray:
    """Slopes in [0, 1] stored as uint8 (times 255) to warm-start a resumed search; a NaN (a step that overflowed
    float32 on a net of extreme scale) is stored as 0, any slope being valid there."""
    return np.rint(np.clip(np.nan_to_num(alpha, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)


def root_domain(lb, ub, alpha, top_cols, n_queries, prio):
    """The batch of the one unsplit domain: bounds ``lb``/``ub`` (lists of (n_k,)), target alphas ``alpha``
    (lists of (n_k,)), every query's alpha the same; ``top_cols`` the top-layer columns of stored query alphas."""
    widths = [len(x) for x in lb]
    query_alpha = quantized_alpha(np.concatenate(alpha[:-1] + [alpha[-1][top_cols]]))
    return {
        "lb": [x[None].copy() for x in lb],
        "ub": [x[None].copy() for x in ub],
        "split": [np.zeros((1, n), dtype=np.int8) for n in widths],
        "alpha": [a[None].astype(np.float32) for a in alpha],
        "eta": [np.zeros((1, n), dtype=np.float32) for n in widths],
        "qlam": np.zeros((1, 2 * n_queries), dtype=np.float32),
        "sorder": np.zeros((1, 0), dtype=np.int32),
        "qalpha": np.repeat(query_alpha[None, None], 2 * n_queries, 1),
        "qeta": np.zeros((1, 2 * n_queries, 0), dtype=np.float16),
        "prio": np.array([prio]),
        "steps": np.zeros(1, dtype=np.int32),
        "lr": np.ones(1, dtype=np.float32),
    }


def branching_choice(lb, ub, coefs, split):
    """The neuron to split in each of n domains by the intercept score (lists of (n, n_k): bounds, the
    target's coefficients on h^k, splits).  Returns (score, layer, neuron), each (n,); score <= 0: a leaf."""
    widths = [x.shape[1] for x in lb]
    scores = []
    for k in range(len(widths)):
        l, u, a = lb[k], ub[k], coefs[k]
        unst = (l < 0) & (u > 0) & (split[k] == 0)
        sc = a * (-l * u / np.where(unst, u - l, 1.0))
        scores.append(np.where(unst & (a > 0), sc, -1.0))
    flat = np.concatenate(scores, 1)
    layer_of, pos_of = flat_positions(widths)
    jbest = np.argmax(flat, 1)
    return flat[np.arange(flat.shape[0]), jbest], layer_of[jbest], pos_of[jbest]


def leaf_choice(lb, ub, coefs, split):
    """The neuron to split in a leaf (lists of (n_k,) for one domain): any unsplit unstable neuron, largest
    ``|a| * min(u, -l)``.  Returns (score, layer, neuron); layer -1: none left."""
    bsc, bk, bj = 0.0, -1, -1
    for k in range(len(lb)):
        l, u, a = lb[k], ub[k], coefs[k]
        unst = (l < 0) & (u > 0) & (split[k] == 0)
        sc = np.where(unst, np.abs(a) * np.minimum(u, -l) + 1e-30, 0.0)
        j = int(np.argmax(sc))
        if sc[j] > bsc:
            bsc, bk, bj = float(sc[j]), k, j
    return bsc, bk, bj


def children(batch, out, idx, layers, neurons):
    """The two children (active first, then inactive) of the domains ``idx`` of a bounded batch, split on
    ``(layers, neurons)`` (each (n,)): ``out`` (``bab_batch.Bounder.bound``) gives their bounds and warm starts,
    ``batch`` their splits.  Returns a batch of 2n domains, the parents' bounds as priority."""
    widths = [x.shape[1] for x in batch["split"]]
    offs = np.concatenate([[0], np.cumsum(widths)])[:-1]
    n = len(idx)
    parent = unsplit(batch, out, idx, np.zeros(n, dtype=np.int32))
    parent["sorder"] = np.concatenate([parent["sorder"], (offs[layers] + neurons)[:, None].astype(np.int32)], 1)
    parent["qeta"] = np.concatenate([parent["qeta"], np.zeros((n, parent["qeta"].shape[1], 1), dtype=np.float16)], 2)
    kids = {key: [np.concatenate([a, a]) for a in v] if isinstance(v, list) else np.concatenate([v, v])
            for key, v in parent.items()}
    rows_active = np.arange(n)
    rows_inactive = np.arange(n, 2 * n)
    for k in range(len(widths)):
        sel = layers == k
        if not sel.any():
            continue
        ra, ri, nn = rows_active[sel], rows_inactive[sel], neurons[sel]
        kids["lb"][k][ra, nn] = np.maximum(kids["lb"][k][ra, nn], 0.0)
        kids["split"][k][ra, nn] = 1
        kids["ub"][k][ri, nn] = np.minimum(kids["ub"][k][ri, nn], 0.0)
        kids["split"][k][ri, nn] = -1
        kids["eta"][k][ra, nn] = 0.0
        kids["eta"][k][ri, nn] = 0.0
    return kids


def unsplit(batch, out, idx, steps):
    """The domains ``idx`` of a bounded batch, unsplit: their tightened bounds and warm starts from ``out``
    (``bab_batch.Bounder.bound``), their bound as priority and ``steps`` ((n,) int) the Adam steps spent on them.
    ``children`` builds on it; domains whose bounding a deadline cut short go back to the pool as they are, to be
    bounded again before they are split (a split chosen from bounds optimised for a few steps can cost a search
    many times the domains: on one question of d3072-5x100-l1_1e-4, 580 domains and still open, against 55 when
    the root's bounding was not cut short)."""
    return {
        "lb": [x[idx] for x in out["lb"]],
        "ub": [x[idx] for x in out["ub"]],
        "split": [x[idx] for x in batch["split"]],
        "alpha": [x[idx] for x in out["alpha"]],
        "eta": [x[idx] for x in out["eta"]],
        "qlam": out["qlam"][idx],
        "sorder": batch["sorder"][idx],
        "qalpha": out["qalpha"][idx],
        "qeta": out["qeta"][idx],
        "prio": out["bound"][idx],
        "steps": np.asarray(steps, dtype=np.int32),
        "lr": out["lr"][idx],
    }


#: parts the pool keeps apart before it merges the small ones (each ``pop`` visits every part)
MAX_POOL_PARTS = 16


class Pool:
    """The open domains, as a list of batches (*parts*, see the module docstring); ``pop`` takes those of highest
    priority.  Parts are never concatenated as a whole: a pop copies only the parts it takes rows from, one at a
    time, so the memory a pop needs beyond the pool's own is about one part (the whole pool was copied twice
    before: 2x its size at the cap)."""

    def __init__(self, widths):
        self.widths = widths
        self.parts = []  # list of dict batches
        self.n = 0

    def push(self, batch):
        if batch["prio"].shape[0]:
            self.parts.append(batch)
            self.n += batch["prio"].shape[0]
        if len(self.parts) > MAX_POOL_PARTS:
            self._merge_small()

    def nbytes(self):
        total = 0
        for p in self.parts:
            for v in p.values():
                if isinstance(v, list):
                    total += sum(a.nbytes for a in v)
                else:
                    total += v.nbytes
        return total

    def _merge_small(self):
        """Concatenate the parts smaller than an eighth of the largest (at least the two smallest)."""
        sizes = [p["prio"].shape[0] for p in self.parts]
        by_size = sorted(range(len(sizes)), key=sizes.__getitem__)
        small = set(by_size[:2]) | {i for i in by_size[:-1] if sizes[i] < max(sizes) / 8}
        merged = concatenate([self.parts[i] for i in sorted(small)], len(self.widths))
        self.parts = [p for i, p in enumerate(self.parts) if i not in small] + [merged]

    def pop(self, count):
        """The ``count`` domains of highest priority (all if fewer) as one batch, removed; None if empty."""
        if not self.parts:
            return None
        if count >= self.n:
            out = concatenate(self.parts, len(self.widths))
            self.parts, self.n = [], 0
            return out
        prio = np.concatenate([p["prio"] for p in self.parts])
        take = np.zeros(prio.shape[0], dtype=bool)
        take[np.argpartition(-prio, count - 1)[:count]] = True
        taken, start = [], 0
        for i, part in enumerate(self.parts):
            size = part["prio"].shape[0]
            here = take[start:start + size]
            start += size
            if here.any():
                taken.append(subset(part, here))
                self.parts[i] = subset(part, ~here) if not here.all() else None
        self.parts = [p for p in self.parts if p is not None]
        self.n -= count
        return concatenate(taken, len(self.widths))

    def max_prio(self):
        return max((float(p["prio"].max()) for p in self.parts), default=-math.inf)


def concatenate(parts, depth):
    """One batch of the domains of ``parts`` (in order); ``sorder`` and ``qeta`` padded to the longest (-1, 0)."""
    if len(parts) == 1:
        return parts[0]
    merged = {}
    for key in parts[0]:
        if isinstance(parts[0][key], list):
            merged[key] = [np.concatenate([p[key][k] for p in parts]) for k in range(depth)]
        elif key in ("sorder", "qeta"):
            width = max(p[key].shape[-1] for p in parts)
            fill = -1 if key == "sorder" else 0
            merged[key] = np.concatenate([np.pad(p[key], [(0, 0)] * (p[key].ndim - 1)
                                                 + [(0, width - p[key].shape[-1])], constant_values=fill)
                                          for p in parts])
        else:
            merged[key] = np.concatenate([p[key] for p in parts])
    return merged


def splits_by_layer(split_order: np.ndarray, layer_of: np.ndarray, depth: int):
    """``(step, layer, rows)`` for every split step (a column of ``split_order``, flat ReLU indices, -1: none)
    and layer with domains whose split at that step lies in that layer (``rows``, non-empty)."""
    for step in range(split_order.shape[1]):
        flat = split_order[:, step]
        for layer in range(depth):
            rows = np.nonzero((flat >= 0) & (layer_of[np.maximum(flat, 0)] == layer))[0]
            if len(rows):
                yield step, layer, rows


def subset(batch, idx):
    """The domains ``idx`` (indices or a boolean mask) of a batch."""
    return {k: ([a[idx] for a in v] if isinstance(v, list) else v[idx]) for k, v in batch.items()}
