"""Layer-by-layer LP tightening (triangle relaxation, certified duals) vs CROWN widths. Run from the repository
root at c58e1c5: python benchmarks/results/lower_layer_bounds/what_if/lp_layer_by_layer.py MODEL (outputs:
lp_layer_by_layer_*.txt here)."""
import sys, time, numpy as np
sys.path.insert(0, ".")
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box
from exactcompress.engine import bounds as B
from exactcompress.engine.bounds import LayerBounds
from exactcompress.engine.prove.bab_bounds import lp_certificate
net, _ = load_network(sys.argv[1])
box = scalar_box(0.0, 1.0).broadcast(net.input_dim).boxes[0]
lo, hi = box.lower, box.upper
Ws = [l.weight for l in net.hidden]; bs = [l.bias for l in net.hidden]
L = len(Ws)
crown = B.propagate(net, box)
tight = [crown[0]]
t0 = time.time()
for k in range(1, L):
    # crown on top of tightened lower layers, then LP per neuron
    cb = B.propagate(net, box, tight)[k]
    lbs = [t.lower for t in tight]; ubs = [t.upper for t in tight]
    newlo, newhi = cb.lower.copy(), cb.upper.copy()
    for i in range(Ws[k].shape[0]):
        if newlo[i] >= 0 or newhi[i] <= 0:
            continue
        up, _ = lp_certificate(Ws[:k], bs[:k], Ws[k][i], bs[k][i], lo, hi, lbs, ubs)
        dn, _ = lp_certificate(Ws[:k], bs[:k], -Ws[k][i], -bs[k][i], lo, hi, lbs, ubs)
        newhi[i] = min(newhi[i], up); newlo[i] = max(newlo[i], -dn)
    tight.append(LayerBounds(newlo, newhi))
    print(f"L{k}: crown-on-tight width {np.mean(cb.upper-cb.lower):8.3f} unst {((cb.lower<0)&(cb.upper>0)).sum()} "
          f"| lp width {np.mean(newhi-newlo):8.3f} unst {((newlo<0)&(newhi>0)).sum()} | plain crown {np.mean(crown[k].upper-crown[k].lower):8.3f}  t={time.time()-t0:.1f}s", flush=True)
