"""One question, stopped and resumed at given cuts: how the total domains vary.
usage: stops.py BELOW.npz LAYER NEURON SIGN 'c1,c2,...' [batch_size] [model]
BELOW.npz: the bounds of the layers below (arr_0, arr_1: lower, upper of layer 0, ...). Each cut ends one call: a
number N (the N-th check of the stop signal in that call; the search checks it before each batch and at each Adam
step) or bKsS (the S-th check after K batches were bounded in all). After the last cut, one more call to the end
(60 s here; the replays of replays_91f76dd.txt gave it 150-900 s). Empty schedule: uninterrupted."""
import sys, time, threading
import numpy as np, torch
from pathlib import Path
from exactcompress.allocator import tune_allocator
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box
from exactcompress.engine.prove import bab
from exactcompress.tolerances import BOUND_MARGIN, WITNESS_MARGIN
tune_allocator(); torch.set_num_threads(1)
npz, layer, neuron, sign, sched = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
bs = int(sys.argv[6]) if len(sys.argv) > 6 else None
model = sys.argv[7] if len(sys.argv) > 7 else "/work/main/out/bench_zoo/d3072-5x100-l1_2e-4.pt"
network, _ = load_network(Path(model))
box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
arrs = np.load(npz); arrs = [arrs[f"arr_{i}"] for i in range(len(arrs.files))]
below = [(arrs[2 * i], arrs[2 * i + 1]) for i in range(len(arrs) // 2)]
W = [h.weight for h in network.hidden[: layer + 1]]; B = [h.bias for h in network.hidden[: layer + 1]]
stops = [x if x.startswith("b") else int(x) for x in sched.split(",") if x]
class Counter:
    """A stop signal that turns on at its limit-th check (the search checks at every Adam step); a limit
    'bKsS' turns on at the S-th check after K batches were bounded in all."""
    def __init__(self, limit):
        self.after = None
        if isinstance(limit, str) and limit.startswith("b"):
            k, s_ = limit[1:].split("s")
            self.after, limit = int(k), int(s_)
        self.limit, self.calls = limit, 0
    def is_set(self):
        if self.after is not None and state["batches"] < self.after:
            return False
        self.calls += 1
        return self.limit is not None and self.calls >= self.limit
    def set(self):
        pass
state = {"batches": 0, "event": Counter(stops[0] if stops else None), "limit": None}
trace = []
def debug(rec):
    state["batches"] += 1
    b = rec["bound"]
    print("batch", int(b.shape[0]), float(b.max()), float(b.min()), int((b > -1e-9).sum()), flush=True)
    if state["limit"] is not None and state["batches"] >= state["limit"]:
        state["event"].set()
last_search = [None]
_orig_result = bab._Search.result
def _result(self, *a, **k):
    last_search[0] = self
    return _orig_result(self, *a, **k)
bab._Search.result = _result
t0 = time.monotonic(); total = 0
res = bab.prove_sign(W, B, box.lower, box.upper, below, layer, neuron, sign, margin=BOUND_MARGIN,
                     witness_margin=WITNESS_MARGIN, deadline=time.monotonic() + 60, seed=neuron, debug=debug,
                     stop=state["event"], batch_size=bs)
total += res.domains; calls = 1; per = [res.domains]
for nxt in stops[1:] + [None]:
    if res.status != "undecided" or res.suspended is None:
        break
    state["event"] = Counter(nxt)
    res = bab.resume_sign(res.suspended, deadline=time.monotonic() + 60, stop=state["event"])
    total += res.domains; calls += 1; per.append(res.domains)
srch = last_search[0]
prios = np.concatenate([p["prio"] for p in srch.pool.parts]) if srch.pool is not None and srch.pool.parts else np.zeros(0)
depths = np.concatenate([(p["sorder"] >= 0).sum(1) for p in srch.pool.parts]) if prios.size else np.zeros(0)
extra = (f" stuck={srch.stuck} stuck_max={srch.stuck_max:.3g} open={prios.size}"
         + (f" prio max {prios.max():.3g} median {np.median(prios):.3g} depth {depths.min()}-{depths.max()}" if prios.size else ""))
print(f"sched={sched or '-'} bs={bs} {res.status} {total} domains {state['batches']} batches {time.monotonic() - t0:.1f} s calls {calls} per call {per}{extra}", flush=True)
