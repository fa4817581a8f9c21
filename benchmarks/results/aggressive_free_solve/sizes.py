"""The row sizes and proof margins (1e-6 * size) of the three questions in the README section "Aggressive separation
with a wider margin", from the bounds after bounds and witnesses: python sizes.py (from the repository root)."""
import sys, numpy as np
from exactcompress.engine import analyze as auto
from exactcompress.engine.progress import ignore
from exactcompress.engine.prove.encoding import proof_margins
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box
for path, layer, neuron in [("out/bench_zoo/d3072-5x100-l1_2e-4.pt", 4, 42), ("out/bench_zoo/d3072-5x100-l1_1e-4.pt", 3, 64),
                            ("out/bench_zoo/d784-2x400-l1_1e-5.pt", 1, 61)]:
    network, _ = load_network(path)
    box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
    state = auto._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0), ignore)
    m = proof_margins(network, box, state.bounds, layer)
    print(path, layer, neuron, "margin 1e-6*size:", m[neuron], "size:", m[neuron] / 1e-6, "bounds", state.bounds[layer].lower[neuron], state.bounds[layer].upper[neuron], flush=True)
