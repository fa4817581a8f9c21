"""Run compress with every branch-and-bound call logged (question, fresh/resumed, verdict, domains, seconds,
bound, a digest of the bounds below), and for d3072-5x100-l1_2e-4's question (layer 4, neuron 2, sign -1) each
bounded batch and the check at which each call's deadline cut it (replayed by stops.py as ``bKsS``).
Usage: trace_auto.py LOG -- compress args...  (NODEBUG=1: no per-batch records; DUMP_BELOW=F.npz: save the bounds
that question is asked with, stops.py's BELOW)"""
import hashlib, json, sys, time
import numpy as np
from exactcompress.engine.prove import bab_layer, bab
log_path = sys.argv[1]
argv = sys.argv[3:]
t0 = time.monotonic()
out = open(log_path, "w")

def emit(rec):
    rec["t"] = round(time.monotonic() - t0, 2)
    out.write(json.dumps(rec) + "\n"); out.flush()

orig_prove, orig_resume = bab_layer.prove_sign, bab_layer.resume_sign

def prove(weights, biases, lo, hi, below, layer, neuron, sign, **kw):
    digest = hashlib.sha1(b"".join(np.ascontiguousarray(a).tobytes() for lu in below for a in lu)).hexdigest()[:10]
    budget = kw["deadline"] - time.monotonic()
    if (layer, neuron, sign) == (4, 2, -1) and __import__("os").environ.get("DUMP_BELOW"):
        np.savez(__import__("os").environ["DUMP_BELOW"], *[a for lu in below for a in lu])
    if (layer, neuron, sign) == (4, 2, -1):
        def debug(rec):
            CUT["batches"] += 1; CUT["checks"] = 0
            b = rec["bound"]
            emit({"call": "batch", "n": int(b.shape[0]), "max": float(b.max()), "min": float(b.min()),
                  "open": int((b > -1e-9).sum()), "depth": int(max(sum(int((s_ != 0).sum()) for s_ in row) for row in zip(*rec["split"])))})
        if not __import__("os").environ.get("NODEBUG"):
            kw["debug"] = debug
    r = orig_prove(weights, biases, lo, hi, below, layer, neuron, sign, **kw)
    s = r.suspended._search if r.suspended is not None else None
    emit({"call": "fresh", "layer": layer, "neuron": neuron, "sign": sign, "budget": round(budget, 2),
          "status": r.status, "domains": r.domains, "seconds": round(r.seconds, 2), "bound": r.best_bound,
          "below": digest, "pool": None if s is None else int(s.pool.n), "id": None if s is None else id(s)})
    return r

def resume(suspended, **kw):
    s = suspended._search
    budget = kw["deadline"] - time.monotonic()
    n0 = int(s.pool.n)
    if (s.layer, s.neuron, s.sign) == (4, 2, -1):
        CUT["reported"] = False; CUT["checks"] = 0
    r = orig_resume(suspended, **kw)
    emit({"call": "resume", "layer": s.layer, "neuron": s.neuron, "sign": s.sign, "budget": round(budget, 2),
          "status": r.status, "domains": r.domains, "seconds": round(r.seconds, 2), "bound": r.best_bound,
          "pool_before": n0, "pool": int(s.pool.n), "stuck": s.stuck, "stuck_max": s.stuck_max, "id": id(s), "stop_set": bool(kw.get("stop") and kw["stop"].is_set())})
    return r

bab_layer.prove_sign, bab_layer.resume_sign = prove, resume
CUT = {"batches": 0, "checks": 0, "reported": False}
orig_late = bab._Search.late
def late(self):
    r = orig_late(self)
    if (self.layer, self.neuron, self.sign) == (4, 2, -1):
        CUT["checks"] += 1
        if r and not CUT["reported"]:
            CUT["reported"] = True
            emit({"call": "cut", "after_batches": CUT["batches"], "check": CUT["checks"]})
    return r
bab._Search.late = late
orig_lp = bab.lp_certificate
def lp(Ws, bs_, c, d, lo, hi, lb, ub, want_alpha=False):
    r = orig_lp(Ws, bs_, c, d, lo, hi, lb, ub, want_alpha=want_alpha)
    if not want_alpha:
        unst = sum(int(((l < 0) & (u > 0)).sum()) for l, u in zip(lb, ub))
        fx = None
        if r[1] is not None:
            h = r[1]
            for W_, b_ in zip(Ws, bs_):
                h = np.maximum(W_ @ h + b_, 0)
            fx = float(c @ h + d)
        emit({"call": "leaf", "lpb": r[0], "f_at_x": fx, "unstable": unst})
    return r
bab.lp_certificate = lp
from exactcompress import cli
sys.argv = ["exactcompress"] + argv
try:
    cli.main()
finally:
    out.close()
