# How many input columns of the first layer carry 90 / 95 / 99 / 99.9% of its l1 mass (the zonotope's generators
# in box_max); from the repository root: python generator_mass.py
import numpy as np
from exactcompress.io import load_network
for m in ["d3072-5x100-l1_1e-4", "d3072-5x100-l1_2e-4", "d3072-2x800-l1_1e-4"]:
    net, _ = load_network(f"out/bench_zoo/{m}.pt")
    W = net.layers[0].weight
    n = np.abs(W).sum(0)
    s = np.sort(n)[::-1]; c = np.cumsum(s) / s.sum()
    print(m, W.shape, "columns for 90/95/99/99.9% of the l1 mass:", [int(np.searchsorted(c, q)) + 1 for q in (0.9, 0.95, 0.99, 0.999)],
          "columns under 1e-6:", int((n < 1e-6).sum()))
