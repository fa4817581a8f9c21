"""Is the witness of d784-2x400-l1_1e-5's layer 2 neuron 61 a point of the model SCIP was given, and does every
ideal cut hold at it? From the bounds of ``false_proof_bounds.npz``: SCIP's ``checkSol`` of the witness with its
exact ReLU values (hypothesis row added), then the solve of ``replay_false_proof.py selection 0:1`` (a false
proof) with every cut the separator generates recorded and evaluated at the witness.

    python benchmarks/results/free_solve_settings/model_at_witness.py out/bench_zoo/d784-2x400-l1_1e-5.pt

``model_at_witness.log`` was taken at ``e90767c`` (MILP margin 1e-6); with the margin scaled to the row the same
solve ends with a witness.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from exactcompress.engine import analyze as auto
from exactcompress.engine.bounds import LayerBounds
from exactcompress.engine.prove import cuts, per_neuron
from exactcompress.engine.prove.encoding import build_layer_model
from exactcompress.engine.prove.per_neuron import solve_layer
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box

HERE = Path(__file__).parent
LAYER, NEURON = 1, 61


def main() -> None:
    network, _ = load_network(sys.argv[1])
    box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
    saved = np.load(HERE / "false_proof_bounds.npz")
    bounds = [LayerBounds(saved[f"lower{k}"], saved[f"upper{k}"]) for k in range(2)]
    x = np.load(HERE / "witness_d784-2x400-l1_1e-5_layer2_n61.npy")
    first = network.hidden[0]
    z, g = (values[0] for values in network.preactivations(x[None, :])[:2])
    h = np.maximum(z, 0.0)
    values = {"x": x, "l0_g": z, "l0_h": h, "l0_z": (z > 0).astype(float), "l1_g": g}
    layer_model = build_layer_model(network, box, bounds, LAYER, ideal_cuts=True)
    model = layer_model.model
    solution = model.createSol()
    for var in model.getVars():
        prefix = "x" if var.name.startswith("x") else var.name[:4]
        model.setSolVal(solution, var, float(values[prefix][int(var.name[len(prefix):])]))
    model.addCons(layer_model.g[NEURON] >= -per_neuron.MILP_MARGIN)
    print(f"witness g = {g[NEURON]:.4e}; a feasible point of the model with the hypothesis row: "
          f"{model.checkSol(solution, completely=True, original=True)}")

    recorded = []
    generate = cuts.most_violated_cut

    def recording(weights, bias, lower, upper, inputs, active, out):
        cut = generate(weights, bias, lower, upper, inputs, active, out)
        recorded.append((weights, bias, cut))
        return cut
    cuts.most_violated_cut = recording
    run = per_neuron._run

    def selection(layer_model, *args, **kwargs):
        layer_model.model.setParams({"cutselection/hybrid/minorthoroot": 0.1, "separating/maxcutsroot": 5000,
                                     "separating/maxaddrounds": 5, "separating/maxroundsrootsubrun": 5})
        return run(layer_model, *args, **kwargs)
    per_neuron._run = selection
    ask = np.zeros(network.hidden_widths[LAYER], bool)
    ask[NEURON] = True
    solved = solve_layer(network, box, bounds, LAYER, ask_max=ask, ask_min=np.zeros_like(ask), mode="sign",
                         deadline=None, solve_limit=20)
    worst, violated_at_lp = 0.0, 0
    for weights, bias, cut in recorded:
        if cut.violation <= 0:
            continue
        violated_at_lp += 1
        neuron = int(np.argmin(np.abs(first.bias - bias)))
        used = np.flatnonzero(first.weight[neuron] != 0)
        assert np.array_equal(first.weight[neuron, used], weights)
        pre = weights @ x[used] + bias
        lhs = max(pre, 0.0) + cut.active_coefficient * float(pre > 0) + cut.input_coefficients @ x[used]
        worst = max(worst, lhs - cut.rhs)
    print(f"solve: {auto._answer(network, LAYER, NEURON, 1, solved)}; cuts violated by SCIP's LP points: "
          f"{violated_at_lp}; largest violation of any of them at the witness: {worst:.3e}")


if __name__ == "__main__":
    main()
