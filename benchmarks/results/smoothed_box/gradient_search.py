# usage: gradient_search.py MODEL.pt LAYER NEURONS(comma) SIGN -- max of sign*g by projected Adam from 256 random starts in [0, 1]^d
import sys, torch, numpy as np, time
sd = torch.load(sys.argv[1], weights_only=True)
keys = [k for k in sd if k.endswith('weight')]
Ws = [sd[k].double() for k in keys]; bs = [sd[k.replace('weight','bias')].double() for k in keys]
layer = int(sys.argv[2]); neurons = [int(n) for n in sys.argv[3].split(',')]; sign = int(sys.argv[4])
d = Ws[0].shape[1]
torch.manual_seed(0)
def g(x):
    h = x
    for k in range(layer):
        h = torch.relu(h @ Ws[k].T + bs[k])
    return h @ Ws[layer][neurons].T + bs[layer][neurons]
n = 256
for j, nj in enumerate(neurons):
    t0 = time.time()
    x = torch.rand(n, d, dtype=torch.float64).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.02)
    best = np.inf*-1
    for t in range(1500):
        v = sign * g(x)[:, j]
        opt.zero_grad(); (-v.sum()).backward(); opt.step()
        with torch.no_grad(): x.clamp_(0, 1)
        best = max(best, float(v.max()))
        if t % 300 == 0: print(nj, t, best, flush=True)
    print('neuron', nj, 'best sign*g', best, time.time()-t0, flush=True)
