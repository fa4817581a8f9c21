# verify() alone, threads=2, 4 calls per process (the first cold), trees alternated net by net: HEAD (40f6a17) in
# /tmp/base, HEAD + fused_blocks.diff in /tmp/fused. From the repository root: python side_by_side.py TREE NET 2
import sys, time, numpy as np
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
    t = time.perf_counter(); r = V.verify(orig, comp, dom, rng=np.random.default_rng(0), saved_dtype="float32", threads=int(sys.argv[3]))
    ts.append(time.perf_counter() - t)
print(V.__file__.split('/')[2], m, sys.argv[3], " ".join("%.3f" % x for x in ts), r.passed, r.n_inputs, r.max_abs_error)
