# verify() alone, in one process per tree and net, 4 calls each (the first cold); trees alternated net by net.
# Compressed models from `exactcompress compress out/bench_zoo/NET.pt --out /tmp/r_NET`; run from the repository root:
#   python verify_in_process.py TREE NET
import sys, time, numpy as np, importlib
sys.path.insert(0, sys.argv[1])
from exactcompress.io import load_network
import exactcompress.engine.verify as V
from exactcompress.engine.domain import Box, Domain
m = sys.argv[2]
orig, _ = load_network(f"out/bench_zoo/{m}.pt")
comp, _ = load_network(f"/tmp/r_{m}/compressed.pt")
dom = Domain("box", (Box(np.zeros(orig.input_dim), np.ones(orig.input_dim)),))
ts = []
for rep in range(4):
    t = time.perf_counter(); r = V.verify(orig, comp, dom, rng=np.random.default_rng(0), saved_dtype="float32")
    ts.append(time.perf_counter() - t)
print(sys.argv[1], m, " ".join("%.3f" % x for x in ts), r.passed, r.n_inputs)
