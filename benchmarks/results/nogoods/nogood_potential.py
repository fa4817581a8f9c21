"""How much could nogoods (split sets proved empty, shared across the tree's branches) save on one question?

    python nogood_potential.py MODEL LAYER NEURON [--limit S] [--rounds R] [--max-leaves N]

1. Runs branch and bound on the question with the debug hook and records every bounded domain (its splits,
   whether it closed) in the order bounded.
2. Re-derives each closed domain *fresh*: a new domain with the root's bounds and only its splits, bounded
   ``--rounds`` times (warm-started from itself, the bounds tightened each time), without the tightening its
   ancestors passed down.  A closed domain that still closes fresh is a nogood candidate that one could find
   without the tree.
3. For those, drops splits greedily (each split tried alone, then the droppable ones one after the other) while
   the fresh domain still closes: a smaller split set S' whose domain is empty or proved (a nogood; sound: any
   domain whose splits contain S' lies inside S', so it is closed too).
4. Replays the recorded order: a domain bounded after a nogood was found and whose splits contain it would not
   have been bounded (nor its subtree).  Prints the counts.  A measurement, not a proof: nothing here changes
   the engine.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bab_questions import hidden_layers, question_setup  # noqa: E402
from exactcompress.engine.prove import bab  # noqa: E402
from exactcompress.engine.prove.bab_domains import concatenate, unsplit  # noqa: E402
from exactcompress.tolerances import BOUND_MARGIN, WITNESS_MARGIN  # noqa: E402

torch.set_num_threads(1)
parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("layer", type=int)
parser.add_argument("neuron", type=int)
parser.add_argument("--limit", type=float, default=120)
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--max-leaves", type=int, default=400)
args = parser.parse_args()
_, network, box, below = question_setup(Path(args.model), args.layer)
W, B = hidden_layers(network, args.layer)

# 1. the tree
records = []  # (frozenset of (flat, sign), closed)


def flat_splits(split_rows):
    """per domain: frozenset of (layer, neuron, sign) from a list of (n, n_k) int8 arrays"""
    out = []
    for i in range(split_rows[0].shape[0]):
        out.append(frozenset((k, int(j), int(s[i, j])) for k, s in enumerate(split_rows) for j in np.nonzero(s[i])[0]))
    return out


def dbg(d):
    closed = d["bound"] <= -BOUND_MARGIN
    for sp, c in zip(flat_splits(d["split"]), closed):
        records.append((sp, bool(c)))


start = time.monotonic()
result = bab.prove_sign(W, B, box.lower, box.upper, below, args.layer, args.neuron, 1, margin=BOUND_MARGIN,
                        witness_margin=WITNESS_MARGIN, deadline=time.monotonic() + args.limit, debug=dbg)
print(f"{Path(args.model).stem} layer {args.layer} neuron {args.neuron}: {result.status}, {result.domains} domains, "
      f"{result.seconds:.1f} s; recorded {len(records)}, closed {sum(c for _, c in records)}", flush=True)


# 2. a probe that stops after the root: its pool holds the root domain, its bounder bounds fresh domains
class Probe(bab._Search):
    def _search(self):
        return None


probe = Probe(W, B, box.lower, box.upper, args.layer, args.neuron, 1, margin=BOUND_MARGIN,
              witness_margin=WITNESS_MARGIN, deadline=None, stop=None)
assert probe.run(below, device="cpu", seed=0, batch_size=None, steps=bab.STEPS, root_steps=bab.ROOT_STEPS,
                 debug=None) is None
root = probe.pool.pop(1)
depth = len(root["split"])
widths = [x.shape[1] for x in root["split"]]
offs = np.concatenate([[0], np.cumsum(widths)])[:-1]
nq2 = root["qeta"].shape[1]


def fresh(split_set):
    d = {key: [a.copy() for a in v] if isinstance(v, list) else v.copy() for key, v in root.items()}
    order = sorted(split_set)
    for k, j, s in order:
        d["split"][k][0, j] = s
        if s > 0:
            d["lb"][k][0, j] = max(d["lb"][k][0, j], 0.0)
        else:
            d["ub"][k][0, j] = min(d["ub"][k][0, j], 0.0)
    d["sorder"] = np.array([[offs[k] + j for k, j, _ in order]], dtype=np.int32).reshape(1, len(order))
    d["qeta"] = np.zeros((1, nq2, len(order)), dtype=np.float16)
    return d


def closes(sets, chunk=128):
    """whether each split set's fresh domain closes within --rounds boundings"""
    verdict = np.zeros(len(sets), dtype=bool)
    for c0 in range(0, len(sets), chunk):
        part = sets[c0:c0 + chunk]
        batch = concatenate([fresh(s) for s in part], depth)
        alive = np.arange(len(part))
        for r in range(args.rounds):
            out = probe.bounder.bound(batch, bab.ROOT_STEPS if r == 0 else bab.STEPS)
            done = out["bound"] <= -BOUND_MARGIN
            verdict[c0 + alive[done]] = True
            keep = np.nonzero(~done)[0]
            if not len(keep):
                break
            batch = unsplit(batch, out, keep, np.zeros(len(keep), dtype=np.int32))
            alive = alive[keep]
    return verdict


closed_sets = [s for s, c in records if c][: args.max_leaves]
t0 = time.monotonic()
again = closes(closed_sets)
print(f"fresh re-derivation ({args.rounds} boundings each): {int(again.sum())} of {len(closed_sets)} closed domains "
      f"close again ({time.monotonic() - t0:.1f} s); depths of those: "
      f"{np.bincount([len(s) for s, a in zip(closed_sets, again) if a]).tolist()}", flush=True)

# 3. greedy shrinking of the ones that close fresh
nogoods = {}  # index in closed_sets -> S'
t0 = time.monotonic()
for i in np.nonzero(again)[0]:
    current = closed_sets[i]
    while len(current) > 1:
        trials = [current - {x} for x in sorted(current)]
        ok = closes(trials)
        if not ok.any():
            break
        current = trials[int(np.nonzero(ok)[0][0])]
    nogoods[int(i)] = current
sizes = [(len(closed_sets[i]), len(s)) for i, s in nogoods.items()]
print(f"shrinking: {time.monotonic() - t0:.1f} s; (depth, nogood size): {sizes[:40]}", flush=True)

# 4. replay
closed_index = {}
for pos, (s, c) in enumerate(records):
    if c:
        closed_index.setdefault(s, pos)
found_at = sorted((closed_index[closed_sets[i]], s) for i, s in nogoods.items())
pruned = 0
for pos, (s, _) in enumerate(records):
    if any(at < pos and ng <= s for at, ng in found_at):
        pruned += 1
print(f"replay: {pruned} of {len(records)} bounded domains contain a nogood found before them "
      f"(would not have been bounded)", flush=True)
