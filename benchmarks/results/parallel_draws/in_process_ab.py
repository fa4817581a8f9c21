# Run at 137d978 (4 streams in threads) from the repository root, after `exactcompress compress out/bench_zoo/d3072-2x800-l1_2e-4.pt --out /tmp/fc/v1`:
# verify() with the single-stream draws of 9bee668 ("old") and 137d978's ("new"), alternating, in one process.
import time, numpy as np
from exactcompress.io import load_network
from exactcompress.engine import verify as V
from exactcompress.engine.domain import Domain, Box
orig,_=load_network('out/bench_zoo/d3072-2x800-l1_2e-4.pt'); comp,_=load_network('/tmp/fc/v1/compressed.pt')
dom=Domain("box",(Box(np.zeros(3072),np.ones(3072)),))
new=V._uniform_chunks
def old(domain, n_samples, rows, rng):
    rng = np.random.Generator(np.random.SFC64(rng.integers(2**63)))
    buffer = np.empty((min(rows, n_samples), domain.dim))
    for start in range(0, n_samples, rows):
        yield V._fill_uniform(buffer[: min(rows, n_samples - start)], domain, start, n_samples, rng)
res={'old':[], 'new':[]}
for rep in range(6):
    for name,f in (('old',old),('new',new)):
        V._uniform_chunks=f
        t=time.perf_counter(); V.verify(orig, comp, dom, rng=np.random.default_rng(0)); res[name].append(round(time.perf_counter()-t,2))
print(res, {k: sorted(v)[len(v)//2] for k,v in res.items()})
