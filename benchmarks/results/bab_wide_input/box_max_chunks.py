# box_max (bab_bounds) on random data of the 5x100 shape: 8 domains x 257 queries x 100 first-layer neurons x 3072
# inputs, one torch thread, 5 calls each, with and without the gradient, for several BOX_CHUNK_ELEMENTS.
import torch, time, numpy as np
import exactcompress.engine.prove.bab_bounds as BB
torch.set_num_threads(1)
class P: pass
for dt in (torch.float32, torch.float64):
    p=P(); g=torch.Generator().manual_seed(0)
    p.spread=torch.randn(100,3072,generator=g,dtype=dt); p.center=torch.randn(100,dtype=dt); p.reach=torch.rand(100,dtype=dt)
    cz=torch.randn(8,257,100,generator=g,dtype=dt)
    for el in (2**15,2**17,2**19,2**21,2**23):
        BB.BOX_CHUNK_ELEMENTS=el
        for grad in (True,False):
            t=time.perf_counter()
            for _ in range(5): BB.box_max(p,cz,grad)
            print(dt, el, grad, f"{(time.perf_counter()-t)/5*1000:.1f} ms")
