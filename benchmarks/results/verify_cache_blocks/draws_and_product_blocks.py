# Draws of 1e5 x 3072 float64 and their product with 26 rows, in 98 passes of 1,024 rows on two threads (one BLAS
# thread each), drawn and multiplied a block of SUB rows at a time into a reused buffer; then the two parts alone.
# Run: python draws_and_product_blocks.py
import numpy as np, time
from threadpoolctl import threadpool_limits
from concurrent.futures import ThreadPoolExecutor
W=np.random.default_rng(0).standard_normal((26,3072)); WT=np.ascontiguousarray(W.T)
lo=np.zeros(3072); span=np.ones(3072)
N=100_000
def job(args):
    start, rows, sub = args
    rng=np.random.Generator(np.random.SFC64([1,start]))
    buf=np.empty((sub,3072)); out=np.empty((rows,26))
    for s in range(0, rows, sub):
        b=buf[:min(sub,rows-s)]
        rng.random(out=b); b*=span; b+=lo
        np.matmul(b, WT, out=out[s:s+len(b)])
    return out
for rep in range(3):
  for rows, sub in [(1024,1024),(1024,256),(1024,128),(1024,64),(1024,32)]:
    with threadpool_limits(1), ThreadPoolExecutor(2) as ex:
        t=time.perf_counter(); list(ex.map(job, [(s, min(rows, N-s), sub) for s in range(0,N,rows)])); dt=time.perf_counter()-t
    print(rows, sub, f"{dt:.3f}s")
print("parts")
def draws(args):
    start, rows, sub = args
    rng=np.random.Generator(np.random.SFC64([1,start]))
    buf=np.empty((sub,3072))
    for s in range(0, rows, sub):
        rng.random(out=buf[:min(sub,rows-s)])
def prods(args):
    start, rows, sub = args
    rng=np.random.Generator(np.random.SFC64([1,start]))
    buf=rng.random((sub,3072)); out=np.empty((rows,26))
    for s in range(0, rows, sub):
        b=buf[:min(sub,rows-s)]
        np.matmul(b, WT, out=out[s:s+len(b)])
for f in (draws, prods):
  for sub in (1024,128):
    with threadpool_limits(1), ThreadPoolExecutor(2) as ex:
        t=time.perf_counter(); list(ex.map(f, [(s, min(1024, N-s), sub) for s in range(0,N,1024)])); dt=time.perf_counter()-t
    print(f.__name__, sub, f"{dt:.3f}s")
