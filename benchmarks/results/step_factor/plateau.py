"""Replay the astray schedule; for batches whose priorities sit at the plateau, print prio vs the float64
evaluations of the target's bound (first and best) to see whether children start worse than their parents."""
import pathlib, sys, runpy, numpy as np, torch
from exactcompress.engine.prove import bab_batch
orig_lag = bab_batch.lagrangian
orig_bound = bab_batch.Bounder.bound
cur = {"evals": []}
def lag(*a, **k):
    r = orig_lag(*a, **k)
    if k.get("guard", True) is not False and a[4].dtype == torch.float64:
        cur["evals"].append(r[0][:, 0].detach().cpu().numpy().copy())
    return r
def bound(self, batch, nsteps):
    cur["evals"] = []
    prio = batch["prio"].copy(); steps_in = batch["steps"].copy()
    depth = (batch["sorder"] >= 0).sum(1)
    out = orig_bound(self, batch, nsteps)
    if prio.size and prio.max() < 0.0003 and prio.max() > 0.0002:
        first = cur["evals"][0] if cur["evals"] else None
        n = min(4, prio.size)
        print("BATCH n", prio.size, "steps_in", steps_in[:n], "depth", depth[:n], "prio", prio[:n],
              "firstU", None if first is None else first[:n], "ownbest", np.min(np.stack([e[:n] for e in cur["evals"] if e.shape[0] == prio.size]), 0) if cur["evals"] else None, "nevals", len(cur["evals"]), flush=True)
        print("   traj0", [round(float(e[0]), 5) for e in cur["evals"] if e.shape[0] == prio.size], flush=True)
    return out
bab_batch.lagrangian = lag
bab_batch.Bounder.bound = bound
sys.argv = ["stops.py", "/tmp/trace/below_4_2.npz", "4", "2", "-1", "b3s44,b11s17,b27s6"]
runpy.run_path(str(pathlib.Path(__file__).with_name("stops.py")), run_name="__main__")
