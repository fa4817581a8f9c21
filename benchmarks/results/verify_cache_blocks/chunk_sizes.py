# verify() alone, threads=2, passes capped at CHUNK_ARRAY_BYTES of 24 / 6 / 3 / 1.5 MiB, six rounds interleaved.
# Compressed models from `exactcompress compress out/bench_zoo/NET.pt --out /tmp/r_NET`; from the repository root:
#   python chunk_sizes.py TREE NET 24,6,3,1.5
import sys, time, numpy as np
sys.path.insert(0, sys.argv[1])
from exactcompress.io import load_network
import exactcompress.engine.verify as V
from exactcompress.engine.domain import Box, Domain
m = sys.argv[2]
orig, _ = load_network(f"out/bench_zoo/{m}.pt")
comp, _ = load_network(f"/tmp/r_{m}/compressed.pt")
dom = Domain("box", (Box(np.zeros(orig.input_dim), np.ones(orig.input_dim)),))
res = {}
sizes=[float(x) for x in sys.argv[3].split(',')]
for rep in range(6):
    for mib in sizes:
        V.CHUNK_ARRAY_BYTES = int(mib * 2**20)
        t = time.perf_counter(); r = V.verify(orig, comp, dom, rng=np.random.default_rng(0), saved_dtype="float32", threads=2)
        res.setdefault(mib, []).append(time.perf_counter() - t)
print(m, "  ".join(f"{k}MiB: min {min(v):.3f} med {sorted(v)[3]:.3f}" for k, v in res.items()))
