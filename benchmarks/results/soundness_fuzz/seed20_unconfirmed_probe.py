import sys, numpy as np
sys.path.insert(0, 'benchmarks'); sys.path.insert(0, 'tests/engine')
import soundness_fuzz as sf
from scipy.optimize import linprog
for seed, index, layer, neuron in [(20, 106, 1, 1), (20, 63, 3, 0)]:
    rng = np.random.default_rng([seed, index])
    family = sf.FAMILIES[index % len(sf.FAMILIES)] if hasattr(sf, 'FAMILIES') else None
    print('family', family)
    network, Ws, bs, boxes = sf.random_net(rng, family)
    lo, hi = map(np.asarray, boxes[0])
    val, pt = sf.truth_max(Ws, bs, boxes, layer, neuron, -1, enumerate_below=12, with_point=True)
    g = network.preactivations(pt[None])[layer][0, neuron]
    print('truth min', -val, 'float64 at point', g)
    # activation pattern at pt, LP in that region
    acts = [a[0] > 0 for a in network.preactivations(pt[None])[:layer]]
    # affine maps: track z = A x + c for each layer
    A, c = np.eye(len(lo)), np.zeros(len(lo))
    A_ub, b_ub = [], []
    for k in range(layer):
        Ak, ck = Ws[k] @ A, Ws[k] @ c + bs[k]
        for j, on in enumerate(acts[k]):
            if on: A_ub.append(-Ak[j]); b_ub.append(ck[j])  # z >= 0
            else: A_ub.append(Ak[j]); b_ub.append(-ck[j])   # z <= 0
        A = Ak * acts[k][:, None]; c = ck * acts[k]
    a, c0 = (Ws[layer] @ A)[neuron], (Ws[layer] @ c + bs[layer])[neuron]
    res = linprog(a, A_ub=np.array(A_ub) if A_ub else None, b_ub=np.array(b_ub) if b_ub else None,
                  bounds=list(zip(lo, hi)), method='highs', options=dict(primal_feasibility_tolerance=1e-10, dual_feasibility_tolerance=1e-10))
    x = np.clip(res.x, lo, hi)
    print('region LP min', res.fun + c0, 'float64 at LP point', network.preactivations(x[None])[layer][0, neuron])
    # local random search around
    best = g
    r = np.random.default_rng(0)
    for scale in [1e-3, 1e-5, 1e-7, 1e-9]:
        X = np.clip(x + scale * r.standard_normal((200000, len(lo))), lo, hi)
        v = network.preactivations(X)[layer][:, neuron]
        best = min(best, v.min())
    print('best float64 near', best)
