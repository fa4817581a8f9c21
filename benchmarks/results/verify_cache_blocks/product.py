# The first-layer product of verify on d3072-2x800-l1_2e-4 (26 kept rows) and the two second layers, 100,000 rows
# in passes of 1,024 or 128 rows, one or two BLAS threads; needs /tmp/r_d3072-2x800-l1_2e-4 (exactcompress compress).
import numpy as np, time
from threadpoolctl import threadpool_limits
from exactcompress.io import load_network
comp,_=load_network("/tmp/r_d3072-2x800-l1_2e-4/compressed.pt"); orig,_=load_network("out/bench_zoo/d3072-2x800-l1_2e-4.pt")
L=comp.layers[0]; red=orig.without_first_neurons(np.arange(26))
rng=np.random.default_rng(0)
for rows in (1024,128):
    buf=rng.random((rows,3072))
    for lim in (1,2):
      with threadpool_limits(lim):
        t=time.perf_counter()
        for i in range(100_000//rows): L(buf)
        a=time.perf_counter()-t
        f=L(buf); t=time.perf_counter()
        for i in range(100_000//rows): np.maximum(f,0)@comp.layers[1].weight.T
        b=time.perf_counter()-t
        t=time.perf_counter()
        for i in range(100_000//rows): np.maximum(f,0)@red.layers[1].weight.T
        c=time.perf_counter()-t
      print(rows, lim, f"first {a:.3f} comp2 {b:.3f} red2 {c:.3f}", red.layers[1].weight.shape)
